"""What the user sees for each bad input: a Markdown table made by running ``extract()`` on generated files.

    .venv/bin/python benchmarks/bad_inputs_table.py              # default pipeline, ~30 s on 2 cores
    .venv/bin/python benchmarks/bad_inputs_table.py --keep DIR   # keep the photos and the store in DIR

Every file is generated in a temporary folder from real photos (lfw10, cfp100): the messy files of
:data:`support.messy.MESSY_FILES` and the hard faces of ``FACE_CASES``. One ``extract()`` runs
over all of them; each row shows the file's status and reason in ``store.errors`` / the faces table, or
what was read (format, mode, frames, EXIF orientation, faces, flags). When run as root, ``chmod 000`` does not
stop reading, so the permission case is simulated (``open`` raises ``PermissionError`` for that file only).
"""

from __future__ import annotations

import argparse
import builtins
import errno
import logging
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

import facecluster_widgets as fc
from facecluster_widgets.config import datasets_root
from facecluster_widgets.io.datasets import display_path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test-only helpers: tests/support/
from support.messy import FACE_CASES, MESSY_FILES, write_face_cases, write_messy_folder


@contextmanager
def deny_reading(name: str) -> Iterator[None]:
    """``open()`` of a file called ``name`` raises EACCES, as it would for a non-root user on a 0000 file."""
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, (str, bytes, os.PathLike)) and os.path.basename(os.fsdecode(file)) == name:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fsdecode(file))
        return real_open(file, *args, **kwargs)

    builtins.open = guarded
    try:
        yield
    finally:
        builtins.open = real_open


def build_folder(folder: Path, datasets: Path) -> None:
    people = sorted(p for p in (datasets / "lfw10").iterdir() if p.is_dir())
    photos = [sorted(p.glob("*.jpg"))[0] for p in people]
    cfp = sorted(p for p in (datasets / "cfp100").iterdir() if p.is_dir())[1]
    write_messy_folder(folder, photos[0])
    write_face_cases(folder, photos, sorted(cfp.glob("frontal_*"))[0], sorted(cfp.glob("profile_*"))[0])


def describe(name: str, images: pd.DataFrame, faces: pd.DataFrame) -> str:
    """One cell: the file's status and reason, or what was read from it."""
    rows = images[images["path"].map(lambda p: os.path.basename(p)) == display_path(name)]
    if rows.empty:
        return "not listed (not an image file name)"
    row = rows.iloc[0]
    if row["status"] != "ok":
        return f"**{row['status']}**: {row['reason']}"
    own = faces[faces["path"] == row["path"]]
    found = own[own["status"] == "ok"]
    read = f"read as {row['format']} {row['mode']}"
    if row["frames"] > 1:
        read += f", {row['frames']} frames (first used)"
    if row["exif_orientation"] != 1:
        read += f", EXIF orientation {row['exif_orientation']} applied ({row['width']}×{row['height']})"
    if found.empty:
        return f"{read}; **no_face**: {own['reason'].iloc[0]}"
    text = f"{read}; **{len(found)} face(s)**"
    per_face = []
    for face in found.itertuples():
        flags = [f"`{flag}`" for flag in ("small_face", "cut_by_border", "profile")
                 if not pd.isna(getattr(face, flag)) and bool(getattr(face, flag))]
        if not pd.isna(face.yaw):
            flags.append(f"yaw {abs(face.yaw):.0f}°")
        per_face.append(", ".join(flags) or "-")
    text += f" ({'; '.join(per_face)})" if len(found) <= 3 else ""
    if found["duplicate_of"].notna().any():
        text += f", `duplicate_of` = {found['duplicate_of'].dropna().iloc[0]} (computed once)"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, default=None, help="write into this (new) folder and keep it")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    datasets = datasets_root()
    if datasets is None or not (datasets / "lfw10").is_dir():
        print("needs the shared datasets (lfw10, cfp100): set FACECLUSTER_DATASETS", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        base = args.keep or Path(tmp)
        folder = base / "photos"
        build_folder(folder, datasets)
        simulated = os.geteuid() == 0
        started = time.perf_counter()
        with deny_reading("locked.jpg") if simulated else _nothing():
            store = fc.extract(folder, base / "store", progress=False)
        seconds = time.perf_counter() - started
        (folder / "locked.jpg").chmod(0o600)  # so the temporary folder can be removed
        images, faces, run, n_errors = store.images, store.table, store.read_json("run"), len(store.errors)
    print("| bad input | what the user sees (`store.errors`, faces table) |")
    print("|---|---|")
    for messy in MESSY_FILES:
        what = messy.what + (" — simulated: running as root" if simulated and messy.name == "locked.jpg" else "")
        print(f"| {what} | {describe(messy.name, images, faces).replace('|', '/')} |")
    for name, what in FACE_CASES.items():
        print(f"| {what} | {describe(name, images, faces).replace('|', '/')} |")
    print(f"\nSummary (run.json): {run['n_images']} images, {run['n_faces']} faces, {run['n_unreadable']} unreadable, "
          f"{run['n_skipped']} folder(s) skipped, {run['n_no_face']} without a face; the run finished in "
          f"{seconds:.1f} s. `store.errors` lists {n_errors} entries.")
    return 0


@contextmanager
def _nothing() -> Iterator[None]:
    yield


if __name__ == "__main__":
    sys.exit(main())
