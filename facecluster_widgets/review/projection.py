"""2-D maps of the faces for the explorer's scatter: t-SNE, UMAP or PCA of what the clustering sees.

t-SNE and UMAP take the fused distance matrix itself (``metric="precomputed"``), so two faces drawn close are
close under the same ``D = λ·cos + (1−λ)·Mahalanobis`` that DBSCAN and K-Means++ use. PCA needs coordinates: it
gets the fused metric's points weighted like the fused distance (unit 2D vectors × √(λ/2s2), whitened 3D rows ×
√((1−λ)/s3): the same two terms, the 3D one squared), so PCA is the linear view of nearly the same geometry.

A map is a picture of one λ: the explorer keeps it while the sliders move (faces stay put and only their colours
change, which is what shows how λ moves faces between clusters) and re-projects only when asked. Maps are
cached by every parameter that changes them (:class:`ProjectionCache`), and umap-learn is imported only when a
UMAP map is asked for (its first import compiles for ~20 s).
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from ..errors import FaceclusterError, optional_import
from ..fusion import FusedMetric

log = logging.getLogger(__name__)

#: The projections offered, cheapest last.
METHODS = ("tsne", "umap", "pca")
#: t-SNE perplexity (sklearn's default); lowered to (n − 1) / 3 for small collections.
TSNE_PERPLEXITY = 30.0
#: UMAP neighbours (umap-learn's default); lowered to n − 1 for tiny collections.
UMAP_NEIGHBOURS = 15
#: Above this many faces t-SNE (O(n²) on a dense matrix, ~1 min at 5,000 faces on 2 cores) is not the default.
TSNE_DEFAULT_MAX = 3000


def default_method(n_faces: int) -> str:
    """t-SNE for collections it maps in seconds, PCA beyond (UMAP is never the default: its first import is slow)."""
    return "tsne" if n_faces <= TSNE_DEFAULT_MAX else "pca"


def fused_points(metric: FusedMetric, lam: float) -> np.ndarray:
    """The faces as points weighted like the fused distance at ``lam``: the 2D part's squared distances are the
    normalised cosine term exactly, the 3D part's the square of the normalised Mahalanobis term."""
    if metric.fusion == "concat":
        return metric.concat_features(lam)
    p2 = metric.points_2d * np.sqrt(lam / (2 * metric.scale_2d))  # cosine distance = half the squared chord
    p3 = metric.points_3d * np.sqrt((1.0 - lam) / metric.scale_3d)
    return np.hstack([p2, p3]).astype(np.float32)


def project(method: str, *, distances: np.ndarray | None = None, points: np.ndarray | None = None,
            random_state: int = 0) -> np.ndarray:
    """``(n, 2)`` float32 coordinates: t-SNE / UMAP of ``distances`` (square, precomputed) or PCA of ``points``.

    Runs single-threaded: on a busy machine (other processes runnable) OpenMP's threads wait on each other at
    every barrier, which made t-SNE and PCA two orders of magnitude slower (figures in benchmarks/README.md).
    """
    with threadpool_limits(limits=1):
        return _project(method, distances, points, random_state)


def _project(method: str, distances: np.ndarray | None, points: np.ndarray | None, random_state: int) -> np.ndarray:
    if method not in METHODS:
        raise FaceclusterError(f"unknown projection {method!r}; choose one of {', '.join(METHODS)}")
    if method == "pca":
        if points is None:
            raise FaceclusterError("a PCA projection needs the points (fused_points), not only distances")
        n = points.shape[0]
        if n < 2:
            return np.zeros((n, 2), np.float32)
        width = min(2, points.shape[1], n)
        xy = PCA(n_components=width, random_state=random_state).fit_transform(np.asarray(points, np.float64))
        return _pad(xy, n)
    if distances is None:
        raise FaceclusterError(f"a {method} projection needs the square matrix of fused distances")
    D = np.asarray(distances, dtype=np.float64)
    if D.ndim != 2 or D.shape[0] != D.shape[1] or not np.isfinite(D).all():
        raise FaceclusterError(f"projection needs a finite square distance matrix, got shape {D.shape}")
    n = D.shape[0]
    if n < 4:  # neither method is defined on three faces; a flat layout keeps the view usable
        return np.column_stack([np.arange(n), np.zeros(n)]).astype(np.float32)
    D = np.maximum((D + D.T) / 2, 0.0)
    np.fill_diagonal(D, 0.0)
    if method == "tsne":
        perplexity = min(TSNE_PERPLEXITY, (n - 1) / 3)
        xy = TSNE(n_components=2, metric="precomputed", init="random", perplexity=perplexity,
                  random_state=random_state).fit_transform(D)
        return _pad(xy, n)
    umap = optional_import("umap", "a UMAP projection", "widgets")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", "precomputed: no inverse"
        xy = umap.UMAP(n_components=2, metric="precomputed", n_neighbors=min(UMAP_NEIGHBOURS, n - 1),
                       random_state=random_state).fit_transform(D)
    return _pad(xy, n)


def _pad(xy: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, 2), np.float32)
    out[:, : xy.shape[1]] = xy
    return out


def fingerprint(*arrays: np.ndarray) -> str:
    """A short content hash of arrays, so a cache never serves a map of other faces."""
    digest = hashlib.blake2b(digest_size=8)
    for a in arrays:
        a = np.ascontiguousarray(a)
        digest.update(str((a.shape, a.dtype.str)).encode())
        digest.update(a.tobytes())
    return digest.hexdigest()


class ProjectionCache:
    """Maps by parameters, least recently used dropped first (a 5,000-face map is 40 kB: keep a handful)."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._maps: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def get(self, key: tuple, compute: Callable[[], np.ndarray]) -> np.ndarray:
        if key in self._maps:
            self._maps.move_to_end(key)
            return self._maps[key]
        value = compute()
        self._maps[key] = value
        while len(self._maps) > self.size:
            self._maps.popitem(last=False)
        return value

    def __contains__(self, key: tuple) -> bool:
        return key in self._maps


def map_name(method: str, face_ids: np.ndarray, lam: float, fusion: str, random_state: int) -> str:
    """The store entry of a map: the method, the faces mapped, λ, the fusion and the seed, hashed."""
    return f"map-{method}-" + fingerprint(np.asarray(face_ids, dtype=str), np.array([lam, random_state]),
                                          np.frombuffer(fusion.encode(), np.uint8))
