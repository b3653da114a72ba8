"""``extract()``: run the pipeline's stages over a face source, resumably, through the store.

Each stage's output is stored per image under a key made of the stage's name, version and parameters
(and its upstream stages' keys), so a rerun skips every image whose result exists, and a changed
parameter recomputes only that stage and those after it. An image is decoded at most once per run,
and only when some stage still needs its pixels.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .config import MAX_IMAGE_PIXELS, THUMBNAIL_SIZE, default_cache_dir
from .detect import Detection, get_detector
from .errors import ImageReadError
from .io.datasets import FaceSource, load_faces
from .io.images import decode_image, file_hash, thumbnail
from .io.table import FACE_COLUMNS, IMAGE_COLUMNS, face_id, make_frame
from .store import Result, Stage, Store, open_store

log = logging.getLogger(__name__)

#: The detector used when none is named.
DEFAULT_DETECTOR = "whole"


@dataclass(frozen=True)
class PipelineConfig:
    """Every choice that changes what ``extract`` computes; each enters the store key of its stage."""

    detector: str = DEFAULT_DETECTOR
    detector_params: dict = field(default_factory=dict)
    max_pixels: int = MAX_IMAGE_PIXELS


@dataclass
class StageTimer:
    """Seconds spent and items processed per step, for the run report and benchmarks."""

    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, step: str, seconds: float, n: int = 1) -> None:
        self.seconds[step] = self.seconds.get(step, 0.0) + seconds
        self.counts[step] = self.counts.get(step, 0) + n

    def to_dict(self) -> dict:
        return {"seconds": {k: round(v, 4) for k, v in self.seconds.items()}, "counts": dict(self.counts)}


class ImageWork:
    """One image on its way through the stages: pixels decoded lazily, once; results by stage name."""

    def __init__(self, path: Path, image_id: str, max_pixels: int, timer: StageTimer) -> None:
        self.path, self.image_id, self.max_pixels, self.timer = path, image_id, max_pixels, timer
        self.results: dict[str, Result] = {}
        self._decoded: tuple[np.ndarray, dict] | None = None

    def decoded(self) -> tuple[np.ndarray, dict]:
        if self._decoded is None:
            t0 = time.perf_counter()
            rgb, info = decode_image(self.path, self.max_pixels)
            self.timer.add("decode", time.perf_counter() - t0)
            self._decoded = (rgb, info.to_dict())
        return self._decoded

    @property
    def rgb(self) -> np.ndarray:
        return self.decoded()[0]


@dataclass(frozen=True)
class StageRunner:
    """A stage as the engine runs it: its store identity and the function computing one image's result."""

    stage: Stage
    compute: Callable[[ImageWork], tuple[dict[str, np.ndarray], dict]]


def build_stages(config: PipelineConfig) -> list[StageRunner]:
    """The stages of a run, in order; exposed so tests and tools can see which keys a run uses."""
    detector = get_detector(config.detector, **config.detector_params)
    image = Stage("image", 1, {"thumbnail": THUMBNAIL_SIZE, "max_pixels": config.max_pixels})
    detect = Stage("detect", 1, {"backend": detector.name, **detector.params(), "max_pixels": config.max_pixels})

    def run_image(work: ImageWork) -> tuple[dict, dict]:
        rgb, info = work.decoded()
        return {"thumbnail": thumbnail(rgb)}, info

    def run_detect(work: ImageWork) -> tuple[dict, dict]:
        detections = detector.detect(work.rgb)
        return detections_to_arrays(detections), {"sources": [d.source for d in detections]}

    return [StageRunner(image, run_image), StageRunner(detect, run_detect)]


