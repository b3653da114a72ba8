"""3D identity descriptors of a fitted face, all on its identity-only shape.

The shape is ``mean + sum_i alpha_i identity[i]`` in the model's canonical frame: the fitted
expression and pose are dropped, so two photos of one person with different smiles and head turns
should give the same descriptors. Three blocks, each a float32 vector:

- ``shape``: the identity coefficients ``alpha`` (prior units, see :mod:`.recon.morphable`).
- ``geodesic``: surface distances between named anatomical points (:data:`GEODESIC_PAIRS`), divided
  by the straight outer-eye-corner distance so that head size (unobservable under a scaled
  orthographic camera) drops out. (The straight distance, not the geodesic across the nose bridge:
  the latter is the least stable under path transport, below, and a normaliser must be exact.)
- ``curvature``: area-weighted histograms of mean and Gaussian curvature in four vertex regions
  (:data:`CURVATURE_REGIONS`) with fixed bin edges, so vectors of different faces are comparable.

Named points are iBUG-68 landmark numbers, turned into vertices through ``model.landmarks68``; for the
ICT face model (``ict_face_light.npz``) these are the vertices listed in :data:`GEODESIC_POINTS`.
"Left" and "right" mean as seen in a frontal image (as in ``detect.base.POINTS5_ORDER``): the left eye
is the subject's right eye, landmarks 36-41.

Geodesics: a geodesic's length is stationary under small deformations of the surface (first
variation of length vanishes along a geodesic), so the exact geodesic paths are found once on the mean
face with potpourri3d's edge-flip solver, stored as points on mesh edges, and each face's distances are
the lengths of those same edge points on its own vertices; the error is second order in the shape
change and one-sided (a surface path is never shorter than the geodesic); its size on real fits is in
benchmarks/README.md.
``geodesic_method="exact"`` instead runs the edge-flip solver on each face: its precomputation
(intrinsic triangulation; for the heat method the cotan Laplacian factorisation) depends on the vertex
positions, not only on the triangles, so it cannot be reused across faces and costs far more per face.
:meth:`DescriptorExtractor.geodesic_paths` gives the exact polylines of one face for drawing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import igl
import numpy as np
import potpourri3d as pp3d
from scipy.spatial import cKDTree

from .errors import FaceclusterError
from .recon.morphable import MorphableFit, MorphableModel

log = logging.getLogger(__name__)

#: Named anatomical points, as iBUG-68 landmark numbers ("left" = image left); the vertex is
#: ``model.landmarks68[number]``. ICT face model vertices: eye_outer_left 1507, eye_inner_left 1528,
#: eye_inner_right 3742, eye_outer_right 3721, brow_left 1914, brow_right 4114, nose_bridge 978,
#: nose_tip 4857, subnasale 1147, mouth_left 5708, mouth_right 6213, upper_lip 0, chin 966,
#: cheek_left 1052, cheek_right 3272, jaw_left 1722, jaw_right 3927.
GEODESIC_POINTS: dict[str, int] = {
    "eye_outer_left": 36,
    "eye_inner_left": 39,
    "eye_inner_right": 42,
    "eye_outer_right": 45,
    "brow_left": 19,
    "brow_right": 24,
    "nose_bridge": 27,
    "nose_tip": 30,
    "subnasale": 33,
    "mouth_left": 48,
    "mouth_right": 54,
    "upper_lip": 51,
    "chin": 8,
    "cheek_left": 2,
    "cheek_right": 14,
    "jaw_left": 5,
    "jaw_right": 11,
}

#: The pairs whose geodesic distances form the ``geodesic`` block, closed under left/right mirroring
#: (each pair's mirror image is in the list) so that a mirrored face permutes the block.
GEODESIC_PAIRS: tuple[tuple[str, str], ...] = (
    ("eye_inner_left", "eye_inner_right"),
    ("nose_bridge", "nose_tip"),
    ("nose_tip", "chin"),
    ("nose_bridge", "chin"),
    ("mouth_left", "mouth_right"),
    ("subnasale", "upper_lip"),
    ("eye_outer_left", "mouth_left"),
    ("eye_outer_right", "mouth_right"),
    ("eye_inner_left", "nose_tip"),
    ("eye_inner_right", "nose_tip"),
    ("nose_tip", "cheek_left"),
    ("nose_tip", "cheek_right"),
    ("eye_outer_left", "cheek_left"),
    ("eye_outer_right", "cheek_right"),
    ("cheek_left", "jaw_left"),
    ("cheek_right", "jaw_right"),
    ("jaw_left", "chin"),
    ("jaw_right", "chin"),
    ("brow_left", "eye_outer_left"),
    ("brow_right", "eye_outer_right"),
)
#: The points whose straight (Euclidean) distance every geodesic distance is divided by.
GEODESIC_NORMALISER: tuple[str, str] = ("eye_outer_left", "eye_outer_right")

#: Curvature regions: a ball of radius ``radius`` x (outer-eye-corner distance) round the centroid of
#: some landmarks, raised by ``lift`` x that distance, snapped to the face surface.
CURVATURE_REGIONS: dict[str, dict] = {
    "forehead": {"landmarks": (19, 24), "lift": 0.35, "radius": 0.22},
    "cheek_left": {"landmarks": (41, 2, 48, 31), "lift": 0.0, "radius": 0.16},
    "cheek_right": {"landmarks": (46, 14, 54, 35), "lift": 0.0, "radius": 0.16},
    "nose_bridge": {"landmarks": (27, 28), "lift": 0.0, "radius": 0.09},
}
#: Bin edges of mean curvature x outer-eye-corner distance (unit-free; positive = convex). Values
#: outside fall into the end bins.
MEAN_CURVATURE_EDGES = np.array([-2.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.5, 8.0])
#: Bin edges of Gaussian curvature x (outer-eye-corner distance)^2 (unit-free).
GAUSS_CURVATURE_EDGES = np.array([-8.0, -2.0, -0.5, 0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 20.0])

BLOCKS = ("shape", "geodesic", "curvature")


@dataclass(frozen=True, eq=False)
class Descriptors:
    """The three descriptor blocks of one face (float32 vectors)."""

    shape: np.ndarray
    geodesic: np.ndarray
    curvature: np.ndarray

    def block(self, name: str) -> np.ndarray:
        if name not in BLOCKS:
            raise FaceclusterError(f"unknown descriptor block {name!r}; blocks are {', '.join(BLOCKS)}")
        return getattr(self, name)

    def vector(self, blocks: tuple[str, ...] = BLOCKS) -> np.ndarray:
        return np.concatenate([self.block(b) for b in blocks]).astype(np.float32)


@dataclass(frozen=True)
class _EdgePath:
    """A polyline whose points lie on mesh edges: ``(1 - t) * V[a] + t * V[b]``."""

    a: np.ndarray
    b: np.ndarray
    t: np.ndarray

    def points(self, vertices: np.ndarray) -> np.ndarray:
        return (1.0 - self.t)[:, None] * vertices[self.a] + self.t[:, None] * vertices[self.b]

    def length(self, vertices: np.ndarray) -> float:
        return float(np.linalg.norm(np.diff(self.points(vertices), axis=0), axis=1).sum())


class DescriptorExtractor:
    """Computes :class:`Descriptors` from fits of one model; holds the per-model precomputation
    (geodesic edge paths, region vertices, the curvature submesh), read-only after construction."""

    def __init__(self, model: MorphableModel, n_identity: int = 80, geodesic_method: str = "transported"):
        if geodesic_method not in ("transported", "exact"):
            raise FaceclusterError(f"geodesic_method must be 'transported' or 'exact', "
                                   f"not {geodesic_method!r}")
        self.model = model
        self.n_identity = min(n_identity, model.n_identity)
        self.geodesic_method = geodesic_method
        self._triangles = model.triangles.astype(np.int64)
        self._identity = model.identity[: self.n_identity]
        self.point_vertices = {name: int(model.landmarks68[k]) for name, k in GEODESIC_POINTS.items()}
        self._pairs = GEODESIC_PAIRS
        mean = model.mean.astype(np.float64)
        solver = pp3d.EdgeFlipGeodesicSolver(mean, self._triangles)
        edges = igl.edges(self._triangles)
        trees = (cKDTree(mean), cKDTree(0.5 * (mean[edges[:, 0]] + mean[edges[:, 1]])))
        self._edge_paths = [self._edge_path(mean, edges, trees, self._path(solver, a, b))
                            for a, b in self._pairs]
        self.regions = {name: self._region(mean, spec) for name, spec in CURVATURE_REGIONS.items()}
        self._sub_vertices, self._sub_triangles, self._sub_regions = self._curvature_submesh()

    # --- precomputation -------------------------------------------------------------------------

    def _path(self, solver: pp3d.EdgeFlipGeodesicSolver, a: str, b: str) -> np.ndarray:
        return np.asarray(solver.find_geodesic_path(self.point_vertices[a], self.point_vertices[b]))

    @staticmethod
    def _edge_path(vertices: np.ndarray, edges: np.ndarray, trees: tuple[cKDTree, cKDTree],
                   polyline: np.ndarray) -> _EdgePath:
        """Express each point of ``polyline`` (on the mesh ``vertices``) as a point on a mesh edge
        (a vertex is the degenerate edge ``(v, v)``)."""
        vertex_tree, midpoint_tree = trees
        ends: list[tuple[int, int, float]] = []
        for point in polyline:
            dist, v = vertex_tree.query(point)
            if dist < 1e-7 * (1.0 + np.abs(point).max()):
                ends.append((int(v), int(v), 0.0))
                continue
            _, near = midpoint_tree.query(point, k=12)
            p0, p1 = vertices[edges[near, 0]], vertices[edges[near, 1]]
            d = p1 - p0
            t = np.clip(np.einsum("ij,ij->i", point - p0, d) / np.einsum("ij,ij->i", d, d), 0.0, 1.0)
            best = int(np.argmin(np.linalg.norm(p0 + t[:, None] * d - point, axis=1)))
            ends.append((int(edges[near[best], 0]), int(edges[near[best], 1]), float(t[best])))
        a, b, t = zip(*ends, strict=True)
        return _EdgePath(np.array(a, dtype=np.intp), np.array(b, dtype=np.intp), np.array(t))

    def _region(self, mean: np.ndarray, spec: dict) -> np.ndarray:
        d0 = self.model.eye_outer_distance
        centre = mean[self.model.landmarks68[list(spec["landmarks"])]].mean(axis=0)
        centre = centre + np.array([0.0, spec["lift"] * d0, 0.0])
        # Snap to the surface: the most forward vertex near the centre's (x, y).
        planar = np.linalg.norm(mean[:, :2] - centre[:2], axis=1)
        close = np.flatnonzero(planar <= max(0.02 * d0, planar.min() + 1e-9))
        anchor = mean[close[np.argmax(mean[close, 2])]]
        return np.flatnonzero(np.linalg.norm(mean - anchor, axis=1) <= spec["radius"] * d0)

    def _curvature_submesh(self) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """The region vertices plus two rings of neighbours, so every region vertex has its full
        one-ring (curvature at a cut edge would be wrong) while the rest of the face is skipped."""
        tri = self._triangles
        keep = np.zeros(self.model.n_vertices, dtype=bool)
        keep[np.concatenate(list(self.regions.values()))] = True
        for _ in range(2):
            keep[tri[keep[tri].any(axis=1)].ravel()] = True
        sub_tri = tri[keep[tri].all(axis=1)]
        used = np.unique(sub_tri)
        remap = np.full(self.model.n_vertices, -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        return used, remap[sub_tri], {name: remap[idx] for name, idx in self.regions.items()}

    # --- per face ----------------------------------------------------------------------------------

    def identity_shape(self, alpha: np.ndarray) -> np.ndarray:
        """The expression-free, canonical-pose vertices ``(N, 3)`` of identity ``alpha``."""
        alpha = np.asarray(alpha, dtype=np.float64)[: self.n_identity]
        return self.model.mean + np.tensordot(alpha, self._identity[: len(alpha)], axes=1)

    def geodesic_distances(self, shape: np.ndarray) -> np.ndarray:
        """Raw geodesic lengths (model units) of :data:`GEODESIC_PAIRS`."""
        if self.geodesic_method == "exact":
            return np.array([_polyline_length(p) for p in self.geodesic_paths(shape).values()])
        return np.array([path.length(shape) for path in self._edge_paths])

    def geodesic_paths(self, shape: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
        """Exact geodesic polylines ``(n_i, 3)`` on ``shape`` (edge-flip solver), keyed by pair;
        for drawing."""
        solver = pp3d.EdgeFlipGeodesicSolver(np.asarray(shape, dtype=np.float64), self._triangles)
        return {pair: self._path(solver, *pair) for pair in self._pairs}

    def geodesic_block(self, shape: np.ndarray) -> np.ndarray:
        a, b = (self.point_vertices[name] for name in GEODESIC_NORMALISER)
        scale = float(np.linalg.norm(np.asarray(shape)[a] - np.asarray(shape)[b]))
        return (self.geodesic_distances(shape) / scale).astype(np.float32)

    def curvatures(self, shape: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per region: ``(mean curvature, Gaussian curvature, vertex area)`` at its vertices, curvatures
        unit-free (multiplied by the model's outer-eye-corner distance, squared for Gaussian)."""
        V = np.asarray(shape, dtype=np.float64)[self._sub_vertices]
        mean_h, gauss, area = vertex_curvatures(V, self._sub_triangles)
        d0 = self.model.eye_outer_distance
        return {name: (mean_h[idx] * d0, gauss[idx] * d0 * d0, area[idx])
                for name, idx in self._sub_regions.items()}

    def curvature_block(self, shape: np.ndarray) -> np.ndarray:
        parts = []
        for h, k, area in self.curvatures(shape).values():
            weights = area / area.sum()
            parts.append(_histogram(h, MEAN_CURVATURE_EDGES, weights))
            parts.append(_histogram(k, GAUSS_CURVATURE_EDGES, weights))
        return np.concatenate(parts).astype(np.float32)

    def compute(self, fit: MorphableFit | np.ndarray) -> Descriptors:
        """Descriptors of a :class:`MorphableFit` (or of identity coefficients ``alpha``)."""
        alpha = fit.alpha if isinstance(fit, MorphableFit) else np.asarray(fit, dtype=np.float64)
        if alpha.ndim != 1 or not np.isfinite(alpha).all():
            raise FaceclusterError(f"identity coefficients must be a finite 1-D vector, "
                                   f"got shape {alpha.shape}")
        shape = self.identity_shape(alpha)
        return Descriptors(shape=alpha[: self.n_identity].astype(np.float32),
                           geodesic=self.geodesic_block(shape), curvature=self.curvature_block(shape))


