"""The sparse path of :class:`~facecluster_widgets.cluster.HybridClustering`: the same method with no n×n matrix.

Why: the dense path keeps three n×n float32 matrices (100,000 faces would need ~112 GiB). Above
:data:`AUTO_SPARSE_FACES` faces (``algorithm="auto"``), or always with ``algorithm="sparse"``:

1. **kNN graphs, one per modality** (:func:`knn_indices`): each face's :data:`N_NEIGHBORS` nearest faces under the
   2D term (Euclidean order on unit vectors = cosine order) and under the 3D term (Euclidean on the whitened rows
   = Mahalanobis order). Exact (scikit-learn brute force, chunked) up to :data:`EXACT_KNN_FACES` faces, then
   approximate: faiss's inverted-file index (IVF-Flat, :func:`ivf_knn`), compiled code with no start-up cost.
   pynndescent was used before: same recall on our synthetic data, but its numba code compiled for ~33 s in every
   new Python process, half the 100,000-face budget.
2. **Fused graph** (:class:`FusedGraph`): the union of both modalities' edges, made symmetric, each edge holding
   its two normalised block distances (same ``s2``/``s3`` median scaling as :class:`~facecluster_widgets.fusion.
   FusedMetric`, whose medians already come from a fixed 2,000-face sample), so a new λ is one weighted sum over
   the edges. The diagonal is stored (explicit zeros): a face is its own neighbour, as in the dense matrix.
3. **DBSCAN** on that sparse matrix (scikit-learn, ``metric="precomputed"``): exact for every pair the graph
   holds. A pair missing from both kNN lists counts as farther than eps; ``sparse_truncated_`` is the share of
   faces whose farthest graph neighbour is still within eps (their neighbourhood may be cut short).
4. **Stage 2 without n×n**, in one of two regimes chosen by the number of faces DBSCAN kept:

   * *exact* (up to :data:`EXACT_KMEANS_FACES`): the dense path's own K-Means++ and Lloyd code, fed the fused
     rows on demand (:class:`FusedRows`; seeding reads ``2 + ln k`` rows per seed) and face-to-centroid
     distances (memory O(n·k), at most 2,000 × 1,000). With the same ``random_state`` it picks the same seeds
     as the dense path, so both paths give the same labels wherever their DBSCAN agrees.
   * *graph* (more faces): K-Means++ seeding whose potential is updated on the chosen seed's graph neighbours only
     (:class:`GraphSeeder`; one sequence seeds every k of the sweep), faces start at their graph-nearest seed
     (multi-source Dijkstra), and each Lloyd step compares a face with the centroids of its own and its graph
     neighbours' clusters only (a face's nearest centroid is, in practice, the centroid of one of its nearest
     faces). Memory O(edges + n·d). It stops when labels stop changing, the inertia changes by at most ``tol``
     relative, or at most :data:`GRAPH_CHANGED_SHARE` of the faces changed cluster (clusters grow by graph hops,
     so the last few boundary faces can take many cheap but useless iterations).
     Cannot-link is enforced as in the dense path: a photo whose faces collide is assigned jointly
     (``linear_sum_assignment``) on exact distances to every centroid.

   auto-k scores each candidate k by the silhouette of :data:`SILHOUETTE_SAMPLE` faces (a fixed-seed sample)
   against ALL partitioned faces (:class:`SampledSilhouette`): the exact silhouette of those faces, so an
   unbiased estimate of the mean; with at most that many faces it is the exact silhouette. The same sample
   scores every k, so the comparison between k is paired. The candidate k are the dense path's (its grids);
   in the graph regime the sweep stops after :data:`GRAPH_SWEEP_RUNS` K-Means runs, and one K-Means++ sequence
   seeds them all (:class:`GraphSeeder`).

What a refit reuses: the kNN graphs and per-edge block distances (:class:`FusedGraph`), so λ costs one weighted
sum over the edges and eps/min_samples only DBSCAN and stage 2.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state

from ..errors import FeatureInputError, MetricInputError
from ..fusion import FusedMetric
from ..metrics import silhouette_from_sums
from . import kmeans

log = logging.getLogger(__name__)

#: ``algorithm="auto"`` takes the sparse path above this many faces with complete features. Measured with
#: ``benchmarks/run.py`` (synthetic, 20 faces per identity, 2 cores): at 6,000 faces dense 43 s / 1.0 GB vs
#: sparse 5 s / 0.15 GB, at 10,000 dense 157 s / 2.8 GB vs sparse 5.6 s / 0.2 GB, both ARI 1.000 against the
#: truth; on the shared datasets (≤ 1,400 faces) the dense path is the faster one and the labels are the same.
AUTO_SPARSE_FACES = 5_000
#: Nearest neighbours per modality. 15 is pynndescent's and UMAP's default; the union of both modalities' lists,
#: made symmetric, gives each face ~20-40 edges, above any sensible min_samples.
N_NEIGHBORS = 15
#: Up to this many faces the kNN lists are exact (scikit-learn brute force, chunked: O(n²·d) time, bounded memory,
#: ~3 s for 10,000 faces on 2 cores); above, faiss IVF (exact brute force would take ~58 s at 100,000 faces).
EXACT_KNN_FACES = 10_000
#: IVF cells per √n (faiss's guideline is 4-16 √n): ~1,260 cells of ~80 faces at 100,000 faces.
IVF_LISTS_PER_SQRT_N = 4
#: Cells searched per query. ``benchmarks/knn_recall.py`` at 100,000 synthetic faces, 2 cores: identity-structured
#: data (20 faces per identity, as in run.py) recall@15 = 1.000 in 6.1 s (2D) / 5.7 s (3D); near-structureless data
#: (5 per identity, noise 1.0: a face's own identity ~0.5 cosine away) recall@5 0.48 (2D) / 0.90 (3D), where
#: neighbours barely mean anything. 16 probes (half the scan) reached 0.83 instead of 0.95 recall on random 16-D points.
IVF_PROBES = 32
#: faiss wants ≥ 39 training points per cell (fewer cells below ~25,000 faces); more costs time for no gain.
IVF_MIN_TRAIN_PER_LIST = 39
IVF_TRAIN_PER_LIST = 50
#: Stage 2 runs the dense path's exact K-Means (every face against every centroid, O(n·k) memory) while DBSCAN
#: kept at most this many faces (the shared datasets: 100-1,400), the graph-restricted K-Means above.
EXACT_KMEANS_FACES = 2_000
#: The graph regime's Lloyd iterations also stop once at most this share of the faces changed cluster.
GRAPH_CHANGED_SHARE = 1e-3
#: Faces whose silhouette (against all partitioned faces) scores a candidate k; the same sample for every k.
SILHOUETTE_SAMPLE = 1_000
#: Seed of that sample: the auto-k criterion is a property of the data, not of the clustering run.
SILHOUETTE_SEED = 0
#: In the graph regime the auto-k sweep stops after this many K-Means runs (coarse-to-fine refinement).
GRAPH_SWEEP_RUNS = 40
#: Rows per block when distances to all faces or centroids are computed: bounds the memory of one block.
BLOCK_ELEMENTS = 8_000_000
#: Faces per block of the seeding's two-level draw (see :class:`GraphSeeder`).
SEED_BLOCK = 512
#: The two values of ``HybridClustering(algorithm=...)`` besides "auto".
ALGORITHMS = ("dense", "sparse")


def choose_algorithm(algorithm: str, n_valid: int) -> str:
    """"dense" or "sparse" for ``n_valid`` faces with complete features."""
    if algorithm == "auto":
        return "sparse" if n_valid > AUTO_SPARSE_FACES else "dense"
    if algorithm not in ALGORITHMS:
        raise FeatureInputError(f"algorithm must be 'auto', 'dense' or 'sparse', got {algorithm!r}")
    return algorithm


def _block_rows(n_cols: int) -> int:
    return max(1, BLOCK_ELEMENTS // max(n_cols, 1))


# ---------------------------------------------------------------- kNN graphs


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
    step = _block_rows(points.shape[1])
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
    normalised block distances; :meth:`fused` weights them for a λ. Built once per fit, reused by every refit."""

    n_faces: int
    indptr: np.ndarray
    indices: np.ndarray
    d2: np.ndarray
    d3: np.ndarray
    n_neighbors: int

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
        kinds = ("cosine", "euclidean") if metric.fusion == "metric" else ("sqeuclidean", "sqeuclidean")
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
        log.debug("fused kNN graph: %d faces, %d stored entries", n, pattern.indices.shape[0])
        return cls(n_faces=n, indptr=pattern.indptr, indices=pattern.indices, d2=blocks[0], d3=blocks[1],
                   n_neighbors=n_neighbors)

    @property
    def n_edges(self) -> int:
        return int(self.indices.shape[0])

    def fused(self, lam: float) -> csr_matrix:
        """The fused distances on the graph's edges for weight ``lam`` (float32 CSR, explicit zeros kept)."""
        if lam == 1.0:
            data = self.d2.copy()
        elif lam == 0.0:
            data = self.d3.copy()
        else:
            data = self.d2 * np.float32(lam)
            data += np.float32(1.0 - lam) * self.d3
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


