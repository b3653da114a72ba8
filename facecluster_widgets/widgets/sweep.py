"""``ParameterSweep``: a metric over a grid of ε × λ as a heatmap, so a person sees where the method is stable
before trusting one setting. Clicking a cell moves a linked explorer there.

The grid is clustered by :meth:`ClusterSession.sweep` on a copy of the estimator (reusing its cached per-block
distances), on a worker thread with a progress bar; the explorer's own clustering is not touched.
"""

from __future__ import annotations

import threading

import anywidget
import ipywidgets as w
import numpy as np
import pandas as pd
import traitlets

from ..review.collection import FaceCollection
from ..review.session import ClusterSession
from ..viz.charts import SCORE_TITLES, json_gaps, sweep_heatmap
from ..viz.figure_widget import STARTED_MARK
from ._thumbs import esc

#: Default grid: ε around the default 0.5 on the fused distance (typical pair at 1), λ from 3D-only to 2D-only.
EPS_RANGE = (0.2, 0.9)
LAM_RANGE = (0.0, 1.0)
STEPS = (8, 6)


class CellClicks(anywidget.AnyWidget):
    """The heatmap's clicks, sent to the kernel through this widget's own state (``cell``: ``{eps, lam, n}``):
    plotly's FigureWidget did not report clicks on heatmap cells (the notebook promised a link that did nothing)."""

    _esm = STARTED_MARK + r"""
    function render({ model, el }) {
      function attach() {
        const root = el.closest(".fc-sweep");
        const gd = root && root.querySelector(".js-plotly-plot");
        if (!gd || typeof gd.on !== "function") { setTimeout(attach, 300); return; }
        gd.on("plotly_click", (e) => {
          const p = e && e.points && e.points[0];
          if (!p || p.curveNumber !== 0) return;
          model.set("cell", { eps: Number(p.x), lam: Number(p.y), n: ((model.get("cell") || {}).n || 0) + 1 });
          model.save_changes();
        });
      }
      attach();
    }
    export default { render };
    """
    cell = traitlets.Dict().tag(sync=True)


