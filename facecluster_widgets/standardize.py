"""The method's 2D standardisation: NTSC grey (eq. 8), similarity alignment to a 5-point template,
CLAHE and gamma (eq. 3). Each step is a plain function so a notebook can switch it off and show it.

The similarity is a least-squares (Umeyama) fit written out here rather than taken from
scikit-image, which is not a dependency of the toolkit; ``tests/test_standardize.py`` checks the
two agree. Its RMS residual is kept because the method reports how well a face fits the template.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import cv2
import numpy as np

from .detect.base import POINTS5_ORDER
from .errors import FaceclusterError

Border = Literal["replicate", "constant"]

#: insightface's ArcFace template for 112x112 crops, in :data:`POINTS5_ORDER`.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]]
)
ARCFACE_TEMPLATE_112.flags.writeable = False
#: The same template scaled to the 160x160 crops FaceNet-style embedders take.
FACENET_TEMPLATE_160 = ARCFACE_TEMPLATE_112 * (160.0 / 112.0)
FACENET_TEMPLATE_160.flags.writeable = False

#: Crop sizes the method's standardisation supports (ArcFace-style and FaceNet-style embedders).
STANDARD_SIZES = (112, 160)

_BORDERS = {"replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT}


@dataclass(frozen=True, eq=False)
class Similarity:
    """A 2D similarity ``dst = scale * R(rotation) @ src + translation`` and how well it fitted.

    ``rotation_deg`` is measured in image coordinates (y down), so a positive angle turns content
    clockwise on screen. ``rms_residual`` is the root-mean-square distance, in destination pixels,
    between the mapped source points and their targets; NaN when the transform was not fitted to
    points (a plain crop).
    """

    scale: float
    rotation_deg: float
    translation: tuple[float, float]
    matrix: np.ndarray
    rms_residual: float

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map ``(N, 2)`` source points into the destination (e.g. the aligned crop)."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return pts @ self.matrix[:, :2].T + self.matrix[:, 2]

    def inverse_matrix(self) -> np.ndarray:
        """The 2x3 matrix taking destination pixels back to the source image."""
        return cv2.invertAffineTransform(self.matrix)

    def apply_inverse(self, points: np.ndarray) -> np.ndarray:
        """Map ``(N, 2)`` destination points (e.g. landmarks found in a crop) back to the source."""
        inv = self.inverse_matrix()
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        return pts @ inv[:, :2].T + inv[:, 2]


@dataclass(frozen=True)
class StandardiseConfig:
    """Which standardisation steps run, with their parameters; ``to_dict()`` keys stored results.

    ``border`` fills pixels the alignment pulls from outside the photo: "replicate" (default)
    avoids the artificial black-to-skin step edge that CLAHE would amplify and a mesh detector
    could take for a face outline; "constant" (black) matches insightface's ``norm_crop``.
    """

    size: int = 112
    grey: bool = True
    align: bool = True
    clahe: bool = True
    clip_limit: float = 2.0
    tile_grid: tuple[int, int] = (8, 8)
    gamma: float | None = None
    border: Border = "replicate"

    def __post_init__(self) -> None:
        if self.size not in STANDARD_SIZES:
            raise FaceclusterError(f"StandardiseConfig.size must be one of {STANDARD_SIZES}, "
                                   f"got {self.size!r}")
        _check_clahe_params(self.clip_limit, self.tile_grid)
        if self.gamma is not None:
            _check_gamma(self.gamma)
        if self.border not in _BORDERS:
            raise FaceclusterError(f"StandardiseConfig.border must be one of {sorted(_BORDERS)}, "
                                   f"got {self.border!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, eq=False)
class StandardisedFace:
    """Every intermediate of :func:`standardise`, so a widget can show each step and its effect.

    ``grey`` is the whole photo in NTSC grey (None when grey is off); ``aligned`` is the working
    image after alignment (grey or colour); ``clahe`` and ``gamma`` are None when their step is off;
    ``final`` is the last image produced. ``aligned_rgb`` is the colour crop under the same
    transform, because embedders need their own colour input.
    """

    config: StandardiseConfig
    similarity: Similarity
    aligned_rgb: np.ndarray
    grey: np.ndarray | None
    aligned: np.ndarray
    clahe: np.ndarray | None
    gamma: np.ndarray | None
    final: np.ndarray

    def steps(self) -> dict[str, np.ndarray]:
        """The images produced, in pipeline order, skipping steps that were off."""
        named = [("grey", self.grey), ("aligned", self.aligned), ("clahe", self.clahe), ("gamma", self.gamma)]
        return {name: img for name, img in named if img is not None}


# ---------------------------------------------------------------- photometric steps


def ntsc_grey(rgb: np.ndarray, dtype: type = np.uint8) -> np.ndarray:
    """``0.299 R + 0.587 G + 0.114 B`` exactly (the method's eq. 8).

    OpenCV's ``COLOR_RGB2GRAY`` uses 14-bit fixed-point weights and can differ by one grey level,
    hence the explicit formula. ``dtype=np.float32`` returns the unrounded value.
    """
    rgb = _check_image(rgb, "rgb", channels=(3,))
    weights = np.array([0.299, 0.587, 0.114])
    grey = rgb.astype(np.float64) @ weights
    if np.dtype(dtype) == np.uint8:
        return np.clip(np.rint(grey), 0, 255).astype(np.uint8)
    if np.dtype(dtype) == np.float32:
        return grey.astype(np.float32)
    raise FaceclusterError(f"ntsc_grey: dtype must be uint8 or float32, got {np.dtype(dtype)}")


def clahe(grey: np.ndarray, clip_limit: float = 2.0, tile_grid: tuple[int, int] = (8, 8)) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation of a uint8 grey image (OpenCV's)."""
    grey = _check_image(grey, "grey", channels=(1,))
    _check_clahe_params(clip_limit, tile_grid)
    tiles = (int(tile_grid[0]), int(tile_grid[1]))
    return cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=tiles).apply(grey)


