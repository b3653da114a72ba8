"""Slider release → updated colours of the explorer, measured IN THE BROWSER on a real store.

    .venv/bin/python benchmarks/explorer_latency.py --store STORE [--moves 7] [--param eps] [--load 2] \
        [--pose-weighting same_view --lam 0.9] [--screenshot FILE.png]
    .venv/bin/python benchmarks/explorer_latency.py --store S1 S2 ... --scaled 10000 [--param lam]

``--scaled N`` opens N faces made from the real faces of every store given (``benchmarks/scaled_faces.py`` states
the rule) instead of one store. ``--load N`` runs N busy processes (one pure-Python spin loop each, normal
priority) from the notebook's start to the last move: the declared load; the load average before and after is
reported with the figures.

JupyterLab on 127.0.0.1 and Debian's Chromium (as tests/test_browser.py) open a notebook holding
``ClusterExplorer(STORE)`` (the defaults, k = "auto"); the ε (or λ) slider's handle is then dragged with the mouse
to alternating positions. In the page, a capture-phase ``mouseup`` listener stamps the release and plotly's
``plotly_restyle`` / ``plotly_afterplot`` events stamp the first redraw whose colours differ from those before
the move: "colours" is the difference. "settled" is the release → the status line back to "up to date" (k chosen
again, every panel redrawn). Each move must change some colour; a move that changes none is reported, not timed.

Prints a Markdown table and writes ``benchmarks/results/explorer_latency.json`` (every move).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(ROOT / "tests"))  # the browser test's JupyterLab and slider helpers

_SETTLED = ("() => { const s = document.querySelector('.fc-explorer .fc-status');"
            " return s && !s.textContent.includes('⏳'); }")


#: When the kernel's first answer to the move (the status line turning "⏳") reaches the page: the round trip.
_ARM_BUSY = """() => {
  window.__fcBusy = null;
  const status = document.querySelector('.fc-explorer .fc-status');
  const seen = new MutationObserver(() => {
    if (window.__fcBusy === null && status.textContent.includes('⏳')) { window.__fcBusy = performance.now(); }
  });
  seen.observe(status, {subtree: true, childList: true, characterData: true});
}"""


def _notebook(stores: list[Path], scaled: int | None, folder: Path, params: dict) -> str:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    if scaled:
        source = (f"import sys\nsys.path.insert(0, {str(HERE)!r})\nfrom scaled_faces import scaled_faces\n"
                  f"faces = scaled_faces({[str(s) for s in stores]!r}, {int(scaled)})\n")
    else:
        source = f"faces = {str(stores[0])!r}\n"
    extra = "".join(f", {key}={value!r}" for key, value in params.items())
    cell = new_code_cell(f"from facecluster_widgets.widgets import ClusterExplorer\n{source}\n"
                         f"explorer = ClusterExplorer(faces{extra})\nexplorer")
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    (folder / "latency.ipynb").write_text(nbformat.writes(new_notebook(cells=[cell], metadata=kernel)))
    return "latency.ipynb"


def _wait_for_map(page, colours_js: str, timeout_s: float) -> None:
    """Until the map has its colours, asked every 2 s."""
    deadline = time.monotonic() + timeout_s
    while page.evaluate(colours_js) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no map colours after {timeout_s:.0f} s")
        page.wait_for_timeout(2000)


def _spin(n: int) -> list[subprocess.Popen]:
    """The declared load: ``n`` processes that each keep one core busy."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def measure(stores: list[Path], moves: int, param: str, scaled: int | None = None, load: int = 0,
            screenshot: Path | None = None, params: dict | None = None) -> dict:
    import test_browser as tb
    from playwright.sync_api import sync_playwright

    fractions = [0.30, 0.42] if param == "eps" else [0.75, 0.95]  # ε ~0.48 / ~0.66; λ 0.75 / 0.95
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        name = _notebook(stores, scaled, folder, params or {})
        lab_gen = tb.lab.__wrapped__(_Factory(folder))
        lab = next(lab_gen)
        errors: list[str] = []
        spinners = _spin(load)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=tb.CHROMIUM, args=tb.CHROMIUM_FLAGS)
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                started = time.perf_counter()
                tb.run_notebook(page, lab, name, timeout_s=900)
                reloaded = False
                try:
                    try:
                        _wait_for_map(page, tb._SCATTER_COLOURS, 60)
                    except TimeoutError:  # seen at 10,000 faces: the page missed the map's data; a reload has it
                        print("the map never got its data in this page; reloading it", flush=True)
                        reloaded = True
                        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
                        page.reload()
                        _wait_for_map(page, tb._SCATTER_COLOURS, 300)
                    page.wait_for_function(_SETTLED, timeout=300_000, polling=1000)
                except Exception:
                    if screenshot is not None:
                        page.screenshot(path=str(screenshot.with_suffix(".failed.png")), full_page=True)
                    print("the explorer never showed its map; console errors:", *errors, sep="\n  ")
                    raise
                opened = time.perf_counter() - started
                n_faces = len(page.evaluate(tb._SCATTER_COLOURS))
                slider = page.locator(".fc-explorer .widget-slider").filter(
                    has_text="ε" if param == "eps" else "λ").first
                runs = []
                for i in range(moves):
                    page.evaluate(tb._ARM_TIMER)
                    page.evaluate(_ARM_BUSY)
                    tb._drag_slider(page, slider, fractions[i % 2])
                    try:
                        page.wait_for_function("() => window.__fcColoured !== null", timeout=60_000, polling="raf")
                        coloured = page.evaluate("() => window.__fcColoured - window.__fcRelease")
                    except Exception:
                        coloured = None
                    page.wait_for_function(_SETTLED, timeout=300_000, polling="raf")
                    settled = page.evaluate("() => performance.now() - window.__fcRelease")
                    busy = page.evaluate("() => window.__fcBusy && window.__fcBusy - window.__fcRelease")
                    value = slider.locator(".widget-readout").first.inner_text()
                    runs.append({"value": value, "colours_ms": coloured, "settled_ms": settled,
                                 "kernel_echo_ms": busy})
                    print(f"move {i + 1}: {param} {value}: kernel echo {busy} ms, colours {coloured} ms, "
                          f"settled {settled:.0f} ms", flush=True)
                    page.wait_for_timeout(500)
                load_after = os.getloadavg()
                if screenshot is not None:
                    tb._shoot(page, page.locator(".fc-explorer").first, screenshot)
                browser.close()
        finally:
            for spinner in spinners:
                spinner.kill()
                spinner.wait()
            next(lab_gen, None)
    timed = [r["colours_ms"] for r in runs if r["colours_ms"] is not None]
    return {"stores": [str(s) for s in stores], "scaled": scaled, "faces": n_faces, "param": param,
            "load_processes": load, "loadavg_before": load_before, "loadavg_after": load_after,
            "moves": runs, "open_s": opened, "reloaded_for_the_map": reloaded,
            "colours_median_ms": statistics.median(timed) if timed else None,
            "settled_median_ms": statistics.median(r["settled_ms"] for r in runs),
            "untimed_moves": len(runs) - len(timed), "console_errors": errors}


