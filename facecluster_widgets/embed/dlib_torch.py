"""dlib's face recognition ResNet (``anet_type`` of dlib's examples/dnn_face_recognition_ex.cpp) in PyTorch,
with the weights read from dlib's own model file.

Why: the dlib wheel installed here is built without BLAS, so its convolutions run in plain loops (batching
gains nothing); the same weights through torch's convolutions give the same descriptors (to float rounding,
see tests/test_dlib_torch.py) in one forward pass per batch, several times faster (benchmarks/embed_batch.py;
figures in the README and benchmarks/reports/).

The C++ type, bottom-up: ``con<32,7,7,2,2>`` - ``affine`` - ``relu`` - ``max_pool<3,3,2,2>``; residual
levels of 32 (3 blocks), 64 (1 down + 3), 128 (1 down + 2), 256 (1 down + 2), 256 (1 down); then
``avg_pool_everything`` and ``fc_no_bias<128>``. A block is conv-affine-relu-conv-affine; a down block's
first conv has stride 2 and its shortcut is ``avg_pool<2,2,2,2>``. dlib's details reproduced here:

- convolutions and pools pad by 0 when their stride is not 1, else by size/2 (the padding is also read
  from the file and checked);
- ``add_prev`` adds tensors of different shapes by zero-filling the missing channels, rows and columns at
  the end (dlib's ``tt::add``): the channels in the down blocks that widen (32->64, 64->128, 128->256), the
  rows and columns in the last two, whose stride-2 convolution gives 3x3 (1x1) while the 2x2 average of
  the shortcut gives 4x4 (2x2), so the global average that follows also counts the zeros;
- the input is the RGB chip as three planes R, G, B, each ``(pixel - mean) / 256`` (input_rgb_image_sized).

Each ``affine`` (a frozen batch norm) is folded into the convolution before it: that changes the result
only by float rounding and saves a pass over every activation. Convolutions go to oneDNN directly and the
last layer is a product and a sum, so a face's descriptor is bit-identical whatever its batch size or the
thread count (F.conv2d and F.linear pick other kernels for one small input or few rows).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..errors import EmbedInputError, ModelFileError
from .dlib_net_file import DlibLayer, DlibNet

#: (channels, plain blocks, down block first) per residual level, bottom-up, as in dlib's anet_type.
LEVELS = ((32, 3, False), (64, 3, True), (128, 2, True), (256, 2, True), (256, 0, True))
_STEM, _PLAIN, _DOWN, _HEAD = "CARM", "TCARCAPR", "TCARCATTVPR", "VF"
_POOLS = ([("max_pool", {"size": (3, 3), "stride": (2, 2), "padding": (0, 0)})]
          + [("avg_pool", {"size": (2, 2), "stride": (2, 2), "padding": (0, 0)})] * sum(d for *_, d in LEVELS)
          + [("avg_pool", {"size": (0, 0), "stride": (1, 1), "padding": (0, 0)})])  # 0x0: avg_pool_everything


def anet_signature() -> str:
    """The layer letters (see :meth:`DlibNet.signature`) dlib's anet_type serializes to, bottom-up."""
    blocks = "".join((_DOWN if down else "") + _PLAIN * plain for _, plain, down in LEVELS)
    return _STEM + blocks + _HEAD


