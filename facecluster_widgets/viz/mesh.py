"""A face's 3D surface for k3d: the identity shape of its 3DMM fit coloured by mean curvature, with the geodesic
paths the ``geodesic`` descriptor measures drawn on it.

The surface is what the descriptors are computed on (:mod:`facecluster_widgets.descriptors`): the model's mean
plus the face's identity coefficients, expression and pose dropped. Curvature comes from
:func:`~facecluster_widgets.descriptors.vertex_curvatures` (libigl), times the model's outer-eye-corner distance
so it is unit-free like the ``curvature`` block's histograms; boundary vertices (where curvature means nothing)
are set to 0. The paths are the exact edge-flip geodesics of :meth:`DescriptorExtractor.geodesic_paths` on this
face's own shape (~0.15 s a face with potpourri3d), lifted a hair along the surface normal so the depth test
keeps them visible.
"""

from __future__ import annotations

from dataclasses import dataclass

import igl
import k3d
import numpy as np

from ..descriptors import DescriptorExtractor, vertex_curvatures
from ..recon import mediapipe_topology as topo

#: Colour range of mean curvature x outer-eye-corner distance: fixed (not per face) so two faces compare by eye.
#: On lfw10 fits the 10th-90th percentiles of the whole surface are about -8 and +10 (eyes, lips, nostrils);
#: the smooth regions the descriptor histograms use sit within -2..+8.
CURVATURE_RANGE = (-6.0, 6.0)
#: Diverging map for curvature: blue concave, light grey flat, red convex (k3d's (value, r, g, b) quadruplets).
CURVATURE_MAP = np.array([[0.0, 0.23, 0.30, 0.75], [0.5, 0.87, 0.87, 0.87], [1.0, 0.71, 0.02, 0.15]],
                         dtype=np.float32).ravel()
PATH_COLOUR = 0x111111
ENDPOINT_COLOUR = 0xFFB000
#: Paths are lifted by this share of the face's width along the vertex normals.
PATH_LIFT = 0.004


@dataclass(frozen=True, eq=False)
class Surface:
    """A triangle mesh ready for k3d: float32 vertices (N, 3), uint32 triangles (M, 3), float32 curvature (N,),
    and named float32 polylines (n_i, 3) on the surface."""

    vertices: np.ndarray
    triangles: np.ndarray
    curvature: np.ndarray
    paths: dict[str, np.ndarray]

    def __post_init__(self) -> None:
        object.__setattr__(self, "vertices", np.ascontiguousarray(self.vertices, dtype=np.float32))
        object.__setattr__(self, "triangles", np.ascontiguousarray(self.triangles, dtype=np.uint32))
        object.__setattr__(self, "curvature", np.ascontiguousarray(self.curvature, dtype=np.float32))
        object.__setattr__(self, "paths", {k: np.ascontiguousarray(v, dtype=np.float32)
                                           for k, v in self.paths.items()})


def identity_surface(alpha: np.ndarray, extractor: DescriptorExtractor, paths: bool = True) -> Surface:
    """The face's identity shape with curvature and (optionally) its descriptor's geodesic paths."""
    shape = extractor.identity_shape(alpha)
    triangles = extractor.model.triangles.astype(np.int64)
    mean_h, _, _ = vertex_curvatures(shape, triangles)
    curvature = mean_h * extractor.model.eye_outer_distance
    curvature[igl.is_border_vertex(triangles)] = 0.0
    lines = {}
    if paths:
        normals = igl.per_vertex_normals(shape, triangles)
        lift = PATH_LIFT * float(np.ptp(shape[:, 0]))
        tree_index = _nearest_vertex(shape)
        for (a, b), polyline in extractor.geodesic_paths(shape).items():
            near = tree_index(polyline)
            lines[f"{a}–{b}"] = polyline + lift * normals[near]
    return Surface(shape, triangles, np.nan_to_num(curvature), lines)


