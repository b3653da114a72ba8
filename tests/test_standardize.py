"""The 2D standardisation: known-answer geometry, the exact NTSC formula, and real lfw10 faces."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from facecluster_widgets import standardize as st
from facecluster_widgets.detect.base import points5_from_68
from facecluster_widgets.errors import FaceclusterError
from facecluster_widgets.io.images import read_image


@pytest.fixture(scope="module")
def dlib_points5(dlib_points68):
    """dlib's HOG detector + 68-point predictor reduced to the 5 alignment points."""

    def points5(rgb: np.ndarray, upsample: int = 1) -> np.ndarray:
        return points5_from_68(dlib_points68(rgb, upsample))

    return points5


@pytest.fixture(scope="module")
def lfw_first(lfw10: Path) -> list[np.ndarray]:
    """The first photo of each of the 10 lfw10 identities."""
    return [read_image(sorted(d.iterdir())[0]) for d in sorted(p for p in lfw10.iterdir() if p.is_dir())]


def _known_similarity(scale: float, angle_deg: float, t: tuple[float, float]) -> np.ndarray:
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    return np.array([[scale * c, -scale * s, t[0]], [scale * s, scale * c, t[1]]])


# ---------------------------------------------------------------- similarity


def test_similarity_recovers_exact_transform_with_zero_residual():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 250, size=(5, 2))
    m = _known_similarity(0.61, -23.0, (14.0, -7.5))
    dst = src @ m[:, :2].T + m[:, 2]
    sim = st.similarity_transform(src, dst)
    assert sim.scale == pytest.approx(0.61, abs=1e-10)
    assert sim.rotation_deg == pytest.approx(-23.0, abs=1e-8)
    assert sim.translation == pytest.approx((14.0, -7.5), abs=1e-8)
    np.testing.assert_allclose(sim.matrix, m, atol=1e-10)
    assert sim.rms_residual == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(sim.apply_inverse(sim.apply(src)), src, atol=1e-9)


def test_similarity_under_noise_is_close_and_least_squares():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 200, size=(68, 2))
    m = _known_similarity(1.7, 12.0, (-30.0, 40.0))
    sigma = 0.8
    dst = src @ m[:, :2].T + m[:, 2] + rng.normal(0, sigma, size=src.shape)
    sim = st.similarity_transform(src, dst)
    assert sim.scale == pytest.approx(1.7, rel=0.01)
    assert sim.rotation_deg == pytest.approx(12.0, abs=0.3)
    # RMS of a 2D residual with 4 fitted parameters: about sigma * sqrt(2).
    assert 0.8 * sigma * math.sqrt(2) < sim.rms_residual < 1.2 * sigma * math.sqrt(2)

    def rms(matrix: np.ndarray) -> float:
        return float(np.sqrt(((src @ matrix[:, :2].T + matrix[:, 2] - dst) ** 2).sum(axis=1).mean()))

    assert rms(sim.matrix) == pytest.approx(sim.rms_residual)
    for d_scale, d_angle, d_t in [(0.002, 0, (0, 0)), (0, 0.05, (0, 0)), (0, 0, (0.2, 0)), (0, 0, (0, -0.2))]:
        tweaked = _known_similarity(sim.scale + d_scale, sim.rotation_deg + d_angle,
                                    (sim.translation[0] + d_t[0], sim.translation[1] + d_t[1]))
        assert rms(tweaked) > sim.rms_residual


def test_similarity_agrees_with_scikit_image():
    transform = pytest.importorskip("skimage.transform")
    rng = np.random.default_rng(2)
    src = rng.uniform(0, 100, size=(5, 2))
    dst = src[::-1] * 0.9 + rng.normal(0, 3, size=src.shape)
    ref = transform.SimilarityTransform.from_estimate(src, dst)
    np.testing.assert_allclose(st.similarity_transform(src, dst).matrix, ref.params[:2], atol=1e-8)


def test_similarity_without_rotation_keeps_orientation():
    src = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    dst = src @ _known_similarity(2.0, 30.0, (5.0, 5.0))[:, :2].T
    sim = st.similarity_transform(src, dst, allow_rotation=False)
    assert sim.rotation_deg == 0.0
    assert sim.rms_residual > 1.0


@pytest.mark.parametrize(
    ("src", "dst", "match"),
    [
        (np.zeros((5, 2)), np.ones((5, 2)), "same point"),
        (np.ones((5, 3)), np.ones((5, 3)), "shape"),
        (np.array([[0, 0], [1, np.nan]]), np.ones((2, 2)), "NaN"),
        (np.ones((4, 2)), np.ones((5, 2)), "matching points"),
    ],
)
def test_similarity_rejects_bad_points(src, dst, match):
    with pytest.raises(FaceclusterError, match=match):
        st.similarity_transform(src, dst)