class _ConvAffine(nn.Module):
    """dlib's ``affine<con<...>>`` as one convolution (the affine scale and shift folded in)."""

    def __init__(self, con: DlibLayer, affine: DlibLayer) -> None:
        super().__init__()
        stride, padding = con.config["stride"], con.config["padding"]
        size = con.config["size"]
        expected = (0, 0) if stride != (1, 1) else (size[0] // 2, size[1] // 2)
        if padding != expected:
            raise ModelFileError(f"dlib con_ with stride {stride} has padding {padding}, expected {expected}")
        gamma = affine.arrays["gamma"].astype(np.float64)
        weight = con.arrays["weight"].astype(np.float64) * gamma[:, None, None, None]
        bias = con.arrays["bias"].astype(np.float64) * gamma + affine.arrays["beta"]
        self.stride, self.padding = list(stride), list(padding)
        # oneDNN directly: F.conv2d sends a single small input to another kernel, whose rounding differs.
        # (Without oneDNN, F.conv2d: the same numbers to float rounding, no longer batch-invariant.)
        self.onednn = torch.backends.mkldnn.is_available()
        self.weight = nn.Parameter(torch.from_numpy(weight.astype(np.float32)), requires_grad=False)
        self.bias = nn.Parameter(torch.from_numpy(bias.astype(np.float32)), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.onednn:
            return torch.mkldnn_convolution(x, self.weight, self.bias, self.padding, self.stride, [1, 1], 1)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)


class _Block(nn.Module):
    """``relu<add_prev<block, shortcut>>``; the shortcut is the input, or its 2x2 average when ``down``."""

    def __init__(self, first: _ConvAffine, second: _ConvAffine, down: bool) -> None:
        super().__init__()
        if first.stride != [1 + down] * 2 or second.stride != [1, 1]:
            raise ModelFileError(f"dlib residual block with strides {first.stride}, {second.stride}: expected "
                                 f"{[1 + down] * 2} then [1, 1]")
        self.first, self.second, self.down = first, second, down

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.second(F.relu(self.first(x)))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(add_zero_filled(y, shortcut))


def add_zero_filled(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the sum over the larger shape, each input zero-filled at its ends."""
    if a.shape == b.shape:
        return a + b
    channels, rows, cols = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def fill(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, cols - t.shape[3], 0, rows - t.shape[2], 0, channels - t.shape[1]))

    return fill(a) + fill(b)


class DlibFaceNet(nn.Module):
    """Maps ``(n, 150, 150, 3)`` uint8 RGB chips (dlib.get_face_chip's) to dlib's raw 128-D descriptors."""

    def __init__(self, net: DlibNet) -> None:
        super().__init__()
        expected = anet_signature()
        if net.signature() != expected or net.loss_kind != "loss_metric":
            raise ModelFileError("dlib network file does not hold dlib_face_recognition_resnet_model_v1's "
                                 f"architecture: layers {net.signature()} ({net.loss_kind}), expected {expected}")
        pools = [(layer.kind, layer.config) for layer in net.layers if layer.kind in ("max_pool", "avg_pool")]
        if pools != _POOLS:
            raise ModelFileError(f"dlib network file: pooling layers {pools}, expected {_POOLS}")
        # The signature matched, so every con is followed by its affine, in this order.
        pairs = iter(zip([layer for layer in net.layers if layer.kind == "con"],
                         [layer for layer in net.layers if layer.kind == "affine"], strict=True))
        self.stem = _ConvAffine(*next(pairs))
        blocks = []
        for _, plain, down in LEVELS:
            for is_down in [True] * down + [False] * plain:
                blocks.append(_Block(_ConvAffine(*next(pairs)), _ConvAffine(*next(pairs)), is_down))
        self.blocks = nn.Sequential(*blocks)
        fc = net.layers[-1]
        if fc.arrays["weight"].shape != (LEVELS[-1][0], 128) or "bias" in fc.arrays:
            raise ModelFileError(f"dlib network file: last layer fc {fc.config} {sorted(fc.arrays)}, expected "
                                 f"fc_no_bias {LEVELS[-1][0]} -> 128")
        self.fc = nn.Parameter(torch.from_numpy(fc.arrays["weight"].copy()), requires_grad=False)  # (256, 128)
        cfg = net.input_config
        self.size = (cfg["rows"], cfg["cols"])
        self.register_buffer("mean", torch.tensor(cfg["mean_rgb"], dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        if chips.ndim != 4 or tuple(chips.shape[1:]) != (*self.size, 3):
            raise EmbedInputError(f"chips must have shape (n, {self.size[0]}, {self.size[1]}, 3), "
                                  f"got {tuple(chips.shape)}")
        x = (chips.permute(0, 3, 1, 2).to(torch.float32) - self.mean) / 256.0
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2)
        x = self.blocks(x)
        # A product and a sum, not F.linear: a matrix product's rounding depends on how many rows it gets.
        return (x.mean(dim=(2, 3)).unsqueeze(2) * self.fc).sum(dim=1)

    def describe(self, chips: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """Descriptors of uint8 chips as float64 rows (what dlib's compute_face_descriptor returns)."""
        batch = torch.from_numpy(np.ascontiguousarray(np.stack(chips) if isinstance(chips, list) else chips))
        with torch.inference_mode():
            return self(batch).numpy().astype(np.float64)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` intra-op threads and restore the caller's setting after (None: leave it).

    torch's thread count is process-wide, so it is changed only for the forward pass: on a busy 2-core
    machine one thread is several times faster than two whose OpenMP workers spin against other processes.
    """
    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
