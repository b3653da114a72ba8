"""Stage work for one image, and the queue that lets the embedding network run over the faces of many photos at
once. Both the serial ``extract()`` and the Dask workers drive images through :func:`run_stages`."""

from __future__ import annotations

import time
from collections.abc import Sized

import numpy as np

from ..errors import ImageReadError
from ..store import Result, Store
from .stages import ImageWork, StageRunner, StageTimer

#: Faces whose embedding waits for others before the network runs (one batch of the default embedder): the torch
#: engine's time per face halves from one face to batches of 8-32 and stops falling there (benchmarks/embed_batch.py).
DEFER_FACES = 32


class Deferred:
    """Stage work waiting to be finished for several images at once (:attr:`StageRunner.finish`): the
    embedding network runs over the faces of many photos together, while each photo's pixels are released
    as soon as its crops are made. Once :data:`DEFER_FACES` faces wait they are finished and stored; the caller
    flushes the rest at the end."""

    def __init__(self, st: Store, timer: StageTimer, max_faces: int | None = None) -> None:
        self.st, self.timer = st, timer
        self.max_faces = DEFER_FACES if max_faces is None else max_faces
        self.waiting: list[tuple[StageRunner, ImageWork, Sized]] = []
        self.faces = 0

    def add(self, runner: StageRunner, work: ImageWork, prepared: Sized) -> None:
        """Queue one image's prepared part (one item per face); finish the queue when it holds enough faces."""
        self.waiting.append((runner, work, prepared))
        self.faces += len(prepared)
        if self.faces >= self.max_faces:
            self.flush()

    def flush(self) -> None:
        """Finish every waiting item, store each image's result and hand it to its work."""
        runners = {id(runner): runner for runner, _, _ in self.waiting}
        for key, runner in runners.items():
            items = [(work, prepared) for r, work, prepared in self.waiting if id(r) == key]
            t0 = time.perf_counter()
            outputs = runner.finish([prepared for _, prepared in items])
            self.timer.add(runner.stage.name, time.perf_counter() - t0, n=0)
            for (work, _), (arrays, meta) in zip(items, outputs, strict=True):
                t0 = time.perf_counter()
                self.st.put(runner.stage, work.image_id, arrays, meta)
                self.timer.add("store", time.perf_counter() - t0)
                work.results[runner.stage.name] = Result(arrays={k: np.asarray(v) for k, v in arrays.items()},
                                                         meta=meta)
        self.waiting, self.faces = [], 0


def run_stages(st: Store, runners: list[StageRunner], work: ImageWork, timer: StageTimer,
                deferred: Deferred | None = None) -> str | None:
    """Load or compute each stage for one image; returns the reason when the image cannot be read.

    With ``deferred``, a stage that can finish later (``runner.prepare``) only prepares here: its result reaches
    ``work.results`` and the store when ``deferred`` is flushed.
    """
    for runner in runners:
        stage = runner.stage
        result = st.get(stage, work.image_id)
        if result is None:
            t0 = time.perf_counter()
            try:
                if deferred is not None and runner.prepare is not None:
                    deferred.add(runner, work, runner.prepare(work))
                    timer.add(stage.name, time.perf_counter() - t0)
                    continue
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
