"""`make bench`: per-stage cost on real photos, clustering cost vs n on synthetic features, slider latency.

    .venv/bin/python benchmarks/run.py                      # the default run (~25 min on 2 cores)
    .venv/bin/python benchmarks/run.py --faces 20 --repeats 2 --sizes 1000 10000 --skip-stages

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
#: Synthetic collection sizes; --large adds 200,000.
SIZES = (1000, 10_000, 100_000)
LARGE_SIZE = 200_000
#: From this size on, one fit per (method, n) (a fit takes about a minute): the median of one.
ONE_REPEAT_FROM = 50_000
#: A fit slower than this share of the budget is not repeated either.
EXPENSIVE_SHARE = 0.25
#: Slider values tried by refit (cycled over the repeats): eps around its default 0.6; lam just below its default 1
#: (at 1 the 3D term has no weight, so these moves exercise the fused metric).
SLIDER_VALUES = {"lam": (0.85, 0.95, 0.9), "eps": (0.55, 0.65, 0.6), "lam_warm": (0.85, 0.95, 0.9),
                 "eps_warm": (0.55, 0.65, 0.6), "lam_k": (0.85, 0.95, 0.9)}
#: (in this order: "_warm": k="auto" with warm_start=True, as ClusterExplorer refits; "lam_k": λ moved with k
#: pinned at the k the fit chose, as after the user fixes the number of people.)
SLIDER_LABELS = {"lam": "refit(lam)", "eps": "refit(eps)", "lam_warm": "refit(lam), warm start",
                 "eps_warm": "refit(eps), warm start", "lam_k": "refit(lam), k fixed"}
#: Slider latency is measured up to this size (the target: under 1 s at 10,000 faces).
SLIDER_MAX_N = 10_000
#: The hybrid with its default algorithm ("auto": sparse above 5,000 faces), and forced onto the dense path.
HYBRID_DENSE = "hybrid_dense"
#: Memory of the methods that hold n×n matrices, in bytes per n² (so "infeasible: needs X GiB" is computed, not
#: tried): the dense hybrid keeps the 2D, 3D and fused float32 matrices plus the core submatrix (4 × 4 B); the
#: k-means peers on the fused metric build 2D, 3D and fused matrices (3 × 4 B); average linkage takes scipy's
#: condensed float64 distances and sklearn's copy of them (2 × 8 B / 2).
NXN_BYTES = {HYBRID_DENSE: 16, "2d_kmeans": 12, "2d_kmeans_true_k": 12, "late_fusion": 12, "true_k_kmeans": 12,
             "agglomerative_2d": 8}
#: A method whose time, extrapolated from the two previous sizes (exponent 2 when there is one), exceeds this
#: many budgets is not tried at the next size.
PREDICTED_BUDGETS = 2.0
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
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test-only helpers
    from support.synthetic import make_identity_features

    n_ids = max(2, n // per_id)
    return make_identity_features(n_ids=n_ids, per_id=per_id, d2=128, blocks_3d={"shape": d3}, noise2=noise2,
                                  seed=seed)


def worker(spec: dict) -> None:
    """One method at one n: a JSON line per fit repeat, then (method "hybrid") per slider refit."""
    # This folder holds coverage.py, which would shadow the coverage package numba (umap, hdbscan) imports.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    from sklearn.metrics import adjusted_rand_score

    from facecluster_widgets.cluster import HybridClustering, run_baseline
    from facecluster_widgets.cluster.hybrid import DEFAULT_EPS

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
        if method in (HYBRID, HYBRID_DENSE):
            model = HybridClustering(algorithm="dense" if method == HYBRID_DENSE else "auto").fit(blocks)
            labels = model.labels_
        else:
            labels = run_baseline(method, blocks, n_clusters=k_true, labels_true=y)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        peak = _status_kb("VmHWM")
        emit({"kind": "fit", "seconds": seconds, "cpu_seconds": cpu, "load_1min": os.getloadavg()[0],
              "peak_mb": (peak - rss_before) / 1024,
              "rss_before_mb": rss_before / 1024, "peak_reset": resettable, "n": int(y.size), "k_true": k_true,
              "ari": float(adjusted_rand_score(y, labels)),
              "timings": getattr(model, "timings_", None), "n_clusters": getattr(model, "n_clusters_", None),
              "algorithm": getattr(model, "algorithm_", None),
              "regimes": sorted(getattr(model, "stage2_regimes_", None) or [])})
        if seconds > budget:
            return
        if seconds > EXPENSIVE_SHARE * budget:  # repeats only where cheap: one such fit is the figure
            break
    if method == HYBRID and spec.get("refits"):
        for param, values in SLIDER_VALUES.items():
            if param == "lam_warm":
                model.set_params(warm_start=True, eps=DEFAULT_EPS)
            if param == "lam_k":
                model.set_params(n_clusters=model.n_clusters_, eps=DEFAULT_EPS, warm_start=False)
            for i in range(spec["repeats"]):
                t0 = time.perf_counter()
                model.refit(**{param.split("_")[0]: values[i % len(values)]})
                emit({"kind": "refit", "param": param, "value": values[i % len(values)],
                      "seconds": time.perf_counter() - t0, "reused_cache": bool(model.reused_cache_),
                      "timings": model.timings_})


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


def _mem_available_gib() -> float:
    with open("/proc/meminfo") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("MemAvailable:")) / 1024**2


def feasibility(method: str, n: int, done: list[tuple[int, float]], budget: float) -> str | None:
    """Why (method, n) is not tried, or None: memory computed from :data:`NXN_BYTES`, or time extrapolated from
    the method's previous sizes (``done``: (n, median seconds), ascending)."""
    if method in NXN_BYTES:
        need = NXN_BYTES[method] * n**2 / 1024**3
        have = _mem_available_gib()
        if need > 0.8 * have:
            return f"infeasible: needs {need:,.0f} GiB for n×n matrices ({have:.0f} GiB available)"
    if done:
        (n1, t1), exponent = done[-1], 2.0
        if len(done) >= 2 and done[-2][1] > 0 and t1 > 0:
            exponent = max(1.0, math.log(t1 / done[-2][1]) / math.log(n1 / done[-2][0]))
        predicted = t1 * (n / n1) ** exponent
        if predicted > PREDICTED_BUDGETS * budget:
            return (f"infeasible: predicted {predicted:,.0f} s (> {PREDICTED_BUDGETS:g} × the {budget:g} s budget; "
                    f"time ∝ n^{exponent:.2f} from smaller n)")
    return None


