"""The one interface every face detector implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

#: Order of the 5 alignment points, as in insightface's ArcFace template: the eye on the image's left,
#: the eye on the image's right, nose tip, mouth corner on the image's left, mouth corner on the right.
POINTS5_ORDER = ("eye_left", "eye_right", "nose_tip", "mouth_left", "mouth_right")


@dataclass(frozen=True)
class Detection:
    """One face in an image: box ``(x0, y0, x1, y1)`` in pixels and a confidence in [0, 1].

    ``points5`` (5, 2) follow :data:`POINTS5_ORDER`; ``points68`` (68, 2) follow the iBUG / dlib
    layout. Either is ``None`` when the backend does not give it. ``source`` names the backend that
    found the face (a cascade records which of its members did).
    """

    box: tuple[float, float, float, float]
    score: float
    points5: np.ndarray | None = None
    points68: np.ndarray | None = None
    source: str = ""

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
