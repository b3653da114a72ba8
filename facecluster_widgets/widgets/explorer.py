"""``ClusterExplorer``: one widget to cluster a collection of faces, see why faces group together, correct the
result and take it out.

A thin view over :class:`~facecluster_widgets.review.session.ClusterSession` (all computation lives there and is tested
without a browser). The explorer composes panels (face, gallery, edit, export: one module each) and hands slider
moves to two :class:`~.scheduler.LatestOnly` workers, each running only the newest request: one shows DBSCAN's
result at once on the last run's clusters (k = "auto" only), the other clusters with k chosen again and gives up
as soon as a newer move comes in. Errors land in an ``ipywidgets.Output`` inside the widget and the previous
result stays on screen.
Selection is ONE list of face rows shown the same by the map (click, lasso), the gallery and the edit panel.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as w
import numpy as np
import pandas as pd
import traitlets

from ..cluster.hybrid import RefitStopped
from ..errors import FaceclusterError
from ..features import Features
from ..io.datasets import FaceSource
from ..review.collection import FaceCollection
from ..review.export import export_view
from ..review.projection import METHODS as PROJECTIONS
from ..review.projection import default_method
from ..review.session import ClusterSession, ClusterView
from ..store import Store, open_store
from ..viz.scatter import COLOR_BY, hover_texts, projection_figure, select_points, update_projection
from ._edit_panel import EditPanel
from ._export_panel import ExportPanel
from ._face_panel import FacePanel
from ._gallery import GalleryPanel
from ._hover import HoverCard
from ._kit import Kit
from ._thumbs import Thumbnails, esc
from .scheduler import LatestOnly, run_now

log = logging.getLogger(__name__)

#: Quiet time after a change before clustering starts (seconds). Sliders send one value on release
#: (``continuous_update=False``), so this only merges changes made together (keyboard, code).
DEBOUNCE = 0.02
#: How long the full update waits for the quick view to be drawn first (seconds; it never waits longer).
PREVIEW_FIRST = 2.0
#: Then a pause for the browser to draw it (seconds): the k search's BLAS threads take both cores of a small machine.
DRAW_GRACE = 0.25
#: What each control means, shown as its tooltip and in the help line.
HELP = {
    "eps": "ε: DBSCAN's radius on the fused distance. Faces with fewer than MinPts others within ε are noise "
           "(crosses); larger ε keeps more faces.",
    "min_samples": "MinPts: how many faces within ε make a face dense enough to keep.",
    "lam": "λ: weight of the 2D embedding in the fused distance (1 = 2D only, 0 = 3D shape only).",
    "k": "k: how many clusters K-Means++ makes of the faces DBSCAN keeps; tick 'auto k' to choose it by the "
         "silhouette.",
}


def as_collection(store_or_faces: object, features: Features | dict | None = None) -> FaceCollection:
    """Whatever a notebook has, as faces: a FaceCollection, a Store or store folder, a folder/list of photos or a
    FaceSource (extracted into the default cache first), a faces table with ``features``, or features alone."""
    if isinstance(store_or_faces, FaceCollection):
        return store_or_faces
    if isinstance(store_or_faces, Store):
        return FaceCollection.from_store(store_or_faces)
    if isinstance(store_or_faces, pd.DataFrame):
        if features is None:
            raise FaceclusterError("a faces table needs its features: ClusterExplorer(table, features)")
        return FaceCollection(store_or_faces, features if isinstance(features, Features) else
                              Features(store_or_faces["face_id"].to_numpy(str), dict(features)))
    if store_or_faces is None:
        if features is None:
            raise FaceclusterError("ClusterExplorer needs a store, photos or features")
        return FaceCollection.from_features(features)
    if isinstance(store_or_faces, str | os.PathLike) and (Path(store_or_faces) / "STORE.json").is_file():
        return FaceCollection.from_store(open_store(store_or_faces, create=False))
    if isinstance(store_or_faces, str | os.PathLike | FaceSource | list | tuple):
        from ..pipeline.extract import extract

        return FaceCollection.from_store(extract(store_or_faces))
    raise FaceclusterError(f"ClusterExplorer cannot read faces from a {type(store_or_faces).__name__}")


@dataclass
class _QuickView:
    """One move's quick view, as the full update waits for it: finished (drawn or not) and whether it was drawn."""

    done: threading.Event = field(default_factory=threading.Event)
    drawn: bool = False


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


