"""``ClusterExplorer``: one widget to cluster a collection of faces, see why faces group together, correct the
result and take it out.

A thin view over :class:`~facecluster_widgets.review.session.ClusterSession` (all computation lives there and is tested
without a browser). Slider moves are debounced and clustered on a worker thread, so the notebook stays usable
during a long run; each run carries a generation number and a result that is no longer the newest is dropped
(the "stale result" guard). Errors land in an ``ipywidgets.Output`` inside the widget and the previous result
stays on screen. Selection is one list of face rows shared by the scatter (click, lasso), the gallery and the
edit panel.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import ipywidgets as w
import numpy as np
import pandas as pd
import traitlets

from ..errors import FaceclusterError
from ..features import Features
from ..io.datasets import FaceSource
from ..review.collection import FaceCollection
from ..review.export import assignments, export_folders, export_table
from ..review.projection import METHODS as PROJECTIONS
from ..review.projection import default_method
from ..review.session import ClusterSession, ClusterView
from ..standardize import StandardiseConfig, standardise
from ..store import Store, open_store
from ..viz.scatter import COLOR_BY, hover_texts, projection_figure, select_points, update_projection
from ._gallery import Gallery
from ._thumbs import Thumbnails, crop_around, draw_landmarks, encode, esc
from .mesh_viewer import MeshViewer

log = logging.getLogger(__name__)

#: Quiet time after the last slider move before clustering starts (seconds).
DEBOUNCE = 0.25
#: Clusters drawn in the gallery (largest first by default) and faces per row; the rest is counted, not drawn.
GALLERY_CLUSTERS = 30
GALLERY_FACES = 12
MATCHES = 12


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
        super().__init__()
        faces = session.faces if session is not None else as_collection(store_or_faces, features)
        self.faces = faces
        self.session = session or ClusterSession(faces, **params)
        self.background, self.debounce = background, debounce
        self.thumbs = Thumbnails(faces)
        self._state_lock = threading.Lock()  # generation counter and timer
        self._run_lock = threading.Lock()    # one clustering at a time
        self._view_lock = threading.RLock()  # one redraw at a time
        self._generation = 0
        self._timer: threading.Timer | None = None
        self._projection_generation = 0
        self._projection_thread: threading.Thread | None = None
        self._matches_for: int | None = None
        self._holding = False  # set() moves several controls and runs once
        self.last_error: str | None = None
        view = self.session.view
        self._build_controls(view.params, projection or default_method(len(faces)))
        self._build_panels(mesh)
        self.map_xy = self.session.projection(self.projection.value)
        self._map_changed = False
        self.figure = projection_figure(self.map_xy, view.labels, hover_text=hover_texts(faces.file_names),
                                        height=470, color_by="cluster")
        for trace in self.figure.data:  # point i of either trace is face i
            trace.on_hover(self._on_hover)
            trace.on_click(self._on_click)
        # Selection from the dots trace only: it holds every face (noise dots have size 0 but a position), so a
        # lasso reports all faces inside it there; the crosses trace would report the noise faces a second time.
        self.figure.data[0].on_selection(self._on_selection)
        self.figure.data[0].on_deselect(lambda *_: self._set_selection([]))
        self._layout()
        self.add_class("fc-explorer")
        traitlets.link((self, "selected"), (self.gallery, "selected"))
        traitlets.link((self, "selected"), (self.matches, "selected"))
        self.gallery.observe(self._on_gallery_focus, names=["focus"])
        self.matches.observe(self._on_gallery_focus, names=["focus"])
        self.observe(self._on_selected, names=["selected"])
        self.observe(self._on_focus, names=["focus"])
        self._show_view(view)
        rows = self.session.gallery(view)
        start = int(rows[0].rows[0]) if rows and rows[0].label >= 0 and rows[0].rows.size else 0
        self.focus = start

    # -- building ------------------------------------------------------------------------------
    def _build_controls(self, params: dict, projection: str) -> None:
        style = {"description_width": "initial"}
        row = w.Layout(width="230px")
        self.eps = w.FloatSlider(value=float(params["eps"]), min=0.05, max=1.5, step=0.01, description="ε",
                                 continuous_update=False, readout_format=".2f", layout=row, style=style)
        self.min_samples = w.IntSlider(value=int(params["min_samples"]), min=1, max=20, description="MinPts",
                                       continuous_update=False, layout=row, style=style)
        self.lam = w.FloatSlider(value=float(params["lam"]), min=0.0, max=1.0, step=0.05, description="λ (2D)",
                                 continuous_update=False, readout_format=".2f", layout=row, style=style)
        auto = params["n_clusters"] == "auto"
        n_max = max(2, min(300, len(self.faces) - 1))
        self.k = w.IntSlider(value=2 if auto else int(params["n_clusters"]), min=1, max=n_max, description="k",
                             continuous_update=False, disabled=auto, layout=row, style=style)
        self.auto_k = w.Checkbox(value=auto, description="auto k", indent=False, layout=w.Layout(width="80px"))
        self.fusion = w.Dropdown(options=[("fused metric", "metric"), ("concatenation", "concat")],
                                 value=params["fusion"], description="fusion", layout=w.Layout(width="200px"))
        self.projection = w.Dropdown(options=[(p.upper() if p != "tsne" else "t-SNE", p) for p in PROJECTIONS],
                                     value=projection, description="map", layout=w.Layout(width="150px"))
        self.reproject = w.Button(description="re-map at λ", tooltip="recompute the map at the current λ and fusion",
                                  layout=w.Layout(width="110px"))
        self.color_by = w.Dropdown(options=[c for c in COLOR_BY if self._colour_values(c) is not False],
                                   value="cluster", description="colour", layout=w.Layout(width="170px"))
        self.status = w.HTML()
        self.status.add_class("fc-status")
        self.timings = w.HTML()
        self.timings.add_class("fc-timings")
        self.errors = w.Output(layout=w.Layout(max_height="160px", overflow="auto"))
        self.errors.add_class("fc-errors")
        for control in (self.eps, self.min_samples, self.lam, self.k, self.fusion):
            control.observe(self._on_param, names=["value"])
        self.auto_k.observe(self._on_auto, names=["value"])
        self.projection.observe(lambda _: self._schedule_projection(), names=["value"])
        self.reproject.on_click(lambda _: self._schedule_projection())
        self.color_by.observe(lambda _: self._restyle(), names=["value"])

    def _build_panels(self, mesh: bool) -> None:
        self.hover_image = w.Image(value=encode(np.full((4, 4, 3), 245, np.uint8)), format="png",
                                   layout=w.Layout(width="128px", height="128px", object_fit="contain"))
        self.hover_label = w.HTML("<small>hover over a face</small>")
        self.hover_label.add_class("fc-hover-label")
        self.metrics = w.HTML()
        self.metrics.add_class("fc-metrics")
        self.face_title = w.HTML()
        self.face_title.add_class("fc-face-title")
        self.photo = w.Image(format="png", layout=w.Layout(max_width="260px", max_height="260px",
                                                           object_fit="contain"))
        self.steps = [w.Image(format="png", layout=w.Layout(width="112px", height="112px")) for _ in range(3)]
        self.step_labels = [w.HTML(f"<small>{t}</small>") for t in ("grey (NTSC)", "aligned", "CLAHE")]
        self.mesh = MeshViewer(self.faces, height=320) if mesh else None
        if self.mesh is not None:
            self.mesh.layout.width = "460px"  # a narrower canvas: the face fills more of it
        self.gallery = Gallery()
        self.gallery.add_class("fc-gallery-widget")
        self.cluster_order = w.Dropdown(options=[("largest first", "size"), ("tightest first", "spread"),
                                                 ("by name", "name")], value="size", description="clusters",
                                        layout=w.Layout(width="220px"))
        self.face_order = w.Dropdown(options=[("closest to centre", "closest"), ("farthest first", "farthest")],
                                     value="closest", description="faces", layout=w.Layout(width="220px"))
        self.cluster_order.observe(lambda _: self._refresh_gallery(), names=["value"])
        self.face_order.observe(lambda _: self._refresh_gallery(), names=["value"])
        # edits
        self.selection_info = w.HTML()
        self.name_text = w.Text(placeholder="name for the cluster of the focused face", layout=w.Layout(width="300px"))
        buttons = {
            "merge": ("merge clusters", "merge every cluster with a selected face into one", self._do_merge),
            "split": ("split off", "put the selected faces in a new cluster of their own", self._do_split),
            "not_person": ("not this person", "move the selected faces out of their cluster, for good",
                           self._do_not_person),
            "name": ("name", "name the cluster of the focused face", self._do_name),
            "accept": ("add to cluster", "put the selected unassigned faces into the cluster of the queue",
                       self._do_accept),
            "unknown": ("select unknown pool", "select every face in no cluster", self._do_unknown),
            "undo": ("undo", "drop the last correction", self._do_undo),
        }
        self.buttons = {}
        for key, (label, tip, action) in buttons.items():
            button = w.Button(description=label, tooltip=tip, layout=w.Layout(width="auto"))
            button.on_click(lambda _b, act=action: self._guard(act))
            self.buttons[key] = button
        self.matches_title = w.HTML()
        self.matches = Gallery()
        self.edit_info = w.HTML()
        # export
        self.export_path = w.Text(value="facecluster-export", description="to", layout=w.Layout(width="360px"))
        self.export_format = w.Dropdown(options=[("CSV table", "csv"), ("JSON table", "json"),
                                                 ("folders of links", "symlink"), ("folders of copies", "copy")],
                                        value="csv", layout=w.Layout(width="170px"))
        self.export_button = w.Button(description="export", layout=w.Layout(width="90px"))
        self.export_button.on_click(lambda _: self._guard(self._do_export))
        self.export_result = w.HTML()

    def _layout(self) -> None:
        controls = w.VBox([
            w.HBox([self.eps, self.min_samples, self.lam, self.k, self.auto_k]),
            w.HBox([self.fusion, self.projection, self.reproject, self.color_by]),
            w.HBox([self.status, self.timings], layout=w.Layout(justify_content="space-between")),
        ])
        side = w.VBox([self.hover_image, self.hover_label, self.metrics],
                      layout=w.Layout(width="300px", padding="0 0 0 8px"))
        steps = w.HBox([w.VBox([img, label]) for img, label in zip(self.steps, self.step_labels, strict=True)])
        face_left = w.VBox([self.face_title, w.HBox([self.photo]), steps], layout=w.Layout(width="420px"))
        face = w.HBox([face_left] + ([self.mesh] if self.mesh is not None else []))
        face.add_class("fc-face-panel")
        gallery = w.VBox([w.HBox([self.cluster_order, self.face_order]), self.gallery])
        b = self.buttons
        edit = w.VBox([
            self.selection_info,
            w.HBox([b["merge"], b["split"], b["not_person"], b["undo"]]),
            w.HBox([self.name_text, b["name"]]),
            w.HTML("<b>Possible matches</b> <small>(faces in no cluster, nearest to the focused face's cluster "
                   "first; select some and add them)</small>"),
            self.matches_title, self.matches, w.HBox([b["accept"], b["unknown"]]), self.edit_info,
        ])
        export = w.VBox([w.HBox([self.export_path, self.export_format, self.export_button]), self.export_result])
        tabs = w.Tab(children=[gallery, edit, export])
        for i, title in enumerate(("Gallery", "Edit", "Export")):
            tabs.set_title(i, title)
        self.tabs = tabs
        self.children = [controls, w.HBox([self.figure, side]), face, tabs, self.errors]

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
        with self._state_lock:
            self._generation += 1
            generation = self._generation
            if self._timer is not None:
                self._timer.cancel()
            self._set_busy(True)
            if not self.background:
                self._timer = None
            else:
                self._timer = threading.Timer(self.debounce, self._run, args=(generation,))
                self._timer.daemon = True
                self._timer.start()
        if not self.background:
            self._run(generation)

    def _run(self, generation: int) -> None:
        with self._run_lock:
            if generation != self._generation:
                return  # a newer request came in before this one started; its own run follows
            try:
                view = self.session.update(**self._params())
            except Exception as exc:  # shown in the widget; the previous result stays
                self._report(exc, "clustering failed; the previous result is kept")
                if generation == self._generation:
                    self._set_busy(False, error=True)
                return
            if generation != self._generation:
                return  # stale: the controls moved while this ran
            self._guard(self._show_view, view)

    def wait(self, timeout: float = 120.0) -> ClusterExplorer:
        """Block until no clustering or re-mapping is pending or running (scripts and tests)."""
        deadline = time.monotonic() + timeout
        while True:
            timer, thread = self._timer, self._projection_thread
            if timer is not None:
                timer.join(max(0.0, deadline - time.monotonic()))
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
            if not self._run_lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
                raise TimeoutError(f"clustering still running after {timeout} s")
            self._run_lock.release()
            if self._timer is timer and self._projection_thread is thread:
                return self
            if time.monotonic() > deadline:
                raise TimeoutError(f"clustering still pending after {timeout} s")

    def _schedule_projection(self) -> None:
        self._projection_generation += 1
        generation, method = self._projection_generation, self.projection.value
        lam = float(self.lam.value)
        self.status.value = self._status_html(self.view, busy=f"computing the {method} map…")

        def work() -> None:
            try:
                xy = self.session.projection(method, lam)
            except Exception as exc:
                self._report(exc, f"the {method} map failed; the previous map is kept")
                return
            if generation == self._projection_generation:
                self.map_xy, self._map_changed = xy, True
                self._guard(self._show_view, self.view)

        if self.background:
            self._projection_thread = threading.Thread(target=work, daemon=True)
            self._projection_thread.start()
        else:
            work()

    # -- drawing ------------------------------------------------------------------------------
    def _set_busy(self, busy: bool, error: bool = False) -> None:
        view = self.session.view
        self.status.value = self._status_html(view, busy="clustering…" if busy else None, error=error)

    def _status_html(self, view: ClusterView, busy: str | None = None, error: bool = False) -> str:
        count = (f'<span class="fc-cluster-count">{view.n_clusters}</span> clusters · {view.n_noise} in no cluster'
                 f" · {len(view.labels)} faces")
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

    def _restyle(self) -> None:
        view = self.view
        values = self._colour_values(self.color_by.value)
        with self._view_lock:
            update_projection(self.figure, view.labels, color_by=self.color_by.value,
                              values=None if values is False else values)

    def _show_view(self, view: ClusterView) -> None:
        start = time.perf_counter()
        with self._view_lock:
            values = self._colour_values(self.color_by.value)
            update_projection(self.figure, view.labels, color_by=self.color_by.value,
                              values=None if values is False else values, xy=self._pending_xy())
            self.metrics.value = self._metrics_html(view)
            self._refresh_gallery(view)
            self._refresh_edit_panel(view)
            self._refresh_face_title(view)
            self.status.value = self._status_html(view)
            if self.auto_k.value and view.n_clusters:  # show the k that "auto" chose on the disabled slider
                self.k.value = max(self.k.min, min(self.k.max, int(self.session.model.n_clusters_)))
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
        return (f"<b>Metrics</b><table class='fc-metrics-table'>{cells}</table>"
                f"<small>{view.n_clusters} clusters, {100 * m['noise_fraction']:.0f} % of faces in none</small>{note}")

    def _refresh_gallery(self, view: ClusterView | None = None) -> None:
        view = view or self.view
        rows = self.session.gallery(view, cluster_order=self.cluster_order.value, face_order=self.face_order.value)
        clusters = [r for r in rows if r.label >= 0][:GALLERY_CLUSTERS] + [r for r in rows if r.label < 0]
        names = self.faces.file_names
        self.gallery.rows = [{
            "label": int(r.label), "title": f"{r.name} · {r.size}", "members": [int(x) for x in r.rows],
            "faces": [{"row": int(x), "src": self.thumbs.uri(int(x)), "tip": names[int(x)]}
                      for x in r.rows[:GALLERY_FACES]],
            "more": max(0, r.size - GALLERY_FACES)} for r in clusters]

    def _focus_cluster(self, view: ClusterView) -> int | None:
        if 0 <= self.focus < len(view.labels) and view.labels[self.focus] >= 0:
            return int(view.labels[self.focus])
        chosen = {int(view.labels[r]) for r in self.selected if view.labels[r] >= 0}
        return chosen.pop() if len(chosen) == 1 else None

    def _refresh_edit_panel(self, view: ClusterView | None = None) -> None:
        view = view or self.view
        chosen = sorted({int(view.labels[r]) for r in self.selected})
        named = ", ".join(view.name_of(c) for c in chosen[:6]) + (" …" if len(chosen) > 6 else "")
        self.selection_info.value = (f"<b>{len(self.selected)}</b> face(s) selected"
                                     + (f" from: {esc(named)}" if chosen else
                                        " <small>(click, lasso or box-select in the map, or click in the gallery; "
                                        "shift adds)</small>"))
        label = self._focus_cluster(view)
        self._matches_for = label
        if label is None:
            self.matches_title.value = "<small>focus a face in a cluster to see its queue</small>"
            self.matches.rows = []
            return
        queue = self.session.possible_matches(label, MATCHES, view)
        self.matches_title.value = f"<small>for <b>{esc(view.name_of(label))}</b>: {len(queue)} candidate(s)</small>"
        names = self.faces.file_names
        self.matches.rows = [{"label": -1, "title": "nearest first", "members": [r for r, _ in queue],
                              "faces": [{"row": r, "src": self.thumbs.uri(r), "tip": f"{names[r]} ({d:.2f})"}
                                        for r, d in queue], "more": 0}] if queue else []

    def _refresh_face_title(self, view: ClusterView) -> None:
        row = self.focus
        if not 0 <= row < len(self.faces):
            self.face_title.value = ""
            return
        table = self.faces.table
        true = self.faces.labels[row] if self.faces.labels is not None else None
        yaw = table["yaw"].iloc[row] if "yaw" in table else np.nan
        bits = [f"cluster <b>{esc(view.name_of(int(view.labels[row])))}</b>"]
        if true is not None:
            bits.append(f"identity {esc(true)}")
        if np.isfinite(yaw):
            bits.append(f"yaw {yaw:+.0f}°")
        self.face_title.value = (f"<div style='line-height:1.3'><b>{esc(self.faces.file_names[row])}</b><br>"
                                 f"<small>{' · '.join(bits)}</small></div>")

    def _show_face(self, row: int) -> None:
        """Photo with landmarks, the standardisation steps, the 3D surface."""
        faces = self.faces
        self._refresh_face_title(self.view)
        detection = faces.detection(row)
        try:
            rgb = faces.photo(row)
        except FaceclusterError as exc:
            rgb = None
            self.face_title.value += f"<small>photo unavailable: {esc(exc)}</small>"
        if rgb is not None:
            marked = draw_landmarks(rgb, detection)
            shown = crop_around(marked, detection.box, 0.5) if detection is not None else marked
            self.photo.value = encode(shown, "png", 260)
            if detection is not None and detection.points5 is not None:
                steps = standardise(rgb, detection.points5, StandardiseConfig()).steps()
                grey = crop_around(steps["grey"], detection.box, 0.3)
                images = [grey, steps.get("aligned"), steps.get("clahe")]
            else:
                images = [None, faces.crop(row), faces.standardised(row)]
        else:
            self.photo.value = encode(faces.thumbnail(row), "png") if faces.thumbnail(row) is not None else b""
            images = [None, faces.crop(row), faces.standardised(row)]
        for widget, image in zip(self.steps, images, strict=True):
            widget.value = encode(image, "png", 112) if image is not None else b""
        if self.mesh is not None:
            self.mesh.show(row)

    # -- events ------------------------------------------------------------------------------
    def _on_hover(self, _trace, points, _state) -> None:
        if not points.point_inds:
            return
        row = int(points.point_inds[0])
        picture = self.faces.thumbnail(row)
        if picture is not None:
            self.hover_image.value = self.thumbs.get(row, 128, "png")
        view = self.view
        self.hover_label.value = (f"<b>{esc(self.faces.file_names[row])}</b><br>"
                                  f"<small>{esc(view.name_of(int(view.labels[row])))}</small>")

    def _on_click(self, _trace, points, state) -> None:
        if not points.point_inds:
            return
        row = int(points.point_inds[0])
        if getattr(state, "shift", False) or getattr(state, "ctrl", False) or getattr(state, "meta", False):
            self._set_selection(sorted(set(self.selected) ^ {row}))
        else:
            self._set_selection([row])
        self.focus = row

    def _on_selection(self, _trace, points, _selector) -> None:
        self._set_selection([int(i) for i in points.point_inds])

    def _set_selection(self, rows: Sequence[int]) -> None:
        self.selected = [int(r) for r in rows]

    def _on_gallery_focus(self, change: dict) -> None:
        if change["new"] >= 0:
            self.focus = int(change["new"])

    def _on_selected(self, _change: dict) -> None:
        with self._view_lock:
            select_points(self.figure, self.selected)
            self._guard(self._refresh_edit_panel)

    def _on_focus(self, change: dict) -> None:
        if 0 <= change["new"] < len(self.faces):
            self._guard(self._show_face, int(change["new"]))
            self._guard(self._refresh_edit_panel)

    # -- corrections and export ------------------------------------------------------------
    def _edited(self, view: ClusterView, message: str) -> None:
        self.edit_info.value = f"<small>{esc(message)}</small>"
        self._show_view(view)

    def _do_merge(self) -> None:
        chosen = sorted({int(self.view.labels[r]) for r in self.selected if self.view.labels[r] >= 0})
        view = self.session.merge(chosen)
        self._edited(view, f"merged {len(chosen)} clusters")

    def _do_split(self) -> None:
        rows = list(self.selected)
        view = self.session.split(rows)
        self._edited(view, f"split off {len(rows)} face(s) into a new cluster")

    def _do_not_person(self) -> None:
        rows = list(self.selected) or ([self.focus] if self.focus >= 0 else [])
        view = self.session.not_person(rows)
        self._edited(view, f"{len(rows)} face(s) moved to the unknown pool for good")

    def _do_name(self) -> None:
        label = self._focus_cluster(self.view)
        if label is None:
            raise FaceclusterError("focus a face that is in a cluster (click it), then name its cluster")
        view = self.session.name(label, self.name_text.value)
        self._edited(view, f"named the cluster {self.name_text.value.strip()!r}")

    def _do_accept(self) -> None:
        if self._matches_for is None:
            raise FaceclusterError("no cluster in focus: click a face of the cluster first")
        rows = [r for r in self.selected if self.view.labels[r] < 0]
        if not rows:
            raise FaceclusterError("select faces from the possible matches (faces in no cluster) first")
        view = self.session.assign(rows, self._matches_for)
        self._edited(view, f"added {len(rows)} face(s) to {view.name_of(self._matches_for)}")

    def _do_unknown(self) -> None:
        self._set_selection(self.session.unknown_pool(self.view).tolist())

    def _do_undo(self) -> None:
        self._edited(self.session.undo(), "undid the last correction")

    def export(self, path: str | os.PathLike, fmt: str = "csv") -> object:
        """Export the clustering as shown: ``fmt`` "csv"/"json" (a table) or "symlink"/"copy" (a folder per
        cluster, which must not exist yet or be empty). Returns the file path or the folder summary."""
        view = self.view
        table = self.faces.table
        frame = assignments(table["face_id"], table["path"], view.labels, view.names, table["face_index"],
                            self.faces.labels)
        if fmt in ("csv", "json"):
            path = Path(path)
            return export_table(frame, path if path.suffix else path.with_suffix("." + fmt), fmt)
        return export_folders(frame, path, mode=fmt)

    def _do_export(self) -> None:
        result = self.export(self.export_path.value, self.export_format.value)
        if isinstance(result, dict):
            errors = f", {len(result['errors'])} photo(s) missing" if result["errors"] else ""
            text = f"{result['files']} photos in {result['folders']} folders under {result['target']}{errors}"
        else:
            text = f"wrote {result}"
        self.export_result.value = f"<small>{esc(text)}</small>"

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