class ParameterSweep(w.VBox):
    """``ParameterSweep(session_or_faces, explorer=None)``; :meth:`run` (or the button) computes the grid."""

    def __init__(self, source: object, *, explorer: object | None = None, metric: str | None = None,
                 eps_range: tuple[float, float] = EPS_RANGE, lam_range: tuple[float, float] = LAM_RANGE,
                 steps: tuple[int, int] = STEPS, background: bool = True, run: bool = False) -> None:
        if isinstance(source, ClusterSession):
            self.session = source
        elif explorer is not None and source is None:
            self.session = explorer.session
        else:
            faces = source if isinstance(source, FaceCollection) else FaceCollection.from_store(source)
            self.session = ClusterSession(faces, persist=False)
        self.explorer, self.background = explorer, background
        self.frame: pd.DataFrame | None = None
        self._thread: threading.Thread | None = None
        scores = ["silhouette", "clusters", "noise_fraction"]
        if self.session.faces.labels is not None:
            scores = ["ari", "nmi", "purity"] + scores
        self.metric = w.Dropdown(options=[(SCORE_TITLES[s], s) for s in scores], value=metric or scores[0],
                                 description="show", layout=w.Layout(width="320px"))
        self.eps_range = w.FloatRangeSlider(value=eps_range, min=0.05, max=1.5, step=0.05, description="ε from–to",
                                            readout_format=".2f", style={"description_width": "initial"})
        self.lam_range = w.FloatRangeSlider(value=lam_range, min=0.0, max=1.0, step=0.05, description="λ from–to",
                                            readout_format=".2f", style={"description_width": "initial"})
        self.eps_steps = w.BoundedIntText(value=steps[0], min=2, max=30, description="ε steps",
                                          layout=w.Layout(width="140px"))
        self.lam_steps = w.BoundedIntText(value=steps[1], min=2, max=21, description="λ steps",
                                          layout=w.Layout(width="140px"))
        self.button = w.Button(description="run sweep", button_style="primary")
        self.progress = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="200px"))
        self.info = w.HTML()
        self.info.add_class("fc-sweep-info")
        self.figure = sweep_heatmap(pd.DataFrame({"eps": [0.5], "lam": [0.5], "clusters": [np.nan],
                                                  "noise_fraction": [np.nan], self.metric.value: [np.nan]}),
                                    self.metric.value, widget=True)
        self.clicks = CellClicks()
        self.clicks.observe(lambda change: self.move_explorer(change["new"].get("eps"), change["new"].get("lam")),
                            names=["cell"])
        self.button.on_click(lambda _: self.run())
        self.metric.observe(lambda _: self._draw(), names=["value"])
        super().__init__([
            w.HBox([self.eps_range, self.eps_steps]), w.HBox([self.lam_range, self.lam_steps]),
            w.HBox([self.metric, self.button, self.progress]), self.figure, self.info, self.clicks,
        ])
        self.add_class("fc-sweep")
        if run:
            self.run()

    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        eps = np.linspace(*self.eps_range.value, self.eps_steps.value).round(3)
        lam = np.linspace(*self.lam_range.value, self.lam_steps.value).round(3)
        return eps, lam

    def run(self) -> ParameterSweep:
        """Cluster every (ε, λ) of the grid (in the background unless ``background=False``)."""
        eps, lam = self.grid()
        self.progress.max, self.progress.value = len(eps) * len(lam), 0
        self.button.disabled = True
        self.info.value = f"<small>clustering {len(eps) * len(lam)} settings…</small>"

        def work() -> None:
            try:
                self.frame = self.session.sweep(eps, lam, progress=lambda done, _total: self._tick(done))
                self._draw()
            except Exception as exc:  # shown, never lost in the kernel log
                self.info.value = f"<span style='color:#c00'>sweep failed: {esc(exc)}</span>"
            finally:
                self.button.disabled = False

        if self.background:
            self._thread = threading.Thread(target=work, daemon=True)
            self._thread.start()
        else:
            work()
        return self

    def wait(self, timeout: float = 600.0) -> ParameterSweep:
        if self._thread is not None:
            self._thread.join(timeout)
        return self

    def _tick(self, done: int) -> None:
        self.progress.value = done

    def _draw(self) -> None:
        if self.frame is None:
            return
        metric = self.metric.value
        fresh = sweep_heatmap(self.frame, metric, widget=False)
        with self.figure.batch_update():
            heat = self.figure.data[0]
            src = fresh.data[0]
            heat.x, heat.y, heat.z, heat.text = src.x, src.y, json_gaps(src.z), src.text
            heat.hovertemplate = src.hovertemplate
            heat.colorbar.title.text = metric
            self.figure.layout.title.text = fresh.layout.title.text
            if len(fresh.data) > 1:
                star = fresh.data[1]
                if len(self.figure.data) > 1:
                    self.figure.data[1].x, self.figure.data[1].y = star.x, star.y
                else:
                    self.figure.add_trace(star)
        best = self.best()
        self.info.value = ("" if best is None else
                           f"<small>best {esc(SCORE_TITLES.get(metric, metric))}: {best[metric]:.3f} at ε "
                           f"{best['eps']:.2f}, λ {best['lam']:.2f} ({best['clusters']:.0f} clusters, "
                           f"{best['noise_fraction']:.0%} noise)"
                           + (" — click a cell to move the explorer there" if self.explorer is not None else "")
                           + "</small>")

    def best(self, metric: str | None = None) -> pd.Series | None:
        """The grid row with the highest ``metric`` (default: the one shown), or ``None`` before a run."""
        metric = metric or self.metric.value
        if self.frame is None or not self.frame[metric].notna().any():
            return None
        return self.frame.loc[self.frame[metric].idxmax()]

    def move_explorer(self, eps: float | None, lam: float | None) -> None:
        """Move the linked explorer's sliders to a cell's ε and λ (nothing without an explorer)."""
        if self.explorer is None or eps is None or lam is None:
            return
        self.explorer.set(eps=round(float(eps), 4), lam=round(float(lam), 4))
        self.info.value = (self.info.value.split("<br>")[0]
                           + f"<br><small>explorer moved to ε {float(eps):.2f}, λ {float(lam):.2f}</small>")
