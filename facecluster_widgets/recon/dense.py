"""mediapipe's dense mesh as 3DMM fitting targets: which ICT vertex each mediapipe vertex is, and the fit.

On a turned face dlib's 68 points scatter over the cheek, and a fit to them collapses (3D identity of
cfp100's profiles clustered at chance). mediapipe's 468-point mesh, run on the same crop, keeps its
topology on profiles: each mesh vertex is a fixed anatomical point. :class:`MeshCorrespondence` says
which model vertex that is, found once (``scripts/build_mesh_correspondence.py``): mediapipe's mean
frontal face is aligned to the model's mean shape (similarity from named points, then ICP with a
per-axis scale on the inner face), and each mediapipe vertex takes its nearest model vertex. Vertices
on and next to mediapipe's face oval are left out (on a turned face they slide to the silhouette, so
they are no fixed point), as are those farther than ``max_distance`` from the model's surface.

:class:`DenseFitter` fits identity, expression and pose to those points' image positions with the
landmark fitter's solver. Each point is weighted by how squarely its model vertex faces the camera at
the current pose (``max(n_z, 0) ** visibility_power`` for the rotated vertex normal ``n``): points on
the far side of a turned face, which mediapipe can only guess, get no weight, and points near the
silhouette little. Weights are rescaled to sum to 68 so that the regularisers mean what they mean for
the 68-point fit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from ..errors import FaceclusterError, ModelFileError
from ..io.model_files import read_versioned_npz
from . import mediapipe_topology as topo
from .morphable import (
    FitSettings,
    MorphableFit,
    MorphableModel,
    _pose,
    project,
    single_threaded_blas,
    solve_shape,
)

#: The packaged correspondence, built by scripts/build_mesh_correspondence.py (see data/README.md).
PACKAGED_FILE = "mediapipe_to_ict.npz"
FORMAT_VERSION = 1

#: Pairs (mediapipe vertex, iBUG-68 landmark) at the same anatomical point, for the first alignment:
#: eye corners, nose bridge, tip and base, mouth corners, lip middles, chin.
ANCHORS: tuple[tuple[int, int], ...] = (
    (33, 36), (133, 39), (362, 42), (263, 45), (168, 27), (1, 30), (2, 33),
    (61, 48), (291, 54), (0, 51), (17, 57), (152, 8),
)
#: Eye outer corners in mediapipe's mesh (image left, image right), to normalise residuals.
EYE_OUTER_MESH = (33, 263)


@dataclass(frozen=True, eq=False)
class MeshCorrespondence:
    """``mesh[i]`` (a mediapipe vertex) sits at model vertex ``model[i]``; ``distance`` is how far the aligned
    mean mediapipe face was from that vertex, in model units (ICT: cm)."""

    mesh: np.ndarray
    model: np.ndarray
    distance: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        mesh, model = np.asarray(self.mesh, np.intp), np.asarray(self.model, np.intp)
        if mesh.ndim != 1 or mesh.shape != model.shape or len(mesh) == 0:
            raise FaceclusterError(f"correspondence needs two equal-length index vectors, got {mesh.shape} "
                                   f"and {model.shape}")
        if mesh.min() < 0 or mesh.max() >= topo.N_VERTICES or len(np.unique(mesh)) != len(mesh):
            raise FaceclusterError(f"correspondence mesh indices must be distinct vertices 0..{topo.N_VERTICES - 1}")
        object.__setattr__(self, "mesh", mesh)
        object.__setattr__(self, "model", model)
        object.__setattr__(self, "distance", np.asarray(self.distance, np.float64))

    def __len__(self) -> int:
        return len(self.mesh)

    def check_model(self, model: MorphableModel) -> None:
        if self.model.min() < 0 or self.model.max() >= model.n_vertices:
            raise FaceclusterError(f"correspondence indexes model vertices up to {self.model.max()}, but "
                                   f"{model.source or 'the model'} has {model.n_vertices}")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            np.savez(fh, format=np.int64(FORMAT_VERSION), mesh=self.mesh.astype(np.int32),
                     model=self.model.astype(np.int32), distance=self.distance.astype(np.float32),
                     meta=np.array(json.dumps(self.meta, sort_keys=True, default=str)))
        return path


def packaged_path() -> Path:
    return Path(str(resources.files("facecluster_widgets") / "data" / PACKAGED_FILE))


def load_correspondence(path: str | Path | None = None) -> MeshCorrespondence:
    """Read a correspondence written by :meth:`MeshCorrespondence.save` (default: the packaged one)."""
    file = Path(path) if path is not None else packaged_path()
    data = read_versioned_npz(file, "mesh correspondence", ("format", "mesh", "model", "distance", "meta"),
                              FORMAT_VERSION, f"build one with scripts/build_mesh_correspondence.py (the package "
                              f"ships data/{PACKAGED_FILE})")
    try:
        return MeshCorrespondence(mesh=data["mesh"], model=data["model"], distance=data["distance"],
                                  meta=data["meta"])
    except FaceclusterError as exc:
        raise ModelFileError(f"{file}: unreadable mesh correspondence ({exc})") from exc


def excluded_outline(rings: int = 1) -> np.ndarray:
    """mediapipe's face-oval vertices and ``rings`` rings of their neighbours: silhouette, not fixed points."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_FACE_OVAL

    out = {int(v) for edge in FACEMESH_FACE_OVAL for v in edge}
    tris = topo.tessellation_triangles()
    for _ in range(rings):
        touching = np.isin(tris, list(out)).any(axis=1)
        out |= {int(v) for v in tris[touching].ravel()}
    return np.array(sorted(out), dtype=np.intp)


