"""dlib's ResNet face descriptor (128-D), fed the 150x150 chips it was trained on.

The chip comes from ``dlib.get_face_chip`` (padding 0.25), exactly as dlib's own pipeline makes it: from
the face's 68 landmarks when given, otherwise from dlib's 5-point shape predictor run on a box built
from the 5 alignment points. The box imitates dlib's HOG detector boxes, the boxes that predictor was
trained on (constants fitted on lfw10; with them the descriptors differ from the HOG-box ones by a small
fraction of the mean same-person distance, benchmarks/README.md).

Two engines run the same network on the chips: ``"dlib"`` (dlib's own C++, the reference; the dlib-bin
wheel is built without BLAS, so it is slow and batching gains nothing) and ``"torch"`` (the weights of
the very same model file read into a PyTorch port, :mod:`.dlib_torch`: the descriptors agree with dlib's to
float rounding, below 1e-6, and do not depend on batch size or thread count; a batch is one forward pass,
several times faster than dlib's, and more so in batches: ``benchmarks/embed_batch.py``). torch is an optional
extra, so the default is torch when it is installed and dlib otherwise; the engine enters ``params()``, so a
store keeps the results of the two apart.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import dlib
import numpy as np

from ..detect.base import points5_from_68
from ..errors import CropError, FaceclusterError, ModelMissingError, missing_extra
from .base import (
    CropThenNetwork,
    EmbedInput,
    check_batch_size,
    check_points5,
    file_identity,
)

if TYPE_CHECKING:
    from .dlib_torch import DlibFaceNet

logger = logging.getLogger(__name__)

CHIP_SIZE = 150
CHIP_PADDING = 0.25
_BOX_WIDTH_PER_EYE_MOUTH = 2.33
_BOX_SHIFT_DOWN_PER_EYE_MOUTH = -0.08
ENGINES = ("torch", "dlib")


class DlibEmbedder(CropThenNetwork):
    """``num_jitters`` > 1 averages that many randomly jittered chips (slower, slightly more robust,
    no longer bit-for-bit repeatable); 0 and 1 both mean no jitter. Both engines jitter with dlib's own
    ``jitter_image`` (the torch engine calls ``dlib.jitter_image`` and runs the jittered chips through torch).

    ``engine``: ``"torch"``, ``"dlib"`` or None (torch when installed, else dlib); see the module doc.
    ``threads``: torch's intra-op threads during a forward pass (None: torch's own setting); 1 by default
    because on a shared 2-core machine one thread measured several times faster than two.
    """

    name = "dlib"
    dim = 128

    def __init__(self, num_jitters: int = 1, batch_size: int = 32,
                 model_path: str | os.PathLike | None = None,
                 predictor5_path: str | os.PathLike | None = None,
                 engine: str | None = None, threads: int | None = 1) -> None:
        if not isinstance(num_jitters, int) or num_jitters < 0:
            raise FaceclusterError(f"num_jitters must be a non-negative integer, got {num_jitters!r}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise FaceclusterError(f"threads must be a positive integer or None, got {threads!r}")
        self.num_jitters = num_jitters
        self.batch_size = check_batch_size(batch_size)
        self.engine = _resolve_engine(engine)
        self.threads = threads
        self.model_path = _model_file(model_path, "face_recognition_model_location",
                                      "dlib_face_recognition_resnet_model_v1.dat")
        self.predictor5_path = _model_file(predictor5_path, "pose_predictor_five_point_model_location",
                                           "shape_predictor_5_face_landmarks.dat")
        self._params = {
            "num_jitters": max(num_jitters, 1),
            "chip": {"size": CHIP_SIZE, "padding": CHIP_PADDING},
            "model": file_identity(self.model_path),
            "predictor5": file_identity(self.predictor5_path),
            "engine": self.engine,
        }
        self._net: dlib.face_recognition_model_v1 | None = None
        self._torch_net: DlibFaceNet | None = None
        self._predictor5: dlib.shape_predictor | None = None

    def params(self) -> dict:
        return self._params

    def crop(self, face: EmbedInput) -> np.ndarray:
        return self.chip(face)

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
        if self.engine == "dlib":
            # One call per batch: dlib runs the whole list through its network together.
            return np.array(self._network().compute_face_descriptor(chips, self.num_jitters))
        if self.num_jitters <= 1:
            return self._forward(np.stack(chips))
        # dlib's own jitter (as compute_face_descriptor does it), then the mean descriptor of each face.
        return np.stack([self._forward(np.stack(dlib.jitter_image(chip, num_jitters=self.num_jitters))).mean(axis=0)
                         for chip in chips])

    def _forward(self, chips: np.ndarray) -> np.ndarray:
        """Raw descriptors of ``(n, 150, 150, 3)`` chips through the torch port, ``batch_size`` at a time."""
        net = self._torch_network()
        from .dlib_torch import torch_threads  # importable: _torch_network just imported the module

        with torch_threads(self.threads):
            return np.concatenate([net.describe(chips[i:i + self.batch_size])
                                   for i in range(0, len(chips), self.batch_size)])

    def _network(self) -> dlib.face_recognition_model_v1:
        if self._net is None:
            self._net = dlib.face_recognition_model_v1(str(self.model_path))
        return self._net

    def _torch_network(self) -> DlibFaceNet:
        if self._torch_net is None:
            try:
                from .dlib_net_file import read_dlib_net
                from .dlib_torch import DlibFaceNet
            except ImportError as exc:
                raise missing_extra("the dlib embedder's torch engine", "refine", exc, " (or use engine='dlib')"
                                    ) from exc
            t0 = time.perf_counter()
            self._torch_net = DlibFaceNet(read_dlib_net(self.model_path)).eval()
            logger.debug("read %s into torch in %.3f s", self.model_path, time.perf_counter() - t0)
        return self._torch_net

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


def _resolve_engine(engine: str | None) -> str:
    if engine is None:
        try:
            available = importlib.util.find_spec("torch") is not None
        except (ImportError, ValueError):  # a broken or blocked torch counts as absent
            available = False
        return "torch" if available else "dlib"
    if engine not in ENGINES:
        raise FaceclusterError(f"engine must be one of {', '.join(map(repr, ENGINES))} or None, got {engine!r}")
    return engine


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
