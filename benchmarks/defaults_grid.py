"""How HybridClustering's defaults were chosen: one grid, one declared rule, scored on every clean dataset.

The rule (written down before looking at the winner): the cell whose *worst* dataset ARI is highest (maximin),
k = "auto" everywhere; ties go to the earlier cell. Also prints the leave-one-dataset-out check: the rule applied
to the other datasets only, and what that cell scores on the held-out one — the honest estimate of how the
defaults do on a collection they were not chosen on.

    .venv/bin/python benchmarks/defaults_grid.py --stores /work/stores lfw10 orl yale cfp100

``--stores`` holds one extracted store per dataset (``facecluster extract DATA --out STORES/<name>``).
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
from facecluster_widgets.io.table import photo_groups
from facecluster_widgets.metrics import scores as score

GRID = {"eps": (0.4, 0.5, 0.6), "lam": (0.65, 0.8, 0.9), "min_samples": (2, 3), "blocks_3d": ("identity", "all")}
RESULTS = Path(__file__).parent / "results"


def load(store_dir: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    store = open_store(store_dir, create=False)
    table = store.table
    keep = ((table["status"] == "ok") & table["label"].notna()).to_numpy()
    faces = table.loc[keep].reset_index(drop=True)
    features = store.features.subset(keep)
    return {k: features[k] for k in features.names}, pd.factorize(faces["label"])[0], photo_groups(faces)


def run_grid(data: dict[str, tuple]) -> pd.DataFrame:
    rows = []
    for eps, lam, min_samples, blocks in itertools.product(*GRID.values()):
        row = {"eps": eps, "lam": lam, "min_samples": min_samples, "blocks_3d": blocks}
        for name, (X, codes, groups) in data.items():
            model = HybridClustering(eps=eps, lam=lam, min_samples=min_samples,
                                     blocks_3d=("identity",) if blocks == "identity" else None)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                labels = model.fit(X, groups=groups).labels_
            row[name] = score(codes, labels)["ari"]
        rows.append(row)
        print(row, flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--stores", type=Path, required=True)
    args = parser.parse_args()
    data = {name: load(args.stores / name) for name in args.datasets}
    grid = run_grid(data)
    names = list(data)
    grid["worst"] = grid[names].min(axis=1)
    best = grid.loc[grid["worst"].idxmax()]
    lines = ["# Defaults grid (ARI, k auto)", "", grid.round(3).to_markdown(index=False) if _has_tabulate()
             else grid.round(3).to_csv(index=False), "",
             f"Maximin cell: eps={best['eps']}, lam={best['lam']}, min_samples={best['min_samples']}, "
             f"blocks_3d={best['blocks_3d']} (worst dataset ARI {best['worst']:.3f}).", ""]
    for held in names:
        others = [n for n in names if n != held]
        cell = grid.loc[grid[others].min(axis=1).idxmax()]
        lines.append(f"- held out {held}: rule on {', '.join(others)} picks eps={cell['eps']}, lam={cell['lam']}, "
                     f"min_samples={cell['min_samples']}, blocks_3d={cell['blocks_3d']} → {held} ARI "
                     f"{cell[held]:.3f}")
    RESULTS.mkdir(exist_ok=True)
    grid.to_csv(RESULTS / "defaults_grid.csv", index=False)
    (RESULTS / "defaults_grid.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-len(names) - 2:]))


def _has_tabulate() -> bool:
    try:
        import tabulate  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
