"""dlib's ResNet face descriptor (128-D), fed the 150x150 chips it was trained on.

The chip comes from ``dlib.get_face_chip`` (padding 0.25), exactly as dlib's own pipeline makes it: from
the face's 68 landmarks when given, otherwise from dlib's 5-point shape predictor run on a box built
from the 5 alignment points. The box imitates dlib's HOG detector boxes, the boxes that predictor was
trained on (constants measured on lfw10: width = 2.33 x eye-to-mouth distance, centre 0.08 of that
distance above the eye-mouth midpoint; with them the descriptors differ from the HOG-box ones by
0.04 on average, well below the 0.43 mean same-person distance).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import dlib
import numpy as np

from ..detect.base import points5_from_68
from ..errors import CropError, FaceclusterError, ModelMissingError
from .base import (
    EmbedInput,
    check_batch_size,
    check_points5,
    embed_in_batches,
    file_identity,
)

logger = logging.getLogger(__name__)

CHIP_SIZE = 150
CHIP_PADDING = 0.25
_BOX_WIDTH_PER_EYE_MOUTH = 2.33
_BOX_SHIFT_DOWN_PER_EYE_MOUTH = -0.08


class DlibEmbedder:
    """``num_jitters`` > 1 averages that many randomly jittered chips (slower, slightly more robust,
    no longer bit-for-bit repeatable); 0 and 1 both mean no jitter."""

    name = "dlib"
    dim = 128

    def __init__(self, num_jitters: int = 1, batch_size: int = 32,
                 model_path: str | os.PathLike | None = None,
                 predictor5_path: str | os.PathLike | None = None) -> None:
        if not isinstance(num_jitters, int) or num_jitters < 0:
            raise FaceclusterError(f"num_jitters must be a non-negative integer, got {num_jitters!r}")
        self.num_jitters = num_jitters
        self.batch_size = check_batch_size(batch_size)
        self.model_path = _model_file(model_path, "face_recognition_model_location",
                                      "dlib_face_recognition_resnet_model_v1.dat")
        self.predictor5_path = _model_file(predictor5_path, "pose_predictor_five_point_model_location",
                                           "shape_predictor_5_face_landmarks.dat")
        self._params = {
            "num_jitters": max(num_jitters, 1),
            "chip": {"size": CHIP_SIZE, "padding": CHIP_PADDING},
            "model": file_identity(self.model_path),
            "predictor5": file_identity(self.predictor5_path),
        }
        self._net: dlib.face_recognition_model_v1 | None = None
        self._predictor5: dlib.shape_predictor | None = None

    def params(self) -> dict:
        return self._params

    def embed(self, faces: Sequence[EmbedInput]) -> np.ndarray:
        return embed_in_batches(faces, self.dim, self.batch_size, self.chip, self._describe, self.name)

    def chip(self, face: EmbedInput) -> np.ndarray:
        """The 150x150 RGB chip dlib's network sees; :class:`CropError` when it cannot be made."""
        shape = self._shape(face)
        return dlib.get_face_chip(face.rgb, shape, size=CHIP_SIZE, padding=CHIP_PADDING)

    def _shape(self, face: EmbedInput) -> dlib.full_object_detection:
        if face.points68 is not None:
            points = face.points68
            if not np.isfinite(points).all():
                raise CropError("68 landmarks contain NaN or infinity")
            check_points5(points5_from_68(points), face.rgb.shape)
            x0, y0 = np.floor(points.min(axis=0)).astype(int)
            x1, y1 = np.ceil(points.max(axis=0)).astype(int)
            parts = dlib.points([dlib.point(int(round(x)), int(round(y))) for x, y in points])
            return dlib.full_object_detection(dlib.rectangle(int(x0), int(y0), int(x1), int(y1)), parts)
        if face.points5 is not None:
            check_points5(face.points5, face.rgb.shape)
            return self._predictor()(face.rgb, box_from_points5(face.points5))
        raise CropError("no landmarks (points5 or points68) given")

    def _describe(self, chips: list[np.ndarray]) -> np.ndarray:
        # One call per batch: dlib runs the whole list through its network together.
        return np.array(self._network().compute_face_descriptor(chips, self.num_jitters))

    def _network(self) -> dlib.face_recognition_model_v1:
        if self._net is None:
            self._net = dlib.face_recognition_model_v1(str(self.model_path))
        return self._net

    def _predictor(self) -> dlib.shape_predictor:
        if self._predictor5 is None:
            self._predictor5 = dlib.shape_predictor(str(self.predictor5_path))
        return self._predictor5


def box_from_points5(points5: np.ndarray) -> dlib.rectangle:
    """A square box placed on the face as dlib's HOG detector would place it (see the module doc)."""
    eyes = (points5[0] + points5[1]) / 2
    mouth = (points5[3] + points5[4]) / 2
    across = (points5[1] - points5[0]) / np.linalg.norm(points5[1] - points5[0])
    down = np.array([-across[1], across[0]])
    scale = float(np.linalg.norm(mouth - eyes))
    centre = (eyes + mouth) / 2 + _BOX_SHIFT_DOWN_PER_EYE_MOUTH * scale * down
    half = _BOX_WIDTH_PER_EYE_MOUTH * scale / 2
    return dlib.rectangle(int(round(centre[0] - half)), int(round(centre[1] - half)),
                          int(round(centre[0] + half)), int(round(centre[1] + half)))


def _model_file(given: str | os.PathLike | None, locator: str, file_name: str) -> Path:
    if given is not None:
        path = Path(given).expanduser()
        if not path.is_file():
            raise ModelMissingError(f"dlib model file {path} not found: put {file_name} there (it ships in the "
                                    "face_recognition_models package) or leave the path unset to use that copy")
        return path
    try:
        with warnings.catch_warnings():
            # The package imports pkg_resources, which warns on every import; nothing for our user to act on.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            import face_recognition_models
    except ImportError as exc:
        raise ModelMissingError(f"{file_name} is needed and comes with the face_recognition_models package: "
                                "`pip install face_recognition_models`, or pass its path") from exc
    path = Path(getattr(face_recognition_models, locator)())
    if not path.is_file():
        raise ModelMissingError(f"{path} is missing from the face_recognition_models install: reinstall it "
                                f"(`pip install --force-reinstall face_recognition_models`) to get {file_name}")
    return path
