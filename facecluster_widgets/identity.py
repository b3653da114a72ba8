"""A learnt linear map from 3DMM identity coefficients to a space where faces of one person are close.

Label-free, the ICT identity coefficients fitted to 68 landmarks mix identity with pose, expression and
landmark error. A StandardScaler + shrinkage LDA trained on *other* people's fits (with the fits of their
mirrored landmarks under the same labels, so fit asymmetry counts as noise) keeps the directions in which
people differ. Both steps are linear, so they are folded into one affine map ``y = (alpha - mean) @ components``
and shipped as a plain ``.npz`` (no pickle): applying it needs numpy only, not a fitted sklearn object.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .errors import FaceclusterError, ModelFileError
from .io.model_files import read_versioned_npz

log = logging.getLogger(__name__)

#: The packaged projection, trained by scripts/train_identity_projection.py (see data/README.md).
PACKAGED_FILE = "identity_projection_ict.npz"
#: Bumped when the file layout changes; files of another version are refused.
FORMAT_VERSION = 1
_KEYS = ("format", "mean", "components", "meta")


@dataclass(frozen=True, eq=False)
class IdentityProjection:
    """``y = (alpha - mean) @ components``: ``mean`` (d,), ``components`` (d, k); ``meta`` says how it was made."""

    mean: np.ndarray
    components: np.ndarray
    meta: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        mean = np.asarray(self.mean, dtype=np.float64)
        components = np.asarray(self.components, dtype=np.float64)
        if mean.ndim != 1 or components.ndim != 2 or components.shape[0] != mean.shape[0]:
            raise FaceclusterError(f"identity projection needs mean (d,) and components (d, k), "
                                   f"got {mean.shape} and {components.shape}")
        if not (np.isfinite(mean).all() and np.isfinite(components).all()):
            raise FaceclusterError("identity projection has non-finite entries")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "components", components)
        object.__setattr__(self, "meta", dict(self.meta))

    @property
    def n_features(self) -> int:
        return int(self.mean.shape[0])

    @property
    def n_components(self) -> int:
        return int(self.components.shape[1])

    def transform(self, alphas: np.ndarray) -> np.ndarray:
        """Project ``(n, d)`` or ``(d,)`` coefficients; rows with any NaN (no fit) come out all-NaN."""
        X = np.asarray(alphas, dtype=np.float64)
        single = X.ndim == 1
        X2 = X[None, :] if single else X
        if X2.ndim != 2 or X2.shape[1] != self.n_features:
            raise FaceclusterError(f"identity projection expects ({self.n_features},) or "
                                   f"(n, {self.n_features}) coefficients, got {X.shape}")
        missing = ~np.isfinite(X2).all(axis=1)
        Y = np.where(missing[:, None], 0.0, X2 - self.mean) @ self.components
        Y[missing] = np.nan
        return Y[0] if single else Y

    def save(self, path: str | os.PathLike) -> Path:
        """Write a pickle-free ``.npz`` (metadata as a JSON string)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            np.savez(fh, format=np.int64(FORMAT_VERSION), mean=self.mean, components=self.components,
                     meta=np.array(json.dumps(self.meta, sort_keys=True, default=str)))
        return path


def fit_identity_pipeline(alphas: np.ndarray, labels: np.ndarray, n_components: int = 20,
                          shrinkage: float = 0.1) -> Pipeline:
    """The sklearn pipeline the projection folds (kept public so tests and benchmarks can compare)."""
    X, y = _checked_training(alphas, labels)
    k = min(n_components, X.shape[1], len(np.unique(y)) - 1)
    lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage, n_components=k)
    return make_pipeline(StandardScaler(), lda).fit(X, y)


def fit_identity_projection(alphas: np.ndarray, labels: np.ndarray, n_components: int = 20,
                            shrinkage: float = 0.1, meta: Mapping[str, object] | None = None
                            ) -> IdentityProjection:
    """StandardScaler + eigen-solver shrinkage LDA on labelled fits of other people, as one affine map.

    The eigen solver's transform is ``z @ scalings_`` with no centring, and ``z = (x - mu) / sigma``, so the
    composition is exactly ``(x - mu) @ (scalings_[:, :k] / sigma[:, None])``. ``n_components`` is capped
    at ``n_identities - 1`` (LDA's rank).
    """
    pipeline = fit_identity_pipeline(alphas, labels, n_components, shrinkage)
    scaler, lda = pipeline[0], pipeline[-1]
    k = pipeline.transform(np.asarray(alphas, dtype=np.float64)[:1]).shape[1]
    components = lda.scalings_[:, :k] / scaler.scale_[:, None]
    y = np.asarray(labels)
    info = {"n_identities": int(len(np.unique(y))), "n_faces": int(len(y)), "n_components": int(k),
            "shrinkage": float(shrinkage), "method": "StandardScaler + LDA(solver='eigen')",
            "date": datetime.date.today().isoformat()}
    info.update(meta or {})
    return IdentityProjection(mean=scaler.mean_.copy(), components=components, meta=info)


def packaged_path() -> Path:
    """Where the packaged projection lives inside the installed package."""
    return Path(str(resources.files("facecluster_widgets") / "data" / PACKAGED_FILE))


def load_identity_projection(path: str | os.PathLike | None = None) -> IdentityProjection:
    """Read a projection written by :meth:`IdentityProjection.save` (default: the packaged one)."""
    file = Path(path) if path is not None else packaged_path()
    data = read_versioned_npz(file, "identity projection", _KEYS, FORMAT_VERSION,
                              f"train one with scripts/train_identity_projection.py (the package ships it as "
                              f"data/{PACKAGED_FILE})")
    try:
        return IdentityProjection(mean=data["mean"], components=data["components"], meta=data["meta"])
    except FaceclusterError as exc:
        raise ModelFileError(f"{file}: {exc}") from exc


def _checked_training(alphas: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(alphas, dtype=np.float64)
    y = np.asarray(labels)
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise FaceclusterError(f"need (n, d) coefficients and n labels, got {X.shape} and {y.shape}")
    if not np.isfinite(X).all():
        raise FaceclusterError("training coefficients contain NaN/inf; keep only faces with a fit")
    if len(np.unique(y)) < 2:
        raise FaceclusterError("an identity projection needs faces of at least two identities")
    return X, y
