"""The triangles of mediapipe's 468-vertex face mesh, derived from the package's own edge list.

``mediapipe.solutions.face_mesh_connections.FACEMESH_TESSELATION`` holds the 2,556 *directed*
edges of 852 consistently oriented triangles (each interior edge appears once per direction),
but as a set, so the triangles themselves are lost. Every triangle is a directed 3-cycle; the
spurious 3-cycles (mostly the reverse of a triangle whose three neighbours' edges close it) are
removed by requiring each directed edge to belong to exactly one triangle: edges with a single
candidate cycle fix that cycle, which rules out the cycles competing for its edges, and so on
until nothing changes. This needs no source text, so it also works from a byte-compiled install;
``tests/test_mesh.py`` checks it against the triangle-by-triangle order of the module's source.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from functools import cache

import numpy as np

from ..errors import FaceclusterError

#: Vertices of the mesh without iris refinement (``refine_landmarks=False``).
N_VERTICES = 468
#: Triangles of mediapipe's tessellation.
N_TRIANGLES = 852

#: A few anatomically stable vertices, named from the *subject's* side (subject's right = the
#: image's left in an unmirrored photo). Used for head pose without a reference model.
EYE_OUTER_RIGHT, EYE_OUTER_LEFT = 33, 263
EYE_INNER_RIGHT, EYE_INNER_LEFT = 133, 362
MOUTH_RIGHT, MOUTH_LEFT = 61, 291
CHEEK_RIGHT, CHEEK_LEFT = 234, 454
NOSE_TIP, CHIN, FOREHEAD = 1, 152, 10

#: Pairs (subject's right, subject's left) whose differences give the face's left-right axis.
SYMMETRIC_PAIRS = (
    (EYE_OUTER_RIGHT, EYE_OUTER_LEFT),
    (EYE_INNER_RIGHT, EYE_INNER_LEFT),
    (MOUTH_RIGHT, MOUTH_LEFT),
    (CHEEK_RIGHT, CHEEK_LEFT),
)


def triangles_from_directed_edges(edges: Iterable[tuple[int, int]]) -> np.ndarray:
    """The oriented triangles ``(T, 3)`` whose directed edges are exactly ``edges``, each used once.

    Raises :class:`FaceclusterError` when the edges do not decompose uniquely into triangles.
    """
    edge_set = {(int(a), int(b)) for a, b in edges}
    successors: dict[int, set[int]] = defaultdict(set)
    for a, b in edge_set:
        successors[a].add(b)
    cycles = set()
    for a, b in edge_set:
        for c in successors[b]:
            if a in successors[c] and len({a, b, c}) == 3:
                cycles.add(_rotate_min((a, b, c)))
    candidates: dict[tuple[int, int], set[tuple[int, int, int]]] = defaultdict(set)
    for tri in cycles:
        for edge in _edges(tri):
            candidates[edge].add(tri)
    chosen: set[tuple[int, int, int]] = set()
    alive = set(cycles)
    changed = True
    while changed:
        changed = False
        for edge in edge_set:
            live = [t for t in candidates[edge] if t in alive]
            if len(live) == 1 and live[0] not in chosen:
                tri = live[0]
                chosen.add(tri)
                changed = True
                for e in _edges(tri):
                    alive -= candidates[e] - {tri}
    used = [e for tri in chosen for e in _edges(tri)]
    if len(used) != len(edge_set) or set(used) != edge_set:
        raise FaceclusterError(
            f"the {len(edge_set)} directed edges do not split uniquely into triangles "
            f"({len(chosen)} found, {len(edge_set) - len(set(used))} edges unexplained)"
        )
    return np.array(sorted(chosen), dtype=np.int32)


@cache
def _tessellation() -> np.ndarray:
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    tris = triangles_from_directed_edges(FACEMESH_TESSELATION)
    if tris.shape != (N_TRIANGLES, 3) or tris.max() != N_VERTICES - 1:
        raise FaceclusterError(
            f"mediapipe's tessellation gave {tris.shape[0]} triangles over {tris.max() + 1} vertices; "
            f"expected {N_TRIANGLES} over {N_VERTICES} (an incompatible mediapipe version?)"
        )
    # mediapipe's own orientation already gives right-handed normals pointing out of the face,
    # towards the camera (-z), in image coordinates (x right, y down, z away); kept as it is.
    tris.flags.writeable = False
    return tris


def tessellation_triangles() -> np.ndarray:
    """The 852 mesh triangles ``(852, 3)`` int32, read-only, oriented so normals face the camera
    (-z) for the image-coordinate vertices of :class:`~facecluster_widgets.recon.mesh.FaceMesh`."""
    return _tessellation()


def _rotate_min(tri: tuple[int, int, int]) -> tuple[int, int, int]:
    k = tri.index(min(tri))
    return tri[k:] + tri[:k]  # type: ignore[return-value]


def _edges(tri: tuple[int, int, int]) -> tuple[tuple[int, int], ...]:
    a, b, c = tri
    return ((a, b), (b, c), (c, a))
