"""2-D maps keep identities together, are reproducible, and are cached by their parameters."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier
from support.synthetic import make_identity_features

from facecluster_widgets.errors import FaceclusterError
from facecluster_widgets.fusion import FusedMetric
from facecluster_widgets.review.projection import ProjectionCache, default_method, fingerprint, fused_points, project


@pytest.fixture(scope="module")
def fused():
    blocks, y = make_identity_features(n_ids=6, per_id=15, d2=64, blocks_3d={"shape": 8}, noise2=0.3, seed=1)
    metric = FusedMetric.fit(blocks)
    return metric, y


def _neighbour_agreement(xy: np.ndarray, y: np.ndarray) -> float:
    """Leave-one-out 1-NN accuracy of the identities in the map: ~1 when the map keeps people together."""
    hits = 0
    for i in range(len(y)):
        rest = np.delete(np.arange(len(y)), i)
        knn = KNeighborsClassifier(n_neighbors=1).fit(xy[rest], y[rest])
        hits += int(knn.predict(xy[i:i + 1])[0] == y[i])
    return hits / len(y)


@pytest.mark.parametrize(("method", "floor"), [("tsne", 0.95), ("pca", 0.75)])  # chance: 1/6
def test_maps_keep_identities_together(fused, method, floor):
    metric, y = fused
    xy = project(method, distances=metric.pairwise(0.65), points=fused_points(metric, 0.65))
    assert xy.shape == (len(y), 2) and xy.dtype == np.float32 and np.isfinite(xy).all()
    assert _neighbour_agreement(xy, y) > floor


@pytest.mark.slow
def test_maps_are_reproducible_and_depend_on_the_seed(fused):
    metric, _ = fused
    D = metric.pairwise(0.65)
    a, b = project("tsne", distances=D, random_state=3), project("tsne", distances=D, random_state=3)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, project("tsne", distances=D, random_state=4))


def test_fused_points_weigh_the_blocks_like_lambda(fused):
    metric, _ = fused
    two_d_only = fused_points(metric, 1.0)
    assert np.allclose(two_d_only[:, metric.points_2d.shape[1]:], 0)
    d2 = metric.block_distances[0]
    chord = np.sum((two_d_only[0] - two_d_only[1]) ** 2)
    assert chord == pytest.approx(d2[0, 1], rel=1e-3)  # squared distance = the normalised cosine term


def test_bad_inputs_are_refused_and_tiny_collections_still_get_a_map():
    with pytest.raises(FaceclusterError):
        project("mds", distances=np.zeros((5, 5)))
    with pytest.raises(FaceclusterError):
        project("pca", distances=np.zeros((5, 5)))
    with pytest.raises(FaceclusterError):
        project("tsne", distances=np.full((5, 5), np.nan))
    assert project("tsne", distances=np.zeros((3, 3))).shape == (3, 2)
    assert default_method(500) == "tsne" and default_method(50_000) == "pca"


def test_cache_computes_once_per_key_and_drops_the_oldest():
    cache, calls = ProjectionCache(size=2), []

    def compute(v):
        calls.append(v)
        return np.full((2, 2), v, np.float32)

    cache.get(("a",), lambda: compute(1))
    cache.get(("a",), lambda: compute(2))
    cache.get(("b",), lambda: compute(3))
    cache.get(("c",), lambda: compute(4))
    assert calls == [1, 3, 4] and ("a",) not in cache and ("c",) in cache
    assert fingerprint(np.arange(3)) != fingerprint(np.arange(3.0))
    assert fingerprint(np.ones(2)) == fingerprint(np.ones(2))
