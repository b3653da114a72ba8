"""3D-guided frontalisation: the face re-rendered at a frontal pose, on the 112x112 ArcFace template.

After Hassner et al. 2015 ("Effective face frontalization in unconstrained images"), with the face's own
mediapipe mesh as the 3D shape instead of one reference head: the mesh (in photo pixels, z away from the camera)
is turned to frontal by undoing its head rotation (:func:`~.mesh.face_frame`) and projected orthographically;
each output pixel samples the photo where its point of the mesh lies, by barycentric interpolation of the
vertices' photo positions (a piecewise-affine warp). Where the face turned away from the camera (the vertex
normal looks away from it) the pixel samples the mirrored vertex on the other half of the face instead, with a
soft blend between them (Hassner's "soft symmetry"). The output is placed so that the frontal mesh's eye centres,
nose tip and mouth corners fit the ArcFace 5-point template, what SFace and ArcFace were trained on. Pixels the
mesh does not cover (hair, ears, background) are black: the mesh ends at the forehead and the cheeks.

The mirror of each vertex comes from ``data/mediapipe_mirror.npz`` (made by :func:`mirror_map` from a pose-free
mean face; see data/README.md). numpy and OpenCV only (the rasteriser is :func:`.render.select_faces`); 26 ms per
face measured over cfp100, up to ~80 ms with the 2-core machine loaded.

Not a pipeline stage: SFace on the frontalised face lost to SFace on the original YuNet crop on every set with
turned faces (``benchmarks/frontalize_pose.py``, benchmarks/README.md "What we tried"): the mediapipe mesh
is wrong on true profiles (it reads ~50° for cfp100's 70-90°), and a render from a wrong mesh loses more identity
than the pose change it removes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial import Delaunay

from ..errors import FaceclusterError
from ..standardize import similarity_transform, template_points
from . import mediapipe_topology as topo
from .mesh import _check_vertices, face_frame
from .render import select_faces

MIRROR_FILE = Path(__file__).resolve().parent.parent / "data" / "mediapipe_mirror.npz"
#: Eye contours of the mesh (subject's right, then left), whose means stand in for the eye centres.
EYE_RIGHT = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)
EYE_LEFT = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)


@dataclass(frozen=True)
class FrontalizeSettings:
    """``size``: output side (112: the ArcFace template); ``mirror``: fill the side turned away from the camera
    from the mirrored visible side; ``visible_cos`` / ``hidden_cos``: the cosine between a vertex normal and the
    direction to the camera between which a vertex's visibility rises linearly from 0 to 1; a vertex less
    visible than its mirror takes the mirror's colour in the ratio of their visibilities."""

    size: int = 112
    mirror: bool = True
    visible_cos: float = 0.35
    hidden_cos: float = 0.05

    def to_dict(self) -> dict:
        return {"size": self.size, "mirror": self.mirror, "visible_cos": self.visible_cos,
                "hidden_cos": self.hidden_cos, "mirror_map": "mediapipe_mirror.npz v1", "blend": "visibility ratio"}


@dataclass(frozen=True, eq=False)
class Frontalized:
    """``image`` (size, size, 3) uint8 RGB, black where ``mask`` (size, size) bool is False; ``own_share``
    (size, size) float32: the share of each pixel sampled from its own side (1) rather than the mirror (0)."""

    image: np.ndarray
    mask: np.ndarray
    own_share: np.ndarray


def frontal_layout(vertices: np.ndarray) -> np.ndarray:
    """``(468, 3)``: the mesh turned to frontal and upright (x right, y down, z away), centred, in its pixels."""
    v = check_vertices(vertices)
    rotation = face_frame(v)
    return (v - v.mean(axis=0)) @ rotation


