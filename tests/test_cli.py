"""The ``facecluster`` command."""

from __future__ import annotations

import subprocess
import sys

from facecluster_widgets.cli import main


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


def test_extract_command(tmp_path, lfw10, capsys):
    assert main(["extract", str(lfw10), "--out", str(tmp_path / "s"), "--no-progress", "--detector", "whole"]) == 0
    out = capsys.readouterr().out
    assert "images:     100" in out and "faces:      100" in out


def test_evaluate_writes_the_report(tmp_path, lfw10, capsys):
    import shutil

    folder = tmp_path / "few"
    for person in sorted(p for p in lfw10.iterdir() if p.is_dir())[:3]:
        (folder / person.name).mkdir(parents=True)
        for photo in sorted(person.glob("*.jpg"))[:4]:
            shutil.copy(photo, folder / person.name / photo.name)
    out = tmp_path / "report"
    code = main(["evaluate", str(folder), "--out", str(out), "--stores", str(tmp_path / "stores"), "--no-progress",
                 "--methods", "hdbscan_2d", "2d_kmeans_true_k", "--embedder", "sface"])
    assert code == 0
    from facecluster_widgets import open_store

    assert open_store(tmp_path / "stores" / "few", create=False).read_json("run")["config"]["embedder"] == "sface"
    yaw = (out / "few_yaw.csv").read_text().splitlines()
    assert yaw[0].startswith("subset,method,faces,ari") and yaw[1].startswith("0-30°,hdbscan_2d,")
    table = (out / "few.csv").read_text().splitlines()
    assert table[0].startswith("method,ari,nmi,purity,silhouette")
    assert [line.split(",")[0] for line in table[1:]] == ["hdbscan_2d", "2d_kmeans_true_k"]
    assert "K-Means on 2D, true k" in (out / "report.md").read_text()
