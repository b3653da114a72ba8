"""A folder of the messy files real photo collections hold, generated on demand from one real photo.

Why: the toolkit promises that every such file gets a row with a reason and never stops a run. The tests
and ``benchmarks/bad_inputs_table.py`` build this folder in a temporary directory and run ``extract()`` on
it, so the promise is checked on real bytes, not on mocks. Nothing here is written unless asked, and only
under the folder given.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

#: Side of the decompression-bomb PNG: 20,000 x 20,000 = 400 MP (1.2 GB once decoded as RGB), stored in ~50 kB.
BOMB_SIDE = 20_000
#: A name of 255 bytes, the longest most file systems allow (ext4, APFS, NTFS in UTF-16 units).
LONG_NAME = "long_" + "n" * 246 + ".jpg"
#: A Latin-1 encoded name ("café.jpg"): not valid UTF-8, as old cameras, zip files and Windows shares leave them.
NON_UTF8_NAME = b"caf\xe9.jpg"
#: A damaged file with a Latin-1 name: its reason must be recorded under a name the table can hold.
NON_UTF8_DAMAGED = b"d\xe9fectueux.jpg"


@dataclass(frozen=True)
class MessyFile:
    """One bad input: the file name it gets, what it is, and how to write it (``write(folder, photo) -> path``)."""

    name: str
    what: str
    write: Callable[[Path, np.ndarray, bytes], Path]


def _reencoded(rgb: np.ndarray, quality: int) -> bytes:
    """The photo as a JPEG of its own bytes, so each case is a distinct image (not a duplicate of another)."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _save(path: Path, im: Image.Image, **kwargs: object) -> Path:
    im.save(path, **kwargs)
    return path


