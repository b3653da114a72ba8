"""2D embedders: real-face identity structure (dlib), known answers for crops and channel order
(ArcFace with a tiny ONNX built here), faithful weight loading (FaceNet with random weights)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from facecluster_widgets.detect.base import points5_from_68
from facecluster_widgets.embed import embedders, get_embedder
from facecluster_widgets.embed.base import (
    EmbedInput,
    l2_normalise,
)
from facecluster_widgets.embed.dlib_backend import DlibEmbedder
from facecluster_widgets.errors import EmbedInputError, FaceclusterError, ModelFileError, ModelMissingError
from facecluster_widgets.io.images import read_image

PER_IDENTITY = 3
#: insightface's ArcFace 5-point template in its 112x112 frame (insightface.utils.face_align.arcface_dst).
ARCFACE_TEMPLATE = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                             [41.5493, 92.3655], [70.7299, 92.2041]])


@pytest.fixture(scope="module")
def lfw_faces(lfw10: Path, dlib_points68) -> tuple[list[str], list[EmbedInput]]:
    """First images of every lfw10 identity with landmarks from dlib's HOG detector + 68 predictor."""
    labels, faces = [], []
    for folder in sorted(p for p in lfw10.iterdir() if p.is_dir()):
        for path in sorted(folder.glob("*.jpg"))[:PER_IDENTITY]:
            rgb = read_image(path)
            points68 = dlib_points68(rgb, 0)  # lfw faces are ~110 px: no upsampling needed
            labels.append(folder.name)
            faces.append(EmbedInput(rgb=rgb, points5=points5_from_68(points68), points68=points68))
    return labels, faces


@pytest.fixture(scope="module")
def dlib_embedder() -> DlibEmbedder:
    return DlibEmbedder()


@pytest.fixture(scope="module")
def dlib_vectors(dlib_embedder, lfw_faces) -> np.ndarray:
    return dlib_embedder.embed(lfw_faces[1])


def _distances(x: np.ndarray) -> np.ndarray:
    return np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)


# --- interface ---------------------------------------------------------------------------------------


def test_registry_lists_all_backends_and_defaults_to_sface():
    assert {"arcface", "dlib", "facenet", "sface"} <= set(embedders.names())
    default = get_embedder()
    assert default.name == "sface" and default.dim == 128
    with pytest.raises(FaceclusterError, match="unknown embedder 'nope'"):
        get_embedder("nope")


def test_embed_input_rejects_wrong_arrays():
    rgb = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(EmbedInputError, match="uint8"):
        EmbedInput(rgb=rgb.astype(np.float32))
    with pytest.raises(EmbedInputError, match=r"\(H, W, 3\)"):
        EmbedInput(rgb=np.zeros((20, 20), np.uint8))
    with pytest.raises(EmbedInputError, match=r"points5 must have shape \(5, 2\)"):
        EmbedInput(rgb=rgb, points5=np.zeros((68, 2)))
    with pytest.raises(EmbedInputError, match=r"points68 must have shape \(68, 2\)"):
        EmbedInput(rgb=rgb, points68=np.zeros((5, 2)))
    assert EmbedInput(rgb=rgb[:, ::-1]).rgb.flags.c_contiguous  # dlib and OpenCV need contiguous pixels


def test_optional_backends_name_the_extra_to_install(monkeypatch, tmp_path):
    from facecluster_widgets.errors import OptionalDependencyError

    monkeypatch.setitem(sys.modules, "torch", None)  # as if torch were not installed
    monkeypatch.delitem(sys.modules, "facecluster_widgets.embed.facenet", raising=False)
    with pytest.raises(OptionalDependencyError, match=r"pip install 'facecluster_widgets\[refine\]'"):
        get_embedder("facenet", weights=tmp_path / "w.pt")
    monkeypatch.setitem(sys.modules, "onnx", None)
    (tmp_path / "r.onnx").write_bytes(b"")
    with pytest.raises(OptionalDependencyError, match=r"pip install 'facecluster_widgets\[insightface\]'"):
        get_embedder("arcface", model=tmp_path / "r.onnx")


