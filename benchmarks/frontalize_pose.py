"""Issue 12: does embedding a 3D-frontalised face (recon/frontalize.py) help profiles find their person?

For every face of each extracted store (default pipeline: YuNet + SFace + mediapipe mesh), the photo is
re-rendered frontal from the face's own mesh (mirrored visible side for the hidden half) on the ArcFace template
and embedded with the same SFace network. Faces without a mesh keep their original embedding in every variant.
The variants, declared before any was scored:

- ``original``: the store's SFace embedding (today's default);
- ``frontal``: the embedding of the frontalised face;
- ``mean``: the L2-normalised mean of both embeddings;
- ``yaw_switch``: the frontalised embedding where the pipeline's yaw estimate |yaw| >= 30°, the original below
  (Masi et al.'s pose-aware idea: one view per face, chosen by pose).

Each variant replaces the "2d" block and everything else stays equal (3D blocks, defaults, k = "auto"); scored
with ``evaluate_features`` (full method, 2D only at the same k, K-Means given the true k; per subset and per yaw).
The rule, declared before looking: the variant whose worst dataset (full method ARI) is best wins (maximin over
every set given); ties go to ``original``. Writes a markdown table to ``--report`` and, per dataset with
turned faces, a contact sheet of them (original SFace crop | frontalised) into ``--sheets``.

    nice -n 5 .venv/bin/python benchmarks/frontalize_pose.py lfw10 orl yale cfp100 umist \
        --stores /work/stores/pose/sface-yunet --work /work/stores/frontalize \
        --report benchmarks/reports/2026-12-05-frontalize.md --sheets /work/stores/frontalize
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from facecluster_widgets import open_store
from facecluster_widgets.embed.base import EmbedInput, l2_normalise
from facecluster_widgets.embed.sface import SFaceEmbedder, sface_crop
from facecluster_widgets.errors import FaceclusterError
from facecluster_widgets.evaluation.evaluate import _conditions, evaluate_features
from facecluster_widgets.evaluation.markdown import frame_table
from facecluster_widgets.io.images import decode_image
from facecluster_widgets.io.table import photo_groups
from facecluster_widgets.recon.frontalize import FrontalizeSettings, frontalize

VARIANTS = ("original", "frontal", "mean", "yaw_switch")
SWITCH_YAW = 30.0
METHODS = ("full", "2d_kmeans", "2d_kmeans_true_k")


def frontal_embeddings(store_dir: Path, work: Path, settings: FrontalizeSettings) -> np.ndarray:
    """SFace embeddings of the frontalised faces, aligned with the store's faces table (NaN: no mesh / no face);
    cached in ``work`` under the settings."""
    store = open_store(store_dir, create=False)
    cache = work / "frontal_2d.npy"
    key = {"settings": settings.to_dict(), "store": str(store_dir), "rows": len(store.table)}
    if cache.exists() and json.loads((work / "frontal_2d.json").read_text()) == key:
        return np.load(cache, allow_pickle=False)
    table, vertices = store.table, store.read_array("mesh_vertices")
    embedder = SFaceEmbedder()
    crops: list[np.ndarray | None] = []
    t0, rendered = time.perf_counter(), 0.0
    for path, mesh in zip(table["path"], vertices, strict=True):
        if not np.isfinite(mesh).all():
            crops.append(None)
            continue
        rgb, _ = decode_image(path, 10**9)
        t1 = time.perf_counter()
        crops.append(frontalize(rgb, mesh, settings).image)
        rendered += time.perf_counter() - t1
    out = embedder.describe(crops)
    n = sum(c is not None for c in crops)
    print(f"{store_dir.name}: {n} of {len(crops)} faces frontalised ({1000 * rendered / max(n, 1):.1f} ms/face "
          f"render, {time.perf_counter() - t0:.0f} s with decode and SFace)", flush=True)
    work.mkdir(parents=True, exist_ok=True)
    np.save(cache, out)
    (work / "frontal_2d.json").write_text(json.dumps(key))
    return out


def variant(name: str, original: np.ndarray, frontal: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    has = np.isfinite(frontal).all(axis=1)
    if name == "original":
        return original
    if name == "frontal":
        use = has
        return np.where(use[:, None], frontal, original)
    if name == "mean":
        mixed = l2_normalise(original + frontal)
        return np.where(has[:, None], mixed, original)
    if name == "yaw_switch":
        use = has & (np.abs(np.nan_to_num(yaw, nan=0.0)) >= SWITCH_YAW)
        return np.where(use[:, None], frontal, original)
    raise FaceclusterError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")


def score_dataset(store_dir: Path, frontal: np.ndarray) -> list[dict]:
    store = open_store(store_dir, create=False)
    table = store.table
    ok = (table["status"] == "ok").to_numpy()
    faces = table.loc[ok].reset_index(drop=True)
    features = store.features.subset(ok)
    blocks = {k: features[k] for k in features.names}
    yaw = faces["yaw"].to_numpy(dtype=float)
    conditions = _conditions(faces, "filename")
    original = blocks["2d"]
    rows = []
    for name in VARIANTS:
        blocks["2d"] = variant(name, original, frontal[ok], yaw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ev = evaluate_features(blocks, faces["label"], name=store_dir.name, groups=photo_groups(faces),
                                   conditions=conditions, yaw=yaw, methods=METHODS, lam_grid=(1.0,))
        row = {"dataset": store_dir.name, "variant": name, "full": ev.table.loc["full", "ari"],
               "k": int(ev.table.loc["full", "clusters_found"]), "k_true": int(ev.table.loc["full", "clusters_true"]),
               "2d_only": ev.table.loc["2d_kmeans", "ari"], "kmeans_true_k": ev.table.loc["2d_kmeans_true_k", "ari"]}
        for frame in (ev.subsets, ev.by_yaw):
            if not frame.empty:
                for subset in frame.index.get_level_values(0).unique():
                    part = frame.loc[subset]
                    value = part.loc["full", "ari"] if "full" in part.index else np.nan
                    row[str(subset)] = float(value)
        rows.append(row)
        print(row, flush=True)
    return rows


def pair_auc(store_dir: Path, frontal: np.ndarray) -> list[dict]:
    """Same-person vs different-person separation (ROC AUC of the cosine similarity) per variant and pair type:
    pose classes are cfp100's file-name prefixes (frontal / profile), else the yaw estimate (|yaw| < 30° or
    not, "no yaw" without one). Shows whether a variant helps cross-pose pairs even when the clustering hides it."""
    store = open_store(store_dir, create=False)
    table = store.table
    ok = (table["status"] == "ok").to_numpy() & table["label"].notna().to_numpy()
    faces = table.loc[ok].reset_index(drop=True)
    original = store.features.subset(ok)["2d"]
    yaw = faces["yaw"].to_numpy(dtype=float)
    pose = _conditions(faces, "filename")
    if pose is None:
        pose = pd.Series(np.where(np.isnan(yaw), "no yaw", np.where(np.abs(yaw) < SWITCH_YAW, "<30°", ">=30°")))
    labels = pd.factorize(faces["label"])[0]
    upper = np.triu_indices(len(faces), 1)
    same = (labels[:, None] == labels[None, :])[upper]
    kinds = np.array([" / ".join(sorted(pair)) for pair in zip(pose.to_numpy()[upper[0]], pose.to_numpy()[upper[1]],
                                                                 strict=True)])
    rows = []
    for name in VARIANTS:
        X = variant(name, original, frontal[ok], yaw)
        usable = np.isfinite(X).all(axis=1)
        sims = np.nan_to_num(X) @ np.nan_to_num(X).T
        valid = (usable[:, None] & usable[None, :])[upper]
        row = {"dataset": store_dir.name, "variant": name}
        for kind in sorted(set(kinds)):
            sel = valid & (kinds == kind)
            if same[sel].any() and (~same[sel]).any():
                row[kind] = roc_auc_score(same[sel], sims[upper][sel])
        rows.append(row)
    return rows


def contact_sheet(store_dir: Path, frontal_settings: FrontalizeSettings, out: Path, n: int = 24) -> None:
    """Turned faces (|yaw| >= 30°, evenly spread over the table): original SFace crop | frontalised, 4 pairs a
    row; nothing when the dataset has fewer than 4."""
    store = open_store(store_dir, create=False)
    table, vertices = store.table, store.read_array("mesh_vertices")
    detect = next(k for k in store.stage_keys() if k.startswith("detect"))
    rows = np.flatnonzero((table["yaw"].abs() >= SWITCH_YAW).to_numpy() & np.isfinite(vertices).all(axis=(1, 2)))
    if len(rows) < 4:
        return
    rows = rows[np.linspace(0, len(rows) - 1, min(n, len(rows))).astype(int)]
    tiles = []
    for i in rows:
        rgb, _ = decode_image(table["path"][i], 10**9)
        points5 = store.get(detect, table["image_id"][i]).arrays["points5"][table["face_index"][i]]
        tiles.append(np.hstack([sface_crop(EmbedInput(rgb=rgb, points5=points5)),
                                frontalize(rgb, vertices[i], frontal_settings).image]))
    while len(tiles) % 4:
        tiles.append(np.zeros_like(tiles[0]))
    sheet = np.vstack([np.hstack(tiles[k:k + 4]) for k in range(0, len(tiles), 4)])
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))


def report(frame: pd.DataFrame) -> str:
    full = frame.pivot(index="variant", columns="dataset", values="full").reindex(VARIANTS)
    worst = full.min(axis=1)
    best = worst.max()
    winner = "original" if worst["original"] >= best else worst.idxmax()
    lines = ["Full method ARI (defaults, k auto) with each 2D variant; the rule: best worst set (maximin), ties to "
             "original.", "", frame_table(full.assign(worst=worst).round(3)), "",
             f"Winner by the rule: **{winner}** (worst set {worst[winner]:.3f}; original {worst['original']:.3f}).",
             "", "Per dataset, all columns (full method ARI on subsets and yaw bins; 2D only at the same k):", ""]
    shown = frame.set_index(["dataset", "variant"]).dropna(axis=1, how="all").round(3)
    lines += [frame_table(shown), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="+")
    parser.add_argument("--stores", type=Path, required=True, help="folder of extracted stores, one per dataset")
    parser.add_argument("--work", type=Path, required=True, help="where the frontalised embeddings are cached")
    parser.add_argument("--report", type=Path)
    parser.add_argument("--sheets", type=Path, help="folder for a contact sheet of frontalised profiles per dataset")
    parser.add_argument("--sheets-only", action="store_true", help="only the contact sheets, no scoring")
    parser.add_argument("--pairs-only", action="store_true", help="only the pair AUC table, no clustering")
    parser.add_argument("--no-mirror", action="store_true", help="no symmetric fill of the hidden half")
    args = parser.parse_args()
    settings = FrontalizeSettings(mirror=not args.no_mirror)
    for name in args.datasets if args.sheets else ():
        contact_sheet(args.stores / name, settings, args.sheets / f"{name}_profiles.png")
    if args.sheets_only:
        return
    rows, pairs = [], []
    for name in args.datasets:
        frontal = frontal_embeddings(args.stores / name, args.work / name, settings)
        pairs += pair_auc(args.stores / name, frontal)
        rows += [] if args.pairs_only else score_dataset(args.stores / name, frontal)
    pair_table = frame_table(pd.DataFrame(pairs).set_index(["dataset", "variant"]).round(4))
    text = ("Same vs different person, ROC AUC of the cosine similarity per pair type (no clustering):\n\n"
            f"{pair_table}\n")
    if not args.pairs_only:
        text = report(pd.DataFrame(rows)) + "\n" + text
    print(text)
    if args.report:
        args.report.write_text(f"# Frontalised embeddings (issue 12)\n\n`benchmarks/frontalize_pose.py "
                               f"{' '.join(args.datasets)}`, settings {settings.to_dict()}\n\n{text}")


if __name__ == "__main__":
    main()
