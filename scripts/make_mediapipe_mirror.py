"""Make facecluster_widgets/data/mediapipe_mirror.npz: each mesh vertex's mirror image across the face, and
triangles that close the mesh's eye and mouth holes (``recon.frontalize.hole_triangles``).

The mirror is the optimal one-to-one assignment of the vertices of a pose-free mean face (generalised Procrustes
over near-frontal meshes, |yaw| < 10°) to their reflections across its vertical mid-plane
(``recon.frontalize.mirror_map``). It depends only on mediapipe's mesh topology, not on anyone's identity.

    .venv/bin/python scripts/make_mediapipe_mirror.py STORES/lfw10 STORES/orl STORES/yale \
        --out facecluster_widgets/data/mediapipe_mirror.npz
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

import numpy as np

from facecluster_widgets import open_store
from facecluster_widgets.recon.frontalize import hole_triangles, mirror_map
from facecluster_widgets.recon.mesh import mean_reference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stores", nargs="+", type=Path, help="extracted stores with a mesh stage")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-yaw", type=float, default=10.0)
    args = parser.parse_args()
    meshes = []
    for path in args.stores:
        store = open_store(path, create=False)
        vertices = store.read_array("mesh_vertices")
        keep = (store.table["yaw"].abs() < args.max_yaw).to_numpy() & np.isfinite(vertices).all(axis=(1, 2))
        meshes += list(vertices[keep])
    reference = mean_reference(meshes)
    mirror = mirror_map(reference)
    error = np.linalg.norm(reference[mirror] * [-1.0, 1.0, 1.0] - reference, axis=1)
    meta = {"meshes": len(meshes), "stores": [p.name for p in args.stores], "max_yaw": args.max_yaw,
            "fixed_points": int((mirror == np.arange(len(mirror))).sum()),
            "mean_mirror_error_of_rms_radius": float(error.mean() / np.linalg.norm(reference, axis=1).mean()),
            "date": datetime.date.today().isoformat(), "command": "scripts/make_mediapipe_mirror.py"}
    holes = hole_triangles(reference)
    meta["hole_triangles"] = len(holes)
    np.savez(args.out, format=np.int64(1), mirror=mirror.astype(np.int16), hole_triangles=holes.astype(np.int16),
             meta=json.dumps(meta))
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
