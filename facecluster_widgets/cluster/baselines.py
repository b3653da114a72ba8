"""Baselines the method is compared with, each ``f(X, ...) -> labels`` on the same features as the method.

Every default is a module constant chosen once (no per-dataset tuning). Thresholds on the 2D embedding are
properties of the embedding model, so they are tabled per embedder in :data:`THRESHOLDS` and picked with
``embedder=``; the "2d" block holds UNIT vectors, so thresholds published for raw descriptors are converted.
Faces with NaN/inf in the blocks a baseline uses get −1; the others are clustered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral

import dlib
import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.cluster import DBSCAN, HDBSCAN, AgglomerativeClustering, KMeans
from sklearn.metrics.cluster import contingency_matrix

from ..errors import FeatureInputError
from ..features import Features
from ..fusion import BLOCK_2D, FusedMetric, as_blocks, split_names, unit_rows, valid_rows
from .hybrid import DEFAULT_LAM
from .kmeans import DEFAULT_N_INIT, fused_kmeans

#: Mean L2 norm of dlib's raw 128-D descriptors on the 100 lfw10 faces (benchmarks/README.md); the
#: "2d" block stores them unit-normalised, so dlib's published thresholds on raw descriptors are divided by it.
DLIB_DESCRIPTOR_NORM = 1.40
#: Faces a DBSCAN/HDBSCAN group needs: Immich's default ``minFaces = 3`` for a person.
MIN_FACES = 3
#: K-Means restarts for the k-given baselines (same as the method's stage 2).
N_INIT = DEFAULT_N_INIT


def _cosine_from_unit_euclidean(distance: float) -> float:
    """Cosine distance of two unit vectors at Euclidean distance ``distance`` (‖u − v‖² = 2·(1 − u·v))."""
    return distance**2 / 2


def _cosine_from_raw_dlib(distance: float) -> float:
    return _cosine_from_unit_euclidean(distance / DLIB_DESCRIPTOR_NORM)


@dataclass(frozen=True)
class EmbedderThresholds:
    """Thresholds on unit 2D embeddings: DBSCAN's eps and the agglomerative cut (cosine distance), and the
    Chinese-Whispers edge length (Euclidean)."""

    dbscan_eps: float
    agglomerative: float
    chinese_whispers: float


#: Per embedder, from published defaults. dlib: Euclidean 0.5 on raw descriptors for CLUSTERING (dlib's
#: Chinese-Whispers face-clustering example; also the eps of the widely copied dlib + DBSCAN face-clustering
#: tutorial) — DBSCAN chains, so it needs this stricter value — and 0.6 for a same-person PAIR (dlib's
#: face-recognition example, ``face_recognition``'s tolerance), used for the average-linkage cut, which does not
#: chain. ArcFace: Immich's default ``maxDistance = 0.5`` (cosine). FaceNet: the FaceNet paper's squared-L2
#: threshold 1.1 on unit embeddings, i.e. cosine 0.55.
THRESHOLDS: dict[str, EmbedderThresholds] = {
    "dlib": EmbedderThresholds(dbscan_eps=_cosine_from_raw_dlib(0.5), agglomerative=_cosine_from_raw_dlib(0.6),
                               chinese_whispers=0.5 / DLIB_DESCRIPTOR_NORM),
    "arcface": EmbedderThresholds(dbscan_eps=0.5, agglomerative=0.5, chinese_whispers=math.sqrt(2 * 0.5)),
    "facenet": EmbedderThresholds(dbscan_eps=0.55, agglomerative=0.55, chinese_whispers=math.sqrt(1.1)),
    # SFace has no published clustering thresholds, so one declared rule calibrates it: each threshold admits the
    # same share of different-person pairs (averaged over lfw10, orl, yale, cfp100, umist) as dlib's published one
    # does for dlib (benchmarks/calibrate_thresholds.py; rates in benchmarks/README.md). The pair value lands near
    # OpenCV's own published SFace threshold (cosine similarity 0.363, i.e. distance 0.637; L2 1.128).
    "sface": EmbedderThresholds(dbscan_eps=0.6639, agglomerative=0.7637, chinese_whispers=1.1523),
}
#: The embedder assumed when none is named (the toolkit's default backend, ``embed.DEFAULT_EMBEDDER``).
DEFAULT_EMBEDDER = "sface"


def thresholds(embedder: str) -> EmbedderThresholds:
    try:
        return THRESHOLDS[embedder]
    except KeyError:
        raise FeatureInputError(f"no thresholds for embedder {embedder!r}; known: {sorted(THRESHOLDS)} "
                                "(or pass the threshold explicitly)") from None


def _prepare(X: Features | Mapping[str, np.ndarray], names: Sequence[str]) -> tuple[dict, np.ndarray]:
    blocks = as_blocks(X)
    missing = [name for name in names if name not in blocks]
    if missing:
        raise FeatureInputError(f"baseline needs block(s) {missing}; have {sorted(blocks)}")
    valid = valid_rows(blocks, names)
    if not valid.any():
        raise FeatureInputError(f"no face has finite values in block(s) {list(names)}")
    return {name: blocks[name][valid] for name in names}, valid


def _scatter(valid: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out = np.full(valid.shape[0], -1)
    out[valid] = labels
    return out


def _check_k(n_clusters: int, n: int) -> int:
    if not isinstance(n_clusters, Integral) or n_clusters < 1:
        raise FeatureInputError(f"n_clusters must be a positive integer, got {n_clusters!r}")
    if n_clusters > n:
        raise FeatureInputError(f"n_clusters={n_clusters} but only {n} faces have the features needed")
    return int(n_clusters)


def two_d_kmeans(X: Features | Mapping[str, np.ndarray], n_clusters: int, *, random_state: int = 0,
                 block_2d: str = BLOCK_2D) -> np.ndarray:
    """2D only: spherical K-Means++ (cosine assignment, normalised-mean centroids) — the method's stage 2 at λ=1."""
    blocks, valid = _prepare(X, [block_2d])
    k = _check_k(n_clusters, int(valid.sum()))
    metric = FusedMetric.fit(blocks, block_2d=block_2d, blocks_3d=())
    rows = np.arange(metric.n_faces)
    result = fused_kmeans(metric, 1.0, rows, metric.pairwise(1.0), k, n_init=N_INIT, rng=random_state)
    return _scatter(valid, result.labels)


