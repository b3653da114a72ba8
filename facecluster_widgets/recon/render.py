"""A soft, differentiable rasteriser and spherical-harmonic shading for the morphable face (PyTorch).

For each pixel of a crop up to ``faces_per_pixel`` front-facing triangles within ``blur_radius`` pixels are
picked without gradients (as PyTorch3D's rasteriser does: covering ones nearest first); then,
differentiably, each gets a coverage ``D = sigmoid(signed distance / sigma)`` and a soft z-buffer weight
``D * exp((z - z_max) / gamma)`` (SoftRas' aggregation), and the pixel is
``alpha * sum(w * colour) / sum(w) + (1 - alpha) * background`` with ``alpha = 1 - prod(1 - D)``.
Back-facing triangles never enter; occluded ones fade by the z-buffer weight. The signed distance is taken
to the silhouette only (edges shared by two front-facing triangles do not count, see :func:`rasterize`):
this mesh's triangles are about a pixel wide, and the background would otherwise show through every edge.
Vertex colour = albedo * (SH basis of the vertex normal . 9 coefficients per channel), Gouraud-interpolated.
:mod:`.refine` fits the morphable model through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import optional_import

if TYPE_CHECKING:
    import torch

#: Real spherical-harmonic normalisation constants of bands 0-2 (Ramamoorthi and Hanrahan 2001).
_SH_C = (0.282095, 0.488603, 1.092548, 0.315392, 0.546274)


def _torch() -> Any:
    return optional_import("torch", "photometric refinement", "refine")




@dataclass(frozen=True, eq=False)
class Fragments:
    """What the rasteriser found per covered pixel: ``vertices (P, K, 3)`` of its candidate triangles and
    ``weights (P, K, 3)`` (soft z-buffer weight times clamped barycentrics) that blend their vertex values,
    coverage ``alpha (P,)`` and blended depth ``depth (P,)``; ``pixels`` are flat indices into ``size``."""

    pixels: torch.Tensor
    vertices: torch.Tensor
    weights: torch.Tensor
    alpha: torch.Tensor
    depth: torch.Tensor
    size: tuple[int, int]


def _edge_planes(corners: Any, area2: Any, lib: Any) -> Any:
    """Coefficients ``(T, 3, 3)`` with ``coef[:, i] . (x, y, 1)`` = barycentric ``i`` of pixel ``(x, y)``:
    the edge function of the edge opposite corner ``i`` over twice the signed area."""
    p0 = corners[:, [1, 2, 0]]
    edge = corners[:, [2, 0, 1]] - p0
    coef = lib.stack([-edge[..., 1], edge[..., 0], edge[..., 1] * p0[..., 0] - edge[..., 0] * p0[..., 1]], -1)
    return coef / area2[:, None, None]


def _signed_area2(corners: Any) -> Any:
    ab, ac = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    return ab[:, 0] * ac[:, 1] - ab[:, 1] * ac[:, 0]


def _edge_lengths(corners: Any, lib: Any) -> Any:
    edge = corners[:, [2, 0, 1]] - corners[:, [1, 2, 0]]
    return lib.sqrt((edge ** 2).sum(-1))


def select_faces(xy: np.ndarray, z: np.ndarray, triangles: np.ndarray, size: tuple[int, int],
                 faces_per_pixel: int = 4, radius: float = 1.0) -> np.ndarray:
    """For each pixel (centres at integer ``(x, y)``, y down), up to ``faces_per_pixel`` front-facing
    triangles whose edges' lines it lies within ``radius`` of: those covering it, nearest to the camera
    (largest ``z``) first, then the others, nearest to the pixel first; ``(H * W, K)``, -1 where there are
    fewer. Front-facing means counter-clockwise seen from +z with y up,
    i.e. clockwise on screen. Piecewise constant in the geometry, so it is computed without gradients."""
    height, width = size
    xy = np.asarray(xy, dtype=np.float32)
    triangles = np.asarray(triangles, dtype=np.int64)
    table = np.full((height * width, faces_per_pixel), -1, dtype=np.int64)
    corners = xy[triangles]                                                     # (T, 3, 2)
    area2 = _signed_area2(corners)
    lo = np.maximum(np.ceil(corners.min(axis=1) - radius), 0).astype(np.int64)
    hi = np.minimum(np.floor(corners.max(axis=1) + radius), [width - 1, height - 1]).astype(np.int64)
    index = np.flatnonzero((area2 < -1e-9) & (hi >= lo).all(axis=1))
    if not len(index):
        return table
    corners, area2, lo, hi = corners[index], area2[index], lo[index], hi[index]
    coef = _edge_planes(corners, area2, np)                                     # barycentric planes
    line = coef * (-area2[:, None] / _edge_lengths(corners, np))[:, :, None]    # distance to each edge line
    plane = (coef * np.asarray(z, dtype=np.float32)[triangles[index]][:, :, None]).sum(axis=1)
    span = hi - lo + 1
    counts = span[:, 0] * span[:, 1]
    owner = np.repeat(np.arange(len(index)), counts)
    local = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    wide = span[owner, 0]
    px, py = lo[owner, 0] + local % wide, lo[owner, 1] + local // wide
    fx, fy = px.astype(np.float32), py.astype(np.float32)
    columns = line.reshape(-1, 9).T.copy()                                      # (9, T'), rows gathered below
    distance = [columns[3 * k][owner] * fx + columns[3 * k + 1][owner] * fy + columns[3 * k + 2][owner]
                for k in range(3)]
    inner = np.minimum(np.minimum(distance[0], distance[1]), distance[2])
    near = inner >= -radius
    owner, px, py, fx, fy, inner = owner[near], px[near], py[near], fx[near], fy[near], inner[near]
    depth = plane[owner, 0] * fx + plane[owner, 1] * fy + plane[owner, 2]
    # One sort: by pixel, then the triangles that cover it, nearest to the camera first, then those that
    # only come near it, nearest to the pixel first (they matter for its coverage; their depth planes,
    # extrapolated, mean little).
    span_z = float(depth.max() - depth.min()) if len(depth) else 0.0
    covers = inner >= 0
    within = np.where(covers, (depth.max(initial=0.0) - depth) / (span_z + 1e-6), -inner / (radius + 1e-6))
    key = (py * width + px) + 0.5 * ~covers + 0.49 * np.clip(within, 0, 1)
    order = np.argsort(key, kind="stable")
    pixel, tri = py[order] * width + px[order], index[owner[order]]
    starts = np.flatnonzero(np.r_[True, pixel[1:] != pixel[:-1]])
    rank = np.arange(len(pixel)) - np.repeat(starts, np.diff(np.r_[starts, len(pixel)]))
    first = rank < faces_per_pixel
    table[pixel[first], rank[first]] = tri[first]
    return table


def edge_neighbours(triangles: np.ndarray) -> np.ndarray:
    """``(T, 3)``: the triangle across the edge opposite each corner, -1 on the mesh boundary."""
    triangles = np.asarray(triangles, dtype=np.int64)
    edges = np.sort(np.stack([triangles[:, [1, 2, 0]], triangles[:, [2, 0, 1]]], axis=-1), axis=-1).reshape(-1, 2)
    _, key, counts = np.unique(edges, axis=0, return_inverse=True, return_counts=True)
    key = key.reshape(-1)
    order = np.argsort(key, kind="stable")
    out = np.full(len(edges), -1, dtype=np.int64)
    shared = counts[key[order]] == 2
    first = order[shared][0::2]
    second = order[shared][1::2]
    out[first], out[second] = second // 3, first // 3
    return out.reshape(-1, 3)


def rasterize(xy: torch.Tensor, z: torch.Tensor, triangles: torch.Tensor, candidates: np.ndarray,
              size: tuple[int, int], sigma: float = 0.3, gamma: float = 1.0,
              neighbours: np.ndarray | None = None) -> Fragments:
    """Differentiable coverage and soft z-buffer of the candidate triangles (:func:`select_faces`) of each
    pixel: gradients reach ``xy`` through barycentrics and signed edge distances and ``z`` through the
    z-buffer weights. ``sigma`` (pixels) is the width of the coverage sigmoid, ``gamma`` (depth units) the
    temperature of the z-buffer. ``neighbours`` is :func:`edge_neighbours` of ``triangles`` (computed when
    not given).

    Coverage is measured to the silhouette, not to every edge: an edge shared with another front-facing
    triangle is no boundary, so a triangle gives no coverage across it (its neighbour covers that side) and
    its distance does not count inside. The signed distance is the smallest distance to the remaining
    edge lines: exact except off their corners, where it slightly under-estimates. Without this, on a
    mesh whose triangles are about a pixel wide, the background would show through every inner edge."""
    torch = _torch()
    height, width = size
    covered = np.flatnonzero(candidates[:, 0] >= 0)
    table = candidates[covered]
    valid_np = table >= 0
    used, local = np.unique(np.where(valid_np, table, table.max(initial=0)), return_inverse=True)
    local = torch.as_tensor(local.reshape(table.shape))
    valid = torch.as_tensor(valid_np)
    tri_used = triangles[torch.as_tensor(used)]                                 # (U, 3)
    corners = xy[tri_used]                                                      # (U, 3, 2)
    area2 = _signed_area2(corners)
    area2 = torch.where(area2 > -1e-6, torch.full_like(area2, -1e-6), area2)
    coef = _edge_planes(corners, area2, torch)                                  # (U, 3, 3)
    heights = -area2[:, None] / _edge_lengths(corners, torch).clamp(min=1e-9)   # (U, 3)
    pixels = torch.as_tensor(covered)
    px = (pixels % width).to(xy.dtype)[:, None, None]
    py = torch.div(pixels, width, rounding_mode="floor").to(xy.dtype)[:, None, None]
    cf = coef[local]                                                            # (P, K, 3, 3)
    bary = cf[..., 0] * px + cf[..., 1] * py + cf[..., 2]                       # (P, K, 3)
    if neighbours is None:
        neighbours = edge_neighbours(triangles.numpy())
    front = np.append(_signed_area2(xy.detach().numpy()[triangles.numpy()]) < 0, False)
    inner = torch.as_tensor(front[neighbours[used]])[local]                       # (P, K, 3) shared edges
    distance = bary * heights[local]
    crossed = ((distance < 0) & inner).any(dim=-1)
    signed = torch.where(inner, torch.full_like(distance, torch.inf), distance).min(dim=-1).values
    coverage = torch.sigmoid(signed / sigma) * (valid & ~crossed)
    bary = bary.clamp(min=0)
    bary = bary / bary.sum(-1, keepdim=True).clamp(min=1e-12)
    tri = tri_used[local]                                                       # (P, K, 3)
    depth = (bary * z[tri]).sum(-1)                                             # (P, K)
    nearest = torch.where(valid, depth, torch.full_like(depth, -torch.inf)).max(dim=1, keepdim=True).values
    zweight = coverage * torch.exp((torch.where(valid, depth, nearest) - nearest.detach()) / gamma)
    zweight = zweight / zweight.sum(dim=1, keepdim=True).clamp(min=1e-12)
    alpha = 1 - torch.prod(1 - coverage, dim=1)
    return Fragments(pixels=pixels, vertices=tri, weights=zweight[..., None] * bary, alpha=alpha,
                     depth=(zweight * depth).sum(1), size=(height, width))


def blend(fragments: Fragments, values: torch.Tensor, background: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Image ``(H, W, C)`` of per-vertex ``values (V, C)`` over ``background`` (a value or ``(C,)``)."""
    torch = _torch()
    height, width = fragments.size
    channels = values.shape[1]
    face = (fragments.weights[..., None] * values[fragments.vertices]).sum(dim=(1, 2))   # (P, C)
    back = torch.as_tensor(background, dtype=values.dtype).expand(channels)
    pixel = fragments.alpha[:, None] * face + (1 - fragments.alpha[:, None]) * back
    image = back.expand(height * width, channels).index_copy(0, fragments.pixels, pixel)
    return image.reshape(height, width, channels)


