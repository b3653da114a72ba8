"""The sparse path of :class:`~facecluster_widgets.cluster.HybridClustering`: the same method with no n×n matrix.

Why: the dense path keeps three n×n float32 matrices (100,000 faces would need ~112 GiB). Above
:data:`AUTO_SPARSE_FACES` faces (``algorithm="auto"``), or always with ``algorithm="sparse"``:

1. **kNN graphs, one per modality** (:func:`.knn.knn_indices`): each face's :data:`.knn.N_NEIGHBORS` nearest
   faces under the 2D term (Euclidean order on unit vectors = cosine order) and under the 3D term (Euclidean on
   the whitened rows = Mahalanobis order). Exact (scikit-learn brute force, chunked) up to :data:`.knn.EXACT_KNN_FACES`
   faces, then approximate: faiss's inverted-file index (IVF-Flat, :func:`.knn.ivf_knn`), compiled code with no
   start-up cost. pynndescent was used before: same recall on our synthetic data, but its numba code compiled for ~33 s
   in every new Python process, half the 100,000-face budget.
2. **Fused graph** (:class:`.knn.FusedGraph`): the union of both modalities' edges, made symmetric, each edge holding
   its two normalised block distances (same ``s2``/``s3`` median scaling as :class:`~facecluster_widgets.fusion.
   FusedMetric`, whose medians already come from a fixed 2,000-face sample), so a new λ is one weighted sum over
   the edges. The diagonal is stored (explicit zeros): a face is its own neighbour, as in the dense matrix.
3. **DBSCAN** on that sparse matrix (scikit-learn, ``metric="precomputed"``): exact for every pair the graph
   holds. A pair missing from both kNN lists counts as farther than eps; ``sparse_truncated_`` is the share of
   faces whose farthest graph neighbour is still within eps (their neighbourhood may be cut short).
4. **Stage 2 without n×n**, in one of two regimes chosen by the number of faces DBSCAN kept:

   * *exact* (up to :data:`EXACT_KMEANS_FACES`): the dense path's own K-Means++ and Lloyd code, fed the fused
     rows on demand (:class:`.rows.FusedRows`; seeding reads ``2 + ln k`` rows per seed) and face-to-centroid
     distances (memory O(n·k), at most 2,000 × 1,000). With the same ``random_state`` it picks the same seeds
     as the dense path, so both paths give the same labels wherever their DBSCAN agrees.
   * *graph* (more faces): K-Means++ seeding whose potential is updated on the chosen seed's graph neighbours only
     (:class:`.graph_kmeans.GraphSeeder`; one sequence seeds every k of the sweep), faces start at their
     graph-nearest seed (multi-source Dijkstra), and each Lloyd step compares a face with the centroids of its own
     and its graph neighbours' clusters only (a face's nearest centroid is, in practice, the centroid of one of its
     nearest faces). Memory O(edges + n·d). It stops when labels stop changing, the inertia changes by at most ``tol``
     relative, or at most :data:`.graph_kmeans.GRAPH_CHANGED_SHARE` of the faces changed cluster (clusters grow
     by graph hops, so the last few boundary faces can take many cheap but useless iterations).
     Cannot-link is enforced as in the dense path: a photo whose faces collide is assigned jointly
     (``linear_sum_assignment``) on exact distances to every centroid.

   auto-k scores each candidate k by the silhouette of :data:`.rows.SILHOUETTE_SAMPLE` faces (a fixed-seed sample)
   against ALL partitioned faces (:class:`.rows.SampledSilhouette`): the exact silhouette of those faces, so an
   unbiased estimate of the mean; with at most that many faces it is the exact silhouette. The same sample
   scores every k, so the comparison between k is paired. The candidate k are the dense path's (its grids);
   in the graph regime the sweep stops after :data:`GRAPH_SWEEP_RUNS` K-Means runs, and one K-Means++ sequence
   seeds them all (:class:`.graph_kmeans.GraphSeeder`).

What a refit reuses: the kNN graphs and per-edge block distances (:class:`.knn.FusedGraph`), so λ costs one weighted
sum over the edges and eps/min_samples only DBSCAN and stage 2.

Where each piece lives: :mod:`.knn` (the kNN index and the fused graph), :mod:`.rows` (exact fused rows on
demand, the sampled silhouette, nearest centroids), :mod:`.graph_kmeans` (the graph regime's K-Means); this
module chooses the path and runs stage 2 and the noise assignment over them.
"""


