"""The projection scatter: a point per face, coloured by cluster (or by another property), with noise faces drawn
as crosses so they never pass for a cluster.

Two WebGL traces of the SAME length n, so a point's index is the face's row in either: trace 0 draws the faces in
a cluster as dots (noise faces have size 0 there), trace 1 draws the noise faces as crosses (the others are NaN
there, which plotly skips). Hover, click and lasso callbacks therefore map straight to faces, and a slider move
restyles without rebuilding traces. Everything that changes per move is a float32 array (plotly ships 1-D numeric
arrays to the browser as typed binary buffers): colours are numbers on a stepped colour scale, not strings, which
also spares plotly's per-point validation of colour names (~40 ms per 1,000 faces).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from .figure_widget import FigureWidget
from .private import PrivateFigure, private

#: Cluster colours: 24 dark then 24 light distinct hues, cycled for more clusters (ids are kept stable between
#: slider moves, so a colour means the same cluster as long as it exists).
PALETTE: tuple[str, ...] = tuple(qualitative.Dark24) + tuple(qualitative.Light24)
#: Faces in no cluster (and missing categorical values).
NOISE_COLOUR = "#9a9a9a"
NOISE_SYMBOL = "x"
#: What the points can be coloured by; "label" and "dataset" are categorical, "yaw" continuous.
COLOR_BY = ("cluster", "label", "noise", "yaw", "dataset")
POINT_SIZE = 8.0
NOISE_SIZE = 8.0
#: The colour code of "no cluster / no value" on the stepped scale (the palette takes codes 0..47).
GREY = len(PALETTE)
#: Clusters whose id is written at their centre on the map (largest first): 48 colours repeat over ~120 clusters.
CENTRE_LABELS = 150
#: A label's size as a share of the map's extent (x per character, y per line), for an 11 px font on the explorer's
#: ~480 × 380 px map: a label that would cover a larger cluster's is left out (at 10,000 faces, ~770 clusters on one
#: PCA cloud, the 150 largest ids had merged into a grey mass no one could read).
LABEL_CHAR_WIDTH = 0.013
LABEL_HEIGHT = 0.04
#: Opacity of the faces outside a selection (the selection itself is drawn at full opacity).
FADED = 0.35


def stepped_scale(colours: Sequence[str]) -> list[list]:
    """A plotly colour scale on which the integer code ``i`` (with cmin −0.5, cmax len − 0.5) is ``colours[i]``."""
    n = len(colours)
    scale = []
    for i, colour in enumerate(colours):
        scale += [[i / n, colour], [(i + 1) / n, colour]]
    return scale


_CATEGORICAL = stepped_scale([*PALETTE, NOISE_COLOUR])
#: Yaw: blue (turned one way) through a mid grey-violet (frontal) to red (the other way); no white.
YAW_SCALE = [[0.0, "#2c3e9e"], [0.5, "#8a6fa8"], [1.0, "#c0262d"]]
_NOISE_SCALE = stepped_scale(["#1f77b4", "#d62728"])


@dataclass(frozen=True, eq=False)
class Colouring:
    """Per-face colour codes (float32) and the scale that turns them into colours."""

    codes: np.ndarray
    colorscale: object
    cmin: float
    cmax: float
    showscale: bool = False
    title: str = ""

    def marker(self) -> dict:
        out = {"color": self.codes, "colorscale": self.colorscale, "cmin": self.cmin, "cmax": self.cmax,
               "showscale": self.showscale}
        if self.showscale:
            out["colorbar"] = {"title": {"text": self.title}, "thickness": 12}
        return out

    def colour_of(self, i: int) -> str | None:
        """The colour string of face ``i`` on a stepped scale (legends, tests); ``None`` on a continuous one (the
        ones with a colour bar: a named scale or the yaw scale)."""
        if self.showscale or isinstance(self.colorscale, str):
            return None
        return self.colorscale[2 * int(round(float(self.codes[i]) - self.cmin - 0.5))][1]


def colouring(labels: np.ndarray, color_by: str = "cluster", values: Sequence | None = None) -> Colouring:
    """Colour codes for ``labels`` (−1 = noise) coloured by ``color_by``; ``values`` holds the property for
    "label", "yaw" and "dataset" (ignored for "cluster" and "noise")."""
    if color_by not in COLOR_BY:
        raise ValueError(f"color_by must be one of {COLOR_BY}, got {color_by!r}")
    labels = np.asarray(labels)
    if color_by == "cluster":
        return _categorical(np.where(labels < 0, -1, labels))
    if color_by == "noise":
        return Colouring((labels < 0).astype(np.float32), _NOISE_SCALE, -0.5, 1.5)
    if color_by in ("label", "dataset"):
        values = np.asarray(values if values is not None else [None] * len(labels), dtype=object)
        missing = np.array([v is None or (isinstance(v, float) and np.isnan(v)) for v in values], dtype=bool)
        codes = np.full(len(values), -1)
        if (~missing).any():
            codes[~missing] = np.unique(values[~missing].astype(str), return_inverse=True)[1]
        return _categorical(codes)
    numbers = np.asarray(values if values is not None else np.full(len(labels), np.nan), dtype=np.float32)
    finite = numbers[np.isfinite(numbers)]
    span = float(np.abs(finite).max()) if finite.size else 1.0
    # a diverging scale with no white in its middle: frontal faces (yaw ~0) must stay visible on a white map
    return Colouring(np.nan_to_num(numbers, nan=0.0).astype(np.float32), YAW_SCALE, -span, span, True, color_by)


def _categorical(codes: np.ndarray) -> Colouring:
    out = np.where(codes < 0, GREY, np.mod(codes, len(PALETTE))).astype(np.float32)
    return Colouring(out, _CATEGORICAL, -0.5, GREY + 0.5)


def hover_texts(names: Sequence[str]) -> np.ndarray:
    """Hover text per face: its path, HTML-escaped (plotly renders tags in hover labels)."""
    return np.array([html.escape(str(n)) for n in names], dtype=object)


def cluster_centres(xy: np.ndarray, labels: np.ndarray, names: dict[int, str] | None = None,
                    limit: int = CENTRE_LABELS) -> list[dict]:
    """Each cluster's id (its name when named) written at the median position of its faces, largest clusters
    first, up to ``limit`` labels, leaving out a label that would cover one already placed: plotly annotations
    (drawn above the WebGL points, never catching the mouse)."""
    labels = np.asarray(labels)
    ok = (labels >= 0) & np.isfinite(xy).all(axis=1)
    ids, counts = np.unique(labels[ok], return_counts=True)
    if not ids.size or limit < 1:
        return []
    extent = np.maximum(np.ptp(xy[ok], axis=0), 1e-12)
    out = []
    spots, halves = np.empty((limit, 2)), np.empty(limit)  # placed labels: centre as a share of the extent, half width
    for label in ids[np.argsort(-counts, kind="stable")].tolist():
        centre = np.median(xy[ok & (labels == label)], axis=0)
        text = (names or {}).get(label, str(label))
        spot, half, n = centre / extent, LABEL_CHAR_WIDTH * (len(text) + 1) / 2, len(out)
        gap = np.abs(spots[:n] - spot)
        if np.any((gap[:, 0] < halves[:n] + half) & (gap[:, 1] < LABEL_HEIGHT)):
            continue
        spots[n], halves[n] = spot, half
        out.append({"x": float(centre[0]), "y": float(centre[1]), "xref": "x", "yref": "y",
                    "text": html.escape(text), "showarrow": False,
                    "font": {"size": 11, "color": "#111"}, "bgcolor": "rgba(255,255,255,0.6)", "borderpad": 1,
                    "captureevents": False})
        if len(out) == limit:
            break
    return out


def _layers(xy: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dot sizes of trace 0 and the cross coordinates of trace 1 (NaN where a face is in a cluster)."""
    noise = np.asarray(labels) < 0
    sizes = np.where(noise, 0.0, POINT_SIZE).astype(np.float32)
    crosses = np.where(noise[:, None], xy, np.nan).astype(np.float32)
    return sizes, np.ascontiguousarray(crosses[:, 0]), np.ascontiguousarray(crosses[:, 1])