def points5_of(layout: np.ndarray) -> np.ndarray:
    """The ArcFace-order 5 points (image-left eye first) of a mesh's x, y: eye-contour means, nose tip, mouth
    corners. A frontal subject's right eye is on the image's left."""
    xy = np.asarray(layout, dtype=np.float64)[:, :2]
    return np.stack([xy[list(EYE_RIGHT)].mean(axis=0), xy[list(EYE_LEFT)].mean(axis=0), xy[topo.NOSE_TIP],
                     xy[topo.MOUTH_RIGHT], xy[topo.MOUTH_LEFT]])


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Unit normals ``(V, 3)`` (area-weighted) pointing out of the face, i.e. towards a camera the face looks at."""
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    face = np.cross(b - a, c - a)
    summed = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(summed, triangles[:, k], face)
    normals = summed / np.maximum(np.linalg.norm(summed, axis=1, keepdims=True), 1e-12)
    frontal = normals @ face_frame(vertices)
    return normals if frontal[:, 2].mean() < 0 else -normals   # outward = towards the camera (-z) when frontal


@dataclass(frozen=True, eq=False)
class MeshPixels:
    """Which pixels of a ``size`` (height, width) image a mesh covers (``covered``, flat, bool), and for each
    covered pixel in order the vertex ids of its nearest front-facing triangle ``tri (P, 3)`` and its
    barycentric coordinates there ``bary (P, 3)``."""

    covered: np.ndarray
    tri: np.ndarray
    bary: np.ndarray
    size: tuple[int, int]


def rasterize_mesh(xy: np.ndarray, z: np.ndarray, size: tuple[int, int]) -> MeshPixels:
    """The mesh (hole-closed tessellation) at vertex positions ``xy`` (pixels, y down) and depths ``z`` (larger
    is farther from the camera, as mesh coordinates) on a ``size`` image: front-facing triangles, nearest wins."""
    height, width = size
    table = select_faces(xy, -np.asarray(z), _triangles(), size, faces_per_pixel=1, radius=0.0)[:, 0]
    covered = table >= 0
    tri = _triangles()[table[covered]]
    pixels = np.flatnonzero(covered)
    corners = np.asarray(xy, dtype=np.float64)[tri]
    return MeshPixels(covered=covered, tri=tri, bary=_barycentric(corners, pixels, width), size=(height, width))


def sample_texture(rgb: np.ndarray, source_xy: np.ndarray, pixels: MeshPixels) -> np.ndarray:
    """``(height, width, 3)`` float32: the photo ``rgb`` sampled (bilinear) where each covered pixel's point of
    the mesh lies in the photo (vertex positions ``source_xy``): the piecewise-affine warp of the texture."""
    height, width = pixels.size
    maps = np.full((height * width, 2), -1.0, np.float32)
    maps[pixels.covered] = (pixels.bary[:, :, None] * np.asarray(source_xy)[pixels.tri]).sum(axis=1)
    maps = maps.reshape(height, width, 2)
    out = cv2.remap(rgb, maps[..., 0], maps[..., 1], interpolation=cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.astype(np.float32)


def frontalize(rgb: np.ndarray, vertices: np.ndarray, settings: FrontalizeSettings | None = None) -> Frontalized:
    """The face of ``rgb`` (H, W, 3 uint8) whose mesh is ``vertices`` (468, 3, photo pixels) seen from the front."""
    s = settings or FrontalizeSettings()
    if not (isinstance(rgb, np.ndarray) and rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3):
        raise FaceclusterError(f"rgb must be an RGB uint8 array (H, W, 3), got "
                               f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}")
    v = check_vertices(vertices)
    layout = frontal_layout(v)
    sim = similarity_transform(points5_of(layout), template_points(s.size))
    pixels = rasterize_mesh(sim.apply(layout[:, :2]), layout[:, 2], (s.size, s.size))
    image = sample_texture(rgb, v[:, :2], pixels)
    share = np.ones(s.size * s.size, np.float32)
    if s.mirror:
        mirror = load_mirror()
        mirrored = sample_texture(rgb, v[mirror, :2], pixels)
        cos = -vertex_normals(v, _triangles())[:, 2]        # towards the camera at -z
        own_vis = _ramp(cos, s.hidden_cos, s.visible_cos)
        mirror_vis = own_vis[mirror]
        # A vertex seen at least as well as its mirror keeps its own colour; else the mirror's takes over as
        # the ratio of their visibilities falls (continuous where they are equal).
        keep = np.where(own_vis >= mirror_vis, 1.0, own_vis / np.maximum(mirror_vis, 1e-6))
        share[pixels.covered] = (pixels.bary * keep[pixels.tri]).sum(axis=1)
        w = share.reshape(s.size, s.size, 1)
        image = w * image + (1 - w) * mirrored
    mask = pixels.covered.reshape(s.size, s.size)
    out = np.where(mask[..., None], np.clip(image, 0, 255), 0).astype(np.uint8)
    return Frontalized(image=out, mask=mask, own_share=np.where(mask, share.reshape(s.size, s.size), 0))


def mirror_map(reference: np.ndarray) -> np.ndarray:
    """``(468,)`` int: for each vertex of a symmetric pose-free mean face (x across the face, centred, as
    :func:`~.mesh.mean_reference` gives), its mirror image across x = 0, one-to-one (optimal assignment)."""
    ref = check_vertices(reference)
    ref = ref - ref.mean(axis=0)
    flipped = ref * np.array([-1.0, 1.0, 1.0])
    cost = ((ref[:, None, :] - flipped[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    out = np.empty(len(ref), np.int64)
    out[rows] = cols
    return out


def hole_triangles(reference: np.ndarray) -> np.ndarray:
    """``(T, 3)`` triangles that close the tessellation's inner holes (eyes, mouth), wound as the tessellation
    (clockwise on screen for a frontal face): each hole's boundary loop, Delaunay-triangulated on the frontal
    ``reference``'s x, y, keeping the triangles inside the loop."""
    ref = check_vertices(reference)
    loops = _boundary_loops(topo.tessellation_triangles())
    out = []
    for loop in sorted(loops, key=len)[:-1]:               # the longest loop is the face's outline
        xy = ref[loop, :2]
        for simplex in Delaunay(xy).simplices:
            if cv2.pointPolygonTest(xy.astype(np.float32), tuple(map(float, xy[simplex].mean(axis=0))), False) > 0:
                tri = np.asarray(loop)[simplex]
                a, b, c = ref[tri, :2]
                cross = (b - a)[0] * (c - a)[1] - (b - a)[1] * (c - a)[0]
                out.append(tri if cross < 0 else tri[::-1])
    return np.array(out, dtype=np.int64).reshape(-1, 3)


