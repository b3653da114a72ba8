"""End-to-end extraction throughput, default models: one process vs a Dask LocalCluster of 2 worker processes.

    .venv/bin/python benchmarks/dask_throughput.py                 # lfw10, 1 repeat each (~3 min on 2 cores)
    .venv/bin/python benchmarks/dask_throughput.py --dataset orl --repeats 2

Each run extracts the whole dataset into a NEW (cold) store, so every stage runs and every model loads: the
serial run loads them in this process, each Dask worker loads its own on its first batch. The cluster is
started before each timed call (its start-up is reported apart: a user pays it once per session).
The runs alternate (serial, dask, serial, ...) so the load of other processes weighs on both alike.
Writes ``benchmarks/results/dask_throughput_<dataset>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="lfw10", help="a shared dataset name (default lfw10)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)

    import logging

    from distributed import Client, LocalCluster

    import facecluster_widgets as fc

    logging.getLogger("distributed").setLevel(logging.ERROR)
    source = fc.load_faces(args.dataset)
    runs: dict[str, list[dict]] = {"serial": [], "dask": []}
    startups = []
    for _ in range(args.repeats):
        for mode in ("serial", "dask"):
            with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
                client = None
                if mode == "dask":  # a new cluster per run: its workers load their models, as a cold serial run does
                    t0 = time.perf_counter()
                    cluster = stack.enter_context(LocalCluster(
                        n_workers=args.workers, processes=True, threads_per_worker=1, dashboard_address=None,
                        silence_logs=logging.ERROR))
                    client = stack.enter_context(Client(cluster))
                    client.wait_for_workers(args.workers)
                    startups.append(time.perf_counter() - t0)
                load = os.getloadavg()[0]
                t0 = time.perf_counter()
                store = fc.extract(source, Path(tmp) / "store", progress=False, client=client)
                seconds = time.perf_counter() - t0
                faces = int((store.table["status"] == "ok").sum())
                runs[mode].append({"seconds": seconds, "faces": faces, "faces_per_s": faces / seconds,
                                   "load_1min_before": load})
                print(f"{mode:6s} {faces} faces in {seconds:6.1f} s = {faces / seconds:5.2f} faces/s "
                      f"(load {load:.1f})", flush=True)
    startup = statistics.median(startups)
    summary = {mode: statistics.median(r["faces_per_s"] for r in rs) for mode, rs in runs.items()}
    result = {"dataset": args.dataset, "workers": args.workers, "cluster_startup_s": startup, "runs": runs,
              "median_faces_per_s": summary, "speedup": summary["dask"] / summary["serial"],
              "nproc": len(os.sched_getaffinity(0)), "command": " ".join([Path(sys.executable).name, *sys.argv])}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"dask_throughput_{args.dataset}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"median faces/s: 1 process {summary['serial']:.2f}, {args.workers} Dask workers {summary['dask']:.2f} "
          f"(x{result['speedup']:.2f}); cluster start-up {startup:.1f} s")


if __name__ == "__main__":
    main()
