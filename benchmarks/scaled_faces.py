"""A large collection made of the real faces of several stores, for measuring the explorer at a size the shared
datasets do not reach (they hold ~2,500 faces; issue 13 asks for 10,000).

The rule (declared before measuring; one rule, no tuning): take the usable faces of every store given, in order,
and repeat that list until ``n`` faces. Copy 0 is the real faces unchanged. Copy ``c`` ≥ 1 of a face is a *new
person*: its 2D embedding is turned by one random orthogonal matrix per copy (``Q_c``, the same for every face of
that copy), so within one copy the faces keep the real distances between each other exactly, while copy ``c`` of a
person sits as far from copy 0 of that person as an unrelated face would; then Gaussian noise of 5 % of each
column's spread is added to every block (2D and 3D), so no two rows are equal. Photos, thumbnails, landmarks and
3D fits of a copy are those of its original (the explorer's panels show real faces); its path gets ``@copyC`` so
that the copies of one photo are different photos for the cannot-link rule, and its label ``@copyC`` (a new person).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from facecluster_widgets.detect import Detection
from facecluster_widgets.features import Features
from facecluster_widgets.review.collection import FaceCollection
from facecluster_widgets.standardize import StandardiseConfig

#: Noise added to every copy, as a fraction of each feature column's standard deviation.
NOISE = 0.05


class ScaledFaces(FaceCollection):
    """``n`` faces built from ``sources`` by the module's rule; every per-face picture comes from the original."""

    def __init__(self, sources: Sequence[FaceCollection], n: int, seed: int = 0) -> None:
        sizes = [len(s) for s in sources]
        total = sum(sizes)
        rows = np.arange(n) % total
        copies = np.arange(n) // total
        offsets = np.cumsum([0, *sizes])
        self._source_of = np.searchsorted(offsets, rows, side="right") - 1
        self._inner = rows - offsets[self._source_of]
        self.sources = list(sources)
        table = pd.concat([s.table for s in sources], ignore_index=True).iloc[rows].reset_index(drop=True)
        suffix = pd.Series(np.where(copies > 0, [f"@copy{c}" for c in copies], ""), dtype="string")
        table["face_id"] = table["face_id"].astype("string") + suffix
        table["path"] = table["path"].astype("string") + suffix
        table["label"] = (table["dataset"].astype("string") + ":" + table["label"].astype("string") + suffix)
        table["copy"] = copies
        blocks = {}
        rng = np.random.default_rng(seed)
        names = sources[0].features.names
        turns = {c: _orthogonal(rng, sources[0].features[names[0]].shape[1]) for c in range(1, copies.max() + 1)}
        for name in names:
            real = np.vstack([s.features[name] for s in sources]).astype(np.float64)
            block = real[rows].copy()
            if name == "2d":
                for c, q in turns.items():
                    block[copies == c] = block[copies == c] @ q
            spread = np.nanstd(real, axis=0)
            noisy = copies > 0
            block[noisy] += rng.standard_normal((int(noisy.sum()), block.shape[1])) * spread * NOISE
            blocks[name] = block.astype(np.float32)
        super().__init__(table, Features(table["face_id"].to_numpy(str), blocks))

    def _source(self, row: int) -> tuple[FaceCollection, int]:
        return self.sources[int(self._source_of[row])], int(self._inner[row])

    @property
    def standardise_config(self) -> StandardiseConfig:
        return self.sources[0].standardise_config

    def crop(self, row: int) -> np.ndarray | None:
        source, inner = self._source(row)
        return source.crop(inner)

    def standardised(self, row: int) -> np.ndarray | None:
        source, inner = self._source(row)
        return source.standardised(inner)

    def alpha(self, row: int) -> np.ndarray | None:
        source, inner = self._source(row)
        return source.alpha(inner)

    def mesh_vertices(self, row: int) -> np.ndarray | None:
        source, inner = self._source(row)
        return source.mesh_vertices(inner)

    def photo(self, row: int) -> np.ndarray:
        source, inner = self._source(row)
        return source.photo(inner)

    def thumbnail(self, row: int) -> np.ndarray | None:
        source, inner = self._source(row)
        return source.thumbnail(inner)

    def detection(self, row: int) -> Detection | None:
        source, inner = self._source(row)
        return source.detection(inner)


def _orthogonal(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def scaled_faces(stores: Sequence[str | os.PathLike], n: int = 10_000, seed: int = 0) -> ScaledFaces:
    """``n`` faces from the stores' real faces by the module's rule."""
    return ScaledFaces([FaceCollection.from_store(s) for s in stores], n, seed)