def projection_figure(xy: np.ndarray, labels: np.ndarray, *, hover_text: Sequence[str] | None = None,
                      color_by: str = "cluster", values: Sequence | None = None, title: str | None = None,
                      height: int = 480, widget: bool = True) -> go.Figure:
    """A scatter of the 2-D map ``xy`` (n, 2) coloured by ``labels``; a ``go.FigureWidget`` when ``widget``.

    Point ``i`` of either trace is face ``i``. Lasso and box selection are on; unselected faces fade.
    """
    xy = np.ascontiguousarray(xy, dtype=np.float32)
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] != len(labels):
        raise ValueError(f"xy must be (n, 2) with n = {len(labels)} labels, got {xy.shape}")
    colours = colouring(labels, color_by, values).marker()
    sizes, cross_x, cross_y = _layers(xy, labels)
    text = None if hover_text is None else np.asarray(hover_text, dtype=object)
    common = {"mode": "markers", "text": text, "hovertemplate": "%{text}<extra></extra>" if text is not None else None,
              "selected": {"marker": {"opacity": 1.0}}, "unselected": {"marker": {"opacity": FADED}},
              "showlegend": False}
    dots = go.Scattergl(x=np.ascontiguousarray(xy[:, 0]), y=np.ascontiguousarray(xy[:, 1]), name="faces",
                        marker={**colours, "size": sizes, "line": {"width": 0}}, **common)
    crosses = go.Scattergl(x=cross_x, y=cross_y, name="no cluster",
                           marker={**colours, "showscale": False, "size": NOISE_SIZE, "symbol": NOISE_SYMBOL},
                           **common)
    layout = go.Layout(
        annotations=cluster_centres(xy, labels) if color_by == "cluster" else [],
        height=height, margin={"l": 10, "r": 10, "t": 36 if title else 10, "b": 10}, dragmode="lasso",
        hovermode="closest", title={"text": html.escape(title), "x": 0.01} if title else None,
        xaxis={"visible": False}, yaxis={"visible": False, "scaleanchor": "x"}, plot_bgcolor="white",
        uirevision="keep",  # zoom and pan survive restyles
    )
    factory = FigureWidget if widget else PrivateFigure
    return private(factory(data=[dots, crosses], layout=layout))


