"""facecluster_widgets: group unlabelled face photos by identity with a hybrid 2D+3D method, and see why.

The public API (re-exported names only)::

    faces = load_faces("photos/")            # a FaceSource: paths (+ labels when folders name people)
    store = extract(faces, store="cache/")   # every stage, resumable; returns the Store
    store = open_store("cache/")             # store.table (faces), store.images, store.features
"""

from .errors import DatasetError, FaceclusterError, ImageReadError, ModelMissingError, StoreError
from .features import Features
from .io.datasets import FaceSource, default_data_dir, load_faces
from .io.images import read_image
from .pipeline.extract import extract
from .store import Store, open_store

__version__ = "0.1.0"

__all__ = [
    "DatasetError", "FaceSource", "FaceclusterError", "Features", "ImageReadError", "ModelMissingError", "Store",
    "StoreError", "default_data_dir", "extract", "load_faces", "open_store", "read_image",
]
