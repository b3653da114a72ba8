"""Messy folders: every bad file gets a row and a reason, odd formats are read, hard faces are handled on purpose.

One ``extract()`` with the default pipeline runs over a folder generated from real photos (the messy files of
``io.messy.MESSY_FILES`` and the hard faces of ``FACE_CASES``); every test reads the resulting store.
"""

from __future__ import annotations

import builtins
import errno
import logging
import os
import re

import numpy as np
import pytest
from support.messy import (
    LONG_NAME,
    MESSY_FILES,
    NON_UTF8_DAMAGED,
    NON_UTF8_NAME,
    write_face_cases,
    write_messy_folder,
)

import facecluster_widgets as fc
from facecluster_widgets.cli import main as cli_main
from facecluster_widgets.cluster.hybrid import HybridClustering
from facecluster_widgets.io.datasets import display_path
from facecluster_widgets.io.flags import SMALL_FACE_PX

AS_ROOT = os.geteuid() == 0

#: file name -> (status in the images table, pattern its reason must match)
REFUSED = {
    "zero_bytes.jpg": ("unreadable", r"empty file \(0 bytes\)"),
    "truncated.jpg": ("unreadable", r"truncated"),
    "truncated.png": ("unreadable", r"truncated"),
    "notes.jpg": ("unreadable", r"not an image format"),
    "bomb_20000x20000.png": ("unreadable", r"400 MP, above the 80 MP limit .*decompression bomb"),
    os.fsdecode(NON_UTF8_DAMAGED): ("unreadable", r"truncated"),
    "loop_a.jpg": ("unreadable", r"symbolic link loop"),
    "loop_b.jpg": ("unreadable", r"symbolic link loop"),
    "moved_away.jpg": ("unreadable", r"file not found"),
    "locked.jpg": ("unreadable", r"permission denied"),
    "loop_dir": ("skipped", r"symbolic link loop"),
}
#: decodable oddities -> (format, original mode, frames, EXIF orientation)
READ = {
    "cmyk.jpg": ("JPEG", "CMYK", 1, 1),
    "grey_16bit.png": ("PNG", "I;16", 1, 1),
    "palette.gif": ("GIF", "P", 1, 1),
    "animated.gif": ("GIF", "P", 2, 1),
    "transparent.png": ("PNG", "RGBA", 1, 1),
    "exif_rotated.jpg": ("JPEG", "RGB", 1, 6),
    "exif_invalid.jpg": ("JPEG", "RGB", 1, 1),
    os.fsdecode(NON_UTF8_NAME): ("JPEG", "RGB", 1, 1),
    LONG_NAME: ("JPEG", "RGB", 1, 1),
}


_real_open = builtins.open


def _no_read_for_locked(file, *args, **kwargs):
    """``open`` as a normal user sees it for a 0000 file called locked.jpg: root reads any file, so as root the
    kernel's refusal is simulated for that one file (everything else opens as usual)."""
    if isinstance(file, (str, os.PathLike)) and os.path.basename(os.fspath(file)) == "locked.jpg":
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(file))
    return _real_open(file, *args, **kwargs)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def messy(tmp_path_factory, lfw10, cfp100):
    """(store, folder, warnings logged): the default pipeline over every bad file and hard face at once."""
    base = tmp_path_factory.mktemp("messy")
    folder = base / "photos"
    people = sorted(p for p in lfw10.iterdir() if p.is_dir())
    photos = [sorted(p.glob("*.jpg"))[0] for p in people]
    person = sorted(p for p in cfp100.iterdir() if p.is_dir())[1]
    write_messy_folder(folder, photos[0])
    write_face_cases(folder, photos, sorted(person.glob("frontal_*"))[0], sorted(person.glob("profile_*"))[0])
    records = _Records()
    logging.getLogger("facecluster_widgets").addHandler(records)
    try:
        with pytest.MonkeyPatch.context() as mp:
            if AS_ROOT:
                mp.setattr(builtins, "open", _no_read_for_locked)
            store = fc.extract(folder, base / "store", progress=False)
    finally:
        logging.getLogger("facecluster_widgets").removeHandler(records)
    yield store, folder, records.messages
    (folder / "locked.jpg").chmod(0o600)


