"""The fused distance: equals its formula on hand-computed vectors, Mahalanobis is Euclidean under identity
covariance, the cached centroid path agrees with the dense matrix, degenerate blocks do not break it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.spatial.distance import cdist, mahalanobis
from sklearn.covariance import ledoit_wolf

from facecluster_widgets.features import Features
from facecluster_widgets.fusion import (
    FeatureInputError,
    FusedMetric,
    as_blocks,
    mahalanobis_distances,
    whitener,
)


def _blocks(n: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(n, 8))
    return {
        "2d": e / np.linalg.norm(e, axis=1, keepdims=True),
        "shape": rng.normal(size=(n, 4)) * [1.0, 10.0, 0.1, 3.0],
        "curvature": rng.normal(size=(n, 2)) + 5.0,
    }


def _upper_median(matrix: np.ndarray) -> float:
    return float(np.median(matrix[np.triu_indices(matrix.shape[0], k=1)]))


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.65, 1.0])
def test_fused_distance_equals_the_formula(lam):
    blocks = _blocks()
    metric = FusedMetric.fit(blocks)
    # by hand: cosine on the 2D block; Mahalanobis (scipy) on the column-standardised 3D blocks ("curvature"
    # sorts before "shape") under the Ledoit-Wolf covariance; each divided by its median pairwise value.
    u = blocks["2d"]
    cos = np.array([[1 - a @ b for b in u] for a in u])
    z = np.hstack([blocks["curvature"], blocks["shape"]])
    z = (z - z.mean(axis=0)) / z.std(axis=0)
    inv = np.linalg.inv(ledoit_wolf(z)[0])
    maha = np.array([[mahalanobis(a, b, inv) for b in z] for a in z])
    expected = lam * cos / _upper_median(cos) + (1 - lam) * maha / _upper_median(maha)
    np.testing.assert_allclose(metric.pairwise(lam), expected, atol=2e-5)


def test_each_term_has_median_one():
    d2, d3 = FusedMetric.fit(_blocks(40)).block_distances
    assert _upper_median(d2) == pytest.approx(1.0, abs=1e-5)
    assert _upper_median(d3) == pytest.approx(1.0, abs=1e-5)


def test_lambda_ends_select_one_block():
    metric = FusedMetric.fit(_blocks())
    d2, d3 = metric.block_distances
    np.testing.assert_array_equal(metric.pairwise(1.0), d2)
    np.testing.assert_array_equal(metric.pairwise(0.0), d3)


def test_mahalanobis_is_euclidean_under_identity_covariance():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    np.testing.assert_allclose(whitener(np.eye(3)), np.eye(3))
    np.testing.assert_allclose(mahalanobis_distances(a, b, np.eye(3)), cdist(a, b), atol=1e-12)


def test_mahalanobis_matches_scipy_under_a_full_covariance():
    rng = np.random.default_rng(2)
    m = rng.normal(size=(3, 3))
    cov = m @ m.T + 0.1 * np.eye(3)
    a, b = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    expected = cdist(a, b, "mahalanobis", VI=np.linalg.inv(cov))
    np.testing.assert_allclose(mahalanobis_distances(a, b, cov), expected, atol=1e-10)


def test_singular_covariance_still_whitens():
    cov = np.array([[1.0, 1.0], [1.0, 1.0]])  # rank 1: Cholesky alone fails
    w = whitener(cov)
    assert np.isfinite(w).all()


@pytest.mark.parametrize("fusion", ["metric", "concat"])
def test_centroid_path_agrees_with_dense_matrix(fusion):
    """Distances to 'centroids' placed on faces equal the dense matrix's columns: one formula, two paths."""
    metric = FusedMetric.fit(_blocks(), fusion=fusion)
    idx = np.array([0, 3, 7])
    centroids = {"2d": metric.points_2d[idx], "3d": metric.points_3d[idx]}
    for lam in (0.0, 0.4, 1.0):
        np.testing.assert_allclose(metric.to_centroids(lam, centroids), metric.pairwise(lam)[:, idx], atol=1e-5)


