"""The method's experiment, reproduced: every method on the same features, scored the same way.

Rows are methods, columns metrics (the shape of the method's Table 2), plus the λ sweep that tests the
claim "λ = 0.65 is best", the share of faces DBSCAN removes, and the silhouette change the DBSCAN stage
brings over K-Means++ alone. Every default is fixed here once and used for every dataset: nothing is
tuned on a dataset's labels. Labels are used only to score.

Which k the k-needing baselines get: 2D-only, 3D-only and late fusion use the k the full method chose
without labels (so they compare features and fusion, not k estimation); "K-Means (true k)" is the
upper reference that is given the true number of people.
"""

from __future__ import annotations

import inspect
import logging
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..cluster import BASELINES, HybridClustering, run_baseline
from ..cluster.baselines import DEFAULT_EMBEDDER
from ..cluster.hybrid import DEFAULT_LAM, DEFAULT_POSE_WEIGHTING
from ..cluster.kmeans import fused_kmeans
from ..errors import FaceclusterError
from ..features import Features
from ..fusion import BLOCK_2D, FusedMetric, as_blocks, table_pose_points, valid_rows
from ..io.table import photo_groups
from ..metrics import scores, silhouette_or_nan
from ..store import Store
from .markdown import frame_table

log = logging.getLogger(__name__)

#: λ values of the sweep (0 = 3D only, 1 = 2D only).
LAM_GRID = tuple(np.round(np.arange(0.0, 1.0001, 0.05), 2))
#: Columns of the Table-2-style report, in order.
COLUMNS = ("ari", "nmi", "purity", "silhouette", "bcubed_precision", "bcubed_recall", "bcubed_f", "pairwise_f",
           "noise_fraction", "clusters_found", "clusters_true", "seconds")
#: Bins of the pipeline's own yaw estimate (the mesh stage's ``yaw`` column, |degrees|) for the per-pose table.
YAW_BINS = ((0.0, 30.0), (30.0, 60.0), (60.0, 90.0))
#: The full method, then baselines by their names in :data:`~facecluster_widgets.cluster.BASELINES`, in report
#: order. The k-needing ones get the full method's k; the ``*_true_k`` ones the true number of people.
METHODS = ("full", "full_3d_off", "2d_kmeans", "3d_kmeans", "late_fusion", "dbscan_2d", "hdbscan_2d",
           "agglomerative_2d", "chinese_whispers", "2d_kmeans_true_k")
_LABELS = {"full": "Full method (DBSCAN → fused K-Means++, k auto)",
           "full_3d_off": "Full method, 3D weight off (λ = 1)", "2d_kmeans": "2D only (K-Means++, same k)",
           "3d_kmeans": "3D only (K-Means++, same k)", "late_fusion": "Late fusion (majority vote, same k)",
           "dbscan_2d": "DBSCAN on 2D", "hdbscan_2d": "HDBSCAN on 2D", "agglomerative_2d": "Agglomerative (threshold)",
           "chinese_whispers": "Chinese Whispers (dlib)", "true_k_kmeans": "Fused K-Means, true k (reference)",
           "2d_kmeans_true_k": "K-Means on 2D, true k (reference)"}
_NEEDS_3D = {"full", "full_3d_off", "3d_kmeans", "late_fusion", "true_k_kmeans"}


