"""Every common format decodes to the same RGB pixels; every bad file gives a reason, not a crash."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facecluster_widgets.errors import ImageReadError
from facecluster_widgets.io.images import decode_image, file_hash, probe_image, read_image, thumbnail


@pytest.fixture(scope="module")
def face_rgb(datasets_dir: Path) -> np.ndarray:
    path = sorted((datasets_dir / "lfw10").rglob("*.jpg"))[0]
    return read_image(path)


@pytest.mark.parametrize("ext,fmt,tolerance", [
    ("png", "PNG", 0), ("bmp", "BMP", 0), ("tif", "TIFF", 0), ("ppm", "PPM", 0),
    ("webp", "WEBP", 0), ("jpg", "JPEG", 12), ("gif", "GIF", 60),
])
def test_colour_formats_round_trip(tmp_path, face_rgb, ext, fmt, tolerance):
    path = tmp_path / f"face.{ext}"
    kwargs = {"lossless": True} if fmt == "WEBP" else {}
    Image.fromarray(face_rgb).save(path, **kwargs)
    rgb, info = decode_image(path)
    assert info.format == fmt
    assert rgb.shape == face_rgb.shape and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - face_rgb.astype(int)).mean() <= tolerance


def test_grey_pgm_becomes_three_equal_channels(tmp_path, face_rgb):
    grey = np.asarray(Image.fromarray(face_rgb).convert("L"))
    path = tmp_path / "face.pgm"
    Image.fromarray(grey).save(path)
    rgb, info = decode_image(path)
    assert info.mode == "L"
    assert np.array_equal(rgb[..., 0], grey) and np.array_equal(rgb[..., 1], rgb[..., 2])


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_sixteen_bit_is_scaled_not_clipped(tmp_path, ext):
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
    path = tmp_path / f"deep.{ext}"
    Image.fromarray(ramp).save(path)
    rgb = read_image(path)
    assert rgb[..., 0].min() == 0 and rgb[..., 0].max() == 255
    assert np.all(np.diff(rgb[0, :, 0].astype(int)) >= 0)  # the ramp stays a ramp


def test_rgba_is_composited_on_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half fully transparent
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path)
    rgb, info = decode_image(path)
    assert info.mode == "RGBA"
    assert tuple(rgb[0, 0]) == (200, 0, 0) and tuple(rgb[3, 3]) == (255, 255, 255)


def test_cmyk_and_palette_decode(tmp_path, face_rgb):
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(face_rgb).convert("CMYK").save(cmyk)
    assert decode_image(cmyk)[1].mode == "CMYK"
    assert np.abs(read_image(cmyk).astype(int) - face_rgb.astype(int)).mean() < 20
    pal = tmp_path / "pal.png"
    Image.fromarray(face_rgb).convert("P").save(pal)
    assert read_image(pal).shape == face_rgb.shape


def test_exif_orientation_is_applied(tmp_path):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=100)
    rgb, info = decode_image(path)
    assert info.exif_orientation == 6
    assert rgb.shape[:2] == (40, 20)  # portrait once displayed
    assert rgb[:20].mean() > 200 and rgb[20:].mean() < 50  # the white half is now on top


def test_animated_gif_gives_first_frame(tmp_path):
    frames = [Image.new("L", (8, 8), v) for v in (10, 240)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    rgb, info = decode_image(path)
    assert info.frames == 2 and abs(int(rgb.mean()) - 10) <= 2


@pytest.mark.parametrize("content,expected", [
    (b"", "empty file"),
    (b"this is a text file, not a photo\n", "not an image format"),
])
def test_bad_bytes_give_reasons(tmp_path, content, expected):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=expected) as info:
        read_image(path)
    assert info.value.path == str(path)


def test_truncated_jpeg_is_reported(tmp_path, face_rgb):
    path = tmp_path / "cut.jpg"
    Image.fromarray(face_rgb).save(path)
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(ImageReadError, match="truncated|damaged"):
        read_image(path)


def _png_claiming_size(path: Path, width: int, height: int) -> None:
    """A tiny PNG whose header claims ``width`` x ``height``: a decompression bomb's calling card."""
    raw = zlib.compress(b"\x00" * 2)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    _png_claiming_size(path, 20_000, 20_000)
    with pytest.raises(ImageReadError, match="MP"):
        probe_image(path)
    _png_claiming_size(path, 9_000, 9_000)  # 81 MP: under Pillow's own limit, over ours
    with pytest.raises(ImageReadError, match="above the 80 MP limit"):
        probe_image(path)


def test_missing_and_folder_paths(tmp_path):
    with pytest.raises(ImageReadError, match="file not found"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="folder"):
        read_image(tmp_path)


def test_hash_depends_on_content_only(tmp_path):
    a, b, c = tmp_path / "a.bin", tmp_path / "b.bin", tmp_path / "c.bin"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    c.write_bytes(b"other")
    assert file_hash(a) == file_hash(b) != file_hash(c)
    assert len(file_hash(a)) == 32


def test_thumbnail_keeps_aspect(face_rgb):
    wide = np.concatenate([face_rgb, face_rgb], axis=1)
    thumb = thumbnail(wide, 64)
    assert thumb.shape == (32, 64, 3)


def test_every_shared_dataset_format_reads(datasets_dir):
    for name, fmt in (("orl", "PGM"), ("yale", "GIF"), ("lfw10", "JPEG")):
        first = next(p for p in sorted((datasets_dir / name).rglob("*")) if p.is_file() and p.suffix != ".md")
        rgb, info = decode_image(first)
        assert info.format == fmt and rgb.ndim == 3 and rgb.shape[2] == 3
