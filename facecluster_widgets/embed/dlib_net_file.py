"""Reads a dlib DNN file (``serialize(net)`` of a ``loss_*<...<input_*>>`` network) into numpy arrays.

dlib writes a network as nested objects: the loss layer, then each wrapper's version number from the top of
the network down to the input layer, then the input layer and every layer's details from the bottom up.
Tag and skip wrappers (version 1) carry no data, so the file tells *where* they are but not which tag they
name; the architecture itself must come from the C++ type (see :mod:`.dlib_torch`). Format references, all
in dlib's sources: ``dlib/serialize.h`` (integers: one control byte = byte count | 0x80 if negative, then
little-endian bytes; floats: integer mantissa and exponent; bool: ASCII '0'/'1'; string: length + bytes),
``dlib/dnn/tensor.h`` (tensor version 2: 4 dims then raw little-endian float32), ``dlib/dnn/core.h``
(``add_layer`` / ``add_tag_layer`` / ``add_skip_layer`` / ``add_loss_layer``) and ``dlib/dnn/layers.h``.

Only the layer kinds dlib's face recognition ResNet uses are understood; anything else is a
:class:`~facecluster_widgets.errors.ModelFileError` naming the file, the offset and what was found. The
float tensors are read with ``numpy.frombuffer`` (one copy), so reading the 22 MB model takes milliseconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelFileError

#: Wrapper versions in the top-down prefix: add_layer (2), tag/skip (1), add_layer over the input (2 or 3).
_ADD_LAYER, _TAG_OR_SKIP = 2, 1


@dataclass
class DlibLayer:
    """One entry of the network, bottom-up. ``kind``: con, affine, relu, max_pool, avg_pool, add_prev, fc,
    or ``tag_or_skip`` (a marker with no data). ``arrays`` hold float32 weights in dlib's own layouts,
    ``config`` the integers (filter counts, sizes, strides, paddings)."""

    kind: str
    config: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibNet:
    """A parsed dlib network: its input layer, its layers bottom-up (input side first) and its loss."""

    input_kind: str
    input_config: dict
    layers: list[DlibLayer]
    loss_kind: str
    loss_config: dict

    def signature(self) -> str:
        """One letter per layer, bottom-up: the shape of the network to compare with an expected one."""
        letters = {"con": "C", "affine": "A", "relu": "R", "max_pool": "M", "avg_pool": "V", "add_prev": "P",
                   "fc": "F", "tag_or_skip": "T"}
        return "".join(letters[layer.kind] for layer in self.layers)


class _Reader:
    """A cursor over the file's bytes; every read checks it stays inside the file."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.path = path

    def fail(self, problem: str) -> ModelFileError:
        return ModelFileError(f"{self.path}: not a dlib network file this reader understands: {problem} "
                              f"(at byte {self.pos} of {len(self.data)})")

    def take(self, n: int) -> memoryview:
        if self.pos + n > len(self.data):
            raise self.fail(f"file ends early (needs {n} more bytes)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def integer(self) -> int:
        control = self.take(1)[0]
        size, negative = control & 0x0F, bool(control & 0x80)
        if size == 0 or size > 8 or control & 0x70:
            raise self.fail(f"bad integer control byte 0x{control:02x}")
        value = int.from_bytes(self.take(size), "little")
        return -value if negative else value

    def boolean(self) -> bool:
        ch = bytes(self.take(1))
        if ch not in (b"0", b"1"):
            raise self.fail(f"bad bool byte {ch!r}")
        return ch == b"1"

    def string(self) -> str:
        n = self.integer()
        if not 0 <= n <= 1 << 16:
            raise self.fail(f"implausible string length {n}")
        try:
            return bytes(self.take(n)).decode("ascii")
        except UnicodeDecodeError as exc:
            raise self.fail("non-ASCII layer name") from exc

    def real(self) -> float:
        """dlib's portable float: integer mantissa times 2**exponent (float_details)."""
        mantissa, exponent = self.integer(), self.integer()
        specials = {32000: np.inf, 32001: -np.inf, 32002: np.nan}  # float_details::is_inf / is_ninf / is_nan
        if exponent in specials:
            return float(specials[exponent])
        return float(np.ldexp(float(mantissa), exponent))

    def tensor(self) -> np.ndarray:
        version = self.integer()
        if version != 2:
            raise self.fail(f"tensor version {version} (only version 2, raw float32, is supported)")
        shape = tuple(self.integer() for _ in range(4))
        if min(shape) < 0:
            raise self.fail(f"negative tensor shape {shape}")
        count = int(np.prod(shape))
        raw = self.take(4 * count)
        return np.frombuffer(raw, dtype="<f4").astype(np.float32).reshape(shape)

    def alias_tensor(self) -> tuple[int, int, int, int]:
        version = self.integer()
        if version != 1:
            raise self.fail(f"alias_tensor version {version}")
        return tuple(self.integer() for _ in range(4))  # type: ignore[return-value]

    def peek_input_layer_name(self) -> bool:
        """After a wrapper's version: does the input layer's name follow (so this wrapper is the bottom)?"""
        start = self.pos
        try:
            return self.string().startswith("input")
        except ModelFileError:
            return False
        finally:
            self.pos = start


def read_dlib_net(path: str | os.PathLike) -> DlibNet:
    """Parse ``path`` (e.g. dlib_face_recognition_resnet_model_v1.dat); the whole file must be consumed."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the dlib network file ({exc})") from exc
    r = _Reader(data, path)
    if r.integer() != 1:
        r.pos = 0
        raise r.fail("no add_loss_layer version 1 at the start")
    loss_kind, loss_config = _loss(r)
    wrappers = []  # top-down versions; the last one is the add_layer over the input layer
    while True:
        version = r.integer()
        if r.peek_input_layer_name():
            if version not in (2, 3):
                raise r.fail(f"input add_layer version {version}")
            break
        if version not in (_ADD_LAYER, _TAG_OR_SKIP):
            raise r.fail(f"wrapper version {version}")
        wrappers.append(version)
    input_kind, input_config = _input_layer(r)
    layers = [_details(r)]
    for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, get_output_and_gradient_input_disabled
        r.boolean()
    for _ in range(3):  # x_grad, cached_output, grad_final
        r.tensor()
    if version == 3:
        r.integer()  # _sample_expansion_factor
    for wrapper in reversed(wrappers):
        if wrapper == _TAG_OR_SKIP:
            layers.append(DlibLayer("tag_or_skip"))
            continue
        layers.append(_details(r))
        for _ in range(3):
            r.boolean()
        for _ in range(3):  # x_grad, cached_output, params_grad
            r.tensor()
    if r.pos != len(r.data):
        raise r.fail(f"{len(r.data) - r.pos} bytes left after the network")
    return DlibNet(input_kind, input_config, layers, loss_kind, loss_config)


def _loss(r: _Reader) -> tuple[str, dict]:
    name = r.string()
    if name == "loss_metric_":
        return "loss_metric", {}
    if name == "loss_metric_2":
        return "loss_metric", {"margin": r.real(), "dist_thresh": r.real()}
    raise r.fail(f"loss layer {name!r} (only loss_metric is supported)")


def _input_layer(r: _Reader) -> tuple[str, dict]:
    name = r.string()
    if name != "input_rgb_image_sized":
        raise r.fail(f"input layer {name!r} (only input_rgb_image_sized is supported)")
    mean = [r.real() for _ in range(3)]
    rows, cols = r.integer(), r.integer()
    return name, {"mean_rgb": mean, "rows": rows, "cols": cols}


def _details(r: _Reader) -> DlibLayer:
    name = r.string()
    if name == "con_4":
        params = r.tensor().ravel()
        num_filters, nr, nc, stride_y, stride_x, padding_y, padding_x = (r.integer() for _ in range(7))
        filters, biases = r.alias_tensor(), r.alias_tensor()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.real()
        n_weights = int(np.prod(filters))
        if filters[0] != num_filters or params.size != n_weights + num_filters or biases[1] != num_filters:
            raise r.fail(f"con_ with {num_filters} filters of shape {filters} but {params.size} parameters")
        return DlibLayer("con", {"num_filters": num_filters, "size": (nr, nc), "stride": (stride_y, stride_x),
                                 "padding": (padding_y, padding_x)},
                         {"weight": params[:n_weights].reshape(filters), "bias": params[n_weights:]})
    if name == "affine_":
        params = r.tensor().ravel()
        gamma, beta = r.alias_tensor(), r.alias_tensor()
        mode = r.integer()
        n = int(np.prod(gamma))
        if mode != 0 or params.size != 2 * n or int(np.prod(beta)) != n:
            raise r.fail(f"affine_ in mode {mode} with {params.size} parameters for gamma {gamma}")
        return DlibLayer("affine", {"channels": n}, {"gamma": params[:n], "beta": params[n:]})
    if name == "relu_":
        return DlibLayer("relu")
    if name == "add_prev_":
        return DlibLayer("add_prev")
    if name in ("max_pool_2", "avg_pool_2"):
        nr, nc, stride_y, stride_x, padding_y, padding_x = (r.integer() for _ in range(6))
        return DlibLayer(name[:-2], {"size": (nr, nc), "stride": (stride_y, stride_x),
                                     "padding": (padding_y, padding_x)})
    if name == "fc_2":
        num_outputs, num_inputs = r.integer(), r.integer()
        params = r.tensor()
        weights, _biases = r.alias_tensor(), r.alias_tensor()
        bias_mode = r.integer()
        for _ in range(4):
            r.real()
        n_weights = num_inputs * num_outputs
        if weights[:2] != (num_inputs, num_outputs) or params.size != n_weights + (num_outputs if bias_mode == 0
                                                                                    else 0):
            raise r.fail(f"fc_ {num_inputs}->{num_outputs} with {params.size} parameters")
        flat = params.ravel()
        arrays = {"weight": flat[:n_weights].reshape(num_inputs, num_outputs)}
        if bias_mode == 0:
            arrays["bias"] = flat[n_weights:]
        return DlibLayer("fc", {"num_inputs": num_inputs, "num_outputs": num_outputs}, arrays)
    raise r.fail(f"layer {name!r} (not one of con_4, affine_, relu_, add_prev_, max_pool_2, avg_pool_2, fc_2)")