class ClusterExplorer(w.VBox):
    """``ClusterExplorer(store_or_faces, features=None, **params)``: the explorer widget.

    ``params`` start the sliders (eps, min_samples, lam, n_clusters, fusion); ``projection`` picks the map
    (t-SNE, UMAP, PCA); ``background=False`` computes in the calling thread (scripts, tests); ``mesh=False``
    leaves out the 3D panel. ``selected`` (face rows) and ``focus`` (the face in the face panel) are traits.
    """

    selected = traitlets.List(traitlets.Int())
    focus = traitlets.Int(-1)

    def __init__(self, store_or_faces: object, features: Features | dict | None = None, *,
                 projection: str | None = None, background: bool = True, debounce: float = DEBOUNCE,
                 mesh: bool = True, session: ClusterSession | None = None, **params: object) -> None:
        kit = Kit()  # the layouts and styles this explorer's widgets share (a page reload rebuilds every model)
        super().__init__(layout=kit.layout())
        self.kit = kit
        faces = session.faces if session is not None else as_collection(store_or_faces, features)
        self.faces = faces
        self.session = session or ClusterSession(faces, **params)
        self.background = background
        self.thumbs = Thumbnails(faces)
        self.last_error: str | None = None
        self._holding = False  # set() moves several controls and runs once
        self._lasso = False  # the current selection came from the map's lasso (its outline stays)
        submit = None if background else run_now
        self.clustering = LatestOnly(self._cluster, debounce=debounce if background else 0.0, submit=submit,
                                     on_error=lambda exc: self._report(exc, "clustering failed"))
        # the quick view on a worker of its own: it never waits behind a refit the slider has made useless
        self.previewing = LatestOnly(self._preview, debounce=debounce if background else 0.0, submit=submit,
                                     on_error=lambda exc: self._report(exc, "the quick view failed"))
        self._drawing = threading.Lock()  # one redraw at a time; a quick view never replaces its full result
        self._full_shown = -1  # generation of the last full result drawn
        self.mapping = LatestOnly(self._remap, submit=submit,
                                  on_error=lambda exc: self._report(exc, "the map failed; the previous map is kept"))
        view = self.session.view
        self._build_controls(view.params, projection or default_method(len(faces)))
        self.face = FacePanel(faces, mesh, kit=kit)
        self.mesh = self.face.mesh
        self.gallery_panel = GalleryPanel(
            lambda cluster_order, face_order: self.session.gallery(self.view, cluster_order=cluster_order,
                                                                   face_order=face_order),
            faces.relative_names, self.thumbs, kit=kit)
        self.gallery = self.gallery_panel.gallery
        self.edit = EditPanel(self, self._guard, kit=kit)
        self.buttons = self.edit.buttons
        self.matches = self.edit.matches
        self.export_panel = ExportPanel(lambda path, fmt: self.export(path, fmt), kit=kit)
        self.map_xy = self.session.projection(self.projection.value)
        self._map_changed = False
        self.figure = projection_figure(self.map_xy, view.labels, hover_text=hover_texts(faces.relative_names),
                                        height=470, color_by="cluster")
        self.hover_card = HoverCard(**kit.look(HoverCard))
        for trace in self.figure.data[:2]:  # point i of either trace is face i
            trace.on_hover(self._on_hover)
            trace.on_click(self._on_click)
        # Lasso / box selections come through the hover card's own state (plotly's FigureWidget dropped fast
        # ones), from the dots trace only: it holds every face (noise dots have size 0 but a position).
        self.hover_card.observe(lambda c: self._set_selection((c["new"] or {}).get("rows", []), lasso=True),
                                names=["lasso"])
        self._layout()
        self.add_class("fc-explorer")
        traitlets.link((self, "selected"), (self.gallery, "selected"))
        traitlets.link((self, "selected"), (self.matches, "selected"))
        self.gallery.observe(self._on_gallery_focus, names=["focus"])
        self.matches.observe(self._on_gallery_focus, names=["focus"])
        self.observe(self._on_selected, names=["selected"])
        self.observe(self._on_focus, names=["focus"])
        self._show_view(view)
        self.focus = self.representative_face(view)

    # -- building ------------------------------------------------------------------------------
    def _build_controls(self, params: dict, projection: str) -> None:
        kit = self.kit
        slider = kit.look(w.FloatSlider, style={"description_width": "initial"}, width="230px")
        self.eps = w.FloatSlider(value=float(params["eps"]), min=0.05, max=1.5, step=0.01, description="ε",
                                 tooltip=HELP["eps"], continuous_update=False, readout_format=".2f", **slider)
        self.min_samples = w.IntSlider(value=int(params["min_samples"]), min=1, max=20, description="MinPts",
                                       tooltip=HELP["min_samples"], continuous_update=False, **slider)
        self.lam = w.FloatSlider(value=float(params["lam"]), min=0.0, max=1.0, step=0.05, description="λ (2D)",
                                 tooltip=HELP["lam"], continuous_update=False, readout_format=".2f", **slider)
        auto = params["n_clusters"] == "auto"
        n_max = max(2, min(300, len(self.faces) - 1))
        self.k = w.IntSlider(value=2 if auto else int(params["n_clusters"]), min=1, max=n_max, description="k",
                             tooltip=HELP["k"], continuous_update=False, disabled=auto, **slider)
        self.auto_k = w.Checkbox(value=auto, description="auto k", indent=False, **kit.look(w.Checkbox, width="80px"),
                                 tooltip="choose k by the silhouette on the fused distance")
        self.fusion = w.Dropdown(options=[("fused metric", "metric"), ("concatenation", "concat")],
                                 value=params["fusion"], description="fusion", **kit.look(w.Dropdown, width="200px"),
                                 tooltip="how the 2D and 3D distances are combined")
        self.projection = w.Dropdown(options=[(p.upper() if p != "tsne" else "t-SNE", p) for p in PROJECTIONS],
                                     value=projection, description="map", **kit.look(w.Dropdown, width="150px"),
                                     tooltip="how the faces are laid out in 2D (positions only; clusters do not "
                                             "depend on it)")
        self.reproject = w.Button(description="re-map at λ", tooltip="recompute the map at the current λ and fusion",
                                  **kit.look(w.Button, width="110px"))
        self.color_by = w.Dropdown(options=[c for c in COLOR_BY if self._colour_values(c) is not False],
                                   value="cluster", description="colour", **kit.look(w.Dropdown, width="170px"),
                                   tooltip="what the colours of the map show")
        html = kit.look(w.HTML)
        self.help = w.HTML("<small>" + " · ".join(esc(HELP[k]) for k in ("eps", "min_samples", "lam", "k"))
                           + "</small>", **html)
        self.help.add_class("fc-help")
        self.status = w.HTML(**html)
        self.status.add_class("fc-status")
        self.timings = w.HTML(**html)
        self.timings.add_class("fc-timings")
        self.errors = w.Output(**kit.look(w.Output, max_height="160px", overflow="auto"))
        self.errors.add_class("fc-errors")
        for control in (self.eps, self.min_samples, self.lam, self.k, self.fusion):
            control.observe(self._on_param, names=["value"])
        self.auto_k.observe(self._on_auto, names=["value"])
        self.projection.observe(lambda _: self._schedule_projection(), names=["value"])
        self.reproject.on_click(lambda _: self._schedule_projection())
        self.color_by.observe(lambda _: self._guard(self._restyle), names=["value"])

    def _layout(self) -> None:
        kit = self.kit
        box = kit.look(w.Box)
        controls = w.VBox([
            w.HBox([self.eps, self.min_samples, self.lam, self.k, self.auto_k], **box),
            w.HBox([self.fusion, self.projection, self.reproject, self.color_by], **box),
            self.help,
            w.HBox([self.status, self.timings], **kit.look(w.Box, justify_content="space-between")),
        ], **box)
        self.metrics = w.HTML(**kit.look(w.HTML))
        self.metrics.add_class("fc-metrics")
        side = w.VBox([self.metrics, self.hover_card], **kit.look(w.Box, width="300px", padding="0 0 0 8px"))
        tabs = w.Tab(children=[self.gallery_panel, self.edit, self.export_panel], **box)
        for i, title in enumerate(("Gallery", "Edit", "Export")):
            tabs.set_title(i, title)
        self.tabs = tabs
        self.children = [controls, w.HBox([self.figure, side], **box), self.face, tabs, self.errors]

    # -- state from the controls -------------------------------------------------------------
    def _params(self) -> dict:
        # rounded: a slider's 0.85 arrives as 0.8500000000000001, which would show in every message
        return {"eps": round(float(self.eps.value), 4), "min_samples": int(self.min_samples.value),
                "lam": round(float(self.lam.value), 4),
                "n_clusters": "auto" if self.auto_k.value else int(self.k.value), "fusion": self.fusion.value}

    def set(self, **params: object) -> ClusterExplorer:
        """Move the controls from code (``n_clusters="auto"`` ticks the toggle); one run for all of them."""
        unknown = set(params) - {"eps", "min_samples", "lam", "fusion", "n_clusters"}
        if unknown:
            raise TypeError(f"unknown control(s) {sorted(unknown)}")
        self._holding = True
        try:
            for name, value in params.items():
                if name == "n_clusters":
                    self.auto_k.value = value == "auto"
                    if value != "auto":
                        self.k.value = int(value)
                else:
                    getattr(self, name).value = value
        finally:
            self._holding = False
        self._schedule()
        return self

    @property
    def view(self) -> ClusterView:
        return self.session.view

    @property
    def labels(self) -> np.ndarray:
        """The cluster of each face as shown (after corrections); −1 = in no cluster."""
        return self.session.view.labels

    def representative_face(self, view: ClusterView) -> int:
        """Where the face panel starts: the face nearest the centre of the largest cluster (not a random first
        row, which on a real collection may be a profile with poor landmarks)."""
        rows = self.session.gallery(view)
        clusters = [r for r in rows if r.label >= 0 and r.rows.size]
        return int(clusters[0].rows[0]) if clusters else 0

    # -- background clustering -----------------------------------------------------------------
    def _on_param(self, change: dict) -> None:
        if self._holding or (change["owner"] is self.k and self.auto_k.value):
            return  # set() runs once at the end; the disabled k slider only shows what "auto" chose
        self._schedule()

    def _on_auto(self, change: dict) -> None:
        self.k.disabled = bool(change["new"])
        if self._holding:
            return
        self._schedule()  # the k slider already shows the k "auto" chose: unticking keeps the clustering

    def _schedule(self) -> None:
        self._set_busy(True)
        params, quick = self._params(), _QuickView()
        self.previewing.request((self.clustering.generation + 1, params, quick))
        self.clustering.request((params, quick))

    def _preview(self, request: tuple[int, dict, _QuickView], is_current) -> None:
        """The quick view (k = "auto" only): DBSCAN's result on the last run's clusters, unless the full result of
        the same move is already drawn."""
        generation, params, signal = request
        try:
            quick = self.session.preview(**params)
            if quick is None:
                return
            with self._drawing:
                if is_current() and self._full_shown < generation:  # every move asks both workers
                    self._guard(self._show_view, quick, "choosing k…")
                    signal.drawn = True
        finally:
            signal.done.set()

    def _cluster(self, request: tuple[dict, _QuickView], is_current) -> None:
        """The scheduler's work: the full update (k chosen again), started once the quick view is drawn (running
        both at once made each wait for the other's turn in Python: λ moves at 10,000 faces took 0.6–2.3 s to
        colours) and given up as soon as a newer move comes in."""
        params, quick = request
        if quick.done.wait(PREVIEW_FIRST) and quick.drawn and self.background:
            time.sleep(DRAW_GRACE)  # the browser draws the quick view before the k search takes both cores
        if not is_current():
            return
        generation = self.clustering.generation
        try:
            view = self.session.update(stop=lambda: not is_current(), **params)
        except RefitStopped:
            return  # a newer move is on its way
        except Exception as exc:  # shown in the widget; the previous result stays
            self._report(exc, "clustering failed; the previous result is kept")
            if is_current():
                self._show_view(self.session.view, error=True)
            return
        with self._drawing:
            if is_current():
                self._full_shown = generation
                self._guard(self._show_view, view)

    def wait(self, timeout: float = 120.0) -> ClusterExplorer:
        """Block until no clustering or re-mapping is pending or running (scripts and tests)."""
        if not (self.previewing.wait(timeout) and self.clustering.wait(timeout) and self.mapping.wait(timeout)):
            raise TimeoutError(f"clustering still running after {timeout} s")
        return self

    def _schedule_projection(self) -> None:
        method = self.projection.value
        self.status.value = self._status_html(self.view, busy=f"computing the {method} map…")
        self.mapping.request((method, float(self.lam.value)))

    def _remap(self, request: tuple[str, float], is_current) -> None:
        method, lam = request
        started = time.perf_counter()
        ticking = threading.Event()
        cached = self.session.projection_cached(method, lam)

        def tick() -> None:  # the time so far, every second: a t-SNE or UMAP of 1,000+ faces takes a while
            while not ticking.wait(1.0):
                if is_current():
                    seconds = time.perf_counter() - started
                    self.status.value = self._status_html(
                        self.view, busy=f"computing the {method} map… {seconds:.0f} s (kept in the store after"
                                        " this, so it is paid once per collection)")

        if not cached:
            threading.Thread(target=tick, daemon=True).start()
        try:
            xy = self.session.projection(method, lam)
        finally:
            ticking.set()
        if is_current():
            self.map_xy, self._map_changed = xy, True
            self._guard(self._show_view, self.view)
            source = "from the store" if cached else f"{time.perf_counter() - started:.1f} s"
            self.timings.value += f"<small> · {method} map {source}</small>"

    # -- drawing ------------------------------------------------------------------------------
    def _set_busy(self, busy: bool) -> None:
        self.status.value = self._status_html(self.view, busy="clustering…" if busy else None)

    def _status_html(self, view: ClusterView, busy: str | None = None, error: bool = False) -> str:
        count = (f'<span class="fc-cluster-count">{view.n_clusters}</span> clusters · {view.n_noise} in no cluster'
                 f" · {_plural(len(view.labels), 'face')}")
        if busy:
            state = f'<span style="color:#b36b00">⏳ {esc(busy)}</span>'
        elif error:
            state = '<span style="color:#c00">⚠ last change failed (see below); showing the previous result</span>'
        else:
            state = '<span style="color:#2a7a2a">✓ up to date</span>'
        extra = "".join(f"<br><small>⚠ {esc(msg)}</small>" for msg in view.warnings)
        if view.unplaced:
            extra += f"<br><small>names with no cluster now: {esc(', '.join(view.unplaced))}</small>"
        return f"<div>{state} &nbsp; {count}<br><small>{esc(view.reason)}</small>{extra}</div>"

    def _colour_values(self, color_by: str) -> object:
        if color_by == "label":
            return self.faces.labels if self.faces.labels is not None else False
        if color_by == "yaw":
            values = self.faces.column("yaw")
            return values.astype(np.float32) if values is not None and np.isfinite(values).any() else False
        if color_by == "dataset":
            values = self.faces.column("dataset")
            return values if values is not None and len(set(map(str, values))) > 1 else False
        return None

    def _pending_xy(self) -> np.ndarray | None:
        """The map's coordinates when they changed since the last redraw (else None: only colours are sent)."""
        if not self._map_changed:
            return None
        self._map_changed = False
        return self.map_xy

    def _restyle(self, view: ClusterView | None = None) -> None:
        view = view or self.view
        values = self._colour_values(self.color_by.value)
        update_projection(self.figure, view.labels, color_by=self.color_by.value,
                          values=None if values is False else values, names=view.names)

    def _show_view(self, view: ClusterView, busy: str | None = None, error: bool = False) -> None:
        """Colours first (one message to the browser), then the panels."""
        start = time.perf_counter()
        values = self._colour_values(self.color_by.value)
        update_projection(self.figure, view.labels, color_by=self.color_by.value,
                          values=None if values is False else values, xy=self._pending_xy(), names=view.names,
                          centres=not view.preview)
        self.status.value = self._status_html(view, busy=busy, error=error)
        if view.preview:
            return  # the full result follows; the panels wait for it
        self.metrics.value = self._metrics_html(view)
        self.gallery_panel.refresh()
        self.edit.refresh(view)
        self.face.retitle(view)
        if self.auto_k.value and view.n_clusters:  # show the k that "auto" chose on the disabled slider
            self._holding = True
            try:
                self.k.value = max(self.k.min, min(self.k.max, int(self.session.model.n_clusters_)))
            finally:
                self._holding = False
        t = view.timings
        parts = " · ".join(f"{k} {1000 * t[k]:.0f}" for k in ("fuse", "dbscan", "kmeans", "edits") if k in t)
        self.timings.value = (f"<small>last run {1000 * t.get('total', 0):.0f} ms ({parts} ms) · "
                              f"view {1000 * (time.perf_counter() - start):.0f} ms</small>")

    def _metrics_html(self, view: ClusterView) -> str:
        m = self.session.metrics(view)
        rows = [("silhouette", m.get("silhouette")), ("ARI", m.get("ari")), ("NMI", m.get("nmi")),
                ("purity", m.get("purity"))]
        cells = "".join(f"<tr><td>{name}</td><td style='text-align:right'>{value:.3f}</td></tr>"
                        for name, value in rows if value is not None and np.isfinite(value))
        note = ("" if self.faces.labels is None else
                f"<br><small>ARI / NMI / purity against the {int(m['labelled_faces'])} faces with a known "
                "identity; noise counts as singletons</small>")
        noise = ("" if view.params.get("n_clusters") != "auto" else
                 "<br><small>Why k may differ from <code>facecluster evaluate</code>'s: the first clustering here "
                 "is the one it reports for these settings; after a slider move, k is searched near the previous "
                 "k (warm start, fast), so coming back to the same settings can settle on a nearby k.</small>")
        return (f"<b>Metrics</b><table class='fc-metrics-table'>{cells}</table>"
                f"<small>{view.n_clusters} clusters, {100 * m['noise_fraction']:.0f} % of faces in none</small>"
                f"{note}{noise}")

    # -- events ------------------------------------------------------------------------------
    def _on_hover(self, _trace, points, _state) -> None:
        if not points.point_inds:
            return
        row = int(points.point_inds[0])
        view = self.view
        self.hover_card.card = {"row": row, "src": self.thumbs.uri(row, 128),
                                "title": self.faces.relative_names[row],
                                "detail": view.name_of(int(view.labels[row]))}

    def _on_click(self, _trace, points, state) -> None:
        if not points.point_inds:
            return
        row = int(points.point_inds[0])
        if getattr(state, "shift", False) or getattr(state, "ctrl", False) or getattr(state, "meta", False):
            self._set_selection(sorted(set(self.selected) ^ {row}))
        else:
            self._set_selection([row])
        self.focus = row

    def _set_selection(self, rows: Sequence[int], lasso: bool = False) -> None:
        self._lasso = lasso
        rows = [int(r) for r in rows]
        if rows == self.selected:  # the traitlet would not fire: the map still needs the new outline state
            self._on_selected(None)
        self.selected = rows

    def _on_gallery_focus(self, change: dict) -> None:
        if change["new"] >= 0:
            self.focus = int(change["new"])

    def _on_selected(self, _change: dict | None) -> None:
        lasso, self._lasso = self._lasso, False
        select_points(self.figure, self.selected, keep_outline=lasso)
        self.hover_card.selected = [int(r) for r in self.selected] or None  # the browser keeps the map on it
        self._guard(self.edit.refresh, self.view)

    def _on_focus(self, change: dict) -> None:
        if 0 <= change["new"] < len(self.faces):
            self._guard(self.face.show, int(change["new"]), self.view)
            self._guard(self.edit.refresh, self.view)

    # -- corrections and export ------------------------------------------------------------
    def edited(self, view: ClusterView, message: str) -> None:
        """After a correction: say what was done, redraw."""
        self.edit.info.value = f"<small>{esc(message)}</small>"
        self._show_view(view)

    def export(self, path: str | os.PathLike, fmt: str = "csv") -> object:
        """Export the clustering as shown: ``fmt`` "csv"/"json" (a table; missing folders are made) or
        "symlink"/"copy" (a folder per cluster, which must not exist yet or be empty). Returns the file path or
        the folder summary."""
        return export_view(self.faces, self.view, path, fmt)

    # -- life cycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Close every widget model this explorer made (controls, map, panels, their layouts and styles) and stop
        its worker threads. Until closed, a kernel keeps an explorer's ~120 models even when no cell shows it, and a
        page (re)load rebuilds them all: close an explorer a new one replaces."""
        self.clustering.close()
        self.previewing.close()
        self.mapping.close()
        for widget in reversed(widget_tree(self)[1:]):
            w.Widget.close(widget)  # ipywidgets' own: k3d's Plot.close only clears its outputs, its model stays
        self.kit.close()  # a shared layout or style no widget holds any more
        super().close()

    # -- errors -----------------------------------------------------------------------------
    def _guard(self, fn, *args) -> None:
        """Run ``fn``; an exception is shown in the widget's error area instead of vanishing in the kernel log."""
        try:
            fn(*args)
        except Exception as exc:
            self._report(exc, "")

    def _report(self, exc: BaseException, context: str) -> None:
        self.last_error = f"{type(exc).__name__}: {exc}"
        detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        text = (f"{context}: " if context else "") + detail + "\n"
        if not isinstance(exc, FaceclusterError | ValueError):
            text += "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-4:])
        self.errors.outputs = ({"output_type": "stream", "name": "stderr", "text": text},)
        log.warning("explorer: %s", self.last_error)


def widget_tree(root: w.Widget) -> list[w.Widget]:
    """``root`` and every widget it holds, in a synced trait (children, layout, style) or an attribute (a panel
    not shown yet, k3d's plot objects), parents first."""
    found: dict[int, w.Widget] = {}
    todo = [root]
    while todo:
        widget = todo.pop()
        if id(widget) in found:
            continue
        found[id(widget)] = widget
        held = [getattr(widget, name, None) for name in widget.keys] + list(vars(widget).values())
        for value in held:
            for item in value if isinstance(value, list | tuple) else (value,):
                if isinstance(item, w.Widget):
                    todo.append(item)
    return list(found.values())
