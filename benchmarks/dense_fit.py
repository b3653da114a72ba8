"""Does fitting the ICT model to mediapipe's dense mesh give profiles a 3D identity? 68-point vs dense fit.

For each extracted store (default pipeline: YuNet + dlib 68 points, mediapipe mesh, ICT fit), on the same
faces (those with both a stored 68-point fit and a mediapipe mesh): the stored 68-point fit's descriptor blocks
against the blocks of :class:`~facecluster_widgets.recon.dense.DenseFitter` run on the stored mesh (packaged
mediapipe -> ICT correspondence, facing weights, the default ``FitSettings``). Per block ("shape" = the 80
identity coefficients; "s+g+c" = shape, geodesic and curvature, each standardised and weighted 1/sqrt(width))
it prints the ARI of 3D-only K-Means with the true number of people (n_init=10, mean over seeds 0-2, as
``descriptor_identity.py``), and the verification AUC of same-person pairs under Euclidean distance of the
standardised shape block, split by pose: profile-profile, profile-frontal,
frontal-frontal (cfp100: files named ``profile_*``; elsewhere |yaw| > 45 degrees by mediapipe's estimate).
"mesh itself" is mediapipe's mesh without the model (Procrustes-aligned to its mean, 30 whitened PCA
components): what identity the fit's input holds. Also the median |yaw| of the profiles by each fit's rotation
(for "mesh itself", mediapipe's own estimate, the pipeline's ``yaw`` column). The learnt identity projection
is left out: it was trained on 68-point fits of cfp100's frontal photos, so it neither applies to dense fits nor
is fair on cfp100.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python benchmarks/dense_fit.py --stores /work/stores/pose/sface-yunet \\
        lfw10 orl yale cfp100 umist

OPENBLAS_NUM_THREADS=1 is how the reported run was made; the fitters now limit BLAS to one thread themselves
(``recon.morphable.single_threaded_blas``), so it no longer matters.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, roc_auc_score
from sklearn.preprocessing import StandardScaler

from facecluster_widgets import open_store
from facecluster_widgets.descriptors import BLOCKS, DescriptorExtractor
from facecluster_widgets.errors import FaceclusterError
from facecluster_widgets.recon.dense import DenseFitSettings, DenseFitter, load_correspondence
from facecluster_widgets.recon.mesh import canonical_mesh, mean_reference
from facecluster_widgets.recon.morphable import FitSettings, load_morphable_model, rotation_angles

SEEDS = (0, 1, 2)
PROFILE_YAW = 45.0


def kmeans_ari(X: np.ndarray, codes: np.ndarray) -> float:
    k = int(np.unique(codes).size)
    return float(np.mean([adjusted_rand_score(codes, KMeans(k, n_init=10, random_state=s).fit_predict(X))
                          for s in SEEDS]))


def standardised(blocks: dict[str, np.ndarray], names: tuple[str, ...]) -> np.ndarray:
    return np.hstack([StandardScaler().fit_transform(blocks[n]) / np.sqrt(blocks[n].shape[1]) for n in names])


def pair_auc(X: np.ndarray, codes: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """AUC of -distance for same-person pairs between faces ``a`` and faces ``b`` (each pair once)."""
    D, same = cdist(X[a], X[b]), codes[a][:, None] == codes[b][None, :]
    if np.array_equal(a, b):
        upper = np.triu_indices(int(a.sum()), 1)
        D, same = D[upper], same[upper]
    if same.all() or not same.any():
        return float("nan")
    return float(roc_auc_score(same.ravel(), -D.ravel()))


def dense_blocks(fitter: DenseFitter, extractor: DescriptorExtractor, meshes: np.ndarray
                 ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, float]:
    """Dense fits of every mesh: descriptor blocks (NaN rows where the fit was refused), which were fitted,
    each fit's yaw (degrees) and the ms per fit."""
    rows: dict[str, list] = {name: [] for name in BLOCKS}
    fitted = np.ones(len(meshes), bool)
    yaw = np.full(len(meshes), np.nan)
    start = time.perf_counter()
    for i, mesh in enumerate(meshes):
        try:
            fit = fitter.fit(mesh)
            yaw[i] = fit.angles_deg[0]
            described = extractor.compute(fit.alpha)
        except FaceclusterError:
            fitted[i] = False
            described = None
        for name in BLOCKS:
            rows[name].append(None if described is None else described.block(name))
    ms = 1000 * (time.perf_counter() - start) / max(len(meshes), 1)
    widths = {name: next(len(v) for v in rows[name] if v is not None) for name in BLOCKS}
    return ({name: np.array([np.full(widths[name], np.nan) if v is None else v for v in rows[name]])
             for name in BLOCKS}, fitted, yaw, ms)