def two_d_kmeans_true_k(X: Features | Mapping[str, np.ndarray], labels_true: Sequence, *, random_state: int = 0,
                        block_2d: str = BLOCK_2D) -> np.ndarray:
    """The practitioner's reference: the same 2D K-Means++, told the TRUE number of people."""
    valid = _prepare(X, [block_2d])[1]
    return two_d_kmeans(X, _true_k(labels_true, valid), random_state=random_state, block_2d=block_2d)


def three_d_kmeans(X: Features | Mapping[str, np.ndarray], n_clusters: int, *, random_state: int = 0,
                   block_2d: str = BLOCK_2D, blocks_3d: Sequence[str] | None = None) -> np.ndarray:
    """3D only: K-Means++ (sklearn) on the whitened 3D rows, i.e. under the method's Mahalanobis distance."""
    names_3d = split_names(as_blocks(X), block_2d, blocks_3d)[1]
    if not names_3d:
        raise FeatureInputError("three_d_kmeans needs at least one 3D block")
    blocks, valid = _prepare(X, names_3d)
    k = _check_k(n_clusters, int(valid.sum()))
    metric = FusedMetric.fit(blocks, block_2d=block_2d, blocks_3d=names_3d)
    return _scatter(valid, KMeans(k, n_init=N_INIT, random_state=random_state).fit(metric.points_3d).labels_)


