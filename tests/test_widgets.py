"""The widgets built headless on real faces: traits and figure data, no browser (tests/test_browser.py renders).

The faces: 4 people × 5 lfw10 photos, one of them copied under a hostile file name, extracted once per module.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

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
    assert explorer.focus >= 0 and explorer.face.photo.value and all(img.value for img in explorer.face.steps)
    assert explorer.mesh.plot is not None and explorer.mesh.surface.vertices.dtype == np.float32
    assert explorer.gallery.rows and all(f["src"].startswith("data:image/") for r in explorer.gallery.rows
                                         for f in r["faces"])
    largest = max(explorer.view.clusters, key=lambda c: explorer.view.members(int(c)).size)
    assert explorer.labels[explorer.focus] == largest  # starts on the largest cluster, not on row 0
    config = explorer.figure._config  # nothing on the page may upload faces (plotly's "Share chart…")
    assert config["showSendToCloud"] is False and "sendChartToCloud" in config["modeBarButtonsToRemove"]
    for name in ("ε", "MinPts", "λ", "k"):
        assert name in explorer.help.value
    assert all(c.tooltip for c in (explorer.eps, explorer.min_samples, explorer.lam, explorer.k))


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


def test_background_runs_cluster_only_the_latest_setting(store):
    """The real threads; what is asserted does not depend on timing: the last setting is the one shown."""
    explorer = ClusterExplorer(store, background=True, mesh=False)
    for eps in (0.3, 0.35, 0.4, 0.45, 0.5):
        explorer.eps.value = eps
    explorer.wait()
    assert explorer.clustering.idle
    assert explorer.view.params["eps"] == 0.5 and "✓" in explorer.status.value
    explorer.clustering.close()
    explorer.mapping.close()


def test_auto_k_shows_a_quick_result_then_the_chosen_k(explorer):
    shown = []
    original = explorer._show_view
    explorer._show_view = lambda view, *a, **k: (shown.append(view.preview), original(view, *a, **k))
    explorer.eps.value = 0.7
    assert shown == [True, False]  # quick look first (last k, one start), then k chosen again
    assert "✓" in explorer.status.value and not explorer.view.preview


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
    card = explorer.hover_card.card
    assert card["row"] == row and card["src"].startswith("data:image/jpeg")
    assert card["title"] == f"{PEOPLE[0]}/{HOSTILE}"  # relative to the collection: raw text, set as textContent
    from facecluster_widgets.widgets._hover import _ESM

    assert "innerHTML" not in _ESM and "textContent" in _ESM
    explorer.focus = row
    for html in (explorer.face.title.value, _all_html(explorer)):
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
    explorer.edit.name_text.value = HOSTILE
    explorer.buttons["name"].click()
    assert not explorer.errors.outputs, explorer.errors.outputs
    label = int(explorer.labels[row])
    assert explorer.view.names[label] == HOSTILE
    html = _all_html(explorer)
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in html and "<img src=x" not in html
    titles = [r["title"] for r in explorer.gallery.rows]
    assert any(HOSTILE in t for t in titles)  # raw text: the gallery sets it with textContent
    from facecluster_widgets.widgets._gallery import _ESM
    from facecluster_widgets.widgets._pairs import _ESM as _PAIRS_ESM

    assert "innerHTML" not in _ESM and "textContent" in _ESM
    assert "innerHTML" not in _PAIRS_ESM and HOSTILE in str(explorer.edit.pairs.pairs)  # raw text, textContent


def test_selection_is_shared_by_scatter_gallery_and_edit_panel(explorer):
    explorer.hover_card.lasso = {"rows": [0, 2, 4], "n": 1}  # what the browser sends after a lasso
    assert explorer.selected == [0, 2, 4] and explorer.gallery.selected == [0, 2, 4]
    assert list(explorer.figure.data[0].selectedpoints) == [0, 2, 4]
    assert "<b>3</b> faces selected" in explorer.edit.selection_info.value
    explorer.figure.layout.selections = [{"type": "path", "path": "M0,0L1,1L1,0Z"}]  # the lasso's outline
    explorer.gallery.selected = [1]  # a choice in the gallery: the map must not keep the lasso's outline
    assert explorer.selected == [1] and list(explorer.figure.data[0].selectedpoints) == [1]
    assert not explorer.figure.layout.selections
    assert "<b>1</b> face selected" in explorer.edit.selection_info.value
    explorer._on_click(None, _points(5), None)
    assert explorer.selected == [5] and explorer.focus == 5
    explorer.hover_card.lasso = {"rows": [], "n": 2}  # a click on empty map space
    assert explorer.figure.data[0].selectedpoints is None  # nothing selected: nothing faded
    explorer.eps.value = 0.7
    assert explorer.figure.data[0].selectedpoints is None  # and re-clustering does not fade it either


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
    split = explorer.labels.copy()
    assert len(EditLog.load(store)) == 2 and explorer.buttons["redo"].disabled
    fresh = ClusterExplorer(store, background=False, mesh=False)  # e.g. tomorrow, in a new kernel
    np.testing.assert_array_equal(fresh.labels, explorer.labels)
    explorer.buttons["undo"].click()
    assert explorer.view.n_clusters == merged.n_clusters and len(EditLog.load(store)) == 1
    assert not explorer.buttons["redo"].disabled
    explorer.buttons["redo"].click()
    np.testing.assert_array_equal(explorer.labels, split)
    assert len(EditLog.load(store)) == 2 and explorer.buttons["redo"].disabled


def test_same_person_pairs_are_ranked_and_merged_in_one_click(explorer):
    view = explorer.view
    pairs = explorer.session.similar_pairs(10, view)
    assert len(pairs) == min(10, view.n_clusters * (view.n_clusters - 1) // 2)
    assert [p.distance for p in pairs] == sorted(p.distance for p in pairs)
    first = pairs[0]
    shown = explorer.edit.pairs.pairs
    assert len(shown) == min(6, len(pairs)) and shown[0]["a"]["faces"] and shown[0]["b"]["faces"]
    assert (shown[0]["a"]["label"], shown[0]["b"]["label"]) == (first.a, first.b)
    explorer.edit.pairs.merge = {"i": 0, "a": first.b, "b": first.a, "n": 1}  # a click on a list since changed
    assert "changed" in explorer.last_error and explorer.view.n_clusters == view.n_clusters
    explorer.errors.outputs = ()
    explorer.edit.pairs.merge = {"i": 0, "a": first.a, "b": first.b, "n": 2}  # what the browser sends on a click
    assert not explorer.errors.outputs and explorer.view.n_clusters == view.n_clusters - 1
    merged = explorer.view
    assert merged.labels[view.members(first.a)[0]] == merged.labels[view.members(first.b)[0]]


def _noisy(explorer):
    for eps in (0.3, 0.25, 0.35, 0.2):
        explorer.set(eps=eps)
        view = explorer.view
        if view.n_noise >= 2 and view.n_clusters:
            return view
    pytest.fail(f"no clustering with two noise faces and a cluster: {explorer.status.value}")


def test_possible_matches_are_added_one_by_one_and_rejected_while_the_queue_keeps_its_cluster(explorer):
    view = _noisy(explorer)
    anchor = int(view.members(int(view.clusters[0]))[0])
    explorer.focus = anchor
    label = int(view.labels[anchor])
    assert explorer.edit.queue_label == label and explorer.matches.rows, explorer.edit.matches_title.value
    first, second = [f["row"] for f in explorer.matches.rows[0]["faces"][:2]]
    explorer.matches.selected = [first]  # a click on a candidate in the browser sets these two traits
    explorer.matches.focus = first
    assert explorer.focus == first and explorer.edit.queue_label == label  # the queue did not vanish
    explorer.buttons["accept"].click()
    assert not explorer.errors.outputs, explorer.errors.outputs
    assert explorer.labels[first] == explorer.labels[anchor]
    explorer.matches.selected = [second]
    explorer.matches.focus = second
    explorer.buttons["reject"].click()
    assert not explorer.errors.outputs, explorer.errors.outputs
    remaining = [f["row"] for r in explorer.matches.rows for f in r["faces"]]
    assert second not in remaining and explorer.labels[second] < 0 and explorer.edit.queue_label == label
    explorer.buttons["undo"].click()
    assert second in [f["row"] for r in explorer.matches.rows for f in r["faces"]]
    explorer.buttons["unknown"].click()
    assert sorted(explorer.selected) == sorted(np.flatnonzero(explorer.labels < 0).tolist())


def test_export_from_the_explorer_writes_names_into_new_folders(explorer, tmp_path):
    label = int(explorer.view.clusters[0])
    explorer.session.name(label, "../../etc")
    path = explorer.export(tmp_path / "new" / "deeper" / "faces", "csv")  # folders that do not exist yet
    text = path.read_text()
    assert path.suffix == ".csv" and "../../etc" in text
    unnamed = [int(c) for c in explorer.view.clusters if int(c) != label]
    assert f",{unnamed[0]},cluster {unnamed[0]}," in text  # the name the page shows, not an empty one
    records = json.loads(explorer.export(tmp_path / "other" / "faces.json", "json").read_text())["faces"]
    assert all(r["name"] for r in records if r["cluster"] >= 0)
    summary = explorer.export(tmp_path / "folders", "symlink")
    assert summary["files"] >= 1 and not summary["errors"]
    assert all(p.resolve().is_relative_to((tmp_path / "folders").resolve()) or p.is_symlink()
               for p in (tmp_path / "folders").rglob("*"))
    assert not (tmp_path / "etc").exists()
    panel = explorer.export_panel
    panel.path.value, panel.format.value = str(tmp_path / "folders"), "copy"
    panel.button.click()  # not empty any more: refused, and said so
    assert "export failed" in panel.result.value and "not an empty folder" in panel.result.value
    panel.path.value = str(tmp_path / "third" / "t.csv")
    assert panel.result.value == ""  # an old message never stays next to a new request
    panel.format.value = "csv"
    panel.button.click()
    assert "✓ wrote" in panel.result.value and "failed" not in panel.result.value


def test_closing_an_explorer_closes_every_widget_model_it_made(store):
    """A kernel keeps every widget model until it is closed, and a page reload rebuilds them all in the browser:
    an explorer a notebook replaces must be able to take all of its models (and its threads) away."""
    from ipywidgets.widgets.widget import _instances

    before = set(_instances)
    explorer = ClusterExplorer(store)  # background threads, as in a notebook
    explorer.wait()
    made = set(_instances) - before
    assert len(made) > 100 and explorer.model_id in made and explorer.figure.model_id in made
    explorer.close()
    assert not made & set(_instances), f"{len(made & set(_instances))} of {len(made)} models still open"
    assert explorer.figure.comm is None and explorer.hover_card.comm is None


def test_an_explorer_makes_few_widget_models(store):
    """A page reload rebuilds every widget model of the kernel at once and anywidget gives each 2 s to start: with
    six explorers of 254 models each (cfp100, mesh on) and the CPU slowed 4x, some missed it. Widgets that look
    alike share one layout and style per explorer, and the "same person?" list is one widget: 118 models now."""
    from ipywidgets.widgets.widget import _instances

    before = set(_instances)
    explorer = ClusterExplorer(store, background=False)
    made = [_instances[m] for m in set(_instances) - before]
    kinds = [type(m).__name__ for m in made]
    assert len(made) <= 125, f"{len(made)} widget models for one explorer"
    assert kinds.count("ButtonStyle") == 1 and kinds.count("HTMLStyle") == 1 and kinds.count("Layout") <= 30
    other = ClusterExplorer(store, background=False, mesh=False)
    assert explorer.status.layout is not other.status.layout  # shared within an explorer, never across two
    other.close()
    assert explorer.status.layout.comm is not None  # closing one explorer leaves the other's layouts open


def test_command_line_and_explorer_export_name_every_face_alike(store, tmp_path, capsys):
    """`facecluster cluster` and the explorer's export on the same faces and corrections (a name and a face marked
    "not this person", saved in the store, which the command line replays): per face the same cluster and the same
    name, the one the page shows — the user's name, "cluster N" when unnamed, the noise name for faces in none."""
    import pandas as pd

    from facecluster_widgets.cli import main
    from facecluster_widgets.review.view import NOISE_NAME

    explorer = ClusterExplorer(store, background=False, mesh=False)
    named = int(explorer.view.clusters[0])
    explorer.session.name(named, "Colin")
    explorer.session.not_person([int(explorer.view.members(named)[0])])
    page = explorer.export(tmp_path / "page.csv", "csv")

    photos = tmp_path / "photos"  # the same photos, and the store as the command line keeps it: DIR/store
    for path in store.table["path"]:
        (photos / Path(path).parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, photos / Path(path).parent.name / Path(path).name)
    shutil.copytree(store.root, tmp_path / "out" / "store")
    assert main(["cluster", str(photos), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    assert "0 recomputed" in capsys.readouterr().out

    cli = pd.read_csv(tmp_path / "out" / "clusters.csv", keep_default_na=False)
    shown = pd.read_csv(page, keep_default_na=False)
    key = lambda frame, column: [(Path(p).parent.name, Path(p).name, int(i)) for p, i in  # noqa: E731
                                 zip(frame[column], frame["face_index"], strict=True)]
    cli.index, shown.index = key(cli, "file"), key(shown, "path")
    shown = shown.loc[cli.index]
    assert cli["cluster"].tolist() == shown["cluster"].tolist()
    assert cli["name"].tolist() == shown["name"].tolist()
    names = dict(zip(cli["cluster"], cli["name"], strict=True))
    assert names[named] == "Colin" and names[-1] == NOISE_NAME
    assert all(names[c] == f"cluster {c}" for c in names if c not in (named, -1))


def test_gallery_says_how_many_clusters_and_pages_through_all_of_them(tmp_path):
    blocks, _ = make_identity_features(n_ids=40, per_id=4, d2=32, blocks_3d={"shape": 6}, noise2=0.05)
    explorer = ClusterExplorer(None, blocks, background=False, projection="pca", mesh=False, n_clusters=40)
    panel = explorer.gallery_panel
    total = explorer.view.n_clusters
    assert total > 30 and f"of <b>{total}</b>" in panel.count.value
    seen = {r["label"] for r in explorer.gallery.rows if r["label"] >= 0}
    assert len(seen) == 30 and not panel.next.disabled
    panel.next.click()
    seen |= {r["label"] for r in explorer.gallery.rows if r["label"] >= 0}
    assert seen == set(explorer.view.clusters.tolist()) and panel.next.disabled
    label = int(explorer.view.clusters[0])
    explorer.session.name(label, "Ada Lovelace")
    explorer._show_view(explorer.view)
    panel.filter.value = "lovelace"
    assert [r["label"] for r in explorer.gallery.rows if r["label"] >= 0] == [label]
    assert "of <b>1</b> matching" in panel.count.value


def test_the_face_panel_standardises_with_the_stores_own_settings(store):
    run = store.read_json("run")
    spec = json.loads((store.root / "stages" / f"{run['stages']['standardise']}.json").read_text())
    spec["params"]["clahe"] = False  # as if this store had been made without CLAHE
    (store.root / "stages" / f"{run['stages']['standardise']}.json").write_text(json.dumps(spec))
    explorer = ClusterExplorer(store, background=False, mesh=False)
    assert explorer.faces.standardise_config.clahe is False
    assert explorer.face.steps[1].value and explorer.face.steps[2].value == b""  # no CLAHE step to show


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
    sweep.clicks.cell = {"eps": float(best["eps"]), "lam": float(best["lam"]), "n": 1}  # a click in the browser
    assert explorer.view.params["eps"] == pytest.approx(float(best["eps"]))
    assert explorer.view.params["lam"] == pytest.approx(float(best["lam"]))


def test_sweep_runs_in_the_background_without_blocking(store):
    session = ClusterSession(FaceCollection.from_store(store), persist=False)
    sweep = ParameterSweep(session, steps=(3, 2))
    sweep.run()
    assert isinstance(sweep._thread, threading.Thread)
    sweep.wait()
    assert sweep.frame is not None and len(sweep.frame) == 6 and not sweep.button.disabled


def test_a_map_is_kept_in_the_store_and_paid_once_per_collection(store, monkeypatch):
    first = ClusterSession(FaceCollection.from_store(store), persist=False, edits=EditLog())
    assert not first.projection_cached("tsne")
    xy = first.projection("tsne")
    assert first.projection_cached("tsne")

    def no_second_run(*_args, **_kwargs):
        raise AssertionError("the map was computed again")

    import facecluster_widgets.review.session as session_module

    monkeypatch.setattr(session_module, "project", no_second_run)
    again = ClusterSession(FaceCollection.from_store(store), persist=False, edits=EditLog())  # a new kernel
    assert again.projection_cached("tsne")
    np.testing.assert_array_equal(again.projection("tsne"), xy)
    explorer = ClusterExplorer(None, session=again, background=False, mesh=False, projection="tsne")
    explorer._schedule_projection()
    assert "tsne map from the store" in explorer.timings.value