# ---------------------------------------------------------------- templates


def test_templates_match_insightface_and_scale_to_160():
    assert st.template_points(112) == pytest.approx(st.ARCFACE_TEMPLATE_112)
    np.testing.assert_allclose(st.template_points(160), st.ARCFACE_TEMPLATE_112 * 160 / 112)
    np.testing.assert_allclose(st.FACENET_TEMPLATE_160, st.template_points(160))
    padded = st.template_points(224, padding=0.5)  # the 112 face square fills the middle half
    np.testing.assert_allclose(padded, st.ARCFACE_TEMPLATE_112 + 56.0)
    # order: image-left eye, image-right eye, nose, image-left mouth corner, image-right one
    t = st.ARCFACE_TEMPLATE_112
    assert t[0, 0] < t[1, 0] and t[3, 0] < t[4, 0] and t[0, 1] < t[2, 1] < t[3, 1]
    face_align = pytest.importorskip("insightface.utils.face_align")
    np.testing.assert_allclose(st.ARCFACE_TEMPLATE_112, face_align.arcface_dst)


# ---------------------------------------------------------------- photometric steps


def test_ntsc_grey_is_the_formula():
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    r, g, b = (rgb[:, :, i].astype(np.float64) for i in range(3))
    expected = 0.299 * r + 0.587 * g + 0.114 * b
    np.testing.assert_allclose(st.ntsc_grey(rgb, np.float32), expected, rtol=1e-6)
    np.testing.assert_array_equal(st.ntsc_grey(rgb), np.rint(expected).astype(np.uint8))
    assert st.ntsc_grey(rgb).shape == (37, 53)


def test_clahe_raises_local_contrast_of_a_real_face_and_params_matter(lfw_first):
    grey = st.ntsc_grey(lfw_first[0])
    flat = (grey.astype(np.float64) * 0.2 + 100).astype(np.uint8)  # a washed-out photo
    out = st.clahe(flat)
    assert out.dtype == np.uint8 and out.shape == flat.shape
    assert out.std() > 1.5 * flat.std()
    assert not np.array_equal(out, st.clahe(flat, clip_limit=4.0))
    assert not np.array_equal(out, st.clahe(flat, tile_grid=(4, 4)))
    colour = st.clahe_colour(lfw_first[0])
    assert colour.shape == lfw_first[0].shape
    with pytest.raises(FaceclusterError, match="shape"):
        st.clahe(lfw_first[0])
    with pytest.raises(FaceclusterError, match="clip_limit"):
        st.clahe(grey, clip_limit=0)


def test_gamma_identity_brightens_and_matches_eq3(lfw_first):
    img = lfw_first[1]
    np.testing.assert_array_equal(st.gamma(img, 1.0), img)
    bright = st.gamma(img, 0.5)
    assert (bright >= img).all() and bright.mean() > img.mean() + 10
    assert (st.gamma(img, 2.0) <= img).all()
    levels = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(st.gamma(levels[None, :], 0.7)[0],
                                  np.rint(255 * (levels / 255.0) ** 0.7).astype(np.uint8))
    with pytest.raises(FaceclusterError, match="gamma"):
        st.gamma(img, 0)


# ---------------------------------------------------------------- alignment on real faces


def test_align_puts_real_eyes_on_the_template(lfw_first, dlib_points5):
    fitted, redetected = [], []
    for rgb in lfw_first:
        pts = dlib_points5(rgb)
        aligned, sim = st.align(rgb, pts, 112)
        assert aligned.shape == (112, 112, 3) and aligned.dtype == np.uint8
        assert 0 < sim.rms_residual < 8
        fitted.append(np.linalg.norm(sim.apply(pts)[:2] - st.ARCFACE_TEMPLATE_112[:2], axis=1))
        # independent check: find the eyes again in the warped pixels
        found = dlib_points5(aligned, upsample=2)
        redetected.append(np.linalg.norm(found[:2] - st.ARCFACE_TEMPLATE_112[:2], axis=1))
    fitted, redetected = np.concatenate(fitted), np.concatenate(redetected)
    assert np.median(fitted) < 3.0 and fitted.max() < 8.0
    assert np.median(redetected) < 3.0 and redetected.max() < 8.0


