"""InsightFace's SCRFD / RetinaFace ONNX detectors, from model files already on disk.

Nothing is ever downloaded: the model is a user-given ``.onnx`` file or the ``det_*.onnx`` of a pack
folder under ``~/.insightface/models/<pack>/`` (e.g. ``buffalo_l/det_10g.onnx``). Its 5 keypoints
are already in ArcFace order and become ``points5``; ``points68`` come from dlib's predictor like
every other detector's, on a box placed from those 5 points (detector boxes differ by model).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FaceclusterError, ModelMissingError, optional_import
from .base import Detection, check_rgb
from .dlib_backend import Landmarker68, finalize

log = logging.getLogger(__name__)

#: File names a pack's detector may have: buffalo_* packs ship det_10g.onnx / det_500m.onnx,
#: antelopev2 ships scrfd_10g_bnkps.onnx.
DETECTOR_PATTERNS = ("det_*.onnx", "scrfd*.onnx")

#: Square dlib-scale box from 5 points, fitted on lfw10 to dlib's own HOG boxes: side = this many eye-to-mouth
#: distances, centre this far above the mean of the 5 points (dlib's slight leftward bias is left out to keep
#: mirror symmetry). Landmarks from it match those of dlib's boxes as well as the mediapipe box maps do
#: (``benchmarks/detection_rate.py --box-adjust``; figures in benchmarks/README.md).
_SIDE_PER_EYE_MOUTH = 2.30
_CENTRE_UP_PER_EYE_MOUTH = 0.07


def dlib_box_from_points5(points5: np.ndarray) -> tuple[float, float, float, float]:
    """The box dlib's 68-point predictor expects for a face with these ArcFace points."""
    p = np.asarray(points5, dtype=np.float64)
    d = float(np.linalg.norm((p[3] + p[4]) / 2 - (p[0] + p[1]) / 2))
    cx, cy = p.mean(axis=0)
    cy -= _CENTRE_UP_PER_EYE_MOUTH * d
    half = _SIDE_PER_EYE_MOUTH * d / 2
    return (cx - half, cy - half, cx + half, cy + half)


def find_detector_model(model_path: str | os.PathLike | None, pack: str, root: str | os.PathLike) -> Path:
    """The .onnx file to load, or :class:`ModelMissingError` saying which file goes where."""
    if model_path is not None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ModelMissingError(f"insightface detector model not found: {path} (give the path of an "
                                    "existing SCRFD/RetinaFace .onnx file, e.g. det_10g.onnx of buffalo_l)")
        return path
    folder = Path(root).expanduser() / "models" / pack
    for pattern in DETECTOR_PATTERNS:
        matches = sorted(folder.glob(pattern))
        if matches:
            return matches[0]
    raise ModelMissingError(
        f"no insightface detector model in {folder}: expected a file matching "
        f"{' or '.join(DETECTOR_PATTERNS)} (buffalo_l ships det_10g.onnx). Unpack the '{pack}' model pack "
        f"there, or pass model_path='/path/to/det_10g.onnx'. Models are never downloaded automatically.")


class InsightfaceDetector:
    """An InsightFace SCRFD/RetinaFace detector run on CPU through onnxruntime."""

    name = "insightface"

    def __init__(self, model_path: str | os.PathLike | None = None, pack: str = "buffalo_l",
                 root: str | os.PathLike = "~/.insightface", min_confidence: float = 0.5,
                 input_size: tuple[int, int] = (640, 640), nms_threshold: float = 0.4,
                 landmarks: bool = True, landmarker: Landmarker68 | None = None) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise FaceclusterError(f"min_confidence must lie in [0, 1], got {min_confidence}")
        self.model_path = None if model_path is None else str(model_path)
        self.pack = pack
        self.root = str(root)
        self.min_confidence = float(min_confidence)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.nms_threshold = float(nms_threshold)
        self.landmarker = (landmarker or Landmarker68()) if landmarks else None
        self._model: Any = None

    def params(self) -> dict:
        model = self.model_path if self.model_path is not None else f"{self.pack}/det_*.onnx"
        return {"model": model, "min_confidence": self.min_confidence, "input_size": list(self.input_size),
                "nms_threshold": self.nms_threshold,
                "landmarks": None if self.landmarker is None else self.landmarker.params()}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None}

    def model_file(self) -> Path:
        return find_detector_model(self.model_path, self.pack, self.root)

    def _load(self) -> Any:
        if self._model is None:
            path = self.model_file()
            zoo = optional_import("insightface.model_zoo", "the insightface (SCRFD) detector", "insightface")
            model = zoo.get_model(str(path), download=False, providers=["CPUExecutionProvider"])
            if model is None or getattr(model, "taskname", None) != "detection":
                kind = "nothing" if model is None else type(model).__name__
                raise ModelMissingError(f"{path} is not a face detection model (insightface routed it to "
                                        f"{kind}); expected an SCRFD/RetinaFace det_*.onnx")
            model.prepare(ctx_id=-1, input_size=self.input_size, det_thresh=self.min_confidence,
                          nms_thresh=self.nms_threshold)
            self._model = model
        return self._model

    def find(self, rgb: np.ndarray) -> list[Detection]:
        """Boxes (not yet clipped to the image), scores and ArcFace 5 points."""
        rgb = check_rgb(rgb)
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # insightface models take OpenCV's BGR order
        boxes, points = self._load().detect(bgr, input_size=self.input_size)
        found = []
        for i, row in enumerate(boxes):
            p5 = None if points is None else np.asarray(points[i], dtype=np.float64).reshape(5, 2)
            found.append(Detection(box=tuple(float(v) for v in row[:4]), score=float(row[4]),
                                   points5=p5, source=self.name))
        return sorted(found, key=lambda d: -d.score)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        rgb = check_rgb(rgb)
        found = self.find(rgb)
        if self.landmarker is not None:
            # dlib's box is placed from the model's 5 points: box conventions differ between models.
            boxes = [det.box if det.points5 is None else dlib_box_from_points5(det.points5) for det in found]
            found = list(self.landmarker.annotate(rgb, found, dlib_boxes=boxes))
        return finalize(rgb, found, None)
