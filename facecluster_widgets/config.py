"""Where the toolkit finds data and which files it reads: environment variables, the demo dataset, image limits.

The method's own defaults sit beside the code they tune, each with the reason for its value, because that
is where a reader of the method looks: clustering (eps, MinPts, λ, restarts) in ``cluster/hybrid.py`` and
``cluster/kmeans.py``, the sparse path's sizes in ``cluster/graph.py`` and ``cluster/knn.py``, detector and
embedder in ``pipeline/stages.py`` and ``embed/__init__.py``, standardisation in ``standardize.py``
(``StandardiseConfig``), the 3D fit in ``recon/morphable.py`` (``FitSettings``), refinement in
``recon/refine.py`` (``RefineSettings``).

Nothing here is mutable state: functions read the environment when called, so tests and users can
point the toolkit elsewhere without restarting the kernel.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the folder of the default (demo) dataset.
ENV_DATA = "FACECLUSTER_DATA"
#: Environment variable naming the folder that holds the named datasets (lfw10, orl, yale, cfp100).
ENV_DATASETS = "FACECLUSTER_DATASETS"
#: Environment variable naming the default cache (store) directory.
ENV_CACHE = "FACECLUSTER_CACHE"

#: The dataset the demos open when nothing else is named: small (100 photos, 10 people) and in colour.
DEFAULT_DATASET_NAME = "lfw10"

#: File name extensions read as images (lower case). Everything else in a folder is ignored.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".pgm", ".ppm", ".pbm", ".pnm", ".gif", ".bmp", ".dib",
     ".webp", ".tif", ".tiff"}
)

#: Largest image accepted, in pixels. 80 MP covers any camera photo (a 24 MP DSLR frame is 6000x4000)
#: while refusing decompression bombs: a 20,000 x 20,000 PNG would need 1.2 GB of RAM once decoded.
MAX_IMAGE_PIXELS = 80_000_000

#: Longest side of the thumbnail kept per image for galleries and hover panels.
THUMBNAIL_SIZE = 128


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def shared_datasets_candidates() -> list[Path]:
    """Where the shared datasets folder may be: beside the current directory or beside the checkout."""
    seen: list[Path] = []
    for base in (Path.cwd(), _repo_root()):
        for up in (base, *base.parents[:2]):
            candidate = (up.parent / "shared" / "datasets").resolve()
            if candidate not in seen:
                seen.append(candidate)
    return seen


def datasets_root() -> Path | None:
    """The folder holding named datasets: ``$FACECLUSTER_DATASETS``, else ``../shared/datasets``."""
    env = os.environ.get(ENV_DATASETS)
    if env:
        return Path(env).expanduser()
    for candidate in shared_datasets_candidates():
        if candidate.is_dir():
            return candidate
    return None


def default_cache_dir() -> Path:
    """The store used when none is named: ``$FACECLUSTER_CACHE``, else ``./.facecluster-cache``."""
    return Path(os.environ.get(ENV_CACHE, ".facecluster-cache")).expanduser()
