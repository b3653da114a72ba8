"""The torch port of dlib's face recognition ResNet against dlib itself, on real chips: the weights come from
dlib's own model file (embed/dlib_net_file.py), the network is embed/dlib_torch.py, and dlib's
``compute_face_descriptor`` is the independent reference a wrong layer, padding or channel order would miss."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dlib
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facecluster_widgets.detect import get_detector  # noqa: E402
from facecluster_widgets.embed import EmbedInput  # noqa: E402
from facecluster_widgets.embed.dlib_backend import DlibEmbedder  # noqa: E402
from facecluster_widgets.embed.dlib_net_file import read_dlib_net  # noqa: E402
from facecluster_widgets.embed.dlib_torch import DlibFaceNet, add_zero_filled, anet_signature  # noqa: E402
from facecluster_widgets.errors import FaceclusterError, ModelFileError, OptionalDependencyError  # noqa: E402
from facecluster_widgets.io.images import read_image  # noqa: E402

pytestmark = pytest.mark.slow  # both dlib engines over real chips

#: Descriptors from the two engines must agree to float rounding (measured ~3e-7; raw descriptors reach ~0.45).
MAX_ABS_DIFF = 1e-5


def _pick(root: Path, pattern: str, count: int) -> list[Path]:
    paths = sorted(root.glob(pattern))
    assert len(paths) >= count, f"{root}: fewer than {count} files match {pattern}"
    return paths[:: len(paths) // count][:count]


@pytest.fixture(scope="module")
def faces(lfw10, orl, yale, cfp100) -> dict[str, EmbedInput]:
    """Colour photos in the wild, grey studio photos, frontal and profile faces, through the default detector."""
    photos = (_pick(lfw10, "*/*.jpg", 4) + _pick(orl, "*/*.pgm", 2) + _pick(yale, "*/*.gif", 2)
              + _pick(cfp100, "*/frontal_01.jpg", 2) + _pick(cfp100, "*/profile_0[1-4].jpg", 4))
    detector = get_detector("auto")
    out = {}
    for path in photos:
        rgb = read_image(path)
        found = detector.detect(rgb)
        if found:
            out[f"{path.parent.parent.name}/{path.parent.name}/{path.name}"] = EmbedInput.from_detection(rgb, found[0])
    getattr(detector, "close", lambda: None)()
    assert sum("profile" in name for name in out) >= 3, sorted(out)
    assert len(out) >= 12, sorted(out)
    return out


@pytest.fixture(scope="module")
def reference() -> DlibEmbedder:
    return DlibEmbedder(engine="dlib")


@pytest.fixture(scope="module")
def chips(faces, reference) -> np.ndarray:
    return np.stack([reference.chip(face) for face in faces.values()])


@pytest.fixture(scope="module")
def net(reference) -> DlibFaceNet:
    return DlibFaceNet(read_dlib_net(reference.model_path)).eval()


@pytest.fixture(scope="module")
def dlib_descriptors(reference, chips) -> np.ndarray:
    return np.array(reference._network().compute_face_descriptor(list(chips), 1))


def test_model_file_parses_into_dlibs_face_recognition_net(reference):
    parsed = read_dlib_net(reference.model_path)
    assert parsed.signature() == anet_signature()
    assert parsed.input_kind == "input_rgb_image_sized"
    assert (parsed.input_config["rows"], parsed.input_config["cols"]) == (150, 150)
    np.testing.assert_allclose(parsed.input_config["mean_rgb"], [122.782, 117.001, 104.298], atol=1e-4)
    assert parsed.loss_kind == "loss_metric"
    assert parsed.loss_config["dist_thresh"] == pytest.approx(0.6)  # the 0.6 threshold dlib documents
    convs = [layer for layer in parsed.layers if layer.kind == "con"]
    assert [c.arrays["weight"].shape for c in convs[:2]] == [(32, 3, 7, 7), (32, 32, 3, 3)]
    assert parsed.layers[-1].arrays["weight"].shape == (256, 128)
    weights = sum(a.size for layer in parsed.layers for a in layer.arrays.values())
    assert 5_000_000 < weights < 6_000_000 and all(np.isfinite(a).all() for layer in parsed.layers
                                                  for a in layer.arrays.values())


def test_damaged_or_foreign_files_are_named(tmp_path, reference):
    data = reference.model_path.read_bytes()
    cut = tmp_path / "cut.dat"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"cut\.dat: .*file ends early"):
        read_dlib_net(cut)
    longer = tmp_path / "longer.dat"
    longer.write_bytes(data + b"\x00")
    with pytest.raises(ModelFileError, match=r"longer\.dat: .*1 bytes left"):
        read_dlib_net(longer)
    foreign = reference.predictor5_path  # a dlib file, but a shape predictor, not a network
    with pytest.raises(ModelFileError, match=foreign.name):
        read_dlib_net(foreign)


def test_torch_descriptors_equal_dlibs_on_real_chips(net, chips, dlib_descriptors, faces):
    ours = net.describe(chips)
    diff = np.abs(ours - dlib_descriptors)
    cosine = (ours * dlib_descriptors).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(dlib_descriptors, axis=1)
    print(f"\n{len(chips)} chips ({', '.join(faces)}): max |torch - dlib| = {diff.max():.2e} "
          f"(descriptor entries up to {np.abs(dlib_descriptors).max():.2f}), 1 - min cosine = {1 - cosine.min():.1e}")
    assert diff.max() < MAX_ABS_DIFF, diff.max(axis=1)
    assert cosine.min() > 1 - 1e-9


def test_the_comparison_catches_a_wrong_channel_order(net, chips, dlib_descriptors):
    """The check above is sharp enough: the same net fed BGR instead of RGB misses by far more than noise."""
    swapped = net.describe(np.ascontiguousarray(chips[..., ::-1]))
    assert np.abs(swapped - dlib_descriptors).max() > 1000 * MAX_ABS_DIFF


def test_add_prev_zero_fills_missing_channels_rows_and_columns():
    """dlib's tt::add over tensors of different shapes: the larger shape, each input zero-filled at its ends."""
    a = torch.arange(2 * 2 * 3 * 3, dtype=torch.float32).reshape(2, 2, 3, 3)
    b = torch.full((2, 4, 4, 4), 100.0)
    out = add_zero_filled(a, b)
    assert out.shape == (2, 4, 4, 4)
    expected = np.full((2, 4, 4, 4), 100.0)
    expected[:, :2, :3, :3] += a.numpy()
    np.testing.assert_array_equal(out.numpy(), expected)
    np.testing.assert_array_equal(add_zero_filled(b, a).numpy(), expected)