def alpha_image(fragments: Fragments) -> torch.Tensor:
    """Coverage ``(H, W)``: the soft silhouette."""
    torch = _torch()
    height, width = fragments.size
    out = torch.zeros(height * width, dtype=fragments.alpha.dtype).index_copy(0, fragments.pixels, fragments.alpha)
    return out.reshape(height, width)


def render(xy: torch.Tensor, z: torch.Tensor, colors: torch.Tensor, triangles: torch.Tensor,
           size: tuple[int, int], *, faces_per_pixel: int = 4, blur_radius: float = 1.0, sigma: float = 0.3,
           gamma: float = 1.0, background: torch.Tensor | float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rgb (H, W, C), alpha (H, W))`` of a mesh with vertex ``xy`` (pixels, y down), depth ``z`` (larger is
    nearer) and per-vertex ``colors``: face selection, then :func:`rasterize` and :func:`blend`."""
    candidates = select_faces(xy.detach().cpu().numpy(), z.detach().cpu().numpy(), triangles.cpu().numpy(), size,
                              faces_per_pixel, blur_radius)
    fragments = rasterize(xy, z, triangles, candidates, size, sigma, gamma)
    return blend(fragments, colors, background), alpha_image(fragments)


def vertex_normals(vertices: torch.Tensor, triangles: torch.Tensor) -> torch.Tensor:
    """Unit normals ``(V, 3)``: area-weighted sums of the faces' normals (counter-clockwise = outward)."""
    torch = _torch()
    a, b, c = vertices[triangles].unbind(dim=1)
    face = torch.linalg.cross(b - a, c - a, dim=-1)
    summed = torch.zeros_like(vertices)
    for k in range(3):
        summed = summed.index_add(0, triangles[:, k], face)
    return summed / summed.norm(dim=1, keepdim=True).clamp(min=1e-12)


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """The 9 real spherical harmonics of bands 0-2 at unit ``normals (V, 3)``: ``(V, 9)``."""
    torch = _torch()
    x, y, z = normals.unbind(dim=1)
    c0, c1, c2, c3, c4 = _SH_C
    return torch.stack([torch.full_like(x, c0), c1 * y, c1 * z, c1 * x, c2 * x * y, c2 * y * z,
                        c3 * (3 * z * z - 1), c2 * x * z, c4 * (x * x - y * y)], dim=1)


def shade(albedo: torch.Tensor, normals: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    """Lambertian colours ``(V, 3)``: ``albedo`` times the irradiance of SH ``light (9, 3)`` at ``normals``."""
    return albedo * (sh_basis(normals) @ light)


def ambient_light(level: float = 1.0) -> np.ndarray:
    """SH coefficients ``(9, 3)`` of uniform light whose shading is ``level`` everywhere."""
    light = np.zeros((9, 3))
    light[0] = level / _SH_C[0]
    return light
