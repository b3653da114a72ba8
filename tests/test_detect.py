"""Face detectors on real faces: counts, landmark geometry, mirror invariance, the cascade's
fallbacks, and the insightface model paths (missing model, routing through a tiny ONNX graph)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from facecluster_widgets.detect import detectors
from facecluster_widgets.detect.base import POINTS5_ORDER, Detection, points5_from_68
from facecluster_widgets.detect.cascade import box_overlap, deduplicate
from facecluster_widgets.detect.dlib_backend import DlibHogDetector
from facecluster_widgets.errors import FaceclusterError, ModelMissingError
from facecluster_widgets.io.images import read_image

BACKENDS = ("mediapipe", "dlib-hog", "auto")
SAMPLES = {
    "lfw10": ("Ariel_Sharon/Ariel_Sharon_0001.jpg", "Tony_Blair/Tony_Blair_0005.jpg"),
    "orl": ("s1/1.pgm", "s25/5.pgm"),
    "yale": ("subject01/glasses.gif", "subject10/normal.gif"),
}
EYE_L, EYE_R, NOSE, MOUTH_L, MOUTH_R = range(5)
assert POINTS5_ORDER == ("eye_left", "eye_right", "nose_tip", "mouth_left", "mouth_right")


@pytest.fixture(scope="module")
def detector_of():
    """One instance per backend for the whole module: model loading dominates the run time."""
    made = {name: detectors.create(name) for name in BACKENDS}
    yield made.__getitem__
    for det in made.values():
        if hasattr(det, "close"):
            det.close()


def sample(datasets_dir: Path, dataset: str, index: int) -> np.ndarray:
    return read_image(datasets_dir / dataset / SAMPLES[dataset][index])


def mirror_points5(points5: np.ndarray, width: int) -> np.ndarray:
    """Points of the mirrored image, put back in image order (left/right pairs swap)."""
    p = points5.copy()
    p[:, 0] = width - p[:, 0]
    return p[[EYE_R, EYE_L, NOSE, MOUTH_R, MOUTH_L]]


def tile(images: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.concatenate(images[:2], axis=1), np.concatenate(images[2:], axis=1)], axis=0)


# --- registry and parameters ---------------------------------------------------------------------

@pytest.mark.parametrize("name", [*BACKENDS, "insightface"])
def test_registry_creates_each_backend_by_name_without_loading_models(name):
    det = detectors.create(name)
    assert det.name == name
    json.dumps(det.params())  # enters a cache key
    assert name in detectors.names()


@pytest.mark.parametrize(("name", "a", "b"), [
    ("mediapipe", {"min_confidence": 0.5}, {"min_confidence": 0.7}),
    ("mediapipe", {}, {"model": "short"}),
    ("dlib-hog", {"min_face": 40}, {"min_face": 20}),
    ("dlib-hog", {}, {"landmarks": False}),
    ("auto", {}, {"mode": "union"}),
    ("auto", {}, {"min_confidence": 0.6}),
    ("insightface", {"model_path": "/a/det_10g.onnx"}, {"model_path": "/a/det_500m.onnx"}),
    ("insightface", {}, {"min_confidence": 0.3}),
])
def test_params_differ_when_a_parameter_differs(name, a, b):
    assert detectors.create(name, **a).params() != detectors.create(name, **b).params()
    assert detectors.create(name, **a).params() == detectors.create(name, **a).params()


def test_bad_input_and_bad_parameters_raise_clear_errors(detector_of):
    with pytest.raises(FaceclusterError, match="uint8"):
        detector_of("auto").detect(np.zeros((50, 50, 3), np.float32))
    with pytest.raises(FaceclusterError, match=r"\(H, W, 3\)"):
        detector_of("mediapipe").detect(np.zeros((50, 50), np.uint8))
    with pytest.raises(FaceclusterError, match="model"):
        detectors.create("mediapipe", model="tiny")
    with pytest.raises(FaceclusterError, match="mode"):
        detectors.create("auto", mode="best")


# --- one face with sane landmarks ----------------------------------------------------------------

@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dataset", sorted(SAMPLES))
@pytest.mark.parametrize("index", [0, 1])
def test_one_face_with_landmarks_in_place(detector_of, datasets_dir, name, dataset, index):
    rgb = sample(datasets_dir, dataset, index)
    found = detector_of(name).detect(rgb)
    assert len(found) == 1
    face = found[0]
    x0, y0, x1, y1 = face.box
    assert 0 <= x0 < x1 <= rgb.shape[1] and 0 <= y0 < y1 <= rgb.shape[0]
    assert face.width > 0.3 * min(rgb.shape[:2])  # the face, not an eye or a button
    assert 0.0 < face.score <= 1.0
    assert face.source in ("mediapipe", "dlib-hog", "mediapipe-closeup")
    p5, p68 = face.points5, face.points68
    assert p5.shape == (5, 2) and p68.shape == (68, 2)
    slack = 0.1 * face.width
    assert np.all((p5[:, 0] > x0 - slack) & (p5[:, 0] < x1 + slack))
    assert np.all((p5[:, 1] > y0 - slack) & (p5[:, 1] < y1 + slack))
    assert max(p5[EYE_L, 1], p5[EYE_R, 1]) < p5[NOSE, 1] < min(p5[MOUTH_L, 1], p5[MOUTH_R, 1])
    assert p5[EYE_L, 0] < p5[NOSE, 0] < p5[EYE_R, 0]
    assert p5[MOUTH_L, 0] < p5[MOUTH_R, 0]
    eye_distance = p5[EYE_R, 0] - p5[EYE_L, 0]
    assert 0.25 * face.width < eye_distance < 0.6 * face.width
    np.testing.assert_allclose(p5, points5_from_68(p68))
    assert face.landmark_quality > 0.6  # frontal faces: landmarks hold still when the box moves


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize(("dataset", "index"), [("lfw10", 0), ("yale", 0), ("orl", 0)])
def test_mirrored_image_gives_mirrored_face(detector_of, datasets_dir, name, dataset, index):
    rgb = sample(datasets_dir, dataset, index)
    width = rgb.shape[1]
    [face] = detector_of(name).detect(rgb)
    [seen] = detector_of(name).detect(np.ascontiguousarray(rgb[:, ::-1]))
    mirrored_box = (width - seen.box[2], seen.box[1], width - seen.box[0], seen.box[3])
    tolerance = 2 + 0.05 * face.width  # a few px: ~7 px on a 110 px lfw10 face
    np.testing.assert_allclose(mirror_points5(seen.points5, width), face.points5, atol=tolerance)
    if name == "dlib-hog":
        # HOG boxes snap to its image pyramid's levels, which a mirror does not preserve: the box
        # may change scale (17 px on Ariel_Sharon_0001), though the landmarks above do not.
        assert box_overlap(mirrored_box, face.box) > 0.8
    else:
        np.testing.assert_allclose(mirrored_box, face.box, atol=tolerance)


@pytest.mark.parametrize("name", BACKENDS)
def test_group_photo_of_four_people_gives_four_faces(detector_of, lfw10, name):
    people = sorted(p for p in lfw10.iterdir() if p.is_dir())[:4]
    images = [read_image(sorted(person.glob("*.jpg"))[0]) for person in people]
    group = tile(images)
    found = detector_of(name).detect(group)
    assert len(found) == 4
    h, w = images[0].shape[:2]
    quadrants = sorted((int((d.box[1] + d.box[3]) / 2 // h), int((d.box[0] + d.box[2]) / 2 // w)) for d in found)
    assert quadrants == [(0, 0), (0, 1), (1, 0), (1, 1)]


@pytest.mark.parametrize("name", BACKENDS)
def test_blank_and_smooth_images_have_no_face(detector_of, name):
    blank = np.full((240, 320, 3), 200, np.uint8)
    ramp = np.repeat(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], 240, axis=0).repeat(3, axis=2)
    assert detector_of(name).detect(blank) == []
    assert detector_of(name).detect(np.ascontiguousarray(ramp)) == []


# --- the cascade ---------------------------------------------------------------------------------

def test_cascade_finds_profiles_the_frontal_detectors_miss(detector_of, cfp100):
    person = cfp100 / "Adam_Sandler"
    profiles = [read_image(p) for p in sorted(person.glob("profile_*.jpg"))]
    frontals = [read_image(p) for p in sorted(person.glob("frontal_*.jpg"))[:4]]
    for rgb in profiles:
        assert detector_of("mediapipe").detect(rgb) == []
        assert detector_of("dlib-hog").detect(rgb) == []
    found = [detector_of("auto").detect(rgb) for rgb in profiles]
    assert all(len(f) == 1 and f[0].source == "mediapipe-closeup" for f in found)
    # the 68-point predictor is poor on profiles: kept, but flagged by a low landmark quality
    profile_quality = [f[0].landmark_quality for f in found]
    frontal_quality = [detector_of("auto").detect(rgb)[0].landmark_quality for rgb in frontals]
    assert max(profile_quality) < 0.5 < min(frontal_quality)


def test_cascade_falls_back_to_dlib_when_mediapipe_full_range_misses(detector_of, cfp100):
    rgb = read_image(cfp100 / "Adam_Sandler" / "frontal_03.jpg")
    assert detector_of("mediapipe").detect(rgb) == []
    [face] = detector_of("auto").detect(rgb)
    assert face.source == "dlib-hog"


def test_union_mode_deduplicates_members_finding_the_same_faces(lfw10):
    people = sorted(p for p in lfw10.iterdir() if p.is_dir())[4:8]
    group = tile([read_image(sorted(person.glob("*.jpg"))[1]) for person in people])
    with detectors.create("auto", mode="union", landmarks=False) as union:
        found = union.detect(group)
    assert len(found) == 4  # mediapipe and dlib-hog each find all 4; only the first finder is kept
    assert {d.source for d in found} == {"mediapipe"}


def test_deduplicate_keeps_the_first_of_overlapping_boxes():
    big = Detection(box=(0, 0, 100, 100), score=0.9, source="a")
    ear = Detection(box=(80, 40, 120, 80), score=0.95, source="b")  # half inside: IoU 0.13 only
    other = Detection(box=(200, 0, 300, 100), score=0.5, source="c")
    assert box_overlap(big.box, ear.box) == pytest.approx(0.5)
    assert deduplicate([big, ear, other], 0.3) == [big, other]
    assert deduplicate([ear, big, other], 0.3) == [ear, other]
    assert deduplicate([big, ear, other], 0.6) == [big, ear, other]


# --- dlib HOG upsampling -------------------------------------------------------------------------

def test_hog_upsampling_finds_a_40_px_face(datasets_dir):
    from PIL import Image

    rgb = sample(datasets_dir, "lfw10", 0)  # its face box is ~105 px
    small = np.asarray(Image.fromarray(rgb).resize((100, 100), Image.Resampling.LANCZOS))
    assert DlibHogDetector(min_face=80, landmarks=False).detect(small) == []
    [face] = DlibHogDetector(min_face=40, landmarks=False).detect(small)
    assert 30 < face.width < 55


def test_hog_upsample_count_follows_face_size_and_pixel_budget():
    assert DlibHogDetector(min_face=80).upsample_count(250, 250) == 0
    assert DlibHogDetector(min_face=40).upsample_count(250, 250) == 1
    assert DlibHogDetector(min_face=20).upsample_count(250, 250) == 2
    assert DlibHogDetector(min_face=40).upsample_count(2000, 3000) == 0  # 24 MP once upsampled


def test_points5_are_in_image_order_even_for_mirrored_68():
    p68 = np.zeros((68, 2))
    p68[36:42] = (30, 40)
    p68[42:48] = (70, 40)
    p68[30] = (50, 60)
    p68[48], p68[54] = (35, 80), (65, 80)
    np.testing.assert_allclose(points5_from_68(p68), [[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]])
    mirrored = p68.copy()
    mirrored[:, 0] = 100 - mirrored[:, 0]
    np.testing.assert_allclose(points5_from_68(mirrored), [[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]])


def test_mediapipe_close_and_pickle_drop_the_graph_and_rebuild_it(datasets_dir):
    rgb = sample(datasets_dir, "yale", 0)
    det = detectors.create("mediapipe", landmarks=False)
    first = det.detect(rgb)
    det.close()
    assert det._graph is None
    copy = pickle.loads(pickle.dumps(det))
    assert copy.detect(rgb)[0].box == first[0].box == det.detect(rgb)[0].box
    det.close()
    copy.close()


# --- insightface ---------------------------------------------------------------------------------

def test_insightface_missing_model_names_file_and_folder(tmp_path):
    det = detectors.create("insightface", root=tmp_path, pack="buffalo_l")
    with pytest.raises(ModelMissingError) as err:
        det.detect(np.zeros((64, 64, 3), np.uint8))
    message = str(err.value)
    assert str(tmp_path / "models" / "buffalo_l") in message and "det_*.onnx" in message
    assert "det_10g.onnx" in message

    missing = tmp_path / "nowhere" / "det_10g.onnx"
    with pytest.raises(ModelMissingError, match=str(missing)):
        detectors.create("insightface", model_path=missing).detect(np.zeros((64, 64, 3), np.uint8))


def write_tiny_scrfd(path: Path, size: int = 64) -> None:
    """An SCRFD-shaped ONNX graph (9 outputs: scores, box distances and 5 keypoints at strides 8, 16,
    32, two anchors each) that always reports one face: anchor (y=4, x=4, a=0) at stride 8."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    hit = {"score": [0.9], "bbox": [2, 2, 2, 2], "kps": [-1, -1, 1, -1, 0, 0, -0.75, 1, 0.75, 1]}
    nodes = [helper.make_node("ReduceMean", ["input.1"], ["mean"], keepdims=0),
             helper.make_node("Mul", ["mean", "zero_c"], ["zero"])]  # outputs depend on the input
    outputs = []
    for kind, width in (("score", 1), ("bbox", 4), ("kps", 10)):
        for stride in (8, 16, 32):
            n = (size // stride) ** 2 * 2
            values = np.zeros((n, width), np.float32)
            if stride == 8:
                values[(4 * (size // stride) + 4) * 2] = hit[kind]
            name = f"{kind}_{stride}"
            nodes.append(helper.make_node("Constant", [], [name + "_c"], value=numpy_helper.from_array(values)))
            nodes.append(helper.make_node("Add", [name + "_c", "zero"], [name]))
            outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, width]))
    graph = helper.make_graph(
        nodes, "tiny_scrfd", [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, size, size])],
        outputs, [numpy_helper.from_array(np.zeros((), np.float32), "zero_c")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def test_insightface_routes_an_scrfd_graph_and_keeps_its_5_points(tmp_path):
    pytest.importorskip("insightface")
    pack = tmp_path / "models" / "mypack"
    pack.mkdir(parents=True)
    write_tiny_scrfd(pack / "det_tiny.onnx")
    det = detectors.create("insightface", root=tmp_path, pack="mypack")
    assert det.model_file() == pack / "det_tiny.onnx"
    rgb = np.zeros((96, 128, 3), np.uint8)  # fitted into 64x64 at scale 1/2
    [face] = det.detect(rgb)
    assert face.source == "insightface"
    assert face.score == pytest.approx(0.9)
    # centre (32, 32) at stride 8, distances 2 * 8: box (16, 16, 48, 48) in the 64 px input
    np.testing.assert_allclose(face.box, (32, 32, 96, 96), atol=1e-3)
    expected = 2 * (np.array([[-1, -1], [1, -1], [0, 0], [-0.75, 1], [0.75, 1]]) * 8 + 32)
    np.testing.assert_allclose(face.points5, expected, atol=1e-3)
    assert face.points68.shape == (68, 2)
