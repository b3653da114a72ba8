"""3D descriptors: geodesics behave like surface distances, curvature matches known surfaces, and the
blocks respond to a mirrored face as a mirror image should."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from facecluster_widgets.descriptors import (
    CURVATURE_REGIONS,
    GAUSS_CURVATURE_EDGES,
    GEODESIC_PAIRS,
    GEODESIC_POINTS,
    MEAN_CURVATURE_EDGES,
    DescriptorExtractor,
    mirrored_pair_order,
    vertex_curvatures,
)
from facecluster_widgets.errors import FaceclusterError
from facecluster_widgets.recon.morphable import LandmarkFitter, mirror_landmarks


@pytest.fixture(scope="module")
def extractor(model):
    return DescriptorExtractor(model)


@pytest.fixture(scope="module")
def real_fits(model, lfw10: Path, dlib_points68):
    """Fits of one real LFW photo's dlib landmarks and of its mirror image."""
    from facecluster_widgets.io.images import read_image

    rgb = read_image(sorted(sorted(lfw10.iterdir())[1].glob("*.jpg"))[0])
    points = dlib_points68(rgb)
    fitter = LandmarkFitter(model)
    return fitter.fit(points), fitter.fit(mirror_landmarks(points))


def test_geodesic_at_least_euclidean_and_transport_exact_on_mean(model, extractor, real_fits):
    exact = DescriptorExtractor(model, geodesic_method="exact")
    pairs = GEODESIC_PAIRS
    for shape in (model.mean, extractor.identity_shape(real_fits[0].alpha)):
        distances = extractor.geodesic_distances(shape)
        where = extractor.point_vertices
        euclid = np.array([np.linalg.norm(shape[where[a]] - shape[where[b]]) for a, b in pairs])
        assert np.all(distances >= euclid - 1e-9)
        assert np.any(distances > 1.02 * euclid)  # the face is curved: some pairs are clearly longer
        exact_d = exact.geodesic_distances(shape)
        # Transported paths are surface paths, hence never shorter than the exact geodesic, and
        # close to it (equal on the mean face, where they were traced).
        assert np.all(distances >= exact_d - 1e-6)
        assert np.all(distances <= exact_d * 1.06)
    np.testing.assert_allclose(extractor.geodesic_distances(model.mean), exact.geodesic_distances(model.mean),
                               rtol=1e-6)


def test_geodesic_paths_run_between_the_named_vertices(model, extractor):
    paths = extractor.geodesic_paths(model.mean)
    assert list(paths) == list(GEODESIC_PAIRS)
    for (a, b), polyline in paths.items():
        np.testing.assert_allclose(polyline[0], model.mean[model.landmarks68[GEODESIC_POINTS[a]]], atol=1e-6)
        np.testing.assert_allclose(polyline[-1], model.mean[model.landmarks68[GEODESIC_POINTS[b]]], atol=1e-6)


def test_flat_patch_has_zero_curvature():
    x, y = np.meshgrid(np.linspace(0, 1, 12), np.linspace(0, 1, 12))
    vertices = np.c_[x.ravel(), y.ravel(), 0.3 * x.ravel() + 0.1 * y.ravel()]  # a tilted plane
    cells = np.arange(144).reshape(12, 12)[:-1, :-1].ravel()
    triangles = np.r_[np.c_[cells, cells + 1, cells + 13], np.c_[cells, cells + 13, cells + 12]]
    mean_h, gauss, _ = vertex_curvatures(vertices, triangles)
    interior = ((x > 0) & (x < 1) & (y > 0) & (y < 1)).ravel()
    assert np.abs(mean_h[interior]).max() < 1e-6 and np.abs(gauss[interior]).max() < 1e-6


@pytest.mark.parametrize("radius", [0.5, 3.0])
def test_sphere_curvature_is_one_over_r(radius):
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    mean_h, gauss, _ = vertex_curvatures(sphere.vertices, sphere.faces)
    np.testing.assert_allclose(mean_h, 1 / radius, rtol=0.01)
    np.testing.assert_allclose(gauss, 1 / radius**2, rtol=0.01)


def test_descriptor_blocks_have_fixed_layout_and_are_deterministic(extractor, real_fits):
    fit = real_fits[0]
    first, second = extractor.compute(fit), extractor.compute(fit)
    for block in ("shape", "geodesic", "curvature"):
        assert first.block(block).dtype == np.float32
        assert np.array_equal(first.block(block), second.block(block))
    assert first.shape.shape == (80,) and first.geodesic.shape == (len(GEODESIC_PAIRS),)
    bins = len(MEAN_CURVATURE_EDGES) - 1 + len(GAUSS_CURVATURE_EDGES) - 1
    assert first.curvature.shape == (len(CURVATURE_REGIONS) * bins,)
    # Each region's two histograms are area fractions.
    per_hist = np.split(first.curvature, np.cumsum([len(MEAN_CURVATURE_EDGES) - 1,
                                                    len(GAUSS_CURVATURE_EDGES) - 1] * 4)[:-1])
    np.testing.assert_allclose([h.sum() for h in per_hist], 1.0, atol=1e-5)
    # The identity shape ignores expression and pose: only alpha enters.
    assert np.array_equal(extractor.compute(fit.alpha).vector(), first.vector())
    with pytest.raises(FaceclusterError, match="block"):
        first.block("colour")


def test_mirrored_face_swaps_left_and_right(extractor, real_fits):
    fit, mirror_fit = real_fits
    original, mirrored = extractor.compute(fit), extractor.compute(mirror_fit)
    order = mirrored_pair_order()
    assert not np.array_equal(order, np.arange(len(order)))
    np.testing.assert_allclose(mirrored.geodesic, original.geodesic[order], rtol=0.01)
    # The face is not symmetric, so without the swap the blocks differ more than with it.
    assert np.abs(mirrored.geodesic - original.geodesic).max() > 3 * np.abs(
        mirrored.geodesic - original.geodesic[order]).max()
    # Curvature: left-cheek histograms of one are the right-cheek histograms of the other.
    # (The mesh's quads are split along one diagonal, so a mirrored face is triangulated differently
    # and its histograms match only approximately.)
    regions = list(CURVATURE_REGIONS)
    by_region = dict(zip(regions, np.split(original.curvature, len(regions)), strict=True))
    m_region = dict(zip(regions, np.split(mirrored.curvature, len(regions)), strict=True))
    swapped = np.abs(m_region["cheek_left"] - by_region["cheek_right"]).sum()
    unswapped = np.abs(m_region["cheek_left"] - by_region["cheek_left"]).sum()
    assert swapped < 0.3 and swapped <= unswapped
    assert np.abs(m_region["forehead"] - by_region["forehead"]).sum() < 0.3


