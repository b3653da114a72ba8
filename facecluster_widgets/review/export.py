"""Take a clustering out of the toolkit: a table of face → cluster (with names) as CSV or JSON, and a folder per
cluster holding links to (or copies of) the photos.

Cluster names are user text and may be anything, ``"../../etc"`` included, so no name is ever used as a path:
every folder and file name is rebuilt by :func:`safe_component` (one path component, no separators, no leading
dots, no control characters, bounded length), prefixed with the cluster id so two clusters of one name never
share a folder, and each destination is checked to resolve inside the target folder before anything is written.
The folder export only writes into a folder that does not exist yet or is empty, so it never overwrites files.
CSV cells that a spreadsheet would run as a formula (starting ``= + - @``) get a leading apostrophe.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import FaceclusterError
from ..store import atomic_write
from .collection import FaceCollection
from .session import ClusterSession
from .view import ClusterView, display_name

log = logging.getLogger(__name__)

#: Longest folder or file name written (bytes of UTF-8 stay well under the 255 most file systems allow).
MAX_COMPONENT = 80
#: Folder of the faces in no cluster.
NOISE_FOLDER = "unassigned"
#: Names Windows refuses for a file whatever the extension.
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}
_UNSAFE = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ExportError(FaceclusterError):
    """An export that cannot be made: target not empty, unknown format, a destination outside the target."""


def safe_component(name: object, fallback: str = "unnamed") -> str:
    """``name`` as ONE harmless path component: compatibility-normalised (so a fullwidth ``／`` becomes ``/``
    before it is replaced), separators and characters Windows forbids turned into ``_``, leading dots and spaces
    removed (no ``.``, ``..`` or hidden files), Windows device names prefixed, cut to :data:`MAX_COMPONENT`."""
    text = unicodedata.normalize("NFKC", str(name))
    text = "".join("_" if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in text)
    text = _UNSAFE.sub("_", text)
    text = text.strip().lstrip(". ").rstrip(". ")
    text = re.sub(r"_{2,}", "_", text)[:MAX_COMPONENT].rstrip(". ")
    if not text or set(text) <= {"_", "."}:
        text = fallback
    if text.split(".")[0].upper() in _WINDOWS_RESERVED:
        text = "_" + text
    return text


def assignments(face_ids: Sequence[str], paths: Sequence[str], labels: np.ndarray, names: Mapping[int, str],
                face_index: Sequence[int] | None = None, true_labels: Sequence | None = None) -> pd.DataFrame:
    """The face → cluster table: ``face_id, path, face_index, cluster, name`` (and ``true_label`` when given);
    noise faces have cluster −1. ``names`` are the user's; the name column follows :func:`name_column`."""
    labels = np.asarray(labels, dtype=np.int64)
    frame = pd.DataFrame({
        "face_id": pd.array([str(f) for f in face_ids], dtype="string"),
        "path": pd.array([str(p) for p in paths], dtype="string"),
        "face_index": np.asarray(face_index if face_index is not None else np.zeros(len(labels)), dtype=np.int64),
        "cluster": labels,
        "name": name_column(labels, names),
    })
    if true_labels is not None:
        frame["true_label"] = pd.array([None if v is None else str(v) for v in true_labels], dtype="string")
    return frame


def name_column(labels: np.ndarray, names: Mapping[int, str]) -> pd.api.extensions.ExtensionArray:
    """Each face's cluster name as the page shows it (:func:`~.view.display_name`: "cluster 3" when unnamed, the
    noise name for faces in no cluster): the command line's table and the explorer's export use this one column."""
    return pd.array([display_name(int(c), names) for c in np.asarray(labels)], dtype="string")


def face_clusters(session: ClusterSession) -> pd.DataFrame:
    """The command line's table, one row per face: ``file, face_index, x0, y0, x1, y1, cluster, name,
    distance_to_centre`` (the fused distance to its cluster's centroid; empty for the faces in no cluster)."""
    view = session.view
    table = session.faces.table
    clusters, distances = session.centroid_distances(view)
    labels = np.asarray(view.labels)
    to_centre = np.full(labels.size, np.nan)
    placed = labels >= 0
    to_centre[placed] = distances[np.flatnonzero(placed), np.searchsorted(clusters, labels[placed])]
    frame = pd.DataFrame({"file": table["path"].astype("string"), "face_index": table["face_index"].astype(np.int64)})
    for name in ("x0", "y0", "x1", "y1"):
        frame[name] = table[name].to_numpy(dtype=float).round(1)
    frame["cluster"] = labels
    frame["name"] = name_column(labels, view.names)
    frame["distance_to_centre"] = to_centre.round(4)
    return frame


