"""The widgets built headless on real faces: traits and figure data, no browser (tests/test_browser.py renders).

The faces: 4 people × 5 lfw10 photos, one of them copied under a hostile file name, extracted once per module.
"""

from __future__ import annotations

import shutil
import threading
import time

import numpy as np
import pytest
from plotly.callbacks import Points
from support.synthetic import make_identity_features

import facecluster_widgets as fc
from facecluster_widgets.review.collection import FaceCollection
from facecluster_widgets.review.edits import EditLog
from facecluster_widgets.review.session import ClusterSession
from facecluster_widgets.widgets import ClusterExplorer, MeshViewer, ParameterSweep, PipelineStepper

HOSTILE = "<img src=x onerror=alert(1)>.jpg"
PEOPLE = ("Colin_Powell", "George_W_Bush", "Tony_Blair", "Vladimir_Putin")


@pytest.fixture(scope="module")
def store_dir(lfw10, tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    for person in PEOPLE:
        (root / person).mkdir()
        for photo in sorted((lfw10 / person).iterdir())[:5]:
            shutil.copy(photo, root / person / photo.name)
    shutil.copy(sorted((lfw10 / PEOPLE[0]).iterdir())[5], root / PEOPLE[0] / HOSTILE)
    out = tmp_path_factory.mktemp("store") / "s"
    fc.extract(root, out, progress=False)
    return out


@pytest.fixture()
def store(store_dir, tmp_path):
    """A private copy: corrections write into the store."""
    shutil.copytree(store_dir, tmp_path / "s")
    return fc.open_store(tmp_path / "s", create=False)


@pytest.fixture()
def explorer(store):
    return ClusterExplorer(store, background=False)


def _points(*rows: int) -> Points:
    return Points(point_inds=list(rows), xs=[0.0] * len(rows), ys=[0.0] * len(rows), trace_name="", trace_index=0)


def _all_html(widget) -> str:
    """The value of every HTML widget inside ``widget``."""
    import ipywidgets as w

    out, todo = [], [widget]
    while todo:
        item = todo.pop()
        if isinstance(item, w.HTML):
            out.append(item.value)
        todo.extend(getattr(item, "children", ()))
    return "\n".join(out)


def test_explorer_builds_headless_with_a_webgl_scatter_and_a_displayable_widget(explorer, store):
    faces = explorer.faces
    assert len(faces) == len(store.table[store.table.status == "ok"]) >= 21
    trace = explorer.figure.data[0]
    assert trace.type == "scattergl" and trace.x.dtype == np.float32 and len(trace.x) == len(faces)
    assert "application/vnd.jupyter.widget-view+json" in explorer._repr_mimebundle_()
    assert f">{explorer.view.n_clusters}</span> clusters" in explorer.status.value
    assert explorer.view.n_clusters >= 2
    assert "silhouette" in explorer.metrics.value and "ARI" in explorer.metrics.value
    assert explorer.focus >= 0 and explorer.photo.value and all(img.value for img in explorer.steps)
    assert explorer.mesh.plot is not None and explorer.mesh.surface.vertices.dtype == np.float32
    assert explorer.gallery.rows and all(f["src"].startswith("data:image/") for r in explorer.gallery.rows
                                         for f in r["faces"])


def test_moving_a_slider_reclusters_and_recolours(explorer):
    before_labels = explorer.labels.copy()
    before_colours = np.asarray(explorer.figure.data[0].marker.color).copy()
    explorer.eps.value = 0.15  # a tiny radius: most faces are noise
    after = explorer.labels
    assert not np.array_equal(before_labels, after) and (after < 0).sum() > (before_labels < 0).sum()
    assert (np.asarray(explorer.figure.data[0].marker.color) != before_colours).any()
    assert explorer.view.params["eps"] == 0.15 and "✓" in explorer.status.value
    explorer.set(n_clusters=2)
    assert explorer.view.params["n_clusters"] == 2 and not explorer.k.disabled


def test_background_runs_are_debounced_and_stale_results_dropped(store):
    explorer = ClusterExplorer(store, background=True, debounce=0.05, mesh=False)
    calls, original = [], explorer.session.update

    def counting(**params):
        calls.append(params["eps"])
        time.sleep(0.2)  # a slow run: later moves arrive while it works
        return original(**params)

    explorer.session.update = counting
    for eps in (0.3, 0.35, 0.4, 0.45, 0.5):
        explorer.eps.value = eps
        time.sleep(0.01)
    explorer.wait()
    time.sleep(0.3)
    explorer.wait()
    assert calls[-1] == 0.5 and len(calls) < 5  # debounced: not one run per move
    assert explorer.view.params["eps"] == 0.5 and "✓" in explorer.status.value


def test_a_failing_change_is_shown_in_the_widget_and_the_state_kept(explorer):
    for eps in np.arange(0.2, 0.9, 0.05):  # a radius at which DBSCAN keeps some faces, but not all
        explorer.set(eps=round(float(eps), 2), n_clusters=2)
        core = int((explorer.session.model.dbscan_labels_ >= 0).sum())
        if 2 <= core < explorer.k.max:
            break
    view = explorer.view
    explorer.set(n_clusters=core + 1)  # more clusters than faces DBSCAN keeps
    assert explorer.view is view
    assert explorer.errors.outputs and "clustering failed" in explorer.errors.outputs[0]["text"]
    assert "previous result" in explorer.status.value
    explorer.set(n_clusters="auto")
    assert explorer.view is not view and "✓" in explorer.status.value


def test_hover_shows_the_face_and_escapes_its_file_name(explorer):
    row = explorer.faces.file_names.index(HOSTILE)
    explorer._on_hover(None, _points(row), None)
    assert explorer.hover_image.value[:4] == b"\x89PNG"
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in explorer.hover_label.value
    explorer.focus = row
    for html in (explorer.hover_label.value, explorer.face_title.value, _all_html(explorer)):
        assert "<img src=x" not in html
    hover = [t for t in explorer.figure.data[0].text if "onerror" in t]
    assert hover and all("<img" not in t for t in hover)


def test_cluster_names_are_escaped_everywhere_they_are_rendered(explorer):
    row = explorer.faces.file_names.index(HOSTILE)
    explorer.focus = row
    if explorer.labels[row] < 0:
        explorer.set(eps=1.2)
        explorer.focus = -1
        explorer.focus = row
    explorer.name_text.value = HOSTILE
    explorer.buttons["name"].click()
    assert not explorer.errors.outputs, explorer.errors.outputs
    label = int(explorer.labels[row])
    assert explorer.view.names[label] == HOSTILE
    html = _all_html(explorer)
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in html and "<img src=x" not in html
    titles = [r["title"] for r in explorer.gallery.rows]
    assert any(HOSTILE in t for t in titles)  # raw text: the gallery sets it with textContent
    from facecluster_widgets.widgets._gallery import _ESM

    assert "innerHTML" not in _ESM and "textContent" in _ESM


def test_selection_is_shared_by_scatter_gallery_and_edit_panel(explorer):
    explorer._on_selection(None, _points(0, 2, 4), None)
    assert explorer.selected == [0, 2, 4] and explorer.gallery.selected == [0, 2, 4]
    assert list(explorer.figure.data[0].selectedpoints) == [0, 2, 4]
    assert "<b>3</b> face(s) selected" in explorer.selection_info.value
    explorer.gallery.selected = [1]
    assert explorer.selected == [1] and list(explorer.figure.data[0].selectedpoints) == [1]
    explorer._on_click(None, _points(5), None)
    assert explorer.selected == [5] and explorer.focus == 5
    explorer._on_selection(None, _points(), None)
    assert explorer.figure.data[0].selectedpoints is None


def test_edit_buttons_change_the_clustering_and_persist_in_the_store(explorer, store):
    view = explorer.view
    clusters = [int(c) for c in view.clusters[:2]]
    explorer.selected = [int(view.members(clusters[0])[0]), int(view.members(clusters[1])[0])]
    explorer.buttons["merge"].click()
    assert not explorer.errors.outputs and explorer.view.n_clusters == view.n_clusters - 1
    merged = explorer.view
    explorer.selected = [int(merged.members(int(merged.clusters[0]))[0])]
    explorer.buttons["split"].click()
    assert explorer.view.n_clusters == merged.n_clusters + 1
    assert len(EditLog.load(store)) == 2
    fresh = ClusterExplorer(store, background=False, mesh=False)  # e.g. tomorrow, in a new kernel
    np.testing.assert_array_equal(fresh.labels, explorer.labels)
    explorer.buttons["undo"].click()
    assert explorer.view.n_clusters == merged.n_clusters and len(EditLog.load(store)) == 1


def test_possible_matches_can_be_accepted_into_the_cluster(explorer):
    explorer.set(eps=0.3)
    view = explorer.view
    if not view.n_noise or not view.n_clusters:
        pytest.skip("this clustering has no noise face or no cluster to test the queue with")
    explorer.focus = int(view.members(int(view.clusters[0]))[0])
    assert explorer.matches.rows, explorer.matches_title.value
    candidate = explorer.matches.rows[0]["faces"][0]["row"]
    explorer.selected = [candidate]
    explorer.buttons["accept"].click()
    assert not explorer.errors.outputs
    assert explorer.labels[candidate] == explorer.labels[explorer.focus]
    explorer.buttons["unknown"].click()
    assert sorted(explorer.selected) == sorted(np.flatnonzero(explorer.labels < 0).tolist())


def test_export_from_the_explorer_writes_names(explorer, tmp_path):
    label = int(explorer.view.clusters[0])
    explorer.session.name(label, "../../etc")
    path = explorer.export(tmp_path / "faces", "csv")
    text = path.read_text()
    assert path.suffix == ".csv" and "../../etc" in text
    summary = explorer.export(tmp_path / "folders", "symlink")
    assert summary["files"] >= 1 and not summary["errors"]
    assert all(p.resolve().is_relative_to((tmp_path / "folders").resolve()) or p.is_symlink()
               for p in (tmp_path / "folders").rglob("*"))
    assert not (tmp_path / "etc").exists()


def test_explorer_on_features_alone(tmp_path):
    blocks, y = make_identity_features(n_ids=5, per_id=10, d2=32, blocks_3d={"shape": 6}, noise2=0.3)
    explorer = ClusterExplorer(None, blocks, background=False, projection="pca")
    assert explorer.view.n_clusters >= 2 and explorer.mesh.surface is None
    assert "no 3D reconstruction" in explorer.mesh.caption.value
    explorer.set(lam=0.5)
    assert explorer.view.params["lam"] == 0.5


def test_mesh_viewer_draws_a_face_with_its_geodesic_paths(store):
    faces = FaceCollection.from_store(store)
    viewer = MeshViewer(faces, 0)
    mesh, lines, _ = viewer.plot.objects[:3]
    assert mesh.vertices.dtype == np.float32 and mesh.attribute.dtype == np.float32
    assert len(viewer.surface.paths) == 20 and lines.visible
    tips = viewer.surface.vertices[[int(v) for v in viewer.extractor.model.landmarks68[[30]]]]
    assert np.isfinite(tips).all()
    viewer.show(1)
    np.testing.assert_array_equal(viewer.plot.objects[0].vertices, viewer.surface.vertices)
    flat = MeshViewer(faces, 0, kind="mediapipe")
    assert flat.surface.vertices.shape == (468, 3) and not flat.surface.paths


def test_pipeline_stepper_builds_every_step_for_a_real_face(store):
    stepper = PipelineStepper(store, row=0)
    for _, key in stepper.picker.options:
        stepper.picker.value = key
        body = stepper.body.children[0]
        assert "not available" not in getattr(body, "value", ""), (key, body.value)
    stepper.show(2, "cluster")
    assert "cluster:" in stepper.body.children[0].children[0].value


def test_parameter_sweep_fills_the_heatmap_and_moves_a_linked_explorer(explorer):
    sweep = ParameterSweep(None, explorer=explorer, background=False, steps=(4, 3), run=True)
    heat = sweep.figure.data[0]
    assert np.shape(heat.z) == (3, 4) and sweep.frame.shape[0] == 12
    assert not any(isinstance(v, float) and np.isnan(v) for row in heat.z for v in row)  # JSON has no NaN
    best = sweep.best()
    assert best is not None and "best" in sweep.info.value
    sweep._on_cell(None, Points(point_inds=[0], xs=[float(best["eps"])], ys=[float(best["lam"])], trace_name="",
                                trace_index=0), None)
    assert explorer.view.params["eps"] == pytest.approx(float(best["eps"]))
    assert explorer.view.params["lam"] == pytest.approx(float(best["lam"]))


def test_sweep_runs_in_the_background_without_blocking(store):
    session = ClusterSession(FaceCollection.from_store(store), persist=False)
    sweep = ParameterSweep(session, steps=(3, 2))
    sweep.run()
    assert isinstance(sweep._thread, threading.Thread)
    sweep.wait()
    assert sweep.frame is not None and len(sweep.frame) == 6 and not sweep.button.disabled