def load_mirror(path: Path = MIRROR_FILE) -> np.ndarray:
    """The packaged vertex mirror map, checked to be an involution over the mesh's vertices."""
    return _load_topology(str(path))[0]


@lru_cache(maxsize=2)
def _load_topology(path: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            mirror = np.asarray(data["mirror"], dtype=np.int64)
            holes = np.asarray(data["hole_triangles"], dtype=np.int64)
    except (OSError, KeyError, ValueError) as exc:
        raise FaceclusterError(f"{path}: not a readable vertex mirror map ({exc})") from exc
    if mirror.shape != (topo.N_VERTICES,) or not np.array_equal(np.sort(mirror), np.arange(topo.N_VERTICES)) \
            or not np.array_equal(mirror[mirror], np.arange(topo.N_VERTICES)):
        raise FaceclusterError(f"{path}: 'mirror' must be a permutation of the {topo.N_VERTICES} vertices that is "
                               "its own inverse")
    if holes.ndim != 2 or holes.shape[1] != 3 or holes.size and not (0 <= holes.min() <= holes.max() < len(mirror)):
        raise FaceclusterError(f"{path}: 'hole_triangles' must be (T, 3) vertex indices")
    mirror.flags.writeable = False
    holes.flags.writeable = False
    return mirror, holes


def _boundary_loops(triangles: np.ndarray) -> list[list[int]]:
    """The closed loops of edges that belong to one triangle only, each in order."""
    directed = [(int(t[k]), int(t[(k + 1) % 3])) for t in triangles for k in range(3)]
    present = set(directed)
    following = {a: b for a, b in directed if (b, a) not in present}
    loops, seen = [], set()
    for start in following:
        if start in seen:
            continue
        loop, node = [], start
        while node not in seen:
            seen.add(node)
            loop.append(node)
            node = following[node]
        loops.append(loop)
    return loops


def check_vertices(vertices: np.ndarray) -> np.ndarray:
    """``vertices`` as float64 (468, 3); an all-NaN mesh (the store's mark of a face without one) says so."""
    v = np.asarray(vertices, dtype=np.float64)
    if v.shape == (topo.N_VERTICES, 3) and np.isnan(v).all():
        raise FaceclusterError("no mesh for this face (its vertices are all NaN)")
    return _check_vertices(v)


@lru_cache(maxsize=1)
def _triangles() -> np.ndarray:
    """The tessellation with its eye and mouth holes closed; wound clockwise on screen for a frontal face,
    what :func:`select_faces` keeps."""
    return np.ascontiguousarray(np.vstack([topo.tessellation_triangles(), _load_topology(str(MIRROR_FILE))[1]]))


def _barycentric(corners: np.ndarray, pixels: np.ndarray, width: int) -> np.ndarray:
    """``(P, 3)`` barycentric coordinates of pixel centres ``pixels`` (flat indices) in ``corners (P, 3, 2)``."""
    p = np.column_stack([pixels % width, pixels // width]).astype(np.float64)
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    wb = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    wc = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    bary = np.clip(np.column_stack([1 - wb - wc, wb, wc]), 0, 1)
    return bary / np.maximum(bary.sum(axis=1, keepdims=True), 1e-12)


def _ramp(x: np.ndarray, low: float, high: float) -> np.ndarray:
    return np.clip((x - low) / max(high - low, 1e-6), 0.0, 1.0)