def vertex_curvatures(vertices: np.ndarray,
                      triangles: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise ``(mean curvature, Gaussian curvature, Voronoi area)`` per vertex (libigl).

    Mean curvature is half the cotangent Laplacian of the positions projected on the vertex normal
    (positive where the surface bulges along its normal, e.g. 1/r on a sphere with outward normals);
    Gaussian curvature is the angle defect over the Voronoi area. Boundary vertices are meaningless.
    """
    V = np.asarray(vertices, dtype=np.float64)
    F = np.asarray(triangles, dtype=np.int64)
    area = np.maximum(igl.massmatrix(V, F, igl.MASSMATRIX_TYPE_VORONOI).diagonal(), 1e-12)
    gauss = igl.gaussian_curvature(V, F) / area
    normal_h = -0.5 * (igl.cotmatrix(V, F) @ V) / area[:, None]
    mean_h = np.einsum("ij,ij->i", normal_h, igl.per_vertex_normals(V, F))
    return mean_h, gauss, area


def _histogram(values: np.ndarray, edges: np.ndarray, weights: np.ndarray) -> np.ndarray:
    clipped = np.clip(values, edges[0], edges[-1])
    hist, _ = np.histogram(clipped, bins=edges, weights=weights)
    return hist


def _polyline_length(points: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())


def mirrored_pair_order() -> np.ndarray:
    """Index permutation of the ``geodesic`` block under left/right mirroring of the face."""
    def swap(name: str) -> str:
        if name.endswith("_left"):
            return name[: -len("_left")] + "_right"
        if name.endswith("_right"):
            return name[: -len("_right")] + "_left"
        return name

    index = {frozenset(pair): i for i, pair in enumerate(GEODESIC_PAIRS)}
    return np.array([index[frozenset((swap(a), swap(b)))] for a, b in GEODESIC_PAIRS], dtype=np.intp)