def test_l2_normalise_gives_unit_rows_and_nan_for_directionless_rows():
    out = l2_normalise(np.array([[3.0, 4.0], [0.0, 0.0], [np.nan, 1.0]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], [0.6, 0.8], rtol=1e-6)
    assert np.isnan(out[1:]).all()


# --- dlib -------------------------------------------------------------------------------------------


def test_dlib_vectors_are_unit_float32_rows(dlib_vectors, lfw_faces):
    assert dlib_vectors.shape == (len(lfw_faces[1]), 128)
    assert dlib_vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(dlib_vectors, axis=1), 1.0, atol=1e-5)


def test_dlib_groups_lfw10_identities(dlib_vectors, lfw_faces):
    labels = np.array(lfw_faces[0])
    dist = _distances(dlib_vectors)
    same = labels[:, None] == labels[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    intra, inter = dist[same & off_diagonal].mean(), dist[~same].mean()
    assert intra < 0.8 * inter, (intra, inter)
    np.fill_diagonal(dist, np.inf)
    accuracy = (labels[dist.argmin(axis=1)] == labels).mean()
    assert accuracy >= 0.9, accuracy


def test_dlib_same_image_twice_and_batch_size_give_identical_vectors(lfw_faces, dlib_vectors):
    faces = lfw_faces[1][:3]
    single = DlibEmbedder(batch_size=1).embed([faces[0], faces[0], *faces[1:]])
    np.testing.assert_array_equal(single[0], single[1])
    np.testing.assert_array_equal(single[1:], dlib_vectors[:3])


def test_dlib_mirror_image_gives_a_close_vector(lfw_faces, dlib_embedder, dlib_vectors, dlib_points68):
    picks = range(0, len(lfw_faces[1]), PER_IDENTITY)  # one face per identity
    mirrored = []
    for i in picks:
        rgb = np.ascontiguousarray(lfw_faces[1][i].rgb[:, ::-1])
        mirrored.append(EmbedInput(rgb=rgb, points68=dlib_points68(rgb, 0)))
    distance = np.linalg.norm(dlib_embedder.embed(mirrored) - dlib_vectors[list(picks)], axis=1)
    assert distance.max() < 0.4, distance


def test_dlib_five_point_path_agrees_with_68_point_chips(lfw_faces, dlib_embedder, dlib_vectors):
    """Faces with only 5 points go through dlib's 5-point predictor on a box built from them."""
    five_only = [EmbedInput(rgb=f.rgb, points5=f.points5) for f in lfw_faces[1][::PER_IDENTITY]]
    distance = np.linalg.norm(dlib_embedder.embed(five_only) - dlib_vectors[::PER_IDENTITY], axis=1)
    assert distance.mean() < 0.2 and distance.max() < 0.4, distance


def test_dlib_failed_crops_give_nan_rows_with_logged_reasons(lfw_faces, dlib_embedder, caplog):
    good = lfw_faces[1][0]
    far = good.points5 + 10_000
    faces = [
        good,
        EmbedInput(rgb=good.rgb),
        EmbedInput(rgb=good.rgb, points5=np.full((5, 2), np.nan)),
        EmbedInput(rgb=good.rgb, points5=far),
        EmbedInput(rgb=good.rgb, points5=np.full((5, 2), 100.0)),
        EmbedInput(rgb=good.rgb, points68=np.where(np.arange(68)[:, None] == 3, np.nan, good.points68)),
    ]
    with caplog.at_level(logging.WARNING, logger="facecluster_widgets.embed"):
        out = dlib_embedder.embed(faces)
    assert np.isfinite(out[0]).all() and np.isnan(out[1:]).all()
    text = caplog.text
    for reason in ("face 1: no dlib crop (no landmarks", "face 2: no dlib crop (landmarks contain NaN",
                   "face 3: no dlib crop (landmark centre", "face 4: no dlib crop (eyes 0.0 px apart",
                   "face 5: no dlib crop (68 landmarks contain NaN"):
        assert reason in text


def test_dlib_empty_input_and_params(dlib_embedder):
    assert dlib_embedder.embed([]).shape == (0, 128)
    params = json.loads(json.dumps(dlib_embedder.params()))
    assert params["model"]["file"] == "dlib_face_recognition_resnet_model_v1.dat"
    assert len(params["model"]["sha1_first_mb"]) == 40 and params["model"]["bytes"] > 1_000_000
    assert DlibEmbedder(num_jitters=3).params() != params


def test_dlib_missing_model_file_is_named(tmp_path):
    with pytest.raises(ModelMissingError, match="dlib_face_recognition_resnet_model_v1.dat"):
        DlibEmbedder(model_path=tmp_path / "absent.dat")


# --- ArcFace (insightface) with a tiny ONNX model built here -------------------------------------------

PROJECTION = np.random.default_rng(7).normal(size=(3, 512)).astype(np.float32)


def _save_onnx(path: Path, side: int, projection: np.ndarray) -> Path:
    """GlobalAveragePool -> Flatten -> MatMul: the embedding is the crop's mean colour, projected."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["input.1"], ["pooled"], name="pool"),
         helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten"),
         helper.make_node("MatMul", ["flat", "projection"], ["embedding"], name="project")],
        "tiny",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, side, side])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", projection.shape[1]])],
        [numpy_helper.from_array(projection, "projection")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def tiny_arcface(tmp_path_factory) -> Path:
    return _save_onnx(tmp_path_factory.mktemp("arcface") / "tiny_r.onnx", 112, PROJECTION)


def test_arcface_tiny_model_embeds_real_faces(tiny_arcface, lfw_faces):
    embedder = get_embedder("arcface", model=tiny_arcface, providers=["CPUExecutionProvider"])
    assert embedder.dim == 512
    faces = lfw_faces[1][:6]
    out = embedder.embed(faces)
    assert out.shape == (6, 512) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out, embedder.embed(faces))
    dist = _distances(out)
    assert dist[~np.eye(6, dtype=bool)].min() > 1e-3
    # Known answer: the network must see the RGB crop, normalised as insightface does ((x - 127.5) / 127.5).
    crops = np.stack([embedder.crop(face) for face in faces]).astype(np.float64)
    expected = l2_normalise(((crops.mean(axis=(1, 2)) - 127.5) / 127.5) @ PROJECTION)
    np.testing.assert_allclose(out, expected, atol=1e-4)


def test_arcface_crop_maps_template_points_onto_the_template():
    from facecluster_widgets.embed.arcface import arcface_crop

    rgb = np.random.default_rng(0).integers(0, 256, size=(112, 112, 3), dtype=np.uint8)
    crop = arcface_crop(EmbedInput(rgb=rgb, points5=ARCFACE_TEMPLATE))
    assert np.abs(crop.astype(int) - rgb).max() <= 1


def test_arcface_finds_the_recognition_model_in_a_pack(tmp_path):
    pack = tmp_path / "models" / "mypack"
    pack.mkdir(parents=True)
    _save_onnx(pack / "2d106det.onnx", 192, PROJECTION[:, :212])
    _save_onnx(pack / "w600k_tiny.onnx", 112, PROJECTION)
    embedder = get_embedder("arcface", model="mypack", root=tmp_path)
    assert embedder.model_path.name == "w600k_tiny.onnx"
    assert embedder.params()["model"]["file"] == "w600k_tiny.onnx"


def test_arcface_missing_models_say_what_file_goes_where(tmp_path):
    with pytest.raises(ModelMissingError, match=r"buffalo_l/w600k_r50\.onnx"):
        get_embedder("arcface", model="buffalo_l", root=tmp_path)
    with pytest.raises(ModelMissingError, match="absent.onnx not found"):
        get_embedder("arcface", model=tmp_path / "absent.onnx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelMissingError, match="holds no ArcFace recognition model"):
        get_embedder("arcface", model=tmp_path / "empty")
    not_recognition = _save_onnx(tmp_path / "det.onnx", 192, PROJECTION)
    with pytest.raises(ModelFileError, match="not an ArcFace recognition model"):
        get_embedder("arcface", model=not_recognition)


# --- FaceNet (InceptionResnetV1 re-implementation) ------------------------------------------------------


@pytest.fixture(scope="module")
def facenet_weights(tmp_path_factory) -> Iterator[tuple[Path, object]]:
    """A random-weight network saved the way facenet-pytorch's files are: with a ``logits`` head."""
    torch = pytest.importorskip("torch")
    from facecluster_widgets.embed.facenet import InceptionResnetV1

    torch.manual_seed(0)
    net = InceptionResnetV1().eval()
    state = net.state_dict()
    for key, value in state.items():  # non-trivial batch-norm statistics, as in trained weights
        if key.endswith("running_var"):
            value.uniform_(0.5, 2.0)
        elif key.endswith("running_mean"):
            value.normal_(0.0, 0.1)
    state["logits.weight"] = torch.zeros(10, 512)
    state["logits.bias"] = torch.zeros(10)
    path = tmp_path_factory.mktemp("facenet") / "random.pt"
    torch.save(state, path)
    net.load_state_dict({k: v for k, v in state.items() if not k.startswith("logits.")})
    # On a shared 2-core machine OpenMP's spinning threads make 2 threads ~6x slower than 1.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield path, net
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_facenet_loads_weights_and_embeds_real_faces(facenet_weights, lfw_faces):
    import torch

    path, net = facenet_weights
    embedder = get_embedder("facenet", weights=path)
    faces = lfw_faces[1][::PER_IDENTITY][:2]  # the network is heavy: two faces show all it must
    out = embedder.embed(faces)
    assert out.shape == (2, 512) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(out, embedder.embed(faces))
    assert np.linalg.norm(out[0] - out[1]) > 1e-4  # random weights squeeze all faces together
    # Same numbers as the network whose weights were saved: the file, not a fresh init, was loaded.
    crops = torch.from_numpy(np.stack([embedder.crop(f) for f in faces])).permute(0, 3, 1, 2).float()
    with torch.inference_mode():
        expected = net((crops - 127.5) / 128.0).numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_facenet_crop_maps_template_points_onto_the_template():
    pytest.importorskip("torch")
    from facecluster_widgets.embed.facenet import facenet_crop

    rgb = np.random.default_rng(1).integers(0, 256, size=(160, 160, 3), dtype=np.uint8)
    crop = facenet_crop(EmbedInput(rgb=rgb, points5=ARCFACE_TEMPLATE * (160 / 112)))
    assert np.abs(crop.astype(int) - rgb).max() <= 1


@pytest.mark.slow
def test_facenet_wrong_state_dicts_are_named(tmp_path, lfw_faces, facenet_weights):
    torch = pytest.importorskip("torch")
    face = lfw_faces[1][:1]
    state = facenet_weights[1].state_dict()
    cases = {
        "renamed.pt": ({"module." + k: v for k, v in list(state.items())[:2]}, "missing keys: block8"),
        "shape.pt": ({**state, "last_linear.weight": torch.zeros(128, 1792)}, "wrong-shape keys: last_linear"),
        "tensor.pt": (torch.zeros(3), "not a state_dict"),
    }
    for name, (content, message) in cases.items():
        torch.save(content, tmp_path / name)
        with pytest.raises(ModelFileError, match=message):
            get_embedder("facenet", weights=tmp_path / name).embed(face)
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(ModelFileError, match="text.pt: not a PyTorch state_dict"):
        get_embedder("facenet", weights=tmp_path / "text.pt").embed(face)


def test_facenet_missing_weights_are_named(tmp_path):
    pytest.importorskip("torch")
    with pytest.raises(ModelMissingError, match="vggface2.pt"):
        get_embedder("facenet")
    with pytest.raises(ModelMissingError, match="absent.pt not found"):
        get_embedder("facenet", weights=tmp_path / "absent.pt")