@dataclass(frozen=True)
class Evaluation:
    """Everything one dataset's experiment produced; :meth:`to_markdown` writes the report."""

    name: str
    table: pd.DataFrame
    lam_sweep: pd.DataFrame
    dbscan: dict
    subsets: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    #: Scores per bin of the pipeline's yaw estimate (:data:`YAW_BINS`), same clusterings; empty without yaw.
    by_yaw: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_markdown(self) -> str:
        lines = [f"## {self.name}", "", frame_table(self.table.rename(index=_LABELS)), ""]
        if {"full", "full_3d_off"} <= set(self.table.index):
            gain = self.table.loc["full", "ari"] - self.table.loc["full_3d_off", "ari"]
            verdict = "the 3D term helps here" if gain > 0 else "the 3D term does not help here"
            if DEFAULT_LAM == 1.0:
                verdict += "; the default λ = 1 gives it no weight, the λ sweep below shows what weighting it does"
            lines += [f"3D branch: full method minus \"3D weight off\" = {gain:+.3f} ARI ({verdict}).", ""]
        if not self.by_yaw.empty:
            lines += ["Scores per yaw bin (the pipeline's own yaw estimate, |yaw| in degrees; same clusterings):", "",
                      frame_table(self.by_yaw), ""]
        if not self.subsets.empty:
            lines += ["Scores on subsets of the faces (same clustering, scored on the subset only):", "",
                      frame_table(self.subsets), ""]
        best = self.lam_sweep.loc[self.lam_sweep["ari"].idxmax()] if not self.lam_sweep.empty else None
        if best is not None:
            lines += [f"λ sweep (full method): best ARI {best['ari']:.3f} at λ = {best['lam']:.2f}; "
                      f"at λ = {DEFAULT_LAM}: ARI {self._sweep_at(DEFAULT_LAM, 'ari'):.3f}.", "",
                      frame_table(self.lam_sweep.set_index("lam")), ""]
        if self.dbscan:
            d = self.dbscan
            lines += [f"DBSCAN stage: removes {d['noise_fraction']:.1%} of faces as noise; silhouette with the "
                      f"DBSCAN stage {d['silhouette_hybrid']:.3f} vs K-Means++ alone {d['silhouette_kmeans']:.3f} "
                      f"(change {d['silhouette_change']:+.3f}).", ""]
        lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines).rstrip() + "\n"

    def _sweep_at(self, lam: float, column: str) -> float:
        row = self.lam_sweep.loc[np.isclose(self.lam_sweep["lam"], lam)]
        return float(row[column].iloc[0]) if len(row) else float("nan")


def evaluate_features(features: Features | Mapping[str, np.ndarray], labels: Sequence, *, name: str = "dataset",
                      groups: Sequence | None = None, conditions: Sequence | None = None,
                      yaw: Sequence[float] | None = None, pose: pd.DataFrame | None = None,
                      methods: Sequence[str] | str = "all", embedder: str = DEFAULT_EMBEDDER,
                      lam_grid: Sequence[float] = LAM_GRID,
                      random_state: int = 0) -> Evaluation:
    """Run ``methods`` on the faces and score them against ``labels`` (rows with a missing label are dropped).

    ``groups`` (photo ids) feed the full method's cannot-link constraint; ``conditions`` (e.g. "profile" /
    "frontal", or a stress variant) add per-subset scores; ``yaw`` (degrees, NaN where unknown) the per-yaw table;
    ``pose`` (the faces' ``yaw`` and ``landmark_quality`` columns) the full method's pose weighting.
    """
    blocks = as_blocks(features)
    labels = pd.Series(list(labels), dtype="string")
    keep = labels.notna().to_numpy()
    if not keep.any():
        raise FaceclusterError(f"{name}: no face has a label; evaluation needs identity labels to score")
    blocks = {k: v[keep] for k, v in blocks.items()}
    codes, _ = pd.factorize(labels[keep])
    group_codes = pd.factorize(pd.Series(list(groups))[keep])[0] if groups is not None else None
    cond = pd.Series(list(conditions))[keep].reset_index(drop=True) if conditions is not None else None
    pose = pose.loc[keep].reset_index(drop=True) if pose is not None else None
    names_3d = [k for k in blocks if k != BLOCK_2D]
    wanted = list(METHODS) if methods == "all" else list(methods)
    unknown = [m for m in wanted if m != "full" and m not in BASELINES]
    if unknown:
        raise FaceclusterError(f"unknown method(s) {', '.join(map(repr, unknown))}; "
                               f"known: full, {', '.join(BASELINES)}")
    notes: list[str] = []
    if not names_3d:
        dropped = [m for m in wanted if m in _NEEDS_3D]
        wanted = [m for m in wanted if m not in _NEEDS_3D]
        if dropped:
            notes.append(f"no 3D blocks in the features: skipped {', '.join(dropped)}")
    ok = valid_rows(blocks, list(blocks))
    pose_vectors = table_pose_points(pose, int(keep.sum()))[0] if DEFAULT_POSE_WEIGHTING != "off" else None
    metric = FusedMetric.fit({k: v[ok] for k, v in blocks.items()},  # the full method's distance, for silhouettes
                             pose=None if pose_vectors is None else pose_vectors[ok],
                             pose_weighting="off" if pose_vectors is None else DEFAULT_POSE_WEIGHTING)
    D = metric.pairwise(DEFAULT_LAM)
    preds: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    model = None
    k_auto = None
    if "full" in wanted or any(BASELINES[m].needs == "n_clusters" for m in wanted if m != "full"):
        t0 = time.perf_counter()
        model = HybridClustering(random_state=random_state).fit(blocks, groups=group_codes, pose=pose)
        seconds["full"] = time.perf_counter() - t0
        preds["full"] = model.labels_
        k_auto = max(int(model.n_clusters_), 1)
        notes.append(f"full method's k: {model.n_clusters_} ({model.n_clusters_reason_})")
    for method in wanted:
        if method == "full":
            continue
        t0 = time.perf_counter()
        preds[method] = _run(method, blocks, codes, k_auto, embedder, random_state, group_codes)
        seconds[method] = time.perf_counter() - t0
    rows = {}
    for method in wanted:
        pred = preds[method]
        row = scores(codes, pred)
        row["silhouette"] = silhouette_or_nan(pred[ok], D)
        row["seconds"] = seconds[method]
        rows[method] = row
    table = pd.DataFrame.from_dict(rows, orient="index").reindex(columns=list(COLUMNS))
    table.index.name = "method"
    if model is not None and "full" in table.index:
        notes += _silhouette_note(model, float(table.loc["full", "silhouette"]))
    subsets = _subset_scores(codes, preds, cond) if cond is not None else pd.DataFrame()
    yaw_bins = _yaw_bins(np.asarray(yaw, dtype=np.float64)[keep]) if yaw is not None else None
    by_yaw = _subset_scores(codes, preds, yaw_bins) if yaw_bins is not None else pd.DataFrame()
    sweep = _lam_sweep(model, metric, ok, codes, lam_grid) if model is not None and names_3d else pd.DataFrame()
    if not sweep.empty and (sweep["clusters_found"] == 0).any():
        lams = sweep.loc[sweep["clusters_found"] == 0, "lam"]
        notes.append(f"λ sweep: at {len(lams)} of its λ values ({lams.min():.2f}…{lams.max():.2f}) DBSCAN "
                     f"(ε = {model.eps}, MinPts = {model.min_samples}) left every face as noise: those rows "
                     "find no cluster")
    dbscan = _dbscan_effect(model, metric, random_state) if model is not None else {}
    return Evaluation(name=name, table=table, lam_sweep=sweep, dbscan=dbscan, subsets=subsets, notes=notes,
                      by_yaw=by_yaw)


