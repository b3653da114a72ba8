"""The morphable model loads as documented and its landmark fit recovers known faces and poses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facecluster_widgets.errors import FaceclusterError, ModelMissingError
from facecluster_widgets.recon.morphable import (
    MIRROR_68,
    FitSettings,
    LandmarkFitter,
    load_morphable_model,
    mirror_landmarks,
    rotation_angles,
    rotation_from_angles,
    synthesise_landmarks,
)


@pytest.fixture(scope="module")
def real_points(lfw10: Path, dlib_points68) -> np.ndarray:
    """dlib's 68 landmarks of one real LFW photo."""
    from facecluster_widgets.io.images import read_image

    rgb = read_image(sorted(sorted(lfw10.iterdir())[0].glob("*.jpg"))[0])
    return dlib_points68(rgb)


def _rotation_error_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1))))


def test_ict_model_loads_with_documented_shapes(model):
    assert model.mean.shape == (9409, 3)
    assert model.identity.shape == (100, 9409, 3)
    assert model.expression.shape == (53, 9409, 3)
    assert len(model.expression_names) == 53 and "jawOpen" in model.expression_names
    assert model.landmarks68.shape == (68,)
    # +z out of the face: the nose tip (landmark 30) is the most forward landmark.
    assert np.argmax(model.mean[model.landmarks68, 2]) == 30
    # The 68-point mirror permutation agrees with the mesh's own left/right mirror map.
    mirror = model.mirror_vertices
    assert np.array_equal(mirror[mirror], np.arange(model.n_vertices))
    assert np.array_equal(mirror[model.landmarks68], model.landmarks68[MIRROR_68])


def test_missing_and_malformed_model_files_raise_clear_errors(tmp_path):
    with pytest.raises(ModelMissingError, match="nowhere.npz"):
        load_morphable_model(tmp_path / "nowhere.npz")
    bad = tmp_path / "bad.npz"
    np.savez(bad, mean=np.zeros((10, 3)), identity=np.zeros((5, 11, 3)), triangles=np.zeros((2, 3), int),
             landmarks68=np.zeros(68, int))
    with pytest.raises(FaceclusterError, match=r"bad\.npz.*identity has shape"):
        load_morphable_model(bad)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(FaceclusterError, match="junk.npz"):
        load_morphable_model(junk)


def test_bfm_style_file_gives_the_same_model(model, tmp_path):
    """A BFM-style file (flattened coordinates, unit basis + standard deviations, 1-based
    triangles) of the first 20 ICT modes loads into the same model."""
    n = model.n_vertices
    modes = model.identity[:20].reshape(20, 3 * n).T                    # (3N, 20), interleaved xyz
    std = np.linalg.norm(modes, axis=0)
    path = tmp_path / "bfm.npz"
    np.savez(path, shapeMU=model.mean.reshape(-1), shapePC=modes / std, shapeEV=std,
             expPC=model.expression[:5].reshape(5, 3 * n).T, tri=model.triangles + 1,
             kpt_ind=model.landmarks68)
    bfm = load_morphable_model(path)
    np.testing.assert_allclose(bfm.identity, model.identity[:20], atol=1e-9)
    np.testing.assert_allclose(bfm.expression, model.expression[:5], atol=1e-9)
    assert np.array_equal(bfm.triangles, model.triangles)
    assert bfm.expression_bounds == (-np.inf, np.inf)


def test_fit_recovers_known_identity_expression_and_pose(model):
    """A model face with known identity, expression and a clearly turned pose, projected to 68
    points, is recovered: identity correlation > 0.9, expression within 0.05, pose within 2 degrees."""
    rng = np.random.default_rng(1)
    alpha = np.zeros(80)
    alpha[:10] = rng.normal(size=10)
    beta = np.zeros(53)
    names = model.expression_names
    beta[[names.index("jawOpen"), names.index("mouthSmile_L"), names.index("eyeBlink_R")]] = [0.3, 0.5, 0.4]
    R = rotation_from_angles(25, -10, 8)
    points = synthesise_landmarks(model, alpha, beta, 3.0, R, np.array([125.0, -140.0]))
    settings = FitSettings(n_identity=10, contour="fixed", reg_identity=1e-6, reg_expression=1e-6,
                           iterations=100, tolerance=1e-9)
    fit = LandmarkFitter(model, settings).fit(points)
    assert np.corrcoef(alpha[:10], fit.alpha)[0, 1] > 0.9
    assert np.abs(fit.beta - beta).max() < 0.05
    assert _rotation_error_deg(R, fit.R) < 2.0
    assert np.allclose(fit.angles_deg, (25, -10, 8), atol=2.0)
    assert fit.rms_px < 0.01 and abs(fit.scale - 3.0) < 0.02
    # Wrong answers are far: the mean face at the frontal pose does not explain these points.
    frontal = synthesise_landmarks(model, np.zeros(80), np.zeros(53), 3.0, np.eye(3),
                                   np.array([125.0, -140.0]))
    assert np.sqrt(np.mean(np.sum((frontal - points) ** 2, axis=1))) > 5 * fit.rms_px + 1.0


