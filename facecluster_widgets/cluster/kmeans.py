"""Stage 2's K-Means under the fused distance, shared by the dense path (:mod:`.hybrid`) and the sparse one
(:mod:`.graph`): K-Means++ seeding by D² sampling on the precomputed fused matrix (the greedy variant sklearn uses:
``2 + ln k`` candidates per seed, the one that lowers the potential most is kept), assignment to the nearest centroid
under D with cannot-link, centroid update per block (normalised mean of the unit 2D vectors, plain mean of the
whitened 3D rows). The per-block means minimise the *squared* per-block distances, so the updates are the usual
Lloyd heuristic for D rather than an exact minimiser.

Cannot-link (``groups``: a photo id per face): two faces of one photo are two people, so they never share a cluster.
Each photo with several faces is assigned jointly with ``scipy.optimize.linear_sum_assignment`` on its faces'
distance rows. A photo with more faces than clusters cannot be satisfied: its surplus faces get −1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.utils import check_random_state

from ..fusion import FusedMetric

#: K-Means restarts; the run with the lowest inertia is kept. 4 keeps a slider refit of 1,000 faces interactive.
DEFAULT_N_INIT = 4
#: k="auto" scores k = max(2, largest photo's faces) .. (faces DBSCAN kept) / this by silhouette: at most one
#: cluster per two faces. DBSCAN's own cluster count is NOT used to centre the range: at one eps it was off by up
#: to 58 % on the shared datasets while the silhouette peak sat at the true k (README, "How the defaults were chosen").
AUTO_K_MAX_SHARE = 2
#: Cost standing for "forbidden" in the assignment problem (finite: scipy rejects infeasible inf matrices).
_FORBIDDEN = 1e12

@dataclass(frozen=True)
class KMeansResult:
    """One stage-2 run: labels of the partitioned faces (−1 = unassignable under cannot-link), per-block centroids."""

    labels: np.ndarray
    centroids: dict[str, np.ndarray]
    inertia: float
    n_iter: int


def group_index(groups: np.ndarray | None) -> list[np.ndarray]:
    """Index arrays of the groups (photos) holding two or more of these faces; singletons need no constraint."""
    if groups is None or groups.shape[0] == 0:
        return []
    codes = np.unique(groups, return_inverse=True)[1]
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return [members for members in np.split(order, bounds) if members.shape[0] > 1]


def assign(dist: np.ndarray, groups: Sequence[np.ndarray] = (), forbidden: np.ndarray | None = None) -> np.ndarray:
    """Nearest cluster per face under cannot-link: faces of one group go to distinct, allowed clusters.

    ``dist`` (m, k); ``groups`` index arrays into its rows; ``forbidden`` (m, k) True where a face may not go.
    Faces left without a cluster (group larger than k, or every cluster forbidden) get −1.
    """
    cost = dist if forbidden is None else np.where(forbidden, _FORBIDDEN, dist)
    labels = np.argmin(cost, axis=1)
    if forbidden is not None:
        labels[forbidden[np.arange(labels.shape[0]), labels]] = -1
    for members in groups:
        chosen = labels[members]
        if np.unique(chosen).shape[0] == chosen.shape[0] and (chosen >= 0).all():
            continue
        sub = cost[members]
        rows, cols = linear_sum_assignment(sub)
        out = np.full(members.shape[0], -1)
        ok = sub[rows, cols] < _FORBIDDEN
        out[rows[ok]] = cols[ok]
        labels[members] = out
    return labels


def kmeans_plusplus(D: np.ndarray, k: int, rng: np.random.RandomState) -> np.ndarray:
    """Indices of ``k`` seeds by greedy D² sampling on a precomputed distance matrix."""
    n = D.shape[0]
    trials = 2 + int(math.log(k))
    seeds = [int(rng.randint(n))]
    closest = D[seeds[0]] ** 2
    for _ in range(1, k):
        total = float(closest.sum())
        if total > 0:
            candidates = np.searchsorted(np.cumsum(closest), rng.random_sample(trials) * total)
            candidates = np.minimum(candidates, n - 1)
        else:  # every face coincides with a seed: any face is as good as another
            candidates = rng.randint(n, size=trials)
        potentials = np.minimum(closest, D[candidates] ** 2)
        best = int(np.argmin(potentials.sum(axis=1)))
        seeds.append(int(candidates[best]))
        closest = potentials[best]
    return np.asarray(seeds)


def fused_kmeans(metric: FusedMetric, lam: float, rows: np.ndarray, D: np.ndarray, k: int, *,
                 groups: Sequence[np.ndarray] = (), n_init: int = DEFAULT_N_INIT, max_iter: int = 100,
                 tol: float = 1e-6, rng: np.random.RandomState | None = None) -> KMeansResult:
    """Stage 2 on the faces ``rows`` of ``metric`` (``D``: their fused matrix); the restart with least inertia."""
    rng = check_random_state(rng)
    best: KMeansResult | None = None
    for _ in range(n_init):
        result = _lloyd(metric, lam, rows, kmeans_plusplus(D, k, rng), groups, max_iter, tol)
        if best is None or result.inertia < best.inertia:
            best = result
    return best


def _lloyd(metric: FusedMetric, lam: float, rows: np.ndarray, seeds: np.ndarray, groups: Sequence[np.ndarray],
           max_iter: int, tol: float) -> KMeansResult:
    k = seeds.shape[0]
    centroids = metric.face_points(rows[seeds])
    labels = None
    inertia = np.inf
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is reported
        dist = metric.to_centroids(lam, centroids, rows)
        new = assign(dist, groups)
        new_inertia = float(dist[new >= 0, new[new >= 0]].sum())
        converged = (labels is not None and np.array_equal(new, labels)) or (
            abs(inertia - new_inertia) <= tol * max(new_inertia, 1e-300))
        labels, inertia = new, new_inertia
        if converged:
            break
        centroids = _update(metric, rows, labels, k, dist)
    else:  # out of iterations after an update: labels must match the final centroids
        dist = metric.to_centroids(lam, centroids, rows)
        labels = assign(dist, groups)
        inertia = float(dist[labels >= 0, labels[labels >= 0]].sum())
    return KMeansResult(labels=labels, centroids=centroids, inertia=inertia, n_iter=n_iter)


def _update(metric: FusedMetric, rows: np.ndarray, labels: np.ndarray, k: int,
            dist: np.ndarray) -> dict[str, np.ndarray]:
    """Per-block centroids; an emptied cluster moves to the face farthest from its own centroid (as sklearn does)."""
    centroids = metric.centroids(labels, k, rows)
    empty = np.flatnonzero(np.bincount(labels[labels >= 0], minlength=k) == 0)
    if empty.size:
        own = np.where(labels >= 0, dist[np.arange(labels.shape[0]), np.maximum(labels, 0)], -np.inf)
        far = np.argsort(-own, kind="stable")[:empty.size]
        far = np.resize(far, empty.size)
        for name, points in metric.face_points(rows[far]).items():
            centroids[name][empty] = points
    return centroids
