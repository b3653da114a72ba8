"""The public API a notebook user guesses: ``fc.HybridClustering``, ``fc.evaluate``, the widgets by name, and one
clear error naming the extra when the widget stack is not installed."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import facecluster_widgets as fc
from facecluster_widgets.errors import OptionalDependencyError, missing_extra, optional_import

ROOT = Path(__file__).resolve().parent.parent

#: Runs before the package is imported: any import of ipywidgets fails as if the extra were not installed.
HIDE_IPYWIDGETS = textwrap.dedent("""
    import sys
    from importlib.abc import MetaPathFinder

    class Hide(MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "ipywidgets":
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Hide())
""")


def _python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_core_and_widgets_are_reachable_from_the_package():
    assert fc.HybridClustering.__module__ == "facecluster_widgets.cluster.hybrid"
    assert fc.evaluate.__module__ == "facecluster_widgets.evaluation.evaluate"
    assert callable(fc.ClusterSession.from_store)
    for name in fc.WIDGETS:
        assert name in dir(fc) and name in fc.__all__
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        fc.Nope  # noqa: B018


@pytest.mark.slow
def test_widgets_load_lazily_and_the_core_imports_without_them():
    done = _python(HIDE_IPYWIDGETS + textwrap.dedent("""
        import facecluster_widgets as fc
        assert "ipywidgets" not in sys.modules and "plotly" not in sys.modules and "k3d" not in sys.modules
        fc.HybridClustering; fc.evaluate; fc.ClusterSession; fc.extract
        try:
            fc.ClusterExplorer
        except fc.OptionalDependencyError as exc:
            assert isinstance(exc, ImportError)
            print("ERROR:", exc)
        else:
            raise SystemExit("no error without ipywidgets")
    """))
    assert done.returncode == 0, done.stderr
    message = done.stdout.split("ERROR: ", 1)[1]
    assert "facecluster_widgets.ClusterExplorer needs the optional package 'ipywidgets'" in message
    assert "pip install 'facecluster_widgets[widgets]'" in message


@pytest.mark.slow
def test_the_widget_names_resolve_with_the_extra_installed():
    done = _python("import facecluster_widgets as fc; fc.HybridClustering; fc.evaluate; print(fc.ClusterExplorer)")
    assert done.returncode == 0, done.stderr
    assert "facecluster_widgets.widgets.explorer.ClusterExplorer" in done.stdout


def test_one_message_for_every_missing_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # as if umap-learn were not installed
    with pytest.raises(OptionalDependencyError) as info:
        optional_import("umap", "a UMAP projection", "widgets")
    assert str(info.value) == ("a UMAP projection needs the optional package 'umap', which is not installed. "
                               "Install it with: pip install 'facecluster_widgets[widgets]'")
    assert isinstance(info.value.__cause__, ImportError)
    error = missing_extra("the dlib embedder's torch engine", "refine", ModuleNotFoundError("x", name="torch"),
                          " (or use engine='dlib')")
    assert str(error).endswith("pip install 'facecluster_widgets[refine]' (or use engine='dlib')")


def test_extract_on_dask_without_dask_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "distributed", None)
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(OptionalDependencyError, match=r"pip install 'facecluster_widgets\[dask\]'"):
        fc.extract([tmp_path / "a.png"], store=tmp_path / "store", client=object(), progress=False)


@pytest.mark.slow
def test_session_and_estimator_from_a_store(tmp_path, lfw10):
    people = sorted(p for p in lfw10.iterdir() if p.is_dir())[:3]
    photos = [photo for person in people for photo in sorted(person.glob("*"))[:4]]
    store = fc.extract(photos, store=tmp_path / "store", progress=False)
    for given in (store, tmp_path / "store"):
        session = fc.ClusterSession.from_store(given, persist=False, eps=0.6)
        assert len(session.faces) == len(store.table) and session.params["eps"] == 0.6
        assert session.view.labels.shape == (len(store.table),)
    model = fc.HybridClustering(n_clusters=3).fit(store.features)
    assert model.labels_.shape == (len(store.table),) and model.n_clusters_ == 3


def test_the_insightface_detector_without_insightface_names_the_extra(monkeypatch, tmp_path):
    import numpy as np

    from facecluster_widgets.detect import detectors

    monkeypatch.setitem(sys.modules, "insightface", None)
    monkeypatch.setitem(sys.modules, "insightface.model_zoo", None)
    model = tmp_path / "det_10g.onnx"
    model.write_bytes(b"onnx")
    with pytest.raises(OptionalDependencyError, match=r"pip install 'facecluster_widgets\[insightface\]'"):
        detectors.create("insightface", model_path=model).detect(np.zeros((64, 64, 3), np.uint8))