def image_to_model_axes(vertices: np.ndarray) -> np.ndarray:
    """mediapipe's image-like axes (x right, y down, z away) to the model's (x right, y up, z out of the face)."""
    return np.asarray(vertices, dtype=np.float64) * np.array([1.0, -1.0, -1.0])


def build_correspondence(mean_mesh: np.ndarray, model: MorphableModel, max_distance: float = 0.6,
                         rings: int = 1, icp_rounds: int = 20) -> MeshCorrespondence:
    """Map mediapipe vertices to model vertices from a mean frontal mediapipe face (image-like axes).

    A similarity from :data:`ANCHORS`, then ICP rounds that refit a similarity plus per-axis scale
    (mediapipe's depth is on its own scale) to the nearest model vertices of the kept inner-face
    vertices; each kept vertex then takes its nearest model vertex, and pairs farther apart than
    ``max_distance`` (model units) are dropped.
    """
    src = image_to_model_axes(mean_mesh)
    if src.shape != (topo.N_VERTICES, 3) or not np.isfinite(src).all():
        raise FaceclusterError(f"mean mesh must be finite ({topo.N_VERTICES}, 3), got {src.shape}")
    target = model.mean.astype(np.float64)
    mesh_idx = np.array([a for a, _ in ANCHORS])
    lm_idx = model.landmarks68[[b for _, b in ANCHORS]]
    transform = _fit_scaled(src[mesh_idx], target[lm_idx], per_axis=False)
    keep = np.setdiff1d(np.arange(topo.N_VERTICES), excluded_outline(rings) if rings >= 0 else [])
    tree = cKDTree(target)
    for _ in range(icp_rounds):
        moved = transform(src)
        dist, nearest = tree.query(moved[keep])
        inner = dist <= np.quantile(dist, 0.8)
        transform = _fit_scaled(src[keep][inner], target[nearest[inner]], per_axis=True)
    dist, nearest = tree.query(transform(src)[keep])
    ok = dist <= max_distance
    return MeshCorrespondence(mesh=keep[ok], model=nearest[ok], distance=dist[ok],
                              meta={"max_distance": max_distance, "rings": rings, "icp_rounds": icp_rounds,
                                    "median_distance": float(np.median(dist[ok])),
                                    "n_excluded_outline": int(topo.N_VERTICES - len(keep)),
                                    "anchors": [list(pair) for pair in ANCHORS],
                                    "n_dropped_far": int((~ok).sum()), "model": model.source})


