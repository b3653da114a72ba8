"""A linear 3D morphable face model, and its fit to the 68 2D landmarks of one photo.

The fit minimises, over identity ``alpha``, expression ``beta`` and a scaled orthographic pose
``(s, R, t)``::

    E = sum_k w_k |(q_k - t) / s - P R (mean + U alpha + B beta)_k|^2 / d0^2
        + reg_identity * |alpha|^2 + reg_expression * |beta|^2,     beta in [0, 1] (blend shapes)

where ``q_k`` are the landmarks with y pointing up, ``P`` keeps x and y, and ``d0`` is the model's
outer-eye-corner distance, so the landmark term is unit-free and the regularisers are read in prior
units (``alpha`` is prior-normalised: each identity mode is stored as its one-standard-deviation
offset, see :class:`MorphableModel`). It alternates a closed-form pose (affine camera by least
squares, projected onto the nearest scaled rotation) with one bounded linear least-squares solve
given the rotation, in which scale and translation are solved together with ``(alpha, beta)``
(linear in ``(s, t, s*alpha, s*beta)``; alternating them instead crawls, because a larger face at a
smaller scale fits nearly as well). Eight rounds converge to ~0.002 prior units on real faces. The
expression is fitted so that it does not leak into the identity, then discarded by the descriptors.

Jaw-line landmarks 0-16 trace the face's outline, which on a turned face is the silhouette, not a
fixed vertex: ``contour="march"`` moves each of landmarks 0-5 and 11-16 along a horizontal row of
candidate vertices to the one furthest out in the image at the current pose (landmark marching);
``"weight"`` (the default) keeps fixed vertices and down-weights them (0.3); ``"fixed"`` trusts them
fully. In benchmarks/identity_3d.py (figures in benchmarks/README.md) down-weighting is the one that helps
in-the-wild photos (lfw10), ties on the studio sets, and it is the cheapest.

Priors: ``alpha`` is in prior units, so ``reg_identity`` is (landmark noise / eye-corner distance)^2 in
a MAP reading; 1e-3 (about 3 % of the eye-corner distance, dlib's typical error) did as well as or
better than 1e-4 and 1e-2 in the measurements. ``beta`` gets a ridge (1e-2, better than 1e-3 and
1e-4 on orl/yale) within the bounds [0, 1] of blend-shape weights.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

import numpy as np
from scipy.linalg import LinAlgError, cholesky, solve_triangular
from scipy.optimize import lsq_linear, nnls
from threadpoolctl import ThreadpoolController

from ..config import shared_datasets_candidates
from ..errors import FaceclusterError, ModelMissingError

log = logging.getLogger(__name__)

#: Environment variable naming the morphable model file (.npz).
ENV_3DMM = "FACECLUSTER_3DMM"
#: Where the default model lies inside the shared folder (beside ``shared/datasets``).
DEFAULT_MODEL_RELPATH = Path("morphable_models") / "ict_face_light" / "ict_face_light.npz"
#: Identity modes the fit solves for: the first 80, as in the method this follows.
N_IDENTITY_FIT = 80

#: iBUG 68 landmark that each landmark becomes when the face is mirrored left/right.
MIRROR_68 = np.array(
    [16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,
     26, 25, 24, 23, 22, 21, 20, 19, 18, 17,
     27, 28, 29, 30, 35, 34, 33, 32, 31,
     45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
     54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65],
    dtype=np.intp,
)
#: The jaw-line landmarks (outline of the face).
CONTOUR_68 = np.arange(17)
#: Jaw-line landmarks whose vertex may move to the silhouette; 6-10 (round the chin) stay put because
#: the jaw runs nearly horizontally there, so a horizontal row of candidates would not follow it.
MARCHING_68 = np.array([0, 1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 16])
#: Outer eye corners, whose distance normalises residuals (image) and the landmark term (model).
EYE_OUTER_68 = (36, 45)

#: Names the loader accepts for each array of a BFM-style file (first present wins). Coordinates are
#: interleaved ``x1, y1, z1, x2, ...``; ``identity_std`` / ``expression_std`` are per-mode standard
#: deviations (BFM 2009's ``shapeEV``), multiplied into the bases so that the coefficients are
#: prior-normalised; leave them out when the bases are already scaled that way.
BFM_KEYS: dict[str, tuple[str, ...]] = {
    "mean": ("shapeMU", "mu_shape", "mean_shape"),
    "identity": ("shapePC", "w_shape", "shape_basis"),
    "identity_std": ("shapeEV", "sigma_shape"),
    "expression": ("expPC", "w_exp", "expression_basis"),
    "expression_std": ("expEV", "sigma_exp"),
    "expression_mean": ("expMU", "mu_exp"),
    "triangles": ("tri", "triangles", "faces"),
    "landmarks68": ("kpt_ind", "landmarks68", "keypoints"),
}


@dataclass(frozen=True, eq=False)
class MorphableModel:
    """A face model ``S = mean + sum_i alpha_i identity[i] + sum_j beta_j expression[j]``.

    Arrays are vertex offsets, +y up and +z out of the face. ``identity[i]`` is the offset of one
    prior standard deviation of mode ``i``, so ``alpha ~ N(0, I)`` a priori: ICT FaceKit samples its
    identity weights from a standard normal (``randomize_identity``), and the BFM loader scales its
    unit bases by their standard deviations. ``expression_bounds`` is ``(0, 1)`` for blend shapes
    (ARKit, ICT) and ``(-inf, inf)`` for a PCA expression basis with a unit prior.
    """

    mean: np.ndarray
    identity: np.ndarray
    expression: np.ndarray
    expression_names: tuple[str, ...]
    triangles: np.ndarray
    landmarks68: np.ndarray
    expression_bounds: tuple[float, float] = (0.0, 1.0)
    source: str = ""

    @property
    def n_vertices(self) -> int:
        return int(self.mean.shape[0])

    @property
    def n_identity(self) -> int:
        return int(self.identity.shape[0])

    @property
    def n_expression(self) -> int:
        return int(self.expression.shape[0])

    def shape(self, alpha: np.ndarray | None = None, beta: np.ndarray | None = None) -> np.ndarray:
        """Vertices ``(N, 3)`` for identity ``alpha`` (first ``len(alpha)`` modes) and expression ``beta``."""
        out = self.mean.astype(np.float64)
        if alpha is not None and len(alpha):
            alpha = np.asarray(alpha, dtype=np.float64)
            out = out + np.tensordot(alpha, self.identity[: len(alpha)], axes=1)
        if beta is not None and len(beta):
            beta = np.asarray(beta, dtype=np.float64)
            out = out + np.tensordot(beta, self.expression[: len(beta)], axes=1)
        return out

    @cached_property
    def mirror_vertices(self) -> np.ndarray:
        """Vertex ``mirror_vertices[v]`` is where ``v`` lands when the mean face is mirrored in x."""
        from scipy.spatial import cKDTree

        mirrored = self.mean * np.array([-1.0, 1.0, 1.0])
        distance, index = cKDTree(self.mean).query(mirrored)
        scale = float(np.ptp(self.mean[:, 0]))
        if np.median(distance) > 1e-3 * scale:
            raise FaceclusterError(f"{self.source}: the mean face is not left/right symmetric; no mirror map")
        return index

    @cached_property
    def eye_outer_distance(self) -> float:
        """Outer-eye-corner distance of the mean face, in model units (ICT: cm)."""
        a, b = self.mean[self.landmarks68[list(EYE_OUTER_68)]]
        return float(np.linalg.norm(a - b))


def default_model_path() -> Path | None:
    """``$FACECLUSTER_3DMM``, else the ICT model under ``../shared/morphable_models`` if present."""
    env = os.environ.get(ENV_3DMM)
    if env:
        return Path(env).expanduser()
    for datasets in shared_datasets_candidates():
        candidate = datasets.parent / DEFAULT_MODEL_RELPATH
        if candidate.is_file():
            return candidate
    return None


def load_morphable_model(path: str | os.PathLike | None = None) -> MorphableModel:
    """Read a model ``.npz``: the ICT layout (see ``PROVENANCE.md`` beside it) or a BFM-style one
    (keys in :data:`BFM_KEYS`). No pickles are loaded."""
    resolved = Path(path).expanduser() if path is not None else default_model_path()
    if resolved is None or not resolved.is_file():
        where = resolved if resolved is not None else f"../shared/{DEFAULT_MODEL_RELPATH.as_posix()}"
        raise ModelMissingError(
            f"{where}: morphable model file not found; put ict_face_light.npz (ICT FaceKit, face area) "
            f"at ../shared/{DEFAULT_MODEL_RELPATH.as_posix()} or point ${ENV_3DMM} at a model .npz"
        )
    try:
        with np.load(resolved, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError) as exc:
        raise FaceclusterError(f"{resolved}: not a readable numpy .npz without pickles ({exc})") from exc
    if "identity" in arrays and "mean" in arrays and arrays["mean"].ndim == 2:
        return _from_ict(arrays, resolved)
    return _from_bfm(arrays, resolved)


def _require(arrays: dict[str, np.ndarray], key: str, path: Path) -> np.ndarray:
    if key not in arrays:
        raise FaceclusterError(f"{path}: model file has no {key!r} array (has {', '.join(sorted(arrays))})")
    return arrays[key]


def _from_ict(arrays: dict[str, np.ndarray], path: Path) -> MorphableModel:
    mean = _require(arrays, "mean", path).astype(np.float64)
    identity = _require(arrays, "identity", path).astype(np.float64)
    expression = arrays.get("expression", np.zeros((0, *mean.shape)))
    names = arrays.get("expression_names", np.array([f"exp{j:02d}" for j in range(len(expression))]))
    return _checked(
        MorphableModel(
            mean=mean,
            identity=identity,
            expression=expression.astype(np.float64),
            expression_names=tuple(str(n) for n in names),
            triangles=_require(arrays, "triangles", path).astype(np.int64),
            landmarks68=_require(arrays, "landmarks68", path).astype(np.intp),
            expression_bounds=(0.0, 1.0),
            source=str(path),
        )
    )


def _pick(arrays: dict[str, np.ndarray], role: str) -> np.ndarray | None:
    for key in BFM_KEYS[role]:
        if key in arrays:
            return arrays[key]
    return None


def _from_bfm(arrays: dict[str, np.ndarray], path: Path) -> MorphableModel:
    found = {role: _pick(arrays, role) for role in BFM_KEYS}
    for role in ("mean", "identity", "triangles", "landmarks68"):
        if found[role] is None:
            raise FaceclusterError(
                f"{path}: neither the ICT layout (mean, identity, ...) nor a BFM-style model: no array "
                f"for {role!r} under any of {BFM_KEYS[role]} (file has {', '.join(sorted(arrays))})"
            )
    flat_mean = np.asarray(found["mean"], dtype=np.float64).reshape(-1)
    if flat_mean.size % 3:
        raise FaceclusterError(f"{path}: mean shape has {flat_mean.size} values, not a multiple of 3")
    n = flat_mean.size // 3
    if found["expression_mean"] is not None:
        flat_mean = flat_mean + np.asarray(found["expression_mean"], dtype=np.float64).reshape(-1)
    identity = _bfm_basis(found["identity"], found["identity_std"], n, "identity", path)
    expression = (_bfm_basis(found["expression"], found["expression_std"], n, "expression", path)
                  if found["expression"] is not None else np.zeros((0, n, 3)))
    triangles = np.asarray(found["triangles"]).astype(np.int64)
    if triangles.ndim == 2 and triangles.shape[0] == 3 and triangles.shape[1] != 3:
        triangles = triangles.T
    if triangles.size and triangles.min() == 1 and triangles.max() == n:
        triangles = triangles - 1  # MATLAB-style 1-based indices
    return _checked(
        MorphableModel(
            mean=flat_mean.reshape(n, 3),
            identity=identity,
            expression=expression,
            expression_names=tuple(f"exp{j:02d}" for j in range(len(expression))),
            triangles=triangles,
            landmarks68=np.asarray(found["landmarks68"]).reshape(-1).astype(np.intp),
            expression_bounds=(-np.inf, np.inf),
            source=str(path),
        )
    )


def _bfm_basis(basis: np.ndarray, std: np.ndarray | None, n: int, role: str, path: Path) -> np.ndarray:
    basis = np.asarray(basis, dtype=np.float64)
    if basis.ndim != 2 or basis.shape[0] != 3 * n:
        raise FaceclusterError(f"{path}: {role} basis has shape {basis.shape}, expected ({3 * n}, K)")
    if std is not None:
        std = np.asarray(std, dtype=np.float64).reshape(-1)
        if std.size != basis.shape[1]:
            raise FaceclusterError(f"{path}: {role} has {basis.shape[1]} modes but {std.size} deviations")
        basis = basis * std
    return basis.T.reshape(-1, n, 3)


def _checked(model: MorphableModel) -> MorphableModel:
    n = model.n_vertices
    where = model.source
    problems = []
    if model.mean.ndim != 2 or model.mean.shape[1] != 3:
        problems.append(f"mean has shape {model.mean.shape}, expected (N, 3)")
    if model.identity.ndim != 3 or model.identity.shape[1:] != (n, 3):
        problems.append(f"identity has shape {model.identity.shape}, expected (K, {n}, 3)")
    if model.expression.ndim != 3 or model.expression.shape[1:] != (n, 3):
        problems.append(f"expression has shape {model.expression.shape}, expected (E, {n}, 3)")
    if len(model.expression_names) != model.n_expression:
        problems.append(f"{len(model.expression_names)} expression names for {model.n_expression} modes")
    if model.triangles.ndim != 2 or model.triangles.shape[1] != 3:
        problems.append(f"triangles has shape {model.triangles.shape}, expected (T, 3)")
    elif model.triangles.size and (model.triangles.min() < 0 or model.triangles.max() >= n):
        problems.append(f"triangles index vertices outside 0..{n - 1}")
    if model.landmarks68.shape != (68,):
        problems.append(f"landmarks68 has shape {model.landmarks68.shape}, expected (68,)")
    elif model.landmarks68.min() < 0 or model.landmarks68.max() >= n:
        problems.append(f"landmarks68 index vertices outside 0..{n - 1}")
    if model.n_identity == 0:
        problems.append("no identity modes")
    if not problems and not all(np.isfinite(a).all() for a in (model.mean, model.identity, model.expression)):
        problems.append("non-finite values in mean, identity or expression")
    if problems:
        raise FaceclusterError(f"{where}: invalid morphable model: " + "; ".join(problems))
    return model


@dataclass(frozen=True)
class FitSettings:
    """Knobs of :class:`LandmarkFitter`; the defaults are the ones measured best (benchmarks/identity_3d.py).

    ``reg_identity`` / ``reg_expression`` weigh ``|alpha|^2`` / ``|beta|^2`` against the squared landmark
    residual in units of the model's outer-eye-corner distance. ``contour`` is ``"march"``, ``"weight"``
    or ``"fixed"`` (see the module docstring); ``contour_weight`` is the weight of landmarks 0-16 under
    ``"weight"``. ``fit_expression=False`` solves identity alone. ``landmark_weights`` (68 values)
    multiply the per-landmark weights; ``march_band`` is the height of a marching row of candidate
    vertices, as a fraction of the model's height.
    """

    n_identity: int = N_IDENTITY_FIT
    reg_identity: float = 1e-3
    reg_expression: float = 1e-2
    iterations: int = 8
    tolerance: float = 1e-4
    contour: str = "weight"
    contour_weight: float = 0.3
    fit_expression: bool = True
    march_band: float = 0.01
    landmark_weights: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.landmark_weights is not None:
            weights = tuple(float(w) for w in self.landmark_weights)
            if len(weights) != 68 or min(weights) < 0:
                raise FaceclusterError("landmark_weights must be 68 non-negative numbers")
            object.__setattr__(self, "landmark_weights", weights)
        if self.contour not in ("march", "weight", "fixed"):
            raise FaceclusterError(f"contour must be 'march', 'weight' or 'fixed', not {self.contour!r}")
        if self.n_identity < 1 or self.iterations < 1:
            raise FaceclusterError("n_identity and iterations must be at least 1")
        if self.reg_identity <= 0 or self.reg_expression < 0 or self.contour_weight < 0:
            raise FaceclusterError("reg_identity must be > 0; reg_expression and contour_weight >= 0")


@dataclass(frozen=True, eq=False)
class MorphableFit:
    """One face's fit: identity ``alpha`` (prior units), expression ``beta``, pose, and how well it fits.

    The pose maps a model point ``X`` to image pixels as ``u = s * (R X)[0] + t[0]``,
    ``v = -(s * (R X)[1] + t[1])`` (the image's y axis points down, the model's up). ``rms_px`` is the
    landmark residual in pixels, ``rms_iod`` the same divided by the outer-eye-corner distance.
    ``landmark_vertices`` are the 68 vertices the landmarks ended on (jaw-line ones move when marching).
    """

    alpha: np.ndarray
    beta: np.ndarray
    scale: float
    R: np.ndarray
    t: np.ndarray
    rms_px: float
    rms_iod: float
    iterations: int
    landmark_vertices: np.ndarray
    projected: np.ndarray

    @property
    def angles_deg(self) -> tuple[float, float, float]:
        """``(yaw, pitch, roll)`` in degrees, ``R = Rz(roll) Rx(pitch) Ry(yaw)``."""
        return rotation_angles(self.R)


def rotation_angles(R: np.ndarray) -> tuple[float, float, float]:
    """Yaw (about y), pitch (about x), roll (about z) in degrees of ``R = Rz(roll) Rx(pitch) Ry(yaw)``."""
    pitch = np.arcsin(np.clip(R[2, 1], -1.0, 1.0))
    yaw = np.arctan2(-R[2, 0], R[2, 2])
    roll = np.arctan2(-R[0, 1], R[1, 1])
    return float(np.degrees(yaw)), float(np.degrees(pitch)), float(np.degrees(roll))


def rotation_from_angles(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """The rotation whose :func:`rotation_angles` are ``(yaw, pitch, roll)`` degrees."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def project(points3d: np.ndarray, scale: float, R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Image coordinates (y down) of model points under a scaled orthographic pose."""
    xy = scale * (np.asarray(points3d, dtype=np.float64) @ R[:2].T) + t
    return xy * np.array([1.0, -1.0])


