"""Small plotly charts for the sweep widget and the teaching notebooks: a metric over ε × λ, curvature histograms,
scores along λ. Each returns a ``go.Figure`` (``go.FigureWidget`` with ``widget=True``) with float32 arrays."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from ..descriptors import CURVATURE_REGIONS, GAUSS_CURVATURE_EDGES, MEAN_CURVATURE_EDGES
from .figure_widget import FigureWidget
from .private import PrivateFigure, private

#: Titles of the scores a sweep computes.
SCORE_TITLES = {"silhouette": "silhouette (fused distance)", "ari": "ARI", "nmi": "NMI", "purity": "purity",
                "clusters": "clusters found", "noise_fraction": "share of faces left as noise"}


def sweep_heatmap(frame: pd.DataFrame, metric: str = "silhouette", *, widget: bool = False,
                  height: int = 360) -> go.Figure:
    """Heatmap of ``metric`` over ε (x) × λ (y) from :meth:`ClusterSession.sweep`'s table; hover shows the
    clusters and noise of each cell. NaN cells (pairs that could not be clustered) stay blank.

    ``z`` is float32; in a ``FigureWidget`` it is a nested list with ``None`` for gaps, because plotly sends 2-D
    arrays to the browser as JSON lists and JSON has no NaN (the kernel would refuse the message)."""
    if metric not in frame.columns:
        raise ValueError(f"the sweep has no {metric!r} column; it has {', '.join(frame.columns)}")
    grid = frame.pivot_table(index="lam", columns="eps", values=metric, aggfunc="first", dropna=False)
    eps = grid.columns.to_numpy(dtype=np.float32)
    lam = grid.index.to_numpy(dtype=np.float32)
    z = grid.to_numpy(dtype=np.float32)
    clusters = frame.pivot_table(index="lam", columns="eps", values="clusters", aggfunc="first", dropna=False)
    noise = frame.pivot_table(index="lam", columns="eps", values="noise_fraction", aggfunc="first", dropna=False)
    counts = clusters.reindex_like(grid).to_numpy(np.float32)
    shares = noise.reindex_like(grid).to_numpy(np.float32)
    text = np.array([[f"{c:.0f} clusters, {s:.0%} noise" if np.isfinite(c) else "not clustered"
                      for c, s in zip(row_c, row_s, strict=True)] for row_c, row_s in zip(counts, shares, strict=True)],
                    dtype=object)
    best = np.unravel_index(np.nanargmax(z), z.shape) if np.isfinite(z).any() else None
    trace = go.Heatmap(x=eps, y=lam, z=json_gaps(z) if widget else z, text=text, colorscale="Viridis",
                       colorbar={"title": {"text": metric}, "thickness": 12},
                       hovertemplate=("ε %{x:.2f}, λ %{y:.2f}<br>" + SCORE_TITLES.get(metric, metric)
                                      + " %{z:.3f}<br>%{text}<extra></extra>"))
    fig = private((FigureWidget if widget else PrivateFigure)(data=[trace]))
    if best is not None:
        fig.add_trace(go.Scatter(x=np.array([eps[best[1]]], np.float32), y=np.array([lam[best[0]]], np.float32),
                                 mode="markers", marker={"symbol": "star", "size": 14, "color": "white",
                                                         "line": {"width": 1, "color": "black"}},
                                 hoverinfo="skip", showlegend=False, name="best"))
    fig.update_layout(height=height, margin={"l": 50, "r": 10, "t": 40, "b": 40},
                      title={"text": f"{SCORE_TITLES.get(metric, metric)} over ε × λ", "x": 0.01},
                      xaxis_title="ε (DBSCAN radius)", yaxis_title="λ (weight of the 2D term)")
    return fig


def json_gaps(values: np.ndarray) -> list:
    """A 2-D float array as nested lists with ``None`` where it is NaN (JSON's way to say "no value")."""
    return [[None if not np.isfinite(v) else float(v) for v in row] for row in np.asarray(values, dtype=np.float64)]


def lam_curve(frame: pd.DataFrame, scores: Sequence[str] = ("ari", "silhouette"), *, marker: float | None = None,
              height: int = 320) -> go.Figure:
    """Scores along λ (the ``lam_sweep`` table of :func:`facecluster_widgets.evaluation.evaluate.evaluate`)."""
    fig = PrivateFigure()
    lam = frame["lam"].to_numpy(np.float32)
    for score in scores:
        if score in frame:
            fig.add_trace(go.Scatter(x=lam, y=frame[score].to_numpy(np.float32), mode="lines+markers",
                                     name=SCORE_TITLES.get(score, score)))
    if marker is not None:
        fig.add_vline(x=marker, line_dash="dot", annotation_text=f"λ = {marker}")
    fig.update_layout(height=height, margin={"l": 50, "r": 10, "t": 30, "b": 40}, xaxis_title="λ",
                      yaxis_title="score", legend={"orientation": "h", "y": 1.12})
    return fig


def curvature_histograms(blocks: Mapping[str, np.ndarray], *, height: int = 420) -> go.Figure:
    """The ``curvature`` descriptor of a few faces, region by region: area shares per bin of mean curvature (top
    row) and Gaussian curvature (bottom row). ``blocks`` maps a legend name (escaped) to one face's block."""

    regions = list(CURVATURE_REGIONS)
    n_mean, n_gauss = len(MEAN_CURVATURE_EDGES) - 1, len(GAUSS_CURVATURE_EDGES) - 1
    fig = _private_subplots(rows=2, cols=len(regions), subplot_titles=[r.replace("_", " ") for r in regions],
                        vertical_spacing=0.18, horizontal_spacing=0.04, shared_yaxes=True)
    mean_ticks = [f"{a:g}…{b:g}" for a, b in zip(MEAN_CURVATURE_EDGES[:-1], MEAN_CURVATURE_EDGES[1:], strict=True)]
    gauss_ticks = [f"{a:g}…{b:g}" for a, b in zip(GAUSS_CURVATURE_EDGES[:-1], GAUSS_CURVATURE_EDGES[1:], strict=True)]
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    for f, (name, block) in enumerate(blocks.items()):
        block = np.asarray(block, dtype=np.float32)
        width = n_mean + n_gauss
        if block.shape != (width * len(regions),):
            raise ValueError(f"a curvature block has {width * len(regions)} values, got shape {block.shape}")
        for r, _ in enumerate(regions):
            part = block[r * width:(r + 1) * width]
            for row, values, ticks in ((1, part[:n_mean], mean_ticks), (2, part[n_mean:], gauss_ticks)):
                fig.add_trace(go.Bar(x=ticks, y=values, name=html.escape(name), legendgroup=name,
                                     marker_color=palette[f % len(palette)], showlegend=(r == 0 and row == 1)),
                              row=row, col=r + 1)
    fig.update_layout(height=height, barmode="group", margin={"l": 40, "r": 10, "t": 50, "b": 40},
                      legend={"orientation": "h", "y": -0.15})
    fig.update_xaxes(tickangle=-60, tickfont={"size": 8})
    fig.update_yaxes(title_text="area share, H·d", row=1, col=1)
    fig.update_yaxes(title_text="area share, K·d²", row=2, col=1)
    return fig


def _private_subplots(**kwargs) -> go.Figure:
    """``make_subplots`` as a :class:`PrivateFigure` (the grid kept, so ``row=``/``col=`` still work)."""
    from plotly.subplots import make_subplots

    return PrivateFigure(make_subplots(**kwargs))
