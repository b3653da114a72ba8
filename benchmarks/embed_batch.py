"""Does batching make the dlib embedding (the slowest stage) faster on this CPU? ms/face, same chips, same run.

    .venv/bin/python benchmarks/embed_batch.py                 # 32 lfw10 faces, 3 interleaved repeats (~2 min)

The chips are real: lfw10 photos through the default detector and ``DlibEmbedder.chip`` (what ``extract`` feeds
the network). Timed, network only: one ``compute_face_descriptor`` call per face (what ``extract`` does for a
one-face photo), one call per batch of B chips (dlib runs a list through the network together), and the same
per-face calls split over 2 processes (``multiprocessing``; each process loads its own network, outside the
timing). Configurations alternate within each repeat so the load of other processes weighs on all alike; the
medians are printed and written to ``benchmarks/results/embed_batch.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
BATCHES = (4, 16, 32)


def _chips(n: int) -> list[np.ndarray]:
    import facecluster_widgets as fc
    from facecluster_widgets.detect import get_detector
    from facecluster_widgets.embed import EmbedInput, get_embedder
    from facecluster_widgets.io.images import decode_image

    detector, embedder = get_detector("auto"), get_embedder("dlib")
    paths = fc.load_faces("lfw10").paths
    chips = []
    for path in paths[:: max(1, len(paths) // n)]:
        rgb, _ = decode_image(path)
        dets = detector.detect(rgb)
        if dets:
            chips.append(embedder.chip(EmbedInput.from_detection(rgb, dets[0])))
        if len(chips) == n:
            break
    return chips


_NET = None


def _init() -> None:
    global _NET  # one network per worker process (a process-local cache, not shared state)
    from facecluster_widgets.embed import get_embedder

    _NET = get_embedder("dlib")._network()


def _describe(chip: np.ndarray) -> np.ndarray:
    return np.array(_NET.compute_face_descriptor(chip))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faces", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    chips = _chips(args.faces)
    _init()
    _describe(chips[0])  # warm
    pool = mp.get_context("spawn").Pool(2, initializer=_init)
    pool.map(_describe, chips[:2])  # load the networks outside the timing
    times: dict[str, list[float]] = {"per face": [], **{f"batch {b}": [] for b in BATCHES}, "2 processes": []}
    reference = np.stack([_describe(c) for c in chips])
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        single = np.stack([_describe(c) for c in chips])
        times["per face"].append(time.perf_counter() - t0)
        for b in BATCHES:
            t0 = time.perf_counter()
            batched = np.concatenate([np.array(_NET.compute_face_descriptor(chips[i:i + b]))
                                      for i in range(0, len(chips), b)])
            times[f"batch {b}"].append(time.perf_counter() - t0)
            np.testing.assert_allclose(batched, reference, atol=1e-4)  # same vectors, only the speed may differ
        t0 = time.perf_counter()
        spread = np.stack(pool.map(_describe, chips, chunksize=4))
        times["2 processes"].append(time.perf_counter() - t0)
        np.testing.assert_allclose(spread, single, atol=1e-6)
    pool.close()
    ms = {k: 1000 * statistics.median(v) / len(chips) for k, v in times.items()}
    for k, v in ms.items():
        print(f"{k:12s} {v:7.1f} ms/face  (x{ms['per face'] / v:.2f} vs per face)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "embed_batch.json").write_text(json.dumps(
        {"faces": len(chips), "repeats": args.repeats, "ms_per_face": ms, "runs_s": times,
         "load_1min_end": os.getloadavg()[0]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
