"""One collection of faces being clustered, corrected and scored interactively: everything the explorer shows,
computed in plain Python that a test (or a script) can call without a notebook.

A :class:`ClusterSession` owns one :class:`~facecluster_widgets.cluster.HybridClustering`. The first
:meth:`~ClusterSession.update` fits it; later ones call ``refit``, which reuses the per-block distance matrices,
so a slider move costs the weighted sum, DBSCAN and K-Means++ only. Each update yields a :class:`ClusterView`:
the estimator's labels renamed to match the previous view's cluster ids as far as possible (so colours stay put
and only the faces that really moved change colour), then the person's corrections replayed on them
(:mod:`facecluster_widgets.review.edits`). Corrections are saved in the store as they are made.

Methods may be called from a worker thread (the explorer computes off the UI thread): one lock serialises
everything that touches the estimator or the edit log.
"""

from __future__ import annotations

import copy
import itertools
import logging
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.cluster import DBSCAN

from ..cluster import HybridClustering, align_labels
from ..cluster.hybrid import DEFAULT_EPS, DEFAULT_LAM, DEFAULT_MIN_SAMPLES
from ..cluster.rows import FusedRows, SampledSilhouette
from ..errors import MetricInputError, StoreError
from ..metrics import ari, nmi, purity, silhouette
from ..store import Store
from .collection import FaceCollection
from .edits import Edit, EditError, EditLog
from .projection import ProjectionCache, default_method, fingerprint, fused_points, project

log = logging.getLogger(__name__)

#: What the explorer's controls change, with the estimator's defaults (one place: cluster/hybrid.py).
DEFAULT_PARAMS: dict[str, object] = {"eps": DEFAULT_EPS, "min_samples": DEFAULT_MIN_SAMPLES, "lam": DEFAULT_LAM,
                                     "n_clusters": "auto", "fusion": "metric"}
#: Scores a sweep or the metrics panel can show; the external ones need true labels.
EXTERNAL_SCORES = ("ari", "nmi", "purity")
NOISE_NAME = "unknown (noise)"


def model_silhouette(model: HybridClustering, labels_valid: np.ndarray) -> float:
    """Silhouette of ``labels_valid`` (the model's valid faces) under its fused distance, NaN when undefined.

    The sparse path (large collections) keeps no n×n matrix: there it is the silhouette of a fixed sample of faces
    against all faces (exact when the collection is smaller than the sample), as the estimator's own k search.
    """
    try:
        if model.fused_distances_ is not None:
            return silhouette(labels_valid, model.fused_distances_)
        rows = FusedRows(model.distance_, model.lam, np.arange(model.valid_index_.shape[0]))
        labels = np.asarray(labels_valid)
        if np.unique(labels[labels >= 0]).size < 2:
            return float("nan")
        return SampledSilhouette(rows)(labels)
    except MetricInputError:
        return float("nan")


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
        if label < 0:
            return NOISE_NAME
        return self.names.get(int(label), f"cluster {int(label)}")

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


@dataclass
class _Cache:
    number: int = -1
    centroid: tuple[np.ndarray, np.ndarray] | None = None
    metrics: dict | None = None
    extra: dict = field(default_factory=dict)