def test_engines_give_the_same_unit_vectors_and_keys_apart(faces, reference):
    inputs = list(faces.values())
    fast = DlibEmbedder(engine="torch")
    ours, theirs = fast.embed(inputs), reference.embed(inputs)
    assert ours.dtype == np.float32 and np.isfinite(ours).all()
    assert np.abs(ours - theirs).max() < MAX_ABS_DIFF
    ours_params, theirs_params = fast.params(), reference.params()
    assert ours_params["engine"] == "torch" and theirs_params["engine"] == "dlib"
    assert {k: v for k, v in ours_params.items() if k != "engine"} == \
        {k: v for k, v in theirs_params.items() if k != "engine"}
    assert DlibEmbedder().engine == "torch"  # torch is installed here, so it is the default


def test_torch_engine_is_batch_invariant_and_leaves_torch_threads_alone(faces):
    """A face's vector does not depend on its batch (the store keys it without the batch size)."""
    inputs = list(faces.values())[:5]
    threads = torch.get_num_threads()
    batched = DlibEmbedder(engine="torch").embed(inputs)
    single = DlibEmbedder(engine="torch", batch_size=1, threads=None).embed([inputs[0], *inputs])
    np.testing.assert_array_equal(single[0], single[1])
    np.testing.assert_array_equal(single[1:], batched)
    assert torch.get_num_threads() == threads


def test_jitter_is_dlibs_jitter_through_torch(tmp_path, chips):
    """Both engines jitter with dlib's jitter_image from the same default seed, so in a fresh process the
    jittered descriptors agree to float noise; they also differ from the unjittered ones, as jitter must."""
    np.save(tmp_path / "chips.npy", chips[:3])
    code = ("import sys, numpy as np\n"
            "from facecluster_widgets.embed.dlib_backend import DlibEmbedder\n"
            "chips = list(np.load(sys.argv[1]))\n"
            "torch_rows = DlibEmbedder(engine='torch', num_jitters=4)._describe(chips)\n"
            "dlib_rows = DlibEmbedder(engine='dlib', num_jitters=4)._describe(chips)\n"
            "np.save(sys.argv[2], np.stack([torch_rows, dlib_rows]))\n")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "chips.npy"), str(tmp_path / "out.npy")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    torch_rows, dlib_rows = np.load(tmp_path / "out.npy")
    assert np.abs(torch_rows - dlib_rows).max() < MAX_ABS_DIFF
    plain = np.array(dlib.face_recognition_model_v1(str(DlibEmbedder(engine="dlib").model_path))
                     .compute_face_descriptor(list(chips[:3]), 1))
    assert np.abs(torch_rows - plain).max() > 100 * MAX_ABS_DIFF


def test_jittered_torch_vectors_stay_near_the_plain_ones(faces):
    inputs = list(faces.values())[:3]
    plain = DlibEmbedder(engine="torch").embed(inputs)
    jittered = DlibEmbedder(engine="torch", num_jitters=3, batch_size=2).embed(inputs)
    distance = np.linalg.norm(jittered - plain, axis=1)
    assert np.isfinite(jittered).all() and (distance > 1e-4).all() and (distance < 0.35).all(), distance


def test_engine_and_threads_are_checked(monkeypatch, faces):
    with pytest.raises(FaceclusterError, match="engine must be one of 'torch', 'dlib'"):
        DlibEmbedder(engine="onnx")
    with pytest.raises(FaceclusterError, match="threads must be a positive integer"):
        DlibEmbedder(threads=0)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    monkeypatch.delitem(sys.modules, "facecluster_widgets.embed.dlib_torch", raising=False)
    assert DlibEmbedder().engine == "dlib"
    with pytest.raises(OptionalDependencyError, match=r"pip install 'facecluster_widgets\[refine\]'"):
        DlibEmbedder(engine="torch").embed(list(faces.values())[:1])
