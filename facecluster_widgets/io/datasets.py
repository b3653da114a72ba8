"""Face sources: which image files to read, and their identity labels when folders name them."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..config import DEFAULT_DATASET_NAME, ENV_DATA, ENV_DATASETS, IMAGE_EXTENSIONS, datasets_root
from ..errors import DatasetError

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class FaceSource:
    """An ordered list of image files, with one label per file when identities are known.

    ``skipped`` lists what a folder walk met but could not use (unreadable folders, link loops),
    so nothing disappears without a reason.
    """

    paths: tuple[Path, ...]
    labels: tuple[str | None, ...] | None = None
    root: Path | None = None
    name: str = "custom"
    skipped: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if self.labels is not None and len(self.labels) != len(self.paths):
            raise DatasetError(f"{len(self.paths)} paths but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def has_labels(self) -> bool:
        return self.labels is not None and any(label is not None for label in self.labels)

    @property
    def identities(self) -> list[str]:
        """The distinct labels, sorted; empty when the source is unlabelled."""
        if self.labels is None:
            return []
        return sorted({label for label in self.labels if label is not None})

    def to_frame(self) -> pd.DataFrame:
        labels = self.labels if self.labels is not None else (None,) * len(self.paths)
        return pd.DataFrame(
            {
                "path": pd.array([display_path(p) for p in self.paths], dtype="string"),
                "label": pd.array(list(labels), dtype="string"),
                "dataset": pd.array([self.name] * len(self.paths), dtype="string"),
            }
        )


def load_faces(source: str | os.PathLike | Sequence[str | os.PathLike] | FaceSource, *,
               labels: str | bool = "auto", lfw_min_faces: int = 20,
               lfw_data_home: str | os.PathLike | None = None) -> FaceSource:
    """Resolve ``source`` to a :class:`FaceSource`.

    ``source`` may be a folder of identity subfolders (labels from folder names), a flat folder or a
    list of image paths (no labels: the real use case), the name of a dataset under
    ``$FACECLUSTER_DATASETS`` (``"lfw10"``, ``"orl"``...), or ``"lfw"`` to fetch Labeled Faces in the
    Wild through scikit-learn (needs internet the first time; keeps people with ``lfw_min_faces``
    photos or more). ``labels``: ``"auto"`` labels images by their first subfolder when any image
    lies in a subfolder; ``False`` never labels.
    """
    if isinstance(source, FaceSource):
        return source
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        if text == "lfw":
            return _load_lfw(lfw_min_faces, lfw_data_home, labels)
        path = Path(text).expanduser()
        if path.is_dir():
            return _from_folder(path, labels)
        if path.is_file():
            return _from_paths([path])
        named = _named_dataset(text)
        if named is not None:
            return _from_folder(named, labels, name=text)
        raise DatasetError(
            f"{text}: no such folder or image file, and not a dataset name "
            f"(named datasets are looked up under ${ENV_DATASETS}, now {datasets_root() or 'not found'})"
        )
    if isinstance(source, Iterable):
        return _from_paths([Path(p).expanduser() for p in source])
    raise DatasetError(f"cannot read faces from a {type(source).__name__}; pass a folder, a list of paths or 'lfw'")


def default_data_dir() -> Path:
    """The dataset the demos open: ``$FACECLUSTER_DATA``, else ``../shared/datasets/lfw10``.

    Raises a :class:`DatasetError` that says how to point the toolkit at a folder when neither exists.
    """
    env = os.environ.get(ENV_DATA)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise DatasetError(f"{ENV_DATA}={env} is not a folder; point it at a folder of face photos")
        return path
    named = _named_dataset(DEFAULT_DATASET_NAME)
    if named is not None:
        return named
    raise DatasetError(
        "No default face dataset found. Point the toolkit at your photos with "
        f"`export {ENV_DATA}=/path/to/photos` (a folder of images, or of one subfolder per person), "
        f"or pass the folder to load_faces(); {ENV_DATASETS} may name a folder holding '{DEFAULT_DATASET_NAME}'."
    )


def display_path(path: str | os.PathLike) -> str:
    """``path`` as text that any table, log or terminal can hold: a name that is not valid UTF-8 (Latin-1 names
    from old cameras or zip files) keeps its odd bytes as ``\\xNN`` escapes instead of making Parquet fail."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def _named_dataset(name: str) -> Path | None:
    root = datasets_root()
    if root is None or not name or os.sep in name or name.startswith("."):
        return None
    candidate = root / name
    return candidate if candidate.is_dir() else None


