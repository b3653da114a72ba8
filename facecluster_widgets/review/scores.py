"""Scores of a clustering as the explorer and the ε×λ sweep show them: the silhouette under the estimator's own fused
distance (always) and ARI / NMI / purity against true labels (when some faces have one)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

from ..cluster import HybridClustering
from ..cluster.rows import FusedRows, SampledSilhouette
from ..metrics import ari, nmi, purity, silhouette_defined, silhouette_or_nan
from .view import ClusterView

log = logging.getLogger(__name__)

#: Scores that need true labels.
EXTERNAL_SCORES = ("ari", "nmi", "purity")


def model_silhouette(model: HybridClustering, labels_valid: np.ndarray) -> float:
    """Silhouette of ``labels_valid`` (the model's valid faces) under its fused distance, NaN when undefined.

    The sparse path (large collections) keeps no n×n matrix: there it is the silhouette of a fixed sample of faces
    against all faces (exact when the collection is smaller than the sample), as the estimator's own k search.
    """
    if model.fused_distances_ is not None:
        return silhouette_or_nan(labels_valid, model.fused_distances_)
    if not silhouette_defined(labels_valid):
        return float("nan")
    rows = FusedRows(model.distance_, model.lam, np.arange(model.valid_index_.shape[0]))
    return SampledSilhouette(rows)(np.asarray(labels_valid))


def external_scores(truth: np.ndarray | None, labels: np.ndarray) -> dict[str, float]:
    """ARI, NMI and purity on the faces with a true label (``None`` entries have none); empty without truth.
    Noise counts as singletons (see :mod:`facecluster_widgets.metrics`)."""
    if truth is None:
        return {}
    known = np.array([t is not None for t in truth])
    true, pred = truth[known].astype(str), np.asarray(labels)[known]
    out = {name: float(fn(true, pred)) for name, fn in (("ari", ari), ("nmi", nmi), ("purity", purity))}
    out["labelled_faces"] = float(known.sum())
    return out


def view_metrics(model: HybridClustering, view: ClusterView, truth: np.ndarray | None) -> dict[str, float]:
    """What the metrics panel shows for ``view`` (after corrections): clusters, noise share, silhouette, and the
    external scores when there are true labels."""
    out = {"clusters": float(view.n_clusters), "noise_fraction": float(view.n_noise / max(len(view.labels), 1))}
    out["silhouette"] = model_silhouette(model, view.labels[model.valid_index_])
    return {**out, **external_scores(truth, view.labels)}


def sweep(model: HybridClustering, eps_values: Iterable[float], lam_values: Iterable[float],
          truth: np.ndarray | None = None, progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Every (ε, λ) pair refitted on ``model`` (pass a copy: it is changed): one row each with clusters, noise
    fraction, silhouette and, with true labels, ARI / NMI / purity. A pair that cannot be clustered (e.g. k above
    the faces DBSCAN keeps) gets NaN scores."""
    eps_values, lam_values = [float(e) for e in eps_values], [float(v) for v in lam_values]
    rows, total, done = [], len(eps_values) * len(lam_values), 0
    for lam in lam_values:
        for eps in eps_values:
            row = {"eps": eps, "lam": lam}
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.refit(eps=eps, lam=lam)
                labels = model.labels_
                row["clusters"] = float(np.unique(labels[labels >= 0]).size)
                row["noise_fraction"] = float((labels < 0).mean())
                row["silhouette"] = model_silhouette(model, labels[model.valid_index_])
                scores = external_scores(truth, labels)
                row.update({name: scores[name] for name in EXTERNAL_SCORES if name in scores})
            except ValueError as exc:  # FeatureInputError and MetricInputError are ValueErrors
                log.info("sweep: eps=%s lam=%s not clustered (%s)", eps, lam, exc)
            rows.append(row)
            done += 1
            if progress is not None:
                progress(done, total)
    columns = ["eps", "lam", "clusters", "noise_fraction", "silhouette"]
    columns += list(EXTERNAL_SCORES) if truth is not None else []
    return pd.DataFrame(rows).reindex(columns=columns)
