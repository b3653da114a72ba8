"""A real browser: JupyterLab on 127.0.0.1, Debian's Chromium driven by Playwright (no browser download),
the quickstart notebook run top to bottom through the UI, then the explorer it opens driven by the mouse: the ε
slider moved, the scatter's colours and the cluster count checked to change, the k3d canvas checked to have drawn.
Screenshots land in ``test-artifacts/`` (quickstart.png, explorer-before.png, explorer-after.png)."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--use-angle=swiftshader", "--enable-unsafe-swiftshader"]


def _require_browser() -> None:
    missing = []
    if not Path(CHROMIUM).exists():
        missing.append("Debian's chromium (`apt-get install chromium`; `make test` installs it when run as root)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package (the `test` extra)")
    if missing:
        message = "browser test needs " + " and ".join(missing)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on loopback serving a scratch copy of the notebooks."""
    _require_browser()
    root = tmp_path_factory.mktemp("lab")
    for notebook in (ROOT / "notebooks").glob("*.ipynb"):
        shutil.copy(notebook, root / notebook.name)
    port, token = _free_port(), "facecluster-test"
    # Render every cell (JupyterLab 4 virtualises long notebooks: cells off screen are not in the DOM) and
    # skip the news toast; a settings folder of the test's own, never the user's.
    settings = root / ".lab-settings"
    for plugin, values in {"notebook-extension/tracker": {"windowingMode": "none"},
                           "apputils-extension/notification": {"fetchNews": "false"}}.items():
        package, name = plugin.split("/")
        (settings / f"@jupyterlab/{package}").mkdir(parents=True, exist_ok=True)
        (settings / f"@jupyterlab/{package}/{name}.jupyterlab-settings").write_text(json.dumps(values))
    log = open(root / "jupyter.log", "w")  # noqa: SIM115 - closed in teardown
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.token={token}", "--allow-root", f"--ServerApp.root_dir={root}",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.disable_check_xsrf=True"],
        stdout=log, stderr=subprocess.STDOUT, cwd=root, env={**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(settings)})
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited early; see {root / 'jupyter.log'}")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("JupyterLab did not answer within 90 s")
    yield {"url": url, "token": token, "root": root}
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        yield context.new_page()
        browser.close()


def run_notebook(page, lab, name: str, timeout_s: float = 300) -> None:
    """Open ``name`` in JupyterLab, run all cells through the UI, and wait until the kernel is idle."""
    page.goto(f"{lab['url']}/lab/tree/{name}?token={lab['token']}")
    page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget", timeout=90_000)
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " return w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel; }",
        timeout=90_000)
    page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.ready")
    news = page.get_by_role("button", name="No")  # the "get notified about Jupyter news?" toast
    if news.count():
        news.first.click()
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_function(  # done, or stopped at a failing cell (run-all skips the cells after it)
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " const cells = w.content.widgets.filter(c => c.model.type === 'code');"
        " const failed = cells.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'));"
        " return cells.length > 0 && w.sessionContext.session.kernel.status === 'idle'"
        "   && (failed || cells.every(c => c.model.executionCount !== null)); }",
        timeout=timeout_s * 1000, polling=500)
    errors = page.evaluate(
        "() => window.jupyterapp.shell.currentWidget.content.widgets.flatMap(c => c.model.type !== 'code' ? [] :"
        " c.model.outputs.toJSON().filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue))")
    assert not errors, f"{name} failed in the browser: {errors}"


@pytest.fixture(scope="module")
def quickstart(page, lab):
    run_notebook(page, lab, "01_quickstart.ipynb")
    return page


def test_quickstart_runs_in_a_real_browser(quickstart):
    page = quickstart
    text = page.locator(".jp-OutputArea-output").all_inner_texts()
    joined = "\n".join(text)
    assert "images of" in joined and "Traceback" not in joined, joined[-2000:]
    assert page.locator(".jp-OutputArea-output img").count() >= 1  # the thumbnail grid rendered
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "quickstart.png"), full_page=False)


_SCATTER_COLOURS = """() => {
  const gd = document.querySelector('.fc-explorer .js-plotly-plot');
  if (!gd || !gd.data || !gd.data.length) return null;
  return Array.from(gd.data[0].marker.color, String);
}"""
_CLUSTER_COUNT = ("() => { const e = document.querySelector('.fc-explorer .fc-cluster-count');"
                  " return e && e.textContent; }")


