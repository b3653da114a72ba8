"""benchmarks/reload_trace.py: the traced widget manager matches the installed one, and the trace is read right."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
reload_trace = pytest.importorskip("reload_trace")


def test_the_trace_patches_the_installed_widget_manager(tmp_path):
    if not reload_trace.MANAGER.is_dir():
        pytest.skip("JupyterLab's widget manager is not installed")
    data = reload_trace.traced_manager(tmp_path)
    code = "".join(p.read_text() for p in (data / "labextensions/@jupyter-widgets/jupyterlab-manager/static")
                   .glob("*.js"))
    assert all(code.count(f'"FCTRACE {what}"') == 1 for what in ("start", "done", "states", "waits", "missing"))
    assert "FCTRACE" not in "".join(p.read_text() for p in (reload_trace.MANAGER / "static").glob("*.js"))


def test_a_changed_widget_manager_is_refused_not_traced_silently(tmp_path):
    source = tmp_path / "manager"
    (source / "static").mkdir(parents=True)
    (source / "static/1.js").write_text("nothing the trace knows")
    with pytest.raises(SystemExit, match="not the version"):
        reload_trace.traced_manager(tmp_path / "out", source)


def test_the_reloaded_notebooks_restore_is_read_after_the_reload_mark():
    log = "\n".join([
        "10.000 log: FCTRACE start aaa reload.ipynb",
        "10.500 log: FCTRACE waits 111 reload.ipynb",
        "11.000 log: FCTRACE done aaa reload.ipynb 632",
        "19.000 mark: page reload",
        "20.000 debug: Starting WebSocket",
        "20.050 log: FCTRACE waits 35a reload.ipynb",
        "20.100 log: FCTRACE start bbb 01_quickstart.ipynb",
        "20.200 log: FCTRACE start ccc reload.ipynb",
        "20.300 log: FCTRACE waits 7f0 reload.ipynb",
        "20.900 log: FCTRACE done bbb 01_quickstart.ipynb 129",
        "22.230 log: FCTRACE done ccc reload.ipynb 632",
        "22.300 log: FCTRACE missing 9f1 false 01_quickstart.ipynb",
        "22.500 log: FCTRACE missing 35a true reload.ipynb",
        "22.501 error: Error: widget model not found",
    ])
    assert reload_trace.read_trace(log) == {"restore_s": 2.03, "ask_to_restored_s": 2.18, "models": 632,
                                            "missing": [{"model": "35a", "in_kernel_answer": True}]}
    assert reload_trace.read_trace("") == {"restore_s": None, "ask_to_restored_s": None, "models": None,
                                           "missing": []}