def test_standardising_a_mirrored_photo_gives_the_mirrored_crop(lfw_first, dlib_points5):
    rgb = lfw_first[2]
    flipped = np.ascontiguousarray(rgb[:, ::-1])
    face = st.standardise(rgb, dlib_points5(rgb))
    mirror = st.standardise(flipped, dlib_points5(flipped))
    assert mirror.similarity.rotation_deg == pytest.approx(-face.similarity.rotation_deg, abs=1.5)
    same = np.abs(mirror.final.astype(float) - face.final[:, ::-1]).mean()
    unmirrored = np.abs(mirror.final.astype(float) - face.final).mean()
    # CLAHE amplifies the small landmark differences (measured 7-13 grey levels over lfw10, against
    # 35-127 for the unmirrored crop), the colour crop shows them as they are (3-9).
    assert same < 15 and same < 0.35 * unmirrored
    colour = np.abs(mirror.aligned_rgb.astype(float) - face.aligned_rgb[:, ::-1]).mean()
    assert colour < 8


def test_crop_box_maps_back_to_the_photo(lfw_first):
    crop, sim = st.crop_box(lfw_first[0], (70, 60, 180, 190), size=256, margin=0.25)
    assert crop.shape == (256, 256, 3)
    np.testing.assert_allclose(sim.apply_inverse([[128, 128]]), [[125, 125]])
    assert math.isnan(sim.rms_residual)
    assert st.resize(crop, 64).shape == (64, 64, 3)
    assert st.resize(crop, (300, 200)).shape == (200, 300, 3)


# ---------------------------------------------------------------- the pipeline


def test_standardise_keeps_every_step_and_each_switch_works(lfw_first, dlib_points5):
    rgb = lfw_first[3]
    pts = dlib_points5(rgb)
    full = st.standardise(rgb, pts, st.StandardiseConfig(size=160, gamma=0.8))
    assert full.grey.shape == rgb.shape[:2]
    assert full.aligned.shape == (160, 160) and full.aligned_rgb.shape == (160, 160, 3)
    np.testing.assert_array_equal(full.clahe, st.clahe(full.aligned))
    np.testing.assert_array_equal(full.gamma, st.gamma(full.clahe, 0.8))
    assert full.final is full.gamma
    assert list(full.steps()) == ["grey", "aligned", "clahe", "gamma"]
    # grey then align equals align then grey, up to interpolation rounding
    assert np.abs(full.aligned.astype(int) - st.ntsc_grey(full.aligned_rgb)).max() <= 2

    plain = st.standardise(rgb, pts, st.StandardiseConfig(clahe=False))
    assert plain.clahe is None and plain.gamma is None and plain.final is plain.aligned

    colour = st.standardise(rgb, pts, st.StandardiseConfig(grey=False))
    assert colour.grey is None and colour.final.shape == (112, 112, 3)

    unrotated = st.standardise(rgb, pts, st.StandardiseConfig(align=False))
    assert unrotated.similarity.rotation_deg == 0.0
    whole = st.standardise(rgb, None, st.StandardiseConfig(align=False))
    assert whole.final.shape == (112, 112) and math.isnan(whole.similarity.rms_residual)


@pytest.mark.parametrize(
    ("rgb", "points", "config", "match"),
    [
        (np.zeros((50, 50, 3), np.float32), np.ones((5, 2)), None, "uint8"),
        (np.zeros((50, 50), np.uint8), np.ones((5, 2)), None, "shape"),
        (np.zeros((50, 50, 3), np.uint8), np.full((5, 2), np.nan), None, "NaN"),
        (np.zeros((50, 50, 3), np.uint8), np.ones((68, 2)), None, r"\(5, 2\)"),
        (np.zeros((50, 50, 3), np.uint8), None, None, "required"),
        ([[0]], np.ones((5, 2)), None, "numpy array"),
    ],
)
def test_standardise_rejects_bad_input(rgb, points, config, match):
    with pytest.raises(FaceclusterError, match=match):
        st.standardise(rgb, points, config)


@pytest.mark.parametrize(
    "kwargs",
    [{"size": 128}, {"clip_limit": -1.0}, {"tile_grid": (0, 8)}, {"tile_grid": 8}, {"gamma": float("nan")},
     {"border": "wrap"}],
)
def test_config_rejects_bad_values(kwargs):
    with pytest.raises(FaceclusterError):
        st.StandardiseConfig(**kwargs)


def test_cv2_grey_is_not_silently_used():
    """OpenCV's fixed-point grey differs from eq. 8 on some pixels; ours must not."""
    rng = np.random.default_rng(4)
    rgb = rng.integers(0, 256, size=(200, 200, 3), dtype=np.uint8)
    exact = np.rint(rgb.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.uint8)
    np.testing.assert_array_equal(st.ntsc_grey(rgb), exact)
    assert (cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) != exact).any()
