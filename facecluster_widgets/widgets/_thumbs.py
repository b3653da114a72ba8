"""Face pictures for the widgets: PNG/JPEG bytes for ``ipywidgets.Image``, data URIs for the gallery, landmarks
drawn on photos, and the HTML-escaping every file or cluster name goes through before it reaches a page."""

from __future__ import annotations

import base64
import html
import io
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ..detect import Detection
from ..review.collection import FaceCollection

#: Gallery thumbnails, in pixels (a 112-px crop shrunk; JPEG keeps 300 of them under 1 MB).
GALLERY_SIZE = 64
#: A grey square shown where a face has no picture (features-only collections).
_BLANK = np.full((8, 8, 3), 200, np.uint8)


def esc(text: object) -> str:
    """HTML-escape anything shown in an ``ipywidgets.HTML``: file names and cluster names are user data."""
    return html.escape(str(text), quote=True)


def encode(rgb: np.ndarray, fmt: str = "png", size: int | None = None) -> bytes:
    """Image bytes of an RGB (or grey) uint8 array, shrunk so its longest side is at most ``size``."""
    im = Image.fromarray(np.ascontiguousarray(rgb))
    if size is not None and max(im.size) > size:
        im.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG" if fmt == "jpeg" else "PNG", **({"quality": 85} if fmt == "jpeg" else {}))
    return buf.getvalue()


def data_uri(data: bytes, fmt: str = "png") -> str:
    return f"data:image/{fmt};base64," + base64.b64encode(data).decode("ascii")


def draw_landmarks(rgb: np.ndarray, detection: Detection | None, radius: float | None = None) -> np.ndarray:
    """A copy of the photo with the face box (green), the 68 landmarks (yellow) and the 5 alignment points (red)."""
    im = Image.fromarray(np.ascontiguousarray(rgb)).convert("RGB")
    if detection is None:
        return np.asarray(im)
    draw = ImageDraw.Draw(im)
    x0, y0, x1, y1 = detection.box
    r = radius or max(1.5, (x1 - x0) / 90)
    draw.rectangle([x0, y0, x1, y1], outline=(40, 200, 90), width=max(1, int(r)))
    for points, colour, scale in ((detection.points68, (255, 215, 0), 1.0), (detection.points5, (230, 30, 30), 1.6)):
        if points is None:
            continue
        for x, y in np.asarray(points, dtype=float):
            draw.ellipse([x - r * scale, y - r * scale, x + r * scale, y + r * scale], fill=colour)
    return np.asarray(im)


def crop_around(rgb: np.ndarray, box: Sequence[float], margin: float = 0.6) -> np.ndarray:
    """The photo cut to the face box grown by ``margin`` of its size on each side (clipped to the photo)."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    xa, ya = int(max(0, x0 - mx)), int(max(0, y0 - my))
    xb, yb = int(min(w, x1 + mx)), int(min(h, y1 + my))
    return rgb[ya:yb, xa:xb] if xb > xa and yb > ya else rgb


class Thumbnails:
    """Encoded face pictures by row, least recently used dropped first (the gallery asks for the same faces after
    every slider move)."""

    def __init__(self, faces: FaceCollection, size: int = 512) -> None:
        self.faces = faces
        self.size = size
        self._cache: OrderedDict[tuple, bytes] = OrderedDict()

    def get(self, row: int, px: int = GALLERY_SIZE, fmt: str = "jpeg") -> bytes:
        key = (int(row), px, fmt)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        picture = self.faces.thumbnail(int(row))
        data = encode(_BLANK if picture is None else picture, fmt, px)
        self._cache[key] = data
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return data

    def uri(self, row: int, px: int = GALLERY_SIZE) -> str:
        return data_uri(self.get(row, px, "jpeg"), "jpeg")
