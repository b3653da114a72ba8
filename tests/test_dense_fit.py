"""The mediapipe -> ICT correspondence lands on the right face regions, and the dense fit holds on turned faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facecluster_widgets.errors import FaceclusterError, ModelFileError, ModelMissingError
from facecluster_widgets.recon.dense import (
    ANCHORS,
    DenseFitSettings,
    DenseFitter,
    MeshCorrespondence,
    excluded_outline,
    load_correspondence,
    vertex_normals,
)
from facecluster_widgets.recon.morphable import (
    LandmarkFitter,
    project,
    rotation_angles,
    rotation_from_angles,
)


@pytest.fixture(scope="module")
def corr():
    return load_correspondence()


def _mapped(corr: MeshCorrespondence) -> dict[int, int]:
    return dict(zip(corr.mesh.tolist(), corr.model.tolist(), strict=True))


def test_packaged_correspondence_lands_on_the_right_regions(model, corr):
    from mediapipe.python.solutions import face_mesh_connections as fmc

    corr.check_model(model)
    assert 300 <= len(corr) <= 468 - len(excluded_outline())
    assert not set(corr.mesh) & set(excluded_outline())          # no silhouette vertex is a fitting target
    mapped, mean, lm = _mapped(corr), model.mean, model.landmarks68
    # named points: each lands within 7 mm of the model's landmark vertex for the same point
    for mp_vertex, landmark in ANCHORS:
        if mp_vertex in mapped:
            assert np.linalg.norm(mean[mapped[mp_vertex]] - mean[lm[landmark]]) < 0.7, (mp_vertex, landmark)
    # regions: every lip vertex within 1 cm of the model's mouth landmarks, every eye vertex of its own eye's
    # (left/right kept: the subject's left eye is +x); the mouth is ~5 cm wide, the eyes ~6.5 cm apart
    regions = {"lips": (fmc.FACEMESH_LIPS, range(48, 68)),
               "subject's left eye": (fmc.FACEMESH_LEFT_EYE, range(42, 48)),
               "subject's right eye": (fmc.FACEMESH_RIGHT_EYE, range(36, 42))}
    for name, (edges, landmarks) in regions.items():
        vertices = [mapped[v] for v in {v for e in edges for v in e} if v in mapped]
        region = mean[lm[list(landmarks)]]
        assert len(vertices) >= 8, name
        nearest = np.linalg.norm(mean[vertices][:, None] - region[None], axis=2).min(axis=1)
        assert nearest.max() < 1.0, name
    left = [mapped[v] for e in fmc.FACEMESH_LEFT_EYE for v in e if v in mapped]
    right = [mapped[v] for e in fmc.FACEMESH_RIGHT_EYE for v in e if v in mapped]
    assert (mean[left, 0] > 0).all() and (mean[right, 0] < 0).all()


def _observed(rng, model, vertices, R, scale, t, sigma, normals):
    """Projected points with noise; points facing away get 8x the noise (a detector guesses hidden points)."""
    points = project(model_shape := vertices, scale, R, t)
    hidden = normals @ R[2] <= 0
    noise = rng.normal(0.0, sigma, points.shape)
    noise[hidden] *= 8
    del model_shape
    return points + noise


@pytest.mark.parametrize("yaw", [60, 70, 80])
def test_dense_fit_recovers_a_turned_synthetic_face_better_than_68_points(model, corr, yaw):
    normals = vertex_normals(model.mean, model.triangles)
    dense, sparse = DenseFitter(model, corr), LandmarkFitter(model)
    errors = {"dense": [], "68": [], "mean face": []}
    for seed in range(3):
        rng = np.random.default_rng(seed)
        alpha = rng.normal(0.0, 1.0, 80)
        truth = model.shape(alpha)
        R, scale, t = rotation_from_angles(yaw, 5, 3), 10.0, np.array([200.0, -200.0])
        sigma = 0.03 * model.eye_outer_distance * scale
        lm = model.landmarks68
        p68 = _observed(rng, model, truth[lm], R, scale, t, sigma, normals[lm])
        mesh = np.zeros((468, 2))
        mesh[corr.mesh] = _observed(rng, model, truth[corr.model], R, scale, t, sigma, normals[corr.model])
        mesh[np.setdiff1d(np.arange(468), corr.mesh)] = mesh[corr.mesh].mean(axis=0)
        fit = dense.fit(mesh)
        assert abs(rotation_angles(fit.R)[0] - yaw) < 8
        for name, a in (("dense", fit.alpha), ("68", sparse.fit(p68).alpha), ("mean face", np.zeros(80))):
            errors[name].append(np.sqrt(((model.shape(a) - truth) ** 2).sum(axis=1).mean()))
    mean_error = {k: float(np.mean(v)) for k, v in errors.items()}
    assert mean_error["dense"] < 0.7 * mean_error["68"], mean_error
    assert mean_error["dense"] < 0.9 * mean_error["mean face"], mean_error


def test_facing_weights_drop_the_far_side(model, corr):
    fitter = DenseFitter(model, corr)
    R = rotation_from_angles(80, 0, 0)
    weights = fitter._weights(R)
    far_side = model.mean[corr.model, 0] > 2.0         # at yaw +80 the subject's left (+x) half turns away
    near_side = model.mean[corr.model, 0] < -2.0
    assert weights.sum() == pytest.approx(68.0)
    assert (weights[far_side] == 0).mean() > 0.6
    assert weights[far_side].mean() < 0.2 * weights[near_side].mean()
    assert (DenseFitter(model, corr, dense=DenseFitSettings(visibility_power=0))._weights(R) > 0).mean() < 1


def test_missing_or_nan_meshes_and_files_give_clear_errors(model, corr, tmp_path: Path):
    fitter = DenseFitter(model, corr)
    with pytest.raises(FaceclusterError, match="no mediapipe mesh"):
        fitter.fit(None)
    with pytest.raises(FaceclusterError, match="all NaN"):
        fitter.fit(np.full((468, 3), np.nan))
    partial = np.random.default_rng(0).uniform(0, 100, (468, 3))
    partial[5] = np.nan
    with pytest.raises(FaceclusterError, match="NaN"):
        fitter.fit(partial)
    with pytest.raises(FaceclusterError, match=r"\(468, 2 or 3\)"):
        fitter.fit(np.zeros((68, 2)))
    with pytest.raises(FaceclusterError, match="degenerate"):
        fitter.fit(np.zeros((468, 2)))
    with pytest.raises(ModelMissingError, match="nowhere.npz"):
        load_correspondence(tmp_path / "nowhere.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="bad.npz"):
        load_correspondence(bad)
    with pytest.raises(FaceclusterError, match="distinct"):
        MeshCorrespondence(mesh=np.array([1, 1]), model=np.array([2, 3]), distance=np.zeros(2))


def test_dense_fit_of_a_real_profile_follows_the_turn(cfp100: Path, model, corr):
    """mediapipe meshes a real cfp100 profile; the dense fit turns the model to it and fits it within a few percent."""
    from facecluster_widgets.detect import get_detector
    from facecluster_widgets.io.images import read_image
    from facecluster_widgets.recon.mesh import MeshReconstructor

    rgb = read_image(cfp100 / "Amber_Heard" / "profile_01.jpg")
    detection = get_detector("yunet").detect(rgb)[0]
    with MeshReconstructor() as reconstructor:
        mesh = reconstructor.reconstruct(rgb, detection.points5, detection.box)
    assert mesh is not None
    fit = DenseFitter(model, corr).fit(mesh.vertices_image)
    assert abs(rotation_angles(fit.R)[0]) > 35
    assert fit.rms_iod < 0.1
