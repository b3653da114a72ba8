"""How HybridClustering's defaults were chosen: one grid, one declared rule, scored on every clean dataset.

The rule (written down before looking at the winner): the cell whose *worst* dataset ARI is highest (maximin),
k = "auto" everywhere; ties go to the earlier cell. Also prints the leave-one-dataset-out check: the rule applied
to the other datasets only, and what that cell scores on the held-out one — the honest estimate of how the
defaults do on a collection they were not chosen on.

    .venv/bin/python benchmarks/defaults_grid.py --stores /work/stores lfw10 orl yale cfp100 umist
    .venv/bin/python benchmarks/defaults_grid.py lfw10 orl yale cfp100 umist --stores /work/stores/pose \
        --configs dlib-auto sface-auto sface-yunet

``--stores`` holds one extracted store per dataset (``facecluster extract DATA --out STORES/<name>``); with
``--configs`` one folder of such stores per pipeline configuration (embedder and detector, e.g.
``facecluster extract DATA --out STORES/sface-yunet/<name> --embedder sface --detector yunet``), and the
configuration becomes one more axis of the grid. λ = 1 (the 3D term off) is a grid value, so the rule itself
says whether the 3D term earns a weight. ``pose_weighting`` (issue 12: the 3D term's share per pair follows the
fit confidences and the yaw gap, ``facecluster_widgets/fusion.py``) is an axis too: "off", "same_view" and the
opposite hypothesis "cross_view"; at λ = 1 every pose weighting is the same clustering (2D only), so those cells
are fitted once and share the score (and "off", the earlier cell, wins their tie).
Writes ``benchmarks/results/defaults_grid.csv`` and ``.md``.
"""

from __future__ import annotations

import argparse
import itertools
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from facecluster_widgets import open_store
from facecluster_widgets.cluster import HybridClustering
from facecluster_widgets.evaluation.markdown import frame_table
from facecluster_widgets.io.table import photo_groups
from facecluster_widgets.metrics import scores as score

#: blocks_3d stays at "all", the previous grid's choice (identity vs all), to keep the grid's cost in bounds on two
#: cores; auto_k is new: the silhouette sweep or the community count (cluster/communities.py).
GRID = {"eps": (0.4, 0.5, 0.6), "lam": (0.65, 0.8, 0.9, 1.0), "min_samples": (2, 3), "blocks_3d": ("all",),
        "auto_k": ("silhouette", "communities"), "pose_weighting": ("off", "same_view", "cross_view")}
RESULTS = Path(__file__).parent / "results"


def load(store_dir: Path) -> tuple[dict, np.ndarray, np.ndarray, pd.DataFrame]:
    store = open_store(store_dir, create=False)
    table = store.table
    keep = ((table["status"] == "ok") & table["label"].notna()).to_numpy()
    faces = table.loc[keep].reset_index(drop=True)
    features = store.features.subset(keep)
    return {k: features[k] for k in features.names}, pd.factorize(faces["label"])[0], photo_groups(faces), faces


def run_grid(data: dict[str, tuple], config: str = "", grid: dict | None = None) -> pd.DataFrame:
    """ARI of every cell on every dataset; per dataset, 3D-block choice and pose weighting one fit, then refits
    that reuse the per-block distances (the same clusterings a fresh fit gives, faster)."""
    grid = GRID if grid is None else grid
    cells = list(itertools.product(*grid.values()))
    scores_by_cell: dict[tuple, dict[str, float]] = {cell: {} for cell in cells}
    for name, (X, codes, groups, faces) in data.items():
        for blocks, pose_weighting in itertools.product(grid["blocks_3d"], grid["pose_weighting"]):
            model = HybridClustering(blocks_3d=("identity",) if blocks == "identity" else None,
                                     pose_weighting=pose_weighting)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(X, groups=groups, pose=faces)
                for cell in cells:
                    eps, lam, min_samples, cell_blocks, auto_k, cell_pose = cell
                    if (cell_blocks, cell_pose) != (blocks, pose_weighting):
                        continue
                    if lam == 1.0 and cell_pose != "off":  # 2D only: the same clustering as the "off" cell
                        scores_by_cell[cell][name] = scores_by_cell[cell[:-1] + ("off",)][name]
                        continue
                    labels = model.refit(eps=eps, lam=lam, min_samples=min_samples, auto_k=auto_k).labels_
                    scores_by_cell[cell][name] = score(codes, labels)["ari"]
            print(config, name, blocks, pose_weighting, "done", flush=True)
    rows = [{"config": config, **dict(zip(grid, cell, strict=True)), **scores_by_cell[cell]} for cell in cells]
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--stores", type=Path, required=True)
    parser.add_argument("--configs", nargs="+", default=[""], help="sub-folders of --stores, one per configuration")
    parser.add_argument("--blocks-3d", nargs="+", choices=("all", "identity"), default=list(GRID["blocks_3d"]),
                        help="3D blocks axis: every 3D block, and/or the learnt identity projection alone")
    args = parser.parse_args()
    axes = {**GRID, "blocks_3d": tuple(args.blocks_3d)}
    grid = pd.concat([run_grid({name: load(args.stores / config / name) for name in args.datasets}, config, axes)
                      for config in args.configs], ignore_index=True)
    if args.configs == [""]:
        grid = grid.drop(columns="config")
    names = list(args.datasets)
    grid["worst"] = grid[names].min(axis=1)
    best = grid.loc[grid["worst"].idxmax()]
    lines = ["# Defaults grid (ARI, k auto)", "", frame_table(grid, index=False), "",
             f"Maximin cell: {_config(best)}eps={best['eps']}, lam={best['lam']}, min_samples={best['min_samples']}, "
             f"blocks_3d={best['blocks_3d']}, auto_k={best['auto_k']}, pose_weighting={best['pose_weighting']} "
             f"(worst dataset ARI {best['worst']:.3f}).", ""]
    for held in names:
        others = [n for n in names if n != held]
        cell = grid.loc[grid[others].min(axis=1).idxmax()]
        lines.append(f"- held out {held}: rule on {', '.join(others)} picks {_config(cell)}eps={cell['eps']}, "
                     f"lam={cell['lam']}, min_samples={cell['min_samples']}, blocks_3d={cell['blocks_3d']}, "
                     f"auto_k={cell['auto_k']}, pose_weighting={cell['pose_weighting']} → "
                     f"{held} ARI {cell[held]:.3f}")
    RESULTS.mkdir(exist_ok=True)
    grid.to_csv(RESULTS / "defaults_grid.csv", index=False)
    (RESULTS / "defaults_grid.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-len(names) - 2:]))


def _config(cell: pd.Series) -> str:
    return f"config={cell['config']}, " if "config" in cell else ""


if __name__ == "__main__":
    main()