def _zero_bytes(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    path = folder / "zero_bytes.jpg"
    path.write_bytes(b"")
    return path


def _truncated_jpeg(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    path = folder / "truncated.jpg"
    path.write_bytes(jpeg[: len(jpeg) // 2])
    return path


def _truncated_png(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    path = _save(folder / "truncated.png", Image.fromarray(rgb))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _text_as_jpeg(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    path = folder / "notes.jpg"
    path.write_text("shopping list: milk, eggs\n")
    return path


def _bomb(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    path = folder / "bomb_20000x20000.png"
    write_png_bomb(path, BOMB_SIDE, BOMB_SIDE)
    return path


def _cmyk(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    return _save(folder / "cmyk.jpg", Image.fromarray(rgb).convert("CMYK"), quality=95)


def _sixteen_bit(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    grey = np.asarray(Image.fromarray(rgb).convert("L")).astype(np.uint16) * 257
    return _save(folder / "grey_16bit.png", Image.fromarray(grey))


def _palette_gif(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    return _save(folder / "palette.gif", Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE))


def _animated_gif(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    first = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE)
    blank = Image.new("P", first.size, 0)
    return _save(folder / "animated.gif", first, save_all=True, append_images=[blank], duration=200, loop=0)


def _rgba(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[: rgb.shape[0] // 8, :, 3] = 0  # a transparent band at the top, as cut-outs have
    return _save(folder / "transparent.png", Image.fromarray(rgba, "RGBA"))


def _exif_rotated(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    """Stored sideways with orientation 6 ("rotate 90° clockwise to display"), as phones write portraits."""
    exif = Image.Exif()
    exif[0x0112] = 6
    sideways = Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_90)
    return _save(folder / "exif_rotated.jpg", sideways, exif=exif, quality=95)


def _exif_invalid(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    """An orientation tag outside 1..8 (written by buggy editors): must be ignored, not crash the rotation."""
    exif = Image.Exif()
    exif[0x0112] = 42
    return _save(folder / "exif_invalid.jpg", Image.fromarray(rgb), exif=exif, quality=95)


def _non_utf8_name(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    raw = os.path.join(os.fsencode(folder), NON_UTF8_NAME)
    with open(raw, "wb") as fh:
        fh.write(_reencoded(rgb, 90))
    return Path(os.fsdecode(raw))


def _non_utf8_damaged(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    raw = os.path.join(os.fsencode(folder), NON_UTF8_DAMAGED)
    with open(raw, "wb") as fh:
        fh.write(jpeg[:100])
    return Path(os.fsdecode(raw))


def _long_name(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    path = folder / LONG_NAME
    path.write_bytes(_reencoded(rgb, 85))
    return path


def _symlink_loop(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    a, b = folder / "loop_a.jpg", folder / "loop_b.jpg"
    a.symlink_to(b.name)
    b.symlink_to(a.name)
    return a


def _folder_loop(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    path = folder / "loop_dir"
    path.symlink_to(".", target_is_directory=True)
    return path


def _dangling_link(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    path = folder / "moved_away.jpg"
    path.symlink_to("no_such_file.jpg")
    return path


def _unreadable(folder: Path, rgb: np.ndarray, jpeg: bytes) -> Path:
    path = folder / "locked.jpg"
    path.write_bytes(_reencoded(rgb, 80))
    path.chmod(0)
    return path


#: Every bad input, in the order of the table in the closing note of issue 7.
MESSY_FILES: tuple[MessyFile, ...] = (
    MessyFile("zero_bytes.jpg", "zero-byte file", _zero_bytes),
    MessyFile("truncated.jpg", "truncated JPEG (second half missing)", _truncated_jpeg),
    MessyFile("truncated.png", "truncated PNG (second half missing)", _truncated_png),
    MessyFile("notes.jpg", "text file named .jpg", _text_as_jpeg),
    MessyFile("bomb_20000x20000.png", "20,000 × 20,000 PNG (decompression bomb, 50 kB on disk)", _bomb),
    MessyFile("cmyk.jpg", "CMYK JPEG", _cmyk),
    MessyFile("grey_16bit.png", "16-bit greyscale PNG", _sixteen_bit),
    MessyFile("palette.gif", "palette GIF", _palette_gif),
    MessyFile("animated.gif", "animated GIF (2 frames)", _animated_gif),
    MessyFile("transparent.png", "RGBA PNG with a transparent band", _rgba),
    MessyFile("exif_rotated.jpg", "stored sideways, EXIF orientation 6", _exif_rotated),
    MessyFile("exif_invalid.jpg", "EXIF orientation 42 (invalid)", _exif_invalid),
    MessyFile(os.fsdecode(NON_UTF8_NAME), "non-UTF-8 file name (Latin-1 `caf\\xe9.jpg`)", _non_utf8_name),
    MessyFile(os.fsdecode(NON_UTF8_DAMAGED), "truncated JPEG with a non-UTF-8 name (`d\\xe9fectueux.jpg`)",
              _non_utf8_damaged),
    MessyFile(LONG_NAME, "255-byte file name", _long_name),
    MessyFile("loop_a.jpg", "symbolic link loop (file: a → b → a)", _symlink_loop),
    MessyFile("loop_dir", "symbolic link loop (folder → its parent)", _folder_loop),
    MessyFile("moved_away.jpg", "dangling symbolic link", _dangling_link),
    MessyFile("locked.jpg", "unreadable permissions (chmod 000)", _unreadable),
)


def write_messy_folder(folder: str | os.PathLike, photo: str | os.PathLike,
                       only: set[str] | None = None) -> dict[str, Path]:
    """Write every :data:`MESSY_FILES` entry (or those named in ``only``) into ``folder``, made from the real
    face photo ``photo``; returns ``name -> path``. ``folder`` must not already hold them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = Path(photo).read_bytes()
    with Image.open(photo) as im:
        rgb = np.asarray(im.convert("RGB"))
    return {m.name: m.write(folder, rgb, jpeg) for m in MESSY_FILES if only is None or m.name in only}


def write_png_bomb(path: str | os.PathLike, width: int, height: int) -> None:
    """A VALID black 1-bit PNG of ``width`` x ``height``: its zeros compress ~1000:1, so a 400 MP image costs a
    few tens of kB on disk and ~0.2 s to write (rows are compressed one block at a time, never held whole)."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    rows_per_block = max(1, (1 << 22) // len(row))
    parts = []
    for start in range(0, height, rows_per_block):
        parts.append(compressor.compress(row * min(rows_per_block, height - start)))
    parts.append(compressor.flush())

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1-bit greyscale
    with open(path, "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


#: Photos whose faces are hard rather than whose files are bad: name → what it is. Written by :func:`write_face_cases`.
FACE_CASES: dict[str, str] = {
    "no_face_noise.png": "no face (random noise)",
    "no_face_one_pixel.png": "no face (a 1 × 1 image)",
    "collage_3x3.jpg": "many faces (3 × 3 collage of 9 people)",
    "tiny_24px.png": "tiny face (24 px in a 640 × 480 photo)",
    "tiny_48px.png": "small face (48 px in a 640 × 480 photo)",
    "cut_left.jpg": "face cut by the left border (a quarter missing)",
    "cut_bottom.jpg": "face cut by the bottom border (chin missing)",
    "duplicate_a.jpg": "duplicated photo (first copy)",
    "duplicate_b.jpg": "duplicated photo (identical bytes)",
    "frontal.jpg": "frontal face (cfp100)",
    "profile.jpg": "profile face (cfp100, ~90° yaw)",
}


def write_face_cases(folder: str | os.PathLike, photos: list[str | os.PathLike], frontal: str | os.PathLike,
                     profile: str | os.PathLike) -> dict[str, Path]:
    """Write :data:`FACE_CASES` into ``folder``. ``photos``: at least 9 photos of different people, LFW-style
    (250 × 250, face centred), the first one reused for the tiny, cut and duplicate cases; ``frontal`` and
    ``profile``: one person's frontal and profile photo (cfp100). Returns ``name -> path``."""
    if len(photos) < 9:
        raise ValueError(f"write_face_cases needs 9 photos of different people, got {len(photos)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {name: folder / name for name in FACE_CASES}
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((240, 320, 3)) * 255).astype(np.uint8)).save(out["no_face_noise.png"])
    Image.new("RGB", (1, 1), (128, 128, 128)).save(out["no_face_one_pixel.png"])
    faces = [_rgb(p) for p in photos[:9]]
    tile = 150
    collage = Image.new("RGB", (3 * tile, 3 * tile))
    for i, rgb in enumerate(faces):
        h, w = rgb.shape[:2]
        top, left = max(0, (h - tile) // 2), max(0, (w - tile) // 2)
        collage.paste(Image.fromarray(rgb[top:top + tile, left:left + tile]), ((i % 3) * tile, (i // 3) * tile))
    collage.save(out["collage_3x3.jpg"], quality=95)
    first = faces[0]
    h, w = first.shape[:2]
    centre = Image.fromarray(first[int(0.24 * h):int(0.76 * h), int(0.24 * w):int(0.76 * w)])
    for side in (24, 48):
        canvas = Image.new("RGB", (640, 480), (120, 120, 120))
        canvas.paste(centre.resize((side, side), Image.Resampling.LANCZOS), (300, 200))
        canvas.save(out[f"tiny_{side}px.png"])
    Image.fromarray(np.ascontiguousarray(first[:, int(0.4 * w):])).save(out["cut_left.jpg"], quality=95)
    Image.fromarray(np.ascontiguousarray(first[: int(0.64 * h)])).save(out["cut_bottom.jpg"], quality=95)
    for name in ("duplicate_a.jpg", "duplicate_b.jpg"):
        out[name].write_bytes(Path(photos[1]).read_bytes())
    out["frontal.jpg"].write_bytes(Path(frontal).read_bytes())
    out["profile.jpg"].write_bytes(Path(profile).read_bytes())
    return out


def _rgb(path: str | os.PathLike) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))