def mesh_shape(meshes: np.ndarray, n_components: int = 30) -> np.ndarray:
    """The meshes' own shape, for comparison: Procrustes-aligned to their mean, whitened PCA (30 components)."""
    reference = mean_reference(list(meshes))
    aligned = np.array([canonical_mesh(m, reference)[0].ravel() for m in meshes])
    return PCA(n_components, whiten=True, random_state=0).fit_transform(aligned)


def evaluate(store_dir: Path, fitter: DenseFitter, extractor: DescriptorExtractor) -> list[dict]:
    store = open_store(store_dir, create=False)
    table = store.table
    meshes = store.read_array("mesh_vertices")
    features = store.features
    stored = {name: features[name].astype(np.float64) for name in BLOCKS}
    keep = ((table["status"] == "ok") & table["label"].notna()).to_numpy()
    keep &= np.isfinite(meshes[:, :, :2]).all(axis=(1, 2))
    keep &= np.all([np.isfinite(b).all(axis=1) for b in stored.values()], axis=0)
    dense, fitted, dense_yaw, ms = dense_blocks(fitter, extractor, meshes[keep])
    faces = table.loc[keep].reset_index(drop=True)[fitted]
    codes = pd.factorize(faces["label"])[0]
    if faces["path"].str.contains(r"/profile_[^/]*$", regex=True).any():
        profile = faces["path"].str.contains(r"/profile_[^/]*$", regex=True).to_numpy()
    else:
        profile = (faces["yaw"].abs() > PROFILE_YAW).to_numpy()
    fits = {"68-point": {n: b[keep][fitted] for n, b in stored.items()},
            "dense": {n: b[fitted] for n, b in dense.items()},
            "mesh itself": {"shape": mesh_shape(meshes[keep][fitted])}}
    yaws = {"68-point": np.array([rotation_angles(r)[0] for r in store.read_array("fit_rotation")[keep][fitted]]),
            "dense": dense_yaw[fitted], "mesh itself": faces["yaw"].to_numpy()}
    subsets = ({"frontal": ~profile, "profile": profile} if store_dir.name == "cfp100"
               else {"all": np.ones_like(profile)})
    pairs = {"p-p": (profile, profile), "p-f": (profile, ~profile), "f-f": (~profile, ~profile)}
    rows = []
    for fit, blocks in fits.items():
        row = {"dataset": store_dir.name, "fit": fit, "n": int(len(codes)), "n_profile": int(profile.sum()),
               "ms/fit": round(ms, 1) if fit == "dense" else None,
               "median |yaw| of profiles": round(float(np.nanmedian(np.abs(yaws[fit][profile]))), 1)
               if profile.any() else None}
        for subset, mask in subsets.items():
            part = {n: b[mask] for n, b in blocks.items()}
            row[f"ARI shape {subset}"] = round(kmeans_ari(standardised(part, ("shape",)), codes[mask]), 3)
            if len(part) > 1:
                row[f"ARI s+g+c {subset}"] = round(kmeans_ari(standardised(part, BLOCKS), codes[mask]), 3)
        X = StandardScaler().fit_transform(blocks["shape"])
        for name, (a, b) in pairs.items():
            row[f"AUC {name}"] = round(pair_auc(X, codes, a, b), 3)
        rows.append(row)
        print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--stores", type=Path, required=True)
    parser.add_argument("--visibility-power", type=float, default=DenseFitSettings.visibility_power)
    parser.add_argument("--reg-identity", type=float, default=FitSettings.reg_identity)
    parser.add_argument("--correspondence", type=Path, default=None, help="default: the packaged one")
    args = parser.parse_args()
    model = load_morphable_model()
    settings = FitSettings(reg_identity=args.reg_identity)
    fitter = DenseFitter(model, load_correspondence(args.correspondence), settings,
                         DenseFitSettings(visibility_power=args.visibility_power))
    extractor = DescriptorExtractor(model, n_identity=settings.n_identity)
    rows = [row for name in args.datasets for row in evaluate(args.stores / name, fitter, extractor)]
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
