"""dlib's HOG frontal face detector, and the 68-point landmarker every detector shares.

Every detector fills ``points68``/``points5`` through :class:`Landmarker68`, so rows found by
different detectors carry landmarks of one kind. Only the box handed to dlib's predictor differs:
the predictor was trained on boxes from dlib's own detector, so each detector's box is first mapped
onto that scale by a :class:`BoxAdjust` measured on lfw10 (see ``benchmarks/detection_rate.py``).
"""

from __future__ import annotations

import logging
import math
import os
import warnings
from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FaceclusterError, ModelMissingError
from .base import Detection, check_rgb, clip_box, points5_from_68

log = logging.getLogger(__name__)

#: Smallest face box (px) dlib's frontal HOG detector finds without upsampling: lfw10 photos scaled
#: down are all found while the face box is >= 73 px, a third at ~52 px, none at ~42 px. Each
#: upsampling halves it.
HOG_MIN_FACE = 70

#: Slope of the logistic that maps a HOG SVM margin to [0, 1]: margin 0 (dlib's own decision
#: threshold) gives 0.5, and 1.4, the median margin of true faces on lfw10/orl/yale/cfp100 frontals,
#: gives 0.89. The mapping is monotone, so thresholds on score and margin are interchangeable.
HOG_SCORE_SLOPE = 1.5

#: Box perturbations (dx, dy as a share of the side, scale) for :meth:`Landmarker68.quality`.
_JITTER = ((0.08, 0.0, 1.0), (-0.08, 0.0, 1.0), (0.0, 0.08, 1.0), (0.0, -0.08, 1.0),
           (0.0, 0.0, 1.12), (0.0, 0.0, 0.88))
#: Landmark drift (mean point shift / box side) at which quality falls to 1/e. On a cfp100
#: subsample the median drift was 0.006 for frontal faces (quality 0.89) and 0.078 for profiles (0.21).
_DRIFT_SCALE = 0.05


def hog_score(margin: float) -> float:
    """logistic(:data:`HOG_SCORE_SLOPE` * margin), written with tanh so no margin overflows."""
    return 0.5 * (1.0 + math.tanh(0.5 * HOG_SCORE_SLOPE * margin))


