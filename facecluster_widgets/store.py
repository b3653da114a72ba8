"""The feature store: every stage's output per image, keyed by content hash, stage and parameters.

Layout under the store's root::

    STORE.json                  format marker and version
    stages/<stage-key>.json     what each stage key means (name, version, parameters, upstream keys)
    objects/<stage-key>/<ab>/<image-id>.npz   one image's output of one stage
    tables/<name>.parquet       the faces and images tables of the last extraction
    arrays/<name>.npy           feature blocks aligned row by row with the faces table

Why this shape: re-running does only new work (a result exists or not, per image and stage key);
a changed parameter yields a new stage key, so only that stage and those downstream recompute.
Every write goes to a temporary file in the same folder and is renamed into place, so a reader
never sees half a file even if the writer is killed. Nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
from filelock import FileLock

from .errors import StoreError
from .features import Features

log = logging.getLogger(__name__)

FORMAT = "facecluster-store"
FORMAT_VERSION = 1
_META_KEY = "__meta__"
#: Largest store entry read (unpacked): one image's largest result, the crops of a 100-face group photo, is ~4 MB.
MAX_ENTRY_BYTES = 1 << 30
#: A temporary file (``atomic_write``) older than this was left by a killed writer: a live one exists for
#: milliseconds (one result), so an hour leaves any running writer alone, even on a slow shared filesystem.
STALE_TEMPORARY_SECONDS = 3600.0


@dataclass(frozen=True)
class Stage:
    """A step of the pipeline as the store sees it: its key changes when anything it depends on does."""

    name: str
    version: int
    params: Mapping[str, object] = field(default_factory=dict)
    upstream: tuple[Stage, ...] = ()

    @cached_property
    def key(self) -> str:
        spec = json.dumps(self.spec(), sort_keys=True, default=str)
        return f"{self.name}-v{self.version}-{hashlib.sha1(spec.encode()).hexdigest()[:10]}"

    def spec(self) -> dict:
        return {"name": self.name, "version": self.version, "params": dict(self.params),
                "upstream": [s.key for s in self.upstream]}


@dataclass(frozen=True)
class Result:
    """One image's output of one stage: arrays plus a JSON-able ``meta`` dict."""

    arrays: dict[str, np.ndarray]
    meta: dict


