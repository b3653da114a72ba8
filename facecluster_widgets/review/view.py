"""What one clustering looks like to the views: the labels after corrections, the cluster names, and the rows
the gallery and the "same person?" list show. Plain frozen dataclasses: a view never changes once published."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

NOISE_NAME = "unknown (noise)"


def display_name(label: int, names: Mapping[int, str]) -> str:
    """The one rule for what a cluster is called, on the page and in every export: the user's name, else
    "cluster N"; the faces in no cluster (−1) are :data:`NOISE_NAME`."""
    if label < 0:
        return NOISE_NAME
    return names.get(int(label)) or f"cluster {int(label)}"


@dataclass(frozen=True, eq=False)
class ClusterView:
    """One clustering as the views show it.

    ``raw_labels``: the estimator's labels (ids matched to the previous view); ``labels``: after the corrections;
    ``names``: cluster id → name; ``timings``: the estimator's seconds per stage plus ``edits`` and ``total``.
    """

    number: int
    params: dict
    raw_labels: np.ndarray
    labels: np.ndarray
    names: dict[int, str]
    reason: str
    timings: dict[str, float]
    unplaced: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    preview: bool = False  # a quick look (k from the last run) that a full update will replace

    @property
    def clusters(self) -> np.ndarray:
        """The cluster ids present (noise excluded), sorted."""
        return np.unique(self.labels[self.labels >= 0])

    @property
    def n_clusters(self) -> int:
        return int(self.clusters.size)

    @property
    def n_noise(self) -> int:
        return int((self.labels < 0).sum())

    def name_of(self, label: int) -> str:
        return display_name(label, self.names)

    def members(self, label: int) -> np.ndarray:
        return np.flatnonzero(self.labels == label)


@dataclass(frozen=True)
class GalleryRow:
    """One cluster (or the noise faces, ``label == -1``) with its faces in display order."""

    label: int
    name: str
    rows: np.ndarray
    spread: float  # mean fused distance of its faces to the cluster centroid (NaN for noise)

    @property
    def size(self) -> int:
        return int(self.rows.size)


@dataclass(frozen=True)
class ClusterPair:
    """Two clusters that may be one person: ``distance`` is the mean fused distance of each one's faces to the
    other's centroid (averaged both ways); ``gap`` is how much farther that is than their own faces sit from their
    own centroids (small: the two overlap)."""

    a: int
    b: int
    distance: float
    gap: float
