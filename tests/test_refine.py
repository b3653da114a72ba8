"""The soft renderer draws what it is given, and the photometric refinement improves real and synthetic fits."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from facecluster_widgets.errors import FaceclusterError, OptionalDependencyError  # noqa: E402
from facecluster_widgets.recon import render as renderer  # noqa: E402
from facecluster_widgets.recon.morphable import (  # noqa: E402
    LandmarkFitter,
    MorphableFit,
    rotation_from_angles,
    synthesise_landmarks,
)
from facecluster_widgets.recon.refine import PhotometricRefiner, RefineSettings, refine_fit  # noqa: E402
from facecluster_widgets.recon.render import ambient_light, render, sh_basis, shade, vertex_normals  # noqa: E402

pytestmark = pytest.mark.slow  # photometric refinement (torch optimisation per face)

#: Small crops and few steps keep the file fast; the benchmark runs the defaults.
FAST = {"crop_size": 64, "iterations": 40}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two threads fight over two shared cores; one is faster here. The user's setting comes back after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _grid(x0: float, y0: float, side: float, cells: int, depth: float) -> tuple[torch.Tensor, torch.Tensor,
                                                                                      torch.Tensor]:
    """A flat square of ``2 * cells^2`` triangles (about a pixel each, like the face mesh), facing the camera."""
    u = np.linspace(0, side, cells + 1)
    xs, ys = np.meshgrid(x0 + u, y0 + u)
    xy = np.stack([xs.ravel(), ys.ravel()], axis=1)
    index = np.arange((cells + 1) ** 2).reshape(cells + 1, cells + 1)
    a, b, c, d = index[:-1, :-1].ravel(), index[:-1, 1:].ravel(), index[1:, :-1].ravel(), index[1:, 1:].ravel()
    # Clockwise on screen (y down) = counter-clockwise seen from +z with y up: front-facing.
    triangles = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)])
    return (torch.tensor(xy, dtype=torch.float32), torch.full((len(xy),), depth),
            torch.tensor(triangles, dtype=torch.int64))


def test_missing_torch_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(OptionalDependencyError, match=r"pip install 'facecluster_widgets\[refine\]'"):
        renderer._torch()


def test_flat_mesh_shows_its_colour_inside_and_background_outside():
    xy, z, triangles = _grid(10.0, 12.0, 30.0, 20, depth=5.0)          # 1.5-pixel cells
    colour = torch.tensor([0.8, 0.3, 0.1])
    image, alpha = render(xy, z, colour.expand(len(xy), 3), triangles, (50, 50), background=0.5)
    image, alpha = image.numpy(), alpha.numpy()
    inside = image[14:41, 12:39].reshape(-1, 3)
    np.testing.assert_allclose(inside, np.tile(colour.numpy(), (len(inside), 1)), atol=1e-5)
    assert alpha[14:41, 12:39].min() > 0.999                           # no background through inner edges
    outside = np.ones((50, 50), dtype=bool)
    outside[10:45, 8:43] = False                                       # more than a blur radius away
    np.testing.assert_array_equal(image[outside], 0.5)
    assert alpha[outside].max() == 0.0
    edge = alpha[25, 8:13]                                             # across the left edge at x = 10
    assert np.all(np.diff(edge) >= 0)                                  # soft, monotone silhouette,
    assert edge[1] < 0.1 and edge[2] == pytest.approx(0.5, abs=1e-3) and edge[3] > 0.9    # half on the edge


def test_nearer_surface_hides_the_farther_one_and_back_faces_are_culled():
    near_xy, near_z, near_tri = _grid(10.0, 10.0, 20.0, 12, depth=8.0)
    far_xy, far_z, far_tri = _grid(20.0, 20.0, 20.0, 12, depth=2.0)
    xy, z = torch.cat([near_xy, far_xy]), torch.cat([near_z, far_z])
    colours = torch.cat([torch.tensor([1.0, 0.0, 0.0]).expand(len(near_xy), 3),
                         torch.tensor([0.0, 0.0, 1.0]).expand(len(far_xy), 3)])
    triangles = torch.cat([near_tri, far_tri + len(near_xy)])
    image = render(xy, z, colours, triangles, (48, 48))[0].numpy()
    np.testing.assert_allclose(image[25, 25], [1, 0, 0], atol=1e-3)   # overlap: the nearer red square
    np.testing.assert_allclose(image[35, 35], [0, 0, 1], atol=1e-3)   # the far square alone
    flipped = triangles[:, [0, 2, 1]]                                  # turned away from the camera
    assert render(xy, z, colours, flipped, (48, 48))[1].max() == 0


def test_gradients_reach_vertex_positions_depths_and_colours(model):
    R = rotation_from_angles(35, 10, 0)                                # the nose hides part of a cheek
    points = model.mean @ R.T
    xy = torch.tensor(points[:, :2] * np.array([2.5, -2.5]) + 32, dtype=torch.float32, requires_grad=True)
    z = torch.tensor(points[:, 2] * 2.5, dtype=torch.float32, requires_grad=True)
    colours = torch.rand(len(xy), 3, generator=torch.Generator().manual_seed(0), requires_grad=True)
    triangles = torch.as_tensor(model.triangles, dtype=torch.int64)
    image, alpha = render(xy, z, colours, triangles, (64, 64), background=0.2)
    ((image - 0.5) ** 2).sum().add(alpha.sum()).backward()
    for grad in (xy.grad, z.grad, colours.grad):
        assert torch.isfinite(grad).all()
        assert (grad.abs().sum(dim=-1) > 0 if grad.ndim > 1 else grad.abs() > 0).sum() > 1000


def test_sh_basis_is_orthonormal_and_dc_light_shades_uniformly():
    n = 20000                                                          # Fibonacci sphere: near-uniform points
    k = np.arange(n) + 0.5
    zc = 1 - 2 * k / n
    phi = np.pi * (1 + 5 ** 0.5) * k
    normals = np.stack([np.sqrt(1 - zc ** 2) * np.cos(phi), np.sqrt(1 - zc ** 2) * np.sin(phi), zc], axis=1)
    basis = sh_basis(torch.tensor(normals)).numpy()
    np.testing.assert_allclose(4 * np.pi * basis.T @ basis / n, np.eye(9), atol=2e-3)
    albedo = torch.tensor([[0.6, 0.4, 0.3]]).expand(n, 3)
    uniform = shade(albedo, torch.tensor(normals, dtype=torch.float32), torch.tensor(ambient_light(0.8),
                                                                                      dtype=torch.float32))
    np.testing.assert_allclose(uniform.numpy(), np.tile([0.48, 0.32, 0.24], (n, 1)), atol=1e-5)
    light = ambient_light()
    light[2] = 0.5                                                     # + light from the camera (z)
    lit = shade(albedo, torch.tensor(normals, dtype=torch.float32), torch.tensor(light, dtype=torch.float32))
    assert lit[zc > 0.9, 0].min() > lit[zc < -0.9, 0].max()            # facing the light is brighter


def test_vertex_normals_point_out_of_the_face(model):
    normals = vertex_normals(torch.tensor(model.mean), torch.as_tensor(model.triangles, dtype=torch.int64))
    assert normals[model.landmarks68[30], 2] > 0.9                     # nose tip faces +z


@pytest.fixture(scope="module")
def scene(model):
    """A known face (identity, pose, smooth symmetric albedo, light from the upper right) drawn by the
    renderer itself, with its exact 68 landmarks."""
    rng = np.random.default_rng(0)
    alpha = np.zeros(80)
    alpha[:10] = rng.normal(0, 0.7, 10)
    beta = np.zeros(model.n_expression)
    R, scale, t = rotation_from_angles(12, -5, 3), 3.4, np.array([64.0, -70.0])
    camera = model.shape(alpha, beta) @ R.T
    xy = (scale * camera[:, :2] + t) * np.array([1.0, -1.0])
    triangles = torch.as_tensor(model.triangles, dtype=torch.int64)
    m = model.mean
    albedo = np.array([0.75, 0.55, 0.45]) * (0.75 - 0.2 * np.cos(1.2 * m[:, 0]) * np.sin(1.2 * m[:, 1]))[:, None]
    light = ambient_light()
    light[1:4] += np.array([0.3, 0.6, 0.5])[:, None]
    colours = shade(torch.tensor(albedo, dtype=torch.float32), vertex_normals(torch.tensor(camera), triangles).float(),
                    torch.tensor(light, dtype=torch.float32))
    image = render(torch.tensor(xy, dtype=torch.float32), torch.tensor(scale * camera[:, 2], dtype=torch.float32),
                   colours, triangles, (128, 128), background=0.3)[0]
    rgb = (np.clip(image.numpy(), 0, 1) * 255).round().astype(np.uint8)
    points = synthesise_landmarks(model, alpha, beta, scale, R, t)
    truth = MorphableFit(alpha=alpha, beta=beta, scale=scale, R=R, t=t, rms_px=0.0, rms_iod=0.0, iterations=0,
                         landmark_vertices=model.landmarks68.copy(), projected=points)
    return rgb, points, truth


def _rotation_error_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1))))


@pytest.mark.parametrize("axis", ["yaw", "roll"])
def test_photometric_term_alone_turns_a_perturbed_pose_back(model, scene, axis):
    """Landmark term off: only the image can pull the pose back. The RMS against the exact landmarks
    measures how far the projected face still is from the truth. (From the exact pose the photometric
    optimum lies within ~0.5 px of it: the smooth albedo model cannot copy the scene's exactly.)"""
    rgb, points, truth = scene
    turn = rotation_from_angles(4, 0, 0) if axis == "yaw" else rotation_from_angles(0, 0, 4)
    start = _replace(truth, R=turn @ truth.R)
    out = refine_fit(rgb, points, start, model, RefineSettings(lambda_landmark=0.0, **FAST))
    assert out.photo_error_after < 0.8 * out.photo_error_before
    assert out.landmark_rms_after < 0.7 * out.landmark_rms_before
    assert _rotation_error_deg(out.R, truth.R) < 0.75 * _rotation_error_deg(start.R, truth.R)


def _replace(fit: MorphableFit, **changes: object) -> MorphableFit:
    fields = {name: getattr(fit, name) for name in ("alpha", "beta", "scale", "R", "t", "rms_px", "rms_iod",
                                                    "iterations", "landmark_vertices", "projected")}
    return MorphableFit(**{**fields, **changes})


@pytest.fixture(scope="module")
def real_face(lfw10: Path):
    """One real LFW photo with dlib's 68 landmarks."""
    import dlib
    import face_recognition_models

    from facecluster_widgets.io.images import read_image

    rgb = read_image(sorted(sorted(p for p in lfw10.iterdir() if p.is_dir())[0].glob("*.jpg"))[0])
    rect = max(dlib.get_frontal_face_detector()(rgb, 1), key=lambda r: r.area())
    shape = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())(rgb, rect)
    return rgb, np.array([(shape.part(k).x, shape.part(k).y) for k in range(68)], dtype=np.float64)


