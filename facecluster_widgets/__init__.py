"""facecluster_widgets: group unlabelled face photos by identity with a hybrid 2D+3D method, and see why.

The public API (re-exported names only)::

    faces = load_faces("photos/")                     # a FaceSource: paths (+ labels when folders name people)
    store = extract(faces, store="cache/")            # every stage, resumable; returns the Store
    store = open_store("cache/")                      # store.table (faces), store.images, store.features
    model = HybridClustering().fit(store.features)    # the method alone: model.labels_ (-1: in no cluster)
    report = evaluate(store)                          # the method and its peers scored against folder labels
    session = ClusterSession.from_store(store)        # cluster, correct, score: what the explorer shows
    ClusterExplorer(store)                            # the notebook widgets (extra "widgets"), imported on first use

The widgets load lazily (PEP 562) so the core imports without ipywidgets, plotly and k3d.
"""

from __future__ import annotations

import importlib

from .cluster import HybridClustering
from .errors import (
    DatasetError,
    FaceclusterError,
    ImageReadError,
    ModelMissingError,
    OptionalDependencyError,
    StoreError,
    missing_extra,
)
from .evaluation.evaluate import Evaluation, evaluate
from .features import Features
from .io.datasets import FaceSource, default_data_dir, load_faces
from .io.images import read_image
from .pipeline.extract import extract
from .review.edits import EditLog
from .review.session import ClusterSession
from .store import Store, open_store

__version__ = "0.1.0"

#: Names served by the notebook widgets, imported on first access.
WIDGETS = ("ClusterExplorer", "MeshViewer", "ParameterSweep", "PipelineStepper")

__all__ = [
    "ClusterSession", "DatasetError", "EditLog", "Evaluation", "FaceSource", "FaceclusterError", "Features",
    "HybridClustering", "ImageReadError", "ModelMissingError", "OptionalDependencyError", "Store", "StoreError",
    "default_data_dir", "evaluate", "extract", "load_faces", "open_store", "read_image", *WIDGETS,
]


def __getattr__(name: str) -> object:
    if name not in WIDGETS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        widgets = importlib.import_module(".widgets", __name__)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] == __name__:
            raise  # a broken install of this package, not a missing extra
        raise missing_extra(f"{__name__}.{name}", "widgets", exc) from exc
    value = getattr(widgets, name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(WIDGETS))
