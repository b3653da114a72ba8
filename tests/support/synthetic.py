"""Synthetic feature blocks with a known identity structure: for tests, benchmarks at sizes no photo
collection here reaches, and teaching. Not faces: vectors shaped like the pipeline's outputs."""

from __future__ import annotations

import numpy as np


def make_identity_features(n_ids: int = 6, per_id: int = 20, d2: int = 128, blocks_3d: dict[str, int] | None = None,
                           noise2: float = 0.6, noise3: float = 0.3, seed: int = 0
                           ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``(blocks, labels)``: a unit-norm "2d" block (identity centres on the sphere plus noise, renormalised)
    and 3D blocks (identity centres plus noise, mixed by a random linear map so columns are correlated and of
    different scales, as real descriptors are). ``blocks_3d`` maps block name to width (default ``{"shape": 6}``)."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_ids), per_id)
    c2 = rng.normal(size=(n_ids, d2))
    c2 /= np.linalg.norm(c2, axis=1, keepdims=True)
    e2 = c2[y] + noise2 * rng.normal(size=(y.size, d2)) / np.sqrt(d2)
    blocks = {"2d": e2 / np.linalg.norm(e2, axis=1, keepdims=True)}
    for name, d3 in (blocks_3d or {"shape": 6}).items():
        mix = rng.normal(size=(d3, d3)) + 3 * np.eye(d3)
        blocks[name] = (rng.normal(size=(n_ids, d3))[y] + noise3 * rng.normal(size=(y.size, d3))) @ mix
    return blocks, y
