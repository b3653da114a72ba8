"""Exact fused distances without the n×n matrix: rows computed when read, a sampled silhouette, nearest centroids.

Why: the sparse path (:mod:`.graph`) and the review session need the dense path's quantities on more faces than
an n×n matrix allows; these compute them block by block (memory bounded by :data:`.knn.BLOCK_ELEMENTS`).
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix

from ..errors import MetricInputError
from ..fusion import FusedMetric, fuse, pose_weights
from ..metrics import silhouette_from_sums
from .knn import block_rows

#: Faces whose silhouette (against all partitioned faces) scores a candidate k; the same sample for every k.
SILHOUETTE_SAMPLE = 1_000
#: Seed of that sample: the auto-k criterion is a property of the data, not of the clustering run.
SILHOUETTE_SEED = 0


class FusedRows:
    """Rows of the fused matrix among the faces ``rows`` of ``metric``, computed when indexed.

    Stands in for the dense path's ``D_core`` where only rows are read (K-Means++ seeding, the silhouette
    sample). Same quantities as :attr:`FusedMetric.block_distances` / :meth:`FusedMetric.pairwise` (float32,
    self-distance exactly 0, an absent block contributes 0); Euclidean parts by the dot-product expansion, as
    :meth:`FusedMetric.to_centroids` computes them, so values match the dense matrix to float32 rounding.
    """

    def __init__(self, metric: FusedMetric, lam: float, rows: np.ndarray) -> None:
        self.metric, self.lam, self.rows = metric, float(lam), np.asarray(rows)
        self.shape = (self.rows.shape[0], self.rows.shape[0])
        kinds = metric.kinds
        self._terms = []  # (points among rows, their squared norms, kind, scale, weight)
        self._pose = None  # the rows' pose vectors when the 3D term's share varies per pair
        if metric.pose_weighted and self.lam < 1.0:
            self._pose = np.ascontiguousarray(metric.points_pose[self.rows])
        for points, scale, kind, weight in ((metric.points_2d, metric.scale_2d, kinds[0], self.lam),
                                            (metric.points_3d, metric.scale_3d, kinds[1], 1.0 - self.lam)):
            if points.shape[1] == 0 or (weight == 0.0 and self._pose is None):
                continue
            own = np.ascontiguousarray(points[self.rows])
            self._terms.append((own, np.einsum("ij,ij->i", own, own), kind, np.float32(scale), np.float32(weight)))

    def __getitem__(self, index: int | np.ndarray) -> np.ndarray:
        single = np.ndim(index) == 0
        picked = np.atleast_1d(np.asarray(index))
        out = np.empty((picked.shape[0], self.shape[1]), dtype=np.float32)
        step = block_rows(self.shape[1])
        for start in range(0, picked.shape[0], step):
            out[start:start + step] = self._block(picked[start:start + step])
        return out[0] if single else out

    def _block(self, picked: np.ndarray) -> np.ndarray:
        out = np.zeros((picked.shape[0], self.shape[1]), dtype=np.float32)
        if self._pose is not None:  # the terms are the 2D and the 3D one, in that order (pose_weighted: both)
            parts = [self._part(picked, *term[:4]) for term in self._terms]
            d2 = parts[0] if len(parts) == 2 else out
            return fuse(d2, parts[-1], self.lam,
                        pose_weights(self._pose[picked], self._pose, self.metric.pose_weighting))
        whole = self.lam in (0.0, 1.0)  # the dense path copies the one block then: no multiplication by 1
        for points, sq, kind, scale, weight in self._terms:
            d = self._part(picked, points, sq, kind, scale)
            if whole:
                out += d
            else:
                out += weight * d
        return out

    @staticmethod
    def _part(picked: np.ndarray, points: np.ndarray, sq: np.ndarray, kind: str, scale: np.float32) -> np.ndarray:
        """One term's normalised distances from the rows ``picked`` to every row."""
        d = points[picked] @ points.T
        if kind == "cosine":
            np.subtract(np.float32(1.0), d, out=d)
            np.clip(d, 0.0, 2.0, out=d)
        else:
            d *= np.float32(-2.0)
            d += sq[picked][:, None]
            d += sq[None, :]
            np.maximum(d, 0.0, out=d)
            if kind == "euclidean":
                np.sqrt(d, out=d)
        d[np.arange(picked.shape[0]), picked] = 0.0
        d /= scale
        return d


class SampledSilhouette:
    """Mean silhouette of a fixed sample of faces against ALL faces (noise, label −1, excluded), under ``rows``.

    With ``sample >= n`` it is exactly :func:`facecluster_widgets.metrics.silhouette`. The sample's rows
    (sample × n, float32) are computed once and reused for every labelling scored.
    """

    def __init__(self, rows: FusedRows, sample: int | None = None, seed: int = SILHOUETTE_SEED) -> None:
        n = rows.shape[0]
        sample = SILHOUETTE_SAMPLE if sample is None else sample  # read at call time: tests lower it
        self.rows = rows
        self.picked = (np.arange(n) if n <= sample else
                       np.sort(np.random.default_rng(seed).choice(n, sample, replace=False)))
        self._DT: np.ndarray | None = None

    @property
    def DT(self) -> np.ndarray:
        """(n, sample) distances, computed on the first score (a fit with a given k never needs them)."""
        if self._DT is None:
            self._DT = np.ascontiguousarray(self.rows[self.picked].T)  # sums per cluster = onehotᵀ @ DT
        return self._DT

    def __call__(self, labels: np.ndarray) -> float:
        labels = np.asarray(labels)
        keep = labels >= 0
        codes_all = np.full(labels.shape[0], -1)
        uniq, codes = np.unique(labels[keep], return_inverse=True)
        codes_all[keep] = codes
        k, n = uniq.shape[0], int(keep.sum())
        if not 2 <= k <= n - 1:
            raise MetricInputError(f"silhouette needs 2 <= clusters <= faces - 1 among non-noise faces, got {k} "
                                   f"clusters over {n} faces")
        onehot_t = csr_matrix((np.ones(n, dtype=np.float32), (codes, np.flatnonzero(keep))),
                              shape=(k, labels.shape[0]))
        mine = codes_all[self.picked]
        use = mine >= 0
        sums = np.asarray(onehot_t @ self.DT, dtype=np.float64).T[use]
        mine = mine[use]
        s = silhouette_from_sums(sums, np.bincount(codes, minlength=k), mine)
        return float(s.mean()) if s.size else 0.0


def nearest_centroids(metric: FusedMetric, lam: float, centroids: dict[str, np.ndarray],
                      rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid and its distance for each face of ``rows``, one block of faces at a time (memory O(block·k))."""
    labels = np.empty(rows.shape[0], dtype=np.int64)
    dist = np.empty(rows.shape[0])
    step = block_rows(centroids["2d"].shape[0])
    for start in range(0, rows.shape[0], step):
        block = metric.to_centroids(lam, centroids, rows[start:start + step])
        labels[start:start + step] = block.argmin(axis=1)
        dist[start:start + step] = block[np.arange(block.shape[0]), labels[start:start + step]]
    return labels, dist
