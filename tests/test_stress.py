"""The stress protocol: deterministic, 30 % of photos corrupted inside the store, occluders on the face."""

from __future__ import annotations

import numpy as np
import pytest

import facecluster_widgets as fc
from facecluster_widgets.evaluation.stress import VARIANTS, primary_points5, stress_source
from facecluster_widgets.io.images import read_image

pytestmark = pytest.mark.slow  # extracts 30 real photos, then corrupts them


@pytest.fixture(scope="module")
def clean(tmp_path_factory, lfw10):
    root = tmp_path_factory.mktemp("stress")
    for person in sorted(p for p in lfw10.iterdir() if p.is_dir())[:3]:  # 30 photos keep the test quick
        (root / "photos" / person.name).mkdir(parents=True)
        for photo in person.glob("*.jpg"):
            (root / "photos" / person.name / photo.name).symlink_to(photo)
    source = fc.load_faces(root / "photos")
    store = fc.extract(source, root / "store", mesh=False, reconstruct_3d=False, progress=False)
    return source, store, primary_points5(store)


@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_corrupt_thirty_percent_deterministically(clean, variant):
    source, store, points5 = clean
    stressed, conditions = stress_source(source, store, variant, points5)
    again, _ = stress_source(source, store, variant, points5)
    changed = [p for p in stressed.paths if conditions[str(p)] != "clean"]
    assert len(changed) == 9 and stressed.paths == again.paths  # 30 % of 30 photos
    assert stressed.labels == source.labels
    assert all(str(p).startswith(str(store.root)) for p in changed)  # never beside the user's photos
    assert all((p.stat().st_mode & 0o077) == 0 for p in changed)


def test_occluders_cover_the_landmarks(clean):
    source, store, points5 = clean
    stressed, conditions = stress_source(source, store, "occlusion", points5)
    originals = dict(zip(stressed.paths, source.paths, strict=True))
    seen = set()
    for path, original in originals.items():
        kind = conditions[str(path)]
        if kind not in ("eyes", "mouth") or kind in seen:
            continue
        seen.add(kind)
        p = points5[str(original)]
        x, y = (p[0] if kind == "eyes" else (p[3] + p[4]) / 2).round().astype(int)
        assert np.all(read_image(path)[y, x] == (20 if kind == "eyes" else 225))
    assert seen == {"eyes", "mouth"}


def test_lowres_is_a_quarter_size(clean):
    source, store, points5 = clean
    stressed, conditions = stress_source(source, store, "lowres", points5)
    path = next(p for p in stressed.paths if conditions[str(p)] == "lowres")
    original = source.paths[stressed.paths.index(path)]
    assert read_image(path).shape[0] == read_image(original).shape[0] // 4