def _canvas_ink(locator) -> tuple[float, int]:
    """Share of non-background pixels and number of distinct colours in the middle of an element's screenshot
    (where the face is; k3d's colour bar sits at the side and would count as ink on a blank WebGL canvas)."""
    import numpy as np
    from PIL import Image

    image = np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB")).astype(int)
    h, w = image.shape[:2]
    middle = image[int(0.2 * h):int(0.8 * h), int(0.3 * w):int(0.7 * w)].reshape(-1, 3)
    ink = (np.abs(middle - image[2, w // 2]).sum(axis=1) > 30).mean()
    return float(ink), int(np.unique(middle // 8, axis=0).shape[0])


def _shoot(page, element, path: Path) -> None:
    """A screenshot of the whole element: the viewport grown to hold it (the notebook scrolls inside the page)."""
    height = int(element.evaluate("e => e.getBoundingClientRect().height"))
    page.set_viewport_size({"width": 1400, "height": max(1000, height + 300)})
    element.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(800)
    element.screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 1000})


def _drag_slider(page, slider, fraction: float) -> None:
    """Drag a slider's handle with the mouse to ``fraction`` of its track, as a person would."""
    track = slider.locator(".noUi-target, .slider").first
    handle = slider.locator(".noUi-handle, .ui-slider-handle").first
    handle.scroll_into_view_if_needed()
    box, hbox = track.bounding_box(), handle.bounding_box()
    page.mouse.move(hbox["x"] + hbox["width"] / 2, hbox["y"] + hbox["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + fraction * box["width"], hbox["y"] + hbox["height"] / 2, steps=12)
    page.mouse.up()


def test_explorer_follows_the_eps_slider(quickstart):
    page = quickstart
    explorer = page.locator(".fc-explorer").first
    explorer.wait_for(state="visible", timeout=120_000)
    page.wait_for_function(_SCATTER_COLOURS, timeout=120_000)
    page.wait_for_function(_CLUSTER_COUNT, timeout=60_000)
    canvases = explorer.locator(".fc-mesh canvas")
    canvases.first.wait_for(state="visible", timeout=120_000)
    areas = [c.evaluate("e => e.width * e.height") for c in canvases.all()]
    mesh = canvases.nth(areas.index(max(areas)))  # the WebGL canvas (not the colour bar's)
    mesh.scroll_into_view_if_needed()
    page.wait_for_timeout(1500)  # let WebGL draw a few frames
    ink, colours = _canvas_ink(mesh)
    assert ink > 0.05 and colours > 20, f"k3d canvas looks blank: {ink:.1%} non-background pixels, {colours} colours"

    before_colours = page.evaluate(_SCATTER_COLOURS)
    before_count = page.evaluate(_CLUSTER_COUNT)
    ARTIFACTS.mkdir(exist_ok=True)
    _shoot(page, explorer, ARTIFACTS / "explorer-before.png")

    eps = explorer.locator(".widget-slider").filter(has_text="ε").first
    readout = eps.locator(".widget-readout").first
    start = readout.inner_text()
    _drag_slider(page, eps, 0.55)  # ε from its default to ~0.85 on its 0.05–1.5 track
    page.wait_for_function(f"() => {{ const e = document.querySelector('.fc-explorer .fc-cluster-count');"
                           f" return e && e.textContent !== {before_count!r}; }}", timeout=120_000)
    page.wait_for_function("() => !document.querySelector('.fc-explorer .fc-status').textContent.includes('⏳')",
                           timeout=120_000)
    page.wait_for_timeout(1000)
    after_colours = page.evaluate(_SCATTER_COLOURS)
    after_count = page.evaluate(_CLUSTER_COUNT)
    _shoot(page, explorer, ARTIFACTS / "explorer-after.png")

    assert readout.inner_text() != start, "the ε slider did not move"
    assert after_count != before_count, f"cluster count stayed {before_count}"
    assert len(after_colours) == len(before_colours)
    changed = sum(a != b for a, b in zip(before_colours, after_colours, strict=True))
    assert changed > 0, "no face changed colour after the ε move"
    errors = explorer.locator(".fc-errors").inner_text()
    assert "Error" not in errors, errors
