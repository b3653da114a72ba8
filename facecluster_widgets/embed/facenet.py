"""FaceNet as ported by facenet-pytorch: an Inception-ResNet-v1 giving 512-D embeddings, from a local
``.pt`` state_dict (facenet-pytorch's ``vggface2`` or ``casia-webface`` weights load with strict=True).

The FaceNet paper (Schroff et al., 2015) describes a 128-D embedding, but the models facenet-pytorch
ships (David Sandberg's 20180402-114759 VGGFace2 and 20180408-102900 CASIA-WebFace) end in a
1792 -> 512 linear layer, so this backend's vectors are 512-D.

The architecture is re-implemented here (facenet-pytorch is MIT licensed, Copyright (c) 2019 Timothy
Esler) because its PyPI package pins an old torch; module and parameter names are kept identical so
its state_dicts load unchanged. Its classifier head (``logits.*``) is not part of an embedding and is
dropped on load.

Crop: 160x160, the 5 points warped onto insightface's ArcFace template scaled from 112 to 160 px.
facenet-pytorch itself crops an unrotated MTCNN box (+ margin); the template warp frames the face in
nearly the same way while using the landmarks every detector here provides.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from ..errors import ModelFileError, ModelMissingError, missing_extra
from .base import (
    CropThenNetwork,
    EmbedInput,
    alignment_points5,
    check_batch_size,
    check_points5,
    file_identity,
)

try:
    import torch
    from torch import nn
    from torch.nn import functional as F
except ImportError as exc:  # torch is an optional extra
    raise missing_extra("the facenet backend", "refine", exc) from exc

logger = logging.getLogger(__name__)

INPUT_SIZE = 160
EMBEDDING_DIM = 512
#: insightface's ArcFace 5-point template (112x112 frame), in POINTS5_ORDER.
ARCFACE_TEMPLATE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                                 [41.5493, 92.3655], [70.7299, 92.2041]])
TEMPLATE_160 = ARCFACE_TEMPLATE_112 * (INPUT_SIZE / 112.0)


class FaceNetEmbedder(CropThenNetwork):
    """``weights``: path of a facenet-pytorch InceptionResnetV1 state_dict (``.pt``)."""

    name = "facenet"
    dim = EMBEDDING_DIM

    def __init__(self, weights: str | os.PathLike | None = None, batch_size: int = 32,
                 device: str = "cpu") -> None:
        if weights is None:
            raise ModelMissingError(
                "the facenet backend needs facenet-pytorch weights: pass weights='/path/to/"
                "20180402-114759-vggface2.pt' (or the 20180408-102900-casia-webface.pt state_dict). "
                "Nothing is downloaded.")
        self.weights = Path(weights).expanduser()
        if not self.weights.is_file():
            raise ModelMissingError(
                f"FaceNet weights {self.weights} not found: put a facenet-pytorch InceptionResnetV1 "
                "state_dict there (e.g. 20180402-114759-vggface2.pt). Nothing is downloaded.")
        self.batch_size = check_batch_size(batch_size)
        self.device = device
        self._params = {"weights": file_identity(self.weights),
                        "crop": {"template": "arcface", "size": INPUT_SIZE},
                        "standardization": "(x - 127.5) / 128"}
        self._net: InceptionResnetV1 | None = None

    def params(self) -> dict:
        return self._params

    def crop(self, face: EmbedInput) -> np.ndarray:
        return facenet_crop(face)

    def _describe(self, crops: list[np.ndarray]) -> np.ndarray:
        net = self._network()
        batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
        batch = (batch - 127.5) / 128.0  # facenet-pytorch's fixed_image_standardization
        with torch.inference_mode():
            return net(batch.to(self.device)).cpu().numpy()

    def _network(self) -> InceptionResnetV1:
        if self._net is None:
            self._net = load_inception_resnet_v1(self.weights).to(self.device).eval()
        return self._net


def facenet_crop(face: EmbedInput) -> np.ndarray:
    """The 160x160 RGB crop the network sees; :class:`CropError` when it cannot be made."""
    points5 = alignment_points5(face)
    check_points5(points5, face.rgb.shape)
    matrix = similarity_matrix(points5, TEMPLATE_160)
    return cv2.warpAffine(face.rgb, matrix, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The (2, 3) least-squares similarity (rotation, uniform scale, shift; no mirroring) taking src to dst."""
    x, y = src[:, 0], src[:, 1]
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    # [u, v] = [[a, -b], [b, a]] @ [x, y] + [tx, ty], linear in (a, b, tx, ty).
    design = np.concatenate([np.stack([x, -y, ones, zeros], axis=1), np.stack([y, x, zeros, ones], axis=1)])
    a, b, tx, ty = np.linalg.lstsq(design, np.concatenate([dst[:, 0], dst[:, 1]]), rcond=None)[0]
    return np.array([[a, -b, tx], [b, a, ty]])


