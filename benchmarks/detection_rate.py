"""Share of images in which each detector finds at least one face, and its speed.

    .venv/bin/python benchmarks/detection_rate.py                      # lfw10 orl yale cfp100 umist
    .venv/bin/python benchmarks/detection_rate.py --datasets lfw10 --limit 20
    .venv/bin/python benchmarks/detection_rate.py --box-adjust         # re-measure the mediapipe box maps

Per dataset and detector: images with >= 1 face, ms/image (landmarks included unless
``--no-landmarks``), median landmark quality; cfp100 is split into frontal and profile photos, and
for "auto" the member that found each image's faces is counted. ``--box-adjust`` repeats the lfw10
grid search behind ``mediapipe_backend.BOX_ADJUST``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from facecluster_widgets.config import IMAGE_EXTENSIONS, datasets_root
from facecluster_widgets.detect import get_detector
from facecluster_widgets.detect.dlib_backend import BoxAdjust, DlibHogDetector, Landmarker68, points5_from_68
from facecluster_widgets.detect.insightface_backend import dlib_box_from_points5
from facecluster_widgets.detect.mediapipe_backend import BOX_ADJUST, MediapipeDetector
from facecluster_widgets.io.images import read_image

log = logging.getLogger("detection_rate")


def image_files(folder: Path, limit: int | None) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    if limit:
        files = files[:: max(1, len(files) // limit)][:limit]
    return files


def group_of(path: Path) -> str:
    """cfp100 keeps frontal_XX and profile_XX photos side by side; other datasets are one group."""
    stem = path.stem.lower()
    return "profile" if stem.startswith("profile") else "frontal" if stem.startswith("frontal") else "all"


def measure(detector_name: str, files: list[Path], landmarks: bool) -> list[dict]:
    detector = get_detector(detector_name, landmarks=landmarks)
    detector.detect(read_image(files[0]))  # load models outside the timing
    rows = []
    for path in files:
        rgb = read_image(path)
        start = time.perf_counter()
        found = detector.detect(rgb)
        elapsed = time.perf_counter() - start
        quality = [d.landmark_quality for d in found if getattr(d, "landmark_quality", None) is not None]
        rows.append({"group": group_of(path), "found": bool(found), "ms": 1000 * elapsed,
                     "source": found[0].source if found else "-",
                     "quality": max(quality) if quality else np.nan})
    if hasattr(detector, "close"):
        detector.close()
    return rows


def report(dataset: str, detector_name: str, rows: list[dict]) -> list[str]:
    lines = []
    groups = sorted({r["group"] for r in rows})
    for group in (["all"] if groups == ["all"] else ["all", *groups]):
        sel = [r for r in rows if group == "all" or r["group"] == group]
        found = np.mean([r["found"] for r in sel])
        quality = np.nanmedian([r["quality"] for r in sel]) if any(r["found"] for r in sel) else np.nan
        label = dataset if group == "all" else f"{dataset}/{group}"
        lines.append(f"| {label:<16} | {detector_name:<9} | {len(sel):>5} | {100 * found:6.1f} % | "
                     f"{np.mean([r['ms'] for r in sel]):7.1f} | {quality:5.2f} |")
    pairs = [(r["group"] == "frontal", r["quality"]) for r in rows if r["found"] and r["group"] != "all"]
    if len({f for f, _ in pairs}) == 2 and landmarks_measured(rows):
        auc = roc_auc_score([f for f, _ in pairs], [q for _, q in pairs])
        lines.append(f"|   landmark quality, frontal vs profile: ROC AUC {auc:.3f} |")
    if detector_name == "auto":
        counts = Counter(r["source"] for r in rows)
        lines.append(f"|   auto sources: {', '.join(f'{k} {v}' for k, v in counts.most_common())} |")
    return lines


def landmarks_measured(rows: list[dict]) -> bool:
    return any(np.isfinite(r["quality"]) for r in rows)


def box_adjust_search(folder: Path, limit: int | None) -> None:
    """For each mediapipe model: the box map whose 68 landmarks land closest to those from dlib's own
    HOG boxes (mean point error / inter-ocular distance), over a grid of scale and dy."""
    landmarker = Landmarker68()
    hog = DlibHogDetector(landmarks=False)
    for model in ("full", "short"):
        mp = MediapipeDetector(model=model, landmarks=False)
        pairs = []
        for path in image_files(folder, limit):
            rgb = read_image(path)
            ref_boxes, mp_boxes = hog.find(rgb), mp.find(rgb)
            if not ref_boxes or not mp_boxes:
                continue
            ref = landmarker.landmarks(rgb, ref_boxes[0].box)
            centre = ref[36:48].mean(axis=0)
            near = min(mp_boxes, key=lambda d: np.hypot(*(np.add(d.box[:2], d.box[2:]) / 2 - centre)))
            pairs.append((rgb, near.box, ref, np.linalg.norm(ref[36:42].mean(0) - ref[42:48].mean(0))))
        mp.close()

        def error(adjust: BoxAdjust, pairs: list = pairs) -> float:
            return float(np.mean([np.linalg.norm(landmarker.landmarks(rgb, adjust.apply(box)) - ref, axis=1).mean()
                                  / iod for rgb, box, ref, iod in pairs]))

        grid = [BoxAdjust(scale=round(s, 3), dy=round(dy, 3))
                for s in np.arange(0.80, 1.151, 0.025) for dy in np.arange(-0.10, 0.101, 0.025)]
        best = min(grid, key=error)
        print(f"mediapipe {model}: {len(pairs)} faces; error/IOD unadjusted {error(BoxAdjust()):.4f}, "
              f"in use ({BOX_ADJUST[model]}) {error(BOX_ADJUST[model]):.4f}, "
              f"best {error(best):.4f} at scale={best.scale} dy={best.dy}")
    # insightface places dlib's box from its 5 points; check that rule with dlib's own 5 points
    errors = [np.linalg.norm(landmarker.landmarks(rgb, dlib_box_from_points5(points5_from_68(ref))) - ref,
                             axis=1).mean() / iod for rgb, _, ref, iod in pairs]
    print(f"box from 5 points (insightface): error/IOD {np.mean(errors):.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["lfw10", "orl", "yale", "cfp100", "umist"])
    parser.add_argument("--detectors", nargs="+", default=["mediapipe", "dlib-hog", "auto", "yunet"])
    parser.add_argument("--datasets-dir", type=Path, default=None, help="default: $FACECLUSTER_DATASETS")
    parser.add_argument("--limit", type=int, default=None, help="at most this many images per dataset")
    parser.add_argument("--no-landmarks", action="store_true", help="time detection alone")
    parser.add_argument("--box-adjust", action="store_true", help="re-measure the mediapipe box maps on lfw10")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    root = args.datasets_dir or datasets_root()
    if root is None or not root.is_dir():
        parser.error("datasets folder not found: pass --datasets-dir or set FACECLUSTER_DATASETS")
    if args.box_adjust:
        box_adjust_search(root / "lfw10", args.limit)
        return 0
    print("| dataset          | detector  | imgs  | >=1 face |   ms/img | qual. |")
    print("|------------------|-----------|-------|----------|----------|-------|")
    for dataset in args.datasets:
        files = image_files(root / dataset, args.limit)
        if not files:
            log.warning("%s: no images", root / dataset)
            continue
        for name in args.detectors:
            for line in report(dataset, name, measure(name, files, not args.no_landmarks)):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
