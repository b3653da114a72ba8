"""Distance thresholds of the threshold peers (DBSCAN, agglomerative, Chinese Whispers) for a new embedder,
by one declared rule: a threshold for embedder E admits the same share of different-person pairs (false-match
rate, averaged over the datasets so each counts once) as dlib's published threshold admits for dlib on the
same photos. dlib's published values are the anchor because they are the only ones tuned for clustering.

    .venv/bin/python benchmarks/calibrate_thresholds.py lfw10 orl yale cfp100 umist --stores /work/stores/pose \
        --reference dlib-auto --candidates sface-auto

``--stores`` holds ``<config>/<dataset>`` stores (``facecluster extract DATA --out STORES/<config>/<dataset>
--embedder E``). Prints, per threshold, the false-match and same-person match rates and the calibrated value
to put in ``cluster/baselines.py``'s ``THRESHOLDS``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from facecluster_widgets import open_store
from facecluster_widgets.cluster.baselines import THRESHOLDS


def pair_distances(store_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Cosine distances of every different-person and every same-person pair of unit 2D vectors."""
    store = open_store(store_dir, create=False)
    table = store.table
    keep = ((table["status"] == "ok") & table["label"].notna()).to_numpy()
    x = store.features.subset(keep)["2d"].astype(np.float64)
    labels = pd.factorize(table.loc[keep, "label"])[0]
    ok = np.isfinite(x).all(axis=1)
    x, labels = x[ok], labels[ok]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    upper = np.triu_indices(len(x), k=1)
    distance = (1.0 - x @ x.T)[upper]
    same = (labels[:, None] == labels[None, :])[upper]
    return distance[~same], distance[same]


def rates(pairs: dict[str, tuple[np.ndarray, np.ndarray]], threshold: float) -> tuple[float, float]:
    """Mean over datasets of the false-match rate and the same-person match rate at ``threshold``."""
    fmr = np.mean([np.mean(diff < threshold) for diff, _ in pairs.values()])
    tmr = np.mean([np.mean(same < threshold) for _, same in pairs.values()])
    return float(fmr), float(tmr)


def threshold_at(pairs: dict[str, tuple[np.ndarray, np.ndarray]], fmr: float) -> float:
    """The cosine distance whose dataset-averaged false-match rate is ``fmr`` (bisection; the rate is monotone)."""
    low, high = 0.0, 2.0
    for _ in range(60):
        mid = (low + high) / 2
        if rates(pairs, mid)[0] < fmr:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--stores", type=Path, required=True)
    parser.add_argument("--reference", default="dlib-auto", help="store folder of the dlib embeddings")
    parser.add_argument("--candidates", nargs="+", required=True, help="store folders of the embedders to calibrate")
    args = parser.parse_args()
    reference = {name: pair_distances(args.stores / args.reference / name) for name in args.datasets}
    dlib = THRESHOLDS["dlib"]
    # Chinese Whispers' threshold is Euclidean on unit vectors: cosine distance = d^2 / 2.
    anchors = {"dbscan_eps": dlib.dbscan_eps, "agglomerative": dlib.agglomerative,
               "chinese_whispers": dlib.chinese_whispers**2 / 2}
    for config in args.candidates:
        pairs = {name: pair_distances(args.stores / config / name) for name in args.datasets}
        print(f"## {config} (calibrated on {', '.join(args.datasets)})")
        for name, anchor in anchors.items():
            fmr, tmr = rates(reference, anchor)
            value = threshold_at(pairs, fmr)
            _, tmr_new = rates(pairs, value)
            shown = f"{np.sqrt(2 * value):.4f} (Euclidean)" if name == "chinese_whispers" else f"{value:.4f} (cosine)"
            print(f"{name:17s} dlib {anchor:.4f} cosine: false-match {fmr:.4%}, same-person {tmr:.1%} -> "
                  f"{config}: {shown}, same-person {tmr_new:.1%}")


if __name__ == "__main__":
    main()