def test_rotation_angles_round_trip():
    for angles in [(0, 0, 0), (30, -12, 5), (-45, 20, -30)]:
        np.testing.assert_allclose(rotation_angles(rotation_from_angles(*angles)), angles, atol=1e-9)


def test_marching_moves_far_side_contour_to_the_silhouette(model):
    """On a face turned 35 degrees, the far side's jaw-line landmarks move inward (to the cheek's
    silhouette); on a frontal face the jaw-line landmarks stay on their vertices."""
    fitter = LandmarkFitter(model, FitSettings(contour="march"))
    frontal = synthesise_landmarks(model, np.zeros(80), np.zeros(53), 3.0, np.eye(3), np.array([0.0, 0.0]))
    fit = fitter.fit(frontal)
    x_fixed = np.abs(model.mean[model.landmarks68[:17], 0])
    x_frontal = np.abs(model.mean[fit.landmark_vertices[:17], 0])
    np.testing.assert_allclose(x_frontal, x_fixed, atol=0.05)
    # Turning by +35 degrees yaw sends the +x side (landmarks 12-16) away from the camera: those move
    # inward; the near side's stay on the jaw line.
    turned = synthesise_landmarks(model, np.zeros(80), np.zeros(53), 3.0, rotation_from_angles(35, 0, 0),
                                  np.array([0.0, 0.0]))
    fit = fitter.fit(turned)
    x_turned = np.abs(model.mean[fit.landmark_vertices[:17], 0])
    assert np.all(x_turned[12:17] < x_fixed[12:17] - 0.5)
    np.testing.assert_allclose(x_turned[:6], x_fixed[:6], atol=0.05)


def test_real_face_fits_closely_and_deterministically(model, real_points):
    fitter = LandmarkFitter(model)
    fit = fitter.fit(real_points)
    assert fit.rms_iod < 0.06 and fit.alpha.shape == (80,) and fit.beta.shape == (53,)
    assert np.all((fit.beta >= 0) & (fit.beta <= 1))
    assert np.abs(fit.alpha).max() < 6  # within the prior, not an exploded solution
    again = fitter.fit(real_points.copy())
    assert np.array_equal(fit.alpha, again.alpha) and np.array_equal(fit.R, again.R)
    # The fit is in image coordinates: shifting the photo shifts the projection, not the identity.
    shifted = fitter.fit(real_points + np.array([40.0, -25.0]))
    np.testing.assert_allclose(shifted.alpha, fit.alpha, atol=1e-6)
    np.testing.assert_allclose(shifted.projected, fit.projected + np.array([40.0, -25.0]), atol=1e-6)


def test_mirrored_photo_gives_mirrored_identity(model, real_points):
    """Mirroring the 2D landmarks (x -> -x, left/right indices swapped) gives the model's mirror image
    of the identity shape, vertex for vertex."""
    fitter = LandmarkFitter(model)
    fit = fitter.fit(real_points)
    mirror_fit = fitter.fit(mirror_landmarks(real_points))
    shape = model.shape(fit.alpha)
    mirrored_shape = model.shape(mirror_fit.alpha)
    expected = shape[model.mirror_vertices] * np.array([-1.0, 1.0, 1.0])
    spread = np.linalg.norm(shape - model.mean, axis=1).mean()
    assert np.linalg.norm(mirrored_shape - expected, axis=1).mean() < 0.05 * spread
    yaw, pitch, roll = fit.angles_deg
    m_yaw, m_pitch, m_roll = mirror_fit.angles_deg
    assert abs(yaw + m_yaw) < 1.0 and abs(pitch - m_pitch) < 1.0 and abs(roll + m_roll) < 1.0


@pytest.mark.parametrize("points, problem", [
    (np.zeros((5, 2)), "68, 2"),
    (np.full((68, 2), np.nan), "NaN"),
    (np.zeros((68, 2)), "degenerate"),
])
def test_bad_landmarks_raise(model, points, problem):
    with pytest.raises(FaceclusterError, match=problem):
        LandmarkFitter(model).fit(points)


def test_bad_settings_raise():
    with pytest.raises(FaceclusterError, match="contour"):
        FitSettings(contour="silhouette")
