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
                   "lfw10/, orl/, yale/, cfp100/ (default: ../shared/datasets beside the checkout)")
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
