"""The fused face distance ``D = λ·cosine(2D)/s2 + (1−λ)·Mahalanobis(3D)/s3`` and its per-block pieces.

Why two terms and how they are made comparable:

* **2D term**: cosine distance ``1 − u·v`` between L2-normalised embeddings (what face embedders are trained for).
* **3D term**: Mahalanobis distance between the 3D descriptors. All 3D blocks ("shape", "geodesic", "curvature",
  ...) are standardised column by column (so the shrinkage target below is "independent unit-variance features"),
  columns with zero variance are dropped (they carry no information and would make the covariance singular), and
  the covariance is estimated with Ledoit-Wolf shrinkage, which is positive definite for any number of faces.
  Mahalanobis distance is then computed as the Euclidean distance after whitening with ``L⁻¹`` where ``Σ = L·Lᵀ``
  (Cholesky), so distances to centroids are plain Euclidean distances in the whitened space.
* **Normalisation (what makes λ mean what it says)**: each term is divided by its *median pairwise value over the
  fitted faces* (``s2``, ``s3``, computed once in :meth:`FusedMetric.fit`). After it, a typical pair of faces is at
  distance 1 in both modalities, so λ is the share of the typical distance given to the 2D term: λ = 1 ignores
  3D entirely, λ = 0 ignores 2D. If over half of the pairs coincide (median 0, up to rounding) the mean of the
  non-zero pairwise distances is used; a block with no non-zero distance at all gets scale 1 (its term is 0 anyway).

**Pose-aware weighting** (``pose_weighting``, "metric" fusion only): the 3D term's share is set per pair of faces,
``1 − λ_ij = min(1, (1 − λ)·w_ij)``, from each face's pose vector ``p_i = c_i·(1, cos yaw_i, sin yaw_i)`` (``c_i``
the face's fit confidence: its 68-landmark stability ``landmark_quality``, 0 without a yaw estimate or a 3DMM fit;
:func:`pose_points`). The rule was declared before any score was looked at (issue 12):

* ``"same_view"``: ``w_ij = c_i·c_j·max(0, cos(yaw_i − yaw_j))``: the 3D term counts where both fits are trusted
  and both faces were seen from a similar side; a profile fit (unstable landmarks) or a frontal-vs-profile pair
  falls back to the 2D term. No new constant: cos is the overlap of two views' visible surface.
* ``"cross_view"`` (the opposite hypothesis, that 3D shape is pose-invariant so it should weigh MORE where the
  2D views differ): ``w_ij = c_i·c_j·(2 − max(0, cos(yaw_i − yaw_j)))``.
* ``"off"``: ``w_ij = 1`` (the plain fused distance).

A face-to-centroid distance uses the centroid's pose vector, the mean of its members' ``p``: since ``w`` is
bilinear in ``p`` (up to the clip at 0), it is the mean pair weight of the face with the cluster's members.

The ``"concat"`` fusion (early fusion, for comparison) standardises every block column by column, divides each
block by ``sqrt(its number of non-constant columns)`` so wide blocks do not outvote narrow ones, and measures
``λ·‖Δz2‖²/m2 + (1−λ)·‖Δz3‖²/m3`` with ``m`` the median pairwise squared distance of that part: the SQUARED
Euclidean distance between rows of the weighted concatenation (:meth:`FusedMetric.concat_features`). Squared,
so that stage 2 is ordinary k-means on the concatenation and a typical pair is again at ~1 (eps means the same
in both fusions).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.linalg import LinAlgError, cholesky, solve_triangular
from scipy.sparse import csr_matrix, issparse
from sklearn.covariance import LedoitWolf
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.preprocessing import StandardScaler

from .errors import FeatureInputError
from .features import Features

log = logging.getLogger(__name__)

#: Name of the 2D embedding block in :class:`~facecluster_widgets.features.Features`.
BLOCK_2D = "2d"
#: The two ways of combining the modalities (see the module docstring).
FUSIONS = ("metric", "concat")
#: How the 3D term's weight follows each pair's poses and fit confidences (module docstring).
POSE_WEIGHTINGS = ("off", "same_view", "cross_view")
#: The faces-table columns a pose vector is made of: the pipeline's yaw estimate and the fit confidence.
POSE_COLUMNS = ("yaw", "landmark_quality")
#: At most this many faces (a fixed-seed random subset) estimate the median pairwise distances: 2,000 faces give
#: ~2 M pairs, a median accurate to well under 1 %, at a cost that does not grow with the collection.
MEDIAN_SAMPLE = 2000
#: Seed of that subset: the normalisation is a property of the data, not of a clustering run's random_state.
MEDIAN_SEED = 0
#: A column whose standard deviation is below this times max(1, |its mean|) counts as constant (rounding noise).
CONSTANT_STD = 1e-12
#: A pairwise distance below this counts as zero when choosing the scale: it is a zero distance blurred by rounding
#: (float32, ~7 digits), and dividing by it would blow identical faces apart to a "typical" distance of 1.
ZERO_DISTANCE = 1e-6


def as_blocks(X: Features | Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The named 2-D float64 blocks of ``X`` (a :class:`Features` or a dict ``name -> (n, d) array``), checked."""
    if isinstance(X, Features):
        raw: Mapping[str, np.ndarray] = X.blocks
    elif isinstance(X, Mapping):
        raw = X
    else:
        raise FeatureInputError(f"features must be a Features object or a dict of named (n, d) arrays, "
                                f"got {type(X).__name__}")
    if not raw:
        raise FeatureInputError("features hold no block")
    blocks: dict[str, np.ndarray] = {}
    n_rows = None
    for name, block in raw.items():
        if issparse(block):
            raise FeatureInputError(f"feature block {name!r} is a sparse matrix; sparse input is not supported, "
                                    "pass a dense (n, d) array")
        if np.iscomplexobj(block):
            raise FeatureInputError(f"feature block {name!r}: Complex data not supported (features are real)")
        try:
            arr = np.asarray(block, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise FeatureInputError(f"feature block {name!r} is not numeric: {exc}") from None
        if arr.ndim != 2:
            raise FeatureInputError(f"feature block {name!r} must be 2-D (faces x features), got shape {arr.shape}")
        if arr.shape[1] == 0:
            raise FeatureInputError(f"feature block {name!r} has no columns (shape {arr.shape})")
        if n_rows is not None and arr.shape[0] != n_rows:
            raise FeatureInputError(f"feature block {name!r} has {arr.shape[0]} rows, others have {n_rows}")
        n_rows = arr.shape[0]
        blocks[str(name)] = arr
    return blocks


def valid_rows(blocks: Mapping[str, np.ndarray], names: Sequence[str] | None = None) -> np.ndarray:
    """True for faces whose every used block is finite (NaN rows are faces a stage could not process)."""
    names = list(blocks) if names is None else list(names)
    n = next(iter(blocks.values())).shape[0]
    ok = np.ones(n, dtype=bool)
    for name in names:
        ok &= np.isfinite(blocks[name]).all(axis=1)
        with np.errstate(over="ignore", invalid="ignore"):  # values past ~1e154 overflow any distance: as bad as NaN
            ok &= np.isfinite(np.einsum("ij,ij->i", blocks[name], blocks[name]))
    return ok


def split_names(blocks: Mapping[str, np.ndarray], block_2d: str = BLOCK_2D,
                blocks_3d: Sequence[str] | None = None) -> tuple[str | None, tuple[str, ...]]:
    """The 2D block's name (None if absent) and the 3D blocks' names (default: every other block, sorted)."""
    if blocks_3d is None:
        names_3d = tuple(sorted(name for name in blocks if name != block_2d))
    else:
        names_3d = tuple(blocks_3d)
        missing = [name for name in names_3d if name not in blocks]
        if missing:
            raise FeatureInputError(f"3D block(s) {missing} not in the features; have {sorted(blocks)}")
        if block_2d in names_3d:
            raise FeatureInputError(f"block {block_2d!r} is the 2D block and cannot also be a 3D block")
    name_2d = block_2d if block_2d in blocks else None
    if name_2d is None and not names_3d:
        raise FeatureInputError(f"no 2D block {block_2d!r} and no 3D block; have {sorted(blocks)}")
    return name_2d, names_3d


def unit_rows(X: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; a zero row has no direction, so it is an error rather than a fake vector."""
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    if np.any(norms <= 1e-12):
        raise FeatureInputError(f"{int(np.sum(norms <= 1e-12))} 2D embedding(s) are all zeros: no direction, "
                                "so no cosine distance; give those faces NaN rows instead")
    return X / norms


def cosine_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``1 − a·b`` for unit rows, clipped to [0, 2] (rounding can leave −1e-16)."""
    out = A @ B.T
    np.subtract(1.0, out, out=out)
    return np.clip(out, 0.0, 2.0, out=out)


def shrunk_covariance(Z: np.ndarray) -> tuple[np.ndarray, float]:
    """Ledoit-Wolf covariance of the rows of ``Z`` and its shrinkage coefficient (0 = sample covariance)."""
    lw = LedoitWolf().fit(Z)
    return lw.covariance_, float(lw.shrinkage_)


def whitener(cov: np.ndarray) -> np.ndarray:
    """``W`` with ``‖(x − y)·W‖ = sqrt((x − y)ᵀ Σ⁻¹ (x − y))``: ``W = L⁻ᵀ`` for the Cholesky factor ``Σ = L·Lᵀ``.

    A covariance that is not positive definite (only possible if shrinkage was 0 on rank-deficient data) gets
    the smallest diagonal loading that makes it so, logged.
    """
    cov = np.asarray(cov, dtype=np.float64)
    d = cov.shape[0]
    ridge = 0.0
    base = float(np.trace(cov)) / d if d else 1.0
    for _ in range(12):
        try:
            lower = cholesky(cov + ridge * np.eye(d), lower=True)
            break
        except LinAlgError:
            ridge = max(ridge * 10.0, 1e-10 * max(base, 1e-12))
    else:  # pragma: no cover - a trace-scaled ridge of 10 always succeeds
        raise FeatureInputError("the 3D covariance could not be made positive definite")
    if ridge:
        log.info("3D covariance not positive definite; added %.3g to its diagonal", ridge)
    return solve_triangular(lower, np.eye(d), lower=True).T


def mahalanobis_distances(A: np.ndarray, B: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Pairwise Mahalanobis distances between rows of ``A`` and ``B`` under covariance ``cov``."""
    W = whitener(cov)
    return euclidean_distances(A @ W, B @ W)


def robust_scale(points: np.ndarray, distance: str) -> float:
    """Median pairwise distance of ``points`` ("cosine", "euclidean", "sqeuclidean"), with the documented fallbacks."""
    n = points.shape[0]
    if n < 2 or points.shape[1] == 0:
        return 1.0
    if n > MEDIAN_SAMPLE:
        rows = np.random.default_rng(MEDIAN_SEED).choice(n, MEDIAN_SAMPLE, replace=False)
        points = points[rows]
        n = MEDIAN_SAMPLE
    if distance == "cosine":
        full = cosine_distances(points, points)
    else:
        full = euclidean_distances(points, points, squared=distance == "sqeuclidean")
    pairs = full[np.triu_indices(n, k=1)]
    median = float(np.median(pairs))
    if median > ZERO_DISTANCE:
        return median
    positive = pairs[pairs > ZERO_DISTANCE]
    return float(positive.mean()) if positive.size else 1.0


def _pairwise(points: np.ndarray, distance: str) -> np.ndarray:
    if distance == "cosine":
        out = cosine_distances(points, points)
    else:
        out = euclidean_distances(points, points, squared=distance == "sqeuclidean")
    np.fill_diagonal(out, 0.0)
    return out


def pose_points(yaw_deg: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """``(n, 3)`` pose vectors ``c·(1, cos yaw, sin yaw)``; a face whose yaw or confidence is unknown (NaN) gets
    ``c = 0``: with no evidence that its 3D fit can be trusted, its pairs use the 2D term only."""
    yaw = np.radians(np.asarray(yaw_deg, dtype=np.float64))
    c = np.asarray(confidence, dtype=np.float64)
    if yaw.shape != c.shape or yaw.ndim != 1:
        raise FeatureInputError(f"yaw and confidence must be two 1-D arrays of one value per face, got shapes "
                                f"{yaw.shape} and {c.shape}")
    known = np.isfinite(yaw) & np.isfinite(c)
    if np.any(known & ((c < 0) | (c > 1))):
        raise FeatureInputError("fit confidences must lie in [0, 1] (landmark_quality), got values outside")
    c = np.where(known, c, 0.0)
    yaw = np.where(known, yaw, 0.0)
    return np.stack([c, c * np.cos(yaw), c * np.sin(yaw)], axis=1).astype(np.float32)


def table_pose_points(table: Mapping | None, n: int) -> tuple[np.ndarray | None, str]:
    """Pose vectors of ``n`` faces from a table (or mapping) with :data:`POSE_COLUMNS`, one row per face; None and
    the reason when there is no such table."""
    if table is None:
        return None, "no pose (yaw, landmark_quality) given"
    missing = [c for c in POSE_COLUMNS if c not in table]
    if missing:
        return None, f"the pose table has no {', '.join(missing)}"
    columns = [pd.to_numeric(pd.Series(table[c]), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
               for c in POSE_COLUMNS]
    if any(col.shape != (n,) for col in columns):
        raise FeatureInputError(f"pose must give one {'/'.join(POSE_COLUMNS)} per face ({n}), got "
                                f"{[col.shape[0] for col in columns]} rows")
    return pose_points(*columns), ""


def pose_weights(a: np.ndarray, b: np.ndarray, mode: str, paired: bool = False) -> np.ndarray:
    """``w`` between pose vectors: ``(len(a), len(b))``, or per row pair ``(a[e], b[e])`` with ``paired``."""
    if paired:
        conf = a[:, 0] * b[:, 0]
        view = np.einsum("ij,ij->i", a[:, 1:], b[:, 1:])
    else:
        conf = np.outer(a[:, 0], b[:, 0])
        view = a[:, 1:] @ b[:, 1:].T
    np.maximum(view, 0.0, out=view)
    if mode == "same_view":
        return view
    if mode == "cross_view":
        return 2.0 * conf - view
    raise FeatureInputError(f"pose_weighting must be one of {POSE_WEIGHTINGS[1:]} here, got {mode!r}")


def fuse(d2: np.ndarray, d3: np.ndarray, lam: float, weight: np.ndarray | None = None) -> np.ndarray:
    """``λ_ij·d2 + (1 − λ_ij)·d3`` with ``1 − λ_ij = min(1, (1 − λ)·w_ij)`` (``weight`` None: ``w = 1``), float32
    when the parts are; ``d2``/``d3`` are the normalised block distances. λ = 1 is the 2D term whatever ``w``."""
    if weight is None or lam == 1.0:
        if lam == 1.0:
            return d2.copy()
        if lam == 0.0:
            return d3.copy()
        out = d2 * d2.dtype.type(lam)
        out += d2.dtype.type(1.0 - lam) * d3
        return out
    share = np.minimum(weight * (1.0 - lam), 1.0).astype(d2.dtype, copy=False)
    out = d3 - d2
    out *= share
    out += d2
    return out


@dataclass(frozen=True, eq=False)
class BlockStandardiser:
    """Per-block column standardisation fitted on data: constant columns are dropped, not divided by zero."""

    names: tuple[str, ...]
    scalers: tuple[StandardScaler, ...]
    keep: tuple[np.ndarray, ...]
    per_block_scale: bool

    @classmethod
    def fit(cls, blocks: Mapping[str, np.ndarray], names: Sequence[str],
            per_block_scale: bool = False) -> BlockStandardiser:
        """``per_block_scale`` also divides each block by sqrt(its kept width) so each block weighs the same."""
        scalers, keep = [], []
        for name in names:
            scaler = StandardScaler().fit(blocks[name])
            scalers.append(scaler)
            keep.append(np.sqrt(scaler.var_) > CONSTANT_STD * np.maximum(1.0, np.abs(scaler.mean_)))
        return cls(tuple(names), tuple(scalers), tuple(keep), per_block_scale)

    @property
    def n_kept(self) -> int:
        return int(sum(k.sum() for k in self.keep))

    def transform(self, blocks: Mapping[str, np.ndarray]) -> np.ndarray:
        parts = []
        for name, scaler, keep in zip(self.names, self.scalers, self.keep, strict=True):
            z = scaler.transform(blocks[name])[:, keep]
            if self.per_block_scale and keep.any():
                z = z / np.sqrt(keep.sum())
            parts.append(z)
        n = next(iter(blocks.values())).shape[0]
        return np.hstack(parts) if parts else np.zeros((n, 0))


@dataclass(frozen=True, eq=False)
class FusedMetric:
    """Per-block pieces of the fused distance, computed ONCE from the faces, so a new λ costs one weighted sum.

    ``points_2d`` / ``points_3d`` are the faces in the spaces where the two terms are simple: unit 2D vectors and
    whitened 3D rows ("metric"), or standardised blocks ("concat"); float32, like the cached matrices, because
    every Lloyd step multiplies them and float32 halves that time (distances ~1 need no more digits).
    :attr:`block_distances` caches the two normalised n×n matrices; :meth:`pairwise` combines them for any λ.
    A block that is absent (or whose columns are all constant) contributes 0 and ``has_2d`` / ``has_3d`` say so.
    ``points_pose`` holds the faces' pose vectors (:func:`pose_points`; ``(n, 0)`` when ``pose_weighting`` is "off").
    """

    fusion: str
    name_2d: str | None
    names_3d: tuple[str, ...]
    points_2d: np.ndarray
    points_3d: np.ndarray
    scale_2d: float
    scale_3d: float
    standardiser_2d: BlockStandardiser | None
    standardiser_3d: BlockStandardiser | None
    whitener_3d: np.ndarray | None
    shrinkage_3d: float | None
    points_pose: np.ndarray
    pose_weighting: str

    @classmethod
    def fit(cls, X: Features | Mapping[str, np.ndarray], *, fusion: str = "metric", block_2d: str = BLOCK_2D,
            blocks_3d: Sequence[str] | None = None, pose: np.ndarray | None = None,
            pose_weighting: str = "off") -> FusedMetric:
        """Fit on faces whose rows are all finite (drop NaN rows first: see :func:`valid_rows`); ``pose`` holds
        their pose vectors (:func:`pose_points`), needed unless ``pose_weighting`` is "off"."""
        if fusion not in FUSIONS:
            raise FeatureInputError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if pose_weighting not in POSE_WEIGHTINGS:
            raise FeatureInputError(f"pose_weighting must be one of {POSE_WEIGHTINGS}, got {pose_weighting!r}")
        blocks = as_blocks(X)
        name_2d, names_3d = split_names(blocks, block_2d, blocks_3d)
        used = ([name_2d] if name_2d else []) + list(names_3d)
        if not valid_rows(blocks, used).all():
            raise FeatureInputError("FusedMetric.fit needs finite rows only; drop NaN/inf faces first")
        n = blocks[used[0]].shape[0]
        if n == 0:
            raise FeatureInputError("no faces to fit the fused metric on")
        std_2d = std_3d = whiten = shrinkage = None
        if fusion == "metric":
            p2 = unit_rows(blocks[name_2d]) if name_2d else np.zeros((n, 0))
            std_3d = BlockStandardiser.fit(blocks, names_3d)
            z3 = std_3d.transform(blocks)
            if z3.shape[1]:
                cov, shrinkage = shrunk_covariance(z3)
                whiten = whitener(cov)
                p3 = z3 @ whiten
            else:
                p3 = z3
            kind_2d, kind_3d = "cosine", "euclidean"
        else:
            std_2d = BlockStandardiser.fit(blocks, [name_2d] if name_2d else [], per_block_scale=True)
            std_3d = BlockStandardiser.fit(blocks, names_3d, per_block_scale=True)
            p2, p3 = std_2d.transform(blocks), std_3d.transform(blocks)
            kind_2d = kind_3d = "sqeuclidean"
        if names_3d and p3.shape[1] == 0:
            warnings.warn(f"every column of the 3D block(s) {list(names_3d)} is constant: the 3D term is 0 and "
                          "only the 2D term separates faces", stacklevel=2)
        points_pose = np.zeros((n, 0), np.float32)
        if pose_weighting != "off":
            if fusion != "metric":
                raise FeatureInputError(f"pose_weighting={pose_weighting!r} needs fusion='metric' (a per-pair weight "
                                        "has no weighted concatenation)")
            if pose is None or np.shape(pose) != (n, 3):
                raise FeatureInputError(f"pose_weighting={pose_weighting!r} needs one pose vector per face, (n, 3) "
                                        f"from pose_points(), got {None if pose is None else np.shape(pose)}")
            points_pose = np.asarray(pose, dtype=np.float32)
        metric = cls(fusion=fusion, name_2d=name_2d, names_3d=names_3d, points_2d=p2.astype(np.float32),
                     points_3d=p3.astype(np.float32),
                     scale_2d=robust_scale(p2, kind_2d), scale_3d=robust_scale(p3, kind_3d),
                     standardiser_2d=std_2d, standardiser_3d=std_3d, whitener_3d=whiten, shrinkage_3d=shrinkage,
                     points_pose=points_pose, pose_weighting=pose_weighting)
        log.debug("fused metric (%s) on %d faces: s2=%.4g s3=%.4g shrinkage=%s", fusion, n, metric.scale_2d,
                  metric.scale_3d, shrinkage)
        return metric

    @property
    def n_faces(self) -> int:
        return self.points_2d.shape[0]

    @property
    def has_2d(self) -> bool:
        return self.points_2d.shape[1] > 0

    @property
    def has_3d(self) -> bool:
        return self.points_3d.shape[1] > 0

    @property
    def pose_weighted(self) -> bool:
        """Whether the 3D term's weight varies per pair (see the module docstring)."""
        return self.pose_weighting != "off" and self.has_3d

    def pose_weights(self, rows: np.ndarray | None, against: np.ndarray | None = None,
                     paired: bool = False) -> np.ndarray | None:
        """``w`` between the faces ``rows`` (None: all) and the pose vectors ``against`` (None: those same faces;
        e.g. centroids' ``"pose"``), or per row pair with ``paired``. None when the weighting is off."""
        if not self.pose_weighted:
            return None
        a = self.points_pose if rows is None else self.points_pose[rows]
        return pose_weights(a, a if against is None else np.asarray(against, np.float32), self.pose_weighting,
                            paired=paired)

    def face_points(self, faces: np.ndarray) -> dict[str, np.ndarray]:
        """The faces ``faces`` as centroids (copies, keys as :meth:`centroids`): K-Means seeds, refilled clusters."""
        out = {"2d": self.points_2d[faces].copy(), "3d": self.points_3d[faces].copy()}
        if self.points_pose.shape[1]:
            out["pose"] = self.points_pose[faces].copy()
        return out

    @property
    def kinds(self) -> tuple[str, str]:
        """The distance of the 2D and the 3D block: cosine and Euclidean (whitened: Mahalanobis) for "metric",
        squared Euclidean for both under "concat" (whose fused distance is a weighted sum of squares)."""
        return ("cosine", "euclidean") if self.fusion == "metric" else ("sqeuclidean", "sqeuclidean")

    def transform(self, X: Features | Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """New faces in the fitted spaces (same scalers, whitener), e.g. to place them among fitted centroids."""
        blocks = as_blocks(X)
        n = next(iter(blocks.values())).shape[0]
        if self.fusion == "metric":
            p2 = unit_rows(blocks[self.name_2d]) if self.name_2d else np.zeros((n, 0))
            z3 = self.standardiser_3d.transform(blocks)
            p3 = z3 @ self.whitener_3d if self.whitener_3d is not None else z3
        else:
            p2, p3 = self.standardiser_2d.transform(blocks), self.standardiser_3d.transform(blocks)
        return p2.astype(np.float32), p3.astype(np.float32)

    @cached_property
    def block_distances(self) -> tuple[np.ndarray, np.ndarray]:
        """The two normalised n×n matrices (cosine/s2 and Mahalanobis/s3; squared parts for "concat").

        Stored as float32 (distances ~1, 7 significant digits are plenty): half the memory, and every slider
        step (weighted sum, DBSCAN, seeding, silhouette) reads them at twice the speed.
        """
        kind = self.kinds
        out = []
        for points, scale, k in ((self.points_2d, self.scale_2d, kind[0]), (self.points_3d, self.scale_3d, kind[1])):
            if points.shape[1] == 0:
                out.append(np.zeros((self.n_faces, self.n_faces), dtype=np.float32))
            else:
                matrix = _pairwise(points, k)
                matrix /= scale
                out.append(matrix.astype(np.float32))
        return out[0], out[1]

    def pairwise(self, lam: float, rows: np.ndarray | None = None) -> np.ndarray:
        """The fused n×n (float32) distance for weight ``lam`` (optionally among ``rows`` only), from the cache."""
        d2, d3 = self.block_distances
        if rows is not None:
            d2, d3 = d2[np.ix_(rows, rows)], d3[np.ix_(rows, rows)]
        weight = self.pose_weights(rows) if lam < 1.0 else None
        return fuse(d2, d3, lam, weight)

    def centroids(self, labels: np.ndarray, k: int, rows: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Per-block centroids of clusters 0..k−1: normalised mean for unit 2D vectors, plain mean otherwise.

        Returns ``{"2d": (k, d2), "3d": (k, d3)}`` and, with pose weighting, ``"pose": (k, 3)`` (the members' mean
        pose vector); an empty cluster's rows are NaN.
        """
        p2 = self.points_2d if rows is None else self.points_2d[rows]
        p3 = self.points_3d if rows is None else self.points_3d[rows]
        pp = self.points_pose if rows is None else self.points_pose[rows]
        member = np.flatnonzero(labels >= 0)
        onehot = csr_matrix((np.ones(member.shape[0], dtype=np.float32), (labels[member], member)),
                            shape=(k, labels.shape[0]))
        counts = np.bincount(labels[member], minlength=k)[:, None].astype(np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            c2 = onehot @ p2 / counts
            c3 = onehot @ p3 / counts
            cp = onehot @ pp / counts if pp.shape[1] else None
        if self.fusion == "metric" and self.has_2d:
            norms = np.linalg.norm(c2, axis=1, keepdims=True)
            flat = (norms[:, 0] <= 1e-12) & (counts[:, 0] > 0)
            if flat.any():  # members cancel out exactly: keep the direction of the cluster's first member
                first = np.array([np.flatnonzero(labels == j)[0] for j in np.flatnonzero(flat)])
                c2[flat] = p2[first]
                norms[flat] = 1.0
            c2 = c2 / norms
        return {"2d": c2, "3d": c3} if cp is None else {"2d": c2, "3d": c3, "pose": cp}

    def to_centroids(self, lam: float, centroids: Mapping[str, np.ndarray],
                     rows: np.ndarray | None = None) -> np.ndarray:
        """Fused distances (n, k) from faces (or ``rows`` of them) to per-block centroids, same normalisation."""
        n = self.n_faces if rows is None else rows.shape[0]
        out = np.zeros((n, centroids["2d"].shape[0]))
        if self.pose_weighted and lam < 1:
            d2 = (cosine_distances(self.points_2d if rows is None else self.points_2d[rows], centroids["2d"])
                  / self.scale_2d).astype(np.float64) if self.has_2d else out
            p3 = self.points_3d if rows is None else self.points_3d[rows]
            d3 = np.sqrt(self._squared(p3, self._sq_norms[1], rows, centroids["3d"]), dtype=np.float64) / self.scale_3d
            return fuse(d2, d3, lam, self.pose_weights(rows, centroids["pose"]))
        if self.has_2d and lam > 0:
            p2 = self.points_2d if rows is None else self.points_2d[rows]
            if self.fusion == "metric":
                out += (lam / self.scale_2d) * cosine_distances(p2, centroids["2d"])
            else:
                out += (lam / self.scale_2d) * self._squared(p2, self._sq_norms[0], rows, centroids["2d"])
        if self.has_3d and lam < 1:
            p3 = self.points_3d if rows is None else self.points_3d[rows]
            d3 = self._squared(p3, self._sq_norms[1], rows, centroids["3d"])
            if self.fusion == "metric":
                np.sqrt(d3, out=d3)
            out += ((1.0 - lam) / self.scale_3d) * d3
        return out

    @cached_property
    def _sq_norms(self) -> tuple[np.ndarray, np.ndarray]:
        p2, p3 = self.points_2d, self.points_3d
        return np.einsum("ij,ij->i", p2, p2), np.einsum("ij,ij->i", p3, p3)

    @staticmethod
    def _squared(points: np.ndarray, sq_norms: np.ndarray, rows: np.ndarray | None, centres: np.ndarray) -> np.ndarray:
        """Squared Euclidean distances by the dot-product expansion, clipped at 0 (no validation overhead)."""
        norms = sq_norms if rows is None else sq_norms[rows]
        out = points @ centres.T
        out *= -2.0
        out += norms[:, None]
        out += np.einsum("ij,ij->i", centres, centres)[None, :]
        return np.maximum(out, 0.0, out=out)

    def concat_features(self, lam: float) -> np.ndarray:
        """("concat" only) the weighted concatenation whose squared Euclidean distances are :meth:`pairwise`."""
        if self.fusion != "concat":
            raise FeatureInputError("concat_features is defined for fusion='concat' only")
        return np.hstack([self.points_2d * np.sqrt(lam / self.scale_2d),
                          self.points_3d * np.sqrt((1.0 - lam) / self.scale_3d)])
