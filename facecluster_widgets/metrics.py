"""How good a clustering of faces is, against true identities or under a given distance.

Noise (label −1 in a *predicted* labelling, and in a true one too so that symmetric scores stay symmetric) is
treated as **each noise face its own singleton cluster** by every external score (ARI, NMI, purity, BCubed,
pairwise). So marking a face noise is never free: it costs recall (BCubed, pairwise, ARI) like splitting it
off, while it cannot hurt precision. Purity rewards singletons (every singleton is pure), so always read it with
:func:`noise_fraction` and :func:`clusters_found`. :func:`silhouette` EXCLUDES noise faces: they belong to no
cluster, so they have no "own cluster" distance.

:data:`METRICS` maps a name to a ``(labels_true, labels_pred) -> float`` score; tests and benchmarks iterate it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

from .errors import MetricInputError

#: The label of a face that belongs to no cluster.
NOISE = -1


def check_labels(labels: object, name: str = "labels") -> np.ndarray:
    """A 1-D array of labels (ints or strings); NaN/None/inf and 2-D input are errors, not silent classes."""
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise MetricInputError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size == 0:
        raise MetricInputError(f"{name} is empty")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise MetricInputError(f"{name} contains NaN or infinity; give unclustered faces the label {NOISE}")
        if not np.all(arr == np.round(arr)):
            raise MetricInputError(f"{name} holds non-integer floats; labels must be integers or strings")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind == "O":
        bad = [v for v in arr if v is None or (isinstance(v, float) and not np.isfinite(v))]
        if bad:
            raise MetricInputError(f"{name} contains {bad[0]!r}; give unclustered faces the label {NOISE}")
        arr = arr.astype(str)
    elif arr.dtype.kind not in "iubUS":
        raise MetricInputError(f"{name} must hold integers or strings, got dtype {arr.dtype}")
    return arr


def check_pair(labels_true: object, labels_pred: object) -> tuple[np.ndarray, np.ndarray]:
    true = check_labels(labels_true, "labels_true")
    pred = check_labels(labels_pred, "labels_pred")
    if true.shape[0] != pred.shape[0]:
        raise MetricInputError(f"labels_true has {true.shape[0]} faces but labels_pred has {pred.shape[0]}")
    return true, pred


def noise_as_singletons(labels: np.ndarray) -> np.ndarray:
    """Dense int codes where every noise face (−1) gets a fresh cluster of its own."""
    noise = _noise_mask(labels)
    codes = np.unique(labels, return_inverse=True)[1].astype(np.int64)
    if noise.any():
        codes[noise] = codes.max() + 1 + np.arange(int(noise.sum()))
    return codes


def _noise_mask(labels: np.ndarray) -> np.ndarray:
    if labels.dtype.kind in "iu":
        return labels == NOISE
    return labels == str(NOISE)


def _contingency(labels_true: object, labels_pred: object) -> np.ndarray:
    true, pred = check_pair(labels_true, labels_pred)
    return contingency_matrix(noise_as_singletons(true), noise_as_singletons(pred)).astype(np.float64)


def ari(labels_true: object, labels_pred: object) -> float:
    """Adjusted Rand index (sklearn): 1 = same partition, ~0 = chance."""
    true, pred = check_pair(labels_true, labels_pred)
    return float(adjusted_rand_score(noise_as_singletons(true), noise_as_singletons(pred)))


def nmi(labels_true: object, labels_pred: object) -> float:
    """Normalised mutual information (sklearn, arithmetic mean normaliser)."""
    true, pred = check_pair(labels_true, labels_pred)
    return float(normalized_mutual_info_score(noise_as_singletons(true), noise_as_singletons(pred)))


def purity(labels_true: object, labels_pred: object) -> float:
    """Share of faces whose cluster's majority identity is their own (rewards many small clusters)."""
    table = _contingency(labels_true, labels_pred)
    return float(table.max(axis=0).sum() / table.sum())


def bcubed(labels_true: object, labels_pred: object) -> tuple[float, float, float]:
    """BCubed precision, recall, F (Bagga & Baldwin 1998): per-face averages, so big clusters do not dominate.

    Precision of a face = share of its cluster with its identity; recall = share of its identity in its cluster.
    """
    table = _contingency(labels_true, labels_pred)
    n = table.sum()
    squares = table**2
    precision = float((squares.sum(axis=0) / table.sum(axis=0)).sum() / n)
    recall = float((squares.sum(axis=1) / table.sum(axis=1)).sum() / n)
    return precision, recall, _f(precision, recall)


def pairwise_scores(labels_true: object, labels_pred: object) -> tuple[float, float, float]:
    """Pair-counting precision, recall, F over face pairs put together.

    With no predicted pair (all singletons) precision is 1 (no wrong merge); with no true pair recall is 1.
    """
    table = _contingency(labels_true, labels_pred)
    together = float((table * (table - 1)).sum() / 2)
    pred_sizes, true_sizes = table.sum(axis=0), table.sum(axis=1)
    pred_pairs = float((pred_sizes * (pred_sizes - 1)).sum() / 2)
    true_pairs = float((true_sizes * (true_sizes - 1)).sum() / 2)
    precision = together / pred_pairs if pred_pairs else 1.0
    recall = together / true_pairs if true_pairs else 1.0
    return precision, recall, _f(precision, recall)


