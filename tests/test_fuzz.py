"""Fuzzing (hypothesis, bounded): the image loader and the store reader turn ANY bytes into a result or the
toolkit's own documented error (ImageReadError / StoreError, both FaceclusterError), never another exception.

Inputs: arbitrary bytes, and real files (a face from lfw10 in every format the loader reads, a real store
entry, table, array, JSON) with bytes flipped, cut, duplicated and inserted. Each test has a fixed example
budget (300 each) and no deadline, so the whole file stays within ~20 s; ``pytest -s`` prints the cases run.
"""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from facecluster_widgets.errors import FaceclusterError, ImageReadError, StoreError
from facecluster_widgets.io.images import decode_image
from facecluster_widgets.store import Stage, open_store, read_npz

pytestmark = pytest.mark.slow  # hypothesis fuzzing

CASES: Counter[str] = Counter()
#: Examples per fuzz target; FACECLUSTER_FUZZ_EXAMPLES=5000 runs a longer hunt locally (the CI budget is 300).
EXAMPLES = int(os.environ.get("FACECLUSTER_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _face(datasets_dir: Path) -> np.ndarray:
    path = sorted((datasets_dir / "lfw10").rglob("*.jpg"))[0]
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((48, 48)))


@pytest.fixture(scope="module")
def image_seeds(datasets_dir) -> list[bytes]:
    """A real face, small, in every format and mode the loader meets."""
    rgb = _face(datasets_dir)
    im = Image.fromarray(rgb)
    seeds = []

    def add(image: Image.Image, fmt: str, **kwargs: object) -> None:
        buffer = io.BytesIO()
        image.save(buffer, format=fmt, **kwargs)
        seeds.append(buffer.getvalue())

    exif = Image.Exif()
    exif[0x0112] = 6
    add(im, "JPEG", quality=80, exif=exif)
    add(im.convert("CMYK"), "JPEG")
    add(im, "PNG")
    add(Image.fromarray(np.asarray(im.convert("L")).astype(np.uint16) * 257), "PNG")
    add(im.convert("RGBA"), "PNG")
    add(im.convert("P"), "GIF", save_all=True, append_images=[im.convert("P").rotate(90)])
    add(im, "TIFF")
    add(im, "BMP")
    add(im, "WEBP", lossless=True)
    add(im.convert("L"), "PPM")
    return seeds


@st.composite
def mutations(draw, seeds: list[bytes]) -> bytes:
    """A seed with 1-8 random edits: flipped bytes, a cut, a duplicated or an inserted run."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["flip", "set", "cut", "dup", "insert", "truncate"]))
        if op == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
        elif op == "cut":
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "dup":
            data[at:at] = data[at:at + draw(st.integers(1, 64))]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at:]
    return bytes(data)


def _decode(path: Path, data: bytes, kind: str) -> None:
    path.write_bytes(data)
    CASES[kind] += 1
    try:
        rgb, info = decode_image(path)
    except ImageReadError as exc:
        assert exc.path == str(path) and exc.reason
        return
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.shape[:2] == (info.height, info.width) and rgb.flags["C_CONTIGUOUS"]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(data=st.binary(max_size=2048))
def test_loader_on_arbitrary_bytes(scratch, data):
    _decode(scratch / "any.jpg", data, "loader: arbitrary bytes")


@FUZZ
@given(prefix=st.sampled_from([b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
                               b"RIFF\x00\x00\x00\x00WEBP", b"P5\n", b"P6\n"]), rest=st.binary(max_size=512))
def test_loader_on_bytes_behind_a_real_magic_number(scratch, prefix, rest):
    _decode(scratch / "magic.png", prefix + rest, "loader: magic number + arbitrary bytes")


@FUZZ
@given(data=st.data())
def test_loader_on_mutated_real_images(scratch, image_seeds, data):
    _decode(scratch / "mutated.img", data.draw(mutations(image_seeds)), "loader: mutated real image")


@pytest.fixture(scope="module")
def store_seeds(scratch) -> dict[str, bytes]:
    """Real store files: a stage entry, a faces-like table, an array, a JSON report."""
    store = open_store(scratch / "seed-store")
    store.put(Stage("embed", 1), "ab" * 16, {"embedding": np.random.default_rng(0).normal(size=(2, 8))},
              {"failed": 0, "sources": ["mediapipe"]})
    store.write_table("faces", pd.DataFrame({"face_id": ["a-0", "b-0"], "x0": [1.5, 2.0],
                                             "label": pd.array(["x", None], dtype="string")}))
    store.write_array("feature_2d", np.eye(4, dtype=np.float32))
    store.write_json("run", {"n_faces": 2, "stages": {"embed": "embed-v1"}})
    root = store.root
    return {"npz": next((root / "objects").rglob("*.npz")).read_bytes(),
            "parquet": (root / "tables" / "faces.parquet").read_bytes(),
            "npy": (root / "arrays" / "feature_2d.npy").read_bytes(),
            "json": (root / "run.json").read_bytes()}


def _read_all(root: Path, kind: str, data: bytes) -> None:
    """Write ``data`` as one store file of ``kind`` and read it through the public reader."""
    store = open_store(root)
    CASES[f"store: {kind}"] += 1
    try:
        if kind == "npz":
            path = root / "entry.npz"
            path.write_bytes(data)
            result = read_npz(path)
            assert isinstance(result.meta, dict) and all(a.dtype != object for a in result.arrays.values())
        elif kind == "parquet":
            (root / "tables").mkdir(exist_ok=True)
            (root / "tables" / "faces.parquet").write_bytes(data)
            assert isinstance(store.read_table("faces"), pd.DataFrame)
        elif kind == "npy":
            (root / "arrays").mkdir(exist_ok=True)
            (root / "arrays" / "feature_2d.npy").write_bytes(data)
            assert store.read_array("feature_2d").dtype != object
        elif kind == "json":
            (root / "run.json").write_bytes(data)
            assert isinstance(store.read_json("run"), dict)
        else:  # the store marker: opening a store with a damaged marker
            (root / "STORE.json").write_bytes(data)
            open_store(root, create=False)
    except StoreError as exc:
        assert str(exc)
    finally:
        (root / "STORE.json").write_text(json.dumps({"format": "facecluster-store", "version": 1}))


@FUZZ
@given(kind=st.sampled_from(["npz", "parquet", "npy", "json", "marker"]), data=st.binary(max_size=1024))
def test_store_reader_on_arbitrary_bytes(scratch, kind, data):
    _read_all(scratch / "arbitrary", kind, data)


@FUZZ
@given(kind=st.sampled_from(["npz", "parquet", "npy", "json"]), data=st.data())
def test_store_reader_on_mutated_real_files(scratch, store_seeds, kind, data):
    _read_all(scratch / "mutated", kind, data.draw(mutations([store_seeds[kind]])))


def test_report_fuzz_cases():
    """Not a check: prints how many inputs each fuzz target saw (run with ``-s``)."""
    total = sum(CASES.values())
    print("\nfuzz cases: " + ", ".join(f"{k} {v}" for k, v in sorted(CASES.items())) + f"; total {total}")
    assert issubclass(ImageReadError, FaceclusterError) and issubclass(StoreError, FaceclusterError)