def test_concat_is_squared_euclidean_of_weighted_concatenation():
    metric = FusedMetric.fit(_blocks(), fusion="concat")
    z = metric.concat_features(0.3)
    np.testing.assert_allclose(metric.pairwise(0.3), cdist(z, z, "sqeuclidean"), atol=1e-5)
    with pytest.raises(FeatureInputError):
        FusedMetric.fit(_blocks()).concat_features(0.3)


def test_centroids_are_normalised_mean_and_plain_mean():
    metric = FusedMetric.fit(_blocks())
    labels = np.array([0] * 6 + [1] * 6)
    c = metric.centroids(labels, 2)
    mean2 = metric.points_2d[:6].mean(axis=0)
    np.testing.assert_allclose(c["2d"][0], mean2 / np.linalg.norm(mean2), rtol=1e-5)
    np.testing.assert_allclose(c["3d"][1], metric.points_3d[6:].mean(axis=0), rtol=1e-5, atol=1e-6)


def test_transform_places_fitted_faces_where_fit_did():
    blocks = _blocks()
    metric = FusedMetric.fit(blocks)
    p2, p3 = metric.transform(blocks)
    np.testing.assert_allclose(p2, metric.points_2d, atol=1e-6)
    np.testing.assert_allclose(p3, metric.points_3d, atol=1e-5)


def test_zero_variance_columns_are_dropped_not_divided_by():
    blocks = _blocks()
    blocks["shape"][:, 1] = 4.2
    metric = FusedMetric.fit(blocks)
    assert metric.points_3d.shape[1] == 5  # 6 columns minus the constant one
    assert np.isfinite(metric.pairwise(0.5)).all()


def test_fully_constant_3d_block_warns_and_contributes_nothing():
    blocks = _blocks()
    blocks = {"2d": blocks["2d"], "shape": np.ones((12, 3))}
    with pytest.warns(UserWarning, match="constant"):
        metric = FusedMetric.fit(blocks)
    assert not metric.has_3d
    np.testing.assert_array_equal(metric.block_distances[1], 0.0)
    np.testing.assert_allclose(metric.pairwise(0.5), 0.5 * metric.block_distances[0])


def test_identical_faces_give_zero_distances_not_nan():
    blocks = {"2d": np.tile([[0.6, 0.8]], (5, 1)), "shape": np.tile([[1.0, 2.0]], (5, 1))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        metric = FusedMetric.fit(blocks)
    np.testing.assert_array_equal(metric.pairwise(0.5), 0.0)
    assert metric.scale_2d == 1.0


def test_features_object_and_dict_agree():
    blocks = _blocks()
    features = Features(face_ids=np.arange(12), blocks=blocks)
    np.testing.assert_array_equal(FusedMetric.fit(features).pairwise(0.5), FusedMetric.fit(blocks).pairwise(0.5))


@pytest.mark.parametrize(("blocks", "match"), [
    ({"2d": np.ones(3)}, "2-D"),
    ({"2d": np.ones((3, 2)), "shape": np.ones((4, 2))}, "rows"),
    ({}, "no block"),
    ({"2d": [["a", "b"]]}, "not numeric"),
])
def test_malformed_blocks_raise(blocks, match):
    with pytest.raises(FeatureInputError, match=match):
        as_blocks(blocks)


def test_fit_refuses_nan_rows_zero_embeddings_and_unknown_fusion():
    blocks = _blocks()
    bad = dict(blocks, shape=blocks["shape"].copy())
    bad["shape"][2, 0] = np.nan
    with pytest.raises(FeatureInputError, match="finite"):
        FusedMetric.fit(bad)
    zero = dict(blocks, **{"2d": blocks["2d"].copy()})
    zero["2d"][0] = 0.0
    with pytest.raises(FeatureInputError, match="all zeros"):
        FusedMetric.fit(zero)
    with pytest.raises(FeatureInputError, match="fusion"):
        FusedMetric.fit(blocks, fusion="early")
    with pytest.raises(FeatureInputError, match="not in the features"):
        FusedMetric.fit(blocks, blocks_3d=["geodesic"])