class ClusterSession:
    """Cluster ``faces``, keep corrections, answer the views' questions. ``params`` override :data:`DEFAULT_PARAMS`.

    ``edits``: a log to start from; by default the store's (``edits.json``), or an empty one. ``persist``: save
    every correction into the store as it is made.
    """

    def __init__(self, faces: FaceCollection, *, edits: EditLog | None = None, persist: bool = True,
                 random_state: int = 0, **params: object) -> None:
        unknown = set(params) - set(DEFAULT_PARAMS)
        if unknown:
            raise TypeError(f"unknown clustering parameters {sorted(unknown)}; valid: {sorted(DEFAULT_PARAMS)}")
        self.faces = faces
        self.params = {**DEFAULT_PARAMS, **params}
        self.random_state = random_state
        self.persist = persist and faces.store is not None
        self.persist_error: str | None = None
        if edits is None:
            edits = EditLog.load(faces.store) if faces.store is not None else EditLog()
        self.edits = edits
        self._undone: list[Edit] = []  # corrections undone, newest last: what redo puts back
        self.model: HybridClustering | None = None
        self._view: ClusterView | None = None
        self._raw: np.ndarray | None = None
        self._lock = threading.RLock()
        self._cache = _Cache()
        self._maps = ProjectionCache()
        self._numbers = itertools.count()  # every view, previews included, gets its own number (caches key on it)

    @classmethod
    def from_store(cls, store: Store | str | os.PathLike, **options: object) -> ClusterSession:
        """A session over an extracted store (a :class:`Store` or its folder); ``options`` as for the constructor."""
        return cls(FaceCollection.from_store(store), **options)

    # -- clustering --------------------------------------------------------------------------
    @property
    def view(self) -> ClusterView:
        """The last clustering (computed on first use)."""
        if self._view is None:
            return self.update()
        return self._view

    def update(self, **params: object) -> ClusterView:
        """Cluster again with ``params`` changed (first call: fit). On an error the previous state is kept."""
        unknown = set(params) - set(DEFAULT_PARAMS)
        if unknown:
            raise TypeError(f"unknown clustering parameters {sorted(unknown)}; valid: {sorted(DEFAULT_PARAMS)}")
        with self._lock:
            start = time.perf_counter()
            new = {**self.params, **params}
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                if self.model is None:
                    model = HybridClustering(random_state=self.random_state, warm_start=True, **new)
                    model.fit(self.faces.features, groups=self.faces.groups)
                    self.model = model
                else:
                    before = {k: self.model.get_params()[k] for k in new}
                    try:
                        self.model.refit(**new)
                    except Exception:
                        self.model.set_params(**before)
                        raise
            self.params = new
            raw = np.asarray(self.model.labels_, dtype=np.int64)
            self._raw = align_labels(self._raw, raw) if self._raw is not None else raw
            return self._publish(self.model.timings_, time.perf_counter() - start,
                                 tuple(str(w.message) for w in caught))

    def _publish(self, timings: dict, seconds: float, notes: tuple[str, ...] = ()) -> ClusterView:
        tick = time.perf_counter()
        applied = self.edits.apply(self._raw, self.faces.face_ids)
        timings = {**timings, "edits": time.perf_counter() - tick}
        timings["total"] = seconds + timings["edits"]
        number = next(self._numbers)
        if self.persist_error:
            notes = (*notes, f"corrections not saved: {self.persist_error}")
        self._view = ClusterView(number=number, params=dict(self.params), raw_labels=self._raw,
                                 labels=applied.labels, names=applied.names, reason=self.model.n_clusters_reason_,
                                 timings=timings, unplaced=applied.unplaced, warnings=notes)
        return self._view

    def preview(self, **params: object) -> ClusterView | None:
        """DBSCAN's result at once, while :meth:`update` chooses k again: the faces DBSCAN keeps at ``params`` go to
        the nearest centre of the last clustering (under the new λ), the others are noise. No K-Means++ run, the
        estimator untouched. ``None`` when there is nothing quicker to show (k fixed by the user, a fusion
        change, no clustering yet)."""
        with self._lock:
            new = {**self.params, **params}
            model = self.model
            if (model is None or new["n_clusters"] != "auto" or new["fusion"] != self.params["fusion"]
                    or not getattr(model, "n_clusters_", 0)):
                return None
            start = time.perf_counter()
            lam = float(new["lam"])
            metric, valid = model.distance_, model.valid_index_
            fused = metric.pairwise(lam) if model.graph_ is None else model.graph_.fused(lam)
            tick = time.perf_counter()
            core = DBSCAN(eps=float(new["eps"]), min_samples=int(new["min_samples"]),
                          metric="precomputed").fit(fused).labels_ >= 0
            timings = {"fuse": tick - start, "dbscan": time.perf_counter() - tick}
            nearest = np.argmin(metric.to_centroids(lam, model.centroids_), axis=1)
            labels = np.full(len(self.faces), -1, dtype=np.int64)
            labels[valid[core]] = nearest[core]
            raw = align_labels(self._raw, labels)
            applied = self.edits.apply(raw, self.faces.face_ids)
            timings["total"] = time.perf_counter() - start
            return ClusterView(number=next(self._numbers), params=new, raw_labels=raw, labels=applied.labels,
                               names=applied.names, reason=f"DBSCAN (eps={new['eps']}, min_samples="
                               f"{new['min_samples']}) at once, faces on the last run's {model.n_clusters_} "
                               "centres; choosing k for these settings…", timings=timings,
                               unplaced=applied.unplaced, preview=True)

    @property
    def valid_rows(self) -> np.ndarray:
        """Rows with complete features (the others are −1 and absent from the distance matrix)."""
        self.view  # noqa: B018 - fits on first use
        return self.model.valid_index_

    @property
    def distances(self) -> np.ndarray:
        """The fused distance matrix among :attr:`valid_rows` at the current λ."""
        self.view  # noqa: B018
        return self.model.fused_distances_

    # -- what the panels show ------------------------------------------------------------------
    def _cached(self, view: ClusterView) -> _Cache:
        if self._cache.number != view.number:
            self._cache = _Cache(number=view.number)
        return self._cache

    def metrics(self, view: ClusterView | None = None) -> dict[str, float]:
        """Silhouette on the fused distance (noise excluded) always; ARI, NMI, purity on the faces with a true
        label when there are any (noise counts as singletons, see :mod:`facecluster_widgets.metrics`)."""
        with self._lock:
            view = view or self.view
            cache = self._cached(view)
            if cache.metrics is not None:
                return cache.metrics
            valid = self.model.valid_index_
            out = {"clusters": float(view.n_clusters), "noise_fraction": float(view.n_noise / max(len(view.labels), 1))}
            out["silhouette"] = model_silhouette(self.model, view.labels[valid])
            truth = self.faces.labels
            if truth is not None:
                known = np.array([t is not None for t in truth])
                true, pred = truth[known].astype(str), view.labels[known]
                for name, fn in (("ari", ari), ("nmi", nmi), ("purity", purity)):
                    out[name] = float(fn(true, pred))
                out["labelled_faces"] = float(known.sum())
            cache.metrics = out
            return out

    def centroid_distances(self, view: ClusterView | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(clusters, D)``: the cluster ids and the (n, k) fused distance of every face to every cluster's
        centroid (per-block centroids in the fused spaces, after corrections); NaN rows for invalid faces."""
        with self._lock:
            view = view or self.view
            cache = self._cached(view)
            if cache.centroid is None:
                clusters = view.clusters
                valid = self.model.valid_index_
                n = len(view.labels)
                dist = np.full((n, clusters.size), np.nan)
                if clusters.size:
                    codes = np.searchsorted(clusters, view.labels[valid])
                    codes[view.labels[valid] < 0] = -1
                    metric = self.model.distance_
                    centroids = metric.centroids(codes, clusters.size)
                    dist[valid] = metric.to_centroids(float(self.params["lam"]), centroids)
                cache.centroid = (clusters, dist)
            return cache.centroid

    def gallery(self, view: ClusterView | None = None, *, cluster_order: str = "size",
                face_order: str = "closest") -> list[GalleryRow]:
        """Clusters with their faces: clusters by ``size`` (largest first), ``spread`` (tightest first) or
        ``name``; faces ``closest`` or ``farthest`` to their centroid first. The noise faces come last, nearest
        to any cluster first (the likeliest to belong somewhere)."""
        if cluster_order not in ("size", "spread", "name") or face_order not in ("closest", "farthest"):
            raise ValueError(f"cluster_order must be size/spread/name and face_order closest/farthest, got "
                             f"{cluster_order!r}/{face_order!r}")
        view = view or self.view
        clusters, dist = self.centroid_distances(view)
        rows = []
        for j, label in enumerate(clusters.tolist()):
            members = view.members(label)
            own = dist[members, j]
            order = np.argsort(np.where(np.isnan(own), np.inf, own), kind="stable")
            if face_order == "farthest":
                order = order[::-1]
            rows.append(GalleryRow(label, view.name_of(label), members[order], float(np.nanmean(own))
                                   if np.isfinite(own).any() else float("nan")))
        if cluster_order == "size":
            rows.sort(key=lambda r: (-r.size, r.label))
        elif cluster_order == "spread":
            rows.sort(key=lambda r: (np.inf if np.isnan(r.spread) else r.spread, r.label))
        else:
            rows.sort(key=lambda r: (r.label not in view.names, r.name.casefold(), r.label))
        noise = self.unknown_pool(view)
        if noise.size:
            rows.append(GalleryRow(-1, NOISE_NAME, noise, float("nan")))
        return rows

    def similar_pairs(self, n: int = 10, view: ClusterView | None = None) -> list[ClusterPair]:
        """The ``n`` pairs of clusters nearest each other, nearest first: the "same person?" suggestions."""
        view = view or self.view
        clusters, dist = self.centroid_distances(view)
        k = clusters.size
        if k < 2:
            return []
        rows = np.flatnonzero((view.labels >= 0) & np.isfinite(dist).all(axis=1))
        codes = np.searchsorted(clusters, view.labels[rows])
        sums = np.zeros((k, k))
        np.add.at(sums, codes, dist[rows])
        counts = np.bincount(codes, minlength=k).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = sums / counts[:, None]  # mean[a, b]: faces of a to the centroid of b
        between = (mean + mean.T) / 2
        own = np.diag(mean)
        gap = between - (own[:, None] + own[None, :]) / 2
        a, b = np.triu_indices(k, 1)
        score = between[a, b]
        keep = np.isfinite(score)
        order = np.argsort(np.where(keep, score, np.inf), kind="stable")[: max(0, int(n))]
        return [ClusterPair(int(clusters[a[i]]), int(clusters[b[i]]), float(score[i]), float(gap[a[i], b[i]]))
                for i in order if keep[i]]

    def unknown_pool(self, view: ClusterView | None = None) -> np.ndarray:
        """The faces in no cluster, nearest to some cluster's centroid first (faces without features last)."""
        view = view or self.view
        clusters, dist = self.centroid_distances(view)
        noise = np.flatnonzero(view.labels < 0)
        if not clusters.size:
            return noise
        near = dist[noise].min(axis=1) if noise.size else np.zeros(0)
        return noise[np.argsort(np.where(np.isnan(near), np.inf, near), kind="stable")]

    def possible_matches(self, label: int, n: int = 12, view: ClusterView | None = None
                         ) -> list[tuple[int, float]]:
        """A ranked queue for cluster ``label``: faces in no cluster, nearest to its centroid first, leaving out
        faces already marked "not this person" for it. ``[(row, fused distance), ...]``."""
        view = view or self.view
        clusters, dist = self.centroid_distances(view)
        where = np.flatnonzero(clusters == label)
        if not where.size:
            raise EditError(f"no cluster {label} in the current clustering")
        refused = self._refused(view, label)
        pool = [r for r in np.flatnonzero(view.labels < 0).tolist() if r not in refused and np.isfinite(dist[r, 0])]
        ranked = sorted(pool, key=lambda r: dist[r, where[0]])
        return [(r, float(dist[r, where[0]])) for r in ranked[:n]]

    def _refused(self, view: ClusterView, label: int) -> set[int]:
        from .edits import identify

        index = {fid: i for i, fid in enumerate(self.faces.face_ids)}
        refused: set[int] = set()
        for edit in self.edits.edits:
            if edit.kind != "not_person":
                continue
            anchor = np.array([index[f] for f in edit.anchor if f in index], dtype=np.intp)
            if identify(view.labels, anchor) == label:
                refused.update(index[f] for f in edit.faces if f in index)
        return refused

    def projection(self, method: str | None = None, lam: float | None = None) -> np.ndarray:
        """``(n, 2)`` float32 map of the faces (NaN for faces without complete features); cached per parameters,
        in memory and in the store (a t-SNE or UMAP of a large collection is paid once per collection).
        ``method`` defaults to :func:`~.projection.default_method`; ``lam`` to the current λ."""
        with self._lock:
            self.view  # noqa: B018
            method = method or default_method(len(self.faces))
            lam = float(self.params["lam"] if lam is None else lam)
            metric, valid = self.model.distance_, self.model.valid_index_
            key = (method, round(lam, 6), self.params["fusion"], self.random_state, valid.size)
            stored = self._map_name(method, lam)

            def compute() -> np.ndarray:
                if self.faces.store is not None:
                    try:
                        return np.asarray(self.faces.store.read_array(stored), dtype=np.float32)
                    except StoreError:
                        pass  # not mapped yet (or damaged): compute it
                inner = project(method, distances=metric.pairwise(lam) if method != "pca" else None,
                                points=fused_points(metric, lam) if method == "pca" else None,
                                random_state=self.random_state)
                out = np.full((len(self.faces), 2), np.nan, np.float32)
                out[valid] = inner
                if self.faces.store is not None and method != "pca":  # PCA is instant: not worth a file
                    try:
                        self.faces.store.write_array(stored, out)
                    except (StoreError, OSError) as exc:
                        log.warning("map not kept in the store: %s", exc)
                return out

        return self._maps.get(key, compute)

    def projection_cached(self, method: str, lam: float | None = None) -> bool:
        """Whether :meth:`projection` would answer at once (in memory or in the store)."""
        with self._lock:
            self.view  # noqa: B018
            lam = float(self.params["lam"] if lam is None else lam)
            valid = self.model.valid_index_
            if (method, round(lam, 6), self.params["fusion"], self.random_state, valid.size) in self._maps:
                return True
            if method == "pca" or self.faces.store is None:
                return method == "pca"
            stored = self._map_name(method, lam)
            return stored in self.faces.store.array_names()

    def _map_name(self, method: str, lam: float) -> str:
        """The store entry of a map: the method, the faces mapped, λ, the fusion and the seed, hashed."""
        valid = self.model.valid_index_
        return f"map-{method}-" + fingerprint(np.asarray(self.faces.face_ids, dtype=str)[valid],
                                              np.array([lam, self.random_state]),
                                              np.frombuffer(str(self.params["fusion"]).encode(), np.uint8))

    def sweep(self, eps_values: Iterable[float], lam_values: Iterable[float],
              progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
        """Every (ε, λ) pair clustered on a copy of the estimator (the session's own state is untouched): one row
        each with clusters, noise fraction, silhouette and, with true labels, ARI / NMI / purity. A pair that
        cannot be clustered (e.g. k above the faces DBSCAN keeps) gets NaN scores."""
        with self._lock:
            self.view  # noqa: B018
            model = copy.copy(self.model)
        eps_values, lam_values = [float(e) for e in eps_values], [float(v) for v in lam_values]
        truth = self.faces.labels
        known = np.array([t is not None for t in truth]) if truth is not None else None
        rows, total, done = [], len(eps_values) * len(lam_values), 0
        for lam in lam_values:
            for eps in eps_values:
                row = {"eps": eps, "lam": lam}
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        model.refit(eps=eps, lam=lam)
                    labels = model.labels_
                    row["clusters"] = float(np.unique(labels[labels >= 0]).size)
                    row["noise_fraction"] = float((labels < 0).mean())
                    row["silhouette"] = model_silhouette(model, labels[model.valid_index_])
                    if known is not None:
                        for name, fn in (("ari", ari), ("nmi", nmi), ("purity", purity)):
                            row[name] = float(fn(truth[known].astype(str), labels[known]))
                except (ValueError, MetricInputError) as exc:  # FeatureInputError is a ValueError
                    log.info("sweep: eps=%s lam=%s not clustered (%s)", eps, lam, exc)
                rows.append(row)
                done += 1
                if progress is not None:
                    progress(done, total)
        columns = ["eps", "lam", "clusters", "noise_fraction", "silhouette"]
        columns += list(EXTERNAL_SCORES) if known is not None else []
        return pd.DataFrame(rows).reindex(columns=columns)

    # -- corrections ---------------------------------------------------------------------------
    def _ids(self, rows: Sequence[int]) -> tuple[str, ...]:
        ids = self.faces.face_ids
        rows = sorted({int(r) for r in rows})
        if any(r < 0 or r >= len(ids) for r in rows):
            raise EditError(f"face rows {rows} out of range 0..{len(ids) - 1}")
        return tuple(ids[r] for r in rows)

    def _members(self, label: int) -> tuple[str, ...]:
        members = self.view.members(label)
        if label < 0 or not members.size:
            raise EditError(f"no cluster {label} in the current clustering")
        return tuple(self.faces.face_ids[members])

    def _record(self, *edits: Edit) -> ClusterView:
        for edit in edits:
            self.edits.add(edit)
        self._undone.clear()  # a new correction ends the redo history, as in any editor
        return self._save_and_publish()

    def _save_and_publish(self) -> ClusterView:
        if self.persist:
            try:
                self.edits.save(self.faces.store)
                self.persist_error = None
            except (StoreError, OSError) as exc:
                self.persist_error = str(exc)
                log.warning("corrections kept in memory only: %s", exc)
        return self._publish({k: v for k, v in self.view.timings.items() if k not in ("edits", "total")}, 0.0)

    def merge(self, labels: Sequence[int]) -> ClusterView:
        """Make several clusters one."""
        with self._lock:
            labels = sorted({int(v) for v in labels if int(v) >= 0})
            if len(labels) < 2:
                raise EditError("select faces of at least two clusters to merge them")
            anchor = tuple(f for label in labels for f in self._members(label))
            return self._record(Edit("merge", anchor=anchor))

    def split(self, rows: Sequence[int]) -> ClusterView:
        """Put these faces in a new cluster of their own (pinned through re-clustering)."""
        with self._lock:
            if not len(rows):
                raise EditError("select the faces to split off")
            return self._record(Edit("split", faces=self._ids(rows)))

    def assign(self, rows: Sequence[int], label: int) -> ClusterView:
        """Put these faces into cluster ``label`` (e.g. accepting possible matches)."""
        with self._lock:
            faces = self._ids(rows)
            return self._record(Edit("assign", faces=faces, anchor=self._members(label)))

    def not_person(self, rows: Sequence[int]) -> ClusterView:
        """Mark each face as not the person of the cluster it is in now: it goes to the unknown pool and stays
        out of that cluster after re-clustering."""
        with self._lock:
            view = self.view
            by_label: dict[int, list[int]] = {}
            for r in sorted({int(r) for r in rows}):
                label = int(view.labels[r])
                if label >= 0:
                    by_label.setdefault(label, []).append(r)
            if not by_label:
                raise EditError("the selected faces are in no cluster: nothing to mark")
            edits = []
            for label, members in by_label.items():
                faces = self._ids(members)
                anchor = tuple(f for f in self._members(label) if f not in set(faces))
                if not anchor:
                    raise EditError(f"every face of {view.name_of(label)} is selected: split them off instead")
                edits.append(Edit("not_person", faces=faces, anchor=anchor))
            return self._record(*edits)

    def name(self, label: int, name: str) -> ClusterView:
        """Name cluster ``label`` (the name follows the cluster with the largest overlap after re-clustering)."""
        with self._lock:
            return self._record(Edit("name", anchor=self._members(label), name=name))

    def undo(self) -> ClusterView:
        """Drop the last correction (:meth:`redo` puts it back)."""
        with self._lock:
            edit = self.edits.undo()
            if edit is None:
                raise EditError("no correction to undo")
            self._undone.append(edit)
            return self._save_and_publish()

    def redo(self) -> ClusterView:
        """Put back the correction undone last."""
        with self._lock:
            if not self._undone:
                raise EditError("no undone correction to redo")
            self.edits.add(self._undone.pop())
            return self._save_and_publish()

    @property
    def can_undo(self) -> bool:
        return len(self.edits) > 0

    @property
    def can_redo(self) -> bool:
        return bool(self._undone)

    def reject(self, rows: Sequence[int], label: int) -> ClusterView:
        """Mark faces (e.g. possible matches, in no cluster) as not the person of cluster ``label``: they leave
        its queue of possible matches and never join it through re-clustering."""
        with self._lock:
            faces = self._ids(rows)
            anchor = tuple(f for f in self._members(label) if f not in set(faces))
            if not anchor:
                raise EditError(f"every face of {self.view.name_of(label)} is selected: nothing to compare with")
            return self._record(Edit("not_person", faces=faces, anchor=anchor))