def evaluate(store: Store, *, methods: Sequence[str] | str = "all", subset_by: str | Mapping | None = "filename",
             name: str | None = None, random_state: int = 0) -> Evaluation:
    """The experiment on an extracted store: faces with status "ok" and a label are scored.

    ``subset_by="filename"`` scores subsets named by the file-name prefix before ``_NN`` (cfp100's
    ``frontal_03.jpg`` / ``profile_02.jpg``: the whole name is ``<word>_<number>``) when every file has one;
    a column name of the faces table
    (e.g. ``"condition"``) uses that column; a mapping from path to condition uses that (the stress
    protocol's "clean" / "eyes" / "lowres"...); ``None`` adds no subsets.
    """
    table = store.table
    ok = (table["status"] == "ok").to_numpy()
    faces = table.loc[ok].reset_index(drop=True)
    run = store.read_json("run")
    conditions = _conditions(faces, subset_by)
    return evaluate_features(store.features.subset(ok), faces["label"], name=name or run.get("source", "dataset"),
                             groups=photo_groups(faces), conditions=conditions, methods=methods,
                             yaw=faces["yaw"] if "yaw" in faces else None,
                             pose=faces if {"yaw", "landmark_quality"} <= set(faces.columns) else None,
                             embedder=run.get("config", {}).get("embedder", DEFAULT_EMBEDDER),
                             random_state=random_state)


def _yaw_bins(yaw: np.ndarray) -> pd.Series:
    """``"0-30°"`` / ``"30-60°"`` / ``"60-90°"`` per face from |yaw| (the last bin takes anything above 60°;
    NaN: no bin), named so that they sort in order."""
    magnitude = np.abs(yaw)
    out = pd.Series([None] * len(yaw), dtype="object")
    for i, (low, high) in enumerate(YAW_BINS):
        inside = (magnitude >= low) & ((magnitude < high) | (i == len(YAW_BINS) - 1))
        out[inside] = f"{low:.0f}-{high:.0f}°"
    return out


