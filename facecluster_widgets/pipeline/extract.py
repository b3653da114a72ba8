"""``extract()``: run the pipeline's stages over a face source, resumably, through the store.

Each stage's output is stored per image under a key made of the stage's name, version and parameters
(and its upstream stages' keys), so a rerun skips every image whose result exists, and a changed
parameter recomputes only that stage and those after it. An image is decoded at most once per run,
and only when some stage still needs its pixels. At the end, per-face outputs are gathered into the
faces table (scalars) and into arrays aligned with it (embeddings, meshes, crops).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..config import default_cache_dir
from ..errors import ImageReadError, optional_import
from ..io.datasets import FaceSource, display_path, load_faces
from ..io.flags import flag_faces
from ..io.images import file_hash
from ..io.table import FACE_COLUMNS, IMAGE_COLUMNS, face_id, make_frame
from ..store import Result, Store, open_store
from .batching import Deferred, run_stages
from .stages import DEFAULT_DETECTOR, ImageWork, PipelineConfig, StageRunner, StageTimer, build_stages

log = logging.getLogger(__name__)


__all__ = ["DEFAULT_DETECTOR", "PipelineConfig", "extract", "thumbnail_of"]


def extract(faces: str | os.PathLike | Sequence | FaceSource, store: str | os.PathLike | Store | None = None, *,
            config: PipelineConfig | None = None, progress: bool = True, client: object | None = None,
            **overrides: object) -> Store:
    """Run every stage over ``faces`` and return the store holding the results.

    ``overrides`` replace fields of ``config`` (e.g. ``detector="mediapipe"``). Unreadable files and
    images without a face keep a row with the reason; the run goes on.

    ``client``: a ``dask.distributed.Client``; the stages then run on its workers, batches of images per task,
    writing into the same store (:mod:`.dask_runner`; the store and the photos must be at the same paths on every
    worker), and this process only gathers the results.
    """
    config = _with_overrides(config or PipelineConfig(), overrides)
    source = load_faces(faces)
    st = store if isinstance(store, Store) else open_store(store if store is not None else default_cache_dir())
    timer = StageTimer()
    image_rows: list[dict] = []
    face_rows: list[dict] = []
    face_results: list[dict[str, Result] | None] = []  # per table row: the image's results (None on failure)
    copies: dict[str, int] = {}
    labels = source.labels or (None,) * len(source)
    started = time.perf_counter()
    distributed = None
    if client is not None:
        optional_import("distributed", "extract(..., client=...) on a Dask cluster", "dask")
        from .dask_runner import distribute

        distributed = distribute(client, source.paths, st.root, config)
    with ExitStack() as resources:
        runners = build_stages(config, resources)
        deferred = Deferred(st, timer)
        for path, label in tqdm(list(zip(source.paths, labels, strict=True)), desc="extract", unit="img",
                                disable=not progress):
            base = {"path": display_path(path), "label": label, "dataset": source.name}
            t0 = time.perf_counter()
            try:
                image_id = file_hash(path)
            except ImageReadError as exc:
                image_id = hashlib.blake2b(f"unreadable:{base['path']}".encode(), digest_size=16).hexdigest()
                image_rows.append({**base, "image_id": image_id, "status": "unreadable", "reason": exc.reason})
                face_rows.append(_failure_row(base, image_id, "unreadable", exc.reason))
                face_results.append(None)
                continue
            timer.add("hash", time.perf_counter() - t0)
            copy = copies[image_id] = copies.get(image_id, -1) + 1
            work = ImageWork(Path(path), image_id, config.max_pixels, timer)
            error = run_stages(st, runners, work, timer, deferred)
            if error is not None:
                image_rows.append({**base, "image_id": image_id, "status": "unreadable", "reason": error})
                face_rows.append(_failure_row(base, image_id, "unreadable", error, copy))
                face_results.append(None)
                continue
            detections = work.detections
            image_rows.append({**base, "image_id": image_id, "status": "ok", "reason": None,
                               **work.results["image"].meta, "n_faces": len(detections)})
            if not detections:
                reason = f"detector {config.detector!r} found no face"
                face_rows.append(_failure_row(base, image_id, "no_face", reason, copy))
                face_results.append(None)
            main = primary_face(detections, work.results["image"].meta)
            for index, d in enumerate(detections):
                face_rows.append({**base, "face_id": face_id(image_id, index, copy), "image_id": image_id,
                                  "face_index": index, "status": "ok", "x0": d.box[0], "y0": d.box[1],
                                  "x1": d.box[2], "y1": d.box[3], "det_score": d.score, "detector": d.source,
                                  "duplicate_of": face_id(image_id, index) if copy else None,
                                  "primary": index == main, "label": label if index == main else None})
                face_results.append(work.results)  # deferred results arrive in this dict when flushed
        deferred.flush()
    for where, reason in source.skipped:  # folders the walk could not enter or looped back to: listed, not lost
        image_rows.append({"path": where, "label": None, "dataset": source.name, "status": "skipped",
                           "reason": reason,
                           "image_id": hashlib.blake2b(f"skipped:{where}".encode(), digest_size=16).hexdigest()})
    table = make_frame(face_rows, FACE_COLUMNS)
    images = make_frame(image_rows, IMAGE_COLUMNS)
    with st.lock():  # a concurrent extract into this store finishes before or after ours, never interleaved
        stale = st.remove_stale_temporaries()
        arrays = _gather(st, runners, table, face_results)
        flag_faces(table, {r["image_id"]: (r["width"], r["height"]) for r in image_rows if r["status"] == "ok"})
        st.write_table("images", images)
        st.write_table("faces", table)
        report = {"source": source.name, "n_images": int((images["status"] != "skipped").sum()),
                  "n_faces": int((table["status"] == "ok").sum()),
                  "n_unreadable": int((images["status"] == "unreadable").sum()),
                  "n_skipped": int((images["status"] == "skipped").sum()),
                  "n_no_face": int((table["status"] == "no_face").sum()),
                  "missing": {name: int((~np.isfinite(st.read_array(name))).reshape(len(table), -1).any(axis=1).sum())
                              for name in arrays if name.startswith("feature_")},
                  "stages": {r.stage.name: r.stage.key for r in runners},
                  "arrays": arrays,
                  "config": {"detector": config.detector, "embedder": config.embedder},
                  "stale_temporaries_removed": stale,
                  "wall_seconds": round(time.perf_counter() - started, 3), **timer.to_dict()}
        if distributed is not None:
            report["distributed"] = distributed
        st.write_json("run", report)
    log.info("extracted %d faces from %d images (%d unreadable, %d without a face) in %.1f s",
             report["n_faces"], report["n_images"], report["n_unreadable"], report["n_no_face"],
             report["wall_seconds"])
    if report["n_unreadable"] or report["n_skipped"]:
        log.warning("%d file(s) could not be read and %d folder(s) were skipped; store.errors lists each with "
                    "its reason", report["n_unreadable"], report["n_skipped"])
    return st


def primary_face(detections: Sequence, info: dict) -> int:
    """The face a labelled photo is *of*: the largest face whose centre lies in the middle half of the
    photo, else the largest. A folder named after a person labels that face only; other faces in the
    photo (bystanders in news photos: 6 in lfw10's 100) keep no label rather than a wrong one."""
    if not detections:
        return -1
    width, height = info.get("width") or 1, info.get("height") or 1

    def central(d) -> bool:
        cx, cy = (d.box[0] + d.box[2]) / 2 / width, (d.box[1] + d.box[3]) / 2 / height
        return 0.25 <= cx <= 0.75 and 0.25 <= cy <= 0.75

    order = sorted(range(len(detections)), key=lambda i: (central(detections[i]),
                                                          detections[i].width * detections[i].height))
    return order[-1]


def _gather(st: Store, runners: list[StageRunner], table, face_results: list) -> list[str]:
    """Per-face outputs into table columns and row-aligned arrays; NaN (or 0 for pixels) where missing.
    Returns the names of the arrays written: only these belong to this run's table."""
    written = []
    face_index = table["face_index"].to_numpy()
    for runner in runners:
        name = runner.stage.name
        for column, spec in runner.columns.items():
            key, sub = (spec, None) if isinstance(spec, str) else spec
            values = np.full(len(table), np.nan, np.float32)
            for row, results in enumerate(face_results):
                if results is not None:
                    value = results[name].arrays[key][face_index[row]]
                    values[row] = value if sub is None else value[sub]
            table[column] = values
        for array_name, key in runner.arrays.items():
            rows = [None if r is None else r[name].arrays[key][face_index[i]] for i, r in enumerate(face_results)]
            template = next((r for r in rows if r is not None), None)
            if template is None:
                continue
            fill = np.nan if np.issubdtype(template.dtype, np.floating) else 0
            out = np.full((len(rows), *template.shape), fill, template.dtype)
            for i, r in enumerate(rows):
                if r is not None:
                    out[i] = r
            st.write_array(array_name, out)
            written.append(array_name)
    return written


def _with_overrides(config: PipelineConfig, overrides: dict) -> PipelineConfig:
    unknown = set(overrides) - set(PipelineConfig.__dataclass_fields__)
    if unknown:
        raise TypeError(f"extract() got unknown options {sorted(unknown)}; "
                        f"valid: {sorted(PipelineConfig.__dataclass_fields__)}")
    return PipelineConfig(**{**config.__dict__, **overrides})


def _failure_row(base: dict, image_id: str, status: str, reason: str, copy: int = 0) -> dict:
    return {**base, "face_id": face_id(image_id, -1, copy), "image_id": image_id, "face_index": -1,
            "status": status, "reason": reason}


def thumbnail_of(store: Store, image_id: str) -> np.ndarray | None:
    """The stored thumbnail of an image (from the last run's image stage), or ``None``."""
    key = store.read_json("run")["stages"]["image"]
    result = store.get(key, image_id)
    return None if result is None else result.arrays.get("thumbnail")
