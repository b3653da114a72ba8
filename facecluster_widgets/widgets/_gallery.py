"""The cluster gallery: one row of thumbnails per cluster (noise last), clicking selects faces.

An anywidget whose state is three traitlets, nothing else: ``rows`` (what to draw, from Python), ``selected``
(face rows, both ways) and ``focus`` (the face clicked last, both ways). The browser code builds the DOM with
``textContent`` and attribute setters only, never ``innerHTML``, so a cluster or file name cannot inject markup;
image sources are accepted only as ``data:image/`` URIs.
"""

from __future__ import annotations

import anywidget
import traitlets

_ESM = r"""
function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "fc-gallery";
  el.appendChild(root);

  function selectedSet() { return new Set(model.get("selected")); }

  function choose(rows, additive) {
    let next;
    if (additive) {
      const current = selectedSet();
      const all = rows.every((r) => current.has(r));
      for (const r of rows) { if (all) current.delete(r); else current.add(r); }
      next = Array.from(current);
    } else {
      next = rows.slice();
    }
    model.set("selected", next);
    if (rows.length === 1) model.set("focus", rows[0]);
    model.save_changes();
  }

  function draw() {
    root.replaceChildren();
    const chosen = selectedSet();
    for (const row of model.get("rows")) {
      const line = document.createElement("div");
      line.className = "fc-gallery-row" + (row.label < 0 ? " fc-gallery-noise" : "");
      const head = document.createElement("button");
      head.className = "fc-gallery-head";
      head.textContent = row.title;
      head.title = "select every face of this row (shift/ctrl: add to the selection)";
      head.addEventListener("click", (e) => choose(row.members, e.shiftKey || e.ctrlKey || e.metaKey));
      line.appendChild(head);
      const strip = document.createElement("div");
      strip.className = "fc-gallery-strip";
      for (const face of row.faces) {
        const img = document.createElement("img");
        if (typeof face.src === "string" && face.src.startsWith("data:image/")) img.src = face.src;
        img.alt = face.tip;
        img.title = face.tip;
        img.dataset.row = String(face.row);
        img.className = "fc-gallery-face" + (chosen.has(face.row) ? " fc-selected" : "");
        img.addEventListener("click", (e) => choose([face.row], e.shiftKey || e.ctrlKey || e.metaKey));
        strip.appendChild(img);
      }
      if (row.more > 0) {
        const more = document.createElement("span");
        more.className = "fc-gallery-more";
        more.textContent = "+" + row.more;
        strip.appendChild(more);
      }
      line.appendChild(strip);
      root.appendChild(line);
    }
  }

  function mark() {
    const chosen = selectedSet();
    for (const img of root.querySelectorAll("img.fc-gallery-face")) {
      img.classList.toggle("fc-selected", chosen.has(Number(img.dataset.row)));
    }
  }

  model.on("change:rows", draw);
  model.on("change:selected", mark);
  draw();
  return () => root.remove();
}
export default { render };
"""

_CSS = """
.fc-gallery { display: flex; flex-direction: column; gap: 4px; max-height: 420px; overflow-y: auto; }
.fc-gallery-row { display: flex; align-items: center; gap: 6px; }
.fc-gallery-noise { border-top: 1px dashed #999; padding-top: 4px; }
.fc-gallery-head { width: 150px; flex: none; text-align: left; font-size: 12px; overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; background: #f3f3f3; border: 1px solid #ccc; border-radius: 3px;
  cursor: pointer; padding: 2px 4px; }
.fc-gallery-strip { display: flex; flex-wrap: nowrap; gap: 2px; overflow-x: auto; align-items: center; }
.fc-gallery-face { width: 48px; height: 48px; object-fit: cover; border: 2px solid transparent; cursor: pointer; }
.fc-gallery-face.fc-selected { border-color: #ff7f0e; }
.fc-gallery-more { font-size: 11px; color: #666; padding: 0 4px; }
"""


class Gallery(anywidget.AnyWidget):
    """Rows of face thumbnails. ``rows``: ``[{label, title, members, faces: [{row, src, tip}], more}]``."""

    _esm = _ESM
    _css = _CSS
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    selected = traitlets.List(traitlets.Int()).tag(sync=True)
    focus = traitlets.Int(-1).tag(sync=True)