def update_projection(fig: go.Figure, labels: np.ndarray, *, color_by: str = "cluster",
                      values: Sequence | None = None, xy: np.ndarray | None = None,
                      names: dict[int, str] | None = None, centres: bool = True) -> None:
    """Restyle the scatter for new labels (and optionally new coordinates) in one message to the browser;
    ``centres=False`` leaves the cluster ids where they are (a quick preview: ids are an SVG redraw)."""
    colours = colouring(labels, color_by, values).marker()
    dots, crosses = fig.data[0], fig.data[1]
    moved = xy is not None
    if moved:
        xy = np.ascontiguousarray(xy, dtype=np.float32)
    else:
        xy = np.column_stack([np.asarray(dots.x, np.float32), np.asarray(dots.y, np.float32)])
    sizes, cross_x, cross_y = _layers(xy, labels)
    with fig.batch_update():
        if moved:
            dots.x, dots.y = np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])
        dots.marker.update({**colours, "size": sizes})
        crosses.x, crosses.y = cross_x, cross_y
        crosses.marker.update({**colours, "showscale": False})
        if centres:
            fig.layout.annotations = cluster_centres(xy, labels, names) if color_by == "cluster" else []


def select_points(fig: go.Figure, rows: Sequence[int] | None, *, keep_outline: bool = False) -> None:
    """Highlight faces ``rows`` (others fade) in both traces; ``None`` or empty clears the selection.

    The lasso's outline stays only when this selection IS the lasso's (``keep_outline``): a selection made
    elsewhere (gallery, code) removes it, so the map never shows one selection while the edit panel acts on another.
    """
    chosen = None if rows is None or len(rows) == 0 else [int(r) for r in rows]
    if not keep_outline:
        # First, alone: plotly.js re-selects the points inside an outline on every restyle. The browser may hold
        # a lasso outline the kernel was never told of, so an empty selection is sent via a placeholder (setting
        # () when the kernel already has () would send nothing).
        fig.layout.selections = [{"type": "rect", "x0": 0, "x1": 0, "y0": 0, "y1": 0, "xref": "x", "yref": "y"}]
        fig.layout.selections = ()
    with fig.batch_update():
        for trace in fig.data[:2]:
            trace.selectedpoints = chosen
