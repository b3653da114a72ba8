"""The export never writes outside its folder whatever a cluster is called, never overwrites, and its tables read
back to the same assignment."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from facecluster_widgets.review.export import (
    NOISE_FOLDER,
    ExportError,
    assignments,
    export_folders,
    export_table,
    safe_component,
)
from facecluster_widgets.review.view import NOISE_NAME

HOSTILE = ["../../etc", "..", ".", "/etc/passwd", "a/../../b", "..\\..\\windows", "C:\\Windows\\System32", "\x00",
           "con", "NUL.txt", "．．／．．／etc", "..／..／x", "<img src=x onerror=alert(1)>.jpg", "~", "-rf /",
           " .hidden", "a\u202eb", "x" * 400, "", "..." + "/" * 10]


@pytest.mark.parametrize("name", HOSTILE)
def test_safe_component_is_one_harmless_path_component(name):
    out = safe_component(name)
    assert out and "/" not in out and "\\" not in out and "\x00" not in out
    assert out not in (".", "..") and not out.startswith(".")
    assert len(out.encode()) <= 255
    assert Path(out).name == out and len(Path(out).parts) == 1
    assert out.split(".")[0].upper() not in {"CON", "NUL", "PRN", "AUX"}


def test_safe_component_keeps_ordinary_names_readable():
    assert safe_component("Zoë Ångström") == "Zoë Ångström"
    assert safe_component("George_W_Bush") == "George_W_Bush"


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture()
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    paths = []
    for i, name in enumerate(["a.jpg", "b.jpg", "c.png", "<img src=x onerror=alert(1)>.jpg", "e.jpg", "a.JPG"]):
        p = folder / name
        p.write_bytes(f"photo {i}".encode())
        paths.append(str(p))
    return paths


def _frame(paths, names):
    labels = np.array([0, 0, 1, 1, 2, -1])
    return assignments([f"id{i}" for i in range(len(paths))], paths, labels, names)


@pytest.mark.parametrize("mode", ["symlink", "copy"])
def test_folders_stay_inside_the_target_whatever_clusters_are_called(tmp_path, photos, mode):
    before = _tree(tmp_path)
    target = tmp_path / "out" / "export"
    names = {0: "../../etc", 1: "/etc/passwd", 2: "..／..／x"}
    summary = export_folders(_frame(photos, names), target, mode=mode)
    after = _tree(tmp_path)
    created = after - before
    assert created and all(c.startswith("out") for c in created), created - {c for c in created if c.startswith("out")}
    assert summary["files"] == 6 and summary["folders"] == 4 and not summary["errors"]
    folders = sorted(p.name for p in target.iterdir())
    assert NOISE_FOLDER in folders and all("/" not in f and not f.startswith(".") for f in folders)
    assert folders[0].startswith("000_") and folders[1].startswith("001_") and folders[2].startswith("002_")
    for path in target.rglob("*"):
        assert path.resolve(strict=False).is_relative_to(target.resolve()) or path.is_symlink()
        if path.is_symlink():
            assert os.readlink(path) in {str(Path(p).resolve()) for p in photos}
    contents = sorted(p.read_bytes() for p in target.rglob("*") if p.is_file())
    assert contents == sorted(Path(p).read_bytes() for p in photos)


def test_two_clusters_with_one_name_get_separate_folders_and_clashing_files_get_numbered(tmp_path, photos):
    frame = assignments([f"id{i}" for i in range(6)], photos[:5] + [photos[0]], np.array([0, 0, 1, 1, 1, 0]),
                        {0: "Bob", 1: "Bob"})
    export_folders(frame, tmp_path / "e", mode="copy")
    folders = sorted(p.name for p in (tmp_path / "e").iterdir())
    assert folders == ["000_Bob", "001_Bob"]
    assert len(list((tmp_path / "e" / "000_Bob").iterdir())) == 2  # a.jpg once, b.jpg: a photo appears once


def test_export_refuses_a_folder_that_is_not_empty(tmp_path, photos):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    with pytest.raises(ExportError, match="busy"):
        export_folders(_frame(photos, {}), target)
    assert (target / "mine.txt").read_text() == "keep me"


def test_missing_photos_are_reported_not_fatal(tmp_path, photos):
    paths = photos[:5] + [str(tmp_path / "gone.jpg")]
    summary = export_folders(_frame(paths, {}), tmp_path / "e", mode="symlink")
    assert summary["files"] == 5 and len(summary["errors"]) == 1 and "gone.jpg" in summary["errors"][0]["path"]


def test_tables_read_back_to_the_same_assignment_with_names(tmp_path, photos):
    names = {0: "=HYPERLINK(\"http://x\")", 1: "<img src=x onerror=alert(1)>.jpg", 2: "Zoë"}
    frame = _frame(photos, names)
    csv = export_table(frame, tmp_path / "faces.csv")
    back = pd.read_csv(csv, keep_default_na=False)
    assert back["cluster"].tolist() == frame["cluster"].tolist()
    assert back["name"].tolist()[0].startswith("'=")  # a spreadsheet will not run it
    assert back["name"].tolist()[2] == "<img src=x onerror=alert(1)>.jpg"  # data, kept as typed
    data = json.loads(export_table(frame, tmp_path / "faces.json").read_text())
    assert [r["cluster"] for r in data["faces"]] == frame["cluster"].tolist()
    assert [r["name"] for r in data["faces"]][4] == "Zoë" and data["faces"][5]["name"] == NOISE_NAME


def test_table_export_checks_its_format_and_folder(tmp_path, photos):
    frame = _frame(photos, {})
    with pytest.raises(ExportError):
        export_table(frame, tmp_path / "faces.xlsx")
    made = export_table(frame, tmp_path / "no" / "such" / "faces.csv")  # missing folders are made, as for folders
    assert made.is_file() and made.parent == tmp_path / "no" / "such"
    (tmp_path / "plain").write_text("a file")
    with pytest.raises(ExportError, match="is a file"):
        export_table(frame, tmp_path / "plain" / "faces.csv")
    with pytest.raises(ExportError):
        export_folders(frame, tmp_path / "e", mode="hardlink")
