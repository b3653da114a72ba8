"""The ``facecluster`` command."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from facecluster_widgets.cli import main
from facecluster_widgets.nativelog import NOISE
from facecluster_widgets.store import open_store

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_help_lists_the_commands():
    out = subprocess.run([sys.executable, "-m", "facecluster_widgets.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert "info" in out and "extract" in out


def test_info_on_yale(yale, capsys):
    assert main(["info", str(yale), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "images:     164" in out and "identities: 15" in out and "GIF 164" in out
    assert "unreadable: none" in out


def test_info_reports_unreadable_files(tmp_path, capsys):
    (tmp_path / "bad.jpg").write_text("nope")
    (tmp_path / "empty.gif").write_bytes(b"")
    assert main(["info", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "unreadable: 2" in out and "bad.jpg: not an image format" in out and "empty.gif: empty file" in out


def test_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err


@pytest.mark.slow
def test_extract_command(tmp_path, lfw10, capsys):
    assert main(["extract", str(lfw10), "--out", str(tmp_path / "s"), "--no-progress", "--detector", "whole"]) == 0
    out = capsys.readouterr().out
    assert "images:     100" in out and "faces:      100" in out


def _few(dataset: Path, folder: Path, people: int = 3, photos: int = 4) -> Path:
    for person in sorted(p for p in dataset.iterdir() if p.is_dir())[:people]:
        (folder / person.name).mkdir(parents=True)
        for photo in sorted(person.iterdir())[:photos]:
            shutil.copy(photo, folder / person.name / photo.name)
    return folder


@pytest.mark.slow
def test_evaluate_writes_the_report_and_reuses_every_store(tmp_path, lfw10, yale, capsys):
    few, other = _few(lfw10, tmp_path / "few"), _few(yale, tmp_path / "other")
    out, stores = tmp_path / "report", tmp_path / "stores"
    methods = ["--methods", "hdbscan_2d", "2d_kmeans_true_k", "--embedder", "sface"]
    code = main(["evaluate", str(few), "--out", str(out), "--stores", str(stores), "--no-progress", *methods])
    assert code == 0
    assert re.search(r"store few: .*stores/few \([1-9]\d* recomputed", capsys.readouterr().out)
    assert open_store(stores / "few", create=False).read_json("run")["config"]["embedder"] == "sface"
    yaw = (out / "few_yaw.csv").read_text().splitlines()
    assert yaw[0].startswith("subset,method,faces,ari") and yaw[1].startswith("0-30°,hdbscan_2d,")
    table = (out / "few.csv").read_text().splitlines()
    assert table[0].startswith("method,ari,nmi,purity,silhouette")
    assert [line.split(",")[0] for line in table[1:]] == ["hdbscan_2d", "2d_kmeans_true_k"]
    report = (out / "report.md").read_text()
    assert "K-Means on 2D, true k" in report
    assert re.search(r"\| K-Means on 2D, true k \(reference\) \|.*\| 3 \| 3 \| [0-9.]+ \|", report)  # integer counts

    # the merged protocol extracts only the dataset it has not seen, then reuses both stores
    assert main(["evaluate", str(few), str(other), "--protocol", "merged", "--out", str(out), "--stores",
                 str(stores), "--no-progress", *methods]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"store few: .* \(0 recomputed", printed) and re.search(r"store other: .* \([1-9]", printed)
    assert re.search(r"store merged: .*stores/merged \(0 recomputed", printed)
    assert (out / "merged.csv").is_file()

    # a store made by extract is used as it is, wherever it lives
    assert main(["evaluate", str(stores / "few"), "--out", str(tmp_path / "again"), "--no-progress", *methods]) == 0
    assert "store few: " in capsys.readouterr().out and (tmp_path / "again" / "few.csv").is_file()


def _facecluster(*args: str) -> subprocess.CompletedProcess:
    """The installed command as a user runs it: a fresh process, stderr as the terminal would show it."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "facecluster_widgets.cli", *args], capture_output=True, text=True,
                          env=env, timeout=1200)


@pytest.mark.slow
def test_cluster_a_folder_then_rerun_from_its_store(tmp_path, lfw10):
    out = tmp_path / "out"
    first = _facecluster("cluster", str(lfw10), "--out", str(out), "--no-progress", "--export", "links")
    assert first.returncode == 0, first.stderr
    assert re.search(r"work done:  [1-9]\d* recomputed", first.stdout)
    for noise in NOISE:  # mediapipe / TensorFlow Lite start-up lines stay out of the terminal
        assert noise not in first.stderr
    assert first.stderr.strip() == "", first.stderr
    store = open_store(out / "store", create=False)
    faces = store.table.loc[store.table["status"] == "ok"]
    rows = pd.read_csv(out / "clusters.csv")
    assert list(rows.columns) == ["file", "face_index", "x0", "y0", "x1", "y1", "cluster", "name",
                                  "distance_to_centre"]
    assert len(rows) == len(faces) == store.read_json("run")["n_faces"]
    assert rows["file"].tolist() == faces["path"].tolist()
    assert rows["face_index"].tolist() == faces["face_index"].tolist()
    found = int(re.search(r"people found:  (\d+)", first.stdout).group(1))
    assert found == rows.loc[rows["cluster"] >= 0, "cluster"].nunique() >= 2
    assert f"faces in none: {int((rows['cluster'] < 0).sum())} of {len(rows)}" in first.stdout
    ari = float(re.search(r"scores: +silhouette [0-9.]+; against the folder names \(\d+ faces\): ARI ([0-9.]+)",
                          first.stdout).group(1))
    assert ari > 0.9  # lfw10's folders name the people: the defaults find them
    assert rows.loc[rows["cluster"] >= 0, "distance_to_centre"].between(0, 2).all()
    assert rows.loc[rows["cluster"] < 0, "distance_to_centre"].isna().all()
    links = sorted((out / "clusters").rglob("*.jpg"))
    assert links and all(p.is_symlink() and p.resolve().is_relative_to(lfw10.resolve()) for p in links)

    again = _facecluster("cluster", str(lfw10), "--out", str(out), "--no-progress")
    assert again.returncode == 0, again.stderr
    assert re.search(r"work done:  0 recomputed, [1-9]\d* reused from the store", again.stdout)
    assert pd.read_csv(out / "clusters.csv").equals(rows)  # same store, same defaults: the same table
    refused = _facecluster("cluster", str(lfw10), "--out", str(out), "--no-progress", "--export", "copy")
    assert refused.returncode == 2 and "holds an earlier export" in refused.stderr


def test_cluster_refuses_an_output_folder_inside_the_photos(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    assert main(["cluster", str(tmp_path / "photos"), "--out", str(tmp_path / "photos" / "out")]) == 2
    assert "is inside PHOTOS" in capsys.readouterr().err and not (tmp_path / "photos" / "out").exists()


@pytest.mark.slow
def test_extract_names_each_image_without_a_face(tmp_path, lfw10, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (160, 120), (90, 140, 200)).save(folder / "sky.png")
    shutil.copy(next(iter(sorted(lfw10.rglob("*.jpg")))), folder / "face.jpg")
    assert main(["extract", str(folder), "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"no face:    1\n  .*sky\.png: ", out), out
    assert "work done:  " in out and "unreadable: 0\n" in out
