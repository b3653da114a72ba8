"""The Edit tab's "same person?" list: pairs of clusters with a few faces of each and a merge button per pair.

One anywidget instead of a Button, an HTML and a box per pair (each with its layout and style): a page reload
rebuilds every widget model of the kernel at once. ``pairs`` (from Python) is what to draw; a click on a pair's
button sets ``merge`` to ``{i, a, b, n}`` (the pair's place and its two clusters; ``n`` counts clicks so that
clicking the same pair twice is two changes). DOM built with ``textContent`` only, images accepted only as
``data:image/`` URIs.
"""

from __future__ import annotations

import anywidget
import traitlets

from ..viz.figure_widget import STARTED_MARK

_ESM = r"""
function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "fc-pairs";
  el.appendChild(root);

  function side(part) {
    const box = document.createElement("span");
    box.className = "fc-pair-side";
    const title = document.createElement("small");
    title.textContent = part.title;
    box.append(title, document.createElement("br"));
    for (const src of part.faces) {
      const img = document.createElement("img");
      if (typeof src === "string" && src.startsWith("data:image/")) img.src = src;
      img.className = "fc-pair-face";
      box.appendChild(img);
    }
    return box;
  }

  function draw() {
    root.replaceChildren();
    model.get("pairs").forEach((pair, i) => {
      const line = document.createElement("div");
      line.className = "fc-pair";
      const button = document.createElement("button");
      button.className = "fc-pair-merge jupyter-button";
      button.textContent = "merge";
      button.title = "merge these two clusters";
      button.addEventListener("click", () => {
        model.set("merge", { i: i, a: pair.a.label, b: pair.b.label, n: ((model.get("merge") || {}).n || 0) + 1 });
        model.save_changes();
      });
      const distance = document.createElement("small");
      distance.textContent = pair.distance;
      line.append(button, side(pair.a), distance, side(pair.b));
      root.appendChild(line);
    });
  }

  model.on("change:pairs", draw);
  draw();
  return () => root.remove();
}
export default { render };
"""

_CSS = """
.fc-pair { display: flex; gap: 8px; align-items: center; margin: 2px 0; }
.fc-pair-merge { width: 70px; flex: none; }
.fc-pair-side { display: inline-block; width: 190px; }
.fc-pair-face { width: 40px; height: 40px; object-fit: cover; margin: 1px; }
"""


class Pairs(anywidget.AnyWidget):
    """``pairs``: ``[{a: {label, title, faces: [src]}, b: {...}, distance}]``; ``merge``: the last click."""

    _esm = STARTED_MARK + _ESM
    _css = _CSS
    pairs = traitlets.List(traitlets.Dict()).tag(sync=True)
    merge = traitlets.Dict().tag(sync=True)