class LandmarkFitter:
    """Fits a :class:`MorphableModel` to 68 image landmarks; holds the per-model precomputation
    (landmark rows of the bases, silhouette candidates), read-only after construction."""

    def __init__(self, model: MorphableModel, settings: FitSettings | None = None) -> None:
        self.model = model
        self.settings = settings or FitSettings()
        k = min(self.settings.n_identity, model.n_identity)
        self.n_identity = k
        self.n_expression = model.n_expression if self.settings.fit_expression else 0
        self._mean = model.mean.astype(np.float64)
        self._d0 = model.eye_outer_distance
        given = self.settings.landmark_weights
        weights = np.ones(68) if given is None else np.array(given)
        if self.settings.contour == "weight":
            weights[CONTOUR_68] *= self.settings.contour_weight
        self._weights = weights
        # Vertex-major bases (V, 3, K + E) of just the vertices the fit can touch: a contiguous gather
        # per iteration instead of a strided one over all modes of all vertices.
        candidates = self._march_candidates() if self.settings.contour == "march" else []
        touched = np.unique(np.concatenate([model.landmarks68, *[c for _, c in candidates]]).astype(np.intp))
        self._slot = {int(v): i for i, v in enumerate(touched)}
        blocks = [model.identity[:k, touched]]
        if self.n_expression:
            blocks.append(model.expression[:, touched])
        stacked = np.concatenate(blocks, axis=0).transpose(1, 2, 0)
        self._basis = np.ascontiguousarray(stacked, dtype=np.float64)
        self._touched_mean = self._mean[touched]
        self._candidates = [(k_, np.array([self._slot[int(v)] for v in c]), c) for k_, c in candidates]

    def _march_candidates(self) -> list[tuple[int, np.ndarray]]:
        """For each marching landmark, the vertices on its horizontal row, from it halfway to the nose."""
        mean = self._mean
        band = self.settings.march_band * float(np.ptp(mean[:, 1]))
        out = []
        for k in MARCHING_68:
            v = self.model.landmarks68[k]
            x, y, _ = mean[v]
            inward = np.abs(mean[:, 0]) <= abs(x) + 1e-9
            same_side = np.sign(mean[:, 0]) == np.sign(x)
            lateral = np.abs(mean[:, 0]) >= 0.5 * abs(x)
            row = np.abs(mean[:, 1] - y) <= band
            front = mean[:, 2] >= mean[v, 2] - 1e-9
            cand = np.flatnonzero(inward & same_side & lateral & row & front)
            out.append((int(k), np.union1d(cand, [v]).astype(np.intp)))
        return out

    def fit(self, points68: np.ndarray) -> MorphableFit:
        """Fit identity, expression and pose to ``points68`` ``(68, 2)``, image pixels, y down."""
        with single_threaded_blas():
            return self._fit(points68)

    def _fit(self, points68: np.ndarray) -> MorphableFit:
        points = _checked_points(points68)
        q = points * np.array([1.0, -1.0])
        settings = self.settings
        coeffs = np.zeros(self.n_identity + self.n_expression)
        vertices = self.model.landmarks68.astype(np.intp).copy()
        done = 0
        for done in range(1, settings.iterations + 1):  # noqa: B007 - the count is reported
            scale, R, t = _pose(self._shape_at(vertices, coeffs), q, self._weights)
            if self._candidates:
                vertices = self._march(vertices, coeffs, R)
            new, scale, t = self._solve_shape(vertices, q, scale, R, t)
            change = float(np.abs(new - coeffs).max())
            coeffs = new
            if change < settings.tolerance:
                break
        X = self._shape_at(vertices, coeffs)
        scale, R, t = _pose(X, q, self._weights)
        projected = project(X, scale, R, t)
        rms = float(np.sqrt(np.mean(np.sum((projected - points) ** 2, axis=1))))
        iod = float(np.linalg.norm(points[EYE_OUTER_68[0]] - points[EYE_OUTER_68[1]]))
        beta = np.zeros(self.model.n_expression)
        beta[: self.n_expression] = coeffs[self.n_identity:]
        return MorphableFit(alpha=coeffs[: self.n_identity].copy(), beta=beta, scale=float(scale), R=R, t=t,
                            rms_px=rms, rms_iod=rms / iod if iod > 0 else float("nan"), iterations=done,
                            landmark_vertices=vertices, projected=projected)

    def _rows(self, vertices: np.ndarray) -> np.ndarray:
        return np.array([self._slot[int(v)] for v in vertices], dtype=np.intp)

    def _shape_at(self, vertices: np.ndarray, coeffs: np.ndarray) -> np.ndarray:
        rows = self._rows(vertices)
        return self._touched_mean[rows] + self._basis[rows] @ coeffs

    def _march(self, vertices: np.ndarray, coeffs: np.ndarray, R: np.ndarray) -> np.ndarray:
        vertices = vertices.copy()
        for k, rows, cand in self._candidates:
            image_x = (self._touched_mean[rows] + self._basis[rows] @ coeffs) @ R[0]
            side = np.sign(self._mean[self.model.landmarks68[k], 0])
            vertices[k] = cand[int(np.argmax(side * image_x))]
        return vertices

    def _solve_shape(self, vertices: np.ndarray, q: np.ndarray, scale: float, R: np.ndarray,
                     t: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        rows = self._rows(vertices)
        return solve_shape(self._touched_mean[rows], self._basis[rows], self._weights, q, scale, R,
                           d0=self._d0, n_identity=self.n_identity, settings=self.settings,
                           expression_bounds=self.model.expression_bounds)


def solve_shape(mean: np.ndarray, basis: np.ndarray, weights: np.ndarray, q: np.ndarray, scale: float,
                R: np.ndarray, d0: float, n_identity: int, settings: FitSettings,
                expression_bounds: tuple[float, float]) -> tuple[np.ndarray, float, np.ndarray]:
    """Bounded linear least squares for ``(alpha, beta)``, and scale and translation, at a fixed rotation.

    ``mean`` (P, 3) and ``basis`` (P, 3, K + E) are the fitted points' rows of the model, ``weights`` (P,)
    their weights and ``q`` (P, 2) their targets (y up). With ``R`` fixed the projection is linear in
    ``(s, t, s * alpha, s * beta)``, so scale and translation are solved with the shape instead of
    alternating with it (an alternation crawls along the valley where a bigger face at a smaller scale
    fits as well). The regularisers use the previous scale to turn ``s * alpha`` back into prior units.
    The unbounded unknowns are eliminated through a triangular factor of the stacked system, leaving a
    small square problem in ``s * beta``: non-negative least squares, re-solved with both bounds
    (``lsq_linear``) only when a blend shape would pass its upper bound."""
    n_points = len(mean)
    w = (np.sqrt(weights)[:, None] / (d0 * scale))[:, :, None]      # (P, 1, 1)
    P = R[:2]
    n_id = n_identity
    n_exp = basis.shape[2] - n_id
    n_free = 3 + n_id
    n = n_free + n_exp
    design = np.zeros((n_points, 2, n))
    design[:, :, 0] = mean @ P.T
    design[:, 0, 1] = 1.0
    design[:, 1, 2] = 1.0
    design[:, :, 3:] = np.einsum("dc,vcn->vdn", P, basis)
    m = 2 * n_points
    system = np.zeros((m + n_id + n_exp, n + 1))
    system[:m, :n] = (design * w).reshape(m, n)
    system[:m, -1] = (q[:, :, None] * w).reshape(m)
    system[m:m + n_id, 3:n_free] = np.sqrt(settings.reg_identity) / scale * np.eye(n_id)
    system[m + n_id:, n_free:n] = np.sqrt(settings.reg_expression) / scale * np.eye(n_exp)
    r = _triangular_factor(system)
    scaled_beta = np.zeros(0)
    if n_exp:
        r_bb, r_b = r[n_free:n, n_free:n], r[n_free:n, -1]
        lo, hi = expression_bounds
        bounds = (np.full(n_exp, lo) * scale, np.full(n_exp, hi) * scale)
        if lo == 0.0:
            scaled_beta, _ = nnls(r_bb, r_b)
            if np.isfinite(hi) and scaled_beta.max(initial=0.0) > bounds[1][0]:
                scaled_beta = lsq_linear(r_bb, r_b, bounds=bounds, method="bvls").x
        elif np.isfinite(lo) or np.isfinite(hi):
            scaled_beta = lsq_linear(r_bb, r_b, bounds=bounds, method="bvls").x
        else:
            scaled_beta = solve_triangular(r_bb, r_b)
    free = solve_triangular(r[:n_free, :n_free], r[:n_free, -1] - r[:n_free, n_free:n] @ scaled_beta)
    new_scale = float(free[0])
    if not new_scale > 0:
        raise FaceclusterError("landmark fit collapsed (non-positive scale); "
                               "the points are not a face")
    beta = np.clip(scaled_beta / new_scale, *expression_bounds)
    return np.concatenate([free[3:] / new_scale, beta]), new_scale, free[1:3]


def single_threaded_blas():
    """A context in which BLAS runs on one thread: the fit's matrices are ~140 wide, and on a machine busier
    than its cores BLAS threads waiting for each other made one 138x138 Cholesky take 30-60 ms instead of
    0.2-0.5 ms (and the Gram product 8 ms instead of 2)."""
    return _blas_controller().limit(limits=1, user_api="blas")


@cache
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()       # scans the loaded libraries once (~1 ms); limiting is then ~0.02 ms


def _triangular_factor(system: np.ndarray) -> np.ndarray:
    """Upper-triangular ``r`` with ``r.T @ r == system.T @ system``: Cholesky of the small Gram matrix (QR of
    the tall system cost ~35 ms for the dense fit's 900 rows, Cholesky ~4), QR when the Gram is singular
    (an exact fit leaves no residual in the last column)."""
    try:
        return cholesky(system.T @ system, lower=False)
    except LinAlgError:
        return np.linalg.qr(system, mode="r")


def _pose(X: np.ndarray, q: np.ndarray, weights: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scaled orthographic pose: weighted affine camera by least squares, projected onto s * rotation."""
    sw = np.sqrt(weights)[:, None]
    design = np.hstack([X, np.ones((len(X), 1))]) * sw
    solution, *_ = np.linalg.lstsq(design, q * sw, rcond=None)     # (4, 2)
    affine = solution[:3].T                                         # (2, 3)
    u, sv, vt = np.linalg.svd(affine, full_matrices=False)
    rows = u @ vt
    scale = float(sv.mean())
    R = np.vstack([rows, np.cross(rows[0], rows[1])])
    wsum = weights.sum()
    t = ((q - scale * X @ rows.T) * weights[:, None]).sum(axis=0) / wsum
    return scale, R, t


def _checked_points(points68: np.ndarray) -> np.ndarray:
    points = np.asarray(points68, dtype=np.float64)
    if points.shape != (68, 2):
        raise FaceclusterError(f"landmarks must be (68, 2) image points in the iBUG/dlib layout, "
                               f"got {points.shape}")
    if not np.isfinite(points).all():
        raise FaceclusterError("landmarks contain NaN or infinite coordinates")
    if np.ptp(points[:, 0]) <= 0 or np.ptp(points[:, 1]) <= 0:
        raise FaceclusterError("landmarks are degenerate (all on one line or one point)")
    return points


def mirror_landmarks(points68: np.ndarray) -> np.ndarray:
    """The 68 points of the mirror-image photo (x negated, left/right landmarks swapped).

    The fit ignores where the face sits in the image, so no image width is needed. Fitting these
    gives the model's mirror image of the face; training sets are doubled with them (see
    ``benchmarks/identity_3d.py`` and ``scripts/train_identity_projection.py``).
    """
    points = np.asarray(points68, dtype=np.float64)
    if points.shape != (68, 2):
        raise FaceclusterError(f"landmarks must be (68, 2) image points in the iBUG/dlib layout, "
                               f"got {points.shape}")
    return (points * np.array([-1.0, 1.0]))[MIRROR_68]


def synthesise_landmarks(model: MorphableModel, alpha: np.ndarray, beta: np.ndarray, scale: float,
                         R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The 68 image points (y down) of a model face at a pose: known answers for tests and benchmarks."""
    X = model.shape(alpha, beta)[model.landmarks68]
    return project(X, scale, R, np.asarray(t, dtype=np.float64))
