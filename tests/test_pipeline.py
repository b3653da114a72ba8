"""extract(): one row per face, resumable through the store, failures kept with reasons."""

from __future__ import annotations

import shutil
from contextlib import ExitStack

import numpy as np
import pytest

import facecluster_widgets as fc
from facecluster_widgets.detect import Detection, detectors
from facecluster_widgets.pipeline.stages import PipelineConfig, build_stages

pytestmark = pytest.mark.slow  # real extraction of photos through every stage


class _TwoFaces:
    """A fake detector: two faces per image, to prove rows are per face, not per image."""

    name = "two-faces"

    def __init__(self, min_score: float = 0.5) -> None:
        self.min_score = min_score

    def params(self) -> dict:
        return {"min_score": self.min_score}

    def detect(self, rgb):
        h, w = rgb.shape[:2]
        return [Detection((0, 0, w / 2, h), 0.9, source=self.name), Detection((w / 2, 0, w, h), 0.8, source=self.name)]


@pytest.fixture()
def two_faces():
    detectors.register("two-faces")(_TwoFaces)
    yield
    detectors._factories.pop("two-faces")


def test_warm_rerun_decodes_nothing(tmp_path, lfw10):
    fc.extract(lfw10, tmp_path / "s", detector="whole", progress=False)
    cold = fc.open_store(tmp_path / "s").read_json("run")
    fc.extract(lfw10, tmp_path / "s", detector="whole", progress=False)
    warm = fc.open_store(tmp_path / "s").read_json("run")
    assert cold["counts"]["decode"] == 100 and cold["counts"]["detect"] == 100  # each image decoded once
    assert not {"decode", "image", "detect"} & set(warm["counts"])
    assert warm["counts"]["cached"] == 100 * len(warm["stages"])  # every stage of every image from the store


def test_table_has_one_row_per_face_with_stable_ids(tmp_path, lfw10, two_faces):
    store = fc.extract(lfw10, tmp_path / "s", detector="two-faces", progress=False)
    table = store.table
    assert len(table) == 200 and table["face_id"].is_unique
    assert set(table["face_index"]) == {0, 1}
    assert (table.groupby("image_id").size() == 2).all()
    again = fc.extract(lfw10, tmp_path / "t", detector="two-faces", progress=False).table
    assert table["face_id"].tolist() == again["face_id"].tolist()
    assert table["label"].notna().sum() == 100 and table["label"].nunique() == 10  # the primary face of each photo


def test_changed_detector_parameter_recomputes_detection_only(tmp_path, lfw10, two_faces):
    fc.extract(lfw10, tmp_path / "s", detector="two-faces", progress=False)
    fc.extract(lfw10, tmp_path / "s", detector="two-faces", detector_params={"min_score": 0.7}, progress=False)
    run = fc.open_store(tmp_path / "s").read_json("run")
    assert run["counts"]["detect"] == 100 and run["counts"]["decode"] == 100  # decoded once to detect
    assert run["counts"]["cached"] == 100  # the image stage's results were reused
    with ExitStack() as resources:
        a = [r.stage.key for r in build_stages(PipelineConfig("two-faces", {"min_score": 0.5}), resources)]
        b = [r.stage.key for r in build_stages(PipelineConfig("two-faces", {"min_score": 0.7}), resources)]
    assert a[0] == b[0]  # the image stage does not depend on the detector
    assert all(x != y for x, y in zip(a[1:], b[1:], strict=True))  # detection and everything after it do


def test_bad_files_keep_a_row_with_the_reason(tmp_path, lfw10):
    folder = tmp_path / "photos"
    shutil.copytree(lfw10 / "Ariel_Sharon", folder / "ariel")
    (folder / "ariel" / "broken.jpg").write_text("not a jpeg")
    (folder / "ariel" / "empty.png").write_bytes(b"")
    store = fc.extract(folder, tmp_path / "s", detector="whole", progress=False)
    errors = store.errors
    assert sorted(errors["path"].str.rsplit("/", n=1).str[-1]) == ["broken.jpg", "empty.png"]
    assert errors["reason"].str.len().min() > 5
    table = store.table
    assert (table["status"] == "unreadable").sum() == 2 and (table["status"] == "ok").sum() == 10
    assert len(store.images) == 12  # counts add up: every file has a row


def test_duplicate_files_get_distinct_ids_and_a_pointer(tmp_path, lfw10):
    folder = tmp_path / "photos"
    folder.mkdir()
    first = sorted(lfw10.rglob("*.jpg"))[0]
    shutil.copy(first, folder / "a.jpg")
    shutil.copy(first, folder / "b.jpg")
    table = fc.extract(folder, tmp_path / "s", detector="whole", progress=False).table
    assert table["face_id"].is_unique
    assert table["duplicate_of"].isna().sum() == 1
    assert table["duplicate_of"].dropna().iloc[0] == table["face_id"].iloc[0]


