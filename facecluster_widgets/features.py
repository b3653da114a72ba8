"""Named feature blocks aligned with the faces table ("2d", "shape", "geodesic", "curvature", ...)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Features:
    """Arrays beside the faces table: ``blocks[name][i]`` belongs to face ``face_ids[i]``.

    Rows of faces a stage could not process hold NaN; :attr:`valid` tells which rows are complete.
    """

    face_ids: np.ndarray
    blocks: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.face_ids)
        for name, block in self.blocks.items():
            if block.ndim != 2 or block.shape[0] != n:
                raise ValueError(f"feature block {name!r} has shape {block.shape}, expected ({n}, d)")

    def __len__(self) -> int:
        return len(self.face_ids)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.blocks[name]
        except KeyError:
            raise KeyError(f"no feature block {name!r}; have {sorted(self.blocks)}") from None

    @property
    def names(self) -> list[str]:
        return sorted(self.blocks)

    @property
    def valid(self) -> np.ndarray:
        """True for rows where every block is finite."""
        ok = np.ones(len(self), dtype=bool)
        for block in self.blocks.values():
            ok &= np.isfinite(block).all(axis=1)
        return ok

    def subset(self, rows: np.ndarray) -> Features:
        return Features(face_ids=self.face_ids[rows], blocks={k: v[rows] for k, v in self.blocks.items()})
