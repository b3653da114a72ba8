"""Stage 2's K-Means on the fused kNN graph (the sparse path's *graph* regime, see :mod:`.graph`).

Why: above :data:`.graph.EXACT_KMEANS_FACES` faces even O(n·k) distances per Lloyd step are too slow; a face's
nearest centroid is, in practice, the centroid of one of its nearest faces, so seeding and assignment look at
graph neighbours only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from ..fusion import FusedMetric, pose_weights
from . import kmeans
from .knn import block_rows
from .rows import FusedRows, nearest_centroids

#: The graph regime's Lloyd iterations also stop once at most this share of the faces changed cluster.
GRAPH_CHANGED_SHARE = 1e-3
#: Faces per block of the seeding's two-level draw (see :class:`GraphSeeder`).
SEED_BLOCK = 512


class GraphSeeder:
    """Greedy D² sampling (``2 + ln k`` candidates per seed, as sklearn's K-Means++) on the fused graph: a new seed
    lowers the potential of its graph neighbours only (edge weights = fused distances; ``first_row`` holds the
    exact distances from the first seed to every face). Faces beyond a seed's kNN keep an over-estimate, so they
    stay likelier to be drawn, which is what D² sampling wants of faces far from every seed.

    K-Means++ is sequential, so the first k seeds of a longer sequence are a K-Means++ seeding for k: one
    sequence, extended on demand, seeds every k of an auto-k sweep (:meth:`first`). Draws go through per-block
    sums of the potential (blocks of :data:`SEED_BLOCK` faces), so a seed costs O(n / block + block + degree)."""

    def __init__(self, graph: csr_matrix, first_row: np.ndarray, first: int, rng: np.random.RandomState,
                 k_hint: int = 2) -> None:
        self.indptr, self.indices = graph.indptr, graph.indices
        self.sq = graph.data.astype(np.float64) ** 2
        self.closest = first_row.astype(np.float64) ** 2
        self.closest[first] = 0.0
        n = self.closest.shape[0]
        self.padded = np.zeros(-(-n // SEED_BLOCK) * SEED_BLOCK)
        self.padded[:n] = self.closest
        self.closest = self.padded[:n]  # a view: block sums read the padded array
        self.block_sums = self.padded.reshape(-1, SEED_BLOCK).sum(axis=1)
        self.seeds = [first]
        self.rng = rng
        self.k_hint = k_hint

    def _draw(self, count: int) -> np.ndarray:
        """``count`` faces drawn with probability proportional to their potential."""
        n = self.closest.shape[0]
        block_cum = np.cumsum(self.block_sums)
        total = block_cum[-1]
        if total <= 0:  # every face coincides with a seed: any face is as good as another
            return self.rng.randint(n, size=count)
        targets = self.rng.random_sample(count) * total
        blocks = np.minimum(np.searchsorted(block_cum, targets), self.block_sums.shape[0] - 1)
        inner = np.cumsum(self.padded.reshape(-1, SEED_BLOCK)[blocks], axis=1)  # (count, block)
        before = np.where(blocks > 0, block_cum[np.maximum(blocks - 1, 0)], 0.0)
        offset = np.minimum((inner < (targets - before)[:, None]).sum(axis=1), SEED_BLOCK - 1)
        return np.minimum(blocks * SEED_BLOCK + offset, n - 1)

    def first(self, k: int) -> np.ndarray:
        """The first ``k`` seeds of the sequence (extending it when needed)."""
        trials = 2 + int(math.log(max(k, self.k_hint)))
        closest, indptr, indices, sq = self.closest, self.indptr, self.indices, self.sq
        while len(self.seeds) < k:
            if len(self.seeds) % 1024 == 0:  # float drift of the running block sums: recompute them now and then
                self.block_sums = self.padded.reshape(-1, SEED_BLOCK).sum(axis=1)
            candidates = self._draw(trials)
            lengths = indptr[candidates + 1] - indptr[candidates]
            owner = np.repeat(np.arange(trials), lengths)
            edge = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
            edge += np.repeat(indptr[candidates], lengths)
            nb = indices[edge]
            # The graph holds the diagonal, so a candidate's own potential is among its neighbours' drops.
            gains = np.bincount(owner, np.maximum(closest[nb] - sq[edge], 0.0), minlength=trials)
            best = int(np.argmax(gains))
            c = int(candidates[best])
            mine = edge[owner == best]
            nb = indices[mine]
            drop = np.maximum(closest[nb] - sq[mine], 0.0)
            closest[nb] -= drop  # = min(closest, d²)
            np.subtract.at(self.block_sums, nb // SEED_BLOCK, drop)
            rest, closest[c] = closest[c], 0.0
            self.block_sums[c // SEED_BLOCK] -= rest
            self.seeds.append(c)
        return np.asarray(self.seeds[:k])


def _scatter_codes(mask: np.ndarray, codes: np.ndarray) -> np.ndarray:
    out = np.full(mask.shape[0], -1, dtype=np.int64)
    out[mask] = codes
    return out


def _points_nearest(metric: FusedMetric, lam: float, points: dict[str, np.ndarray],
                    centroids: dict[str, np.ndarray]) -> np.ndarray:
    """Nearest centroid of each point given in the fused spaces (``{"2d", "3d"}`` rows), measured as
    :meth:`FusedMetric.to_centroids` measures faces."""
    kinds = metric.kinds
    m = points["2d"].shape[0]
    out = np.empty(m, dtype=np.int64)
    step = block_rows(centroids["2d"].shape[0])
    weighted = metric.pose_weighted and lam < 1.0
    for start in range(0, m, step):
        parts = []
        for name, scale, kind, weight in (("2d", metric.scale_2d, kinds[0], lam), ("3d", metric.scale_3d, kinds[1],
                                                                                     1.0 - lam)):
            a, c = points[name][start:start + step], centroids[name]
            if a.shape[1] == 0 or (weight == 0.0 and not weighted):
                parts.append(0.0)
                continue
            if kind == "cosine":
                d = np.clip(1.0 - a @ c.T, 0.0, 2.0)
            else:
                d = np.maximum(np.einsum("ij,ij->i", a, a)[:, None] - 2.0 * (a @ c.T)
                               + np.einsum("ij,ij->i", c, c)[None, :], 0.0)
                if kind == "euclidean":
                    d = np.sqrt(d)
            parts.append(d / scale)
        if weighted:
            share = np.minimum((1.0 - lam) * pose_weights(points["pose"][start:start + step], centroids["pose"],
                                                          metric.pose_weighting), 1.0)
            dist = parts[0] + share * (np.asarray(parts[1]) - parts[0])
        else:
            dist = lam * parts[0] + (1.0 - lam) * parts[1]
        rows = min(step, m - start)
        out[start:start + step] = np.argmin(np.broadcast_to(dist, (rows, centroids["2d"].shape[0])), axis=1)
    return out


@dataclass
class GraphKMeans:
    """Stage 2 on the faces ``rows`` of ``metric`` (graph: the fused kNN graph among them): the graph regime."""

    metric: FusedMetric
    lam: float
    rows: np.ndarray
    graph: csr_matrix
    groups: Sequence[np.ndarray] = ()
    max_iter: int = 100
    tol: float = 1e-6
    exact_rows: FusedRows | None = None
    _components: np.ndarray | None = field(default=None, init=False, repr=False)

    def seeder(self, rng: np.random.RandomState, k_hint: int = 2) -> GraphSeeder:
        if self.exact_rows is None:
            self.exact_rows = FusedRows(self.metric, self.lam, self.rows)
        first = int(rng.randint(self.rows.shape[0]))
        return GraphSeeder(self.graph, self.exact_rows[first], first, rng, k_hint)

    def fit(self, k: int, n_init: int, rng: np.random.RandomState) -> kmeans.KMeansResult:
        """The restart with the least inertia among ``n_init`` seedings."""
        best = None
        for _ in range(n_init):
            result = self.lloyd(self.seeder(rng, k).first(k))
            if best is None or result.inertia < best.inertia:
                best = result
        return best

    def lloyd(self, seeds: np.ndarray) -> kmeans.KMeansResult:
        """Lloyd's iterations from ``seeds`` (faces), candidates restricted as the module docstring says."""
        k, m = seeds.shape[0], self.metric
        centroids = m.face_points(self.rows[seeds])
        labels = self._initial(seeds, centroids)
        own = None
        inertia, n_iter = np.inf, 0
        for n_iter in range(1, self.max_iter + 1):  # noqa: B007 - n_iter is reported
            centroids = self._update(labels, k, own)
            new, own = self._assign(labels, centroids)
            new_inertia = float(own[new >= 0].sum())
            changed = int(np.count_nonzero(new != labels))
            converged = (changed <= GRAPH_CHANGED_SHARE * labels.shape[0]
                         or abs(inertia - new_inertia) <= self.tol * max(new_inertia, 1e-300))
            labels, inertia = new, new_inertia
            if converged:
                break
        return kmeans.KMeansResult(labels=labels, centroids=centroids, inertia=inertia, n_iter=n_iter)

    def _initial(self, seeds: np.ndarray, centroids: dict[str, np.ndarray]) -> np.ndarray:
        """Each face's graph-nearest seed (multi-source Dijkstra). A graph component holding no seed (with fewer
        seeds than identities, most do not) goes whole to the seed nearest to its mean: one distance row per
        component, not per face; Lloyd's steps then move its faces only towards neighbouring clusters."""
        _, _, sources = dijkstra(self.graph, directed=False, indices=seeds, min_only=True,
                                 return_predecessors=True)
        seed_label = np.full(self.rows.shape[0], -1, dtype=np.int64)
        seed_label[seeds] = np.arange(seeds.shape[0])
        labels = np.where(sources >= 0, seed_label[np.maximum(sources, 0)], -1)
        lost = labels < 0
        if lost.any():
            if self._components is None:
                self._components = connected_components(self.graph, directed=False)[1]
            codes, comp = np.unique(self._components[lost], return_inverse=True)
            means = self.metric.centroids(_scatter_codes(lost, comp), codes.size, self.rows)
            labels[lost] = _points_nearest(self.metric, self.lam, means, centroids)[comp]
        return self._constrain(labels, centroids)

    def _update(self, labels: np.ndarray, k: int, own: np.ndarray | None) -> dict[str, np.ndarray]:
        """Per-block centroids. An emptied cluster moves to the face farthest from its own centroid (as the dense
        path does) and that face joins it, so its neighbours see it as a candidate. ``labels`` is updated."""
        centroids = self.metric.centroids(labels, k, self.rows)
        empty = np.flatnonzero(np.bincount(labels[labels >= 0], minlength=k) == 0)
        if empty.size:
            if own is None:
                member = np.flatnonzero(labels >= 0)
                own = np.full(labels.shape[0], -np.inf)
                own[member] = self._pair_distances(member, labels[member], centroids)
            own = np.where(labels >= 0, own, -np.inf)
            far = np.resize(np.argsort(-own, kind="stable")[:empty.size], empty.size)
            for name, points in self.metric.face_points(self.rows[far]).items():
                centroids[name][empty] = points
            labels[far] = empty
        return centroids

    def _assign(self, labels: np.ndarray, centroids: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Nearest among the candidate centroids (own cluster and graph neighbours' clusters), then cannot-link."""
        n, k = self.rows.shape[0], centroids["2d"].shape[0]
        g = self.graph
        member = labels >= 0
        onehot = csr_matrix((np.ones(int(member.sum()), dtype=np.float32),
                             (np.flatnonzero(member), labels[member])), shape=(n, k))
        pattern = csr_matrix((np.ones(g.indices.shape[0], dtype=np.float32), g.indices, g.indptr),
                             shape=(n, n)) @ onehot  # the graph includes the diagonal: own cluster included
        pattern.sort_indices()
        counts = np.diff(pattern.indptr)
        face = np.repeat(np.arange(n), counts)
        dist = self._pair_distances(face, pattern.indices, centroids)
        new = np.full(n, -1, dtype=np.int64)
        own = np.full(n, np.inf)
        has = counts > 0
        starts = pattern.indptr[:-1][has]
        own[has] = np.minimum.reduceat(dist, starts)
        first = np.flatnonzero(dist == own[face])
        lead = np.r_[True, np.diff(face[first]) != 0]  # the first minimum of each face (pattern rows are sorted)
        new[face[first[lead]]] = pattern.indices[first[lead]]
        lost = np.flatnonzero(~has)
        if lost.size:
            new[lost], own[lost] = nearest_centroids(self.metric, self.lam, centroids, self.rows[lost])
        new = self._constrain(new, centroids, own)
        return new, own

    def _pair_distances(self, face: np.ndarray, cluster: np.ndarray, centroids: dict[str, np.ndarray]) -> np.ndarray:
        """Fused distance of each face ``face[e]`` to the centroid ``cluster[e]`` (as ``to_centroids``)."""
        m, lam = self.metric, self.lam
        out = np.zeros(face.shape[0])
        kinds = m.kinds
        share = None
        if m.pose_weighted and lam < 1.0:  # the 3D term's per-pair share replaces 1 − λ (fusion's docstring)
            share = np.minimum((1.0 - lam) * pose_weights(m.points_pose[self.rows[face]],
                                                          centroids["pose"][cluster], m.pose_weighting,
                                                          paired=True), 1.0)
        for is_3d, points, cents, scale, kind, weight in (
                (False, m.points_2d, centroids["2d"], m.scale_2d, kinds[0], lam),
                (True, m.points_3d, centroids["3d"], m.scale_3d, kinds[1], 1.0 - lam)):
            if points.shape[1] == 0 or (weight == 0.0 and share is None):
                continue
            step = block_rows(points.shape[1])
            for start in range(0, face.shape[0], step):
                a = points[self.rows[face[start:start + step]]]
                b = cents[cluster[start:start + step]].astype(np.float32, copy=False)
                if kind == "cosine":
                    d = np.clip(1.0 - np.einsum("ij,ij->i", a, b), 0.0, 2.0)
                else:
                    diff = a - b
                    d = np.einsum("ij,ij->i", diff, diff)
                    if kind == "euclidean":
                        d = np.sqrt(d)
                factor = weight
                if share is not None:
                    factor = share[start:start + step] if is_3d else 1.0 - share[start:start + step]
                out[start:start + step] += (factor / scale) * d
        return out

    def _constrain(self, labels: np.ndarray, centroids: dict[str, np.ndarray],
                   own: np.ndarray | None = None) -> np.ndarray:
        """Cannot-link: a photo whose faces collide is assigned jointly on exact distances to every centroid."""
        for members in self.groups:
            chosen = labels[members]
            if np.unique(chosen).shape[0] == chosen.shape[0] and (chosen >= 0).all():
                continue
            dist = self.metric.to_centroids(self.lam, centroids, self.rows[members])
            labels[members] = kmeans.assign(dist, [np.arange(members.shape[0])])
            if own is not None:
                ok = labels[members] >= 0
                own[members] = np.where(ok, dist[np.arange(members.shape[0]), np.maximum(labels[members], 0)],
                                        np.inf)
        return labels
