"""Plot factories return the right plotly / k3d objects, with float32 (uint32) buffers, and escape user text."""

from __future__ import annotations

import json

import k3d
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from k3d.plot import Plot

from facecluster_widgets.viz.charts import curvature_histograms, lam_curve, sweep_heatmap
from facecluster_widgets.viz.mesh import Surface, mesh_plot, update_mesh_plot
from facecluster_widgets.viz.scatter import (
    LABEL_CHAR_WIDTH,
    LABEL_HEIGHT,
    NOISE_COLOUR,
    NOISE_SYMBOL,
    cluster_centres,
    colouring,
    hover_texts,
    projection_figure,
    select_points,
    update_projection,
)

HOSTILE = "<img src=x onerror=alert(1)>.jpg"


@pytest.fixture()
def scatter_data():
    rng = np.random.default_rng(0)
    labels = np.array([0] * 5 + [1] * 5 + [-1] * 3)
    return rng.normal(size=(13, 2)), labels


def test_projection_figure_is_a_widget_with_float32_buffers(scatter_data):
    xy, labels = scatter_data
    fig = projection_figure(xy, labels, hover_text=hover_texts([HOSTILE] * 13))
    assert isinstance(fig, go.FigureWidget) and all(isinstance(t, go.Scattergl) for t in fig.data)
    dots, crosses = fig.data
    for array in (dots.x, dots.y, dots.marker.color, dots.marker.size, crosses.x, crosses.y, crosses.marker.color):
        assert array.dtype == np.float32 and array.shape == (13,)  # 1-D float32: sent as binary buffers
    np.testing.assert_allclose(dots.x, xy[:, 0].astype(np.float32))
    assert isinstance(projection_figure(xy, labels, widget=False), go.Figure)
    with pytest.raises(ValueError):
        projection_figure(xy[:5], labels)


def test_noise_faces_are_grey_crosses_and_clusters_share_a_colour(scatter_data):
    xy, labels = scatter_data
    dots, crosses = projection_figure(xy, labels).data
    noise = labels < 0
    assert np.isnan(crosses.x[~noise]).all() and np.isfinite(crosses.x[noise]).all()  # crosses: noise only
    assert crosses.marker.symbol == NOISE_SYMBOL and (dots.marker.size[noise] == 0).all()
    assert (dots.marker.size[~noise] > 0).all()
    c = colouring(labels)
    assert {c.colour_of(i) for i in np.flatnonzero(noise)} == {NOISE_COLOUR}
    assert len({c.colour_of(i) for i in range(5)}) == 1 and c.colour_of(0) != c.colour_of(5)
    assert NOISE_COLOUR not in {c.colour_of(i) for i in np.flatnonzero(~noise)}


def test_restyle_follows_new_labels_and_selection(scatter_data):
    xy, labels = scatter_data
    fig = projection_figure(xy, labels)
    new = labels.copy()
    new[:2] = 1
    new[5] = -1
    update_projection(fig, new)
    codes = fig.data[0].marker.color
    assert codes[0] == codes[6] and fig.data[0].marker.size[5] == 0 and np.isfinite(fig.data[1].x[5])
    np.testing.assert_allclose(fig.data[0].x, xy[:, 0].astype(np.float32))  # coordinates untouched
    update_projection(fig, new, xy=xy * 2)
    np.testing.assert_allclose(fig.data[0].x, 2 * xy[:, 0].astype(np.float32))
    select_points(fig, [1, 3])
    assert list(fig.data[0].selectedpoints) == [1, 3] and list(fig.data[1].selectedpoints) == [1, 3]
    select_points(fig, [])
    assert fig.data[0].selectedpoints is None


def test_continuous_and_categorical_colourings():
    labels = np.array([0, 0, 1, -1])
    yaw = colouring(labels, "yaw", [-30.0, 0.0, 45.0, np.nan])
    assert yaw.codes.dtype == np.float32 and yaw.showscale and yaw.cmin == -45.0 and yaw.colour_of(0) is None
    truth = colouring(labels, "label", ["ann", "ann", "bob", None])
    assert truth.colour_of(0) == truth.colour_of(1) != truth.colour_of(2) and truth.colour_of(3) == NOISE_COLOUR
    noise = colouring(labels, "noise")
    assert noise.colour_of(3) != noise.colour_of(0)
    with pytest.raises(ValueError):
        colouring(labels, "mood")


def test_hover_text_escapes_file_names():
    text = hover_texts([HOSTILE])[0]
    assert "<img" not in text and text == "&lt;img src=x onerror=alert(1)&gt;.jpg"


