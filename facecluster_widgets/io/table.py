"""The faces table: one row per detected face, plus one row per image that gave none (with a reason).

Why rows for failures: counts always add up (images in = rows out, per image), and a user can see
what happened to every file. Arrays (embeddings, meshes, descriptors) live beside the table in the
store, aligned by row, never in object columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Column name → pandas dtype. Later stages add their own columns (pose, residuals...) after these.
FACE_COLUMNS: dict[str, str] = {
    "face_id": "string",       # stable: content hash of the image + face index (+ "~N" for duplicate files)
    "image_id": "string",      # BLAKE2b-128 of the file's bytes
    "path": "string",
    "face_index": "int32",     # 0.. within the image; -1 on a row that records an image without a face
    "label": "string",         # identity when the source names it (the photo's primary face only), else <NA>
    "primary": "boolean",      # the face a labelled photo is of (largest central face), see pipeline.primary_face
    "dataset": "string",
    "status": "string",        # "ok", "no_face" or "unreadable"
    "reason": "string",        # why a row is not "ok"
    "x0": "float32", "y0": "float32", "x1": "float32", "y1": "float32",
    "det_score": "float32",
    "detector": "string",      # the backend (or cascade member) that found the face
    "duplicate_of": "string",  # face_id of the first file with identical bytes, else <NA>
}

#: Per-image columns (the images table).
IMAGE_COLUMNS: dict[str, str] = {
    "image_id": "string", "path": "string", "label": "string", "dataset": "string",
    "status": "string", "reason": "string", "format": "string", "mode": "string",
    "width": "Int32", "height": "Int32", "frames": "Int32", "exif_orientation": "Int32", "n_faces": "Int32",
}


def face_id(image_id: str, face_index: int, copy: int = 0) -> str:
    """Stable across runs and file moves: derived from content, not path. ``copy`` numbers duplicate files."""
    base = f"{image_id[:16]}-{face_index}" if face_index >= 0 else f"{image_id[:16]}-none"
    return base if copy == 0 else f"{base}~{copy}"


def make_frame(rows: list[dict], columns: dict[str, str]) -> pd.DataFrame:
    """A DataFrame with exactly ``columns`` in order and their dtypes, whatever subset each row gives."""
    frame = pd.DataFrame(rows, columns=list(columns)) if rows else pd.DataFrame(columns=list(columns))
    for name, dtype in columns.items():
        if dtype.startswith("float"):
            frame[name] = pd.to_numeric(frame[name], errors="coerce").astype(dtype)
        elif dtype == "boolean":
            frame[name] = frame[name].astype("boolean")
        elif dtype == "int32":
            frame[name] = frame[name].fillna(-1).astype(np.int32)
        else:
            frame[name] = frame[name].astype(dtype)
    return frame


def photo_groups(faces: pd.DataFrame) -> np.ndarray:
    """One code per photo *file*, for the cannot-link constraint (faces of one photo are different people).

    Grouped by path, not by ``image_id``: two files with identical bytes (Yale ships several) hold the same face
    twice, which must be free to share a cluster; grouping them by content hash forbade exactly that.
    """
    return pd.factorize(faces["path"].astype("string"))[0].astype(np.int64)