def clahe_colour(rgb: np.ndarray, clip_limit: float = 2.0, tile_grid: tuple[int, int] = (8, 8)) -> np.ndarray:
    """CLAHE on the lightness of CIELAB only, so equalising contrast does not shift hues."""
    rgb = _check_image(rgb, "rgb", channels=(3,))
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
    lab[:, :, 0] = clahe(np.ascontiguousarray(lab[:, :, 0]), clip_limit, tile_grid)
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def gamma(image: np.ndarray, g: float) -> np.ndarray:
    """``I_out = 255 (I / 255) ** g`` (the method's eq. 3) through a 256-entry lookup table.

    ``g < 1`` brightens shadows, ``g > 1`` darkens; ``g == 1`` returns an identical copy.
    """
    image = _check_image(image, "image", channels=(1, 3))
    _check_gamma(g)
    table = np.clip(np.rint(255.0 * (np.arange(256) / 255.0) ** float(g)), 0, 255).astype(np.uint8)
    return table[image]


# ---------------------------------------------------------------- geometry


def template_points(size: int = 112, padding: float = 0.0) -> np.ndarray:
    """The ArcFace template in :data:`POINTS5_ORDER` for a ``size`` square crop.

    ``padding`` adds context around the 112-pixel face square on every side, as a fraction of it:
    0.5 makes the face occupy the middle half of the crop (what a mesh detector wants).
    """
    if not (isinstance(size, int | np.integer) and size >= 16):
        raise FaceclusterError(f"crop size must be an integer >= 16, got {size!r}")
    if not (math.isfinite(padding) and padding >= 0):
        raise FaceclusterError(f"padding must be a finite number >= 0, got {padding!r}")
    side = 112.0 * (1.0 + 2.0 * padding)
    return (ARCFACE_TEMPLATE_112 + 112.0 * padding) * (size / side)