def load_inception_resnet_v1(path: str | os.PathLike) -> InceptionResnetV1:
    """A network holding the state_dict in ``path``; :class:`ModelFileError` names what does not fit."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a safe state_dict
        raise ModelFileError(f"{path}: not a PyTorch state_dict torch can load safely "
                             f"({type(exc).__name__}: {exc})") from exc
    if not isinstance(state, Mapping) or not all(torch.is_tensor(v) for v in state.values()):
        raise ModelFileError(f"{path}: holds a {type(state).__name__}, not a state_dict (a mapping of "
                             "parameter names to tensors) of facenet-pytorch's InceptionResnetV1")
    state = {key: value for key, value in state.items() if not key.startswith("logits.")}
    net = InceptionResnetV1()
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(key for key in set(expected) & set(state) if expected[key].shape != state[key].shape)
    if missing or unexpected or wrong_shape:
        problems = [_few(label, keys) for label, keys in
                    (("missing", missing), ("unexpected", unexpected), ("wrong-shape", wrong_shape)) if keys]
        raise ModelFileError(f"{path}: not a facenet-pytorch InceptionResnetV1 state_dict ({'; '.join(problems)})")
    net.load_state_dict(state, strict=True)
    return net


def _few(label: str, keys: list[str], shown: int = 3) -> str:
    more = f", ... {len(keys) - shown} more" if len(keys) > shown else ""
    return f"{len(keys)} {label} keys: {', '.join(keys[:shown])}{more}"


# --- The network. Names of attributes are facenet-pytorch's: they are the state_dict keys. ---


class BasicConv2d(nn.Module):
    """Convolution without bias, batch norm (TensorFlow's eps 1e-3), ReLU."""

    def __init__(self, in_planes: int, out_planes: int, kernel_size: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_planes, out_planes, kernel_size=kernel_size, stride=stride, padding=padding,
                              bias=False)
        self.bn = nn.BatchNorm2d(out_planes, eps=0.001, momentum=0.1, affine=True)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Branches(nn.Module):
    """Runs ``branch0``, ``branch1``, ... on one input and stacks their channels (Inception mixing)."""

    def __init__(self, *branches: nn.Module) -> None:
        super().__init__()
        self.n_branches = len(branches)
        for index, branch in enumerate(branches):
            self.add_module(f"branch{index}", branch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([getattr(self, f"branch{i}")(x) for i in range(self.n_branches)], dim=1)


class ResidualBlock(Branches):
    """Inception-ResNet block: ``relu(x + scale * conv2d(branches(x)))``; the last block skips the ReLU."""

    def __init__(self, channels: int, mixed: int, branches: list[nn.Module], scale: float,
                 relu: bool = True) -> None:
        super().__init__(*branches)
        self.scale = scale
        self.conv2d = nn.Conv2d(mixed, channels, kernel_size=1, stride=1)
        self.relu = nn.ReLU(inplace=False) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2d(super().forward(x)) * self.scale + x)


def block35(scale: float) -> ResidualBlock:
    return ResidualBlock(256, 96, [
        BasicConv2d(256, 32, 1),
        nn.Sequential(BasicConv2d(256, 32, 1), BasicConv2d(32, 32, 3, padding=1)),
        nn.Sequential(BasicConv2d(256, 32, 1), BasicConv2d(32, 32, 3, padding=1), BasicConv2d(32, 32, 3, padding=1)),
    ], scale)


def block17(scale: float) -> ResidualBlock:
    return ResidualBlock(896, 256, [
        BasicConv2d(896, 128, 1),
        nn.Sequential(BasicConv2d(896, 128, 1), BasicConv2d(128, 128, (1, 7), padding=(0, 3)),
                      BasicConv2d(128, 128, (7, 1), padding=(3, 0))),
    ], scale)


def block8(scale: float, relu: bool = True) -> ResidualBlock:
    return ResidualBlock(1792, 384, [
        BasicConv2d(1792, 192, 1),
        nn.Sequential(BasicConv2d(1792, 192, 1), BasicConv2d(192, 192, (1, 3), padding=(0, 1)),
                      BasicConv2d(192, 192, (3, 1), padding=(1, 0))),
    ], scale, relu=relu)


def mixed_6a() -> Branches:
    return Branches(
        BasicConv2d(256, 384, 3, stride=2),
        nn.Sequential(BasicConv2d(256, 192, 1), BasicConv2d(192, 192, 3, padding=1),
                      BasicConv2d(192, 256, 3, stride=2)),
        nn.MaxPool2d(3, stride=2),
    )


def mixed_7a() -> Branches:
    return Branches(
        nn.Sequential(BasicConv2d(896, 256, 1), BasicConv2d(256, 384, 3, stride=2)),
        nn.Sequential(BasicConv2d(896, 256, 1), BasicConv2d(256, 256, 3, stride=2)),
        nn.Sequential(BasicConv2d(896, 256, 1), BasicConv2d(256, 256, 3, padding=1),
                      BasicConv2d(256, 256, 3, stride=2)),
        nn.MaxPool2d(3, stride=2),
    )


class InceptionResnetV1(nn.Module):
    """facenet-pytorch's embedding network (no classifier): 160x160 standardised RGB -> unit 512-D."""

    def __init__(self, dropout_prob: float = 0.6) -> None:
        super().__init__()
        self.conv2d_1a = BasicConv2d(3, 32, 3, stride=2)
        self.conv2d_2a = BasicConv2d(32, 32, 3)
        self.conv2d_2b = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = BasicConv2d(64, 80, 1)
        self.conv2d_4a = BasicConv2d(80, 192, 3)
        self.conv2d_4b = BasicConv2d(192, 256, 3, stride=2)
        self.repeat_1 = nn.Sequential(*(block35(0.17) for _ in range(5)))
        self.mixed_6a = mixed_6a()
        self.repeat_2 = nn.Sequential(*(block17(0.10) for _ in range(10)))
        self.mixed_7a = mixed_7a()
        self.repeat_3 = nn.Sequential(*(block8(0.20) for _ in range(5)))
        self.block8 = block8(1.0, relu=False)
        self.avgpool_1a = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout_prob)
        self.last_linear = nn.Linear(1792, EMBEDDING_DIM, bias=False)
        self.last_bn = nn.BatchNorm1d(EMBEDDING_DIM, eps=0.001, momentum=0.1, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in (self.conv2d_1a, self.conv2d_2a, self.conv2d_2b, self.maxpool_3a, self.conv2d_3b,
                      self.conv2d_4a, self.conv2d_4b, self.repeat_1, self.mixed_6a, self.repeat_2,
                      self.mixed_7a, self.repeat_3, self.block8, self.avgpool_1a, self.dropout):
            x = stage(x)
        x = self.last_bn(self.last_linear(x.flatten(1)))
        return F.normalize(x, p=2, dim=1)
