"""kNN graphs of the faces, one per modality, and their union holding both normalised block distances per edge.

Why: the sparse path of :class:`~facecluster_widgets.cluster.HybridClustering` (:mod:`.graph`) never holds an
n×n matrix. Each face's :data:`N_NEIGHBORS` nearest faces under the 2D term (Euclidean order on unit vectors =
cosine order) and under the 3D term (Euclidean on the whitened rows = Mahalanobis order) are exact (scikit-learn
brute force, chunked) up to :data:`EXACT_KNN_FACES` faces, then approximate: faiss's inverted-file index
(IVF-Flat, :func:`ivf_knn`), compiled code with no start-up cost (pynndescent's numba code compiled in every new
process). :class:`FusedGraph` keeps per edge the two block distances, so a new λ is one weighted sum.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state

from ..fusion import FusedMetric, fuse, pose_weights

log = logging.getLogger(__name__)

#: Nearest neighbours per modality. 15 is pynndescent's and UMAP's default; the union of both modalities' lists,
#: made symmetric, gives each face ~20-40 edges, above any sensible min_samples.
N_NEIGHBORS = 15
#: Up to this many faces the kNN lists are exact (scikit-learn brute force, chunked: O(n²·d) time, bounded memory,
#: seconds at this size); above, faiss IVF, since exact search grows with n² (timings in benchmarks/README.md).
EXACT_KNN_FACES = 10_000
#: IVF cells per √n (faiss's guideline is 4-16 √n): ~1,260 cells of ~80 faces at 100,000 faces.
IVF_LISTS_PER_SQRT_N = 4
#: Cells searched per query: full recall on identity-structured data, where neighbours mean something; half as many
#: probes lost recall clearly (``benchmarks/knn_recall.py``; README "Large collections" and benchmarks/README.md).
IVF_PROBES = 32
#: faiss wants ≥ 39 training points per cell (fewer cells below ~25,000 faces); more costs time for no gain.
IVF_MIN_TRAIN_PER_LIST = 39
IVF_TRAIN_PER_LIST = 50
#: Rows per block when distances to all faces or centroids are computed: bounds the memory of one block.
BLOCK_ELEMENTS = 8_000_000


def block_rows(n_cols: int) -> int:
    return max(1, BLOCK_ELEMENTS // max(n_cols, 1))


def knn_indices(points: np.ndarray, n_neighbors: int = N_NEIGHBORS,
                random_state: int | np.random.RandomState | None = 0) -> np.ndarray:
    """``(n, k)`` indices of each row's ``k = min(n_neighbors, n − 1)`` nearest OTHER rows, Euclidean.

    Exact up to :data:`EXACT_KNN_FACES` rows, faiss IVF above. A face's duplicate may come before the face
    itself in its list, so the face is removed wherever it appears (else the last neighbour is dropped).
    """
    n = points.shape[0]
    k = min(n_neighbors, n - 1)
    if k < 1 or points.shape[1] == 0:
        return np.zeros((n, 0), dtype=np.int64)
    if n <= EXACT_KNN_FACES:
        found = NearestNeighbors(n_neighbors=k + 1, algorithm="brute").fit(points).kneighbors(
            points, return_distance=False)
    else:
        found = ivf_knn(points, k + 1, random_state)
    found = np.asarray(found, dtype=np.int64)
    own = found == np.arange(n)[:, None]
    missing = ~own.any(axis=1)
    own[missing, -1] = True
    return found[~own].reshape(n, k)


def ivf_knn(points: np.ndarray, k: int, random_state: int | np.random.RandomState | None = 0) -> np.ndarray:
    """``(n, k)`` approximate nearest rows (each row's own index among them) from a faiss IVF-Flat index.

    The coarse quantiser is trained on a fixed-seed sample, so the same points give the same lists. A row whose
    probed cells hold fewer than ``k`` points (faiss pads with −1) is searched again exactly: rare, and never left
    with a short list.
    """
    import faiss  # a core dependency, imported only when a collection is this large

    x = np.ascontiguousarray(points, dtype=np.float32)
    n, d = x.shape
    n_lists = max(1, min(int(round(IVF_LISTS_PER_SQRT_N * math.sqrt(n))), n // IVF_MIN_TRAIN_PER_LIST))
    rng = check_random_state(random_state)
    train = x[np.sort(rng.choice(n, min(n, IVF_TRAIN_PER_LIST * n_lists), replace=False))]
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, n_lists)
    index.cp.seed = int(rng.randint(np.iinfo(np.int32).max))
    index.train(train)
    index.add(x)
    index.nprobe = min(IVF_PROBES, n_lists)
    found = index.search(x, k)[1]
    short = np.flatnonzero((found < 0).any(axis=1))
    if short.size:
        exact = faiss.IndexFlatL2(d)
        exact.add(x)
        found[short] = exact.search(x[short], k)[1]
    return found


def _edge_distances(points: np.ndarray, rows: np.ndarray, cols: np.ndarray, kind: str) -> np.ndarray:
    """Distances of the pairs ``(rows[e], cols[e])`` ("cosine" on unit rows, "euclidean", "sqeuclidean")."""
    out = np.empty(rows.shape[0], dtype=np.float32)
    step = block_rows(points.shape[1])
    for start in range(0, rows.shape[0], step):
        a, b = points[rows[start:start + step]], points[cols[start:start + step]]
        if kind == "cosine":
            d = 1.0 - np.einsum("ij,ij->i", a, b)
            np.clip(d, 0.0, 2.0, out=d)
        else:
            diff = a - b
            d = np.einsum("ij,ij->i", diff, diff)
            if kind == "euclidean":
                np.sqrt(d, out=d)
        out[start:start + step] = d
    return out


@dataclass(frozen=True, eq=False)
class FusedGraph:
    """Symmetric kNN edges of the faces (both modalities' lists, diagonal included) and, per edge, the two
    normalised block distances (and, with pose weighting, the pair's weight ``w``: :mod:`~facecluster_widgets.fusion`);
    :meth:`fused` weights them for a λ. Built once per fit, reused by every refit."""

    n_faces: int
    indptr: np.ndarray
    indices: np.ndarray
    d2: np.ndarray
    d3: np.ndarray
    n_neighbors: int
    w: np.ndarray | None = None

    @classmethod
    def build(cls, metric: FusedMetric, n_neighbors: int = N_NEIGHBORS,
              random_state: int | np.random.RandomState | None = 0) -> FusedGraph:
        n = metric.n_faces
        lists = [knn_indices(points, n_neighbors, random_state)
                 for points, present in ((metric.points_2d, metric.has_2d), (metric.points_3d, metric.has_3d))
                 if present]
        lists.append(np.arange(n)[:, None])  # the diagonal: a face is its own neighbour
        rows = np.concatenate([np.repeat(np.arange(n), nb.shape[1]) for nb in lists])
        cols = np.concatenate([nb.ravel() for nb in lists])
        pattern = csr_matrix((np.ones(2 * rows.shape[0], dtype=np.float32),
                              (np.concatenate([rows, cols]), np.concatenate([cols, rows]))), shape=(n, n))
        pattern.sum_duplicates()
        pattern.sort_indices()
        edge_rows = np.repeat(np.arange(n), np.diff(pattern.indptr))
        kinds = metric.kinds
        blocks = []
        for points, scale, kind in ((metric.points_2d, metric.scale_2d, kinds[0]),
                                    (metric.points_3d, metric.scale_3d, kinds[1])):
            if points.shape[1] == 0:
                blocks.append(np.zeros(pattern.indices.shape[0], dtype=np.float32))
            else:
                d = _edge_distances(points, edge_rows, pattern.indices, kind)
                d[edge_rows == pattern.indices] = 0.0
                d /= np.float32(scale)
                blocks.append(d)
        w = None
        if metric.pose_weighted:
            w = pose_weights(metric.points_pose[edge_rows], metric.points_pose[pattern.indices],
                             metric.pose_weighting, paired=True)
        log.debug("fused kNN graph: %d faces, %d stored entries", n, pattern.indices.shape[0])
        return cls(n_faces=n, indptr=pattern.indptr, indices=pattern.indices, d2=blocks[0], d3=blocks[1],
                   n_neighbors=n_neighbors, w=w)

    @property
    def n_edges(self) -> int:
        return int(self.indices.shape[0])

    def fused(self, lam: float) -> csr_matrix:
        """The fused distances on the graph's edges for weight ``lam`` (float32 CSR, explicit zeros kept)."""
        data = fuse(self.d2, self.d3, lam, self.w)
        return csr_matrix((data, self.indices.copy(), self.indptr.copy()), shape=(self.n_faces, self.n_faces))


def truncated_share(graph: csr_matrix, eps: float) -> float:
    """Share of faces whose farthest stored neighbour is within ``eps``: their eps-neighbourhood may extend past
    the kNN lists, so DBSCAN may under-count their density (raise N_NEIGHBORS or lower eps if this is large)."""
    if graph.shape[0] == 0:
        return 0.0
    counts = np.diff(graph.indptr)
    has = counts > 0
    far = np.zeros(graph.shape[0], dtype=np.float32)
    far[has] = np.maximum.reduceat(graph.data, graph.indptr[:-1][has])
    return float(np.mean(has & (far <= eps)))
