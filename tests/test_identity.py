"""The identity projection: folded affine map == sklearn pipeline, file round trip and errors, real-face behaviour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facecluster_widgets.errors import FaceclusterError, ModelFileError, ModelMissingError
from facecluster_widgets.identity import (
    IdentityProjection,
    fit_identity_pipeline,
    fit_identity_projection,
    load_identity_projection,
    packaged_path,
)
from facecluster_widgets.io.images import read_image
from facecluster_widgets.recon.morphable import LandmarkFitter, load_morphable_model, mirror_landmarks


def labelled(n_ids: int = 12, per_id: int = 8, d: int = 30, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Identity means on the first 8 dims, unequal scales and offsets so the scaler matters."""
    rng = np.random.default_rng(seed)
    means = np.zeros((n_ids, d))
    means[:, :8] = rng.normal(0, 2, (n_ids, 8))
    X = np.repeat(means, per_id, axis=0) + rng.normal(0, 1, (n_ids * per_id, d))
    X = X * rng.uniform(0.1, 5.0, d) + rng.uniform(-3, 3, d)
    return X, np.repeat(np.arange(n_ids), per_id)


def test_folded_map_equals_the_sklearn_pipeline():
    X, y = labelled()
    projection = fit_identity_projection(X, y, n_components=6, shrinkage=0.1)
    pipeline = fit_identity_pipeline(X, y, n_components=6, shrinkage=0.1)
    new = np.random.default_rng(1).normal(0, 3, (20, X.shape[1]))
    assert projection.components.shape == (30, 6)
    np.testing.assert_allclose(projection.transform(new), pipeline.transform(new), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(projection.transform(X), pipeline.transform(X), rtol=1e-9, atol=1e-9)
    assert projection.meta["n_identities"] == 12 and projection.meta["n_faces"] == 96
    # LDA's rank caps the width at n_identities - 1.
    assert fit_identity_projection(X[:24], y[:24], n_components=20).n_components == 2


def test_save_load_round_trip_without_pickle(tmp_path):
    X, y = labelled()
    projection = fit_identity_projection(X, y, n_components=5, meta={"training_set": "synthetic"})
    path = projection.save(tmp_path / "p.npz")
    with np.load(path, allow_pickle=False) as data:  # would raise on any object array
        assert sorted(data.files) == ["components", "format", "mean", "meta"]
    loaded = load_identity_projection(path)
    np.testing.assert_array_equal(loaded.mean, projection.mean)
    np.testing.assert_array_equal(loaded.components, projection.components)
    assert loaded.meta == projection.meta
    assert loaded.meta["training_set"] == "synthetic" and loaded.meta["shrinkage"] == 0.1


def test_nan_rows_stay_nan_and_others_are_unaffected():
    X, y = labelled()
    projection = fit_identity_projection(X, y, n_components=4)
    rows = X[:6].copy()
    rows[2, 5] = np.nan
    rows[4] = np.nan
    out = projection.transform(rows)
    assert np.isnan(out[[2, 4]]).all()
    np.testing.assert_allclose(out[[0, 1, 3, 5]], projection.transform(X[[0, 1, 3, 5]]))
    with pytest.raises(FaceclusterError, match="expects"):
        projection.transform(X[:, :10])


def test_planted_nuisance_direction_is_suppressed():
    """A direction with a large within-person spread and no identity (like pose) must move the output much less,
    relative to an identity direction, than it does after standardisation alone (the label-free treatment)."""
    rng = np.random.default_rng(3)
    n_ids, per_id, d = 30, 10, 12
    means = np.zeros((n_ids, d))
    means[:, :4] = rng.normal(0, 1, (n_ids, 4))
    X = np.repeat(means, per_id, axis=0) + rng.normal(0, 0.3, (n_ids * per_id, d))
    X[:, 6] += rng.normal(0, 5.0, len(X))  # nuisance: within-identity only
    y = np.repeat(np.arange(n_ids), per_id)
    projection = fit_identity_projection(X, y, n_components=8, shrinkage=0.1)
    gain = np.linalg.norm(projection.components, axis=1)  # output movement per unit step along each input axis
    scale = X.std(axis=0)
    assert gain[6] / gain[0] < 0.5 * (scale[0] / scale[6])
    assert np.argmin(gain) == 6  # the least trusted input axis is the one that varies most within a person


def test_packaged_projection_loads_and_maps_80_to_20():
    projection = load_identity_projection()
    assert packaged_path().name == "identity_projection_ict.npz"
    assert (projection.n_features, projection.n_components) == (80, 20)
    assert projection.meta["training_set"] == "cfp100" and projection.meta["n_identities"] == 100
    assert projection.meta["mirrored"] is True and projection.meta["shrinkage"] == 0.1
    alpha = np.random.default_rng(0).normal(size=80)
    assert projection.transform(alpha).shape == (20,)
    np.testing.assert_allclose(projection.transform(projection.mean), 0.0, atol=1e-12)


def test_packaged_projection_ignores_mirroring_on_real_faces(lfw10: Path, dlib_points68):
    """Trained with mirror fits as the same person, it must put a real (unseen: LFW) face and its mirror image
    much closer together, relative to the distance between different people, than the raw coefficients do."""
    model = load_morphable_model()
    fitter = LandmarkFitter(model)
    people = sorted(p for p in lfw10.iterdir() if p.is_dir())[:4]
    fits, mirrors = [], []
    for person in people:
        points = dlib_points68(read_image(sorted(person.iterdir())[0]))
        fits.append(fitter.fit(points).alpha)
        mirrors.append(fitter.fit(mirror_landmarks(points)).alpha)
    fits, mirrors = np.asarray(fits, float), np.asarray(mirrors, float)
    projection = load_identity_projection()

    def relative_mirror_gap(f: np.ndarray, m: np.ndarray) -> float:
        gap = np.linalg.norm(f - m, axis=1).mean()
        between = np.mean([np.linalg.norm(f[i] - f[j]) for i in range(len(f)) for j in range(i)])
        return float(gap / between)

    raw = relative_mirror_gap(fits, mirrors)
    projected = relative_mirror_gap(projection.transform(fits), projection.transform(mirrors))
    assert projected < 0.2 * raw  # measured: 0.456 raw, 0.006 projected


def test_missing_and_malformed_files_name_the_file(tmp_path):
    missing = tmp_path / "nowhere.npz"
    with pytest.raises(ModelMissingError, match="nowhere.npz"):
        load_identity_projection(missing)
    text = tmp_path / "text.npz"
    text.write_text("not a zip")
    with pytest.raises(ModelFileError, match="text.npz"):
        load_identity_projection(text)
    wrong_keys = tmp_path / "keys.npz"
    np.savez(wrong_keys, mean=np.zeros(3))
    with pytest.raises(ModelFileError, match="keys.npz.*missing"):
        load_identity_projection(wrong_keys)
    bad_shape = tmp_path / "shape.npz"
    np.savez(bad_shape, format=np.int64(1), mean=np.zeros(3), components=np.zeros((4, 2)), meta=np.array("{}"))
    with pytest.raises(ModelFileError, match="shape.npz"):
        load_identity_projection(bad_shape)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, format=np.int64(1), mean=np.zeros(3), components=np.zeros((3, 2)),
             meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelFileError, match="pickled.npz"):
        load_identity_projection(pickled)
    with pytest.raises(FaceclusterError, match="mean"):
        IdentityProjection(mean=np.zeros(3), components=np.zeros((4, 2)))