def test_real_face_refinement_lowers_photometric_error_and_keeps_landmarks(model, real_face):
    rgb, points = real_face
    fit = LandmarkFitter(model).fit(points)
    out = PhotometricRefiner(model, RefineSettings(**FAST)).refine(rgb, points, fit)
    assert out.photo_error_before < out.photo_error_initial            # light explains some of the photo
    assert out.photo_error_after < 0.95 * out.photo_error_before       # and the geometry more of it
    assert out.landmark_rms_before == pytest.approx(fit.rms_px, abs=0.01)
    assert out.landmark_rms_after < fit.rms_px + 0.3                   # dlib's points are ~2 px off anyway
    assert out.alpha.shape == (80,) and out.beta.shape == (model.n_expression,)
    assert out.beta.min() >= 0 and out.beta.max() <= 1
    np.testing.assert_allclose(out.R @ out.R.T, np.eye(3), atol=1e-5)
    assert out.iterations == FAST["iterations"] and out.seconds > 0 and out.mask_pixels > 500


def test_bad_inputs_raise_clear_errors(model, real_face):
    rgb, points = real_face
    fit = LandmarkFitter(model).fit(points)
    refiner = PhotometricRefiner(model, RefineSettings(**FAST))
    with pytest.raises(FaceclusterError, match="uint8"):
        refiner.refine(rgb.astype(np.float32), points, fit)
    with pytest.raises(FaceclusterError, match="68"):
        refiner.refine(rgb, points[:5], fit)
    with pytest.raises(FaceclusterError, match="skin pixels"):
        refiner.refine(rgb, points, _replace(fit, t=fit.t + 1000.0))
    for bad in ({"crop_size": 8}, {"lambda_photo": -1.0}, {"resolve_every": 0}, {"sigma": 0.0}):
        with pytest.raises(FaceclusterError):
            RefineSettings(**bad)


def test_extract_with_refinement_changes_the_fit_and_only_the_3d_stages(tmp_path, lfw10):
    """refine=RefineSettings(...) is a pipeline option: the fit and descriptors are recomputed (a new store key),
    the 2D stages come from the store, and the refined identity differs from the landmark-only one."""
    import facecluster_widgets as fc

    photos = sorted(lfw10.rglob("*.jpg"))[:2]
    plain = fc.extract(photos, tmp_path / "s", progress=False)
    alpha_plain = plain.read_array("fit_alpha").copy()
    refined = fc.extract(photos, tmp_path / "s", progress=False, refine=RefineSettings(iterations=6))
    run = refined.read_json("run")
    assert run["counts"].get("morphable") == 2 and "embed" not in run["counts"]  # only the 3D stages ran
    alpha = refined.read_array("fit_alpha")
    assert np.isfinite(alpha).all() and not np.allclose(alpha, alpha_plain)
    assert refined.table["fit_residual"].lt(0.1).all() and refined.features.valid.all()
