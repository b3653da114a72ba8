"""MediaPipe (BlazeFace) face detection.

Its 6 keypoints (eyes, nose, mouth centre, ear tragions) are not the 5 ArcFace points, so landmarks
come from dlib's 68-point predictor (:class:`~.dlib_backend.Landmarker68`) on the box, mapped to
dlib's box scale. The MediaPipe graph is built on first use and belongs to the detector instance;
call :meth:`MediapipeDetector.close` (or use it as a context manager) to stop its threads early.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any

import numpy as np

from ..errors import FaceclusterError
from ..nativelog import filtered_native_stderr
from .base import Detection, check_rgb
from .dlib_backend import BoxAdjust, Landmarker68, finalize

log = logging.getLogger(__name__)

#: MediaPipe's two face detection models: "full" (full-range, model_selection=1: faces up to ~5 m,
#: small in the frame) and "short" (short-range, model_selection=0: faces within ~2 m, i.e. close-ups).
MODEL_SELECTION = {"full": 1, "short": 0}

#: Box mapping onto dlib's box scale, chosen on lfw10 as the one whose 68 landmarks come closest to
#: those from dlib's own HOG boxes (mean point error / inter-ocular distance over a grid of scale
#: and dy; ``benchmarks/detection_rate.py --box-adjust``; the errors are in benchmarks/README.md). The
#: short-range box sits lower on the face, so it moves up more. A horizontal shift gained next to nothing
#: and is left out to keep mirror symmetry.
BOX_ADJUST = {"full": BoxAdjust(scale=0.85, dy=-0.025), "short": BoxAdjust(scale=1.05, dy=-0.05)}

#: A box found on a padded image must keep at least this share of its area inside the real image;
#: less means MediaPipe saw a "face" in the padding border.
_MIN_INSIDE = 0.5


class MediapipeDetector:
    """MediaPipe face detection with confidence ``min_confidence``.

    ``model``: ``"full"`` (default, full-range) or ``"short"``. ``pad`` > 0 adds a grey border of that
    fraction of the longest side before detection: MediaPipe misses faces that fill the whole frame
    (pre-cropped datasets), and a border makes them look like ordinary photos.
    """

    name = "mediapipe"

    def __init__(self, min_confidence: float = 0.5, model: str = "full", pad: float = 0.0,
                 landmarks: bool = True, landmarker: Landmarker68 | None = None) -> None:
        if model not in MODEL_SELECTION:
            raise FaceclusterError(f"mediapipe model must be one of {sorted(MODEL_SELECTION)}, got {model!r}")
        if not 0.0 <= min_confidence <= 1.0:
            raise FaceclusterError(f"min_confidence must lie in [0, 1], got {min_confidence}")
        if not 0.0 <= pad <= 2.0:
            raise FaceclusterError(f"pad must lie in [0, 2] (a fraction of the longest side), got {pad}")
        self.min_confidence = float(min_confidence)
        self.model = model
        self.pad = float(pad)
        self.landmarker = (landmarker or Landmarker68()) if landmarks else None
        self._graph: Any = None
        self._warm = False  # True once the graph has found a face: its native start-up lines are over

    @property
    def box_adjust(self) -> BoxAdjust:
        return BOX_ADJUST[self.model]

    def params(self) -> dict:
        return {"model": self.model, "min_confidence": self.min_confidence, "pad": self.pad,
                "landmarks": None if self.landmarker is None else self.landmarker.params()}

    def _face_detection(self) -> Any:
        if self._graph is None:
            import mediapipe as mp

            self._graph = mp.solutions.face_detection.FaceDetection(
                model_selection=MODEL_SELECTION[self.model], min_detection_confidence=self.min_confidence)
        return self._graph

    def close(self) -> None:
        """Stop the MediaPipe graph; the next :meth:`detect` builds a new one."""
        graph, self._graph = self._graph, None
        self._warm = False
        if graph is not None:
            graph.close()

    def __enter__(self) -> MediapipeDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown may have torn mediapipe down already
            pass

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_graph": None, "_warm": False}

    def find(self, rgb: np.ndarray) -> list[Detection]:
        """Boxes (not yet clipped to the image) and scores; :meth:`detect` adds landmarks and clips."""
        rgb = check_rgb(rgb)
        height, width = rgb.shape[:2]
        border = int(round(self.pad * max(height, width)))
        image = rgb
        if border:
            image = np.pad(rgb, ((border, border), (border, border), (0, 0)), constant_values=127)
        with filtered_native_stderr() if not self._warm else nullcontext():  # see nativelog: first frames log
            result = self._face_detection().process(image)
        self._warm = self._warm or bool(result.detections)
        found = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            ih, iw = image.shape[:2]
            x0, y0 = rel.xmin * iw - border, rel.ymin * ih - border
            box = (x0, y0, x0 + rel.width * iw, y0 + rel.height * ih)
            if border and _inside_share(box, width, height) < _MIN_INSIDE:
                continue
            found.append(Detection(box=box, score=float(det.score[0]), source=self.name))
        return sorted(found, key=lambda d: -d.score)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        rgb = check_rgb(rgb)
        return finalize(rgb, self.find(rgb), self.landmarker, self.box_adjust)


def _inside_share(box: tuple[float, float, float, float], width: int, height: int) -> float:
    x0, y0, x1, y1 = box
    area = max(x1 - x0, 0.0) * max(y1 - y0, 0.0)
    if area <= 0:
        return 0.0
    iw = max(0.0, min(x1, width) - max(x0, 0.0))
    ih = max(0.0, min(y1, height) - max(y0, 0.0))
    return iw * ih / area
