"""The toolkit's own error types: every failure a user can cause names the file and the problem."""

from __future__ import annotations

import importlib
from types import ModuleType


class FaceclusterError(Exception):
    """Base class: catch this to handle any error the toolkit raises on purpose."""


class ImageReadError(FaceclusterError):
    """An image file could not be decoded; ``path`` and ``reason`` say which and why."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DatasetError(FaceclusterError):
    """A face source (folder, list, dataset name) is unusable."""


class StoreError(FaceclusterError):
    """The feature store is missing, from an incompatible version, or holds a damaged file."""


class ModelMissingError(FaceclusterError):
    """A model file the user asked for is not on disk; the message says which file and where it goes."""


class EmbedInputError(FaceclusterError, ValueError):
    """An :class:`EmbedInput` was built from arrays of the wrong shape or type."""


class ModelFileError(FaceclusterError):
    """A model file exists but is not the model the backend needs (wrong kind, damaged, wrong keys)."""


class OptionalDependencyError(FaceclusterError, ImportError):
    """A backend needs a package from an optional extra; the message names the ``pip install``."""


def missing_extra(purpose: str, extra: str, cause: ImportError, hint: str = "") -> OptionalDependencyError:
    """The one message for a missing optional package: what needed it, what is missing, the line that installs it.

    Callers ``raise missing_extra(...) from exc`` so the original import error stays in the traceback."""
    missing = getattr(cause, "name", None) or str(cause)
    return OptionalDependencyError(f"{purpose} needs the optional package {missing!r}, which is not installed. "
                                   f"Install it with: pip install 'facecluster_widgets[{extra}]'{hint}")


def optional_import(module: str, purpose: str, extra: str, hint: str = "") -> ModuleType:
    """Import ``module`` from an optional extra, or raise :func:`missing_extra`'s error naming that extra."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise missing_extra(purpose, extra, exc, hint) from exc


class CropError(FaceclusterError):
    """One face could not be cropped; embedders turn it into a NaN row and log the reason."""


class FeatureInputError(FaceclusterError, ValueError):
    """Feature blocks that cannot be clustered: wrong type, shape, missing block, nothing usable."""


class MetricInputError(FaceclusterError, ValueError):
    """Labels or distances a score cannot be computed from (NaN, wrong length, wrong shape, too few clusters)."""