def cluster_benchmark(args: argparse.Namespace) -> dict:
    from facecluster_widgets.cluster import BASELINES

    sizes = list(args.sizes or SIZES) + ([LARGE_SIZE] if args.large and not args.sizes else [])
    methods = [m for m in (HYBRID, HYBRID_DENSE, *BASELINES) if not args.methods or m in args.methods]
    results: dict = {"sizes": sizes, "methods": methods, "per_id": args.per_id, "d3": args.d3,
                     "noise2": args.noise2, "budget_s": args.budget, "repeats": args.repeats,
                     "one_repeat_from": ONE_REPEAT_FROM,
                     "memory": "one fresh worker process per (method, n); per repeat, its peak resident set "
                               "(VmHWM, = getrusage ru_maxrss, reset via /proc/self/clear_refs before the call) "
                               "minus its resident set just before the call; the largest over the repeats",
                     "runs": {}, "slider": {}}
    history: dict[str, list[tuple[int, float]]] = {m: [] for m in methods}
    stopped: dict[str, str] = {}
    for n in sizes:
        for method in methods:
            t0 = time.perf_counter()
            skip = stopped.get(method) or feasibility(method, n, history[method], args.budget)
            if skip:
                results["runs"].setdefault(method, {})[str(n)] = {"n": n, "fits": [], "problem": skip,
                                                                  "infeasible": True, "skipped": True}
                log.info("cluster %-17s n=%-6d %s", method, n, skip)
                continue
            repeats = 1 if n >= ONE_REPEAT_FROM else args.repeats
            spec = {"method": method, "n": n, "repeats": repeats, "budget": args.budget,
                    "per_id": args.per_id, "d3": args.d3, "noise2": args.noise2,
                    "refits": method == HYBRID and n <= SLIDER_MAX_N}
            records, problem = run_worker(spec, args.budget)
            fits = [r for r in records if r["kind"] == "fit"]
            over = any(r["seconds"] > args.budget for r in fits) or (problem or "").startswith("no result")
            entry = {"n": fits[0]["n"] if fits else n, "fits": fits, "problem": problem, "infeasible": over}
            if over:
                stopped[method] = f"infeasible: over the {args.budget:g} s budget at n={n:,}"
            if fits and not over:
                entry.update(median_s=statistics.median(r["seconds"] for r in fits),
                             peak_mb=max(r["peak_mb"] for r in fits),
                             ari=statistics.median(r["ari"] for r in fits))
                history[method].append((entry["n"], entry["median_s"]))
                if method in (HYBRID, HYBRID_DENSE):
                    entry["timings_median_s"] = {k: statistics.median(r["timings"][k] for r in fits)
                                                 for k in fits[0]["timings"]}
                    entry.update(n_clusters=fits[-1]["n_clusters"], algorithm=fits[-1]["algorithm"],
                                 regimes=fits[-1]["regimes"])
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
                        slider[f"refit_{param}_kmeans_ms"] = 1000 * statistics.median(
                            r["timings"]["kmeans"] for r in refits if r["param"] == param)
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

    with open("/proc/meminfo") as fh:
        available_kb = next(int(line.split()[1]) for line in fh if line.startswith("MemAvailable:"))
    return {"mem_available_gb": round(available_kb / 1024**2, 1),
            "nproc": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(), "cpu_model": cpu,
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


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    from facecluster_widgets.evaluation import markdown  # imported when a report is written: workers start light

    return markdown.markdown_table(header, rows)


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
           markdown_table(["stage", "ms/face (median)", "range over passes", "share of total", "faces failed"],
                          rows), "",
           f"- Embedding share of the per-face total: **{embed_share:.0%}**.",
           f"- Reconstruction + 3D descriptors (mesh + fit + descriptors): **{_f(rc['median_ms_per_face'])} ms/face** "
           f"(range {_f(min(rc['runs']))}–{_f(max(rc['runs']))}); target ≤ {_f(rc['target_ms'], 0)} ms. "
           f"Method's reported {_f(rc['method_reported_ms_per_image'], 0)} ms/image ÷ ours = "
           f"**{_f(rc['speedup_vs_method'])}×** ({'meets' if rc['meets_target'] else 'MISSES'} the 10× target).",
           "", "One-off model loading (outside the timed passes; lazily loaded models: construction + first call "
           "on one photo, i.e. load + one inference):", "",
           markdown_table(["model", "seconds"], [[k, _f(v, 2)] for k, v in st["load_seconds"].items()]), ""]
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
                markdown_table(["route", "faces/s", f"seconds for the {st['n_photos']} photos (runs)"], rows), "",
                f"- Cold extract() / stage prediction for its stages: **{ex['cold_median_s'] / predicted:.2f}×** "
                "(above 1: the cost around the stages: model loading, hashing, store writes, gathering; "
                "the load of other processes moves both figures).",
                f"- Cold / warm store: **{_f(ex['cold_over_warm'])}×** (the warm rerun finds every result and "
                "skips the work; what remains is building the stages, hashing the files and reading the store)."]
        if tp["extract_unmapped_stages"]:
            out.append(f"- extract() stages with no timed counterpart: {', '.join(tp['extract_unmapped_stages'])}.")
        out += ["", "extract()'s own step timer (median seconds over the cold runs; `image` includes `decode`; "
                "models load lazily, so a stage's first photo includes loading its model):", "",
                markdown_table(["step", "seconds"], [[k, _f(v, 2)] for k, v in ex["timer_median_s"].items()]), ""]
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
    pairs = list(zip(sizes, sizes[1:], strict=False))
    headers += [f"time exponent {a}→{b}" for a, b in pairs]
    rows = []
    for method in cl["methods"]:
        row, runs = [method], cl["runs"].get(method, {})
        for n in sizes:
            e = runs.get(n, {})
            if e.get("skipped"):
                row += [e["problem"], "", ""]
            elif e.get("infeasible"):
                row += [f"infeasible (> {cl['budget_s']:.0f} s)", "", ""]
            elif "median_s" in e:
                row += [_f(e["median_s"], 2), _f(e["peak_mb"], 0), _f(e["ari"], 3)]
            else:
                row += [f"failed: {e.get('problem', 'not run')}", "", ""]
        for x, y in pairs:
            a, b = runs.get(x, {}), runs.get(y, {})
            if "median_s" in a and "median_s" in b and not b.get("infeasible"):
                row.append(_f(math.log(b["median_s"] / a["median_s"]) / math.log(b["n"] / a["n"]), 2))
            else:
                row.append("")
        rows.append(row)
    out = [f"## Clustering cost vs n (synthetic: {cl['per_id']} faces per identity, 128-D unit 2D block with "
           f"noise {cl['noise2']}, {cl['d3']}-D 3D block; median of {cl['repeats']} (1 from "
           f"n={cl.get('one_repeat_from', 0):,}); budget {cl['budget_s']:.0f} s)",
           "", markdown_table(headers, rows), "",
           f"- Memory: {cl['memory']}.",
           "- \"infeasible: needs X GiB\" is computed from the n×n matrices the method holds, not tried; "
           "\"infeasible: predicted\" extrapolates the method's own times at smaller n.",
           "- hybrid = `HybridClustering()` (algorithm=\"auto\": sparse kNN-graph path above 5,000 faces); "
           "hybrid_dense = the same forced onto the n×n path.",
           "- ARI against the known identities is a sanity check (every method saw the same structure), not a "
           "quality benchmark; baselines that need k got the true k."]
    for method in (HYBRID, HYBRID_DENSE):
        for n in sizes:
            e = cl["runs"].get(method, {}).get(n, {})
            if "timings_median_s" in e:
                t = e["timings_median_s"]
                regimes = "/".join(e.get("regimes") or []) or "dense"
                out.append(f"- {method} at n={int(n):,} ({e.get('algorithm')}, stage 2 {regimes}): "
                           f"k={e['n_clusters']}; " + ", ".join(f"{k} {_f(v, 2)} s" for k, v in t.items()))
    if cl["slider"]:
        rows = []
        nan = float("nan")
        for n, s in cl["slider"].items():
            rows.append([f"{int(n):,}", _f(s["cold_fit_ms"], 0)]
                        + [_f(s.get(f"refit_{p}_ms", nan), 0) for p in SLIDER_VALUES]
                        + [f"{s.get(f'refit_{p}_over_cold', nan):.2f}" for p in SLIDER_VALUES])
        out += ["", "## Slider latency (HybridClustering.refit: per-block matrices or kNN graphs reused)", "",
                markdown_table(["n", "cold fit ms", *(f"{SLIDER_LABELS[p]} ms" for p in SLIDER_VALUES),
                        *(f"{SLIDER_LABELS[p].removeprefix('refit')} / cold" for p in SLIDER_VALUES)], rows),
                "", "refit(lam) and refit(eps) keep n_clusters=\"auto\" (the silhouette sweep over k runs again); "
                "\"warm start\" (what ClusterExplorer uses) scores k around the previous choice and walks uphill; "
                "\"k fixed\" pins n_clusters at the k the fit chose.", ""]
    return out


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faces", type=int, default=40, help="photos for the stage benchmark (1/2 lfw10, 1/4 orl, "
                   "1/4 yale; default 40)")
    p.add_argument("--repeats", type=int, default=3, help="repeats per measurement; medians are reported")
    p.add_argument("--large", action="store_true", help=f"also cluster n={LARGE_SIZE:,}")
    p.add_argument("--sizes", type=int, nargs="+", help=f"clustering sizes instead of {SIZES}")
    p.add_argument("--budget", type=float, default=240.0, help="seconds a clustering run may take before it is "
                   "marked infeasible")
    p.add_argument("--methods", nargs="+", help="clustering methods to run (default: hybrid, hybrid_dense and "
                   "every baseline)")
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