class _Factory:
    """Stands in for pytest's ``tmp_path_factory`` in the browser test's ``lab`` fixture."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def mktemp(self, _name: str) -> Path:
        return self.folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, nargs="+", required=True)
    parser.add_argument("--moves", type=int, default=7)
    parser.add_argument("--param", choices=("eps", "lam"), default="eps")
    parser.add_argument("--scaled", type=int, default=None, metavar="N",
                        help="N faces built from the stores' real faces (benchmarks/scaled_faces.py)")
    parser.add_argument("--load", type=int, default=0, metavar="N", help="N busy processes while measuring")
    parser.add_argument("--pose-weighting", help="ClusterExplorer(pose_weighting=...); default: the estimator's")
    parser.add_argument("--lam", type=float, help="the explorer's starting λ; default: the estimator's")
    parser.add_argument("--screenshot", type=Path, default=None, help="a PNG of the explorer after the moves")
    parser.add_argument("--out", type=Path, default=RESULTS / "explorer_latency.json")
    args = parser.parse_args(argv)
    if not args.scaled and len(args.store) > 1:
        parser.error("several stores need --scaled N")
    args.store = [s.resolve() for s in args.store]  # the notebook runs in a scratch folder
    params = {key: value for key, value in (("pose_weighting", args.pose_weighting), ("lam", args.lam))
              if value is not None}
    result = measure(args.store, args.moves, args.param, args.scaled, args.load, args.screenshot, params)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    what = f"{args.scaled} scaled" if args.scaled else args.store[0].name
    before, after = (" / ".join(f"{v:.1f}" for v in result[k]) for k in ("loadavg_before", "loadavg_after"))
    print(f"\n| faces | slider | busy processes | load avg before → after | release → colours (median of "
          f"{len(result['moves'])}) | release → up to date |\n|---|---|---|---|---|---|\n"
          f"| {result['faces']} ({what}) | {args.param} | {args.load} | {before} → {after} | "
          f"{result['colours_median_ms']:.0f} ms | {result['settled_median_ms']:.0f} ms |")
    if result["untimed_moves"]:
        print(f"{result['untimed_moves']} move(s) changed no colour (not timed)")
    if result["console_errors"]:
        print("console errors:", *result["console_errors"], sep="\n  ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
