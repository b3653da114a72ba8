"""Do the pipeline's own 3D descriptors carry identity? Per block, read from extracted stores.

For each dataset store (``facecluster extract DATA --out STORES/<name>``) and each 3D block — shape
coefficients, geodesics, curvature, the learnt identity projection, and shape+geodesic+curvature together
(each block standardised, weighted 1/sqrt(its width)) — prints the mean within-identity / between-identity
Euclidean distance ratio (lower is better) and the ARI of 3D-only K-Means given the true number of people
(n_init=10, mean over seeds 0-2), plus the fit's landmark residual (RMS / outer-eye-corner distance).
``--frontal-only`` drops files named ``profile_*`` (cfp100) and scores them apart.

    .venv/bin/python benchmarks/descriptor_identity.py --stores /work/stores lfw10 orl yale cfp100
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, pairwise_distances
from sklearn.preprocessing import StandardScaler

from facecluster_widgets import open_store

BLOCKS = ("shape", "geodesic", "curvature", "identity")
SEEDS = (0, 1, 2)


def load(store_dir: Path) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, pd.Series]:
    store = open_store(store_dir, create=False)
    table = store.table
    keep = ((table["status"] == "ok") & table["label"].notna()).to_numpy()
    features = store.features.subset(keep)
    faces = table.loc[keep].reset_index(drop=True)
    blocks = {name: features[name] for name in BLOCKS if name in features.names}
    profile = faces["path"].str.contains(r"/profile_[^/]*$", regex=True).to_numpy()
    return blocks, pd.factorize(faces["label"])[0], profile, faces.get("fit_residual")


def block_matrix(blocks: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name == "identity":  # already whitened within identities by construction
        return blocks[name].astype(np.float64)
    names = ("shape", "geodesic", "curvature") if name == "shape+geodesic+curvature" else (name,)
    parts = [StandardScaler().fit_transform(blocks[n]) / np.sqrt(blocks[n].shape[1]) for n in names]
    return np.hstack(parts)


def scores(X: np.ndarray, codes: np.ndarray) -> tuple[float, float]:
    D = pairwise_distances(X)
    same = codes[:, None] == codes[None, :]
    off = ~np.eye(len(codes), dtype=bool)
    ratio = float(D[same & off].mean() / D[~same].mean())
    k = int(np.unique(codes).size)
    ari = float(np.mean([adjusted_rand_score(codes, KMeans(k, n_init=10, random_state=s).fit_predict(X))
                         for s in SEEDS]))
    return ratio, ari


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--stores", type=Path, required=True)
    args = parser.parse_args()
    rows = []
    for name in args.datasets:
        blocks, codes, profile, residual = load(args.stores / name)
        ok = np.all([np.isfinite(b).all(axis=1) for b in blocks.values()], axis=0)
        subsets = {"all": ok} if not profile.any() else {"frontal": ok & ~profile, "profile": ok & profile}
        for subset, rows_mask in subsets.items():
            for block in (*blocks, "shape+geodesic+curvature"):
                ratio, ari = scores(block_matrix({k: v[rows_mask] for k, v in blocks.items()}, block),
                                    codes[rows_mask])
                rows.append({"dataset": name, "faces": subset, "n": int(rows_mask.sum()), "block": block,
                             "within/between": round(ratio, 3), "ARI (true k)": round(ari, 3)})
            if residual is not None:
                r = residual.to_numpy()[rows_mask]
                print(f"{name} {subset}: fit residual median {np.nanmedian(r):.4f}, 95th pct "
                      f"{np.nanpercentile(r, 95):.4f} (RMS / eye-corner distance)", flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
