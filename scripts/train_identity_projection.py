"""Train the identity projection (:mod:`facecluster_widgets.identity`) on the labelled faces of extracted stores.

Uses the primary faces that have a label and a finite 3DMM fit, whose file name matches ``--subset-regex``
(default: cfp100's frontal photos), plus the fits of their mirrored landmarks under the same labels. The fit of
a face comes from the store's ``fit_alpha`` array, else its morphable stage result, else is computed from the
detect stage's 68 points with the store's recorded fit settings (mirrors are always fitted here). The packaged
file was made with::

    .venv/bin/python scripts/train_identity_projection.py /work/stores/cfp100 \\
        --out facecluster_widgets/data/identity_projection_ict.npz
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

import facecluster_widgets as fc
from facecluster_widgets.errors import FaceclusterError
from facecluster_widgets.identity import fit_identity_projection, packaged_path
from facecluster_widgets.recon.morphable import FitSettings, LandmarkFitter, load_morphable_model, mirror_landmarks
from facecluster_widgets.store import Store

log = logging.getLogger("train_identity_projection")


@dataclass(frozen=True)
class StoreFits:
    """Fits of a store's selected faces, row-aligned; ``mirrored`` is NaN where the mirror fit failed."""

    alphas: np.ndarray
    mirrored: np.ndarray
    labels: np.ndarray
    paths: np.ndarray
    face_ids: np.ndarray


def fit_settings(store: Store) -> FitSettings:
    """The settings the store's morphable stage used (so mirrors are fitted like the originals)."""
    keys = [k for k in store.stage_keys() if k.startswith("morphable-")]
    if not keys:
        return FitSettings()
    params = json.loads((store.root / "stages" / f"{keys[0]}.json").read_text())["params"]
    names = {f.name for f in fields(FitSettings)}
    return FitSettings(**{k: v for k, v in params.items() if k in names})


def store_fits(store: Store, subset_regex: str | None = None, mirror: bool = True,
               fitter: LandmarkFitter | None = None) -> StoreFits:
    """Primary, labelled faces (file name matching ``subset_regex``) with a finite identity fit."""
    table = store.table.reset_index(drop=True)
    stages = store.read_json("run")["stages"]
    detect_key = stages["detect"]
    morphable_key = stages.get("morphable") or next(
        (k for k in store.stage_keys() if k.startswith("morphable-")), None)
    try:
        stored = store.read_array("fit_alpha")
    except FaceclusterError:
        stored = None
    keep = (table["primary"].fillna(False).astype(bool) & table["label"].notna()
            & (table["status"].astype(str) == "ok")).to_numpy()
    if subset_regex:
        pattern = re.compile(subset_regex)
        keep &= np.array([bool(pattern.search(Path(p).name)) for p in table["path"]])
    fitter = fitter or LandmarkFitter(load_morphable_model(), fit_settings(store))
    rows, alphas, mirrored = [], [], []
    start, n_fitted = time.perf_counter(), 0
    for i in np.flatnonzero(keep):
        image_id, face = str(table.at[i, "image_id"]), int(table.at[i, "face_index"])
        alpha = stored[i] if stored is not None else None
        if alpha is None and morphable_key is not None:
            result = store.get(morphable_key, image_id)
            alpha = result.arrays["alpha"][face] if result is not None else None
        detect = store.get(detect_key, image_id)
        points = detect.arrays["points68"][face] if detect is not None else None
        if alpha is None and points is not None and np.isfinite(points).all():
            alpha, n_fitted = _fit(fitter, points), n_fitted + 1
        if alpha is None or not np.isfinite(alpha).all():
            continue
        flipped = np.full_like(alpha, np.nan, dtype=np.float64)
        if mirror and points is not None and np.isfinite(points).all():
            flipped = _fit(fitter, mirror_landmarks(points))
        rows.append(i)
        alphas.append(np.asarray(alpha, np.float64))
        mirrored.append(flipped)
    log.info("%s: %d of %d selected faces have a fit (%d fitted here, plus %d mirrors) in %.0f s", store.root,
             len(rows), int(keep.sum()), n_fitted, len(rows) if mirror else 0, time.perf_counter() - start)
    rows_arr = np.asarray(rows, dtype=np.intp)
    d = fitter.settings.n_identity if not alphas else len(alphas[0])
    return StoreFits(alphas=np.asarray(alphas).reshape(-1, d), mirrored=np.asarray(mirrored).reshape(-1, d),
                     labels=table["label"].to_numpy()[rows_arr].astype(str),
                     paths=table["path"].to_numpy()[rows_arr].astype(str),
                     face_ids=table["face_id"].to_numpy()[rows_arr].astype(str))


def _fit(fitter: LandmarkFitter, points: np.ndarray) -> np.ndarray:
    try:
        return np.asarray(fitter.fit(points).alpha, dtype=np.float64)
    except FaceclusterError as exc:
        log.warning("no fit: %s", exc)
        return np.full(fitter.settings.n_identity, np.nan)


def training_set(fits: list[StoreFits]) -> tuple[np.ndarray, np.ndarray]:
    """Originals plus their finite mirror fits, mirrors under the same labels."""
    X = np.concatenate([f.alphas for f in fits] + [f.mirrored for f in fits])
    y = np.concatenate([f.labels for f in fits] + [f.labels for f in fits])
    ok = np.isfinite(X).all(axis=1)
    return X[ok], y[ok]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stores", nargs="*", type=Path, default=[Path("/work/stores/cfp100")],
                        help="extracted stores of labelled faces (labels are prefixed by the store name)")
    parser.add_argument("--subset-regex", default="frontal_",
                        help="keep faces whose file name matches this regex ('' keeps all)")
    parser.add_argument("--out", type=Path, default=packaged_path())
    parser.add_argument("--n-components", type=int, default=20)
    parser.add_argument("--shrinkage", type=float, default=0.1)
    parser.add_argument("--no-mirror", action="store_true", help="do not add mirrored-landmark fits")
    parser.add_argument("--training-set", default=None, help="name recorded in the metadata")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    fits, sources = [], {}
    for root in args.stores:
        store = fc.open_store(root, create=False)
        f = store_fits(store, args.subset_regex or None, mirror=not args.no_mirror)
        sources[root.name] = {"stages": store.read_json("run")["stages"], "fit_settings": asdict(fit_settings(store))}
        # Two stores may both have a "person_1": labels are only meaningful within a store.
        fits.append(StoreFits(f.alphas, f.mirrored, np.char.add(f"{root.name}/", f.labels), f.paths, f.face_ids))
    X, y = training_set(fits)
    name = args.training_set or "+".join(r.name for r in args.stores)
    meta = {"training_set": name, "subset_regex": args.subset_regex, "mirrored": not args.no_mirror,
            "n_original_faces": int(sum(len(f.alphas) for f in fits)), "model": "ICT-FaceKit light (80 identity)",
            "sources": sources,
            "terms": "trained on CFP photos (cfp100 subset): research use only" if "cfp" in name else "",
            "command": "scripts/train_identity_projection.py " + " ".join(str(r) for r in args.stores)}
    projection = fit_identity_projection(X, y, args.n_components, args.shrinkage, meta=meta)
    projection.save(args.out)
    log.info("wrote %s: %d -> %d, %s", args.out, projection.n_features, projection.n_components, projection.meta)


if __name__ == "__main__":
    main()
