"""Build the packaged mediapipe -> ICT vertex correspondence (facecluster_widgets/data/mediapipe_to_ict.npz).

mediapipe 0.10.21 does not ship its canonical face, so the mediapipe face is the generalised-Procrustes mean
(:func:`~facecluster_widgets.recon.mesh.mean_reference`) of the stored meshes of near-frontal faces (|yaw| < 10,
|pitch| < 15; cfp100's ``profile_*`` files left out) of extracted stores; then
:func:`~facecluster_widgets.recon.dense.build_correspondence` maps it onto the morphable model's mean shape.

    .venv/bin/python scripts/build_mesh_correspondence.py /work/stores/pose/sface-yunet/{lfw10,orl,yale,cfp100} \\
        --out facecluster_widgets/data/mediapipe_to_ict.npz
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import numpy as np

from facecluster_widgets import open_store
from facecluster_widgets.recon.dense import build_correspondence, packaged_path
from facecluster_widgets.recon.mesh import mean_reference
from facecluster_widgets.recon.morphable import load_morphable_model


def frontal_meshes(store_dir: Path) -> np.ndarray:
    store = open_store(store_dir, create=False)
    table, meshes = store.table, store.read_array("mesh_vertices")
    keep = ((table["yaw"].abs() < 10) & (table["pitch"].abs() < 15)
            & ~table["path"].str.contains(r"/profile_[^/]*$", regex=True)).to_numpy()
    keep &= np.isfinite(meshes).all(axis=(1, 2))
    return meshes[keep]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=packaged_path())
    parser.add_argument("--model", default=None, help="morphable model .npz (default: the shared ICT model)")
    args = parser.parse_args()
    per_store = {str(s): frontal_meshes(s) for s in args.stores}
    meshes = np.concatenate(list(per_store.values()))
    model = load_morphable_model(args.model)
    corr = build_correspondence(mean_reference(list(meshes)), model)
    corr.meta.update({"mean_of": {s: int(len(m)) for s, m in per_store.items()},
                      "model": Path(model.source).name, "date": datetime.date.today().isoformat(),
                      "command": "scripts/build_mesh_correspondence.py " + " ".join(map(str, args.stores))})
    corr.save(args.out)
    print(f"{args.out}: {len(corr)} mediapipe vertices mapped from the mean of {len(meshes)} frontal meshes; "
          f"median distance {corr.meta['median_distance']:.3f} model units; meta {corr.meta}")


if __name__ == "__main__":
    main()