@dataclass(frozen=True)
class BoxAdjust:
    """Maps a detector's box onto the square box dlib's 68-point predictor expects.

    The result is a square of side ``scale * (w + h) / 2`` whose centre is moved by ``dx``, ``dy``
    times that mean side. The identity suits dlib's own boxes.
    """

    scale: float = 1.0
    dx: float = 0.0
    dy: float = 0.0

    def apply(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = box
        side = (x1 - x0 + y1 - y0) / 2.0
        cx = (x0 + x1) / 2.0 + self.dx * side
        cy = (y0 + y1) / 2.0 + self.dy * side
        half = self.scale * side / 2.0
        return (cx - half, cy - half, cx + half, cy + half)


def default_predictor_path() -> Path:
    """dlib's 68-point model as shipped by the ``face_recognition_models`` package."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # it imports the deprecated pkg_resources
            import face_recognition_models
    except ImportError as exc:
        raise ModelMissingError(
            "dlib's 68-point model 'shape_predictor_68_face_landmarks.dat' comes from the package "
            "face_recognition_models (pip install face_recognition_models), which is not installed; "
            "or pass Landmarker68(model_path=...) pointing at the .dat file") from exc
    return Path(face_recognition_models.pose_predictor_model_location())


class Landmarker68:
    """dlib's 68-point shape predictor, run on a detector's box; the model loads on first use."""

    def __init__(self, model_path: str | os.PathLike | None = None) -> None:
        self.model_path = None if model_path is None else Path(model_path)
        self._predictor: Any = None

    def params(self) -> dict:
        path = self.model_path if self.model_path is not None else Path("shape_predictor_68_face_landmarks.dat")
        return {"model": "dlib-68", "file": path.name}

    def _load(self) -> Any:
        if self._predictor is None:
            import dlib

            path = self.model_path if self.model_path is not None else default_predictor_path()
            if not path.is_file():
                raise ModelMissingError(
                    f"dlib 68-point landmark model not found at {path}: put "
                    "shape_predictor_68_face_landmarks.dat there (it ships with face_recognition_models)")
            self._predictor = dlib.shape_predictor(str(path))
        return self._predictor

    def __getstate__(self) -> dict:
        return {"model_path": self.model_path, "_predictor": None}

    def landmarks(self, rgb: np.ndarray, box: tuple[float, float, float, float],
                  adjust: BoxAdjust = BoxAdjust()) -> np.ndarray:
        """(68, 2) float pixel coordinates for the face in ``box`` (the detector's own box)."""
        import dlib

        x0, y0, x1, y1 = (int(round(v)) for v in adjust.apply(box))
        # dlib rectangles include their right and bottom pixel; our boxes end just past them.
        shape = self._load()(rgb, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    def quality(self, rgb: np.ndarray, box: tuple[float, float, float, float], points68: np.ndarray) -> float:
        """Stability of the landmarks under small moves of the dlib-scale ``box`` (see
        :attr:`Detection.landmark_quality`): 1 = unmoved, near 0 = the points follow the box, not the face."""
        x0, y0, x1, y1 = box
        side = max((x1 - x0 + y1 - y0) / 2.0, 1.0)
        drifts = []
        for dx, dy, scale in _JITTER:
            moved = BoxAdjust(scale=scale, dx=dx, dy=dy).apply(box)
            drifts.append(np.linalg.norm(self.landmarks(rgb, moved) - points68, axis=1).mean())
        return float(math.exp(-float(np.mean(drifts)) / side / _DRIFT_SCALE))

    def annotate(self, rgb: np.ndarray, detections: list[Detection], adjust: BoxAdjust = BoxAdjust(),
                 dlib_boxes: list[tuple[float, float, float, float]] | None = None) -> list[Detection]:
        """``detections`` with ``points68``, ``points5`` and ``landmark_quality`` filled.

        ``points5`` is kept when already set (a detector's own 5 points beat ones derived from the
        68). dlib's box is ``adjust`` applied to each detection's box, unless ``dlib_boxes`` gives it.
        """
        out = []
        for i, det in enumerate(detections):
            box = adjust.apply(det.box) if dlib_boxes is None else dlib_boxes[i]
            p68 = self.landmarks(rgb, box)
            p5 = det.points5 if det.points5 is not None else points5_from_68(p68)
            fields = {f.name: getattr(det, f.name) for f in dataclass_fields(Detection)}
            fields.update(points68=p68, points5=p5, landmark_quality=self.quality(rgb, box, p68))
            out.append(Detection(**fields))
        return out


class DlibHogDetector:
    """dlib's HOG + linear SVM frontal face detector.

    It is fast and precise on frontal faces but blind below ~70 px and beyond ~45 deg of yaw, so
    small images are upsampled: just enough times for a face of ``min_face`` px to be findable, and
    never beyond ``max_upsampled_pixels`` (each upsampling quadruples the work).
    ``score`` = logistic(:data:`HOG_SCORE_SLOPE` * SVM margin); ``adjust_threshold`` shifts dlib's
    margin threshold (negative finds more faces and more false ones).
    """

    name = "dlib-hog"
    box_adjust = BoxAdjust()

    def __init__(self, min_face: int = 40, max_upsampled_pixels: int = 2_000_000,
                 adjust_threshold: float = 0.0, landmarks: bool = True,
                 landmarker: Landmarker68 | None = None) -> None:
        if min_face <= 0:
            raise FaceclusterError(f"min_face must be a positive number of pixels, got {min_face}")
        self.min_face = int(min_face)
        self.max_upsampled_pixels = int(max_upsampled_pixels)
        self.adjust_threshold = float(adjust_threshold)
        self.landmarker = (landmarker or Landmarker68()) if landmarks else None
        self._detector: Any = None

    def params(self) -> dict:
        return {"min_face": self.min_face, "max_upsampled_pixels": self.max_upsampled_pixels,
                "adjust_threshold": self.adjust_threshold,
                "landmarks": None if self.landmarker is None else self.landmarker.params()}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_detector": None}

    def upsample_count(self, height: int, width: int) -> int:
        """Upsamplings needed to see a ``min_face`` px face, within the pixel budget."""
        wanted = max(0, math.ceil(math.log2(HOG_MIN_FACE / self.min_face)))
        count = wanted
        while count > 0 and height * width * 4**count > self.max_upsampled_pixels:
            count -= 1
        if count < wanted:
            log.debug("dlib-hog: %dx%d image upsampled %d instead of %d times (pixel budget)",
                      width, height, count, wanted)
        return count

    def find(self, rgb: np.ndarray) -> list[Detection]:
        """Boxes (not yet clipped to the image) and scores; :meth:`detect` adds landmarks and clips."""
        rgb = check_rgb(rgb)
        if self._detector is None:
            import dlib

            self._detector = dlib.get_frontal_face_detector()
        height, width = rgb.shape[:2]
        rects, margins, _ = self._detector.run(rgb, self.upsample_count(height, width), self.adjust_threshold)
        found = [Detection(box=(float(r.left()), float(r.top()), float(r.right() + 1), float(r.bottom() + 1)),
                           score=hog_score(m), source=self.name)
                 for r, m in zip(rects, margins, strict=True)]
        return sorted(found, key=lambda d: -d.score)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        rgb = check_rgb(rgb)
        return finalize(rgb, self.find(rgb), self.landmarker, self.box_adjust)


def finalize(rgb: np.ndarray, found: list[Detection], landmarker: Landmarker68 | None,
             adjust: BoxAdjust = BoxAdjust()) -> list[Detection]:
    """Landmarks from the unclipped boxes (a box cut at the image border would misplace them), then
    boxes clipped to the image; boxes left with no area are dropped."""
    if landmarker is not None:
        found = landmarker.annotate(rgb, found, adjust)
    height, width = rgb.shape[:2]
    out = []
    for det in found:
        box = clip_box(det.box, width, height)
        if box[2] - box[0] >= 1 and box[3] - box[1] >= 1:
            out.append(replace(det, box=box))
    return out
