"""Face detectors behind one interface, chosen by name: ``get_detector("whole")``."""

from __future__ import annotations

from ..registry import Registry
from .base import Detection, Detector
from .whole import WholeImageDetector

detectors: Registry[Detector] = Registry("detector")
detectors.register("whole")(WholeImageDetector)


def get_detector(name: str, **params: object) -> Detector:
    return detectors.create(name, **params)


__all__ = ["Detection", "Detector", "detectors", "get_detector"]