def similarity_transform(src_pts: np.ndarray, dst_pts: np.ndarray, allow_rotation: bool = True) -> Similarity:
    """Least-squares similarity taking ``src_pts`` onto ``dst_pts`` (Umeyama 1991).

    With ``allow_rotation=False`` only scale and translation are fitted (a crop that keeps the
    photo's orientation), still in the least-squares sense.
    """
    src = _check_points(src_pts, "src_pts")
    dst = _check_points(dst_pts, "dst_pts")
    if src.shape != dst.shape or len(src) < 2:
        raise FaceclusterError(f"need >= 2 matching points, got src {src.shape} and dst {dst.shape}")
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s_c, d_c = src - mu_s, dst - mu_d
    var_s = float((s_c**2).sum()) / len(src)
    if var_s <= 1e-12:
        raise FaceclusterError("src_pts are all the same point; a similarity cannot be fitted")
    if allow_rotation:
        cov = d_c.T @ s_c / len(src)
        u, d, vt = np.linalg.svd(cov)
        sign = np.eye(2)
        if np.linalg.det(u) * np.linalg.det(vt) < 0:
            sign[1, 1] = -1.0
        rot = u @ sign @ vt
        scale = float(np.trace(np.diag(d) @ sign)) / var_s
    else:
        rot = np.eye(2)
        scale = float((s_c * d_c).sum()) / float((s_c**2).sum())
    if scale <= 0:
        raise FaceclusterError("the points are mirrored or collapsed relative to the template (scale <= 0)")
    trans = mu_d - scale * rot @ mu_s
    matrix = np.hstack([scale * rot, trans[:, None]])
    residual = src @ matrix[:, :2].T + trans - dst
    rms = float(np.sqrt((residual**2).sum(axis=1).mean()))
    return _similarity(matrix, rms)


def align(
    image: np.ndarray,
    points5: np.ndarray,
    size: int = 112,
    padding: float = 0.0,
    border: Border = "replicate",
    allow_rotation: bool = True,
) -> tuple[np.ndarray, Similarity]:
    """Warp ``image`` so its 5 points land on the ArcFace template of a ``size`` crop."""
    image = _check_image(image, "image", channels=(1, 3))
    pts = _check_points(points5, "points5", n=len(POINTS5_ORDER))
    sim = similarity_transform(pts, template_points(size, padding), allow_rotation=allow_rotation)
    return warp(image, sim, size, border), sim


def crop_box(
    image: np.ndarray,
    box: tuple[float, float, float, float],
    size: int = 256,
    margin: float = 0.0,
    border: Border = "replicate",
) -> tuple[np.ndarray, Similarity]:
    """A square ``size`` crop centred on ``box`` (x0, y0, x1, y1), its longer side grown by
    ``margin`` on each side; the :class:`Similarity` maps crop pixels back with ``apply_inverse``."""
    image = _check_image(image, "image", channels=(1, 3))
    x0, y0, x1, y1 = (float(v) for v in box)
    if not all(map(math.isfinite, (x0, y0, x1, y1))) or x1 <= x0 or y1 <= y0:
        raise FaceclusterError(f"box must be finite (x0, y0, x1, y1) with x1 > x0 and y1 > y0, got {box!r}")
    if not (math.isfinite(margin) and margin >= 0):
        raise FaceclusterError(f"margin must be a finite number >= 0, got {margin!r}")
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
    scale = size / side
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    matrix = np.array([[scale, 0.0, size / 2.0 - scale * cx], [0.0, scale, size / 2.0 - scale * cy]])
    sim = _similarity(matrix, float("nan"))
    return warp(image, sim, size, border), sim


def centre_square(
    image: np.ndarray, size: int, border: Border = "replicate"
) -> tuple[np.ndarray, Similarity]:
    """The largest centred square of ``image`` resized to ``size``, for photos that are face crops."""
    image = _check_image(image, "image", channels=(1, 3))
    h, w = image.shape[:2]
    return crop_box(image, (0.0, 0.0, float(w), float(h)) if w == h else _centre_box(w, h), size, 0.0, border)


