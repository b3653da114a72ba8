"""The face at the cursor: a small card (thumbnail, path, cluster) drawn next to the mouse over the explorer's map,
as jupyter-scatter and FiftyOne show it; and the map's lasso selection, sent to the kernel reliably.

An anywidget with one traitlet, ``card`` (``{row, src, title, detail}`` from Python, set when plotly reports a
hover to the kernel). The browser code finds the plotly map in the same explorer, follows the mouse over it and
shows the card for the face plotly last reported; it hides the card when the mouse leaves the points. DOM built
with ``textContent`` only, images accepted only as ``data:image/`` URIs.
"""

from __future__ import annotations

import anywidget
import traitlets

from ..viz.figure_widget import STARTED_MARK

_ESM = r"""
function render({ model, el }) {
  const card = document.createElement("div");
  card.className = "fc-hover-card";
  card.style.display = "none";
  const img = document.createElement("img");
  const title = document.createElement("div");
  title.className = "fc-hover-title";
  const detail = document.createElement("div");
  detail.className = "fc-hover-detail";
  card.append(img, title, detail);
  document.body.appendChild(card);
  let mouse = { x: 0, y: 0 }, hovered = -1, plot = null;

  function place() {
    const w = 150, h = 190;
    let x = mouse.x + 16, y = mouse.y + 16;
    if (x + w > window.innerWidth) x = mouse.x - w - 16;
    if (y + h > window.innerHeight) y = mouse.y - h - 16;
    card.style.left = x + "px";
    card.style.top = y + "px";
  }
  function show() {
    const c = model.get("card") || {};
    if (hovered < 0 || c.row !== hovered) return;
    if (typeof c.src === "string" && c.src.startsWith("data:image/")) img.src = c.src;
    title.textContent = c.title || "";
    detail.textContent = c.detail || "";
    place();
    card.style.display = "block";
  }
  function hide() { hovered = -1; card.style.display = "none"; }

  function attach() {
    const root = el.closest(".fc-explorer");
    const gd = root && root.querySelector(".js-plotly-plot");
    if (!gd || typeof gd.on !== "function") { setTimeout(attach, 300); return; }
    plot = gd;
    gd.addEventListener("mousemove", (e) => { mouse = { x: e.clientX, y: e.clientY }; if (hovered >= 0) place(); });
    gd.addEventListener("mouseleave", hide);
    gd.on("plotly_hover", (e) => {
      const p = e && e.points && e.points[0];
      if (!p || p.curveNumber > 1) return;
      hovered = p.pointNumber;
      if (e.event) mouse = { x: e.event.clientX, y: e.event.clientY };
      show();
    });
    gd.on("plotly_unhover", hide);
    // The lasso / box selection reaches the kernel through this widget's own state: plotly's FigureWidget
    // dropped fast lassos (the map showed a selection the kernel never got).
    // Only a person's gesture counts: the kernel's own restyles make plotly re-emit selection events, which
    // must not come back as a new selection. A pointer press arms it; the first selection event or click uses it.
    let gesture = false;
    gd.addEventListener("pointerdown", () => { gesture = true; }, true);
    gd.on("plotly_click", () => { gesture = false; });
    const send = (rows) => {
      if (!gesture) return;
      gesture = false;
      model.set("lasso", { rows: rows, n: ((model.get("lasso") || {}).n || 0) + 1 });
      model.save_changes();
    };
    gd.on("plotly_selected", (e) => {
      if (!e || !e.points) return;
      send(e.points.filter((p) => p.curveNumber === 0).map((p) => p.pointNumber));
    });
    gd.on("plotly_deselect", () => send([]));
    // The map shows the kernel's selection (``selected``), always: clearing a lasso outline makes plotly.js
    // re-select the points inside the (now empty) outlines after it finishes, which can land after the kernel's
    // own restyle of the selected points and blank them. After any such event, put the kernel's choice back.
    for (const name of ["plotly_relayout", "plotly_selected", "plotly_deselect", "plotly_afterplot"]) {
      gd.on(name, () => setTimeout(enforce, 0));
    }
    enforce();
  }
  function same(a, b) {
    const x = a == null ? null : Array.from(a, Number), y = b == null ? null : Array.from(b, Number);
    if (x === null || y === null) return x === y;
    return x.length === y.length && x.every((v, i) => v === y[i]);
  }
  // Trace 0 (every face's dot) is the one compared: inside a lasso outline plotly picks trace 1's points itself.
  // A few tries per selection at most, so two writers can never loop.
  let tries = 0;
  function enforce() {
    const Plotly = window.Plotly;
    if (!plot || !Plotly || !plot.data || plot.data.length < 1) return;
    const want = model.get("selected") ?? null;
    if (same(plot.data[0].selectedpoints, want)) { tries = 0; return; }
    if (tries >= 3) return;
    tries += 1;
    const traces = [...Array(Math.min(2, plot.data.length)).keys()];
    Plotly.restyle(plot, { selectedpoints: traces.map(() => want) }, traces);
  }
  model.on("change:selected", () => { tries = 0; setTimeout(enforce, 0); });
  model.on("change:card", show);
  attach();
  return () => card.remove();
}
export default { render };
"""

_CSS = """
.fc-hover-card { position: fixed; z-index: 10000; pointer-events: none; width: 140px; background: white;
  border: 1px solid #888; border-radius: 4px; box-shadow: 0 2px 6px rgba(0,0,0,.25); padding: 4px;
  font: 11px sans-serif; color: #222; }
.fc-hover-card img { width: 132px; height: 132px; object-fit: contain; display: block; background: #eee; }
.fc-hover-title { font-weight: bold; overflow-wrap: anywhere; margin-top: 2px; }
.fc-hover-detail { color: #555; }
"""


class HoverCard(anywidget.AnyWidget):
    """The card next to the cursor; set :attr:`card` to ``{row, src, title, detail}`` for the hovered face.
    :attr:`lasso` (``{rows, n}``, from the browser) is the map's latest lasso or box selection; :attr:`selected`
    (rows, or ``None`` for no selection) is the kernel's selection, which the browser keeps on the map."""

    _esm = STARTED_MARK + _ESM
    _css = _CSS
    card = traitlets.Dict().tag(sync=True)
    lasso = traitlets.Dict().tag(sync=True)
    selected = traitlets.List(traitlets.Int(), allow_none=True, default_value=None).tag(sync=True)
