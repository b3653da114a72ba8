"""Pose-aware fusion (issue 12) against today's defaults and the plain fused distance, overall and per yaw bin.

For each dataset store, the full method (k auto, ε 0.6, MinPts 3, silhouette k, cannot-link) with:
today's defaults (λ = 1: "3D weight off" is the same clustering), the plain fused distance at λ (every pair the
same 3D share 1 − λ), and the two pose weightings declared in ``facecluster_widgets/fusion.py`` before any
score was seen: "same_view" (the 3D share follows both fits' confidence and the yaw gap) and "cross_view" (the
opposite hypothesis: 3D weighs more across yaw gaps). ARI over all faces, per bin of the pipeline's own yaw
estimate (|yaw| 0-30°, 30-60°, 60-90°, none) and on cfp100's profile files.

    .venv/bin/python benchmarks/pose_fusion.py --stores /work/stores/pose/sface-yunet \
        lfw10 orl yale cfp100 umist merged --out benchmarks/reports/2026-12-05-pose_fusion.md
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from defaults_grid import load  # the same faces the defaults grid scores (benchmarks/ is the script's folder)

from facecluster_widgets.cluster import HybridClustering
from facecluster_widgets.evaluation.evaluate import YAW_BINS
from facecluster_widgets.evaluation.markdown import frame_table
from facecluster_widgets.metrics import ari

LAMS = (0.65, 0.8, 0.9)
MODES = ("off", "same_view", "cross_view")


def subsets(faces: pd.DataFrame) -> dict[str, np.ndarray]:
    """Masks of the yaw bins (as ``facecluster evaluate`` bins them) and of profile files when there are any."""
    yaw = np.abs(pd.to_numeric(faces["yaw"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))
    out = {}
    for i, (low, high) in enumerate(YAW_BINS):
        out[f"{low:.0f}-{high:.0f}°"] = (yaw >= low) & ((yaw < high) | (i == len(YAW_BINS) - 1))
    out["no yaw"] = np.isnan(yaw)
    profile = faces["path"].str.contains(r"/profile_[^/]*$", regex=True).to_numpy()
    if profile.any():
        out["profile files"] = profile
    return out


def run(name: str, store_dir: Path) -> pd.DataFrame:
    X, codes, groups, faces = load(store_dir)
    masks = subsets(faces)
    cells = [("today's defaults (λ 1 = 3D weight off)", 1.0, "off")]
    cells += [(f"λ {lam}, {mode}", lam, mode) for lam in LAMS for mode in MODES]
    rows = []
    for label, lam, mode in cells:
        tick = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = HybridClustering(lam=lam, pose_weighting=mode).fit(X, groups=groups, pose=faces)
        row = {"dataset": name, "method": label, "ARI": ari(codes, model.labels_),
               "k (true)": f"{model.n_clusters_} ({np.unique(codes).size})"}
        for sub, mask in masks.items():
            row[f"{sub} ({int(mask.sum())})"] = ari(codes[mask], model.labels_[mask]) if mask.sum() > 1 else np.nan
        row["seconds"] = round(time.perf_counter() - tick, 1)
        rows.append(row)
        print(name, label, f"{row['ARI']:.3f}", flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--stores", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    lines = ["# Pose-aware fusion: ARI overall and per yaw bin (k auto, ε 0.6, MinPts 3)", "",
             "Command: `benchmarks/pose_fusion.py --stores STORES " + " ".join(args.datasets) + "`.", ""]
    for name in args.datasets:
        table = run(name, args.stores / name).drop(columns="dataset").set_index("method")
        lines += [f"## {name}", "", frame_table(table.dropna(axis=1, how="all")), ""]
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