class Store:
    """A folder of stage results; see the module docstring for the layout and guarantees."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- per-image stage results ------------------------------------------------------------------
    def _object_path(self, stage_key: str, image_id: str) -> Path:
        if not image_id or any(c not in "0123456789abcdef" for c in image_id):
            raise StoreError(f"{image_id!r} is not an image id (hex content hash)")
        return self.root / "objects" / stage_key / image_id[:2] / f"{image_id}.npz"

    def has(self, stage: Stage | str, image_id: str) -> bool:
        return self._object_path(_key(stage), image_id).is_file()

    def get(self, stage: Stage | str, image_id: str) -> Result | None:
        """The stored result, or ``None`` when absent or unreadable (it will then be recomputed)."""
        path = self._object_path(_key(stage), image_id)
        if not path.is_file():
            return None
        try:
            return read_npz(path)
        except StoreError as exc:
            log.warning("ignoring damaged store entry (it will be recomputed): %s", exc)
            return None

    def put(self, stage: Stage, image_id: str, arrays: Mapping[str, np.ndarray] | None = None,
            meta: Mapping | None = None) -> None:
        self.register(stage)
        path = self._object_path(stage.key, image_id)
        _ensure_dir(path.parent)
        payload = {k: np.asarray(v) for k, v in (arrays or {}).items()}
        if _META_KEY in payload:
            raise StoreError(f"{_META_KEY} is reserved")
        payload[_META_KEY] = np.array(json.dumps(dict(meta or {}), default=_json_default))
        for name, value in payload.items():
            if value.dtype == object:
                raise StoreError(f"stage {stage.name}: array {name!r} has dtype object (cannot store without pickle)")
        atomic_write(path, lambda fh: np.savez(fh, **payload))

    def register(self, stage: Stage) -> None:
        """Record what a stage key means, once, so the store explains itself."""
        path = self.root / "stages" / f"{stage.key}.json"
        if not path.exists():
            _ensure_dir(path.parent)
            atomic_write(path, lambda fh: fh.write(json.dumps(stage.spec(), indent=2, default=str).encode()))

    def adopt(self, other: Store) -> int:
        """Take every stage result of ``other`` that this store lacks, so an extraction here reuses it; returns how
        many. Hard links where both share a file system (results are never changed in place: writes rename a new
        file over the old), else atomic copies."""
        taken = 0
        for source in sorted((other.root / "stages").glob("*.json")) + sorted((other.root / "objects").rglob("*.npz")):
            target = self.root / source.relative_to(other.root)
            if target.exists():
                continue
            _ensure_dir(target.parent)
            try:
                os.link(source, target)
            except FileExistsError:
                continue  # another writer took it first: same content (same key)
            except OSError:
                data = source.read_bytes()
                atomic_write(target, lambda fh, data=data: fh.write(data))
            taken += source.suffix == ".npz"
        return taken

    def stage_keys(self) -> list[str]:
        folder = self.root / "stages"
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's write lock on ``.lock`` (``filelock``: ``flock`` on POSIX, ``msvcrt`` locking on
        Windows; the system releases it even if the holder is killed).

        Two processes finishing an extraction into one store take turns, so the faces table, its arrays and
        ``run.json`` always come from one run. Per-image entries need no lock: each is written atomically and
        is the same whoever computes it.
        """
        with FileLock(self.root / ".lock", mode=0o600):
            yield

    def remove_stale_temporaries(self, older_than: float = STALE_TEMPORARY_SECONDS) -> int:
        """Delete the temporary files that killed writers left (SIGKILL skips their cleanup); returns how many.

        Only files named as :func:`atomic_write` names them and untouched for ``older_than`` seconds: a
        concurrent writer's file is young, and nothing else in the store matches.
        """
        cutoff = time.time() - older_than
        removed = 0
        for path in self.root.rglob(".*.tmp"):
            with suppress(OSError):  # gone already, or not ours to delete: leave it
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        if removed:
            log.info("%s: removed %d temporary files left by interrupted runs", self.root, removed)
        return removed

    # -- tables and aligned arrays ----------------------------------------------------------------
    def write_table(self, name: str, frame: pd.DataFrame) -> None:
        path = self.root / "tables" / f"{_safe_name(name)}.parquet"
        _ensure_dir(path.parent)
        atomic_write(path, lambda fh: frame.to_parquet(fh, index=False))

    def read_table(self, name: str) -> pd.DataFrame:
        path = self.root / "tables" / f"{_safe_name(name)}.parquet"
        if not path.is_file():
            raise StoreError(f"{path}: no '{name}' table in this store; run extract() first")
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise StoreError(f"{path}: damaged table ({type(exc).__name__}: {exc})") from exc

    def write_array(self, name: str, array: np.ndarray) -> None:
        array = np.asarray(array)
        if array.dtype == object:
            raise StoreError(f"array {name!r} has dtype object (cannot store without pickle)")
        path = self.root / "arrays" / f"{_safe_name(name)}.npy"
        _ensure_dir(path.parent)
        atomic_write(path, lambda fh: np.save(fh, array, allow_pickle=False))

    def read_array(self, name: str, mmap: bool = False) -> np.ndarray:
        path = self.root / "arrays" / f"{_safe_name(name)}.npy"
        if not path.is_file():
            raise StoreError(f"{path}: no '{name}' array in this store")
        try:
            array = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
        except Exception as exc:  # a damaged header raises ValueError, SyntaxError, tokenize.TokenError...
            raise StoreError(f"{path}: damaged array file ({type(exc).__name__}: {exc})") from exc
        if not isinstance(array, np.ndarray):  # np.load reads a zip (an .npz) as a mapping, not an array
            array.close()
            raise StoreError(f"{path}: damaged array file (holds {type(array).__name__}, not one array)")
        return array

    def array_names(self) -> list[str]:
        folder = self.root / "arrays"
        return sorted(p.stem for p in folder.glob("*.npy")) if folder.is_dir() else []

    def write_json(self, name: str, data: Mapping) -> None:
        path = self.root / f"{_safe_name(name)}.json"
        atomic_write(path, lambda fh: fh.write(json.dumps(dict(data), indent=2, default=_json_default).encode()))

    def read_json(self, name: str) -> dict:
        path = self.root / f"{_safe_name(name)}.json"
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise StoreError(f"{path}: not in this store") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise StoreError(f"{path}: damaged JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise StoreError(f"{path}: damaged JSON (a {type(data).__name__}, not an object)")
        return data

    # -- what users read --------------------------------------------------------------------------
    @property
    def table(self) -> pd.DataFrame:
        """The faces table: one row per detected face (and one per image that gave none, with a reason)."""
        return self.read_table("faces")

    @property
    def images(self) -> pd.DataFrame:
        """One row per image file: path, content id, format, size, status and reason."""
        return self.read_table("images")

    @property
    def errors(self) -> pd.DataFrame:
        """Images that could not be used, with the reason for each."""
        images = self.images
        return images.loc[images["status"] != "ok", ["path", "status", "reason"]].reset_index(drop=True)

    @property
    def features(self) -> Features:
        """The named feature blocks, aligned row by row with :attr:`table`."""
        table = self.table
        try:  # arrays of the last extraction only: an older run's arrays may not match this table's rows
            names = self.read_json("run")["arrays"]
        except (StoreError, KeyError):
            names = self.array_names()
        blocks = {name.removeprefix("feature_"): self.read_array(name) for name in names if name.startswith("feature_")}
        try:
            return Features(face_ids=table["face_id"].to_numpy(dtype=str), blocks=blocks)
        except ValueError as exc:  # only a table and arrays from different runs disagree in length
            raise StoreError(f"{self.root}: the faces table and the feature arrays are from different runs ({exc}); "
                             "run extract() again") from exc


def file_identity(path: str | os.PathLike, head_bytes: int = 1 << 20) -> dict:
    """Cheap identity of a model file for stage keys: hashing only the first MB keeps a 200 MB model instant
    to key, while a replaced file (other size or header) still invalidates the stages that used it."""
    path = Path(path)
    digest = hashlib.sha1(usedforsecurity=False)
    with open(path, "rb") as fh:
        digest.update(fh.read(head_bytes))
    return {"file": path.name, "bytes": path.stat().st_size, "sha1_first_mb": digest.hexdigest()}



def open_store(path: str | os.PathLike, create: bool = True) -> Store:
    """Open (and with ``create``, make) the store at ``path``; refuses folders that are not stores."""
    root = Path(path).expanduser()
    marker = root / "STORE.json"
    if marker.is_file():
        try:
            info = json.loads(marker.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
            raise StoreError(f"{marker}: damaged store marker ({exc})") from exc
        if not isinstance(info, dict) or not isinstance(info.get("version", 0), int):
            raise StoreError(f"{marker}: damaged store marker (not an object with an integer version)")
        if info.get("format") != FORMAT:
            raise StoreError(f"{root}: not a facecluster store (STORE.json says {info.get('format')!r})")
        if info.get("version", 0) > FORMAT_VERSION:
            raise StoreError(f"{root}: store format {info.get('version')} is newer than this toolkit "
                             f"({FORMAT_VERSION}); upgrade facecluster_widgets or use a new folder")
        return Store(root)
    if not create:
        raise StoreError(f"{root}: no store here (STORE.json missing); "
                         f"run extract() with store={str(root)!r}")
    # Another process creating this store at the same moment leaves only its marker's temporary file here.
    if root.exists() and any(not p.name.startswith(f".{marker.name}.") for p in root.iterdir()):
        raise StoreError(f"{root}: folder is not empty and is not a store; choose an empty or new folder "
                         "so nothing of yours is overwritten")
    _ensure_dir(root)
    atomic_write(marker, lambda fh: fh.write(json.dumps({"format": FORMAT, "version": FORMAT_VERSION}).encode()))
    return Store(root)


def read_npz(path: Path, max_bytes: int = MAX_ENTRY_BYTES) -> Result:
    """Read one stage result without pickle; any damage becomes a :class:`StoreError`.

    An entry whose members unpack to more than ``max_bytes`` is refused before anything is unpacked.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except Exception as exc:  # not a zip at all: BadZipFile, OSError, ValueError...
        raise StoreError(f"{path}: unreadable store entry ({type(exc).__name__}: {exc})") from exc
    if declared > max_bytes:
        raise StoreError(f"{path}: store entry unpacks to {declared / 2**20:.0f} MiB, above the "
                         f"{max_bytes / 2**20:.0f} MiB limit (a guard against zip bombs)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as exc:  # zipfile, ValueError, OSError, EOFError... all mean "damaged"
        raise StoreError(f"{path}: unreadable store entry ({type(exc).__name__}: {exc})") from exc
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):  # numpy hands back a non-.npy member's raw bytes, unparsed
            raise StoreError(f"{path}: member {name!r} is not an array (a store entry holds .npy members only)")
    meta_raw = arrays.pop(_META_KEY, None)
    try:
        meta = json.loads(str(meta_raw)) if meta_raw is not None else {}
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path}: damaged metadata ({exc})") from exc
    if not isinstance(meta, dict):
        raise StoreError(f"{path}: metadata is not a JSON object")
    return Result(arrays=arrays, meta=meta)


def atomic_write(path: Path, write: Callable[[object], object]) -> None:
    """Write via a private temporary file in the same folder, then rename over ``path``.

    The rename is atomic on POSIX, so readers see the old file or the whole new one. Temporary files
    are created 0600 (``mkstemp``), and the rename keeps that: stored faces stay readable by the user only.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def _ensure_dir(path: Path) -> None:
    """Create ``path`` and any missing parents as 0700: ``mkdir(parents=True)`` would make parents 0755."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)


def _key(stage: Stage | str) -> str:
    return stage.key if isinstance(stage, Stage) else stage


def _safe_name(name: str) -> str:
    if not name or not all(c.isalnum() or c in "_-." for c in name) or name.startswith("."):
        raise StoreError(f"{name!r} is not a valid store entry name (letters, digits, _ - . only)")
    return name


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")