def _fit_scaled(src: np.ndarray, dst: np.ndarray, per_axis: bool):
    """Least-squares ``x -> R (s * (x - mu)) + nu`` (``s`` a scalar, or with ``per_axis`` one per source axis)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(a.T @ b)
    flip = np.array([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = (u * flip) @ vt                                  # b ~ (s * a) @ rot
    scale = np.full(3, (sig * flip).sum() / (a**2).sum())
    for _ in range(10 if per_axis else 0):                  # alternate per-axis scales and rotation
        scale = (a * (b @ rot.T)).sum(axis=0) / (a**2).sum(axis=0)
        u, _, vt = np.linalg.svd((a * scale).T @ b)
        flip = np.array([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
        rot = (u * flip) @ vt

    def transform(x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - mu_s) * scale) @ rot + mu_d

    return transform


@dataclass(frozen=True)
class DenseFitSettings:
    """Knobs of :class:`DenseFitter`: ``visibility_power`` shapes the facing weight ``max(n_z, 0) ** p``
    (0 trusts every point, as the 68-point fit does); ``min_points`` is the fewest weighted points a fit
    needs, else it is refused; ``min_visibility`` is the facing below which a point counts as hidden."""

    visibility_power: float = 1.0
    min_points: int = 30
    min_visibility: float = 0.05

    def __post_init__(self) -> None:
        if self.visibility_power < 0 or self.min_points < 4 or not 0 <= self.min_visibility < 1:
            raise FaceclusterError("visibility_power must be >= 0, min_points >= 4, min_visibility in [0, 1)")


class DenseFitter:
    """Fits a :class:`MorphableModel` to a face's mediapipe mesh (image pixels) through a
    :class:`MeshCorrespondence`; read-only after construction, so one instance serves every face."""

    def __init__(self, model: MorphableModel, correspondence: MeshCorrespondence,
                 settings: FitSettings | None = None, dense: DenseFitSettings | None = None) -> None:
        correspondence.check_model(model)
        self.model, self.correspondence = model, correspondence
        self.settings = settings or FitSettings()
        self.dense = dense or DenseFitSettings()
        self.n_identity = min(self.settings.n_identity, model.n_identity)
        n_exp = model.n_expression if self.settings.fit_expression else 0
        rows = correspondence.model
        blocks = [model.identity[: self.n_identity, rows]]
        if n_exp:
            blocks.append(model.expression[:, rows])
        self._basis = np.ascontiguousarray(np.concatenate(blocks, axis=0).transpose(1, 2, 0), dtype=np.float64)
        self._mean = model.mean[rows].astype(np.float64)
        self._normals = vertex_normals(model.mean, model.triangles)[rows]
        self._d0 = model.eye_outer_distance
        self._landmarks = model.landmarks68

    def fit(self, mesh_vertices: np.ndarray) -> MorphableFit:
        """Fit to ``mesh_vertices`` (468, 2 or 3) in image pixels, y down (only x and y are used)."""
        with single_threaded_blas():
            return self._fit(mesh_vertices)

    def _fit(self, mesh_vertices: np.ndarray) -> MorphableFit:
        full = checked_mesh(mesh_vertices)[:, :2]
        points = full[self.correspondence.mesh]
        q = points * np.array([1.0, -1.0])
        settings = self.settings
        coeffs = np.zeros(self._basis.shape[2])
        weights = np.ones(len(q))
        done = 0
        for done in range(1, settings.iterations + 1):  # noqa: B007 - the count is reported
            X = self._mean + self._basis @ coeffs
            scale, R, t = _pose(X, q, weights)
            weights = self._weights(R)
            new, scale, t = solve_shape(self._mean, self._basis, weights, q, scale, R, d0=self._d0,
                                        n_identity=self.n_identity, settings=settings,
                                        expression_bounds=self.model.expression_bounds)
            change = float(np.abs(new - coeffs).max())
            coeffs = new
            if change < settings.tolerance:
                break
        X = self._mean + self._basis @ coeffs
        scale, R, t = _pose(X, q, weights)
        projected = project(X, scale, R, t)
        seen = weights > 0
        rms = float(np.sqrt(np.average(np.sum((projected - points) ** 2, axis=1), weights=weights)))
        iod = float(np.linalg.norm(np.subtract(full[EYE_OUTER_MESH[0]], full[EYE_OUTER_MESH[1]])))
        # a profile's eye-corner distance shrinks to nothing: normalise by the model's, seen at this scale
        iod = max(iod, scale * self._d0 * 0.5)
        beta = np.zeros(self.model.n_expression)
        beta[: len(coeffs) - self.n_identity] = coeffs[self.n_identity:]
        return MorphableFit(alpha=coeffs[: self.n_identity].copy(), beta=beta, scale=float(scale), R=R, t=t,
                            rms_px=rms, rms_iod=rms / iod, iterations=done,
                            landmark_vertices=self._landmarks.copy(),
                            projected=projected[seen])

    def _weights(self, R: np.ndarray) -> np.ndarray:
        """Facing weights at rotation ``R``, rescaled to sum to 68 (see the module docstring)."""
        facing = self._normals @ R[2]
        dense = self.dense
        w = np.where(facing > dense.min_visibility, np.clip(facing, 0.0, 1.0) ** dense.visibility_power, 0.0)
        n_seen = int((w > 0).sum())
        if n_seen < dense.min_points:
            raise FaceclusterError(f"only {n_seen} mesh points face the camera at this pose "
                                   f"(need {dense.min_points}); no dense fit")
        return w * (68.0 / w.sum())


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unit area-weighted vertex normals (the model's triangles face out of the face, +z)."""
    v = np.asarray(vertices, dtype=np.float64)
    tri = np.asarray(triangles)
    face = np.cross(v[tri[:, 1]] - v[tri[:, 0]], v[tri[:, 2]] - v[tri[:, 0]])
    normals = np.zeros_like(v)
    for corner in range(3):
        np.add.at(normals, tri[:, corner], face)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.where(length > 0, length, 1.0)


def checked_mesh(mesh_vertices: np.ndarray) -> np.ndarray:
    """The mesh as float64 (468, 2|3), or a clear error for a missing, NaN or degenerate mesh."""
    if mesh_vertices is None:
        raise FaceclusterError("no mediapipe mesh for this face (mediapipe found none); no dense fit")
    v = np.asarray(mesh_vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] != topo.N_VERTICES or v.shape[1] not in (2, 3):
        raise FaceclusterError(f"mesh must be ({topo.N_VERTICES}, 2 or 3) image points, got {v.shape}")
    if np.isnan(v).all():
        raise FaceclusterError("mesh is all NaN (mediapipe found no face); no dense fit")
    if not np.isfinite(v[:, :2]).all():
        raise FaceclusterError("mesh has NaN or infinite image coordinates; no dense fit")
    if np.ptp(v[:, 0]) <= 0 or np.ptp(v[:, 1]) <= 0:
        raise FaceclusterError("mesh is degenerate (all on one line or one point)")
    return v
