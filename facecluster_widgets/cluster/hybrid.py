"""The method: DBSCAN marks low-density faces as noise, then K-Means++ partitions the rest, both under the fused
distance ``D = λ·cosine(2D) + (1−λ)·Mahalanobis(3D)`` of :mod:`facecluster_widgets.fusion`.

Stage 2 is Lloyd's algorithm under D: K-Means++ seeding by D² sampling on the precomputed fused matrix (the
greedy variant sklearn uses: ``2 + ln k`` candidates per seed, the one that lowers the potential most is kept),
assignment to the nearest centroid under D, centroid update per block (normalised mean of the unit 2D vectors,
plain mean of the whitened 3D rows). The per-block means minimise the *squared* per-block distances, so the
updates are the usual Lloyd heuristic for D rather than an exact minimiser; convergence is declared when no
label changes or the inertia (sum of D to the assigned centroid) changes by at most ``tol`` relative to itself.

Cannot-link (``groups``: a photo id per face): two faces of one photo are two people, so they never share a
cluster. Each photo with several faces is assigned jointly with ``scipy.optimize.linear_sum_assignment`` on its
faces' distance rows (the cheapest assignment of its faces to distinct clusters). A photo with more faces than
clusters cannot be satisfied: its surplus faces (the ones the assignment leaves out) get −1 and are counted in
``cannot_link_unassigned_``.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import DBSCAN
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ..errors import FeatureInputError, MetricInputError
from ..features import Features
from ..fusion import (
    BLOCK_2D,
    FUSIONS,
    POSE_WEIGHTINGS,
    FusedMetric,
    as_blocks,
    split_names,
    table_pose_points,
    valid_rows,
)
from ..metrics import silhouette
from . import graph, knn
from .communities import COMMUNITY_NEIGHBORS, community_labels
from .kmeans import AUTO_K_MAX_SHARE, DEFAULT_N_INIT, KMeansResult, assign, fused_kmeans, group_index

log = logging.getLogger(__name__)


class RefitStopped(Exception):  # noqa: N818 - a signal, not an error
    """:meth:`HybridClustering.refit` gave up because its ``stop()`` said so; the estimator is as before the call."""

# The defaults below were chosen ONCE, for every dataset, by one declared rule: the grid pipeline configuration
# (embedder × detector) × eps ∈ {0.4, 0.5, 0.6} × λ ∈ {0.65, 0.8, 0.9, 1} × min_samples ∈ {2, 3} × auto_k ∈
# {silhouette, communities} (3D blocks: all), scored by ARI (k="auto") on lfw10, orl, yale, cfp100 and umist; the
# cell whose WORST dataset is best wins (maximin). Left-one-dataset-out checks and the scores are in the README
# ("How the defaults were chosen"); benchmarks/defaults_grid.py reruns the grid.
#: λ = 1: the 3D term gets NO weight by default: no λ < 1 raised the worst dataset (README), so the 3DMM fitted to
#: 68 landmarks adds no identity the 2D embedding lacks here. It stays available (lam < 1); every report shows it.
DEFAULT_LAM = 1.0
#: DBSCAN radius on the fused distance, whose typical pair is at ~1 after normalisation (median scaling).
DEFAULT_EPS = 0.6
#: DBSCAN density: 3 faces, the minimum a photo manager (Immich: ``minFaces = 3``) needs to call a group a person.
DEFAULT_MIN_SAMPLES = 3
#: First a geometric grid of this many k over the range (identity counts span orders of magnitude) ...
AUTO_K_GRID = 12
#: ... then grids of at most this many k between the best k's scored neighbours, until they are adjacent.
AUTO_K_REFINE = 6
#: warm_start: k within ± this of the previous auto k is scored first, then the window walks uphill in steps of this.
AUTO_K_WARM_SPAN = 2
#: When DBSCAN finds one cluster, k stays 1 unless a split reaches this silhouette (Kaufman & Rousseeuw: below
#: 0.25 "no substantial structure has been found").
SINGLE_CLUSTER_SILHOUETTE = 0.25
#: The dense path keeps three n×n float32 matrices and builds each from a float64 one: 15,000 faces need ~4.5 GB.
MAX_DENSE_FACES = 15_000
#: How the 3D term's weight follows each pair of faces (fusion's docstring): "off" = λ for every pair. Chosen by the
#: same maximin rule with pose_weighting as one more grid axis (off / same_view / cross_view): it makes λ < 1 much
#: less harmful on cfp100 but no pose-weighted cell beat λ = 1's worst set (benchmarks/README.md, "What we tried").
DEFAULT_POSE_WEIGHTING = "off"
#: Parameters whose change invalidates the cached per-block matrices (and the kNN graph's per-edge weights).
_CACHE_PARAMS = ("fusion", "block_2d", "blocks_3d", "algorithm", "pose_weighting")


class HybridClustering(ClusterMixin, BaseEstimator):
    """Two-stage face clustering (DBSCAN noise → K-Means++ partition) under the fused 2D+3D distance.

    Parameters
    ----------
    eps, min_samples : DBSCAN on the fused distance (typical pair ≈ 1 after normalisation); faces it marks as
        noise are left out of stage 2.
    lam : weight λ of the 2D term (1 = 2D only, 0 = 3D only).
    n_clusters : int, or "auto": the k with the highest silhouette on the fused distance among
        ``k = max(2, f) .. m / 2`` (``m`` faces DBSCAN kept, ``f`` the largest photo's face count when cannot-link is
        on: a photo of 5 faces shows at least 5 people), each candidate scored with one K-Means++ run: first a
        geometric grid of 12 k, then grids of ≤ 6 k between the best one's neighbours until they are adjacent; the
        chosen k then gets its ``n_init`` restarts. Ties go to the smaller k. DBSCAN's cluster count is reported
        but not used: at one eps it is biased in either direction (it merges identities that touch and drops
        sparse ones). If DBSCAN finds one cluster, k = 1 unless a split reaches silhouette 0.25.
        ``n_clusters_reason_`` states what happened.
    auto_k : how "auto" picks k: "silhouette" (default: the sweep above) or "communities", which caps the sweep
        above at the number of Louvain communities of the mutual 10-nearest-neighbour graph of the faces DBSCAN
        kept (:mod:`.communities`): a person seen across a pose sweep is one community but several compact
        silhouette clusters, while a large compact group Louvain may cut in two is rejoined by the sweep below
        the cap. The defaults grid compared both; with SFace on YuNet-aligned faces the sweep alone won (README).
    fusion : "metric" (the method) or "concat" (weighted concatenation of standardised blocks, squared Euclidean).
    pose_weighting : "off" (every pair gets λ), "same_view" (the 3D term's share of a pair shrinks with both faces'
        fit confidence and with their yaw gap) or "cross_view" (grows with the yaw gap); the rule is in
        :mod:`facecluster_widgets.fusion`. λ stays the base weight (λ = 1 is 2D only whatever this says). Needs
        ``pose`` in :meth:`fit` (the faces table's ``yaw`` and ``landmark_quality``); without it the weighting is
        off and ``fusion_reason_`` says so.
    noise : "keep" (noise faces stay −1) or "assign" (they join their nearest centroid after stage 2).
    cannot_link : with ``groups`` given to :meth:`fit`, faces of one photo never share a cluster.
    n_init, max_iter, tol, random_state : stage-2 restarts and stopping rule (see the module docstring).
    block_2d, blocks_3d : block names; by default "2d" and every other block.
    warm_start : with k="auto", a later fit/refit scores k around the previous auto k and walks uphill
        (``AUTO_K_WARM_SPAN``) instead of sweeping the whole range: ~4× fewer K-Means runs, for sliders. It finds
        the silhouette peak nearest the previous k, so it can differ from a cold sweep; the explorer uses it.
    algorithm : "dense" (n×n matrices), "sparse" (kNN graphs, no n×n matrix: :mod:`.graph`) or "auto" (sparse
        above ``graph.AUTO_SPARSE_FACES`` faces with complete features). ``algorithm_`` says which ran.

    ``fit(X, groups=...)`` takes a :class:`~facecluster_widgets.features.Features` or a dict ``name -> (n, d)``.
    Faces with any NaN/inf in the used blocks (or an all-zero 2D embedding) get −1 and ``invalid_mask_``.

    Attributes
    ----------
    labels_ : (n,) cluster per face, −1 for noise ("keep"), invalid faces and cannot-link surplus.
    noise_mask_, invalid_mask_ : (n,) DBSCAN noise; faces with incomplete features.
    dbscan_labels_ : (n,) stage-1 labels (−1 for invalid faces too).
    centroids_ : ``{"2d": (k, d2), "3d": (k, d3)}`` (plus ``"pose": (k, 3)``, the members' mean pose vector, when
        the pose weighting ran) in the fused spaces: unit 2D vectors and whitened 3D rows
        ("metric"), standardised blocks ("concat") — the spaces of ``distance_.points_2d`` / ``points_3d``.
    n_clusters_, n_clusters_reason_ : the k used and one sentence saying why; ``auto_k_scores_`` k → silhouette.
    pose_weighting_, fusion_reason_ : the pose weighting that ran, and one sentence on the 3D term's weight.
    inertia_, n_iter_ : sum of D from partitioned faces to their centroids; Lloyd iterations of the kept run.
    cannot_link_unassigned_ : faces left −1 because their photo has more faces than there are clusters.
    distance_ : the fitted :class:`~facecluster_widgets.fusion.FusedMetric` (the per-block cache) over the
        faces ``valid_index_``; ``fused_distances_`` its matrix for ``lam``.
    timings_ : seconds per stage of the last fit/refit (prepare, fuse, dbscan, kmeans, assign, total).
    reused_cache_ : whether the last call reused the per-block matrices (see :meth:`refit`).
    n_features_in_ : columns seen in fit, summed over the used blocks (scikit-learn's convention).
    algorithm_ : "dense" or "sparse". On the sparse path ``fused_distances_`` is None; ``graph_`` holds the
        kNN graphs (:class:`~.knn.FusedGraph`, reused by refit), ``fused_graph_`` their fused distances for
        ``lam`` (CSR), ``sparse_truncated_`` the share of faces whose kNN list ends within eps, and
        ``stage2_regimes_`` which K-Means ran ("exact" / "graph").
    """

    _parameter_constraints: dict = {
        "eps": [Interval(Real, 0, None, closed="neither")],
        "min_samples": [Interval(Integral, 1, None, closed="left")],
        "lam": [Interval(Real, 0, 1, closed="both")],
        "n_clusters": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "fusion": [StrOptions(set(FUSIONS))],
        "noise": [StrOptions({"keep", "assign"})],
        "cannot_link": ["boolean"],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "block_2d": [str],
        "blocks_3d": [None, tuple, list],
        "algorithm": [StrOptions({"auto", *graph.ALGORITHMS})],
        "warm_start": ["boolean"],
        "auto_k": [StrOptions({"silhouette", "communities"})],
        "pose_weighting": [StrOptions(set(POSE_WEIGHTINGS))],
    }

    def __init__(self, eps: float = DEFAULT_EPS, min_samples: int = DEFAULT_MIN_SAMPLES, lam: float = DEFAULT_LAM,
                 n_clusters: int | str = "auto", fusion: str = "metric", noise: str = "keep",
                 cannot_link: bool = True, n_init: int = DEFAULT_N_INIT, max_iter: int = 100, tol: float = 1e-6,
                 random_state: int | np.random.RandomState | None = 0, block_2d: str = BLOCK_2D,
                 blocks_3d: Sequence[str] | None = None, algorithm: str = "auto", warm_start: bool = False,
                 auto_k: str = "silhouette", pose_weighting: str = DEFAULT_POSE_WEIGHTING) -> None:
        self.eps = eps
        self.min_samples = min_samples
        self.lam = lam
        self.n_clusters = n_clusters
        self.fusion = fusion
        self.noise = noise
        self.cannot_link = cannot_link
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.block_2d = block_2d
        self.blocks_3d = blocks_3d
        self.algorithm = algorithm
        self.warm_start = warm_start
        self.auto_k = auto_k
        self.pose_weighting = pose_weighting

    def fit(self, X: Features | Mapping[str, np.ndarray], y: None = None,
            groups: Sequence | np.ndarray | None = None,
            pose: pd.DataFrame | Mapping | None = None) -> HybridClustering:
        """Cluster the faces of ``X``; ``groups`` is a photo id per face (for cannot-link); ``pose`` the faces'
        ``yaw`` (degrees) and ``landmark_quality`` (a table or mapping with those columns, one row per face; NaN
        where unknown) for ``pose_weighting``. Returns self."""
        self._validate_params()
        start = time.perf_counter()
        blocks = as_blocks(X)
        name_2d, names_3d = split_names(blocks, self.block_2d, self.blocks_3d)
        n = next(iter(blocks.values())).shape[0]
        groups_arr = None
        if groups is not None:
            groups_arr = np.asarray(groups)
            if groups_arr.ndim != 1 or groups_arr.shape[0] != n:
                raise FeatureInputError(f"groups must give one photo id per face ({n}), got shape {groups_arr.shape}")
            missing = int(pd.isna(groups_arr).sum())
            if missing:
                raise FeatureInputError(f"groups has {missing} missing photo id(s) (None/NaN); give every face one, "
                                        "e.g. io.table.photo_groups(store.table) (one code per photo file)")
            if groups_arr.dtype == object:  # mixed id types (numbers and text) cannot be sorted: compare as text
                groups_arr = groups_arr.astype(str)
        pose_arr, pose_note = self._pose_vectors(pose, n)
        used = ([name_2d] if name_2d else []) + list(names_3d)
        valid = valid_rows(blocks, used)
        if name_2d:
            valid &= np.linalg.norm(np.where(valid[:, None], blocks[name_2d], 0.0), axis=1) > 1e-12
        n_valid = int(valid.sum())
        if n_valid == 0:
            raise FeatureInputError(f"none of the {n} faces has complete features (NaN/inf in {used})")
        algorithm = graph.choose_algorithm(self.algorithm, n_valid)
        if algorithm == "dense" and n_valid > MAX_DENSE_FACES:
            raise FeatureInputError(f"{n_valid} faces exceed the dense path's limit of {MAX_DENSE_FACES} "
                                    f"(three {n_valid}x{n_valid} matrices); use algorithm='sparse' or 'auto'")
        if n_valid < n:
            log.warning("%d of %d faces have incomplete features (NaN/inf or an all-zero 2D embedding) and get "
                        "label -1", n - n_valid, n)
        self._check_sizes(n_valid)
        metric = FusedMetric.fit({name: block[valid] for name, block in blocks.items() if name in used},
                                 fusion=self.fusion, block_2d=self.block_2d, blocks_3d=names_3d,
                                 pose=None if pose_arr is None else pose_arr[valid],
                                 pose_weighting="off" if pose_arr is None else self.pose_weighting)
        self.pose_weighting_ = metric.pose_weighting
        self._pose_note = pose_note
        self._pose = pose
        self.algorithm_ = algorithm
        self.n_features_in_ = sum(blocks[name].shape[1] for name in used)
        self.graph_ = None
        if algorithm == "dense":
            _ = metric.block_distances
        else:
            self.graph_ = knn.FusedGraph.build(metric, random_state=self.random_state)
        self.distance_ = metric
        self.valid_index_ = np.flatnonzero(valid)
        self.invalid_mask_ = ~valid
        self._blocks = blocks
        self._groups = groups_arr
        self._n_faces = n
        self._cache_key = self._cache_params()
        return self._cluster(prepare=time.perf_counter() - start, reused=False)

    def fit_predict(self, X: Features | Mapping[str, np.ndarray], y: None = None,
                    groups: Sequence | np.ndarray | None = None) -> np.ndarray:
        return self.fit(X, groups=groups).labels_

    def refit(self, stop: Callable[[], bool] | None = None, **params: object) -> HybridClustering:
        """Set ``params`` and cluster the same faces again, REUSING the per-block distance matrices.

        Meant for sliders: λ, eps, min_samples, n_clusters, noise, cannot_link, n_init, ... change only the
        weighted sum and the two stages. Changing fusion or the block names rebuilds the cache (a full fit on
        the features kept from the last :meth:`fit`). ``stop()`` is asked before each K-Means run of the k search
        (a slider that moved again makes this run useless: at 10,000 faces it takes seconds); when it says so,
        :class:`RefitStopped` is raised and the estimator is left as it was before the call.
        """
        check_is_fitted(self, "distance_")
        start = time.perf_counter()
        before = dict(vars(self))  # fitted attributes are replaced, never changed in place, by a run
        self.set_params(**params)
        try:
            self._validate_params()
            if self._cache_params() != self._cache_key:
                log.info("refit: %s changed, rebuilding the per-block matrices", "/".join(_CACHE_PARAMS))
                return self.fit(self._blocks, groups=self._groups, pose=self._pose)
            self._check_sizes(self.valid_index_.shape[0])
            self._stop = stop
            return self._cluster(prepare=time.perf_counter() - start, reused=True)
        except BaseException:
            vars(self).clear()
            vars(self).update(before)
            raise
        finally:
            self._stop = None

    def _pose_vectors(self, pose: pd.DataFrame | Mapping | None, n: int) -> tuple[np.ndarray | None, str]:
        """The faces' pose vectors (:func:`~facecluster_widgets.fusion.pose_points`) when the weighting is on and
        ``pose`` has its columns, else None and why the weighting is off."""
        if self.pose_weighting == "off":
            return None, ""
        if self.fusion != "metric":  # e.g. the explorer's fusion menu set to "concat": no per-pair weight there
            return None, f"pose_weighting={self.pose_weighting!r} is off: it needs fusion='metric'"
        points, why = table_pose_points(pose, n)
        return points, f"pose_weighting={self.pose_weighting!r} is off: {why}" if why else ""

    def _fusion_reason(self, lam: float) -> str:
        """One sentence on the 3D term's weight in this clustering (``fusion_reason_``)."""
        metric: FusedMetric = self.distance_
        note = f" ({self._pose_note})" if self._pose_note else ""
        if lam == 1.0 or not metric.has_3d:
            return f"λ = {lam:g}: the 3D term has no weight, faces are compared by the 2D term only{note}."
        if not metric.pose_weighted:
            return f"λ = {lam:g}: every pair gives the 3D term a share of {1 - lam:.2f}{note}."
        sample = np.arange(min(metric.n_faces, 1000))
        share = np.minimum((1.0 - lam) * metric.pose_weights(sample), 1.0)[np.triu_indices(sample.size, k=1)]
        trusted = int(np.count_nonzero(metric.points_pose[:, 0] > 0))
        return (f"λ = {lam:g} with pose weighting {metric.pose_weighting!r}: a pair's 3D share is (1 − λ)·w, w from "
                f"both faces' fit confidence and their yaw gap; median share {np.median(share):.3f} (max "
                f"{share.max(initial=0.0):.3f}) over pairs of the first {sample.size} faces; {trusted} of "
                f"{metric.n_faces} faces have a yaw estimate and a fit confidence above 0.")

    def _cache_params(self) -> tuple:
        blocks_3d = None if self.blocks_3d is None else tuple(self.blocks_3d)
        fitted = getattr(self, "valid_index_", None)  # "auto" resolved, so auto -> the same path keeps the cache
        algorithm = self.algorithm if fitted is None else graph.choose_algorithm(self.algorithm, fitted.shape[0])
        return self.fusion, self.block_2d, blocks_3d, algorithm, self.pose_weighting

    def _check_sizes(self, n_valid: int) -> None:
        if n_valid < self.min_samples:
            raise FeatureInputError(f"only {n_valid} faces with complete features, fewer than min_samples="
                                    f"{self.min_samples}: DBSCAN cannot find a dense face; lower min_samples")
        if self.n_clusters != "auto" and self.n_clusters > n_valid:
            raise FeatureInputError(f"n_clusters={self.n_clusters} but only {n_valid} faces have complete features")

    def _cluster(self, prepare: float, reused: bool) -> HybridClustering:
        timings = {"prepare": prepare}
        metric: FusedMetric = self.distance_
        lam = float(self.lam)
        tick = time.perf_counter()
        fused = metric.pairwise(lam) if self.graph_ is None else self.graph_.fused(lam)
        timings["fuse"] = time.perf_counter() - tick
        self.fusion_reason_ = self._fusion_reason(lam)

        tick = time.perf_counter()
        db = DBSCAN(eps=self.eps, min_samples=self.min_samples, metric="precomputed").fit(fused).labels_
        timings["dbscan"] = time.perf_counter() - tick
        core = np.flatnonzero(db >= 0)
        n_db = int(np.unique(db[core]).size)

        n, valid_idx = self._n_faces, self.valid_index_
        self.labels_ = np.full(n, -1)
        self.dbscan_labels_ = np.full(n, -1)
        self.dbscan_labels_[valid_idx] = db
        self.noise_mask_ = np.zeros(n, dtype=bool)
        self.noise_mask_[valid_idx[db < 0]] = True
        self.fused_distances_ = fused if self.graph_ is None else None
        self.fused_graph_ = fused if self.graph_ is not None else None
        self.sparse_truncated_ = knn.truncated_share(fused, self.eps) if self.graph_ is not None else 0.0
        self.auto_k_scores_ = {}
        self.cannot_link_unassigned_ = 0
        self.reused_cache_ = reused
        groups_valid = self._groups[valid_idx] if (self.cannot_link and self._groups is not None) else None

        tick = time.perf_counter()
        if core.size == 0:
            warnings.warn(f"DBSCAN marked every face as noise (eps={self.eps}, min_samples={self.min_samples}); "
                          "every label is -1: raise eps or lower min_samples", stacklevel=3)
            self.n_clusters_, self.inertia_, self.n_iter_ = 0, 0.0, 0
            self.centroids_ = metric.face_points(np.zeros(0, dtype=np.int64))
            self.n_clusters_reason_ = (f"DBSCAN (eps={self.eps}, min_samples={self.min_samples}) marked every "
                                       "face as noise, so no cluster was formed.")
            timings["kmeans"] = timings["assign"] = 0.0
            timings["total"] = sum(timings.values())
            self.timings_ = timings
            return self
        if self.n_clusters != "auto" and self.n_clusters > core.size:
            raise FeatureInputError(f"n_clusters={self.n_clusters} but DBSCAN left only {core.size} faces "
                                    f"(eps={self.eps}, min_samples={self.min_samples}); raise eps, lower "
                                    "min_samples or lower n_clusters")
        core_groups = group_index(groups_valid[core]) if groups_valid is not None else []
        rng = check_random_state(self.random_state)
        if self.graph_ is None:
            D_core = fused[np.ix_(core, core)]

            def run(k: int, n_init: int) -> KMeansResult:
                return fused_kmeans(metric, lam, core, D_core, k, groups=core_groups, n_init=n_init,
                                    max_iter=self.max_iter, tol=self.tol, rng=rng)

            stage = graph.Stage2(run, lambda labels: silhouette(labels, D_core), None)  # the dense path
        else:
            stage = graph.sparse_stage2(metric, lam, core, fused, core_groups, rng, self.max_iter, self.tol)
        result = self._stage2(core, n_db, core_groups, stage, fused)
        self.stage2_regimes_ = stage.regimes
        timings["kmeans"] = time.perf_counter() - tick

        tick = time.perf_counter()
        core_labels = result.labels
        self.labels_[valid_idx[core]] = core_labels
        unassigned = int((core_labels < 0).sum())
        if self.noise == "assign" and core.size < valid_idx.size:
            noise_pos = np.flatnonzero(db < 0)
            k = result.centroids["2d"].shape[0]
            noise_groups = group_index(groups_valid[noise_pos]) if groups_valid is not None else []
            if self.graph_ is None:
                dist = metric.to_centroids(lam, result.centroids, noise_pos)
                forbidden = None
                if groups_valid is not None:
                    forbidden = _taken_by_group(groups_valid, core, core_labels, noise_pos, k)
                noise_labels = assign(dist, noise_groups, forbidden)
            else:  # no (noise × k) matrix: only faces sharing a photo get full rows
                noise_labels = graph.assign_noise(
                    metric, lam, result.centroids, noise_pos, noise_groups,
                    None if groups_valid is None else
                    lambda where: _taken_by_group(groups_valid, core, core_labels, noise_pos[where], k))
            self.labels_[valid_idx[noise_pos]] = noise_labels
            unassigned += int((noise_labels < 0).sum())
        timings["assign"] = time.perf_counter() - tick
        self.cannot_link_unassigned_ = unassigned
        if unassigned:
            log.warning("%d face(s) share a photo with more faces than clusters and stay -1 (cannot-link)", unassigned)
        self.centroids_ = result.centroids
        self.inertia_, self.n_iter_ = result.inertia, result.n_iter
        found = np.unique(core_labels[core_labels >= 0]).size
        if found < self.n_clusters_:
            warnings.warn(f"only {found} distinct clusters found for k={self.n_clusters_}: the faces have fewer "
                          "distinct positions than clusters (duplicates)", stacklevel=3)
        timings["total"] = sum(timings.values())
        self.timings_ = timings
        return self

    def _stage2(self, core: np.ndarray, n_db: int, groups: list[np.ndarray], stage: graph.Stage2,
                fused: object = None) -> KMeansResult:
        def run(k: int, n_init: int = self.n_init) -> KMeansResult:
            return stage.run(k, n_init)

        db_text = f"DBSCAN (eps={self.eps}, min_samples={self.min_samples}) found {n_db} cluster(s)"
        if self.n_clusters != "auto":
            self.n_clusters_ = int(self.n_clusters)
            self.n_clusters_reason_ = f"Given: n_clusters={self.n_clusters}; {db_text} and left {core.size} faces."
            return run(self.n_clusters_)
        floor = max((g.shape[0] for g in groups), default=1)
        lo = max(2, floor)
        hi = min(max(core.size // AUTO_K_MAX_SHARE, lo), core.size - 1)
        if lo > hi:
            k = min(max(n_db, floor, 1), core.size)
            self.n_clusters_ = k
            self.n_clusters_reason_ = (f"{db_text}; with only {core.size} faces left no silhouette sweep is "
                                       f"possible, so k={k}.")
            return run(k)
        cap_text = ""
        if self.auto_k == "communities":
            # Louvain keeps a pose chain whole but may cut a large compact group in two; silhouette does the
            # opposite. So the community count caps the silhouette sweep: no k above it, the best k below it.
            seed = self.random_state if isinstance(self.random_state, Integral) else 0
            found = int(np.unique(community_labels(fused, core, seed=int(seed))).size)
            hi = min(hi, max(found, lo))
            cap_text = (f"; the mutual {COMMUNITY_NEIGHBORS}-nearest-neighbour graph of the kept faces has {found} "
                        f"Louvain communities, which caps k")
        previous = getattr(self, "_auto_k_previous", None)
        sweep_run = stage.sweep_run or (lambda k: run(k, 1))
        if self.warm_start and previous is not None:
            results = self._local_sweep(lo, hi, min(max(previous, lo), hi), sweep_run, stage.score)
        else:
            results = self._sweep(lo, hi, sweep_run, stage.score, stage.max_runs)
        best = max(results, key=lambda k: (self.auto_k_scores_[k], -k))
        self._auto_k_previous = best
        best_score = self.auto_k_scores_[best]
        if n_db <= 1 and floor <= 1 and best_score < SINGLE_CLUSTER_SILHOUETTE:
            self.n_clusters_ = 1
            self.n_clusters_reason_ = (f"{db_text}; no split in k={lo}..{hi} reaches silhouette "
                                       f"{SINGLE_CLUSTER_SILHOUETTE} (best {best_score:.3f} at k={best}), so k=1.")
            return run(1)
        self.n_clusters_ = best
        result = results[best]
        if self.n_init > 1:
            more = run(best, self.n_init - 1)
            result = more if more.inertia < result.inertia else result
        floor_text = f" (at least {floor}: the largest photo's faces)" if floor > 1 else ""
        how = (f"k near the previous k={previous} (warm start: the silhouette peak nearest it; {len(results)} k "
               "scored)"
               if self.warm_start and previous is not None else f"{len(results)} k scored in {lo}..{hi}")
        self.n_clusters_reason_ = (f"{db_text}{cap_text}; k={best} has the highest silhouette ({best_score:.3f}) on "
                                   f"the fused distance among the {how}{floor_text}.")
        return result

    def _score_ks(self, results: dict[int, KMeansResult], ks: Iterable[int], run: Callable[[int], KMeansResult],
                  score_labels: Callable[[np.ndarray], float]) -> None:
        for k in ks:
            if k not in results:
                if getattr(self, "_stop", None) is not None and self._stop():
                    raise RefitStopped(f"stopped before k={k}")
                results[k] = run(k)
                try:
                    self.auto_k_scores_[k] = score_labels(results[k].labels)
                except MetricInputError:  # fewer than 2 distinct clusters: duplicates everywhere
                    self.auto_k_scores_[k] = -np.inf

    def _local_sweep(self, lo: int, hi: int, start: int, run: Callable[[int], KMeansResult],
                     score_labels: Callable[[np.ndarray], float]) -> dict[int, KMeansResult]:
        """warm_start: score k around the previous choice and walk uphill until the best k is inside the window.

        A slider move changes the distance a little, so the silhouette peak rarely moves far; ~5–9 K-Means runs
        instead of the full sweep's ~30. It finds the peak nearest the previous k, which can be a local one: a
        fit with ``warm_start=False`` sweeps the whole range again."""
        span = AUTO_K_WARM_SPAN
        results: dict[int, KMeansResult] = {}
        self._score_ks(results, range(max(lo, start - span), min(hi, start + span) + 1), run, score_labels)
        while True:
            best = max(results, key=lambda k: (self.auto_k_scores_[k], -k))
            if best == min(results) and best > lo:
                self._score_ks(results, range(max(lo, best - span), best), run, score_labels)
            elif best == max(results) and best < hi:
                self._score_ks(results, range(best + 1, min(hi, best + span) + 1), run, score_labels)
            else:
                return results

    def _sweep(self, lo: int, hi: int, run: Callable[[int], KMeansResult], score_labels: Callable[[np.ndarray], float],
               max_runs: int | None = None) -> dict[int, KMeansResult]:
        """Score k in lo..hi by silhouette (into ``auto_k_scores_``): a geometric grid, then ever finer grids
        between the best k's neighbours until they are adjacent (~30 K-Means runs for 1,000 faces)."""
        results: dict[int, KMeansResult] = {}
        grid = np.unique(np.geomspace(lo, hi, min(AUTO_K_GRID, hi - lo + 1)).round().astype(int))
        while True:
            self._score_ks(results, grid.tolist(), run, score_labels)
            done = sorted(results)
            i = done.index(max(done, key=lambda k: (self.auto_k_scores_[k], -k)))
            left, right = done[max(i - 1, 0)], done[min(i + 1, len(done) - 1)]
            todo = [k for k in range(left + 1, right) if k not in results]
            if not todo or (max_runs is not None and len(results) >= max_runs):
                return results
            # evenly spaced among the k NOT yet scored: a linspace over left+1..right-1 can land on the best k
            # only (linspace(10, 11, 1) == [10]) and would loop forever
            pick = np.linspace(0, len(todo) - 1, min(AUTO_K_REFINE, len(todo))).round().astype(int)
            grid = np.unique(np.asarray(todo)[pick])

def _taken_by_group(groups: np.ndarray, core: np.ndarray, core_labels: np.ndarray, noise_pos: np.ndarray,
                    k: int) -> np.ndarray:
    """(len(noise_pos), k) True where a noise face's photo already has a partitioned face in that cluster."""
    taken: dict[object, set[int]] = {}
    for g, label in zip(groups[core].tolist(), core_labels.tolist(), strict=True):
        if label >= 0:
            taken.setdefault(g, set()).add(label)
    forbidden = np.zeros((noise_pos.shape[0], k), dtype=bool)
    for i, g in enumerate(groups[noise_pos].tolist()):
        for label in taken.get(g, ()):
            forbidden[i, label] = True
    return forbidden