def align_labels(reference: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``labels`` renamed to the reference's names by the Hungarian method on the contingency matrix.

    Clusters of ``labels`` left unmatched (it has more clusters) get new ids after the reference's, numbered in
    order of first appearance, so the result does not depend on how either labelling names its clusters.
    Noise (−1) stays −1.
    """
    reference, labels = np.asarray(reference), np.asarray(labels)
    keep = (labels >= 0) & (reference >= 0)
    ref_ids, ref_codes = np.unique(reference[keep], return_inverse=True)
    lab_ids = np.unique(labels[labels >= 0])
    mapping: dict[int, int] = {}
    if keep.any():
        lab_codes = np.searchsorted(lab_ids, labels[keep])
        table = contingency_matrix(lab_codes, ref_codes)
        present = np.unique(lab_codes)
        rows, cols = linear_sum_assignment(-table)
        mapping = {int(lab_ids[present[r]]): int(ref_ids[c]) for r, c in zip(rows, cols, strict=True)}
    next_id = int(max(reference.max(initial=-1), -1)) + 1
    out = np.full(labels.shape[0], -1)
    for i, label in enumerate(labels.tolist()):
        if label < 0:
            continue
        if label not in mapping:
            mapping[label] = next_id
            next_id += 1
        out[i] = mapping[label]
    return out


def majority_vote(labelings: Sequence[np.ndarray]) -> np.ndarray:
    """Per face, the label most voters give (−1 = abstain). Tie rule: of the tied labels, the one given by the
    earliest voter in ``labelings`` (so list the most reliable modality first). All abstain → −1."""
    stack = np.vstack([np.asarray(lab) for lab in labelings])
    out = np.full(stack.shape[1], -1)
    for i in range(stack.shape[1]):
        votes = stack[:, i]
        votes = votes[votes >= 0]
        if votes.size == 0:
            continue
        values, counts = np.unique(votes, return_counts=True)
        tied = set(values[counts == counts.max()].tolist())
        out[i] = next(v for v in votes.tolist() if v in tied)
    return out


def late_fusion(X: Features | Mapping[str, np.ndarray], n_clusters: int, *, random_state: int = 0,
                block_2d: str = BLOCK_2D, blocks_3d: Sequence[str] | None = None) -> np.ndarray:
    """Cluster each modality alone (2D spherical K-Means; each 3D block K-Means on its standardised columns),
    align every labelling to the 2D one (Hungarian), then :func:`majority_vote` with the 2D voter first.

    With one 3D block every disagreement is a 1–1 tie, which the 2D voter wins: late fusion needs ≥ 2 3D blocks
    to ever overrule the 2D clustering.
    """
    blocks_all = as_blocks(X)
    names_3d = split_names(blocks_all, block_2d, blocks_3d)[1]
    blocks, valid = _prepare(blocks_all, [block_2d, *names_3d])
    k = _check_k(n_clusters, int(valid.sum()))
    voters = [two_d_kmeans({block_2d: blocks[block_2d]}, k, random_state=random_state, block_2d=block_2d)]
    for name in names_3d:
        z = FusedMetric.fit({name: blocks[name]}, fusion="concat", block_2d=block_2d, blocks_3d=[name]).points_3d
        if z.shape[1] == 0:  # a constant block has no opinion
            continue
        voters.append(KMeans(k, n_init=N_INIT, random_state=random_state).fit(z).labels_)
    aligned = [voters[0]] + [align_labels(voters[0], v) for v in voters[1:]]
    return _scatter(valid, majority_vote(aligned))


def dbscan_2d(X: Features | Mapping[str, np.ndarray], *, eps: float | None = None,
              min_samples: int = MIN_FACES, embedder: str = DEFAULT_EMBEDDER, block_2d: str = BLOCK_2D) -> np.ndarray:
    """Plain DBSCAN on 2D cosine distance, as photo managers do; eps defaults to the embedder's threshold."""
    blocks, valid = _prepare(X, [block_2d])
    eps = thresholds(embedder).dbscan_eps if eps is None else eps
    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="cosine").fit(blocks[block_2d]).labels_
    return _scatter(valid, labels)


def hdbscan_2d(X: Features | Mapping[str, np.ndarray], *, min_cluster_size: int = MIN_FACES,
               block_2d: str = BLOCK_2D) -> np.ndarray:
    """HDBSCAN (sklearn) on unit 2D vectors with Euclidean distance — the same neighbour order as cosine,
    and tree-accelerated, which cosine is not. Its outliers are −1."""
    blocks, valid = _prepare(X, [block_2d])
    unit = unit_rows(blocks[block_2d])
    labels = HDBSCAN(min_cluster_size=min_cluster_size, copy=True).fit(unit).labels_
    return _scatter(valid, np.where(labels < 0, -1, labels))


def agglomerative_2d(X: Features | Mapping[str, np.ndarray], *, threshold: float | None = None,
                     embedder: str = DEFAULT_EMBEDDER, block_2d: str = BLOCK_2D) -> np.ndarray:
    """Average-linkage agglomerative clustering on 2D cosine distance, cut at the embedder's threshold."""
    blocks, valid = _prepare(X, [block_2d])
    threshold = thresholds(embedder).agglomerative if threshold is None else threshold
    if valid.sum() < 2:
        return _scatter(valid, np.zeros(int(valid.sum()), dtype=int))
    model = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average", distance_threshold=threshold)
    return _scatter(valid, model.fit(blocks[block_2d]).labels_)


