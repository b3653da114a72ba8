"""``extract(..., client=...)``: the per-image stages mapped over a dask.distributed cluster.

Why this shape: every stage result is a per-image entry of the content-addressed store, written atomically and
identical whoever computes it. So the workers only *fill the store*: each task runs the pipeline's own stage loop
(:func:`~.batching.run_stages`) over a batch of images and writes the entries; the
driver then runs the ordinary serial ``extract`` pass, which finds every result in the store and only gathers
them into the faces table and arrays. The features are the serial run's by construction (same code, same store
keys), and a batch that fails on a worker is simply computed by the driver.

Scheduling, retries and placement are Dask's (``client.map`` over batches; no scheduler of our own). Each
worker builds the models once (a :class:`~distributed.diagnostics.plugin.WorkerPlugin` keeps them per worker
process and closes them at teardown). The store folder and the photos must be readable and writable at the same
paths on every worker: one machine, or a shared filesystem.

One environment fix, measured: Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, and setting any
glibc malloc threshold by hand switches off glibc's *dynamic* mmap threshold, so every buffer above 128 KiB is
mmap'ed and unmapped again. Torch's forward pass then spends its time in page faults: the dlib ResNet ran
several times slower in a worker than in a plain process (``MALLOC_TRIM_THRESHOLD_=65536 python ...``
reproduces it; figures in benchmarks/README.md). The plugin sets the mmap threshold back to glibc's own
ceiling, 32 MiB, when the worker's environment fixed one malloc threshold and not this one
(:func:`tune_malloc`); Dask's trimming stays.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import sys
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path

from distributed import Client, WorkerPlugin, get_worker

from ..errors import FaceclusterError, ImageReadError
from ..io.images import file_hash
from ..store import open_store
from .batching import Deferred, run_stages
from .stages import ImageWork, PipelineConfig, StageRunner, StageTimer, build_stages

log = logging.getLogger(__name__)

#: Name under which the model-holding plugin is registered on the workers.
PLUGIN_NAME = "facecluster-stages"
#: Tasks per worker thread: several, so a slow batch (big photos, many faces) does not idle the others.
TASKS_PER_THREAD = 4
#: At most this many images per task: the driver sees progress and a lost worker costs little.
MAX_BATCH = 32
#: glibc's largest dynamic mmap threshold on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX); mallopt's M_MMAP_THRESHOLD.
MMAP_THRESHOLD = 32 << 20
_M_MMAP_THRESHOLD = -3


def tune_malloc(environ: dict | None = None) -> bool:
    """Give glibc back a large mmap threshold when the environment pinned another malloc threshold; True if set.

    See the module doc: with ``MALLOC_TRIM_THRESHOLD_`` set (Dask's nanny does), the mmap threshold stays at
    128 KiB and large temporary buffers are mapped and unmapped on every use.
    """
    environ = os.environ if environ is None else environ
    pinned = any(key in environ for key in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"))
    if not sys.platform.startswith("linux") or not pinned or "MALLOC_MMAP_THRESHOLD_" in environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (musl): nothing to tune
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))


class StagesPlugin(WorkerPlugin):
    """Per worker process: the pipeline's stages for each configuration used, built on first use."""

    name = PLUGIN_NAME
    idempotent = True

    def __init__(self) -> None:
        self._built: dict[str, tuple[ExitStack, list[StageRunner]]] = {}
        self.malloc_tuned = False

    def setup(self, worker: object) -> None:  # WorkerPlugin interface
        self._built = {}
        self.malloc_tuned = tune_malloc()

    def teardown(self, worker: object) -> None:  # WorkerPlugin interface
        for resources, _ in self._built.values():
            resources.close()
        self._built = {}

    def runners(self, config: PipelineConfig) -> list[StageRunner]:
        key = repr(config)
        if key not in self._built:
            resources = ExitStack()
            self._built[key] = (resources, build_stages(config, resources))
        return self._built[key][1]


def _plugin() -> StagesPlugin:
    return get_worker().plugins[PLUGIN_NAME]


def compute_batch(paths: Sequence[str], store_root: str, config: PipelineConfig) -> dict:
    """(On a worker) every stage of every image in ``paths`` into the store at ``store_root``; the step timer."""
    runners = _plugin().runners(config)
    store = open_store(store_root, create=False)
    timer = StageTimer()
    deferred = Deferred(store, timer)
    for path in paths:
        t0 = time.perf_counter()
        try:
            image_id = file_hash(path)
        except ImageReadError:
            continue  # the driver records the reason
        timer.add("hash", time.perf_counter() - t0)
        run_stages(store, runners, ImageWork(Path(path), image_id, config.max_pixels, timer), timer, deferred)
    deferred.flush()
    return timer.to_dict()


def batches(paths: Sequence, n_threads: int) -> list[list[str]]:
    """``paths`` cut into about ``TASKS_PER_THREAD`` batches per worker thread, each at most :data:`MAX_BATCH`."""
    if not paths:
        return []
    size = max(1, min(MAX_BATCH, math.ceil(len(paths) / max(1, n_threads * TASKS_PER_THREAD))))
    return [[str(p) for p in paths[i:i + size]] for i in range(0, len(paths), size)]


def distribute(client: object, paths: Sequence, store_root: Path, config: PipelineConfig) -> dict:
    """Fill the store at ``store_root`` with every stage of ``paths`` on the cluster behind ``client``.

    Returns what the run report keeps: workers, batches, wall seconds, the workers' summed step seconds, and
    the batches that failed (their images are left to the driver).
    """
    if not isinstance(client, Client):
        raise FaceclusterError(f"client must be a dask.distributed Client, got {type(client).__name__}")
    started = time.perf_counter()
    client.register_plugin(StagesPlugin(), name=PLUGIN_NAME)
    threads = sum(client.nthreads().values())
    if threads == 0:
        raise FaceclusterError(f"the Dask cluster at {client.scheduler.address} has no workers")
    work = batches(paths, threads)
    futures = client.map(compute_batch, work, store_root=str(store_root), config=config, pure=False)
    seconds: dict[str, float] = {}
    failed = []
    for future, batch in zip(futures, work, strict=True):
        try:
            timer = future.result()
        except Exception as exc:  # any worker failure: the driver computes that batch itself
            log.warning("a Dask batch of %d images failed on its worker (%s); the driver will compute it",
                        len(batch), exc)
            failed.append({"first": batch[0], "images": len(batch), "error": f"{type(exc).__name__}: {exc}"})
            continue
        for step, value in timer["seconds"].items():
            seconds[step] = seconds.get(step, 0.0) + value
    return {"workers": len(client.nthreads()), "threads": threads, "batches": len(work),
            "wall_seconds": round(time.perf_counter() - started, 3),
            "worker_seconds": {k: round(v, 3) for k, v in seconds.items()}, "failed_batches": failed}
