"""Face detectors behind one interface, chosen by name: ``get_detector("auto")``.

Heavy libraries (mediapipe, dlib, insightface) load when a detector first runs, not on import.
"""

from __future__ import annotations

from ..registry import Registry
from .base import Detection, Detector, points5_from_68
from .cascade import CascadeDetector
from .dlib_backend import DlibHogDetector, Landmarker68
from .insightface_backend import InsightfaceDetector
from .mediapipe_backend import MediapipeDetector
from .whole import WholeImageDetector
from .yunet import YunetDetector

detectors: Registry[Detector] = Registry("detector")
detectors.register("whole")(WholeImageDetector)
detectors.register("mediapipe")(MediapipeDetector)
detectors.register("dlib-hog")(DlibHogDetector)
detectors.register("auto")(CascadeDetector)
detectors.register("insightface")(InsightfaceDetector)
detectors.register("yunet")(YunetDetector)


def get_detector(name: str, **params: object) -> Detector:
    return detectors.create(name, **params)


__all__ = ["CascadeDetector", "Detection", "Detector", "DlibHogDetector", "InsightfaceDetector", "Landmarker68",
           "MediapipeDetector", "YunetDetector", "detectors", "get_detector", "points5_from_68"]
