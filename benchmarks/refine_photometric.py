"""Does photometric refinement of the 3D fit explain real photos better, without drifting off the landmarks?

For the first ``--per-person`` photos of each person in lfw10: the "auto" detector's largest face and its
68 landmarks -> :class:`LandmarkFitter` -> :class:`PhotometricRefiner`. Per face and on average it prints
the photometric error (mean squared RGB error over the skin mask, colours in [0, 1], also as RMSE in
8-bit levels) at three stages, each with the albedo and light solved for the shape it is measured on:

* ``initial`` - landmark-fit shape, ambient light;
* ``before``  - landmark-fit shape, albedo and light both solved (all that colour alone can do);
* ``after``   - refined shape (identity, expression, pose), albedo and light re-solved;

plus the landmark RMS (image pixels) before and after, and the time per face of the refinement (the
landmark fit and detection excluded). ``--control`` also runs the refinement with zero geometry steps: its
"after" only re-solves the colour for the unchanged shape, so any gain there would be colour
optimisation left undone in "before", not geometry.

    .venv/bin/python benchmarks/refine_photometric.py --control
    .venv/bin/python benchmarks/refine_photometric.py --lambda-photo 30 --iterations 100

Measured (20 faces, 2 shared CPU cores, torch threads left at 2), defaults (crop 112, 60 steps, lambda_photo 50):

    photometric MSE  initial 0.00268 (13.2 levels)  before 0.00170 (10.5)  after 0.00131 (9.2)
    geometry gain    23.2 % of 'before' (lower after on 20/20 faces; per-face median 19.1 %)
    landmark RMS     2.01 -> 2.10 px (per face worst change +0.24 px)
    time             5205 ms/face
    control (0 geometry steps): before 0.00170 -> after 0.00170, gain -0.0 %, 1491 ms/face

``--lambda-photo`` 10 / 30 / 100: gain 10.4 / 18.9 / 27.6 %, landmark RMS 2.02 / 2.07 / 2.17 px.
``--crop-size 96 --iterations 40``: gain 22.4 %, landmark RMS 2.11 px, 3690 ms/face.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from facecluster_widgets.config import datasets_root
from facecluster_widgets.detect import get_detector
from facecluster_widgets.errors import DatasetError
from facecluster_widgets.io.images import read_image
from facecluster_widgets.recon.morphable import LandmarkFitter, load_morphable_model
from facecluster_widgets.recon.refine import PhotometricRefiner, RefinedFit, RefineSettings

log = logging.getLogger("refine_photometric")

#: Settings the command line may override, by their dataclass field names.
OVERRIDABLE = ("crop_size", "iterations", "lambda_photo", "lambda_landmark", "colour_rounds", "resolve_every",
               "albedo_controls", "albedo_smoothness", "albedo_symmetry", "faces_per_pixel")


def photos(root: Path, per_person: int) -> list[Path]:
    people = sorted(p for p in root.iterdir() if p.is_dir())
    if not people:
        raise DatasetError(f"{root}: no per-person folders")
    return [path for person in people for path in sorted(person.glob("*.jpg"))[:per_person]]


def levels(mse: float) -> float:
    """RMSE in 8-bit grey levels, easier to picture than a mean square."""
    return float(np.sqrt(mse) * 255)


def summarise(name: str, results: list[RefinedFit], seconds: list[float]) -> None:
    table = np.array([[r.photo_error_initial, r.photo_error_before, r.photo_error_after,
                       r.landmark_rms_before, r.landmark_rms_after] for r in results])
    initial, before, after, rms0, rms1 = table.mean(axis=0)
    wins = int((table[:, 2] < table[:, 1]).sum())
    log.info("%s, mean of %d faces:", name, len(results))
    log.info("  photometric MSE  initial %.5f (%.1f levels)  before %.5f (%.1f)  after %.5f (%.1f)",
             initial, levels(initial), before, levels(before), after, levels(after))
    log.info("  geometry gain    %.1f %% of 'before' (lower after on %d/%d faces; per-face median %.1f %%)",
             100 * (1 - after / before), wins, len(results), 100 * np.median(1 - table[:, 2] / table[:, 1]))
    log.info("  landmark RMS     %.2f -> %.2f px (per face worst change %+.2f px)", rms0, rms1,
             float((table[:, 4] - table[:, 3]).max()))
    log.info("  time             %.0f ms/face (median %.0f)", 1000 * np.mean(seconds), 1000 * np.median(seconds))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=None, help="folder of per-person folders (default lfw10)")
    parser.add_argument("--per-person", type=int, default=2)
    parser.add_argument("--control", action="store_true", help="also run with zero geometry steps")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: leave as is)")
    parser.add_argument("--verbose", action="store_true", help="one line per face")
    for name in OVERRIDABLE:
        kind = next(f.type for f in fields(RefineSettings) if f.name == name)
        parser.add_argument("--" + name.replace("_", "-"), type=int if kind in (int, "int") else float)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    root = args.dataset
    if root is None:
        shared = datasets_root()
        if shared is None:
            raise DatasetError("shared datasets not found; pass --dataset or set $FACECLUSTER_DATASETS")
        root = shared / "lfw10"
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    overrides = {name: getattr(args, name) for name in OVERRIDABLE if getattr(args, name) is not None}
    settings = RefineSettings(**overrides)
    log.info("settings: %s", {name: getattr(settings, name) for name in OVERRIDABLE})

    model = load_morphable_model()
    fitter = LandmarkFitter(model)
    refiner = PhotometricRefiner(model, settings)
    control = PhotometricRefiner(model, RefineSettings(**{**overrides, "iterations": 0})) if args.control else None
    detector = get_detector("auto")
    results: list[RefinedFit] = []
    controls: list[RefinedFit] = []
    seconds: list[float] = []
    control_seconds: list[float] = []
    for path in photos(root, args.per_person):
        rgb = read_image(path)
        faces = [d for d in detector.detect(rgb) if d.points68 is not None]
        if not faces:
            log.warning("%s: no face with 68 landmarks; skipped", path.name)
            continue
        points = max(faces, key=lambda d: d.width * d.height).points68
        fit = fitter.fit(points)
        started = time.perf_counter()
        result = refiner.refine(rgb, points, fit)
        seconds.append(time.perf_counter() - started)
        results.append(result)
        if control is not None:
            started = time.perf_counter()
            controls.append(control.refine(rgb, points, fit))
            control_seconds.append(time.perf_counter() - started)
        if args.verbose:
            log.info("%-32s photometric %.5f %.5f %.5f  landmark RMS %.2f -> %.2f px  %.0f ms", path.name,
                     result.photo_error_initial, result.photo_error_before, result.photo_error_after,
                     result.landmark_rms_before, result.landmark_rms_after, 1000 * seconds[-1])
    if not results:
        raise DatasetError(f"{root}: no face could be refined")
    summarise("refinement", results, seconds)
    if controls:
        summarise("control: colour re-solved, geometry frozen (0 steps)", controls, control_seconds)


if __name__ == "__main__":
    main()