def _from_paths(paths: list[Path]) -> FaceSource:
    if not paths:
        raise DatasetError("the list of image paths is empty")
    return FaceSource(paths=tuple(paths), labels=None, root=None, name="custom")


def _from_folder(root: Path, labels: str | bool, name: str | None = None) -> FaceSource:
    files, skipped = _walk_images(root)
    if not files:
        raise DatasetError(f"{root}: no image files found (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})")
    relative = [f.relative_to(root) for f in files]
    labelled = labels is True or (labels == "auto" and any(len(r.parts) > 1 for r in relative))
    label_list = tuple(display_path(r.parts[0]) if len(r.parts) > 1 else None for r in relative) if labelled else None
    for path, reason in skipped:
        log.warning("skipped %s: %s", path, reason)
    return FaceSource(paths=tuple(files), labels=label_list, root=root, name=name or root.name,
                      skipped=tuple(skipped))


def _walk_images(root: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    """Image files under ``root`` in a stable order; follows links but never loops."""
    files: list[Path] = []
    skipped: list[tuple[str, str]] = []
    visited: set[str] = set()

    def on_error(exc: OSError) -> None:
        skipped.append((display_path(exc.filename), f"folder not readable ({exc.strerror})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in visited:
            skipped.append((display_path(dirpath), "symbolic link loop (folder already visited)"))
            dirnames[:] = []
            continue
        visited.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            if is_image_file(path):
                files.append(path)
    files.sort(key=lambda p: p.relative_to(root).as_posix())
    return files, skipped


def _load_lfw(min_faces: int, data_home: str | os.PathLike | None, labels: str | bool) -> FaceSource:
    """Labeled Faces in the Wild via scikit-learn's fetcher, then read as a folder of identities."""
    from sklearn.datasets import fetch_lfw_people, get_data_home

    try:
        fetch_lfw_people(min_faces_per_person=min_faces, data_home=data_home, download_if_missing=True,
                         resize=0.1)
    except OSError as exc:  # includes URLError: no network and no local copy
        raise DatasetError(
            f"could not fetch LFW into {get_data_home(data_home)} ({exc}). LFW needs internet the first time; "
            "offline, pass a local folder of face photos instead."
        ) from exc
    folder = Path(get_data_home(data_home)) / "lfw_home" / "lfw_funneled"
    if not folder.is_dir():
        raise DatasetError(f"{folder}: scikit-learn's LFW fetch left no image folder here")
    source = _from_folder(folder, labels, name="lfw")
    if source.labels is None:
        return source
    counts = pd.Series(source.labels).value_counts()
    keep = [i for i, label in enumerate(source.labels) if counts.get(label, 0) >= min_faces]
    return FaceSource(paths=tuple(source.paths[i] for i in keep), labels=tuple(source.labels[i] for i in keep),
                      root=folder, name="lfw", skipped=source.skipped)


def combine_sources(sources: Sequence[FaceSource], name: str | None = None) -> FaceSource:
    """One source from several, labels prefixed by their dataset (``"orl/s1"``) so identities never merge
    by accident of naming; unlabelled parts stay unlabelled."""
    paths: list[Path] = []
    labels: list[str | None] = []
    for source in sources:
        paths.extend(source.paths)
        own = source.labels or (None,) * len(source)
        labels.extend(f"{source.name}/{label}" if label is not None else None for label in own)
    has_labels = any(label is not None for label in labels)
    return FaceSource(paths=tuple(paths), labels=tuple(labels) if has_labels else None, root=None,
                      name=name or "+".join(s.name for s in sources),
                      skipped=tuple(item for s in sources for item in s.skipped))