def _conditions(faces: pd.DataFrame, subset_by: str | Mapping | None) -> pd.Series | None:
    if subset_by is None:
        return None
    if isinstance(subset_by, Mapping):
        return faces["path"].map(subset_by)
    if subset_by == "filename":
        prefix = faces["path"].str.extract(r"(?:^|/)([A-Za-z]+)_\d+\.[^./]+$", expand=False)
        return prefix if prefix.notna().all() and prefix.nunique() > 1 else None
    if subset_by not in faces.columns:
        raise FaceclusterError(f"subset_by={subset_by!r}: no such column in the faces table")
    return faces[subset_by]


def _run(method: str, blocks: dict, codes: np.ndarray, k: int | None, embedder: str, seed: int,
         groups: np.ndarray | None = None) -> np.ndarray:
    """A baseline by its one name: the k-needing ones get the full method's ``k``, thresholds the embedder's."""
    accepts = inspect.signature(BASELINES[method].fn).parameters
    params = {key: value for key, value in (("embedder", embedder), ("random_state", seed), ("groups", groups))
              if key in accepts}
    return run_baseline(method, blocks, n_clusters=k, labels_true=codes, **params)


def _silhouette_note(model: HybridClustering, table_value: float) -> list[str]:
    """Say which silhouette is which when the k search's figure (in the reason) and the table's differ."""
    sweep_value = model.auto_k_scores_.get(model.n_clusters_)
    if sweep_value is None or np.isnan(table_value) or abs(sweep_value - table_value) < 5e-4:
        return []
    return [f"full method's silhouette: {table_value:.3f} in the table (the final clustering, every clustered "
            f"face); the k search's {sweep_value:.3f} above is of one K-Means start on the faces DBSCAN kept"]


def _subset_scores(codes: np.ndarray, preds: dict[str, np.ndarray], cond: pd.Series) -> pd.DataFrame:
    rows = []
    for value in sorted(cond.dropna().unique()):
        mask = (cond == value).to_numpy()
        for method, pred in preds.items():
            s = scores(codes[mask], pred[mask])
            rows.append({"subset": value, "faces": int(mask.sum()), "method": method, "ari": s["ari"],
                         "purity": s["purity"], "bcubed_f": s["bcubed_f"], "noise_fraction": s["noise_fraction"]})
    return pd.DataFrame(rows).set_index(["subset", "method"]) if rows else pd.DataFrame()


def _lam_sweep(model: HybridClustering, metric: FusedMetric, ok: np.ndarray, codes: np.ndarray,
               lam_grid: Sequence[float]) -> pd.DataFrame:
    rows = []
    base_lam = model.lam
    for lam in lam_grid:
        with warnings.catch_warnings():  # reported once, in the notes, not once per λ
            warnings.filterwarnings("ignore", message="DBSCAN marked every face as noise")
            model.refit(lam=float(lam))
        s = scores(codes, model.labels_)
        rows.append({"lam": float(lam), "ari": s["ari"], "purity": s["purity"],
                     "silhouette": silhouette_or_nan(model.labels_[ok], metric.pairwise(float(lam))),
                     "clusters_found": s["clusters_found"], "noise_fraction": s["noise_fraction"]})
    model.refit(lam=base_lam)
    return pd.DataFrame(rows)


def _dbscan_effect(model: HybridClustering, metric: FusedMetric, seed: int) -> dict:
    """Silhouette of the full method (noise excluded) vs K-Means++ alone with the same k on every face."""
    lam = model.lam
    rows = np.arange(metric.n_faces)
    D = metric.pairwise(lam)
    k = max(int(model.n_clusters_), 2)
    alone = fused_kmeans(metric, lam, rows, D, k, rng=np.random.RandomState(seed))
    valid = ~model.invalid_mask_
    hybrid = silhouette_or_nan(model.labels_[valid], D)
    kmeans = silhouette_or_nan(alone.labels, D)
    return {"noise_fraction": float(model.noise_mask_.mean()), "silhouette_hybrid": hybrid,
            "silhouette_kmeans": kmeans, "silhouette_change": hybrid - kmeans}
