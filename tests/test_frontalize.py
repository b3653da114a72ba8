"""3D-guided frontalisation: a face rendered turned by a known angle comes back frontal; bad input is refused."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from facecluster_widgets.errors import FaceclusterError
from facecluster_widgets.io.images import read_image
from facecluster_widgets.recon import mediapipe_topology as topo
from facecluster_widgets.recon.frontalize import (
    FrontalizeSettings,
    frontal_layout,
    frontalize,
    load_mirror,
    points5_of,
    rasterize_mesh,
    sample_texture,
)
from facecluster_widgets.recon.mesh import MeshReconstructor, face_frame, head_pose
from facecluster_widgets.standardize import similarity_transform, template_points


@pytest.fixture(scope="module")
def frontal_face(lfw10):
    """(photo, mesh) of the first lfw10 photo whose mesh reads within 8° of frontal."""
    with MeshReconstructor() as rec:
        for folder in sorted(p for p in lfw10.iterdir() if p.is_dir()):
            for path in sorted(folder.iterdir())[:3]:
                rgb = read_image(path)
                mesh = rec.reconstruct(rgb)
                if mesh is not None and abs(head_pose(mesh.vertices_image).yaw) < 8:
                    return rgb, mesh.vertices_image.astype(np.float64)
    pytest.fail("no near-frontal face meshed in lfw10")


def turned(vertices: np.ndarray, yaw_deg: float) -> np.ndarray:
    """The mesh turned about its own vertical axis by ``yaw_deg``, around its centroid."""
    frame, centre = face_frame(vertices), vertices.mean(axis=0)
    turn = Rotation.from_euler("y", yaw_deg, degrees=True).as_matrix()
    return ((vertices - centre) @ frame @ turn.T) @ frame.T + centre


def render_turned(rgb: np.ndarray, vertices: np.ndarray, yaw_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic photo of the textured mesh turned by ``yaw_deg`` (black background) and its mesh."""
    moved = turned(vertices, yaw_deg)
    pixels = rasterize_mesh(moved[:, :2], moved[:, 2], rgb.shape[:2])
    image = sample_texture(rgb, vertices[:, :2], pixels)
    image = np.where(pixels.covered.reshape(rgb.shape[:2])[..., None], image, 0)
    return np.clip(image, 0, 255).astype(np.uint8), moved


@pytest.mark.parametrize("yaw", [-35.0, 30.0])
def test_a_face_rendered_turned_comes_back_frontal(frontal_face, yaw):
    rgb, vertices = frontal_face
    photo, moved = render_turned(rgb, vertices, yaw)
    assert abs(head_pose(moved).yaw - head_pose(vertices).yaw - yaw) < 0.5
    reference = frontalize(rgb, vertices)
    back = frontalize(photo, moved)
    ignoring_turn = frontalize(photo, vertices)              # the turned photo warped as if it were frontal
    seen = reference.mask & back.mask & (back.own_share > 0.99)
    assert seen.mean() > 0.25
    error = np.abs(back.image.astype(float) - reference.image.astype(float))[seen].mean()
    control = np.abs(ignoring_turn.image.astype(float) - reference.image.astype(float))[seen].mean()
    assert error < 12, error
    assert control > 2.5 * error, (error, control)


def test_the_hidden_half_comes_from_the_mirrored_side(frontal_face):
    rgb, vertices = frontal_face
    photo, moved = render_turned(rgb, vertices, 50.0)
    plain = frontalize(photo, moved, FrontalizeSettings(mirror=False))
    filled = frontalize(photo, moved)
    left, right = filled.own_share[:, :56][filled.mask[:, :56]], filled.own_share[:, 56:][filled.mask[:, 56:]]
    hidden = left if left.mean() < right.mean() else right
    assert (hidden < 0.5).mean() > 0.3                       # much of one half is mirrored
    assert np.all(plain.own_share[plain.mask] == 1)
    frontal = frontalize(rgb, vertices)
    assert (frontal.own_share[frontal.mask] > 0.99).mean() > 0.9   # a frontal face keeps its own pixels


def test_output_sits_on_the_arcface_template(frontal_face):
    rgb, vertices = frontal_face
    out = frontalize(rgb, vertices)
    assert out.image.shape == (112, 112, 3) and out.image.dtype == np.uint8
    assert 0.3 < out.mask.mean() < 0.8
    assert not out.image[~out.mask].any()
    layout = frontal_layout(vertices)
    sim = similarity_transform(points5_of(layout), template_points(112))
    assert sim.rms_residual < 4.0
    assert np.all(out.mask[template_points(112)[:, 1].astype(int), template_points(112)[:, 0].astype(int)])


def test_mirror_map_pairs_the_two_sides():
    mirror = load_mirror()
    assert np.array_equal(mirror[mirror], np.arange(topo.N_VERTICES))
    for right, left in topo.SYMMETRIC_PAIRS:
        assert mirror[right] == left
    assert mirror[topo.NOSE_TIP] == topo.NOSE_TIP and mirror[topo.CHIN] == topo.CHIN


def test_bad_input_is_refused_with_the_reason(frontal_face, tmp_path):
    rgb, vertices = frontal_face
    with pytest.raises(FaceclusterError, match="no mesh"):
        frontalize(rgb, np.full((468, 3), np.nan))
    with pytest.raises(FaceclusterError, match="468, 3"):
        frontalize(rgb, vertices[:100])
    with pytest.raises(FaceclusterError, match="RGB uint8"):
        frontalize(rgb[..., 0], vertices)
    broken = tmp_path / "mirror.npz"
    broken.write_bytes(b"not a zip")
    with pytest.raises(FaceclusterError, match=str(broken)):
        load_mirror(broken)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, mirror=np.roll(np.arange(468), 1), hole_triangles=np.zeros((0, 3), int))
    with pytest.raises(FaceclusterError, match="own inverse"):
        load_mirror(wrong)
