"""What a person browses in a clustering: each face's distance to every cluster's centre, the gallery in display
order, the clusters that may be one person, and the ranked queue of possible matches for one cluster.

Plain functions of a :class:`~.view.ClusterView` and the fitted estimator; :class:`~.session.ClusterSession`
caches their inputs per view.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..cluster import HybridClustering
from .edits import Edit, EditError, identify
from .view import NOISE_NAME, ClusterPair, ClusterView, GalleryRow

CLUSTER_ORDERS = ("size", "spread", "name")
FACE_ORDERS = ("closest", "farthest")


def centroid_distances(model: HybridClustering, view: ClusterView, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """``(clusters, D)``: the cluster ids and the (n, k) fused distance of every face to every cluster's centroid
    (per-block centroids in the fused spaces, after corrections); NaN rows for faces without complete features."""
    clusters = view.clusters
    valid = model.valid_index_
    dist = np.full((len(view.labels), clusters.size), np.nan)
    if clusters.size:
        codes = np.searchsorted(clusters, view.labels[valid])
        codes[view.labels[valid] < 0] = -1
        metric = model.distance_
        dist[valid] = metric.to_centroids(lam, metric.centroids(codes, clusters.size))
    return clusters, dist


def unknown_pool(view: ClusterView, clusters: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """The faces in no cluster, nearest to some cluster's centroid first (faces without features last)."""
    noise = np.flatnonzero(view.labels < 0)
    if not clusters.size:
        return noise
    near = dist[noise].min(axis=1) if noise.size else np.zeros(0)
    return noise[np.argsort(np.where(np.isnan(near), np.inf, near), kind="stable")]


def gallery(view: ClusterView, clusters: np.ndarray, dist: np.ndarray, *, cluster_order: str = "size",
            face_order: str = "closest") -> list[GalleryRow]:
    """Clusters with their faces: clusters by ``size`` (largest first), ``spread`` (tightest first) or ``name``;
    faces ``closest`` or ``farthest`` to their centroid first. The noise faces come last, nearest to any cluster
    first (the likeliest to belong somewhere)."""
    if cluster_order not in CLUSTER_ORDERS or face_order not in FACE_ORDERS:
        raise ValueError(f"cluster_order must be one of {CLUSTER_ORDERS} and face_order one of {FACE_ORDERS}, got "
                         f"{cluster_order!r}/{face_order!r}")
    rows = []
    for j, label in enumerate(clusters.tolist()):
        members = view.members(label)
        own = dist[members, j]
        order = np.argsort(np.where(np.isnan(own), np.inf, own), kind="stable")
        if face_order == "farthest":
            order = order[::-1]
        spread = float(np.nanmean(own)) if np.isfinite(own).any() else float("nan")
        rows.append(GalleryRow(label, view.name_of(label), members[order], spread))
    if cluster_order == "size":
        rows.sort(key=lambda r: (-r.size, r.label))
    elif cluster_order == "spread":
        rows.sort(key=lambda r: (np.inf if np.isnan(r.spread) else r.spread, r.label))
    else:
        rows.sort(key=lambda r: (r.label not in view.names, r.name.casefold(), r.label))
    noise = unknown_pool(view, clusters, dist)
    if noise.size:
        rows.append(GalleryRow(-1, NOISE_NAME, noise, float("nan")))
    return rows


def similar_pairs(view: ClusterView, clusters: np.ndarray, dist: np.ndarray, n: int = 10) -> list[ClusterPair]:
    """The ``n`` pairs of clusters nearest each other, nearest first: the "same person?" suggestions."""
    k = clusters.size
    if k < 2:
        return []
    rows = np.flatnonzero((view.labels >= 0) & np.isfinite(dist).all(axis=1))
    codes = np.searchsorted(clusters, view.labels[rows])
    sums = np.zeros((k, k))
    np.add.at(sums, codes, dist[rows])
    counts = np.bincount(codes, minlength=k).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums / counts[:, None]  # mean[a, b]: faces of a to the centroid of b
    between = (mean + mean.T) / 2
    own = np.diag(mean)
    gap = between - (own[:, None] + own[None, :]) / 2
    a, b = np.triu_indices(k, 1)
    score = between[a, b]
    keep = np.isfinite(score)
    order = np.argsort(np.where(keep, score, np.inf), kind="stable")[: max(0, int(n))]
    return [ClusterPair(int(clusters[a[i]]), int(clusters[b[i]]), float(score[i]), float(gap[a[i], b[i]]))
            for i in order if keep[i]]


def refused_rows(edits: Sequence[Edit], view: ClusterView, face_ids: Sequence[str], label: int) -> set[int]:
    """Rows marked "not this person" for the cluster that is ``label`` in ``view``."""
    index = {fid: i for i, fid in enumerate(face_ids)}
    refused: set[int] = set()
    for edit in edits:
        if edit.kind != "not_person":
            continue
        anchor = np.array([index[f] for f in edit.anchor if f in index], dtype=np.intp)
        if identify(view.labels, anchor) == label:
            refused.update(index[f] for f in edit.faces if f in index)
    return refused


def possible_matches(view: ClusterView, clusters: np.ndarray, dist: np.ndarray, label: int,
                     refused: set[int] = frozenset(), n: int = 12) -> list[tuple[int, float]]:
    """A ranked queue for cluster ``label``: faces in no cluster, nearest to its centroid first, leaving out the
    ``refused`` rows. ``[(row, fused distance), ...]``."""
    where = np.flatnonzero(clusters == label)
    if not where.size:
        raise EditError(f"no cluster {label} in the current clustering")
    column = dist[:, where[0]]
    pool = [r for r in np.flatnonzero(view.labels < 0).tolist() if r not in refused and np.isfinite(dist[r, 0])]
    ranked = sorted(pool, key=lambda r: column[r])
    return [(r, float(column[r])) for r in ranked[:n]]
