"""The one interface every face detector implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import FaceclusterError

#: Order of the 5 alignment points, as in insightface's ArcFace template: the eye on the image's left,
#: the eye on the image's right, nose tip, mouth corner on the image's left, mouth corner on the right.
POINTS5_ORDER = ("eye_left", "eye_right", "nose_tip", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Detection:
    """One face in an image: box ``(x0, y0, x1, y1)`` in pixels and a confidence in [0, 1].

    ``points5`` (5, 2) follow :data:`POINTS5_ORDER`; ``points68`` (68, 2) follow the iBUG / dlib
    layout. Either is ``None`` when the backend does not give it. ``source`` names the backend that
    found the face (a cascade records which of its members did).

    ``landmark_quality`` in [0, 1] says how far the 68 points can be trusted. dlib's predictor only
    knows frontal faces: on a profile it still returns 68 points, but they follow the box rather than
    the face, so they drift when the box moves a little. The quality is exp(-drift / 0.05), drift being
    the mean landmark shift over six 8 %-shifted / 12 %-scaled boxes divided by the box side. With the
    "auto" detector it separates cfp100 frontal photos from profiles (``benchmarks/detection_rate.py``; figures
    in benchmarks/README.md). Use it to weight or filter landmark-based features; faces
    are never dropped for it.
    """

    box: tuple[float, float, float, float]
    score: float
    points5: np.ndarray | None = None
    points68: np.ndarray | None = None
    source: str = ""
    landmark_quality: float | None = None

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]


class Detector(Protocol):
    """Finds faces in an RGB uint8 image; ``params()`` enters the store key of its results."""

    name: str

    def params(self) -> dict: ...

    def detect(self, rgb: np.ndarray) -> list[Detection]: ...


#: iBUG / dlib 68-point indices used to derive the 5 ArcFace points.
_EYE_A = slice(36, 42)  # the eye drawn on the image's left in iBUG annotations
_EYE_B = slice(42, 48)
_NOSE_TIP = 30
_MOUTH_A, _MOUTH_B = 48, 54


def points5_from_68(points68: np.ndarray) -> np.ndarray:
    """The 5 ArcFace points (eye centres = mean of the 6 eye contour points, nose tip = 30, mouth
    corners 48 and 54), each pair put in image order: for a mirrored or oddly fitted face the iBUG
    "left" points need not lie on the image's left."""
    p = np.asarray(points68, dtype=np.float64)
    eyes = sorted((p[_EYE_A].mean(axis=0), p[_EYE_B].mean(axis=0)), key=lambda q: q[0])
    mouth = sorted((p[_MOUTH_A], p[_MOUTH_B]), key=lambda q: q[0])
    return np.vstack([eyes[0], eyes[1], p[_NOSE_TIP], mouth[0], mouth[1]])


def check_rgb(rgb: Any) -> np.ndarray:
    """``rgb`` as a C-contiguous (H, W, 3) uint8 array, or a clear error: detectors receive pixels from
    user code, and a float or BGRA array would otherwise fail deep inside a C++ library."""
    if not isinstance(rgb, np.ndarray):
        raise FaceclusterError(f"detector input must be a numpy array, got {type(rgb).__name__}")
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise FaceclusterError(
            f"detector input must be an (H, W, 3) uint8 RGB array, got shape {rgb.shape} dtype {rgb.dtype}; "
            "decode files with facecluster_widgets.io.images.read_image")
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise FaceclusterError(f"detector input has no pixels (shape {rgb.shape})")
    return np.ascontiguousarray(rgb)


def clip_box(box: tuple[float, float, float, float], width: int, height: int) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = box
    return (float(min(max(x0, 0.0), width)), float(min(max(y0, 0.0), height)),
            float(min(max(x1, 0.0), width)), float(min(max(y1, 0.0), height)))
