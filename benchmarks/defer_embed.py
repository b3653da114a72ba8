"""extract() end to end with the embedding network run per photo vs over several photos at once.

    .venv/bin/python benchmarks/defer_embed.py --dataset orl --repeats 2

``batching.DEFER_FACES`` = 1 runs the network as soon as a photo's faces are cropped (one call per photo, the
behaviour before cross-photo batching); the default waits for that many faces. Cold store each run, the two
alternating in one process (models built per run, as a user's cold run); the run report's own step timer gives
the embed seconds. Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import facecluster_widgets as fc
from facecluster_widgets.pipeline import batching


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="orl")
    p.add_argument("--repeats", type=int, default=2)
    args = p.parse_args()
    source = fc.load_faces(args.dataset)
    default = batching.DEFER_FACES
    runs: dict[int, list[dict]] = {1: [], default: []}
    for _ in range(args.repeats):
        for defer in runs:
            batching.DEFER_FACES = defer
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                store = fc.extract(source, Path(tmp) / "s", progress=False)
                seconds = time.perf_counter() - t0
                faces = int((store.table["status"] == "ok").sum())
                runs[defer].append({"seconds": seconds, "faces_per_s": faces / seconds,
                                    "embed_s": store.read_json("run")["seconds"]["embed"]})
    batching.DEFER_FACES = default
    out = {"dataset": args.dataset, "faces": faces, "runs": runs,
           "median": {f"defer {d}": {k: statistics.median(r[k] for r in rs) for k in ("faces_per_s", "embed_s")}
                      for d, rs in runs.items()}}
    one, many = out["median"]["defer 1"], out["median"][f"defer {default}"]
    out["embed_ms_per_face"] = {"per photo": 1000 * one["embed_s"] / faces,
                                f"{default} faces at once": 1000 * many["embed_s"] / faces}
    out["end_to_end_gain"] = many["faces_per_s"] / one["faces_per_s"]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