def _by_name(frame, name: str):
    return frame[frame["path"].map(os.path.basename) == display_path(name)]


@pytest.mark.slow
@pytest.mark.slow
def test_every_bad_file_is_listed_with_its_reason(messy):
    store, _, _ = messy
    assert {m.name for m in MESSY_FILES} <= set(REFUSED) | set(READ)  # every generated case is checked
    errors = store.errors
    assert sorted(errors["path"].map(os.path.basename)) == sorted(map(display_path, REFUSED))  # nothing else failed
    for name, (status, pattern) in REFUSED.items():
        row = _by_name(errors, name)
        assert len(row) == 1, name
        assert row["status"].iloc[0] == status, name
        assert re.search(pattern, row["reason"].iloc[0]), (name, row["reason"].iloc[0])


@pytest.mark.slow
def test_unreadable_files_keep_a_faces_row_and_a_summary(messy):
    store, _, warnings = messy
    table, run = store.table, store.read_json("run")
    unreadable = table[table["status"] == "unreadable"]
    assert len(unreadable) == sum(status == "unreadable" for status, _ in REFUSED.values())
    assert unreadable["reason"].notna().all() and (unreadable["face_index"] == -1).all()
    assert not store.features.valid[table["status"].to_numpy() == "unreadable"].any()  # NaN features, not zeros
    assert run["n_unreadable"] == 10 and run["n_skipped"] == 1
    assert run["n_images"] == len(store.images) - 1  # every file counted; the looped folder is not an image
    assert any("10 file(s) could not be read and 1 folder(s) were skipped" in m for m in warnings)


@pytest.mark.skipif(AS_ROOT, reason="root reads 0000 files; the test above simulates the refusal instead")
@pytest.mark.slow
def test_permission_denied_is_real_for_a_normal_user(messy):
    _, folder, _ = messy
    with pytest.raises(fc.ImageReadError, match="permission denied"):
        fc.read_image(folder / "locked.jpg")


@pytest.mark.slow
def test_odd_formats_are_read_and_their_face_found(messy):
    store, _, _ = messy
    images, table = store.images, store.table
    plain = _by_name(table, LONG_NAME).iloc[0]  # the same photo as a plain JPEG
    valid = store.features.valid
    for name, (fmt, mode, frames, orientation) in READ.items():
        info = _by_name(images, name).iloc[0]
        assert (info["status"], info["format"], info["mode"]) == ("ok", fmt, mode), name
        assert (info["frames"], info["exif_orientation"]) == (frames, orientation), name
        faces = _by_name(table, name)
        assert (faces["status"] == "ok").all() and len(faces) == 1, name
        box = faces[["x0", "y0", "x1", "y1"]].to_numpy(float)[0]
        # the same face in the same place: a sideways photo was turned upright, a 16-bit one not clipped black
        assert np.abs(box - plain[["x0", "y0", "x1", "y1"]].to_numpy(float)).max() < 12, (name, box)
        assert valid[faces.index].all(), name


@pytest.mark.slow
def test_odd_names_survive_the_table(messy):
    store, folder, _ = messy
    paths = set(store.images["path"])
    assert str(folder / "caf\\xe9.jpg") in paths  # the Latin-1 byte shown as an escape, not a crash
    assert str(folder / LONG_NAME) in paths and len(LONG_NAME.encode()) == 255
    assert os.path.exists(os.path.join(os.fsencode(folder), NON_UTF8_NAME))  # the user's file is untouched


@pytest.mark.slow
def test_no_face_rows_say_so(messy):
    store, _, _ = messy
    table = store.table
    for name in ("no_face_noise.png", "no_face_one_pixel.png"):
        row = _by_name(table, name)
        assert row["status"].tolist() == ["no_face"], name
        assert "found no face" in row["reason"].iloc[0]
        assert not store.features.valid[row.index].any()


@pytest.mark.slow
def test_many_faces_get_one_row_each(messy):
    store, _, _ = messy
    rows = _by_name(store.table, "collage_3x3.jpg")
    assert len(rows) >= 7 and (rows["status"] == "ok").all()  # 9 people pasted; the detector finds 8
    assert rows["face_id"].is_unique and rows["image_id"].nunique() == 1
    assert sorted(rows["face_index"]) == list(range(len(rows)))
    assert rows["primary"].sum() == 1
    assert store.features.valid[rows.index].all()


