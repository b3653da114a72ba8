"""Does batching make the dlib embedding (the slowest stage) faster on this CPU, and how much does running the
same network through torch (``DlibEmbedder(engine="torch")``) gain? ms/face, same chips, same run.

    .venv/bin/python benchmarks/embed_batch.py                 # 32 lfw10 faces, 3 interleaved repeats (~2 min)
    .venv/bin/python benchmarks/embed_batch.py --stage-photos 40   # + the "embed" stage of stages.py, both engines

The chips are real: lfw10 photos through the default detector and ``DlibEmbedder.chip`` (what ``extract`` feeds
the network). Timed, network only: one ``compute_face_descriptor`` call per face (what ``extract`` does for a
one-face photo), one call per batch of B chips (dlib runs a list through the network together), and the same
per-face calls split over 2 processes (``multiprocessing``; each process loads its own network, outside the
timing). The torch engine: the same chips through ``DlibEmbedder(engine="torch")``'s forward pass in batches of
1, 8 and 32 (its default of one torch thread), and batches of 1 and 32 with two threads (why one is the default).
Configurations alternate within each repeat so the load of other processes weighs on all alike; every batched
or torch result is checked against dlib's per-face vectors. The medians are printed with their ratio to dlib's
per-face calls and written to ``benchmarks/results/embed_batch.json``, with the one-off load times.

``--stage-photos N``: also the whole per-face extraction of ``benchmarks/stages.py`` (its photo mix, its
``time_pass``: one embed call per photo, as ``extract()`` makes it) with the dlib engine and the torch engine
swapped into the same loaded models, passes alternating; per engine the median "embed" and total ms/face.
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
TORCH_RUNS = ((1, 1), (8, 1), (32, 1), (1, 2), (32, 2))  # (batch, torch threads)


def _chips(n: int) -> list[np.ndarray]:
    import facecluster_widgets as fc
    from facecluster_widgets.detect import get_detector
    from facecluster_widgets.embed import EmbedInput, get_embedder
    from facecluster_widgets.io.images import decode_image

    detector, embedder = get_detector("auto"), get_embedder("dlib", engine="dlib")
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

    _NET = get_embedder("dlib", engine="dlib")._network()


def _describe(chip: np.ndarray) -> np.ndarray:
    return np.array(_NET.compute_face_descriptor(chip))


def _stage_costs(n_photos: int, repeats: int) -> dict:
    from contextlib import ExitStack

    import stages  # benchmarks/stages.py, beside this script

    from facecluster_widgets.embed import EmbedInput, get_embedder
    from facecluster_widgets.io.images import decode_image

    photos = stages.benchmark_photos(n_photos)
    with ExitStack() as resources:
        models, _ = stages.load_models(photos[0], resources, "auto", "dlib")  # the dlib pipeline these figures are of
        rgb, _ = decode_image(photos[0])
        warm = [EmbedInput.from_detection(rgb, models.detector.detect(rgb)[0])]
        engines = {name: get_embedder("dlib", engine=name) for name in ("dlib", "torch")}
        runs: dict[str, dict[str, list[float]]] = {name: {"embed": [], "total": []} for name in engines}
        for engine in engines.values():
            engine.embed(warm)  # load outside the timing
        for _ in range(repeats):
            for name, engine in engines.items():
                models.embedder = engine
                one = stages.time_pass(models, photos)
                runs[name]["embed"].append(1000 * one["seconds"]["embed"] / one["faces"])
                runs[name]["total"].append(1000 * sum(one["seconds"].values()) / one["faces"])
    median = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in runs.items()}
    for name, m in median.items():
        print(f"stages.py, {name:5s} engine: embed {m['embed']:6.1f} ms/face, all stages {m['total']:6.1f} ms/face")
    return {"photos": len(photos), "faces": one["faces"], "median_ms_per_face": median, "runs_ms_per_face": runs,
            "embed_dlib_over_torch": median["dlib"]["embed"] / median["torch"]["embed"]}


def _torch_key(batch: int, threads: int) -> str:
    return f"torch batch {batch}" + ("" if threads == 1 else f", {threads} threads")


def main(argv: list[str] | None = None) -> None:
    from facecluster_widgets.embed.dlib_backend import DlibEmbedder
    from facecluster_widgets.embed.dlib_net_file import read_dlib_net
    from facecluster_widgets.embed.dlib_torch import DlibFaceNet

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--faces", type=int, default=32)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--stage-photos", type=int, default=0, help="also time stages.py's embed stage (0: skip)")
    args = p.parse_args(argv)
    chips = _chips(args.faces)
    load_s = {}
    t0 = time.perf_counter()
    _init()
    load_s["dlib network"] = time.perf_counter() - t0
    model = DlibEmbedder(engine="dlib").model_path
    t0 = time.perf_counter()
    parsed = read_dlib_net(model)
    load_s["torch: parse the .dat"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    DlibFaceNet(parsed)
    load_s["torch: build the module"] = time.perf_counter() - t0
    engines = {(b, t): DlibEmbedder(engine="torch", batch_size=b, threads=t) for b, t in TORCH_RUNS}
    _describe(chips[0])  # warm
    for engine in engines.values():
        engine._describe(chips[:2])  # load and warm outside the timing
    pool = mp.get_context("spawn").Pool(2, initializer=_init)
    pool.map(_describe, chips[:2])  # load the networks outside the timing
    times: dict[str, list[float]] = {"per face": [], **{f"batch {b}": [] for b in BATCHES}, "2 processes": [],
                                     **{_torch_key(b, t): [] for b, t in TORCH_RUNS}}
    reference = np.stack([_describe(c) for c in chips])
    torch_max_diff = 0.0
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
        for (b, t), engine in engines.items():
            t0 = time.perf_counter()  # embed_in_batches hands the engine batch_size chips at a time
            ours = np.concatenate([engine._describe(chips[i:i + b]) for i in range(0, len(chips), b)])
            times[_torch_key(b, t)].append(time.perf_counter() - t0)
            torch_max_diff = max(torch_max_diff, float(np.abs(ours - reference).max()))
            np.testing.assert_allclose(ours, reference, atol=1e-4)
    pool.close()
    ms = {k: 1000 * statistics.median(v) / len(chips) for k, v in times.items()}
    for k, v in ms.items():
        print(f"{k:24s} {v:7.1f} ms/face  (x{ms['per face'] / v:.2f} vs dlib per face)")
    print(f"torch vs dlib: max |difference| {torch_max_diff:.1e}; load: "
          + ", ".join(f"{k} {v:.3f} s" for k, v in load_s.items()))
    result = {"faces": len(chips), "repeats": args.repeats, "ms_per_face": ms,
              "dlib_per_face_over": {k: ms["per face"] / v for k, v in ms.items()},
              "torch_max_abs_diff_vs_dlib": torch_max_diff, "load_s": load_s, "runs_s": times}
    if args.stage_photos:
        result["stages_embed"] = _stage_costs(args.stage_photos, args.repeats)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "embed_batch.json").write_text(json.dumps({**result, "load_1min_end": os.getloadavg()[0]},
                                                         indent=1) + "\n")


if __name__ == "__main__":
    main()
