"""``extract()``: run the pipeline's stages over a face source, resumably, through the store.

Each stage's output is stored per image under a key made of the stage's name, version and parameters
(and its upstream stages' keys), so a rerun skips every image whose result exists, and a changed
parameter recomputes only that stage and those after it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .config import MAX_IMAGE_PIXELS, THUMBNAIL_SIZE, default_cache_dir
from .detect import Detection, get_detector
from .errors import ImageReadError
from .io.datasets import FaceSource, load_faces
from .io.images import decode_image, file_hash, thumbnail
from .io.table import FACE_COLUMNS, IMAGE_COLUMNS, face_id, make_frame
from .store import Stage, Store, open_store

log = logging.getLogger(__name__)

#: The detector used when none is named.
DEFAULT_DETECTOR = "whole"


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


def pipeline_stages(detector: str = DEFAULT_DETECTOR, detector_params: dict | None = None,
                    max_pixels: int = MAX_IMAGE_PIXELS) -> dict[str, Stage]:
    """The stages of a run, keyed by name; exposed so tests and tools can see what keys a run uses."""
    det = get_detector(detector, **(detector_params or {}))
    decode = Stage("decode", 1, {"thumbnail": THUMBNAIL_SIZE, "max_pixels": max_pixels})
    detect = Stage("detect", 1, {"backend": det.name, **det.params(), "max_pixels": max_pixels})
    return {"decode": decode, "detect": detect}


def extract(faces: str | os.PathLike | Sequence | FaceSource, store: str | os.PathLike | Store | None = None, *,
            detector: str = DEFAULT_DETECTOR, detector_params: dict | None = None,
            max_pixels: int = MAX_IMAGE_PIXELS, progress: bool = True) -> Store:
    """Run every stage over ``faces`` and return the store holding the results.

    Unreadable files and images without a face keep a row with the reason; the run goes on.
    """
    source = load_faces(faces)
    st = store if isinstance(store, Store) else open_store(store if store is not None else default_cache_dir())
    stages = pipeline_stages(detector, detector_params, max_pixels)
    det = get_detector(detector, **(detector_params or {}))
    timer = StageTimer()
    image_rows: list[dict] = []
    face_rows: list[dict] = []
    first_copy: dict[str, int] = {}
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
        copy = first_copy.get(image_id, -1) + 1
        first_copy[image_id] = copy
        info, detections = _run_image(st, stages, det, path, image_id, max_pixels, timer)
        if "error" in info:
            image_rows.append({**base, "image_id": image_id, "status": "unreadable", "reason": info["error"]})
            face_rows.append(_failure_row(base, image_id, "unreadable", info["error"], copy))
            continue
        image_rows.append({**base, "image_id": image_id, "status": "ok", "reason": None, **info,
                           "n_faces": len(detections)})
        if not detections:
            face_rows.append(_failure_row(base, image_id, "no_face", f"detector {det.name!r} found no face", copy))
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
              "stages": {name: s.key for name, s in stages.items()},
              "wall_seconds": round(time.perf_counter() - started, 3), **timer.to_dict()}
    st.write_json("run", report)
    log.info("extracted %d faces from %d images (%d unreadable, %d without a face) in %.1f s",
             report["n_faces"], report["n_images"], report["n_unreadable"], report["n_no_face"],
             report["wall_seconds"])
    return st


def _run_image(st: Store, stages: dict[str, Stage], det, path, image_id: str, max_pixels: int,
               timer: StageTimer) -> tuple[dict, list[Detection]]:
    """Load or compute the decode and detect results of one image; decodes at most once."""
    decoded = st.get(stages["decode"], image_id)
    found = st.get(stages["detect"], image_id)
    if decoded is not None and ("error" in decoded.meta or found is not None):
        timer.add("cached", 0.0)
        return decoded.meta, _detections_from(found) if found is not None else []
    t0 = time.perf_counter()
    try:
        rgb, info = decode_image(path, max_pixels)
    except ImageReadError as exc:
        st.put(stages["decode"], image_id, meta={"error": exc.reason})
        return {"error": exc.reason}, []
    timer.add("decode", time.perf_counter() - t0)
    meta = info.to_dict()
    if decoded is None:
        st.put(stages["decode"], image_id, {"thumbnail": thumbnail(rgb)}, meta)
    t0 = time.perf_counter()
    detections = det.detect(rgb)
    timer.add("detect", time.perf_counter() - t0)
    st.put(stages["detect"], image_id, _detections_to_arrays(detections),
           {"sources": [d.source for d in detections]})
    return meta, detections


def _detections_to_arrays(detections: list[Detection]) -> dict[str, np.ndarray]:
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


def _detections_from(result) -> list[Detection]:
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
    """The stored thumbnail of an image (from the last run's decode stage), or ``None``."""
    key = store.read_json("run")["stages"]["decode"]
    result = store.get(key, image_id)
    return None if result is None else result.arrays.get("thumbnail")