def extract(faces: str | os.PathLike | Sequence | FaceSource, store: str | os.PathLike | Store | None = None, *,
            config: PipelineConfig | None = None, progress: bool = True, **overrides: object) -> Store:
    """Run every stage over ``faces`` and return the store holding the results.

    ``overrides`` replace fields of ``config`` (e.g. ``detector="mediapipe"``). Unreadable files and
    images without a face keep a row with the reason; the run goes on.
    """
    config = _with_overrides(config or PipelineConfig(), overrides)
    source = load_faces(faces)
    st = store if isinstance(store, Store) else open_store(store if store is not None else default_cache_dir())
    runners = build_stages(config)
    timer = StageTimer()
    image_rows: list[dict] = []
    face_rows: list[dict] = []
    copies: dict[str, int] = {}
    labels = source.labels or (None,) * len(source)
    started = time.perf_counter()
    for path, label in tqdm(list(zip(source.paths, labels, strict=True)), desc="extract", unit="img",
                            disable=not progress):
        base = {"path": str(path), "label": label, "dataset": source.name}
        t0 = time.perf_counter()
        try:
            image_id = file_hash(path)
        except ImageReadError as exc:
            image_id = hashlib.blake2b(f"unreadable:{path}".encode(), digest_size=16).hexdigest()
            image_rows.append({**base, "image_id": image_id, "status": "unreadable", "reason": exc.reason})
            face_rows.append(_failure_row(base, image_id, "unreadable", exc.reason))
            continue
        timer.add("hash", time.perf_counter() - t0)
        copy = copies[image_id] = copies.get(image_id, -1) + 1
        work = ImageWork(Path(path), image_id, config.max_pixels, timer)
        error = _run_stages(st, runners, work, timer)
        if error is not None:
            image_rows.append({**base, "image_id": image_id, "status": "unreadable", "reason": error})
            face_rows.append(_failure_row(base, image_id, "unreadable", error, copy))
            continue
        detections = detections_from(work.results["detect"])
        image_rows.append({**base, "image_id": image_id, "status": "ok", "reason": None,
                           **work.results["image"].meta, "n_faces": len(detections)})
        if not detections:
            reason = f"detector {config.detector!r} found no face"
            face_rows.append(_failure_row(base, image_id, "no_face", reason, copy))
        for index, d in enumerate(detections):
            face_rows.append({**base, "face_id": face_id(image_id, index, copy), "image_id": image_id,
                              "face_index": index, "status": "ok", "x0": d.box[0], "y0": d.box[1],
                              "x1": d.box[2], "y1": d.box[3], "det_score": d.score, "detector": d.source,
                              "duplicate_of": face_id(image_id, index) if copy else None})
    images = make_frame(image_rows, IMAGE_COLUMNS)
    table = make_frame(face_rows, FACE_COLUMNS)
    st.write_table("images", images)
    st.write_table("faces", table)
    report = {"source": source.name, "n_images": len(images), "n_faces": int((table["status"] == "ok").sum()),
              "n_unreadable": int((images["status"] == "unreadable").sum()),
              "n_no_face": int((table["status"] == "no_face").sum()),
              "stages": {r.stage.name: r.stage.key for r in runners},
              "wall_seconds": round(time.perf_counter() - started, 3), **timer.to_dict()}
    st.write_json("run", report)
    log.info("extracted %d faces from %d images (%d unreadable, %d without a face) in %.1f s",
             report["n_faces"], report["n_images"], report["n_unreadable"], report["n_no_face"],
             report["wall_seconds"])
    return st


def _run_stages(st: Store, runners: list[StageRunner], work: ImageWork, timer: StageTimer) -> str | None:
    """Load or compute each stage for one image; returns the reason when the image cannot be read."""
    for runner in runners:
        stage = runner.stage
        result = st.get(stage, work.image_id)
        if result is None:
            t0 = time.perf_counter()
            try:
                arrays, meta = runner.compute(work)
            except ImageReadError as exc:
                # Remembered under the first stage's key: the same bytes will fail the same way next time.
                st.put(runners[0].stage, work.image_id, meta={"error": exc.reason})
                return exc.reason
            timer.add(stage.name, time.perf_counter() - t0)
            t0 = time.perf_counter()
            st.put(stage, work.image_id, arrays, meta)
            timer.add("store", time.perf_counter() - t0)
            result = Result(arrays={k: np.asarray(v) for k, v in arrays.items()}, meta=meta)
        else:
            timer.add("cached", 0.0)
        if "error" in result.meta:
            return result.meta["error"]
        work.results[stage.name] = result
    return None


def _with_overrides(config: PipelineConfig, overrides: dict) -> PipelineConfig:
    unknown = set(overrides) - set(PipelineConfig.__dataclass_fields__)
    if unknown:
        raise TypeError(f"extract() got unknown options {sorted(unknown)}; "
                        f"valid: {sorted(PipelineConfig.__dataclass_fields__)}")
    return PipelineConfig(**{**config.__dict__, **overrides})


def detections_to_arrays(detections: list[Detection]) -> dict[str, np.ndarray]:
    """Detections as fixed-shape arrays (NaN where a backend gives no landmarks), for the store."""
    n = len(detections)
    points5 = np.full((n, 5, 2), np.nan, np.float32)
    points68 = np.full((n, 68, 2), np.nan, np.float32)
    for i, d in enumerate(detections):
        if d.points5 is not None:
            points5[i] = d.points5
        if d.points68 is not None:
            points68[i] = d.points68
    return {"boxes": np.array([d.box for d in detections], np.float32).reshape(n, 4),
            "scores": np.array([d.score for d in detections], np.float32), "points5": points5,
            "points68": points68}


def detections_from(result: Result) -> list[Detection]:
    arrays, sources = result.arrays, result.meta.get("sources", [])
    out = []
    for i, box in enumerate(arrays["boxes"]):
        p5, p68 = arrays["points5"][i], arrays["points68"][i]
        out.append(Detection(box=tuple(float(v) for v in box), score=float(arrays["scores"][i]),
                             points5=None if np.isnan(p5).all() else p5,
                             points68=None if np.isnan(p68).all() else p68,
                             source=sources[i] if i < len(sources) else ""))
    return out


def _failure_row(base: dict, image_id: str, status: str, reason: str, copy: int = 0) -> dict:
    return {**base, "face_id": face_id(image_id, -1, copy), "image_id": image_id, "face_index": -1,
            "status": status, "reason": reason}


def thumbnail_of(store: Store, image_id: str) -> np.ndarray | None:
    """The stored thumbnail of an image (from the last run's image stage), or ``None``."""
    key = store.read_json("run")["stages"]["image"]
    result = store.get(key, image_id)
    return None if result is None else result.arrays.get("thumbnail")