@pytest.mark.slow
def test_small_and_cut_faces_are_flagged(messy):
    store, _, _ = messy
    table = store.table
    for name in ("tiny_48px.png", "tiny_24px.png"):  # YuNet finds the 24 px face too (the old cascade did not)
        small = _by_name(table, name)
        assert small["small_face"].tolist() == [True], name
        assert float((small["x1"] - small["x0"]).iloc[0]) < SMALL_FACE_PX
    for name in ("cut_left.jpg", "cut_bottom.jpg"):
        rows = _by_name(table, name)
        assert (rows["status"] == "ok").all() and rows["cut_by_border"].any(), name
        assert store.features.valid[rows.index[rows["cut_by_border"].fillna(False).to_numpy()]].all()
    assert not _by_name(table, LONG_NAME)[["small_face", "cut_by_border"]].any(axis=None)


@pytest.mark.slow
def test_duplicates_point_to_the_first_copy_and_are_computed_once(messy):
    store, _, _ = messy
    table = store.table
    a, b = _by_name(table, "duplicate_a.jpg"), _by_name(table, "duplicate_b.jpg")
    assert len(a) == len(b) >= 1 and a["duplicate_of"].isna().all()
    assert b["duplicate_of"].tolist() == a["face_id"].tolist()
    assert set(a["face_id"]).isdisjoint(b["face_id"])
    emb = store.features["2d"]
    np.testing.assert_array_equal(emb[a.index], emb[b.index])
    run = store.read_json("run")
    distinct = store.images.loc[store.images["status"] == "ok", "image_id"].nunique()
    assert run["counts"]["detect"] == distinct == (store.images["status"] == "ok").sum() - 1


@pytest.mark.slow
def test_profile_faces_are_kept_and_flagged(messy):
    store, _, _ = messy
    table, valid = store.table, store.features.valid
    profile, frontal = _by_name(table, "profile.jpg"), _by_name(table, "frontal.jpg")
    assert profile["status"].tolist() == ["ok"] and frontal["status"].tolist() == ["ok"]
    assert profile["profile"].tolist() == [True] and abs(profile["yaw"].iloc[0]) >= 45
    assert frontal["profile"].tolist() == [False]
    assert valid[profile.index].all() and valid[frontal.index].all()


@pytest.mark.slow
def test_the_messy_store_clusters(messy):
    """Rows without a face carry NaN features: clustering leaves them out (-1) instead of failing."""
    store, _, _ = messy
    table = store.table
    model = HybridClustering().fit(store.features, groups=table["image_id"].to_numpy(str))
    no_features = ~store.features.valid
    assert no_features.sum() >= 12
    assert (model.labels_[no_features] == -1).all() and model.invalid_mask_[no_features].all()
    collage = _by_name(table, "collage_3x3.jpg").index
    labels = model.labels_[collage]
    assert len(set(labels[labels >= 0])) == (labels >= 0).sum()  # cannot-link: one photo, distinct people


@pytest.mark.slow
def test_cli_prints_each_reason(messy, capsys):
    store, folder, _ = messy
    with pytest.MonkeyPatch.context() as mp:
        if AS_ROOT:
            mp.setattr(builtins, "open", _no_read_for_locked)
        assert cli_main(["extract", str(folder), "--out", str(store.root), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"unreadable: 10\b", out)
    for name in REFUSED:
        line = next(line for line in out.splitlines() if line.strip().startswith(display_path(folder / name)))
        assert re.search(REFUSED[name][1], line), line



@pytest.mark.slow
def test_cli_info_lists_the_bad_files(messy, capsys):
    """``facecluster info`` on the same folder: one line per unusable file, printable even for a Latin-1 name
    (pytest's capture writes strict UTF-8, as a terminal in a UTF-8 locale does)."""
    _, folder, _ = messy
    with pytest.MonkeyPatch.context() as mp:
        if AS_ROOT:
            mp.setattr(builtins, "open", _no_read_for_locked)
        assert cli_main(["info", str(folder), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"unreadable: {len(REFUSED)}\b", out)
    assert display_path(folder / os.fsdecode(NON_UTF8_DAMAGED)) in out
