"""Shared fixtures. Real faces come from one place: ``$FACECLUSTER_DATASETS`` (default
``../shared/datasets``). Tests that need them skip with the reason when the folder is truly absent,
except under CI (``CI=true``), where a missing folder is a failure, never a silent skip."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from facecluster_widgets.config import ENV_DATASETS, datasets_root


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    root = datasets_root()
    if root is None or not root.is_dir():
        message = (f"shared face datasets not found: set {ENV_DATASETS} to the folder holding "
                   "lfw10/, orl/, yale/, cfp100/, umist/ (default: ../shared/datasets beside the checkout)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return root


def _dataset(datasets_dir: Path, name: str) -> Path:
    path = datasets_dir / name
    if not path.is_dir():
        pytest.fail(f"{path}: dataset {name!r} missing from {datasets_dir}")
    return path


@pytest.fixture(scope="session")
def lfw10(datasets_dir: Path) -> Path:
    return _dataset(datasets_dir, "lfw10")


@pytest.fixture(scope="session")
def orl(datasets_dir: Path) -> Path:
    return _dataset(datasets_dir, "orl")


@pytest.fixture(scope="session")
def yale(datasets_dir: Path) -> Path:
    return _dataset(datasets_dir, "yale")


@pytest.fixture(scope="session")
def cfp100(datasets_dir: Path) -> Path:
    return _dataset(datasets_dir, "cfp100")


@pytest.fixture(scope="session")
def umist(datasets_dir: Path) -> Path:
    return _dataset(datasets_dir, "umist")


@pytest.fixture(scope="session")
def model():
    """The shared ICT morphable model, loaded once per run (the 3DMM tests only read it)."""
    from facecluster_widgets.recon.morphable import load_morphable_model

    return load_morphable_model()


@pytest.fixture(scope="session")
def dlib_points68():
    """``points68(rgb, upsample=1)``: dlib's HOG detector + 68-point predictor on the largest face, as a
    reference independent of the toolkit's own detectors (tests compare stages against it)."""
    import warnings

    import dlib
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # face_recognition_models imports pkg_resources
        import face_recognition_models

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())

    def points68(rgb, upsample: int = 1):
        rects = detector(rgb, upsample)
        assert rects, "dlib's HOG detector found no face"
        shape = predictor(rgb, max(rects, key=lambda r: r.area()))
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)

    return points68


#: Whole files that are slow, marked here rather than in the file: tests/test_browser.py drives Chromium through
#: JupyterLab, tests/test_widgets.py builds explorers on real stores (~60 s together). Every other slow test
#: carries ``@pytest.mark.slow`` (or ``pytestmark``) itself. ``make check`` leaves them out; ``make test`` runs all.
SLOW_FILES = frozenset({"test_browser.py", "test_widgets.py"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_FILES:
            item.add_marker(pytest.mark.slow)
