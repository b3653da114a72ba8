"""Share of images that yield a face, an embedding and a mesh, per dataset (issue: >= 97 %, cfp100 >= 95 %).

Usage: python benchmarks/coverage.py --stores DIR lfw10 orl yale cfp100
Reads stores made by ``facecluster extract DATA --out DIR/DATA`` (extracting first when missing).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import facecluster_widgets as fc


def coverage(store: fc.Store) -> dict:
    """Per image: does its primary face (or any face, for unlabelled photos) have each output?"""
    table, images = store.table, store.images
    ok = table["status"] == "ok"
    emb = np.isfinite(store.read_array("feature_2d")).all(axis=1)
    mesh = np.isfinite(store.read_array("mesh_vertices")).reshape(len(table), -1).all(axis=1)
    per_image = table.assign(face=ok, embedding=ok & emb, mesh=ok & mesh).groupby("path")[
        ["face", "embedding", "mesh"]].any()
    n = len(images)
    out = {"images": n, "faces": int(ok.sum())}
    for column in ("face", "embedding", "mesh"):
        out[column] = float(per_image[column].sum() / n)
    out["all three"] = float((per_image.all(axis=1)).sum() / n)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--stores", default=".facecluster-cache", type=Path)
    args = parser.parse_args()
    print("| dataset | images | faces | face | embedding | mesh | all three |")
    print("|---|---|---|---|---|---|---|")
    for name in args.datasets:
        store = fc.extract(name, args.stores / name, progress=False)
        c = coverage(store)
        print(f"| {name} | {c['images']} | {c['faces']} | {c['face']:.1%} | {c['embedding']:.1%} | {c['mesh']:.1%} "
              f"| {c['all three']:.1%} |")


if __name__ == "__main__":
    main()
