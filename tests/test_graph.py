"""The sparse path of HybridClustering (cluster/graph.py): same labels as the dense path on real and synthetic faces,
no n×n matrix anywhere, the graph-restricted K-Means above its threshold, cannot-link, refit reusing the graphs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from support.synthetic import make_identity_features

import facecluster_widgets as fc
from facecluster_widgets.cluster import HybridClustering, knn
from facecluster_widgets.cluster import graph as sparse
from facecluster_widgets.cluster import rows as fused_rows
from facecluster_widgets.cluster.hybrid import DEFAULT_EPS, DEFAULT_LAM
from facecluster_widgets.errors import FeatureInputError
from facecluster_widgets.fusion import FusedMetric
from facecluster_widgets.io.table import photo_groups as table_photo_groups
from facecluster_widgets.metrics import ari, silhouette


def make_faces(n_ids: int, per_id: int, noise2: float = 0.5, seed: int = 0, d3: int = 20):
    return make_identity_features(n_ids=n_ids, per_id=per_id, d2=128, blocks_3d={"shape": d3, "curvature": 6},
                                  noise2=noise2, noise3=0.4, seed=seed)


def photo_groups(n: int, seed: int = 0) -> np.ndarray:
    """A photo id per face: most faces alone, some photos of two or three faces."""
    rng = np.random.default_rng(seed)
    groups = np.arange(n)
    pairs = rng.choice(n, size=(n // 10, 2), replace=False)
    groups[pairs[:, 1]] = groups[pairs[:, 0]]
    return groups


@pytest.fixture(scope="module")
def lfw10_features(tmp_path_factory, lfw10):
    """lfw10 through the default pipeline (2D embedding + 3D descriptors) and a photo id per face."""
    store = fc.extract(lfw10, tmp_path_factory.mktemp("lfw10") / "store", progress=False)
    return store.features, table_photo_groups(store.table)


@pytest.mark.slow
def test_sparse_agrees_with_dense_on_real_faces(lfw10_features):
    features, groups = lfw10_features
    assert len(features) >= 100 and {"2d", "shape"} <= set(features.names)
    for params in ({}, {"noise": "assign"}, {"lam": DEFAULT_LAM - 0.1, "eps": DEFAULT_EPS * 1.1}):
        dense = HybridClustering(algorithm="dense", **params).fit(features, groups=groups)
        fast = HybridClustering(algorithm="sparse", **params).fit(features, groups=groups)
        assert fast.algorithm_ == "sparse" and fast.fused_distances_ is None
        assert fast.n_clusters_ >= 5 and (fast.labels_ >= 0).mean() > 0.5  # a real clustering, not all noise
        assert ari(dense.labels_, fast.labels_) >= 0.99, params
        assert ari(dense.dbscan_labels_, fast.dbscan_labels_) >= 0.99, params
        assert fast.n_clusters_ == dense.n_clusters_


@pytest.mark.parametrize("seed,noise2", [(0, 0.5), (1, 0.8), (2, 1.0)])
def test_sparse_agrees_with_dense_on_synthetic_faces(seed, noise2):
    X, _ = make_faces(25, 16, noise2=noise2, seed=seed)
    groups = photo_groups(400, seed)
    dense = HybridClustering(algorithm="dense").fit(X, groups=groups)
    fast = HybridClustering(algorithm="sparse").fit(X, groups=groups)
    assert ari(dense.labels_, fast.labels_) >= 0.99
    assert fast.stage2_regimes_ == {"exact"}


def test_no_nxn_matrix_on_the_sparse_path(monkeypatch):
    """The dense matrices are never built: touching them fails, and the graph holds O(n·k) entries."""
    def forbidden(*args, **kwargs):
        raise AssertionError("an n×n matrix was built on the sparse path")

    monkeypatch.setattr(FusedMetric, "block_distances", property(forbidden))
    monkeypatch.setattr(FusedMetric, "pairwise", forbidden)
    monkeypatch.setattr(sparse, "EXACT_KMEANS_FACES", 0)  # the graph regime: no (n × k) matrix either
    monkeypatch.setattr(fused_rows, "SILHOUETTE_SAMPLE", 100)
    X, y = make_faces(40, 15, noise2=0.4)
    model = HybridClustering(algorithm="sparse", noise="assign").fit(X, groups=photo_groups(600))
    n = len(y)
    assert model.graph_.n_edges <= n * (1 + 4 * knn.N_NEIGHBORS)
    assert model.stage2_regimes_ == {"graph"}
    assert ari(y, model.labels_) > 0.95


def test_graph_regime_recovers_identities_and_keeps_cannot_link(monkeypatch):
    X, y = make_faces(60, 20, noise2=0.5, seed=4)
    groups = photo_groups(len(y), 4)
    exact = HybridClustering(algorithm="sparse", n_clusters=60).fit(X, groups=groups)
    monkeypatch.setattr(sparse, "EXACT_KMEANS_FACES", 0)
    model = HybridClustering(algorithm="sparse", n_clusters=60, noise="assign").fit(X, groups=groups)
    assert model.stage2_regimes_ == {"graph"}
    assert ari(y, model.labels_) > 0.97
    assert ari(exact.labels_, model.labels_) > 0.95
    labels = model.labels_
    for g in np.unique(groups):
        members = labels[groups == g]
        members = members[members >= 0]
        assert np.unique(members).size == members.size, f"photo {g} has two faces in one cluster"


def test_graph_regime_auto_k(monkeypatch):
    monkeypatch.setattr(sparse, "EXACT_KMEANS_FACES", 0)
    X, y = make_faces(50, 20, noise2=0.5, seed=5)
    model = HybridClustering(algorithm="sparse", auto_k="silhouette").fit(X)
    assert abs(model.n_clusters_ - 50) <= 2 and ari(y, model.labels_) > 0.95
    assert len(model.auto_k_scores_) <= sparse.GRAPH_SWEEP_RUNS + 12  # capped sweep (+ its first grid)


@pytest.mark.slow
def test_refit_reuses_the_graph_and_equals_a_fresh_fit():
    X, _ = make_faces(20, 15, noise2=0.6, seed=6)
    model = HybridClustering(algorithm="sparse").fit(X)
    graph = model.graph_
    for params in ({"lam": 0.4}, {"eps": 0.45, "min_samples": 4}, {"n_clusters": 12, "noise": "assign"}):
        model.refit(**params)
        assert model.graph_ is graph and model.reused_cache_
        fresh = clone(model).fit(X)
        np.testing.assert_array_equal(model.labels_, fresh.labels_)
    model.refit(algorithm="dense")  # another algorithm rebuilds the cache
    assert model.graph_ is None and model.algorithm_ == "dense" and not model.reused_cache_


def test_auto_switches_at_the_documented_size(monkeypatch):
    X, _ = make_faces(10, 12)
    assert HybridClustering().fit(X).algorithm_ == "dense"
    monkeypatch.setattr(sparse, "AUTO_SPARSE_FACES", 100)
    assert HybridClustering().fit(X).algorithm_ == "sparse"
    assert HybridClustering(algorithm="dense").fit(X).algorithm_ == "dense"


def test_dense_limit_points_to_the_sparse_path(monkeypatch):
    from facecluster_widgets.cluster import hybrid

    monkeypatch.setattr(hybrid, "MAX_DENSE_FACES", 50)
    X, _ = make_faces(10, 12)
    with pytest.raises(FeatureInputError, match="algorithm='sparse'"):
        HybridClustering(algorithm="dense").fit(X)


def test_fused_rows_and_sampled_silhouette_match_the_dense_matrix():
    X, y = make_faces(12, 15, noise2=0.7, seed=7)
    metric = FusedMetric.fit(X)
    rows = np.arange(metric.n_faces)
    for lam in (0.0, 0.3, 1.0):
        np.testing.assert_allclose(fused_rows.FusedRows(metric, lam, rows)[rows], metric.pairwise(lam), atol=2e-5)
    lazy = fused_rows.FusedRows(metric, 0.65, rows)
    D = metric.pairwise(0.65)
    labels = np.where(np.arange(y.size) % 17 == 0, -1, y)
    assert fused_rows.SampledSilhouette(lazy)(labels) == pytest.approx(silhouette(labels, D), abs=1e-5)
    sampled = fused_rows.SampledSilhouette(lazy, sample=90, seed=1)(labels)
    assert sampled == pytest.approx(silhouette(labels, D), abs=0.05)


@pytest.mark.slow
def test_knn_graph_exact_and_approximate(monkeypatch):
    """faiss IVF (used above EXACT_KNN_FACES) finds a face's same-identity neighbours as the exact search does,
    on identity-structured data much noisier than real embeddings; self never listed, no list short."""
    rng = np.random.default_rng(0)
    points = rng.normal(size=(1500, 16)).astype(np.float32)
    points[1] = points[0]  # a duplicate: the face itself must still be left out of its own list
    exact = knn.knn_indices(points, 10)
    assert exact.shape == (1500, 10) and not (exact == np.arange(1500)[:, None]).any()
    assert exact[0, 0] == 1 and exact[1, 0] == 0

    blocks, y = make_identity_features(n_ids=3000, per_id=5, d2=128, noise2=0.6, seed=0)  # cosine ~0.25 in-identity
    points = blocks["2d"].astype(np.float32)
    points[1] = points[0]
    monkeypatch.setattr(knn, "EXACT_KNN_FACES", 10_000)
    approx = knn.knn_indices(points, 10)  # 15,000 faces: IVF
    exact = knn.knn_indices(points[:9000], 10)  # the first 1,800 identities, exact: neighbours stay inside them
    n = points.shape[0]
    assert approx.shape == (n, 10) and (approx >= 0).all() and not (approx == np.arange(n)[:, None]).any()
    assert approx[0, 0] == 1 and approx[1, 0] == 0
    same_exact = (y[exact[:, :4]] == y[:9000, None]).mean()
    same_approx = (y[approx[:, :4]] == y[:, None]).mean()
    assert same_exact > 0.99 and same_approx > 0.98


def test_truncated_share_flags_an_eps_beyond_the_graph():
    X, _ = make_faces(10, 12)
    model = HybridClustering(algorithm="sparse").fit(X)
    assert model.sparse_truncated_ == 0.0
    assert knn.truncated_share(model.fused_graph_, 100.0) == 1.0
