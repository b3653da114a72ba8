"""What one plotly ``FigureWidget`` costs the browser before anywidget's 2 s start-up limit runs out.

    .venv/bin/python benchmarks/figure_bundle_load.py [--rates 1 4] [--repeats 2]

In a blank page of Debian's Chromium (as tests/test_browser.py launches it), times ``import()`` of plotly's widget
bundle (``plotly/package_data/widgetbundle.js``, what plotly's ``FigureWidget`` hands anywidget as its code and
anywidget compiles again for every figure) at each CPU throttling rate (DevTools ``setCPUThrottlingRate``), and the
longest task of the page meanwhile (nothing else, no timer, runs during it).
``viz/figure_widget.py`` loads it once per page and keeps it out of the 2 s limit; this says why.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import plotly

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
_IMPORT = """async (source) => {
  const tasks = [];
  const observer = new PerformanceObserver((list) => { for (const e of list.getEntries()) tasks.push(e.duration); });
  observer.observe({ type: "longtask" });
  const started = performance.now();
  const url = URL.createObjectURL(new Blob([source], { type: "text/javascript" }));
  await import(url);
  const total = performance.now() - started;
  URL.revokeObjectURL(url);
  await new Promise((resolve) => setTimeout(resolve, 200));
  observer.disconnect();
  return [total, Math.max(0, ...tasks)];
}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[1.0, 4.0], help="CPU throttling rates")
    parser.add_argument("--repeats", type=int, default=2, help="imports per rate (each a new module, as anywidget)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    source = (Path(plotly.__file__).parent / "package_data" / "widgetbundle.js").read_text(encoding="utf-8")
    print(f"plotly {plotly.__version__} widget bundle: {len(source) / 1e6:.2f} MB; load average "
          f"{os.getloadavg()[0]:.1f}")
    print("| CPU slowdown | import, ms | longest uninterrupted task, ms |\n|---|---|---|")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.goto("about:blank")
        cdp = page.context.new_cdp_session(page)
        for rate in args.rates:
            cdp.send("Emulation.setCPUThrottlingRate", {"rate": rate})
            runs = [page.evaluate(_IMPORT, source) for _ in range(args.repeats)]
            totals, blocks = (", ".join(f"{v:.0f}" for v in column) for column in zip(*runs, strict=True))
            print(f"| {rate:g}× | {totals} | {blocks} |")
        browser.close()


if __name__ == "__main__":
    main()
