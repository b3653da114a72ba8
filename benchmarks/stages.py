"""Per-stage cost of the feature pipeline on real photos, and the same photos through ``extract()``.

Each stage is called directly, the way ``facecluster_widgets.pipeline.stages`` calls it, on every face of every
photo; the models are built and warmed up first (their one-off cost is reported apart), so the timed
loops hold inference only. Costs are per face (a stage's seconds over all faces found), medians over
repeats of the same photos, because the 2-core machine is shared and one pass can be slowed by others.
Used by ``benchmarks/run.py``.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import facecluster_widgets as fc
from facecluster_widgets.descriptors import DescriptorExtractor
from facecluster_widgets.detect import Detector, get_detector
from facecluster_widgets.embed import DEFAULT_EMBEDDER, Embedder, EmbedInput, get_embedder
from facecluster_widgets.errors import DatasetError, FaceclusterError
from facecluster_widgets.io.datasets import load_faces
from facecluster_widgets.io.images import decode_image
from facecluster_widgets.pipeline.batching import DEFER_FACES
from facecluster_widgets.pipeline.stages import DEFAULT_DETECTOR
from facecluster_widgets.recon.mesh import MeshReconstructor
from facecluster_widgets.recon.morphable import LandmarkFitter, load_morphable_model
from facecluster_widgets.standardize import StandardiseConfig, standardise

log = logging.getLogger(__name__)

#: The stages timed, in pipeline order.
STAGES = ("decode", "detect", "landmarks", "standardise", "embed", "mesh", "fit", "descriptors")
#: "reconstruction + 3D descriptors": what the method reports at 0.85 s per image.
RECON_STAGES = ("mesh", "fit", "descriptors")
#: The method's reported reconstruction + 3D descriptor time per image, and the target: ten times faster.
METHOD_RECON_MS = 850.0
RECON_TARGET_MS = METHOD_RECON_MS / 10
#: Which timed stages each stage of ``extract()`` (by its store name) does; unknown names are reported.
EXTRACT_STAGE_MAP = {"image": ("decode",), "detect": ("detect", "landmarks"), "standardise": ("standardise",),
                     "embed": ("embed",), "mesh": ("mesh",), "morphable": ("fit",), "descriptors": ("descriptors",)}
#: The photo mix: half lfw10 (colour, in the wild), a quarter each orl and yale (grey, studio).
MIX = (("lfw10", 0.5), ("orl", 0.25), ("yale", 0.25))


def benchmark_photos(n: int) -> list[Path]:
    """``n`` photos following :data:`MIX`, evenly spaced over each dataset's sorted files (so over its
    identities); the same list every run."""
    if n < len(MIX):
        raise DatasetError(f"--faces must be at least {len(MIX)} (one photo per dataset), got {n}")
    counts = [int(n * share) for _, share in MIX]
    counts[0] += n - sum(counts)
    photos: list[Path] = []
    for (name, _), k in zip(MIX, counts, strict=True):
        paths = load_faces(name).paths
        if k > len(paths):
            raise DatasetError(f"{name} has {len(paths)} photos, {k} asked for")
        photos.extend(paths[i * len(paths) // k] for i in range(k))
    return photos


class TimedLandmarker:
    """The cascade's 68-point landmarker, timed apart: ``detect()`` calls it on every box it keeps, so the
    benchmark can split the detector's figure into finding faces and placing their landmarks."""

    def __init__(self, landmarker: object) -> None:
        self.landmarker, self.seconds = landmarker, 0.0

    def annotate(self, *args: object, **kwargs: object) -> object:
        t0 = time.perf_counter()
        try:
            return self.landmarker.annotate(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t0

    def __getattr__(self, name: str) -> object:
        return getattr(self.landmarker, name)


def _detect_then_landmarks(seconds: dict[str, float], detector: Detector, rgb: np.ndarray) -> list:
    """``detector.detect(rgb)``, its time split into "detect" and "landmarks" (when the landmarker is timed)."""
    timed = getattr(detector, "landmarker", None)
    before = timed.seconds if isinstance(timed, TimedLandmarker) else 0.0
    dets = _timed(seconds, "detect", detector.detect, rgb)
    if isinstance(timed, TimedLandmarker):
        spent = timed.seconds - before
        seconds["detect"] -= spent
        seconds["landmarks"] = seconds.get("landmarks", 0.0) + spent
    return dets


@dataclass
class Models:
    """Every model the stages use, built once per benchmark."""

    detector: Detector
    embedder: Embedder
    reconstructor: MeshReconstructor
    fitter: LandmarkFitter
    extractor: DescriptorExtractor
    standardise_config: StandardiseConfig = field(default_factory=StandardiseConfig)


def _timed(seconds: dict[str, float], key: str, fn: Callable, *args: object) -> object:
    t0 = time.perf_counter()
    out = fn(*args)
    seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - t0
    return out


def load_models(warmup: Path, resources: ExitStack, detector_name: str = DEFAULT_DETECTOR,
                embedder_name: str = DEFAULT_EMBEDDER) -> tuple[Models, dict[str, float]]:
    """Build every model (the pipeline's defaults unless named) and run it once on ``warmup``; returns the models
    and the one-off seconds.

    Detector, embedder and mesh load lazily, so their figure is construction + the first call on one
    photo (load plus one inference); the 3DMM file, the fitter's and the descriptor extractor's
    precomputation are pure one-offs.
    """
    seconds: dict[str, float] = {}
    rgb, _ = decode_image(warmup)
    t0 = time.perf_counter()
    detector = get_detector(detector_name)
    resources.callback(getattr(detector, "close", lambda: None))
    dets = detector.detect(rgb)
    # The cascade's later members (and their graphs) load only when earlier ones miss: load them all now.
    for member in getattr(detector, "members", {}).values():
        member.find(rgb)
    seconds[f"detector ({detector_name}, with dlib's 68 points)"] = time.perf_counter() - t0
    if not dets:
        raise FaceclusterError(f"warm-up photo {warmup} has no face; pick another")
    det = dets[0]
    if getattr(detector, "landmarker", None) is not None:
        detector.landmarker = TimedLandmarker(detector.landmarker)
    embedder = _timed(seconds, f"embedder ({embedder_name})", lambda: _warm_embedder(rgb, det, embedder_name))
    reconstructor = MeshReconstructor()
    resources.enter_context(reconstructor)
    _timed(seconds, "mesh (mediapipe FaceMesh)", reconstructor.reconstruct, rgb, det.points5, det.box)
    model = _timed(seconds, "3DMM file (ICT face model)", load_morphable_model)
    fitter = _timed(seconds, "3DMM landmark fitter", LandmarkFitter, model)
    extractor = _timed(seconds, "descriptor extractor (geodesic paths, regions)", DescriptorExtractor, model)
    extractor.compute(fitter.fit(det.points68))
    return Models(detector, embedder, reconstructor, fitter, extractor), seconds


def _warm_embedder(rgb: np.ndarray, det, name: str) -> Embedder:
    embedder = get_embedder(name)
    embedder.embed([EmbedInput.from_detection(rgb, det)])
    return embedder


def time_pass(models: Models, photos: list[Path]) -> dict:
    """One pass over ``photos``: seconds per stage, faces found, and faces a stage could not process."""
    seconds = dict.fromkeys(STAGES, 0.0)
    failed = dict.fromkeys(STAGES, 0)
    faces = 0
    waiting: list = []  # crops whose network pass waits for more faces, as extract() does (DEFER_FACES)

    def run_network() -> None:
        vectors = _timed(seconds, "embed", models.embedder.describe, waiting)
        failed["embed"] += int(np.isnan(vectors).any(axis=1).sum())
        waiting.clear()

    for path in photos:
        rgb, _ = _timed(seconds, "decode", decode_image, path)
        dets = _detect_then_landmarks(seconds, models.detector, rgb)
        faces += len(dets)
        if not dets:
            continue
        for det in dets:
            _timed(seconds, "standardise", standardise, rgb, det.points5, models.standardise_config)
        inputs = [EmbedInput.from_detection(rgb, det) for det in dets]
        waiting.extend(_timed(seconds, "embed", models.embedder.prepare, inputs))
        if len(waiting) >= DEFER_FACES:
            run_network()
        for det in dets:
            mesh = _timed(seconds, "mesh", models.reconstructor.reconstruct, rgb, det.points5, det.box)
            failed["mesh"] += mesh is None
            if det.points68 is None:
                failed["fit"] += 1
                continue
            fit = _timed(seconds, "fit", models.fitter.fit, det.points68)
            _timed(seconds, "descriptors", models.extractor.compute, fit)
    if waiting:
        run_network()
    return {"seconds": seconds, "photos": len(photos), "faces": faces, "failed": failed,
            "load_1min": os.getloadavg()[0]}


def measure_stages(photos: list[Path], repeats: int) -> dict:
    """Models loaded once, then ``repeats`` passes; per stage the ms/face of each pass and their median."""
    with ExitStack() as resources:
        models, load_seconds = load_models(photos[0], resources)
        passes = []
        for r in range(repeats):
            t0 = time.perf_counter()
            passes.append(time_pass(models, photos))
            log.info("stage pass %d/%d: %d faces in %.1f s", r + 1, repeats, passes[-1]["faces"],
                     time.perf_counter() - t0)
    faces = passes[0]["faces"]
    if faces == 0 or any(p["faces"] != faces for p in passes):
        raise FaceclusterError(f"faces found per pass differ or are zero: {[p['faces'] for p in passes]}")
    per_face = {s: [1000 * p["seconds"][s] / faces for p in passes] for s in STAGES}
    totals = [1000 * sum(p["seconds"].values()) / faces for p in passes]
    recon = [1000 * sum(p["seconds"][s] for s in RECON_STAGES) / faces for p in passes]
    median = {s: statistics.median(v) for s, v in per_face.items()}
    recon_ms = statistics.median(recon)
    return {
        "photos": [str(p) for p in photos], "n_photos": len(photos), "n_faces": faces, "repeats": repeats,
        "load_seconds": load_seconds, "failed": passes[0]["failed"], "load_1min": [p["load_1min"] for p in passes],
        "ms_per_face": {s: {"median": median[s], "runs": per_face[s]} for s in STAGES},
        "total_ms_per_face": {"median": statistics.median(totals), "runs": totals},
        "recon_3d": {"stages": list(RECON_STAGES), "median_ms_per_face": recon_ms, "runs": recon,
                     "method_reported_ms_per_image": METHOD_RECON_MS, "target_ms": RECON_TARGET_MS,
                     "speedup_vs_method": METHOD_RECON_MS / recon_ms, "meets_target": recon_ms <= RECON_TARGET_MS},
    }


@contextmanager
def _quiet(name: str) -> Iterator[None]:
    """Silence one chatty logger (extract's per-run summary) for the duration."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def measure_extract(photos: list[Path], repeats: int) -> dict:
    """``extract()`` on the photos: ``repeats`` runs, each into a new (cold) store, then ``repeats`` reruns
    into the last store (warm: every result is found and skipped). Cold runs build their own models."""
    cold, warm, reports = [], [], []
    with tempfile.TemporaryDirectory(prefix="fc-bench-") as tmp, _quiet("facecluster_widgets.pipeline.extract"):
        for r in range(repeats):
            store_dir = Path(tmp) / f"cold{r}"
            t0 = time.perf_counter()
            store = fc.extract(photos, store=store_dir, progress=False)
            cold.append(time.perf_counter() - t0)
            reports.append(store.read_json("run"))
            log.info("extract cold %d/%d: %.1f s", r + 1, repeats, cold[-1])
        for _ in range(repeats):
            t0 = time.perf_counter()
            fc.extract(photos, store=store_dir, progress=False)
            warm.append(time.perf_counter() - t0)
    faces = reports[-1]["n_faces"]
    steps = list(dict.fromkeys(k for rep in reports for k in rep["seconds"]))  # pipeline order
    timer = {k: statistics.median(rep["seconds"].get(k, 0.0) for rep in reports) for k in steps}
    cold_s, warm_s = statistics.median(cold), statistics.median(warm)
    return {"n_faces": faces, "stages": list(reports[-1]["stages"]), "cold_seconds": cold, "warm_seconds": warm,
            "cold_median_s": cold_s, "warm_median_s": warm_s, "cold_faces_per_s": faces / cold_s,
            "warm_faces_per_s": faces / warm_s, "cold_over_warm": cold_s / warm_s,
            "timer_median_s": timer}


def predicted_throughput(stage_costs: dict, extract_stages: list[str]) -> dict:
    """faces/s implied by the per-stage medians: for every stage, and for the stages extract() ran."""
    median = {s: v["median"] for s, v in stage_costs["ms_per_face"].items()}
    mapped = [s for name in extract_stages for s in EXTRACT_STAGE_MAP.get(name, ())]
    unmapped = [name for name in extract_stages if name not in EXTRACT_STAGE_MAP]
    all_ms = stage_costs["total_ms_per_face"]["median"]
    extract_ms = sum(median[s] for s in mapped)
    return {"all_stages_ms_per_face": all_ms, "all_stages_faces_per_s": 1000 / all_ms,
            "extract_stages": mapped, "extract_unmapped_stages": unmapped,
            "extract_stages_ms_per_face": extract_ms, "extract_stages_faces_per_s": 1000 / extract_ms}
