"""Slider → updated plot latency of the explorer, in the kernel (no browser), for 1,000 and 5,000 faces.

    .venv/bin/python benchmarks/slider_latency.py                     # n = 1,000 and 5,000, 5 repeats
    .venv/bin/python benchmarks/slider_latency.py --sizes 1000 --repeats 9

What one "slider move" costs here is exactly what the widget does between the slider's change event and the
moment the new figure state is handed to the comm: ``ClusterExplorer.set(eps=...)`` with ``background=False``
(no debounce wait), i.e. ``ClusterSession.update`` (``HybridClustering.refit`` on the cached per-block
distances, cluster ids matched to the previous view, corrections replayed) and the redraw (scatter restyle,
metrics panel, gallery, edit panel, status). The browser's own drawing is not included. Each figure is the
median of R moves, cycling ε around its default (then λ around its default).

Faces: synthetic features of known identity structure (``support.synthetic``), n ÷ 20 identities,
with the pipeline's block widths: a unit 128-D "2d" block and 3D blocks "shape" 80, "geodesic" 20,
"curvature" 72, "identity" 20. Two settings of k: "auto" (the method's default: a silhouette sweep over k) and a
fixed k = n ÷ 20 (the auto toggle off), because the sweep is where refit spends its time.

Writes ``benchmarks/results/slider_latency.json`` (every repeat) and ``slider_latency.md`` (also printed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TARGET_MS = 200.0
BLOCKS_3D = {"shape": 80, "geodesic": 20, "curvature": 72, "identity": 20}


def faces(n: int, seed: int = 0):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test-only helpers
    from support.synthetic import make_identity_features

    from facecluster_widgets.review.collection import FaceCollection

    blocks, y = make_identity_features(n_ids=max(2, n // 20), per_id=20, d2=128, blocks_3d=BLOCKS_3D, noise2=0.25,
                                       seed=seed)
    return FaceCollection.from_features(blocks, labels=[f"id{v}" for v in y])


def measure(n: int, repeats: int, k_mode: str) -> dict:
    from facecluster_widgets.cluster.hybrid import DEFAULT_EPS, DEFAULT_LAM
    from facecluster_widgets.review.edits import EditLog
    from facecluster_widgets.review.session import ClusterSession
    from facecluster_widgets.widgets import ClusterExplorer

    collection = faces(n)
    params = {} if k_mode == "auto" else {"n_clusters": max(2, n // 20)}
    session = ClusterSession(collection, edits=EditLog(), **params)
    t0 = time.perf_counter()
    session.update()
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    explorer = ClusterExplorer(None, session=session, background=False, mesh=False, projection="pca")
    build_s = time.perf_counter() - t0
    out = {"n": n, "k": k_mode, "fit_s": fit_s, "explorer_build_s": build_s, "moves": []}
    calls: dict[str, float] = {}
    update, show = session.update, explorer._show_view

    def timed_update(**kw):
        t = time.perf_counter()
        view = update(**kw)
        calls["update"] = time.perf_counter() - t
        return view

    def timed_show(view, *args, **kwargs):
        t = time.perf_counter()
        show(view, *args, **kwargs)
        calls["redraw"] = time.perf_counter() - t

    session.update, explorer._show_view = timed_update, timed_show
    for param, centre in (("eps", DEFAULT_EPS), ("lam", DEFAULT_LAM)):
        values = [round(centre + d, 3) for d in (-0.05, 0.05, 0.0)]
        for i in range(repeats):
            value = values[i % len(values)]
            calls.clear()
            t = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                explorer.set(**{param: value})
            total = time.perf_counter() - t
            if explorer.last_error:
                raise RuntimeError(explorer.last_error)
            timings = session.view.timings
            out["moves"].append({"param": param, "value": value, "total_s": total,
                                 "update_s": calls.get("update", float("nan")),
                                 "redraw_s": calls.get("redraw", float("nan")),
                                 "refit": {k: timings[k] for k in ("fuse", "dbscan", "kmeans", "assign")
                                           if k in timings},
                                 "clusters": session.view.n_clusters, "noise": session.view.n_noise})
    return out


def summarise(run: dict) -> dict:
    rows = {}
    for param in ("eps", "lam"):
        moves = [m for m in run["moves"] if m["param"] == param]

        def med(key: str, moves: list = moves) -> float:
            return 1000 * statistics.median(m[key] for m in moves)

        refit = {k: 1000 * statistics.median(m["refit"].get(k, 0.0) for m in moves)
                 for k in ("fuse", "dbscan", "kmeans")}
        rows[param] = {"total_ms": med("total_s"), "update_ms": med("update_s"), "redraw_ms": med("redraw_s"),
                       "refit_ms": refit, "clusters": statistics.median(m["clusters"] for m in moves)}
    return rows


def render(results: dict) -> str:
    lines = ["# Slider → updated plot latency (kernel side, no browser)", "",
             f"{results['date']} · {results['machine'].get('nproc')} CPUs ({results['machine'].get('cpu_model')}) · "
             f"load average at start {results['machine'].get('load_avg_start')}, at end {results['load_avg_end']} · "
             f"median of {results['repeats']} moves per row · target < {TARGET_MS:.0f} ms at 1,000 faces", "",
             "| faces | k | slider | total ms | refit+session ms | redraw ms | of which k-means (incl. auto-k sweep) "
             "| DBSCAN | fuse | clusters |", "|---|---|---|---|---|---|---|---|---|---|"]
    for run in results["runs"]:
        for param, row in summarise(run).items():
            r = row["refit_ms"]
            lines.append(f"| {run['n']:,} | {run['k']} | {'ε' if param == 'eps' else 'λ'} | {row['total_ms']:.0f} | "
                         f"{row['update_ms']:.0f} | {row['redraw_ms']:.0f} | {r['kmeans']:.0f} | {r['dbscan']:.0f} | "
                         f"{r['fuse']:.0f} | {row['clusters']:.0f} |")
    lines += ["", "| faces | k | first fit s | explorer build s (PCA map, figure, gallery) |", "|---|---|---|---|"]
    lines += [f"| {run['n']:,} | {run['k']} | {run['fit_s']:.2f} | {run['explorer_build_s']:.2f} |"
              for run in results["runs"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--k", choices=["auto", "fixed", "both"], default="both")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE))
    from run import machine_info

    results = {"date": dt.datetime.now().isoformat(timespec="seconds"), "machine": machine_info(),
               "repeats": args.repeats, "runs": []}
    modes = ["auto", "fixed"] if args.k == "both" else [args.k]
    for n in args.sizes:
        for mode in modes:
            run = measure(n, args.repeats, mode)
            results["runs"].append(run)
            print(f"n={n} k={mode}: " + ", ".join(f"{p} {r['total_ms']:.0f} ms" for p, r in summarise(run).items()),
                  flush=True)
    results["load_avg_end"] = list(os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "slider_latency.json").write_text(json.dumps(results, indent=1))
    text = render(results)
    (args.out / "slider_latency.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
