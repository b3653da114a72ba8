"""Decode any common image file into RGB pixels, safely.

Pillow does the decoding (OpenCV cannot read GIF). Every failure becomes an :class:`ImageReadError`
whose ``reason`` is a sentence a user can act on; nothing here mutates Pillow's global settings.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..config import MAX_IMAGE_PIXELS, THUMBNAIL_SIZE
from ..errors import ImageReadError

_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageInfo:
    """What a file turned out to be; ``width``/``height`` are after EXIF rotation."""

    format: str
    mode: str
    width: int
    height: int
    frames: int
    exif_orientation: int

    def to_dict(self) -> dict:
        return asdict(self)


def file_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Content hash (BLAKE2b, 128 bit, hex) that keys every stored result of an image."""
    digest = hashlib.blake2b(digest_size=16)
    try:
        with open(path, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
    except OSError as exc:
        raise ImageReadError(path, _os_reason(exc)) from exc
    return digest.hexdigest()


def decode_image(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[np.ndarray, ImageInfo]:
    """Return ``(rgb, info)``: an ``(H, W, 3)`` uint8 array with EXIF orientation applied.

    Grey, palette, 16-bit, CMYK and transparent images all come back as 8-bit RGB; ``info.mode``
    keeps the original mode so later stages can tell a grey photo from a colour one. Animated
    files give their first frame.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageReadError(path, _os_reason(exc)) from exc
    if path.is_dir():
        raise ImageReadError(path, "is a folder, not an image file")
    if size == 0:
        raise ImageReadError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Our own pixel limit applies below; Pillow's warning would only duplicate it.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Damaged EXIF/TIFF tags ("Corrupt EXIF data"...): the photo is still read, orientation taken as 1.
            warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
            with Image.open(path) as im:
                return _decode_open_image(path, im, max_pixels)
    except ImageReadError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's own, harder limit (2 x 89 MP) struck first
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = int(found.group(1)) if found else 0
        size = f"{pixels / 1e6:.0f} MP" if pixels else "too large"
        raise ImageReadError(path, f"image is {size}, above the {min(max_pixels, Image.MAX_IMAGE_PIXELS * 2) / 1e6:.0f}"
                                   " MP limit (a guard against decompression bombs); not decoded") from exc
    except UnidentifiedImageError as exc:
        raise ImageReadError(path, "not an image format Pillow can read (unknown type or damaged header)") from exc
    except OSError as exc:
        raise ImageReadError(path, _os_reason(exc)) from exc
    except (SyntaxError, ValueError, EOFError, IndexError, TypeError, MemoryError) as exc:
        raise ImageReadError(path, f"damaged image data ({type(exc).__name__}: {exc})") from exc


def read_image(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """The RGB pixels of ``path`` (see :func:`decode_image`)."""
    return decode_image(path, max_pixels)[0]


def probe_image(path: str | os.PathLike, max_pixels: int = MAX_IMAGE_PIXELS) -> ImageInfo:
    """Fully decode ``path`` (to catch truncation) and return only what it is."""
    return decode_image(path, max_pixels)[1]


def thumbnail(rgb: np.ndarray, size: int = THUMBNAIL_SIZE) -> np.ndarray:
    """A copy of ``rgb`` whose longest side is at most ``size`` pixels, aspect ratio kept."""
    im = Image.fromarray(rgb)
    im.thumbnail((size, size), Image.Resampling.LANCZOS)
    return np.asarray(im)


def _decode_open_image(path: Path, im: Image.Image, max_pixels: int) -> tuple[np.ndarray, ImageInfo]:
    width, height = im.size
    if width * height > max_pixels:
        raise ImageReadError(
            path,
            f"image is {width}x{height} = {width * height / 1e6:.0f} MP, above the "
            f"{max_pixels / 1e6:.0f} MP limit (a guard against decompression bombs; "
            "pass a larger max_pixels to accept it)",
        )
    if width == 0 or height == 0:
        raise ImageReadError(path, f"image has no pixels ({width}x{height})")
    fmt = _format_name(im, path)
    frames = int(getattr(im, "n_frames", 1) or 1)
    if frames > 1:
        im.seek(0)
    orientation = _orientation(im)
    mode = im.mode
    im.load()
    im = _apply_orientation(im, orientation)
    rgb = _to_rgb8(im)
    info = ImageInfo(format=fmt, mode=mode, width=rgb.shape[1], height=rgb.shape[0], frames=frames,
                     exif_orientation=orientation)
    return rgb, info


def _format_name(im: Image.Image, path: Path) -> str:
    fmt = im.format or path.suffix.lstrip(".").upper()
    if fmt == "PPM":  # Pillow names the whole Netpbm family PPM; users know their files as PBM/PGM/PPM
        return {"1": "PBM", "L": "PGM", "I": "PGM", "I;16": "PGM", "I;16B": "PGM"}.get(im.mode, "PPM")
    return fmt


def _orientation(im: Image.Image) -> int:
    try:
        value = int(im.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:  # a damaged EXIF block must not cost the user the photo
        return 1
    return value if 1 <= value <= 8 else 1


def _apply_orientation(im: Image.Image, orientation: int) -> Image.Image:
    if orientation == 1:
        return im
    transposed = ImageOps.exif_transpose(im)
    return transposed if transposed is not None else im


def _to_rgb8(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im)
        if mode == "F":
            arr = np.nan_to_num(arr.astype(np.float64))
            top = 1.0 if arr.max(initial=0.0) <= 1.0 else float(arr.max())
        elif mode.startswith("I;16"):
            top = 65535.0
        else:  # 32-bit integer images: Pillow stores 16-bit PGM/PNG data here
            top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        grey = np.clip(arr.astype(np.float64) * (255.0 / top), 0, 255).round().astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    return np.ascontiguousarray(np.asarray(im.convert("RGB"), dtype=np.uint8))


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied (the file is not readable by this user)"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not an image file"
    text = str(exc)
    if any(mark in text.lower() for mark in ("truncated", "broken data stream", "premature end")):
        return f"truncated or damaged image data ({text})"
    if getattr(exc, "errno", None) == 40:  # ELOOP
        return "symbolic link loop"
    return f"cannot read the file ({type(exc).__name__}: {text})"
