"""The cluster gallery: one row of thumbnails per cluster (noise last), clicking selects faces; paged and filtered
by :class:`GalleryPanel`.

An anywidget whose state is three traitlets, nothing else: ``rows`` (what to draw, from Python), ``selected``
(face rows, both ways) and ``focus`` (the face clicked last, both ways). The browser code builds the DOM with
``textContent`` and attribute setters only, never ``innerHTML``, so a cluster or file name cannot inject markup;
image sources are accepted only as ``data:image/`` URIs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anywidget
import ipywidgets as w
import traitlets

from ..viz.figure_widget import STARTED_MARK
from ._kit import Kit

#: Clusters per gallery page and faces drawn per cluster (the rest is counted: "+37").
PAGE = 30
FACES = 12

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

    _esm = STARTED_MARK + _ESM
    _css = _CSS
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    selected = traitlets.List(traitlets.Int()).tag(sync=True)
    focus = traitlets.Int(-1).tag(sync=True)


class GalleryPanel(w.VBox):
    """The explorer's Gallery tab: orders, a filter (file name or cluster name, smallest size), and pages of
    :data:`PAGE` clusters with "clusters 31–60 of 121" so no cluster is silently left out.

    ``rows_for(cluster_order, face_order)`` gives the explorer's gallery rows (noise row last); ``names`` the text
    a filter matches (each face's path relative to the collection); ``thumbs.uri(row)`` its picture.
    """

    def __init__(self, rows_for: Callable[[str, str], list], names: Sequence[str], thumbs: object,
                 kit: Kit | None = None) -> None:
        kit = kit or Kit()
        self._rows_for, self._names, self._thumbs = rows_for, names, thumbs
        self.page = 0
        self.gallery = Gallery(**kit.look(Gallery))
        self.gallery.add_class("fc-gallery-widget")
        self.cluster_order = w.Dropdown(options=[("largest first", "size"), ("tightest first", "spread"),
                                                 ("by name", "name")], value="size", description="clusters",
                                        **kit.look(w.Dropdown, width="200px"))
        self.face_order = w.Dropdown(options=[("closest to centre", "closest"), ("farthest first", "farthest")],
                                     value="closest", description="faces", **kit.look(w.Dropdown, width="200px"))
        self.filter = w.Text(placeholder="filter: file or cluster name", **kit.look(w.Text, width="220px"),
                             continuous_update=False)
        self.min_size = w.BoundedIntText(value=1, min=1, max=100_000, description="size ≥",
                                         **kit.look(w.BoundedIntText, style={"description_width": "initial"},
                                                    width="120px"))
        self.previous = w.Button(description="◀", tooltip="previous page", **kit.look(w.Button, width="36px"))
        self.next = w.Button(description="▶", tooltip="next page", **kit.look(w.Button, width="36px"))
        self.count = w.HTML(**kit.look(w.HTML))
        self.count.add_class("fc-gallery-count")
        for control in (self.cluster_order, self.face_order, self.filter, self.min_size):
            control.observe(lambda _c: self.refresh(first_page=True), names=["value"])
        self.previous.on_click(lambda _b: self.turn(-1))
        self.next.on_click(lambda _b: self.turn(+1))
        super().__init__([w.HBox([self.cluster_order, self.face_order, self.filter, self.min_size], **kit.look(w.Box)),
                          w.HBox([self.previous, self.next, self.count], **kit.look(w.Box, align_items="center")),
                          self.gallery], **kit.look(w.Box))
        self._view = None

    def _matching(self) -> tuple[list, list]:
        rows = self._rows_for(self.cluster_order.value, self.face_order.value)
        needle = self.filter.value.strip().casefold()
        clusters, noise = [], []
        for r in rows:
            if r.label >= 0 and r.size < self.min_size.value:
                continue
            if needle and needle not in r.name.casefold() and not any(
                    needle in self._names[int(x)].casefold() for x in r.rows):
                continue
            (clusters if r.label >= 0 else noise).append(r)
        return clusters, noise

    def turn(self, step: int) -> None:
        self.page += step
        self.refresh()

    def refresh(self, first_page: bool = False) -> None:
        clusters, noise = self._matching()
        total = len(clusters)
        pages = max(1, -(-total // PAGE))
        self.page = 0 if first_page else min(max(self.page, 0), pages - 1)
        start = self.page * PAGE
        shown = clusters[start:start + PAGE]
        self.previous.disabled, self.next.disabled = self.page == 0, self.page >= pages - 1
        filtered = " matching the filter" if self.filter.value.strip() or self.min_size.value > 1 else ""
        self.count.value = (f"<small>clusters {start + 1 if shown else 0}–{start + len(shown)} of <b>{total}</b>"
                            f"{filtered} · page {self.page + 1} of {pages}</small>")
        names = self._names
        last_page = self.page >= pages - 1
        self.gallery.rows = [{
            "label": int(r.label), "title": f"{r.name} · {r.size}", "members": [int(x) for x in r.rows],
            "faces": [{"row": int(x), "src": self._thumbs.uri(int(x)), "tip": names[int(x)]}
                      for x in r.rows[:FACES]],
            "more": max(0, r.size - FACES)} for r in shown + (noise if last_page else [])]
