"""Face sources: labelled folders, flat folders, lists, named datasets and the default dataset."""

from __future__ import annotations

import os
import socket

import pytest

import facecluster_widgets as fc
from facecluster_widgets.config import ENV_DATA, ENV_DATASETS
from facecluster_widgets.errors import DatasetError


def test_identity_folders_give_labels(yale):
    source = fc.load_faces(yale)
    assert len(source) == 164 and len(source.identities) == 15
    assert source.has_labels
    assert all(p.parent.name == label for p, label in zip(source.paths, source.labels, strict=True))
    assert source.name == "yale"


def test_order_is_stable(lfw10):
    assert fc.load_faces(lfw10).paths == fc.load_faces(lfw10).paths


def test_flat_folder_and_list_have_no_labels(tmp_path, lfw10):
    files = sorted(lfw10.rglob("*.jpg"))[:5]
    for f in files:
        os.symlink(f, tmp_path / f.name)
    (tmp_path / "notes.txt").write_text("not an image")
    flat = fc.load_faces(tmp_path)
    assert len(flat) == 5 and not flat.has_labels and flat.labels is None
    listed = fc.load_faces([str(f) for f in files])
    assert len(listed) == 5 and listed.labels is None


def test_labels_can_be_switched_off(orl):
    assert fc.load_faces(orl, labels=False).labels is None


def test_named_dataset_resolves_under_datasets_root(datasets_dir, monkeypatch):
    monkeypatch.setenv(ENV_DATASETS, str(datasets_dir))
    assert len(fc.load_faces("orl")) == 400


def test_symlink_loop_is_skipped_with_a_reason(tmp_path, lfw10):
    person = tmp_path / "alice"
    person.mkdir()
    os.symlink(sorted(lfw10.rglob("*.jpg"))[0], person / "a.jpg")
    os.symlink(tmp_path, person / "loop")
    source = fc.load_faces(tmp_path)
    assert len(source) == 1
    assert any("loop" in reason for _, reason in source.skipped)


def test_unknown_source_names_what_was_tried(tmp_path):
    with pytest.raises(DatasetError, match="no such folder"):
        fc.load_faces(str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match="no image files"):
        fc.load_faces(tmp_path)


def test_default_data_dir_prefers_the_environment(tmp_path, monkeypatch, lfw10):
    monkeypatch.setenv(ENV_DATA, str(tmp_path))
    assert fc.default_data_dir() == tmp_path
    monkeypatch.delenv(ENV_DATA)
    assert fc.default_data_dir().name == "lfw10"


def test_default_data_dir_explains_itself_when_nothing_is_found(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_DATA, raising=False)
    monkeypatch.setenv(ENV_DATASETS, str(tmp_path))
    with pytest.raises(DatasetError, match=f"export {ENV_DATA}="):
        fc.default_data_dir()
    monkeypatch.setenv(ENV_DATA, str(tmp_path / "nope"))
    with pytest.raises(DatasetError, match="is not a folder"):
        fc.default_data_dir()


@pytest.mark.filterwarnings("ignore:Retry downloading")
@pytest.mark.slow
def test_lfw_offline_gives_a_clear_error(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("network is unreachable (blocked by the test)")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    with pytest.raises(DatasetError, match="LFW needs internet"):
        fc.load_faces("lfw", lfw_data_home=tmp_path)


def test_combined_sources_keep_identities_apart(orl, yale):
    from facecluster_widgets.io.datasets import combine_sources

    merged = combine_sources([fc.load_faces(orl), fc.load_faces(yale)], name="merged")
    assert len(merged) == 564 and len(merged.identities) == 55
    assert merged.labels[0].startswith("orl/") and merged.labels[-1].startswith("yale/")
