"""Dense vs sparse HybridClustering on extracted stores: ARI between the two labelings, default parameters.

    .venv/bin/python benchmarks/sparse_agreement.py /work/stores/lfw10 /work/stores/orl /work/stores/yale

Each store's features and photo groups (cannot-link) go through ``HybridClustering(algorithm="dense")`` and
``HybridClustering(algorithm="sparse")``; the table gives the ARI between their labels (and between their DBSCAN
stage-1 labels), both k, both wall times and which stage-2 regime the sparse path used. The target is ARI >= 0.99.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import facecluster_widgets as fc
from facecluster_widgets.cluster import HybridClustering
from facecluster_widgets.io.table import photo_groups
from facecluster_widgets.metrics import ari


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stores", nargs="+", type=Path)
    args = p.parse_args(argv)
    print("| store | faces | ARI dense vs sparse | ARI of DBSCAN stages | k dense / sparse | s dense / sparse | "
          "sparse stage 2 |")
    print("|---|---|---|---|---|---|---|")
    for root in args.stores:
        store = fc.open_store(root, create=False)
        features, groups = store.features, photo_groups(store.table)
        models, seconds = {}, {}
        for algorithm in ("dense", "sparse"):
            t0 = time.perf_counter()
            models[algorithm] = HybridClustering(algorithm=algorithm).fit(features, groups=groups)
            seconds[algorithm] = time.perf_counter() - t0
        d, s = models["dense"], models["sparse"]
        print(f"| {root.name} | {len(features)} | {ari(d.labels_, s.labels_):.4f} | "
              f"{ari(d.dbscan_labels_, s.dbscan_labels_):.4f} | {d.n_clusters_} / {s.n_clusters_} | "
              f"{seconds['dense']:.2f} / {seconds['sparse']:.2f} | {'/'.join(sorted(s.stage2_regimes_))} |",
              flush=True)


if __name__ == "__main__":
    main()