# ---------------------------------------------------------------- exact rows on demand


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
        kinds = ("cosine", "euclidean") if metric.fusion == "metric" else ("sqeuclidean", "sqeuclidean")
        self._terms = []  # (points among rows, their squared norms, kind, weight / scale)
        for points, scale, kind, weight in ((metric.points_2d, metric.scale_2d, kinds[0], self.lam),
                                            (metric.points_3d, metric.scale_3d, kinds[1], 1.0 - self.lam)):
            if points.shape[1] == 0 or weight == 0.0:
                continue
            own = np.ascontiguousarray(points[self.rows])
            self._terms.append((own, np.einsum("ij,ij->i", own, own), kind, np.float32(scale), np.float32(weight)))

    def __getitem__(self, index: int | np.ndarray) -> np.ndarray:
        single = np.ndim(index) == 0
        picked = np.atleast_1d(np.asarray(index))
        out = np.empty((picked.shape[0], self.shape[1]), dtype=np.float32)
        step = _block_rows(self.shape[1])
        for start in range(0, picked.shape[0], step):
            out[start:start + step] = self._block(picked[start:start + step])
        return out[0] if single else out

    def _block(self, picked: np.ndarray) -> np.ndarray:
        out = np.zeros((picked.shape[0], self.shape[1]), dtype=np.float32)
        whole = self.lam in (0.0, 1.0)  # the dense path copies the one block then: no multiplication by 1
        for points, sq, kind, scale, weight in self._terms:
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
            if whole:
                out += d
            else:
                out += weight * d
        return out


