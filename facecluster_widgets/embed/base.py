"""The one interface every 2D face embedder implements, and the input it takes.

Each backend was trained on its own crop (dlib: 150x150 chips, ArcFace: 112x112 template warp, FaceNet:
160x160), so an embedder receives the original image plus landmarks and makes that crop itself.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..detect.base import Detection, points5_from_68
from ..errors import CropError, EmbedInputError, FaceclusterError
from ..store import file_identity  # noqa: F401 - the embed backends' model keys

logger = logging.getLogger(__name__)

#: Eyes closer than this (pixels) give a crop too blurred or degenerate to embed.
MIN_EYE_DISTANCE = 4.0


@dataclass(frozen=True, eq=False)
class EmbedInput:
    """One face: the ORIGINAL RGB uint8 image and its landmarks in that image's pixels.

    ``points5`` (5, 2) follow :data:`~facecluster_widgets.detect.base.POINTS5_ORDER`; ``points68``
    (68, 2) follow the iBUG / dlib layout. Either may be missing; a backend that needs landmarks the
    face lacks gives that face a NaN row.
    """

    rgb: np.ndarray
    points5: np.ndarray | None = None
    points68: np.ndarray | None = None

    def __post_init__(self) -> None:
        rgb = self.rgb
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            got = f"{rgb.dtype} array of shape {rgb.shape}" if isinstance(rgb, np.ndarray) else type(rgb).__name__
            raise EmbedInputError(f"EmbedInput.rgb must be an (H, W, 3) uint8 RGB array, got {got}")
        if rgb.shape[0] == 0 or rgb.shape[1] == 0:
            raise EmbedInputError(f"EmbedInput.rgb has no pixels (shape {rgb.shape})")
        # dlib and OpenCV need C-contiguous pixels; a flipped or sliced view would be rejected or misread.
        object.__setattr__(self, "rgb", np.ascontiguousarray(rgb))
        for name, count in (("points5", 5), ("points68", 68)):
            value = getattr(self, name)
            if value is None:
                continue
            points = np.asarray(value, dtype=np.float64)
            if points.shape != (count, 2):
                raise EmbedInputError(f"EmbedInput.{name} must have shape ({count}, 2), got {points.shape}")
            object.__setattr__(self, name, points)

    @classmethod
    def from_detection(cls, rgb: np.ndarray, detection: Detection) -> EmbedInput:
        return cls(rgb=rgb, points5=detection.points5, points68=detection.points68)


class Embedder(Protocol):
    """Maps faces to ``(n, dim)`` float32 rows of unit length; a face that cannot be cropped gets NaN.

    ``params()`` is JSON-able and enters the cache key of the results, so it names every setting and
    model file (name, size, hash of its first MB) that changes the numbers.
    """

    name: str
    dim: int

    def params(self) -> dict: ...

    def embed(self, faces: Sequence[EmbedInput]) -> np.ndarray: ...


def l2_normalise(rows: np.ndarray) -> np.ndarray:
    """Unit-length float32 rows; a row with no direction (zero or non-finite) becomes NaN, not a fake vector."""
    rows = np.asarray(rows, dtype=np.float64)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    usable = np.isfinite(norms) & (norms > 1e-12)
    out = np.full(rows.shape, np.nan)
    np.divide(rows, norms, out=out, where=usable)
    return out.astype(np.float32)


def alignment_points5(face: EmbedInput) -> np.ndarray:
    """The face's 5 points, derived from its 68 when only those were given; :class:`CropError` if neither."""
    if face.points5 is not None:
        return face.points5
    if face.points68 is not None:
        return points5_from_68(face.points68)
    raise CropError("no landmarks (points5 or points68) given")


def check_points5(points5: np.ndarray, image_shape: tuple[int, ...]) -> None:
    """Raise :class:`CropError` for landmarks no crop can be made from."""
    if not np.isfinite(points5).all():
        raise CropError("landmarks contain NaN or infinity")
    eye_distance = float(np.linalg.norm(points5[1] - points5[0]))
    if eye_distance < MIN_EYE_DISTANCE:
        raise CropError(f"eyes {eye_distance:.1f} px apart (< {MIN_EYE_DISTANCE:g} px): face too small "
                        "or degenerate landmarks")
    height, width = image_shape[:2]
    cx, cy = points5.mean(axis=0)
    if not (0 <= cx < width and 0 <= cy < height):
        raise CropError(f"landmark centre ({cx:.0f}, {cy:.0f}) lies outside the {width}x{height} image")


def embed_in_batches(faces: Sequence[EmbedInput], dim: int, batch_size: int,
                     crop: Callable[[EmbedInput], np.ndarray],
                     run: Callable[[list[np.ndarray]], np.ndarray], backend: str) -> np.ndarray:
    """Crop each face, run the crops through ``run`` a batch at a time, L2-normalise.

    Batches bound the memory of crops in flight; a face whose crop fails keeps a NaN row and the reason
    is logged, so one bad face never costs the others their vectors.
    """
    out = np.full((len(faces), dim), np.nan, dtype=np.float32)
    for start in range(0, len(faces), batch_size):
        part = faces[start:start + batch_size]
        out[start:start + len(part)] = describe_crops(prepare_crops(part, crop, backend, first=start), dim,
                                                      batch_size, run)
    return out


def prepare_crops(faces: Sequence[EmbedInput], crop: Callable[[EmbedInput], np.ndarray], backend: str,
                  first: int = 0) -> list[np.ndarray | None]:
    """Each face's crop, None (and a logged reason) where it cannot be made."""
    crops: list[np.ndarray | None] = []
    for index, face in enumerate(faces, start=first):
        try:
            crops.append(crop(face))
        except CropError as exc:
            logger.warning("face %d: no %s crop (%s); its embedding row is NaN", index, backend, exc)
            crops.append(None)
    return crops


def describe_crops(crops: Sequence[np.ndarray | None], dim: int, batch_size: int,
                   run: Callable[[list[np.ndarray]], np.ndarray]) -> np.ndarray:
    """``(len(crops), dim)`` unit rows from ``run``, ``batch_size`` crops per call; NaN rows where a crop is None."""
    out = np.full((len(crops), dim), np.nan, dtype=np.float32)
    rows = [i for i, c in enumerate(crops) if c is not None]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        out[chunk] = l2_normalise(run([crops[i] for i in chunk]))
    return out


class CropThenNetwork(ABC):
    """An embedder that crops every face, then runs the crops through a network a batch at a time.

    Why :meth:`prepare` and :meth:`describe` are public: ``extract()`` crops each photo's faces as it reaches them
    and runs the network once for the faces of several photos, so the network sees full batches while no
    photo's pixels are kept waiting. ``embed(faces)`` is the two in one call.
    """

    name: str
    dim: int
    batch_size: int

    @abstractmethod
    def crop(self, face: EmbedInput) -> np.ndarray:
        """The network's input image for one face; :class:`CropError` when it cannot be made."""

    @abstractmethod
    def _describe(self, crops: list[np.ndarray]) -> np.ndarray:
        """Raw (not normalised) ``(len(crops), dim)`` rows for a batch of crops."""

    def embed(self, faces: Sequence[EmbedInput]) -> np.ndarray:
        return embed_in_batches(faces, self.dim, self.batch_size, self.crop, self._describe, self.name)

    def prepare(self, faces: Sequence[EmbedInput]) -> list[np.ndarray | None]:
        return prepare_crops(faces, self.crop, self.name)

    def describe(self, crops: Sequence[np.ndarray | None]) -> np.ndarray:
        return describe_crops(crops, self.dim, self.batch_size, self._describe)


def check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise FaceclusterError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size
