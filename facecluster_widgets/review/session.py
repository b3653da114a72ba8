"""One collection of faces being clustered, corrected and scored interactively: everything the explorer shows,
computed in plain Python that a test (or a script) can call without a notebook.

The session holds the state (the estimator, the current view, the corrections and their undo history) and
answers from small modules of plain functions: :mod:`.view` (what a clustering looks like), :mod:`.scores`
(silhouette, ARI/NMI/purity, the ε×λ sweep), :mod:`.browse` (gallery, "same person?" pairs, possible matches)
and :mod:`.projection` (the map).

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

from ..cluster import HybridClustering, align_labels
from ..cluster.density import dbscan_kept
from ..cluster.hybrid import DEFAULT_EPS, DEFAULT_LAM, DEFAULT_MIN_SAMPLES, DEFAULT_POSE_WEIGHTING
from ..errors import StoreError
from ..store import Store
from .browse import centroid_distances, gallery, possible_matches, refused_rows, similar_pairs, unknown_pool
from .collection import FaceCollection
from .edits import Edit, EditError, EditLog
from .projection import ProjectionCache, default_method, fused_points, map_name, project
from .scores import EXTERNAL_SCORES, sweep, view_metrics
from .view import NOISE_NAME, ClusterPair, ClusterView, GalleryRow

log = logging.getLogger(__name__)

#: What the explorer's controls change, with the estimator's defaults (one place: cluster/hybrid.py).
DEFAULT_PARAMS: dict[str, object] = {"eps": DEFAULT_EPS, "min_samples": DEFAULT_MIN_SAMPLES, "lam": DEFAULT_LAM,
                                     "n_clusters": "auto", "fusion": "metric",
                                     "pose_weighting": DEFAULT_POSE_WEIGHTING}

__all__ = ["DEFAULT_PARAMS", "EXTERNAL_SCORES", "NOISE_NAME", "ClusterPair", "ClusterSession", "ClusterView",
           "GalleryRow"]


@dataclass
class _Cache:
    number: int = -1
    centroid: tuple[np.ndarray, np.ndarray] | None = None
    metrics: dict | None = None
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _LastRun:
    """What :meth:`ClusterSession.preview` reads of the last finished run: references to arrays a later run
    replaces but never changes."""

    params: dict
    metric: object
    graph: object
    valid: np.ndarray
    labels: np.ndarray
    centroids: dict
    n_clusters: int


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
        self._last: _LastRun | None = None
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

    def update(self, stop: Callable[[], bool] | None = None, **params: object) -> ClusterView:
        """Cluster again with ``params`` changed (first call: fit). On an error the previous state is kept;
        ``stop()`` may end a refit early (:class:`~facecluster_widgets.cluster.hybrid.RefitStopped`, nothing
        changed)."""
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
                    model.fit(self.faces.features, groups=self.faces.groups, pose=self.faces.table)
                    self.model = model
                else:
                    self.model.refit(stop=stop, **new)  # on an error the estimator is left as it was
            self.params = new
            raw = np.asarray(self.model.labels_, dtype=np.int64)
            self._raw = align_labels(self._raw, raw) if self._raw is not None else raw
            model = self.model
            self._last = _LastRun(dict(new), model.distance_, model.graph_, model.valid_index_, model.labels_,
                                  model.centroids_, int(getattr(model, "n_clusters_", 0) or 0))
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
                                 labels=applied.labels, names=applied.names, reason=self._reason(),
                                 timings=timings, unplaced=applied.unplaced, warnings=notes)
        return self._view

    def _reason(self) -> str:
        """Why k is what it is; with pose weighting on, also what the 3D term weighed (the λ slider moves it)."""
        if getattr(self.model, "pose_weighting_", "off") == "off":
            return self.model.n_clusters_reason_
        return f"{self.model.n_clusters_reason_} {self.model.fusion_reason_}"

    def preview(self, **params: object) -> ClusterView | None:
        """DBSCAN's result at once, while :meth:`update` chooses k again: of the faces DBSCAN keeps at ``params``,
        those in a cluster last run stay in it and the others go to the last run's nearest centre (under the new
        λ); the rest are noise. No K-Means++ run and no face × centre matrix (150–280 ms alone at 10,000 faces and
        ~800 clusters); the estimator untouched. ``None`` when there is nothing quicker to show (k fixed by the
        user, a fusion change, no clustering yet). Reads only the last finished run (:class:`_LastRun`), never the
        estimator a refit may be changing, so it needs no lock and answers while :meth:`update` runs."""
        last, shown = self._last, self._raw  # the last finished run: no lock, so it never waits for a refit
        if last is None:
            return None
        new = {**last.params, **params}
        if (new["n_clusters"] != "auto" or new["fusion"] != last.params["fusion"]
                or new["pose_weighting"] != last.params["pose_weighting"] or not last.n_clusters):
            return None
        start = time.perf_counter()
        lam = float(new["lam"])
        metric, valid = last.metric, last.valid
        fused = metric.pairwise(lam) if last.graph is None else last.graph.fused(lam)
        tick = time.perf_counter()
        core = dbscan_kept(fused, float(new["eps"]), int(new["min_samples"]))
        timings = {"fuse": tick - start, "dbscan": time.perf_counter() - tick}
        tick = time.perf_counter()
        inner = np.where(core, last.labels[valid], -1)
        joining = np.flatnonzero(core & (inner < 0))  # kept now, in no cluster last run
        if joining.size:
            inner[joining] = np.argmin(metric.to_centroids(lam, last.centroids, joining), axis=1)
        timings["centres"] = time.perf_counter() - tick
        labels = np.full(len(self.faces), -1, dtype=np.int64)
        labels[valid] = inner
        raw = align_labels(shown, labels)
        applied = self.edits.apply(raw, self.faces.face_ids)
        timings["total"] = time.perf_counter() - start
        return ClusterView(number=next(self._numbers), params=new, raw_labels=raw, labels=applied.labels,
                           names=applied.names, reason=f"DBSCAN (eps={new['eps']}, min_samples="
                           f"{new['min_samples']}) at once, faces in the last run's {last.n_clusters} "
                           "clusters; choosing k for these settings…", timings=timings,
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
        label when there are any (:func:`~.scores.view_metrics`)."""
        with self._lock:
            view = view or self.view
            cache = self._cached(view)
            if cache.metrics is None:
                cache.metrics = view_metrics(self.model, view, self.faces.labels)
            return cache.metrics

    def centroid_distances(self, view: ClusterView | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(clusters, D)``: :func:`~.browse.centroid_distances` of ``view``, cached per view."""
        with self._lock:
            view = view or self.view
            cache = self._cached(view)
            if cache.centroid is None:
                cache.centroid = centroid_distances(self.model, view, float(self.params["lam"]))
            return cache.centroid

    def gallery(self, view: ClusterView | None = None, *, cluster_order: str = "size",
                face_order: str = "closest") -> list[GalleryRow]:
        """Clusters with their faces in display order, the noise faces last (:func:`~.browse.gallery`)."""
        view = view or self.view
        return gallery(view, *self.centroid_distances(view), cluster_order=cluster_order, face_order=face_order)

    def similar_pairs(self, n: int = 10, view: ClusterView | None = None) -> list[ClusterPair]:
        """The ``n`` pairs of clusters nearest each other: the "same person?" suggestions."""
        view = view or self.view
        return similar_pairs(view, *self.centroid_distances(view), n=n)

    def unknown_pool(self, view: ClusterView | None = None) -> np.ndarray:
        """The faces in no cluster, nearest to some cluster's centroid first (faces without features last)."""
        view = view or self.view
        return unknown_pool(view, *self.centroid_distances(view))

    def possible_matches(self, label: int, n: int = 12, view: ClusterView | None = None
                         ) -> list[tuple[int, float]]:
        """A ranked queue for cluster ``label``: faces in no cluster, nearest to its centroid first, leaving out
        faces already marked "not this person" for it. ``[(row, fused distance), ...]``."""
        view = view or self.view
        refused = refused_rows(self.edits.edits, view, self.faces.face_ids, label)
        return possible_matches(view, *self.centroid_distances(view), label, refused, n)

    def projection(self, method: str | None = None, lam: float | None = None) -> np.ndarray:
        """``(n, 2)`` float32 map of the faces (NaN for faces without complete features); cached per parameters,
        in memory and in the store (a t-SNE or UMAP of a large collection is paid once per collection).
        ``method`` defaults to :func:`~.projection.default_method`; ``lam`` to the current λ."""
        with self._lock:
            self.view  # noqa: B018
            method = method or default_method(len(self.faces))
            lam = float(self.params["lam"] if lam is None else lam)
            metric, valid = self.model.distance_, self.model.valid_index_
            key = (method, round(lam, 6), self._fusion_key(), self.random_state, valid.size)
            stored = self._map_name(method, lam)

            def compute() -> np.ndarray:
                kept = self._stored_map(stored)
                if kept is not None:
                    return kept
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
            if (method, round(lam, 6), self._fusion_key(), self.random_state, valid.size) in self._maps:
                return True
            if method == "pca" or self.faces.store is None:
                return method == "pca"
            stored = self._map_name(method, lam)
            return stored in self.faces.store.array_names()

    def _stored_map(self, name: str) -> np.ndarray | None:
        """The map kept in the store, or ``None`` when there is none (never made, or unreadable: made again)."""
        if self.faces.store is None:
            return None
        try:
            return np.asarray(self.faces.store.read_array(name), dtype=np.float32)
        except StoreError:
            return None

    def _fusion_key(self) -> str:
        """The fused distance's kind for the map caches: the fusion, plus the pose weighting when it ran (maps
        kept under the plain fusion's name stay valid)."""
        fusion, pose = str(self.params["fusion"]), str(getattr(self.model, "pose_weighting_", "off"))
        return fusion if pose == "off" else f"{fusion}+{pose}"

    def _map_name(self, method: str, lam: float) -> str:
        return map_name(method, np.asarray(self.faces.face_ids, dtype=str)[self.model.valid_index_], lam,
                        self._fusion_key(), self.random_state)

    def sweep(self, eps_values: Iterable[float], lam_values: Iterable[float],
              progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
        """Every (ε, λ) pair clustered on a copy of the estimator (the session's own state is untouched); see
        :func:`~.scores.sweep`."""
        with self._lock:
            self.view  # noqa: B018 - fits on first use
            model = copy.copy(self.model)
        return sweep(model, eps_values, lam_values, self.faces.labels, progress)

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
