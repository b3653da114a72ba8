"""The ``facecluster`` command. Sub-commands mirror the public API: info, extract (more follow)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from collections.abc import Sequence

from tqdm.auto import tqdm

from . import __version__
from .errors import FaceclusterError, ImageReadError
from .io.datasets import FaceSource, display_path, load_faces
from .io.images import probe_image

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

    evaluate = sub.add_parser("evaluate", help="the method's experiment: a Table-2-style comparison per dataset",
                              description="Extracts each DATA (resumably) and scores the full method, its "
                              "baselines and the usual peers against the folder labels. Writes <name>.md, "
                              "<name>.csv, <name>_lambda.csv (and <name>_subsets.csv, <name>_yaw.csv) per dataset and "
                              "report.md.")
    evaluate.add_argument("data", nargs="+", metavar="DATA")
    evaluate.add_argument("--protocol", choices=("clean", "merged", "stress"), default="clean",
                          help="clean: each DATA alone; merged: all DATA as one collection (labels kept apart); "
                          "stress: merged, then 30 %% of photos occluded / at 1/4 resolution / relit, each "
                          "variant scored on its own (corrupted copies are written inside the store)")
    evaluate.add_argument("--out", default="evaluation", metavar="DIR", help="report folder (default: evaluation)")
    evaluate.add_argument("--stores", default=None, metavar="DIR",
                          help="folder of per-dataset stores (default: the cache folder)")
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
    work = ", ".join(f"{step} {n} ({report['seconds'].get(step, 0):.2f} s)" for step, n in report["counts"].items())
    print(f"store:      {store.root}\nimages:     {report['n_images']}\nfaces:      {report['n_faces']}\n"
          f"unreadable: {report['n_unreadable']}\nno face:    {report['n_no_face']}\n"
          f"wall time:  {report['wall_seconds']:.2f} s\nwork done:  {work}")
    errors = store.errors
    for row in errors.itertuples():
        print(f"  {row.path}: {row.reason}")
    return 0




def _evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .config import default_cache_dir
    from .evaluation.evaluate import evaluate
    from .evaluation.stress import VARIANTS, primary_points5, stress_source
    from .io.datasets import combine_sources
    from .pipeline.extract import extract

    sources = [load_faces(d) for d in args.data]
    if args.protocol in ("merged", "stress"):
        sources = [combine_sources(sources, name="merged")]
    stores = Path(args.stores) if args.stores else default_cache_dir()
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

    for source in sources:
        store = extract(source, stores / source.name, progress=not args.no_progress, **_backend_overrides(args))
        report(source.name, evaluate(store, methods=methods, name=source.name))
        if args.protocol != "stress":
            continue
        points5 = primary_points5(store)
        for variant in VARIANTS:
            stressed, conditions = stress_source(source, store, variant, points5)
            store = extract(stressed, store, progress=not args.no_progress, **_backend_overrides(args))
            report(stressed.name, evaluate(store, methods=methods, subset_by=conditions, name=stressed.name))
    (out / "report.md").write_text("# Evaluation\n\n" + "\n".join(sections))
    print(f"written: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
