"""`make bench`: per-stage cost on real photos, clustering cost vs n on synthetic features, slider latency.

    .venv/bin/python benchmarks/run.py                      # the default run (~7 min on 2 cores)
    .venv/bin/python benchmarks/run.py --faces 20 --repeats 2 --large --budget 300

Writes ``benchmarks/results/latest.json`` (every number) and ``latest.md`` (the tables; also printed).
What each figure means: ``benchmarks/README.md``.

Clustering runs each (method, n) in a fresh worker process (``--worker``), so one method's memory and
imports never weigh on another's figures and a method over the time budget can be killed. Peak memory
is the worker's peak resident set (Linux ``VmHWM``, what ``getrusage`` reports as ``ru_maxrss``), reset
through ``/proc/self/clear_refs`` before each repeat, minus the resident set just before the call.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import platform
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

log = logging.getLogger("bench")

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Synthetic collection sizes; --large adds 10,000.
SIZES = (1000, 5000)
LARGE_SIZE = 10_000
#: Slider values tried by refit (cycled over the repeats), around the defaults lam=0.65 and eps=0.5.
SLIDER_VALUES = {"lam": (0.6, 0.7, 0.65), "eps": (0.45, 0.55, 0.5)}
#: Seconds a worker may take to import and build its data before its first result.
WORKER_STARTUP = 60.0
WORKER_PREFIX = "BENCH "
HYBRID = "hybrid"


# ---------------------------------------------------------------- clustering worker (subprocess)


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0); False when not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def synthetic(n: int, per_id: int, d3: int, noise2: float, seed: int = 0):
    """``(blocks, labels)``: n faces of n // per_id identities, a 128-D unit "2d" block and one "shape" block."""
    from facecluster_widgets.synthetic import make_identity_features

    n_ids = max(2, n // per_id)
    return make_identity_features(n_ids=n_ids, per_id=per_id, d2=128, blocks_3d={"shape": d3}, noise2=noise2,
                                  seed=seed)


def worker(spec: dict) -> None:
    """One method at one n: a JSON line per fit repeat, then (method "hybrid") per slider refit."""
    from sklearn.metrics import adjusted_rand_score

    from facecluster_widgets.cluster import HybridClustering, run_baseline

    def emit(record: dict) -> None:
        sys.stdout.write(WORKER_PREFIX + json.dumps(record) + "\n")
        sys.stdout.flush()

    blocks, y = synthetic(spec["n"], spec["per_id"], spec["d3"], spec["noise2"])
    k_true = int(y.max()) + 1
    method, budget = spec["method"], spec["budget"]
    model = None
    for _ in range(spec["repeats"]):
        resettable = _reset_peak()
        rss_before = _status_kb("VmRSS")
        t0, cpu0 = time.perf_counter(), time.process_time()
        if method == HYBRID:
            model = HybridClustering().fit(blocks)
            labels = model.labels_
        else:
            labels = run_baseline(method, blocks, n_clusters=k_true, labels_true=y)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        peak = _status_kb("VmHWM")
        emit({"kind": "fit", "seconds": seconds, "cpu_seconds": cpu, "load_1min": os.getloadavg()[0],
              "peak_mb": (peak - rss_before) / 1024,
              "rss_before_mb": rss_before / 1024, "peak_reset": resettable, "n": int(y.size), "k_true": k_true,
              "ari": float(adjusted_rand_score(y, labels)),
              "timings": getattr(model, "timings_", None), "n_clusters": getattr(model, "n_clusters_", None)})
        if seconds > budget:
            return
    if method == HYBRID and spec.get("refits"):
        for param, values in SLIDER_VALUES.items():
            for i in range(spec["repeats"]):
                t0 = time.perf_counter()
                model.refit(**{param: values[i % len(values)]})
                emit({"kind": "refit", "param": param, "value": values[i % len(values)],
                      "seconds": time.perf_counter() - t0, "reused_cache": bool(model.reused_cache_)})


# ---------------------------------------------------------------- clustering driver


def run_worker(spec: dict, budget: float) -> tuple[list[dict], str | None]:
    """Run :func:`worker` in a subprocess; each record must arrive within ``budget`` s of the previous one
    (plus :data:`WORKER_STARTUP` for the first). Returns the records and why it stopped early, if it did."""
    with tempfile.TemporaryFile(mode="w+") as err:
        proc = subprocess.Popen([sys.executable, __file__, "--worker", json.dumps(spec)], stdout=subprocess.PIPE,
                                stderr=err, text=True)
        records: list[dict] = []
        problem = None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + WORKER_STARTUP + budget
            while True:
                if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    problem = f"no result within the {budget:g} s budget: stopped"
                    proc.kill()
                    break
                line = proc.stdout.readline()
                if not line:
                    break
                if line.startswith(WORKER_PREFIX):
                    records.append(json.loads(line[len(WORKER_PREFIX):]))
                    deadline = time.monotonic() + budget + 10.0
        proc.stdout.close()
        code = proc.wait()
        if problem is None and code != 0:
            err.seek(0)
            tail = err.read().strip().splitlines()[-3:]
            problem = f"worker failed (exit {code}): {' | '.join(tail)}"
        return records, problem


def cluster_benchmark(args: argparse.Namespace) -> dict:
    from facecluster_widgets.cluster import BASELINES

    sizes = list(args.sizes or SIZES) + ([LARGE_SIZE] if args.large and not args.sizes else [])
    methods = [HYBRID, *BASELINES]
    results: dict = {"sizes": sizes, "methods": methods, "per_id": args.per_id, "d3": args.d3,
                     "noise2": args.noise2, "budget_s": args.budget, "repeats": args.repeats,
                     "memory": "one fresh worker process per (method, n); per repeat, its peak resident set "
                               "(VmHWM, = getrusage ru_maxrss, reset via /proc/self/clear_refs before the call) "
                               "minus its resident set just before the call; the largest over the repeats",
                     "runs": {}, "slider": {}}
    for n in sizes:
        for method in methods:
            spec = {"method": method, "n": n, "repeats": args.repeats, "budget": args.budget,
                    "per_id": args.per_id, "d3": args.d3, "noise2": args.noise2, "refits": method == HYBRID}
            t0 = time.perf_counter()
            records, problem = run_worker(spec, args.budget)
            fits = [r for r in records if r["kind"] == "fit"]
            over = any(r["seconds"] > args.budget for r in fits) or (problem or "").startswith("no result")
            entry = {"n": fits[0]["n"] if fits else n, "fits": fits, "problem": problem, "infeasible": over}
            if fits and not over:
                entry.update(median_s=statistics.median(r["seconds"] for r in fits),
                             peak_mb=max(r["peak_mb"] for r in fits),
                             ari=statistics.median(r["ari"] for r in fits))
                if method == HYBRID:
                    entry["timings_median_s"] = {k: statistics.median(r["timings"][k] for r in fits)
                                                 for k in fits[0]["timings"]}
                    entry["n_clusters"] = fits[-1]["n_clusters"]
            results["runs"].setdefault(method, {})[str(n)] = entry
            refits = [r for r in records if r["kind"] == "refit"]
            if method == HYBRID and refits and not over:
                cold = entry["median_s"]
                slider = {"cold_fit_ms": 1000 * cold}
                for param in SLIDER_VALUES:
                    times = [r["seconds"] for r in refits if r["param"] == param]
                    if times:
                        slider[f"refit_{param}_ms"] = 1000 * statistics.median(times)
                        slider[f"refit_{param}_over_cold"] = statistics.median(times) / cold
                        slider[f"refit_{param}_runs_ms"] = [1000 * t for t in times]
                results["slider"][str(n)] = slider
            log.info("cluster %-17s n=%-6d %6.1f s wall%s", method, n, time.perf_counter() - t0,
                     f"  ({problem})" if problem else "")
    return results


# ---------------------------------------------------------------- machine, git


def machine_info() -> dict:
    cpu = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as fh:
        mem_kb = next(int(line.split()[1]) for line in fh if line.startswith("MemTotal:"))
    import numpy as np

    return {"nproc": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(), "cpu_model": cpu,
            "mem_total_gb": round(mem_kb / 1024**2, 1), "load_avg_start": list(os.getloadavg()),
            "python": platform.python_version(), "numpy": np.__version__, "platform": platform.platform()}


def git_info() -> dict:
    """The commit and whether tracked files differ from it (read-only: no index refresh)."""
    def git(*cmd: str) -> str:
        return subprocess.run(["git", "--no-optional-locks", *cmd], cwd=REPO_ROOT, capture_output=True, text=True,
                              check=True, timeout=30).stdout

    try:
        changed = [line for line in git("status", "--porcelain", "--untracked-files=no").splitlines() if line]
        return {"commit": git("rev-parse", "HEAD").strip(), "dirty": bool(changed),
                "changed_files": [line[3:] for line in changed]}
    except (OSError, subprocess.SubprocessError) as exc:
        return {"commit": "unknown", "dirty": None, "changed_files": [], "error": str(exc)}


# ---------------------------------------------------------------- the report


def _table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _f(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def render_markdown(res: dict) -> str:
    m, g = res["machine"], res["git"]
    out = [f"# Benchmark {res['date']}", "",
           f"- Machine: {m['nproc']} CPUs usable ({m['cpu_count']} online), {m['cpu_model']}, "
           f"{m['mem_total_gb']} GB RAM; load average at start {' / '.join(_f(x, 2) for x in m['load_avg_start'])} "
           f"(1/5/15 min), at end {' / '.join(_f(x, 2) for x in res['load_avg_end'])}",
           f"- Python {m['python']}, numpy {m['numpy']}; commit `{g['commit'][:12]}`"
           + (f" + uncommitted changes to {', '.join(g['changed_files'])}" if g.get("dirty") else ""),
           f"- Command: `{res['command']}`; whole run {_f(res['wall_s'] / 60, 1)} min", ""]
    if "stages" in res:
        out += _stage_sections(res["stages"], res.get("extract"), res.get("throughput"))
    if "clustering" in res:
        out += _cluster_sections(res["clustering"])
    return "\n".join(out) + "\n"


def _stage_sections(st: dict, ex: dict | None, tp: dict | None) -> list[str]:
    faces, total = st["n_faces"], st["total_ms_per_face"]["median"]
    rows = []
    for stage, v in st["ms_per_face"].items():
        runs = v["runs"]
        rows.append([stage, _f(v["median"]), f"{_f(min(runs))}–{_f(max(runs))}", f"{v['median'] / total:.1%}",
                     st["failed"].get(stage, 0)])
    totals = st["total_ms_per_face"]["runs"]
    rows.append(["**total**", f"**{_f(total)}**", f"{_f(min(totals))}–{_f(max(totals))}", "100%", ""])
    rc = st["recon_3d"]
    embed_share = st["ms_per_face"]["embed"]["median"] / total
    out = [f"## Per-stage cost ({st['n_photos']} photos: {_mix(st['photos'])}; {faces} faces; "
           f"median of {st['repeats']} passes)", "",
           _table(["stage", "ms/face (median)", "range over passes", "share of total", "faces failed"], rows), "",
           f"- Embedding share of the per-face total: **{embed_share:.0%}**.",
           f"- Reconstruction + 3D descriptors (mesh + fit + descriptors): **{_f(rc['median_ms_per_face'])} ms/face** "
           f"(range {_f(min(rc['runs']))}–{_f(max(rc['runs']))}); target ≤ {_f(rc['target_ms'], 0)} ms. "
           f"Method's reported {_f(rc['method_reported_ms_per_image'], 0)} ms/image ÷ ours = "
           f"**{_f(rc['speedup_vs_method'])}×** ({'meets' if rc['meets_target'] else 'MISSES'} the 10× target).",
           "", "One-off model loading (outside the timed passes; lazily loaded models: construction + first call "
           "on one photo, i.e. load + one inference):", "",
           _table(["model", "seconds"], [[k, _f(v, 2)] for k, v in st["load_seconds"].items()]), ""]
    if ex and tp:
        n = ex["n_faces"]
        same = set(tp["extract_stages"]) == set(st["ms_per_face"])
        rows = [["predicted from the stage medians: all 7 stages"
                 + (" (= the stages extract() runs)" if same else ""),
                 _f(tp["all_stages_faces_per_s"], 2), _f(n / tp["all_stages_faces_per_s"])]]
        if not same:
            rows.append([f"predicted: the stages extract() runs ({', '.join(tp['extract_stages'])})",
                         _f(tp["extract_stages_faces_per_s"], 2), _f(n / tp["extract_stages_faces_per_s"])])
        rows += [["extract(), cold store (measured; builds its models)", _f(ex["cold_faces_per_s"], 2),
                  f"{_f(ex['cold_median_s'])} ({', '.join(_f(s) for s in ex['cold_seconds'])})"],
                 ["extract() rerun, warm store (measured)", _f(ex["warm_faces_per_s"], 1),
                  f"{_f(ex['warm_median_s'], 2)} ({', '.join(_f(s, 2) for s in ex['warm_seconds'])})"]]
        predicted = n / tp["extract_stages_faces_per_s"]
        out += [f"## End to end ({n} faces)", "",
                _table(["route", "faces/s", f"seconds for the {st['n_photos']} photos (runs)"], rows), "",
                f"- Cold extract() / stage prediction for its stages: **{ex['cold_median_s'] / predicted:.2f}×** "
                "(above 1: the cost around the stages: model loading, hashing, store writes, gathering; "
                "the load of other processes moves both figures).",
                f"- Cold / warm store: **{_f(ex['cold_over_warm'])}×** (the warm rerun finds every result and "
                "skips the work; what remains is building the stages, hashing the files and reading the store)."]
        if tp["extract_unmapped_stages"]:
            out.append(f"- extract() stages with no timed counterpart: {', '.join(tp['extract_unmapped_stages'])}.")
        out += ["", "extract()'s own step timer (median seconds over the cold runs; `image` includes `decode`; "
                "models load lazily, so a stage's first photo includes loading its model):", "",
                _table(["step", "seconds"], [[k, _f(v, 2)] for k, v in ex["timer_median_s"].items()]), ""]
    return out


def _mix(photos: list[str]) -> str:
    counts: dict[str, int] = {}
    for p in photos:
        name = Path(p).parent.parent.name
        counts[name] = counts.get(name, 0) + 1
    return " + ".join(f"{c} {name}" for name, c in counts.items())


def _cluster_sections(cl: dict) -> list[str]:
    sizes = [str(n) for n in cl["sizes"]]
    headers = ["method"] + [h for n in sizes for h in (f"n={int(n):,} s", "peak MB", "ARI")]
    if len(sizes) >= 2:
        headers.append(f"time exponent {sizes[0]}→{sizes[1]}")
    rows = []
    for method in cl["methods"]:
        row, runs = [method], cl["runs"].get(method, {})
        for n in sizes:
            e = runs.get(n, {})
            if e.get("infeasible"):
                row += [f"infeasible (> {cl['budget_s']:.0f} s)", "", ""]
            elif "median_s" in e:
                row += [_f(e["median_s"], 2), _f(e["peak_mb"], 0), _f(e["ari"], 3)]
            else:
                row += [f"failed: {e.get('problem', 'not run')}", "", ""]
        if len(sizes) >= 2:
            a, b = runs.get(sizes[0], {}), runs.get(sizes[1], {})
            if "median_s" in a and "median_s" in b and not b.get("infeasible"):
                row.append(_f(math.log(b["median_s"] / a["median_s"]) / math.log(b["n"] / a["n"]), 2))
            else:
                row.append("")
        rows.append(row)
    hy = cl["runs"].get(HYBRID, {})
    out = [f"## Clustering cost vs n (synthetic: {cl['per_id']} faces per identity, 128-D unit 2D block with "
           f"noise {cl['noise2']}, {cl['d3']}-D 3D block; median of {cl['repeats']}; budget {cl['budget_s']:.0f} s)",
           "", _table(headers, rows), "",
           f"- Memory: {cl['memory']}.",
           "- ARI against the known identities is a sanity check (every method saw the same structure), not a "
           "quality benchmark; baselines that need k got the true k."]
    for n in sizes:
        if "timings_median_s" in hy.get(n, {}):
            t = hy[n]["timings_median_s"]
            out.append(f"- hybrid at n={int(n):,}: k={hy[n]['n_clusters']}; " + ", ".join(
                f"{k} {_f(v, 2)} s" for k, v in t.items()))
    if cl["slider"]:
        rows = []
        for n, s in cl["slider"].items():
            nan = float("nan")
            rows.append([f"{int(n):,}", _f(s["cold_fit_ms"], 0), _f(s.get("refit_lam_ms", nan), 0),
                         _f(s.get("refit_eps_ms", nan), 0), f"{s.get('refit_lam_over_cold', nan):.2f}",
                         f"{s.get('refit_eps_over_cold', nan):.2f}"])
        out += ["", "## Slider latency (HybridClustering.refit, per-block distance matrices reused)", "",
                _table(["n", "cold fit ms", "refit(lam) ms", "refit(eps) ms", "lam refit / cold", "eps refit / cold"],
                       rows), ""]
    return out


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faces", type=int, default=40, help="photos for the stage benchmark (1/2 lfw10, 1/4 orl, "
                   "1/4 yale; default 40)")
    p.add_argument("--repeats", type=int, default=3, help="repeats per measurement; medians are reported")
    p.add_argument("--large", action="store_true", help=f"also cluster n={LARGE_SIZE:,}")
    p.add_argument("--sizes", type=int, nargs="+", help=f"clustering sizes instead of {SIZES}")
    p.add_argument("--budget", type=float, default=120.0, help="seconds a clustering run may take before it is "
                   "marked infeasible")
    p.add_argument("--per-id", type=int, default=20, help="synthetic faces per identity")
    p.add_argument("--d3", type=int, default=80, help="width of the synthetic 3D block (80 = the shape block)")
    p.add_argument("--noise2", type=float, default=0.25, help="2D noise of the synthetic features (0.25: "
                   "same-identity cosine distance ~0.06, like dlib embeddings of one person)")
    p.add_argument("--skip-stages", action="store_true", help="skip the photo stages and extract()")
    p.add_argument("--skip-clustering", action="store_true", help="skip clustering and slider latency")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for latest.json / latest.md")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats < 1 or args.budget <= 0:
        p.error("--repeats must be >= 1 and --budget > 0")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(json.loads(args.worker))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", datefmt="%H:%M:%S")
    started = time.perf_counter()
    res: dict = {"date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
                 "command": " ".join([Path(sys.executable).name, *sys.argv]), "machine": machine_info(),
                 "git": git_info()}
    if not args.skip_stages:
        import stages

        photos = stages.benchmark_photos(args.faces)
        res["stages"] = stages.measure_stages(photos, args.repeats)
        res["extract"] = stages.measure_extract(photos, args.repeats)
        res["throughput"] = stages.predicted_throughput(res["stages"], res["extract"]["stages"])
    if not args.skip_clustering:
        res["clustering"] = cluster_benchmark(args)
    res["load_avg_end"] = list(os.getloadavg())
    res["wall_s"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(res, indent=1) + "\n")
    report = render_markdown(res)
    (args.out / "latest.md").write_text(report)
    log.info("wrote %s and %s", args.out / "latest.json", args.out / "latest.md")
    sys.stdout.write(report)


if __name__ == "__main__":
    main()
