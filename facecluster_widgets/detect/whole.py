"""The trivial detector: the whole image is one face. For datasets that are already face crops
(ORL, Yale) and for testing the pipeline without a model."""

from __future__ import annotations

import numpy as np

from .base import Detection


class WholeImageDetector:
    name = "whole"

    def params(self) -> dict:
        return {}

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        height, width = rgb.shape[:2]
        return [Detection(box=(0.0, 0.0, float(width), float(height)), score=1.0, source=self.name)]