class SampledSilhouette:
    """Mean silhouette of a fixed sample of faces against ALL faces (noise, label −1, excluded), under ``rows``.

    With ``sample >= n`` it is exactly :func:`facecluster_widgets.metrics.silhouette`. The sample's rows
    (sample × n, float32) are computed once and reused for every labelling scored.
    """

    def __init__(self, rows: FusedRows, sample: int = SILHOUETTE_SAMPLE, seed: int = SILHOUETTE_SEED) -> None:
        n = rows.shape[0]
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


# ---------------------------------------------------------------- stage 2 without n×n


def nearest_centroids(metric: FusedMetric, lam: float, centroids: dict[str, np.ndarray],
                      rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid and its distance for each face of ``rows``, one block of faces at a time (memory O(block·k))."""
    labels = np.empty(rows.shape[0], dtype=np.int64)
    dist = np.empty(rows.shape[0])
    step = _block_rows(centroids["2d"].shape[0])
    for start in range(0, rows.shape[0], step):
        block = metric.to_centroids(lam, centroids, rows[start:start + step])
        labels[start:start + step] = block.argmin(axis=1)
        dist[start:start + step] = block[np.arange(block.shape[0]), labels[start:start + step]]
    return labels, dist


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
    kinds = ("cosine", "euclidean") if metric.fusion == "metric" else ("sqeuclidean", "sqeuclidean")
    m = points["2d"].shape[0]
    out = np.empty(m, dtype=np.int64)
    step = _block_rows(centroids["2d"].shape[0])
    for start in range(0, m, step):
        dist = 0.0
        for name, scale, kind, weight in (("2d", metric.scale_2d, kinds[0], lam), ("3d", metric.scale_3d, kinds[1],
                                                                                     1.0 - lam)):
            a, c = points[name][start:start + step], centroids[name]
            if a.shape[1] == 0 or weight == 0.0:
                continue
            if kind == "cosine":
                d = np.clip(1.0 - a @ c.T, 0.0, 2.0)
            else:
                d = np.maximum(np.einsum("ij,ij->i", a, a)[:, None] - 2.0 * (a @ c.T)
                               + np.einsum("ij,ij->i", c, c)[None, :], 0.0)
                if kind == "euclidean":
                    d = np.sqrt(d)
            dist = dist + (weight / scale) * d
        out[start:start + step] = np.argmin(dist, axis=1)
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
        centroids = {"2d": m.points_2d[self.rows[seeds]].copy(), "3d": m.points_3d[self.rows[seeds]].copy()}
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
            centroids["2d"][empty] = self.metric.points_2d[self.rows[far]]
            centroids["3d"][empty] = self.metric.points_3d[self.rows[far]]
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
        kinds = ("cosine", "euclidean") if m.fusion == "metric" else ("sqeuclidean", "sqeuclidean")
        for points, cents, scale, kind, weight in ((m.points_2d, centroids["2d"], m.scale_2d, kinds[0], lam),
                                                   (m.points_3d, centroids["3d"], m.scale_3d, kinds[1], 1.0 - lam)):
            if points.shape[1] == 0 or weight == 0.0:
                continue
            step = _block_rows(points.shape[1])
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
                out[start:start + step] += (weight / scale) * d
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


@dataclass
class Stage2:
    """What :class:`HybridClustering`'s stage 2 needs: ``run(k, n_init)`` (a K-Means result), ``score(labels)``
    (the auto-k silhouette), ``max_runs`` (a cap on the auto-k sweep; None: none) and ``sweep_run(k)`` (one
    K-Means run per candidate k of the sweep; None: ``run(k, 1)``). ``regimes`` collects which K-Means ran
    ("exact" / "graph"; empty on the dense path)."""

    run: Callable[[int, int], kmeans.KMeansResult]
    score: Callable[[np.ndarray], float]
    max_runs: int | None
    sweep_run: Callable[[int], kmeans.KMeansResult] | None = None
    regimes: set[str] = field(default_factory=set)


def sparse_stage2(metric: FusedMetric, lam: float, core: np.ndarray, fused: csr_matrix,
                  groups: Sequence[np.ndarray], rng: np.random.RandomState, max_iter: int, tol: float) -> Stage2:
    """Stage 2 for the faces ``core`` (positions among the graph's faces): the exact regime up to
    :data:`EXACT_KMEANS_FACES` faces, the graph regime above (module docstring)."""
    rows = FusedRows(metric, lam, core)
    k_top = max(2, core.shape[0] // kmeans.AUTO_K_MAX_SHARE)  # the largest k auto-k may score
    cache: dict[str, object] = {}

    def exact(k: int) -> bool:
        small = core.shape[0] <= EXACT_KMEANS_FACES
        stage.regimes.add("exact" if small else "graph")
        return small

    def engine() -> GraphKMeans:
        if "engine" not in cache:
            cache["engine"] = GraphKMeans(metric, lam, core, fused[core][:, core], groups, max_iter, tol, rows)
        return cache["engine"]

    def run(k: int, n_init: int) -> kmeans.KMeansResult:
        if exact(k):
            return kmeans.fused_kmeans(metric, lam, core, rows, k, groups=groups, n_init=n_init, max_iter=max_iter,
                                       tol=tol, rng=rng)
        return engine().fit(k, n_init, rng)

    def sweep_run(k: int) -> kmeans.KMeansResult:
        if exact(k):
            return run(k, 1)
        if "seeder" not in cache:
            cache["seeder"] = engine().seeder(rng, k_top)
        return engine().lloyd(cache["seeder"].first(k))

    large = core.shape[0] > EXACT_KMEANS_FACES
    stage = Stage2(run, SampledSilhouette(rows), GRAPH_SWEEP_RUNS if large else None, sweep_run)
    return stage


def assign_noise(metric: FusedMetric, lam: float, centroids: dict[str, np.ndarray], noise_pos: np.ndarray,
                 noise_groups: Sequence[np.ndarray], forbidden_for: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """noise="assign" without an (n_noise × k) matrix: faces alone in their photo go to their nearest centroid
    block by block; faces sharing a photo (``noise_groups``: positions into ``noise_pos``) are assigned as the
    dense path does: jointly per photo, clusters taken by the photo's partitioned faces forbidden
    (``forbidden_for(positions)`` gives those rows)."""
    labels = np.full(noise_pos.shape[0], -1, dtype=np.int64)
    grouped = np.concatenate(noise_groups) if noise_groups else np.zeros(0, dtype=np.int64)
    alone = np.setdiff1d(np.arange(noise_pos.shape[0]), grouped)
    if alone.size:
        labels[alone] = nearest_centroids(metric, lam, centroids, noise_pos[alone])[0]
    if grouped.size:
        dist = metric.to_centroids(lam, centroids, noise_pos[grouped])
        where = np.empty(noise_pos.shape[0], dtype=np.int64)
        where[grouped] = np.arange(grouped.shape[0])
        labels[grouped] = kmeans.assign(dist, [where[g] for g in noise_groups], forbidden_for(grouped))
    return labels