def warp(image: np.ndarray, sim: Similarity, size: int, border: Border = "replicate") -> np.ndarray:
    """Apply ``sim`` to ``image`` into a ``size`` square with bilinear interpolation."""
    if border not in _BORDERS:
        raise FaceclusterError(f"border must be one of {sorted(_BORDERS)}, got {border!r}")
    return cv2.warpAffine(image, sim.matrix, (int(size), int(size)), flags=cv2.INTER_LINEAR,
                          borderMode=_BORDERS[border], borderValue=0)


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize to ``size`` (square) or ``(width, height)``: area averaging to shrink, cubic to enlarge."""
    image = _check_image(image, "image", channels=(1, 3))
    w, h = (size, size) if isinstance(size, int | np.integer) else size
    if int(w) < 1 or int(h) < 1:
        raise FaceclusterError(f"resize target must be positive, got {size!r}")
    shrink = w * h < image.shape[0] * image.shape[1]
    return cv2.resize(image, (int(w), int(h)), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


# ---------------------------------------------------------------- the pipeline


def standardise(
    rgb: np.ndarray, points5: np.ndarray | None, config: StandardiseConfig | None = None
) -> StandardisedFace:
    """Grey -> align -> CLAHE -> gamma, as switched by ``config``, keeping every intermediate.

    With ``align`` off the crop is still placed by the 5 points, but with scale and translation
    only (the photo's roll is kept); without points the centred square of the photo is used.
    With ``grey`` off CLAHE acts on CIELAB lightness and gamma on all three channels.
    """
    config = config or StandardiseConfig()
    rgb = _check_image(rgb, "rgb", channels=(3,))
    if points5 is None:
        if config.align:
            raise FaceclusterError("standardise: points5 are required when config.align is on")
        _, sim = centre_square(rgb, config.size, config.border)
    else:
        pts = _check_points(points5, "points5", n=len(POINTS5_ORDER))
        sim = similarity_transform(pts, template_points(config.size), allow_rotation=config.align)
    aligned_rgb = warp(rgb, sim, config.size, config.border)
    grey = ntsc_grey(rgb) if config.grey else None
    aligned = warp(grey, sim, config.size, config.border) if grey is not None else aligned_rgb
    current = aligned
    equalised = None
    if config.clahe:
        op = clahe if config.grey else clahe_colour
        equalised = current = op(current, config.clip_limit, config.tile_grid)
    gammad = None
    if config.gamma is not None:
        gammad = current = gamma(current, config.gamma)
    return StandardisedFace(config=config, similarity=sim, aligned_rgb=aligned_rgb, grey=grey,
                            aligned=aligned, clahe=equalised, gamma=gammad, final=current)


# ---------------------------------------------------------------- checks


def _similarity(matrix: np.ndarray, rms: float) -> Similarity:
    matrix = np.asarray(matrix, dtype=np.float64)
    scale = float(math.hypot(matrix[0, 0], matrix[1, 0]))
    rotation = float(math.degrees(math.atan2(matrix[1, 0], matrix[0, 0])))
    matrix.flags.writeable = False
    translation = (float(matrix[0, 2]), float(matrix[1, 2]))
    return Similarity(scale=scale, rotation_deg=rotation, translation=translation, matrix=matrix,
                      rms_residual=rms)


def _centre_box(w: int, h: int) -> tuple[float, float, float, float]:
    side = float(min(w, h))
    x0, y0 = (w - side) / 2.0, (h - side) / 2.0
    return (x0, y0, x0 + side, y0 + side)


def _check_image(image: object, name: str, channels: tuple[int, ...]) -> np.ndarray:
    if not isinstance(image, np.ndarray):
        raise FaceclusterError(f"{name} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise FaceclusterError(f"{name} must be uint8 (0-255 pixels), got {image.dtype}")
    nch = 1 if image.ndim == 2 else (image.shape[2] if image.ndim == 3 else -1)
    if nch not in channels or (image.ndim == 3 and nch == 1):
        want = " or ".join("(H, W)" if c == 1 else f"(H, W, {c})" for c in channels)
        raise FaceclusterError(f"{name} must have shape {want}, got {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise FaceclusterError(f"{name} has no pixels: shape {image.shape}")
    return image


def _check_points(points: object, name: str, n: int | None = None) -> np.ndarray:
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or (n is not None and len(pts) != n):
        want = f"({n}, 2)" if n is not None else "(N, 2)"
        raise FaceclusterError(f"{name} must have shape {want}, got {pts.shape}")
    _check_finite(pts, name)
    return pts


def _check_finite(pts: np.ndarray, name: str) -> None:
    if not np.isfinite(pts).all():
        raise FaceclusterError(f"{name} contain NaN or infinite coordinates (landmarking failed?)")


def _check_clahe_params(clip_limit: float, tile_grid: tuple[int, int]) -> None:
    if not (isinstance(clip_limit, int | float) and math.isfinite(clip_limit) and clip_limit > 0):
        raise FaceclusterError(f"clip_limit must be a finite number > 0, got {clip_limit!r}")
    grid = tuple(tile_grid) if isinstance(tile_grid, tuple | list) else ()
    if not (len(grid) == 2 and all(isinstance(t, int | np.integer) and t >= 1 for t in grid)):
        raise FaceclusterError(f"tile_grid must be two integers >= 1, got {tile_grid!r}")


def _check_gamma(g: float) -> None:
    if not (isinstance(g, int | float) and math.isfinite(g) and g > 0):
        raise FaceclusterError(f"gamma must be a finite number > 0, got {g!r}")