def mediapipe_surface(vertices: np.ndarray) -> Surface:
    """mediapipe's 468-vertex mesh (photo pixels, y down, z away) turned +y up, +z out, curvature scaled by its
    own outer-eye-corner distance; no geodesic paths (the descriptors live on the 3DMM surface)."""
    v = np.asarray(vertices, dtype=np.float64) * np.array([1.0, -1.0, -1.0])
    v -= v.mean(axis=0)
    triangles = topo.tessellation_triangles().astype(np.int64)
    mean_h, _, _ = vertex_curvatures(v, triangles)
    d0 = float(np.linalg.norm(v[topo.EYE_OUTER_LEFT] - v[topo.EYE_OUTER_RIGHT]))
    curvature = mean_h * d0
    curvature[igl.is_border_vertex(triangles)] = 0.0
    return Surface(v, triangles, np.nan_to_num(curvature), {})


def _nearest_vertex(vertices: np.ndarray):
    from scipy.spatial import cKDTree

    tree = cKDTree(vertices)
    return lambda points: tree.query(points)[1]


def _path_buffers(paths: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All polylines as one vertex buffer, (segments, 2) uint32 indices, and the endpoints."""
    points, indices, ends, start = [], [], [], 0
    for polyline in paths.values():
        n = polyline.shape[0]
        if n < 2:
            continue
        points.append(polyline)
        idx = np.arange(start, start + n - 1, dtype=np.uint32)
        indices.append(np.column_stack([idx, idx + 1]))
        ends.extend([polyline[0], polyline[-1]])
        start += n
    if not points:
        return np.zeros((0, 3), np.float32), np.zeros((0, 2), np.uint32), np.zeros((0, 3), np.float32)
    return (np.ascontiguousarray(np.vstack(points), np.float32), np.ascontiguousarray(np.vstack(indices)),
            np.unique(np.asarray(ends, np.float32), axis=0))


def front_camera(vertices: np.ndarray, distance: float = 1.5) -> list[float]:
    """A k3d camera ``[position, target, up]`` looking at the face from the front (+z), +y up."""
    centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    size = float(np.ptp(vertices[:, 1]))
    eye = centre + np.array([0.0, 0.0, distance * size])
    return [*map(float, eye), *map(float, centre), 0.0, 1.0, 0.0]


def mesh_plot(surface: Surface, *, height: int = 360, plot: k3d.Plot | None = None) -> k3d.Plot:
    """A k3d plot of ``surface`` (or the same objects added to ``plot``): mesh coloured by curvature, geodesic paths
    as dark lines with their endpoints marked. Update it for another face with :func:`update_mesh_plot`."""
    plot = plot or k3d.plot(height=height, grid_visible=False, menu_visibility=False, camera_auto_fit=False,
                            axes_helper=0.0, background_color=0xFFFFFF)
    mesh = k3d.mesh(surface.vertices, surface.triangles, attribute=surface.curvature, color_map=CURVATURE_MAP,
                    color_range=list(CURVATURE_RANGE), flat_shading=False, name="surface")
    points, indices, ends = _path_buffers(surface.paths)
    lines = k3d.lines(points, indices, indices_type="segment", color=PATH_COLOUR, shader="simple", width=0.05,
                      name="geodesic paths", visible=bool(indices.size))
    markers = k3d.points(ends, color=ENDPOINT_COLOUR, point_size=0.5, shader="3d", name="path ends",
                         visible=bool(ends.size))
    plot += mesh
    plot += lines
    plot += markers
    plot.camera = front_camera(surface.vertices)
    return plot


def update_mesh_plot(plot: k3d.Plot, surface: Surface) -> None:
    """Show another face in a plot made by :func:`mesh_plot` (same three objects, new buffers)."""
    mesh, lines, markers = plot.objects[:3]
    with mesh.hold_sync():
        mesh.vertices, mesh.indices, mesh.attribute = surface.vertices, surface.triangles, surface.curvature
    points, indices, ends = _path_buffers(surface.paths)
    if indices.size:  # a face without paths only hides the old ones (empty buffers upset traitlets' comparison)
        # The browser applies vertices and indices one message at a time: send them in the order that never has
        # an index beyond the vertices (k3d logs "index N reaches beyond N vertices" otherwise).
        if points.shape[0] >= np.asarray(lines.vertices).shape[0]:
            lines.vertices = points
            lines.indices = indices
        else:
            lines.indices = indices
            lines.vertices = points
        markers.positions = ends
    lines.visible = markers.visible = bool(indices.size)
    plot.camera = front_camera(surface.vertices)
