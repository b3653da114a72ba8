"""The ``facecluster`` command. Sub-commands mirror the public API: info, extract, cluster, evaluate."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from tqdm.auto import tqdm

from . import __version__
from .errors import FaceclusterError, ImageReadError
from .io.datasets import FaceSource, display_path, load_faces
from .io.images import probe_image
from .store import Store

log = logging.getLogger("facecluster_widgets")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * args.verbose, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.run(args)
    except FaceclusterError as exc:
        print(f"facecluster: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="facecluster", description=(
        "Group face photos by identity with a hybrid 2D+3D method. DATA is a folder of photos (one "
        "subfolder per person when identities are known), a dataset name such as lfw10, or 'lfw'."))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    info = sub.add_parser("info", help="list images, identities, formats and unreadable files of DATA")
    info.add_argument("data", metavar="DATA")
    info.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    info.set_defaults(run=_info)

    extract = sub.add_parser("extract", help="run the feature pipeline over DATA into a store (resumable)")
    extract.add_argument("data", metavar="DATA")
    extract.add_argument("--out", required=True, metavar="STORE", help="store folder (created if missing)")
    extract.add_argument("--detector", default=None, help="face detector backend (default: the pipeline's)")
    extract.add_argument("--embedder", default=None, help="2D embedder backend (default: the pipeline's)")
    extract.add_argument("--refine", action="store_true",
                         help="refine each 3D fit against the photo (analysis-by-synthesis, torch; ~5 s/face)")
    extract.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    extract.set_defaults(run=_extract)

    cluster = sub.add_parser("cluster", help="group the faces in a folder of photos by person",
                             description="Extracts PHOTOS (resumably, into DIR/store, reused by the next run), "
                             "clusters the faces with the method's defaults and writes DIR/clusters.csv: file, "
                             "face index, box, cluster (-1: in no cluster) and distance to the cluster's centre.")
    cluster.add_argument("photos", metavar="PHOTOS", help="a folder of photos (or a dataset name)")
    cluster.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    cluster.add_argument("--eps", type=float, default=None, help="DBSCAN radius on the fused distance")
    cluster.add_argument("--min-samples", type=int, default=None, help="DBSCAN's MinPts")
    cluster.add_argument("--lam", type=float, default=None, help="weight of the 2D embedding (1 - weight of 3D)")
    cluster.add_argument("--k", type=int, default=None, help="number of people (default: chosen by silhouette)")
    cluster.add_argument("--export", choices=("links", "copy"), default=None,
                         help="also write DIR/clusters/, a folder per cluster of links to (or copies of) the photos")
    cluster.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    cluster.set_defaults(run=_cluster)

    evaluate = sub.add_parser("evaluate", help="the method's experiment: a Table-2-style comparison per dataset",
                              description="Extracts each DATA (resumably) and scores the full method, its "
                              "baselines and the usual peers against the folder labels. Writes <name>.md, "
                              "<name>.csv, <name>_lambda.csv (and <name>_subsets.csv, <name>_yaw.csv) per dataset and "
                              "report.md.")
    evaluate.add_argument("data", nargs="+", metavar="DATA", help="a dataset folder or name, or a store folder "
                          "made by 'facecluster extract' (used as it is)")
    evaluate.add_argument("--protocol", choices=("clean", "merged", "stress"), default="clean",
                          help="clean: each DATA alone; merged: all DATA as one collection (labels kept apart); "
                          "stress: merged, then 30 %% of photos occluded / at 1/4 resolution / relit, each "
                          "variant scored on its own (corrupted copies are written inside the store)")
    evaluate.add_argument("--out", default="evaluation", metavar="DIR", help="report folder (default: evaluation)")
    evaluate.add_argument("--stores", default=None, metavar="DIR",
                          help="folder of per-dataset stores, DIR/<dataset name>, made or reused (default: the "
                          "cache folder); the merged protocol reuses each dataset's store")
    evaluate.add_argument("--methods", nargs="+", default=None, help="subset of methods (default: all)")
    evaluate.add_argument("--detector", default=None, help="face detector backend (default: the pipeline's)")
    evaluate.add_argument("--embedder", default=None, help="2D embedder backend (default: the pipeline's)")
    evaluate.add_argument("--no-progress", action="store_true", help="hide progress bars")
    evaluate.set_defaults(run=_evaluate)
    return parser


def _info(args: argparse.Namespace) -> int:
    source = load_faces(args.data)
    formats: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    failures: list[tuple[str, str]] = list(source.skipped)
    for path in tqdm(source.paths, desc="reading", unit="img", disable=args.no_progress, file=sys.stderr):
        try:
            info = probe_image(path)
        except ImageReadError as exc:
            failures.append((display_path(exc.path), exc.reason))  # a non-UTF-8 name must not crash print()
            continue
        formats[info.format] += 1
        modes[info.mode] += 1
    print(_info_report(source, formats, modes, failures))
    return 0


def _info_report(source: FaceSource, formats: Counter, modes: Counter, failures: list[tuple[str, str]]) -> str:
    lines = [f"source:     {source.root or source.name}",
             f"images:     {len(source)}",
             f"identities: {len(source.identities) if source.has_labels else 'unknown (no identity folders)'}",
             f"formats:    {', '.join(f'{k} {v}' for k, v in formats.most_common()) or '-'}",
             f"modes:      {', '.join(f'{k} {v}' for k, v in modes.most_common()) or '-'}",
             f"readable:   {sum(formats.values())} of {len(source)}"]
    if source.has_labels:
        counts = Counter(label for label in source.labels if label is not None)
        sizes = sorted(counts.values())
        lines.append(f"per person: {sizes[0]}–{sizes[-1]} images")
    if failures:
        lines.append(f"unreadable: {len(failures)}")
        lines.extend(f"  {path}: {reason}" for path, reason in failures)
    else:
        lines.append("unreadable: none")
    return "\n".join(lines)


def _backend_overrides(args: argparse.Namespace) -> dict:
    """The pipeline fields the user named on the command line (detector, embedder)."""
    return {key: value for key in ("detector", "embedder") if (value := getattr(args, key, None))}


def _extract(args: argparse.Namespace) -> int:
    from .pipeline.extract import extract

    overrides = _backend_overrides(args)
    if args.refine:
        from .recon.refine import RefineSettings

        overrides["refine"] = RefineSettings()
    store = extract(args.data, args.out, progress=not args.no_progress, **overrides)
    report = store.read_json("run")
    steps = ", ".join(f"{step} {n} ({report['seconds'].get(step, 0):.2f} s)" for step, n in report["counts"].items())
    print("\n".join([f"store:      {store.root}", *_extraction_lines(store),
                     f"wall time:  {report['wall_seconds']:.2f} s", f"steps:      {steps}"]))
    return 0


def _extraction_lines(store: Store) -> list[str]:
    """Images, faces, each unusable image by name under its count, and the work done (so a rerun shows 0)."""
    report = store.read_json("run")
    lines = [f"images:     {report['n_images']}", f"faces:      {report['n_faces']}"]
    for frame, status, title in ((store.images, "unreadable", "unreadable"), (store.table, "no_face", "no face"),
                                 (store.images, "skipped", "skipped")):
        rows = frame.loc[frame["status"] == status].drop_duplicates("path")
        if status == "skipped" and rows.empty:
            continue  # folders the walk could not enter: said only when there are some
        lines.append(f"{title + ':':<11} {len(rows)}")
        lines.extend(f"  {display_path(row.path)}: {row.reason}" for row in rows.itertuples())
    lines.append(f"work done:  {_work_done(report)}")
    return lines


def _work_done(report: dict) -> str:
    counts = report.get("counts", {})
    return f"{counts.get('store', 0)} recomputed, {counts.get('cached', 0)} reused from the store"


def _cluster(args: argparse.Namespace) -> int:
    from .pipeline.extract import extract
    from .review.export import export_folders, export_table, face_clusters
    from .review.session import ClusterSession

    started = time.perf_counter()
    out = Path(args.out).expanduser()
    folders = out / "clusters"
    if args.export and folders.is_dir() and any(folders.iterdir()):
        raise FaceclusterError(f"{folders}: holds an earlier export; remove it (or choose another --out) to export "
                               "again, so no file is overwritten")
    if out.exists() and not out.is_dir():
        raise FaceclusterError(f"{out}: exists and is not a folder")
    photos = Path(args.photos).expanduser()
    if photos.is_dir() and out.resolve().is_relative_to(photos.resolve()):
        raise FaceclusterError(f"--out {out} is inside PHOTOS {photos}: the next run would read its store and "
                               "exported photos as new photos; choose a folder outside it")
    store = extract(args.photos, out / "store", progress=not args.no_progress)
    extracted = time.perf_counter()
    given = {"eps": args.eps, "min_samples": args.min_samples, "lam": args.lam, "n_clusters": args.k}
    session = ClusterSession.from_store(store, persist=False, **{k: v for k, v in given.items() if v is not None})
    view = session.view
    frame = face_clusters(session)
    export_table(frame, out / "clusters.csv")
    done = time.perf_counter()
    faces = frame["cluster"].to_numpy()
    scores = session.metrics(view)
    known = (f"; against the folder names ({int(scores['labelled_faces'])} faces): ARI {scores['ari']:.3f}, purity "
             f"{scores['purity']:.3f}" if "ari" in scores else "")
    print("\n".join([
        f"store:      {store.root}", *_extraction_lines(store),
        f"people found:  {view.n_clusters} ({view.reason})",
        f"faces in none: {int((faces < 0).sum())} of {len(faces)}",
        f"scores:        silhouette {scores['silhouette']:.3f}{known}",
        *([f"corrections:   {len(session.edits)} replayed from {store.root / 'edits.json'}"] if len(session.edits)
          else []),
        f"time:          {done - started:.1f} s (extraction {extracted - started:.1f} s, clustering "
        f"{done - extracted:.1f} s)",
        f"written:       {out / 'clusters.csv'}"]))
    if args.export:
        table = frame.rename(columns={"file": "path"})
        result = export_folders(table, folders, mode="symlink" if args.export == "links" else "copy")
        print(f"exported:      {result['files']} photos into {result['folders']} folders under {folders}")
        for error in result["errors"]:
            print(f"  not exported: {error['path']}: {error['reason']}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .config import default_cache_dir
    from .evaluation.evaluate import evaluate
    from .evaluation.stress import VARIANTS, primary_points5, stress_source
    from .io.datasets import combine_sources
    from .store import open_store

    progress = not args.no_progress
    stores = Path(args.stores) if args.stores else default_cache_dir()
    overrides = _backend_overrides(args)
    pairs = [_dataset_store(data, stores, progress, overrides) for data in args.data]
    if args.protocol in ("merged", "stress"):
        source = combine_sources([s for s, _ in pairs], name="merged")
        merged = open_store(stores / source.name)
        for _, store in pairs:
            merged.adopt(store)  # each dataset's results: the merged collection is not extracted again
        pairs = [(source, _extracted(source, merged, progress, overrides))]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sections = []
    methods = args.methods or "all"

    def report(name: str, result) -> None:
        result.table.to_csv(out / f"{name}.csv", index_label="method")
        result.lam_sweep.to_csv(out / f"{name}_lambda.csv", index=False)
        if not result.subsets.empty:
            result.subsets.to_csv(out / f"{name}_subsets.csv")
        if not result.by_yaw.empty:
            result.by_yaw.to_csv(out / f"{name}_yaw.csv")
        text = result.to_markdown()
        (out / f"{name}.md").write_text(text)
        sections.append(text)
        print(text)

    for source, store in pairs:
        report(source.name, evaluate(store, methods=methods, name=source.name))
        if args.protocol != "stress":
            continue
        points5 = primary_points5(store)
        for variant in VARIANTS:
            stressed, conditions = stress_source(source, store, variant, points5)
            store = _extracted(stressed, store, progress, overrides)
            report(stressed.name, evaluate(store, methods=methods, subset_by=conditions, name=stressed.name))
    (out / "report.md").write_text("# Evaluation\n\n" + "\n".join(sections))
    print(f"written: {out / 'report.md'}")
    return 0


def _dataset_store(data: str, stores: Path, progress: bool, overrides: dict) -> tuple[FaceSource, Store]:
    """A store folder made by ``extract`` is used as it is (``overrides`` do not apply: it holds its own run); a
    dataset is extracted into ``stores/<name>`` (reused)."""
    import pandas as pd

    from .store import open_store

    if (Path(data).expanduser() / "STORE.json").is_file():
        store = open_store(data, create=False)
        images = store.images
        images = images.loc[images["status"] != "skipped"]
        labels = tuple(None if pd.isna(v) else str(v) for v in images["label"])
        source = FaceSource(paths=tuple(Path(p) for p in images["path"]), name=store.read_json("run")["source"],
                            labels=labels if any(v is not None for v in labels) else None)
        print(f"store {source.name}: {store.root} (made by extract, used as it is)")
        return source, store
    source = load_faces(data)
    return source, _extracted(source, stores / source.name, progress, overrides)


def _extracted(source: FaceSource, store: Store | Path, progress: bool, overrides: dict) -> Store:
    from .pipeline.extract import extract

    store = extract(source, store, progress=progress, **overrides)
    print(f"store {source.name}: {store.root} ({_work_done(store.read_json('run'))})")
    return store


if __name__ == "__main__":
    sys.exit(main())