def test_features_are_aligned_with_the_table(tmp_path, lfw10):
    store = fc.extract(lfw10, tmp_path / "s", detector="whole", reconstruct_3d=False, progress=False)
    n = len(store.table)
    store.write_array("feature_2d", np.ones((n, 3), np.float32))
    features = store.features
    assert features.names == ["2d"] and features["2d"].shape == (n, 3) and features.valid.all()
    assert list(features.face_ids) == store.table["face_id"].tolist()


def test_default_pipeline_on_real_faces(tmp_path, lfw10):
    """The real models end to end on a few photos: the primary face of each with landmarks, a 128-D unit embedding,
    a 468-vertex mesh with a plausible pose, an aligned crop, a 3DMM fit and the 3D descriptors."""
    photos = sorted(lfw10.rglob("*.jpg"))[::20]
    store = fc.extract(photos, tmp_path / "s", progress=False)
    everything = store.table
    assert (everything["status"] == "ok").all() and everything.groupby("image_id")["primary"].sum().eq(1).all()
    assert len(everything) >= len(photos)  # YuNet also finds faces in the background of news photos
    primary = everything["primary"].to_numpy(dtype=bool)
    n = len(everything)
    table = everything.loc[primary].reset_index(drop=True)
    assert table["landmark_quality"].gt(0.5).all() and table["align_residual"].lt(10).all()
    assert table["yaw"].abs().lt(60).all()
    emb = store.features["2d"]
    assert emb.shape == (n, 128)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    assert store.read_array("mesh_vertices").shape == (n, 468, 3)
    assert store.read_array("face_crop").shape == (n, 112, 112, 3)
    features = store.features
    assert features.names == ["2d", "curvature", "geodesic", "identity", "shape"]
    assert features["identity"].shape == (n, 20)
    assert features["shape"].shape == (n, 80) and features.valid[primary].all()
    assert table["fit_residual"].lt(0.1).all()  # landmark RMS under a tenth of the eye-corner distance
    run = store.read_json("run")
    assert set(run["missing"].values()) == {0}


def test_labels_go_to_the_primary_face_only(tmp_path, lfw10, two_faces):
    folder = tmp_path / "photos"
    shutil.copytree(lfw10 / "Ariel_Sharon", folder / "Ariel_Sharon")
    table = fc.extract(folder, tmp_path / "s", detector="two-faces", progress=False).table
    assert table["primary"].sum() == 10  # one per photo
    assert table.loc[~table["primary"], "label"].isna().all()
    assert (table.loc[table["primary"], "label"] == "Ariel_Sharon").all()


def test_features_follow_the_last_run_only(tmp_path, lfw10, orl):
    """A store reused for another dataset and configuration never serves the older run's arrays."""
    fc.extract(sorted(lfw10.rglob("*.jpg"))[:3], tmp_path / "s", progress=False)
    store = fc.extract(sorted(orl.rglob("*.pgm"))[:2], tmp_path / "s", reconstruct_3d=False, progress=False)
    assert store.features.names == ["2d"] and len(store.features) == 2


def test_faceless_image_passes_every_stage(tmp_path, lfw10):
    """A photo with no face still runs the 3D stages (with zero rows) and gets its 'no face' row — a regression:
    the descriptor stage used to crash on an empty batch and stop the whole extraction of cfp100."""
    from PIL import Image

    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(sorted(lfw10.rglob("*.jpg"))[0], folder / "face.jpg")
    Image.new("RGB", (200, 200), (120, 130, 140)).save(folder / "wall.png")
    store = fc.extract(folder, tmp_path / "s", progress=False)
    table = store.table
    assert sorted(table["status"]) == ["no_face", "ok"]
    assert store.features.valid.sum() == 1 and "identity" in store.features.names


def test_embedding_network_runs_over_several_photos_at_once(tmp_path, lfw10, monkeypatch):
    """extract() crops each photo's faces as it goes, then runs the network for several photos together
    (batching.DEFER_FACES); the embeddings equal a photo-at-a-time run's (the torch engine is batch-invariant)."""
    from facecluster_widgets.embed.dlib_backend import DlibEmbedder
    from facecluster_widgets.pipeline import batching

    photos = sorted(lfw10.rglob("*.jpg"))[:7]
    calls: list[int] = []
    describe = DlibEmbedder._describe

    def counting(self, chips):
        calls.append(len(chips))
        return describe(self, chips)

    monkeypatch.setattr(DlibEmbedder, "_describe", counting)
    options = {"detector": "mediapipe", "embedder": "dlib", "reconstruct_3d": False, "mesh": False, "progress": False}
    monkeypatch.setattr(batching, "DEFER_FACES", 4)
    together = fc.extract(photos, tmp_path / "together", **options)
    batched, calls[:] = list(calls), []
    monkeypatch.setattr(batching, "DEFER_FACES", 1)
    alone = fc.extract(photos, tmp_path / "alone", **options)
    n_faces = int((together.table["status"] == "ok").sum())
    assert sum(batched) == sum(calls) == n_faces >= len(photos)
    assert max(batched) >= 4 and len(batched) < len(photos)  # several photos per network call
    assert len(calls) == len(photos)  # the reference: one call per photo
    np.testing.assert_array_equal(together.features["2d"], alone.features["2d"])
    assert together.read_json("run")["counts"]["embed"] == len(photos)
