"""The faces a notebook looks at: the usable rows of a store's faces table, their feature blocks, and the per-face
lookups the views need (photo, landmarks, crops, thumbnails, 3DMM coefficients).

Why a class of its own: the explorer, the stepper, the sweep and the export all need "face number i" to mean the
same face, and none of them should know how the store lays out its arrays. Rows here are the faces with status
"ok" (failures are listed by ``Store.errors`` and never clustered), numbered 0..n-1; ``store_rows`` maps them back
to the rows of the store's table, with which the store's arrays are aligned.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from ..detect import Detection
from ..errors import FaceclusterError, StoreError
from ..features import Features
from ..io.images import read_image
from ..io.table import photo_groups
from ..pipeline.stages import detections_from
from ..standardize import StandardiseConfig
from ..store import Store, open_store

log = logging.getLogger(__name__)


class FaceCollection:
    """Usable faces with aligned features; build with :meth:`from_store` or :meth:`from_features`."""

    def __init__(self, table: pd.DataFrame, features: Features, store: Store | None = None,
                 store_rows: np.ndarray | None = None) -> None:
        if len(table) != len(features):
            raise FaceclusterError(f"{len(table)} table rows but {len(features)} feature rows")
        self.table = table.reset_index(drop=True)
        self.features = features
        self.store = store
        self.store_rows = np.arange(len(table)) if store_rows is None else np.asarray(store_rows)

    # -- construction --------------------------------------------------------------------------
    @classmethod
    def from_store(cls, store: Store | str | os.PathLike) -> FaceCollection:
        """The faces of an extracted store whose status is "ok"."""
        st = store if isinstance(store, Store) else open_store(store, create=False)
        table = st.table
        ok = (table["status"] == "ok").to_numpy()
        if not ok.any():
            raise StoreError(f"{st.root}: no usable face in this store (see store.errors)")
        return cls(table.loc[ok], st.features.subset(ok), st, np.flatnonzero(ok))

    @classmethod
    def from_features(cls, features: Features | Mapping[str, np.ndarray], labels: Sequence | None = None,
                      paths: Sequence[str] | None = None) -> FaceCollection:
        """Faces known only by their feature blocks (synthetic data, benchmarks): no photos, no store."""
        if not isinstance(features, Features):
            blocks = {k: np.asarray(v) for k, v in features.items()}
            n = next(iter(blocks.values())).shape[0]
            features = Features(face_ids=np.array([f"face{i:06d}" for i in range(n)]), blocks=blocks)
        n = len(features)
        table = pd.DataFrame({
            "face_id": pd.array(features.face_ids.astype(str), dtype="string"),
            "path": pd.array(list(paths) if paths is not None else [f"face{i:06d}" for i in range(n)], dtype="string"),
            "face_index": np.zeros(n, np.int32),
            "label": pd.array([None if v is None else str(v) for v in labels] if labels is not None else [None] * n,
                              dtype="string"),
            "dataset": pd.array(["features"] * n, dtype="string"),
        })
        return cls(table, features)

    # -- what every view reads -------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.table)

    @property
    def face_ids(self) -> np.ndarray:
        return self.table["face_id"].to_numpy(dtype=str)

    @cached_property
    def labels(self) -> np.ndarray | None:
        """True identity per face (object array, ``None`` where unknown), or ``None`` when no face has one."""
        if "label" not in self.table or not self.table["label"].notna().any():
            return None
        return np.array([None if pd.isna(v) else str(v) for v in self.table["label"]], dtype=object)

    @cached_property
    def groups(self) -> np.ndarray:
        """One code per photo file: faces of one photo are different people (the cannot-link constraint)."""
        return photo_groups(self.table) if "path" in self.table else np.arange(len(self))

    @cached_property
    def file_names(self) -> list[str]:
        """A short display name per face: the file name, plus ``#i`` for the i-th face of a group photo."""
        names = []
        for path, index, n in zip(self.table["path"].astype(str), self.table["face_index"],
                                  self.table.groupby("path")["path"].transform("size"), strict=True):
            name = Path(path).name
            names.append(f"{name} #{int(index) + 1}" if n > 1 else name)
        return names

    @cached_property
    def relative_names(self) -> list[str]:
        """Each face's path relative to the collection's common folder ("person_042/frontal/10.jpg", not an
        ambiguous "10.jpg"), plus ``#i`` for the i-th face of a group photo."""
        if "path" not in self.table or not len(self.table):
            return list(self.file_names)
        paths = [os.path.abspath(str(p)) for p in self.table["path"]]
        try:
            root = os.path.commonpath(paths)
        except ValueError:  # paths on different drives
            return list(self.file_names)
        if root in paths:  # a single photo: its own folder is the root
            root = os.path.dirname(root)
        multi = self.table.groupby("path")["path"].transform("size").to_numpy()
        return [Path(os.path.relpath(p, root)).as_posix() + (f" #{int(i) + 1}" if n > 1 else "")
                for p, i, n in zip(paths, self.table["face_index"], multi, strict=True)]

    @cached_property
    def standardise_config(self) -> StandardiseConfig:
        """The standardisation settings this store's faces were made with (its run's ``standardise`` stage), so a
        view recomputing the steps shows what the pipeline did; the defaults without a store."""
        key = self._run.get("stages", {}).get("standardise")
        if self.store is None or key is None:
            return StandardiseConfig()
        path = self.store.root / "stages" / f"{key}.json"
        try:
            params = dict(json.loads(path.read_text())["params"])
            params["tile_grid"] = tuple(params.get("tile_grid", StandardiseConfig.tile_grid))
            return StandardiseConfig(**params)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FaceclusterError(f"{path}: cannot read the standardisation settings of this store ({exc})") from exc

    def column(self, name: str) -> np.ndarray | None:
        """A table column as an array, or ``None`` when the table has no such column (e.g. yaw without a mesh)."""
        return self.table[name].to_numpy() if name in self.table else None

    # -- per-face pixels and geometry (stores only) ----------------------------------------------
    def _array(self, name: str) -> np.ndarray | None:
        if self.store is None or name not in self._run_arrays:
            return None
        try:
            return self.store.read_array(name, mmap=True)
        except StoreError as exc:
            log.warning("%s", exc)
            return None

    @cached_property
    def _run(self) -> dict:
        if self.store is None:
            return {}
        try:
            return self.store.read_json("run")
        except StoreError:
            return {}

    @cached_property
    def _run_arrays(self) -> set[str]:
        return set(self._run.get("arrays", []))

    def _row_of(self, row: int, name: str) -> np.ndarray | None:
        array = self._array(name)
        if array is None:
            return None
        return np.asarray(array[self.store_rows[row]])

    def crop(self, row: int) -> np.ndarray | None:
        """The aligned colour crop (112x112 RGB) the embedder saw, when the store kept it."""
        crop = self._row_of(row, "face_crop")
        return None if crop is None or not crop.any() else crop

    def standardised(self, row: int) -> np.ndarray | None:
        """The final standardised face (grey, aligned, CLAHE) when the store kept it."""
        image = self._row_of(row, "face_standardised")
        return None if image is None or not image.any() else image

    def alpha(self, row: int) -> np.ndarray | None:
        """The 3DMM identity coefficients of the face, or ``None`` (no fit, or no 3D stage in this store)."""
        alpha = self._row_of(row, "fit_alpha")
        return None if alpha is None or not np.isfinite(alpha).all() else alpha.astype(np.float64)

    def mesh_vertices(self, row: int) -> np.ndarray | None:
        """mediapipe's 468 vertices in photo pixels (x right, y down, z away), or ``None``."""
        vertices = self._row_of(row, "mesh_vertices")
        return None if vertices is None or not np.isfinite(vertices).all() else vertices

    def photo(self, row: int) -> np.ndarray:
        """The whole photo, decoded again from its file (raises ``ImageReadError`` naming the file)."""
        return read_image(self.table["path"].iloc[row])

    def thumbnail(self, row: int) -> np.ndarray | None:
        """A small picture of the face: the stored crop, else the photo's stored thumbnail, else ``None``."""
        crop = self.crop(row)
        if crop is not None:
            return crop
        image_thumb = self._stage_result("image", row)
        if image_thumb is not None and "thumbnail" in image_thumb.arrays:
            return image_thumb.arrays["thumbnail"]
        return None

    def detection(self, row: int) -> Detection | None:
        """The face's detection (box, 5 and 68 landmarks in photo pixels) from the store's detect stage."""
        result = self._stage_result("detect", row)
        if result is None:
            return None
        index = int(self.table["face_index"].iloc[row])
        found = detections_from(result)
        return found[index] if 0 <= index < len(found) else None

    def _stage_result(self, stage: str, row: int):
        key = self._run.get("stages", {}).get(stage)
        if self.store is None or key is None or "image_id" not in self.table:
            return None
        return self.store.get(key, str(self.table["image_id"].iloc[row]))