def export_view(faces: FaceCollection, view: ClusterView, path: str | os.PathLike, fmt: str = "csv") -> object:
    """Write ``view`` as the explorer shows it: every cluster under the name the page shows ("cluster 3" when
    unnamed). ``fmt`` "csv"/"json": a table (missing folders are made); "symlink"/"copy": a folder per cluster
    under ``path`` (new or empty). Returns the file path or the folder summary."""
    table = faces.table
    frame = assignments(table["face_id"], table["path"], view.labels, view.names, table["face_index"], faces.labels)
    if fmt in ("csv", "json"):
        path = Path(path)
        return export_table(frame, path if path.suffix else path.with_suffix("." + fmt), fmt)
    return export_folders(frame, path, mode=fmt)


def export_table(frame: pd.DataFrame, path: str | os.PathLike, fmt: str | None = None) -> Path:
    """Write the table as CSV or JSON (``fmt``, else from the suffix), atomically; returns the path."""
    path = Path(path).expanduser()
    fmt = (fmt or path.suffix.lstrip(".")).lower()
    if fmt not in ("csv", "json"):
        raise ExportError(f"{path}: export format must be csv or json, got {fmt!r}")
    if path.is_dir():
        raise ExportError(f"{path}: is a folder; give a file name ending in .{fmt}")
    if path.parent.exists() and not path.parent.is_dir():
        raise ExportError(f"{path.parent}: is a file, not a folder")
    path.parent.mkdir(parents=True, exist_ok=True)  # as the folder export does: a new folder is made
    if fmt == "csv":
        text = _defuse_formulas(frame).to_csv(index=False)
    else:
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        text = json.dumps({"faces": records}, indent=1, ensure_ascii=False, default=_json_value)
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
    return path


def export_folders(frame: pd.DataFrame, target: str | os.PathLike, mode: str = "symlink",
                   include_noise: bool = True) -> dict:
    """A folder per cluster under ``target`` (created; must not exist or be empty) with a link to (``symlink``) or
    a copy of (``copy``) each face's photo. Folders are ``<id>_<safe name>`` (``unassigned`` for noise); a photo
    with two faces in one cluster appears once. Returns counts and, per photo that could not be placed, why."""
    if mode not in ("symlink", "copy"):
        raise ExportError(f"export mode must be 'symlink' or 'copy', got {mode!r}")
    target = Path(target).expanduser()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ExportError(f"{target}: exists and is not an empty folder; choose a new folder so nothing is "
                          "overwritten")
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    written, errors, folders = 0, [], {}
    for (cluster, name), group in frame.groupby(["cluster", "name"], sort=True, dropna=False):
        cluster = int(cluster)
        if cluster < 0 and not include_noise:
            continue
        folder_name = NOISE_FOLDER if cluster < 0 else f"{cluster:03d}_{safe_component(name or 'cluster')}"
        folder = _inside(root, root / folder_name)
        folder.mkdir(exist_ok=True)
        folders[folder_name] = cluster
        used: set[str] = {p.name for p in folder.iterdir()}
        for source in dict.fromkeys(group["path"].astype(str)):
            src = Path(source)
            base = safe_component(src.stem, "photo")
            suffix = safe_component(src.suffix, "")[:10] if src.suffix else ""
            suffix = "." + suffix.lstrip("._") if suffix.lstrip("._") else ""
            candidate, i = f"{base}{suffix}", 1
            while candidate in used:
                i += 1
                candidate = f"{base}~{i}{suffix}"
            used.add(candidate)
            dest = _inside(root, folder / candidate)
            try:
                if not src.is_file():
                    raise FileNotFoundError(f"{src}: photo not found")
                if mode == "symlink":
                    os.symlink(src.resolve(), dest)
                else:
                    shutil.copyfile(src, dest)
                written += 1
            except OSError as exc:
                errors.append({"path": str(src), "reason": str(exc)})
                log.warning("export: %s not placed (%s)", src, exc)
    return {"target": str(root), "mode": mode, "folders": len(folders), "files": written, "errors": errors}


def _inside(root: Path, path: Path) -> Path:
    """``path`` if it resolves inside ``root`` (it always should: names are safe components); else refuse."""
    resolved = path.parent.resolve() / path.name
    if not resolved.is_relative_to(root) or resolved == root:
        raise ExportError(f"{path}: would be written outside the export folder {root}; refused")
    return resolved


def _defuse_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or str(out[column].dtype) == "string":
            out[column] = out[column].map(lambda v: f"'{v}" if isinstance(v, str) and v.startswith(_FORMULA_START)
                                          else v)
    return out


def _json_value(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