def chinese_whispers_2d(X: Features | Mapping[str, np.ndarray], *, threshold: float | None = None,
                        embedder: str = DEFAULT_EMBEDDER, block_2d: str = BLOCK_2D) -> np.ndarray:
    """dlib's Chinese Whispers: an edge joins faces at Euclidean distance < threshold (unit 2D vectors)."""
    blocks, valid = _prepare(X, [block_2d])
    threshold = thresholds(embedder).chinese_whispers if threshold is None else threshold
    unit = unit_rows(blocks[block_2d])
    labels = dlib.chinese_whispers_clustering([dlib.vector(row.tolist()) for row in unit], float(threshold))
    return _scatter(valid, np.asarray(labels, dtype=int))


def true_k_kmeans(X: Features | Mapping[str, np.ndarray], labels_true: Sequence, *, lam: float = DEFAULT_LAM,
                  fusion: str = "metric", random_state: int = 0, block_2d: str = BLOCK_2D,
                  blocks_3d: Sequence[str] | None = None) -> np.ndarray:
    """Upper reference: the method's stage 2 alone (no noise stage) with the TRUE number of identities."""
    blocks_all = as_blocks(X)
    name_2d, names_3d = split_names(blocks_all, block_2d, blocks_3d)
    used = ([name_2d] if name_2d else []) + list(names_3d)
    blocks, valid = _prepare(blocks_all, used)
    k = _true_k(labels_true, valid)
    metric = FusedMetric.fit(blocks, fusion=fusion, block_2d=block_2d, blocks_3d=names_3d)
    rows = np.arange(metric.n_faces)
    result = fused_kmeans(metric, lam, rows, metric.pairwise(lam), k, n_init=N_INIT, rng=random_state)
    return _scatter(valid, result.labels)


def _true_k(labels_true: Sequence, valid: np.ndarray) -> int:
    labels_true = np.asarray(labels_true)
    if labels_true.shape != valid.shape:
        raise FeatureInputError(f"labels_true has shape {labels_true.shape}, expected one label per face "
                                f"({valid.shape[0]})")
    return _check_k(int(np.unique(labels_true[valid]).size), int(valid.sum()))


def full_3d_off(X: Features | Mapping[str, np.ndarray], groups: Sequence | None = None,
                random_state: int = 0) -> np.ndarray:
    """The full method with the 3D term weighted 0 (λ = 1) and everything else equal (its own k, DBSCAN stage,
    cannot-link groups): next to the full method, the row that shows what the 3D branch adds."""
    from .hybrid import HybridClustering

    return HybridClustering(lam=1.0, random_state=random_state).fit(X, groups=groups).labels_


@dataclass(frozen=True)
class Baseline:
    """A baseline and what it needs besides the features: the number of clusters, or the true labels."""

    fn: Callable[..., np.ndarray]
    needs: str | None = None  # "n_clusters", "labels_true" or None


#: Name -> baseline; :func:`run_baseline` calls any of them uniformly.
BASELINES: dict[str, Baseline] = {
    "full_3d_off": Baseline(full_3d_off),
    "2d_kmeans": Baseline(two_d_kmeans, "n_clusters"),
    "3d_kmeans": Baseline(three_d_kmeans, "n_clusters"),
    "late_fusion": Baseline(late_fusion, "n_clusters"),
    "dbscan_2d": Baseline(dbscan_2d),
    "hdbscan_2d": Baseline(hdbscan_2d),
    "agglomerative_2d": Baseline(agglomerative_2d),
    "chinese_whispers": Baseline(chinese_whispers_2d),
    "true_k_kmeans": Baseline(true_k_kmeans, "labels_true"),
    "2d_kmeans_true_k": Baseline(two_d_kmeans_true_k, "labels_true"),
}


def run_baseline(name: str, X: Features | Mapping[str, np.ndarray], *, n_clusters: int | None = None,
                 labels_true: Sequence | None = None, **params: object) -> np.ndarray:
    """Labels from baseline ``name``; ``n_clusters`` / ``labels_true`` are passed to those that need them."""
    try:
        baseline = BASELINES[name]
    except KeyError:
        raise FeatureInputError(f"unknown baseline {name!r}; available: {', '.join(BASELINES)}") from None
    if baseline.needs == "n_clusters":
        if n_clusters is None:
            raise FeatureInputError(f"baseline {name!r} needs n_clusters")
        return baseline.fn(X, n_clusters, **params)
    if baseline.needs == "labels_true":
        if labels_true is None:
            raise FeatureInputError(f"baseline {name!r} needs labels_true")
        return baseline.fn(X, labels_true, **params)
    return baseline.fn(X, **params)
