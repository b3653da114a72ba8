"""insightface's ArcFace recognition network (512-D for the buffalo / antelope packs), from a local ONNX file.

Nothing is ever downloaded: the user names an ``.onnx`` file, a folder, or a pack already unpacked under
``~/.insightface/models/<pack>/``. Faces are aligned with insightface's own ``norm_crop`` (the 112x112
ArcFace template the network was trained on) and run in batches through ``ArcFaceONNX.get_feat``.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ModelFileError, ModelMissingError, optional_import
from .base import (
    CropThenNetwork,
    EmbedInput,
    alignment_points5,
    check_batch_size,
    check_points5,
    file_identity,
)

logger = logging.getLogger(__name__)

INPUT_SIZE = 112
DEFAULT_PACK = "buffalo_l"
DEFAULT_ROOT = "~/.insightface"
#: The recognition file inside each public insightface pack, named in "missing model" messages.
PACK_RECOGNITION_FILES = {"buffalo_l": "w600k_r50.onnx", "buffalo_m": "w600k_r50.onnx",
                          "buffalo_s": "w600k_mbf.onnx", "buffalo_sc": "w600k_mbf.onnx",
                          "antelopev2": "glintr100.onnx"}


class ArcFaceEmbedder(CropThenNetwork):
    """``model``: an ``.onnx`` path, a folder holding one recognition ONNX, or a pack name under
    ``root/models/``. ``providers`` go to onnxruntime (None: insightface's default choice)."""

    name = "arcface"

    def __init__(self, model: str | os.PathLike = DEFAULT_PACK, root: str | os.PathLike = DEFAULT_ROOT,
                 batch_size: int = 32, providers: Sequence[str] | None = None) -> None:
        self.model_path = find_recognition_model(model, root)
        self.dim = recognition_model_dim(self.model_path)
        self.batch_size = check_batch_size(batch_size)
        self.providers = list(providers) if providers is not None else None
        self._params = {"model": file_identity(self.model_path),
                        "crop": {"template": "arcface", "size": INPUT_SIZE}}
        self._model = None

    def params(self) -> dict:
        return self._params

    def crop(self, face: EmbedInput) -> np.ndarray:
        return arcface_crop(face)

    def _describe(self, crops: list[np.ndarray]) -> np.ndarray:
        # get_feat swaps BGR to RGB itself (the cv2 convention), so it is handed BGR crops.
        return self._network().get_feat([np.ascontiguousarray(crop[:, :, ::-1]) for crop in crops])

    def _network(self):
        if self._model is None:
            model_zoo = _insightface_module("insightface.model_zoo")
            kwargs = {"providers": self.providers} if self.providers is not None else {}
            model = model_zoo.get_model(str(self.model_path), download=False, **kwargs)
            if type(model).__name__ != "ArcFaceONNX":
                raise ModelFileError(f"{self.model_path}: insightface does not load it as an ArcFace recognition "
                                     f"model (got {type(model).__name__})")
            self._model = model
        return self._model


def arcface_crop(face: EmbedInput) -> np.ndarray:
    """The 112x112 RGB crop the network sees; :class:`CropError` when it cannot be made."""
    points5 = alignment_points5(face)
    check_points5(points5, face.rgb.shape)
    face_align = _insightface_module("insightface.utils.face_align")
    with warnings.catch_warnings():
        # scikit-image >= 0.26 deprecates the estimate() call insightface makes on every crop.
        warnings.filterwarnings("ignore", message=".*estimate.* is deprecated", category=FutureWarning)
        return face_align.norm_crop(face.rgb, points5.astype(np.float32), image_size=INPUT_SIZE)


def find_recognition_model(model: str | os.PathLike, root: str | os.PathLike = DEFAULT_ROOT) -> Path:
    """The recognition ``.onnx`` file that ``model`` names; :class:`ModelMissingError` says what to put where."""
    text = os.fspath(model)
    path = Path(text).expanduser()
    if text.endswith(".onnx"):
        if not path.is_file():
            raise ModelMissingError(
                f"ArcFace model file {path} not found: put an insightface recognition ONNX there (input "
                f"1x3x{INPUT_SIZE}x{INPUT_SIZE}, 512-D output, e.g. w600k_r50.onnx from the buffalo_l pack). "
                "Nothing is downloaded.")
        return path
    if path.is_dir():
        folder = path
    elif os.sep in text or text.startswith((".", "~")):
        raise ModelMissingError(f"ArcFace model folder {path} not found: create it and put an insightface "
                                "recognition ONNX in it (e.g. w600k_r50.onnx from the buffalo_l pack)")
    else:
        folder = Path(root).expanduser() / "models" / text
        if not folder.is_dir():
            needed = PACK_RECOGNITION_FILES.get(text, "the pack's recognition .onnx")
            raise ModelMissingError(
                f"insightface model pack {text!r} not found: unpack it so that {folder / needed} exists, "
                "or pass model='/path/to/recognition.onnx'. Nothing is downloaded.")
    candidates = sorted(folder.glob("*.onnx"))
    found = [onnx_file for onnx_file in candidates if _is_recognition(onnx_file)]
    if not found:
        seen = ", ".join(f.name for f in candidates) or "no .onnx files"
        needed = PACK_RECOGNITION_FILES.get(folder.name, "an insightface recognition ONNX")
        raise ModelMissingError(
            f"{folder} holds no ArcFace recognition model (found: {seen}); put {needed} there (input "
            f"1x3x{INPUT_SIZE}x{INPUT_SIZE}, one embedding output)")
    if len(found) > 1:
        raise ModelFileError(f"{folder} holds several recognition models ({', '.join(f.name for f in found)}); "
                             "pass the one to use as model='/path/to/file.onnx'")
    return found[0]


def recognition_model_dim(path: Path) -> int:
    """Embedding size of a recognition ONNX; :class:`ModelFileError` if the file is not one."""
    input_hw, output_dims = _onnx_io(path)
    if input_hw != (INPUT_SIZE, INPUT_SIZE) or len(output_dims) != 2 or not isinstance(output_dims[1], int):
        raise ModelFileError(
            f"{path}: not an ArcFace recognition model (input {input_hw}, output {output_dims}; expected input "
            f"Nx3x{INPUT_SIZE}x{INPUT_SIZE} and one (N, dim) output)")
    return output_dims[1]


def _is_recognition(path: Path) -> bool:
    try:
        recognition_model_dim(path)
    except ModelFileError:
        return False
    return True


def _onnx_io(path: Path) -> tuple[tuple, list]:
    onnx = _insightface_module("onnx")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types for a damaged file
        raise ModelFileError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    graph = model.graph
    initialisers = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initialisers]
    if not inputs or len(graph.output) != 1:
        return (), []
    in_dims = _dims(inputs[0])
    input_hw = tuple(in_dims[2:4]) if len(in_dims) == 4 else ()
    return input_hw, _dims(graph.output[0])


def _dims(value) -> list:
    return [dim.dim_value if dim.HasField("dim_value") else dim.dim_param for dim in value.type.tensor_type.shape.dim]


def _insightface_module(name: str):
    return optional_import(name, "the ArcFace backend", "insightface")