def test_cluster_labels_sit_at_centres_largest_first_and_never_cover_each_other():
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    sizes = [9, 7, 5, 3]
    xy = np.concatenate([c + rng.normal(scale=0.1, size=(n, 2)) for c, n in zip(centres, sizes, strict=True)])
    labels = np.repeat(np.arange(4), sizes)
    notes = cluster_centres(xy, labels, names={2: HOSTILE})
    assert [a["text"] for a in notes] == ["0", "1", "&lt;img src=x onerror=alert(1)&gt;.jpg", "3"]  # largest first
    assert np.allclose([[a["x"], a["y"]] for a in notes], centres, atol=0.2)
    assert len(cluster_centres(xy, labels, limit=2)) == 2 and cluster_centres(xy, labels, limit=0) == []

    # a smaller cluster whose centre lies under a larger one's label is left unlabelled; noise never gets one
    xy2 = np.concatenate([xy, [[0.05, 0.05]] * 2, [[5.0, 5.0]] * 4])
    labels2 = np.concatenate([labels, [4, 4], [-1] * 4])
    assert [a["text"] for a in cluster_centres(xy2, labels2)] == ["0", "1", "2", "3"]
    # 1,000 clusters packed in one cloud (the 10,000-face map): the labels shown do not overlap
    many = rng.normal(size=(10_000, 2))
    kept = cluster_centres(many, np.arange(10_000) % 1_000)
    spots = np.array([[a["x"], a["y"]] for a in kept]) / np.ptp(many, axis=0)
    halves = np.array([LABEL_CHAR_WIDTH * (len(a["text"]) + 1) / 2 for a in kept])
    gaps = np.abs(spots[:, None] - spots[None])
    np.fill_diagonal(gaps[..., 0], np.inf)
    covered = (gaps[..., 0] < halves[:, None] + halves[None]) & (gaps[..., 1] < LABEL_HEIGHT)
    assert 0 < len(kept) < 150 and not covered.any()
    assert cluster_centres(xy, np.full(len(xy), -1)) == []


def _sweep_frame():
    rows = [{"eps": e, "lam": v, "clusters": 3.0, "noise_fraction": 0.1, "silhouette": e * v}
            for e in (0.3, 0.5, 0.7) for v in (0.0, 0.5, 1.0)]
    rows[-1]["silhouette"] = np.nan
    return pd.DataFrame(rows)


def test_sweep_heatmap_has_the_grid_as_float32_and_marks_the_best_cell():
    fig = sweep_heatmap(_sweep_frame(), "silhouette")
    heat = fig.data[0]
    assert isinstance(heat, go.Heatmap) and heat.z.dtype == np.float32 and heat.z.shape == (3, 3)
    assert np.isnan(heat.z[2, 2])
    star = fig.data[1]
    assert (star.x[0], star.y[0]) == (np.float32(0.5), np.float32(1.0))  # 0.5 × 1.0: the best finite cell
    live = sweep_heatmap(_sweep_frame(), "silhouette", widget=True)
    assert isinstance(live, go.FigureWidget)
    z = live.data[0].z  # JSON-safe for the comm: gaps are None, not NaN
    assert z[2][2] is None and z[0][0] == pytest.approx(0.0) and heat.text[0][0] == "3 clusters, 10% noise"
    with pytest.raises(ValueError):
        sweep_heatmap(_sweep_frame(), "ari")


def test_lam_curve_and_curvature_histograms():
    frame = pd.DataFrame({"lam": [0.0, 0.5, 1.0], "ari": [0.2, 0.6, 0.9], "silhouette": [0.1, 0.3, 0.4]})
    assert len(lam_curve(frame).data) == 2
    fig = curvature_histograms({HOSTILE: np.ones(72, np.float32), "b": np.zeros(72, np.float32)})
    assert len(fig.data) == 2 * 4 * 2  # faces × regions × (mean, Gaussian)
    assert all("<img" not in (t.name or "") for t in fig.data)
    with pytest.raises(ValueError):
        curvature_histograms({"a": np.ones(10)})


def _tetra_surface() -> Surface:
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    triangles = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], dtype=np.int64)
    return Surface(vertices, triangles, np.arange(4.0), {"a–b": np.array([[0, 0, 0], [0.5, 0, 0.5], [1, 0, 0]])})


def test_surface_casts_to_k3d_friendly_buffers():
    s = _tetra_surface()
    assert s.vertices.dtype == np.float32 and s.triangles.dtype == np.uint32 and s.curvature.dtype == np.float32
    assert s.vertices.flags.c_contiguous and s.paths["a–b"].dtype == np.float32


def test_mesh_plot_is_a_k3d_plot_of_mesh_paths_and_endpoints():
    plot = mesh_plot(_tetra_surface())
    assert isinstance(plot, Plot)
    mesh, lines, ends = plot.objects[:3]
    assert isinstance(mesh, k3d.objects.Mesh) and mesh.vertices.dtype == np.float32
    assert mesh.indices.dtype == np.uint32 and mesh.attribute.dtype == np.float32
    assert isinstance(lines, k3d.objects.Lines) and lines.indices.shape == (2, 2) and lines.visible
    assert ends.positions.shape == (2, 3)
    other = Surface(_tetra_surface().vertices * 2, _tetra_surface().triangles, np.zeros(4), {})
    update_mesh_plot(plot, other)
    assert float(mesh.vertices.max()) == 2.0 and not lines.visible and not ends.visible


def test_figure_widget_sends_the_figure_as_it_is_now_and_plotly_code_only_on_request():
    """A page reload asks for the whole state: it gets the current colours, not those of first display; plotly's
    5 MB bundle is never part of the state, only the answer to a figure's one request."""
    from facecluster_widgets.viz.figure_widget import FigureWidget

    fig = FigureWidget(go.Scattergl(x=[0.0, 1.0], y=[1.0, 0.0], marker={"color": ["red", "red"]}))
    fig.data[0].marker.color = ["blue", "green"]
    state = fig.get_state()
    assert list(state["_widget_data"][0]["marker"]["color"]) == ["blue", "green"]
    assert len(json.dumps(state, default=str)) < 100_000 and "plotly-source" in state["_esm"]
    sent = []
    fig.send = lambda content, buffers=None: sent.append(content)
    fig._send_plotly_code(fig, {"type": "something else"}, [])
    assert not sent
    fig._send_plotly_code(fig, {"type": "plotly-source"}, [])
    assert sent[0]["type"] == "plotly-source" and "FigureModel" in sent[0]["source"]
