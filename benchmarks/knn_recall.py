"""Recall and time of the sparse path's approximate kNN (faiss IVF, :func:`~facecluster_widgets.cluster.knn.ivf_knn`)
against exact neighbours of a random sample, on synthetic features at large n.

    python benchmarks/knn_recall.py --n 100000 --per-id 20 --noise2 0.25
    python benchmarks/knn_recall.py --n 100000 --per-id 5 --noise2 1.0       # nearly no identity structure
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from facecluster_widgets.cluster import knn
from facecluster_widgets.fusion import FusedMetric

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test-only helpers: tests/support/
from support.synthetic import make_identity_features


def exact_neighbours(points: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` nearest other points of ``points[rows]`` by brute force (squared Euclidean)."""
    sq = np.einsum("ij,ij->i", points, points)
    d = sq[rows, None] - 2.0 * points[rows] @ points.T + sq[None, :]
    d[np.arange(rows.size), rows] = np.inf
    return np.argsort(d, axis=1)[:, :k]


def recall(found: np.ndarray, truth: np.ndarray, top: int) -> float:
    return float(np.mean([np.intersect1d(f, t[:top]).size / top for f, t in zip(found, truth, strict=True)]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--per-id", type=int, default=20)
    p.add_argument("--noise2", type=float, default=0.25)
    p.add_argument("--sample", type=int, default=500, help="faces whose exact neighbours are computed")
    args = p.parse_args()
    blocks, _ = make_identity_features(n_ids=args.n // args.per_id, per_id=args.per_id, d2=128,
                                       blocks_3d={"shape": 80}, noise2=args.noise2, seed=0)
    metric = FusedMetric.fit(blocks)
    rows = np.random.default_rng(1).choice(metric.n_faces, args.sample, replace=False)
    k = knn.N_NEIGHBORS
    out = {"n": metric.n_faces, "per_id": args.per_id, "noise2": args.noise2, "k": k, "probes": knn.IVF_PROBES,
           "lists_per_sqrt_n": knn.IVF_LISTS_PER_SQRT_N}
    for name, points in (("2d", metric.points_2d), ("3d", metric.points_3d)):
        t0 = time.perf_counter()
        found = knn.knn_indices(points, k)
        seconds = time.perf_counter() - t0
        truth = exact_neighbours(points, rows, k)
        out[name] = {"seconds": round(seconds, 2), f"recall@{k}": round(recall(found[rows], truth, k), 4),
                     "recall@5": round(recall(found[rows], truth, 5), 4)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
