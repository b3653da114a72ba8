"""Slider release → updated colours of the explorer, measured IN THE BROWSER on a real store.

    .venv/bin/python benchmarks/explorer_latency.py --store STORE [--moves 7] [--param eps] \
        [--pose-weighting same_view --lam 0.9] [--screenshot FILE.png]

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
import statistics
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


def _notebook(store: Path, folder: Path, params: dict) -> str:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    extra = "".join(f", {key}={value!r}" for key, value in params.items())
    cell = new_code_cell(f"from facecluster_widgets.widgets import ClusterExplorer\n\n"
                         f"explorer = ClusterExplorer({str(store)!r}{extra})\nexplorer")
    kernel = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    (folder / "latency.ipynb").write_text(nbformat.writes(new_notebook(cells=[cell], metadata=kernel)))
    return "latency.ipynb"


def measure(store: Path, moves: int, param: str, params: dict | None = None, screenshot: Path | None = None) -> dict:
    import test_browser as tb
    from playwright.sync_api import sync_playwright

    fractions = [0.30, 0.42] if param == "eps" else [0.75, 0.95]  # ε ~0.48 / ~0.66; λ 0.75 / 0.95
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        name = _notebook(store, folder, params or {})
        lab_gen = tb.lab.__wrapped__(_Factory(folder))
        lab = next(lab_gen)
        errors: list[str] = []
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=tb.CHROMIUM, args=tb.CHROMIUM_FLAGS)
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                started = time.perf_counter()
                tb.run_notebook(page, lab, name, timeout_s=900)
                page.wait_for_function(tb._SCATTER_COLOURS, timeout=300_000)
                page.wait_for_function(_SETTLED, timeout=300_000)
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
                if screenshot is not None:
                    page.screenshot(path=str(screenshot), full_page=True)
                browser.close()
        finally:
            next(lab_gen, None)
    timed = [r["colours_ms"] for r in runs if r["colours_ms"] is not None]
    return {"store": str(store), "faces": n_faces, "param": param, "moves": runs, "open_s": opened,
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
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--moves", type=int, default=7)
    parser.add_argument("--param", choices=("eps", "lam"), default="eps")
    parser.add_argument("--pose-weighting", help="ClusterExplorer(pose_weighting=...); default: the estimator's")
    parser.add_argument("--lam", type=float, help="the explorer's starting λ; default: the estimator's")
    parser.add_argument("--screenshot", type=Path, help="a PNG of the page after the last move")
    args = parser.parse_args(argv)
    params = {key: value for key, value in (("pose_weighting", args.pose_weighting), ("lam", args.lam))
              if value is not None}
    result = measure(args.store, args.moves, args.param, params, args.screenshot)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "explorer_latency.json").write_text(json.dumps(result, indent=1))
    print(f"\n| store | faces | slider | release → colours (median of {len(result['moves'])}) | release → up to date |"
          f"\n|---|---|---|---|---|\n| {args.store.name} | {result['faces']} | {args.param} | "
          f"{result['colours_median_ms']:.0f} ms | {result['settled_median_ms']:.0f} ms |")
    if result["untimed_moves"]:
        print(f"{result['untimed_moves']} move(s) changed no colour (not timed)")
    if result["console_errors"]:
        print("console errors:", *result["console_errors"], sep="\n  ")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