def _f(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def noise_fraction(labels_pred: object) -> float:
    """Share of faces left unclustered (−1)."""
    pred = check_labels(labels_pred, "labels_pred")
    return float(_noise_mask(pred).mean())


def clusters_found(labels_pred: object) -> int:
    """Number of clusters, noise not counted."""
    pred = check_labels(labels_pred, "labels_pred")
    return int(np.unique(pred[~_noise_mask(pred)]).size)


def silhouette(labels: object, distances: np.ndarray) -> float:
    """Mean silhouette under a GIVEN precomputed distance (e.g. the fused one); noise faces are excluded.

    Same value as ``sklearn.metrics.silhouette_score(D, labels, metric="precomputed")`` on the non-noise faces
    (a singleton's silhouette is 0), computed with one matrix product so a k-sweep over 1,000 faces stays fast.
    """
    lab = check_labels(labels, "labels")
    D = np.asarray(distances)
    if D.dtype not in (np.float32, np.float64):
        D = D.astype(np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1] or D.shape[0] != lab.shape[0]:
        raise MetricInputError(f"distances must be a square matrix matching {lab.shape[0]} labels, got {D.shape}")
    if not np.isfinite(D).all():
        raise MetricInputError("distances contain NaN or infinity")
    keep = ~_noise_mask(lab)
    codes = np.unique(lab[keep], return_inverse=True)[1]
    k, n = int(codes.max(initial=-1)) + 1, int(keep.sum())
    if not 2 <= k <= n - 1:
        raise MetricInputError(f"silhouette needs 2 <= clusters <= faces - 1 among non-noise faces, got {k} "
                               f"clusters over {n} faces")
    onehot = np.zeros((n, k), dtype=D.dtype)
    onehot[np.arange(n), codes] = 1.0
    sums = (D if keep.all() else D[np.ix_(keep, keep)]) @ onehot
    return float(silhouette_from_sums(sums, np.bincount(codes, minlength=k), codes).mean())


def silhouette_defined(labels: object) -> bool:
    """Whether a silhouette exists for ``labels``: 2 <= clusters <= faces - 1 among non-noise faces."""
    if np.size(labels) == 0:
        return False
    lab = check_labels(labels, "labels")
    keep = ~_noise_mask(lab)
    return 2 <= np.unique(lab[keep]).size <= int(keep.sum()) - 1


def silhouette_or_nan(labels: object, distances: np.ndarray) -> float:
    """:func:`silhouette`, or NaN where it is undefined (one cluster, or every face alone): a report cell or a
    live score shows "no value" there instead of failing. Bad input (shapes, NaN distances) still raises."""
    return silhouette(labels, distances) if silhouette_defined(labels) else float("nan")


def silhouette_from_sums(sums: np.ndarray, sizes: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Per-face silhouettes from ``sums[i, c]`` = summed distance of face i to cluster c's members, the cluster
    ``sizes`` and each face's ``own`` cluster (the sparse path passes sums over a sample of faces only)."""
    sums = np.asarray(sums, dtype=np.float64)
    sizes = np.asarray(sizes, dtype=np.float64)
    own_size = sizes[own]
    rows = np.arange(own.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        a = sums[rows, own] / (own_size - 1)
        means = sums / sizes
    means[rows, own] = np.inf
    b = means.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (b - a) / np.maximum(a, b)
    return np.where(own_size > 1, np.nan_to_num(s, nan=0.0), 0.0)


def bcubed_precision(labels_true: object, labels_pred: object) -> float:
    return bcubed(labels_true, labels_pred)[0]


def bcubed_recall(labels_true: object, labels_pred: object) -> float:
    return bcubed(labels_true, labels_pred)[1]


def bcubed_f(labels_true: object, labels_pred: object) -> float:
    return bcubed(labels_true, labels_pred)[2]


def pairwise_precision(labels_true: object, labels_pred: object) -> float:
    return pairwise_scores(labels_true, labels_pred)[0]


def pairwise_recall(labels_true: object, labels_pred: object) -> float:
    return pairwise_scores(labels_true, labels_pred)[1]


def pairwise_f(labels_true: object, labels_pred: object) -> float:
    return pairwise_scores(labels_true, labels_pred)[2]


#: Every external score, name -> ``f(labels_true, labels_pred)``; all are 1 for a perfect labelling.
METRICS: dict[str, Callable[[object, object], float]] = {
    "ari": ari,
    "nmi": nmi,
    "purity": purity,
    "bcubed_precision": bcubed_precision,
    "bcubed_recall": bcubed_recall,
    "bcubed_f": bcubed_f,
    "pairwise_precision": pairwise_precision,
    "pairwise_recall": pairwise_recall,
    "pairwise_f": pairwise_f,
}

#: Scores with ``f(a, b) == f(b, a)``; precision and recall swap roles instead.
SYMMETRIC = frozenset({"ari", "nmi", "bcubed_f", "pairwise_f"})


def scores(labels_true: object, labels_pred: object, distances: np.ndarray | None = None) -> dict[str, float | int]:
    """Every score in :data:`METRICS`, plus noise fraction, clusters found vs true and (given a distance) silhouette.

    The silhouette is NaN when it is undefined (fewer than 2 clusters among non-noise faces).
    """
    true, pred = check_pair(labels_true, labels_pred)
    out = {name: fn(true, pred) for name, fn in METRICS.items()}
    out["noise_fraction"] = noise_fraction(pred)
    out["clusters_found"] = clusters_found(pred)
    out["clusters_true"] = int(np.unique(true).size)
    if distances is not None:
        out["silhouette"] = silhouette_or_nan(pred, distances)
    return out