from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import csr_matrix

from ..errors import FeatureInputError
from ..fusion import FusedMetric
from . import kmeans
from .graph_kmeans import GraphKMeans
from .rows import FusedRows, SampledSilhouette, nearest_centroids

#: ``algorithm="auto"`` takes the sparse path above this many faces with complete features: above it the dense
#: path costs many times the sparse one's time and memory for the same labels, below it (the shared datasets) the
#: dense path is the faster one (``benchmarks/run.py``; README "Speed and scale").
AUTO_SPARSE_FACES = 5_000
#: Stage 2 runs the dense path's exact K-Means (every face against every centroid, O(n·k) memory) while DBSCAN
#: kept at most this many faces (the shared datasets: 100-1,400), the graph-restricted K-Means above.
EXACT_KMEANS_FACES = 2_000
#: In the graph regime the auto-k sweep stops after this many K-Means runs (coarse-to-fine refinement).
GRAPH_SWEEP_RUNS = 40
#: The two values of ``HybridClustering(algorithm=...)`` besides "auto".
ALGORITHMS = ("dense", "sparse")


def choose_algorithm(algorithm: str, n_valid: int) -> str:
    """"dense" or "sparse" for ``n_valid`` faces with complete features."""
    if algorithm == "auto":
        return "sparse" if n_valid > AUTO_SPARSE_FACES else "dense"
    if algorithm not in ALGORITHMS:
        raise FeatureInputError(f"algorithm must be 'auto', 'dense' or 'sparse', got {algorithm!r}")
    return algorithm


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


#: Rows of the (faces × clusters) forbidden mask built at once when checking the lone noise faces.
_FORBIDDEN_BLOCK = 4096


def assign_noise(metric: FusedMetric, lam: float, centroids: dict[str, np.ndarray], noise_pos: np.ndarray,
                 noise_groups: Sequence[np.ndarray],
                 forbidden_for: Callable[[np.ndarray], np.ndarray] | None) -> np.ndarray:
    """noise="assign" without an (n_noise × k) matrix: faces alone in their photo go to their nearest centroid
    block by block; faces sharing a photo (``noise_groups``: positions into ``noise_pos``) are assigned as the
    dense path does: jointly per photo, clusters taken by the photo's partitioned faces forbidden
    (``forbidden_for(positions)`` gives those rows; None: no photo ids, nothing is forbidden)."""
    labels = np.full(noise_pos.shape[0], -1, dtype=np.int64)
    grouped = np.concatenate(noise_groups) if noise_groups else np.zeros(0, dtype=np.int64)
    alone = np.setdiff1d(np.arange(noise_pos.shape[0]), grouped)
    if alone.size:
        labels[alone] = nearest_centroids(metric, lam, centroids, noise_pos[alone])[0]
    if alone.size and forbidden_for is not None:
        # A face alone among the noise may still share its photo with partitioned faces: their clusters are
        # forbidden to it, as on the dense path. Checked a block at a time; only violating rows are re-scored.
        for start in range(0, alone.size, _FORBIDDEN_BLOCK):
            block = alone[start:start + _FORBIDDEN_BLOCK]
            forbidden = forbidden_for(block)
            bad = np.flatnonzero(forbidden[np.arange(block.size), labels[block]])
            if bad.size:
                dist = metric.to_centroids(lam, centroids, noise_pos[block[bad]])
                dist[forbidden[bad]] = np.inf
                labels[block[bad]] = np.where(np.isfinite(dist).any(axis=1), dist.argmin(axis=1), -1)
    if grouped.size:
        dist = metric.to_centroids(lam, centroids, noise_pos[grouped])
        where = np.empty(noise_pos.shape[0], dtype=np.int64)
        where[grouped] = np.arange(grouped.shape[0])
        forbidden = None if forbidden_for is None else forbidden_for(grouped)
        labels[grouped] = kmeans.assign(dist, [where[g] for g in noise_groups], forbidden)
    return labels
