"""Pose-aware fusion (issue 12): the 3D term's share per pair follows both faces' fit confidence and their yaw gap,
the same on the dense path (FusedMetric), the sparse one (kNN graph, rows on demand, graph K-Means) and towards
centroids; λ = 1 stays 2D only; missing pose turns the weighting off and says so."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.synthetic import make_identity_features

from facecluster_widgets.cluster import HybridClustering, knn
from facecluster_widgets.cluster import rows as fused_rows
from facecluster_widgets.cluster.graph_kmeans import GraphKMeans
from facecluster_widgets.errors import FeatureInputError
from facecluster_widgets.fusion import FusedMetric, pose_points, pose_weights
from facecluster_widgets.metrics import ari
from facecluster_widgets.review.collection import FaceCollection
from facecluster_widgets.review.session import ClusterSession


def make_faces(seed: int = 0):
    X, y = make_identity_features(n_ids=12, per_id=15, d2=64, blocks_3d={"shape": 20, "curvature": 6},
                                  noise2=0.7, noise3=0.4, seed=seed)
    rng = np.random.default_rng(seed)
    yaw = rng.uniform(-80, 80, size=y.size)
    quality = rng.uniform(0.3, 0.95, size=y.size)
    yaw[::17] = np.nan  # no yaw estimate: the face's pairs fall back to the 2D term
    return X, y, pd.DataFrame({"yaw": yaw, "landmark_quality": quality})


def test_pose_weights_known_answers():
    p = pose_points(np.array([0.0, 0.0, 90.0, 60.0, np.nan]), np.array([1.0, 0.5, 1.0, 1.0, 1.0]))
    w = pose_weights(p, p, "same_view")
    assert w[0, 0] == pytest.approx(1.0) and w[0, 1] == pytest.approx(0.5)  # confidence multiplies
    assert w[0, 2] == pytest.approx(0.0, abs=1e-6) and w[0, 3] == pytest.approx(0.5)  # cos of the yaw gap
    assert np.all(w[4] == 0) and np.all(w[:, 4] == 0)  # no yaw estimate: no 3D weight
    cross = pose_weights(p, p, "cross_view")
    assert cross[0, 2] == pytest.approx(2.0) and cross[0, 0] == pytest.approx(1.0)  # more weight across views
    np.testing.assert_allclose(pose_weights(p, p[::-1], "same_view", paired=True), np.diag(w[:, ::-1]), atol=1e-6)
    with pytest.raises(FeatureInputError, match=r"\[0, 1\]"):
        pose_points(np.zeros(2), np.array([0.5, 1.5]))


@pytest.mark.parametrize("mode", ["same_view", "cross_view"])
def test_dense_pairwise_is_the_declared_per_pair_weight(mode):
    X, _, pose = make_faces()
    p = pose_points(pose["yaw"], pose["landmark_quality"])
    plain = FusedMetric.fit(X)
    metric = FusedMetric.fit(X, pose=p, pose_weighting=mode)
    d2, d3 = plain.block_distances
    lam = 0.7
    share = np.minimum((1 - lam) * pose_weights(p, p, mode), 1.0)
    np.testing.assert_allclose(metric.pairwise(lam), (1 - share) * d2 + share * d3, atol=2e-5)
    assert not np.allclose(metric.pairwise(lam), plain.pairwise(lam), atol=1e-3)  # the weighting does something
    np.testing.assert_array_equal(metric.pairwise(1.0), plain.pairwise(1.0))  # λ = 1: 2D only, whatever w says
    # towards centroids: the centroid's pose vector is its members' mean
    labels = np.arange(metric.n_faces) % 5
    cents = metric.centroids(labels, 5)
    np.testing.assert_allclose(cents["pose"][1], p[labels == 1].mean(axis=0), atol=1e-6)
    to_c = metric.to_centroids(lam, cents)
    c_share = np.minimum((1 - lam) * pose_weights(p, cents["pose"], mode), 1.0)
    plain_2d, plain_3d = plain.to_centroids(1.0, cents), plain.to_centroids(0.0, cents)
    np.testing.assert_allclose(to_c, (1 - c_share) * plain_2d + c_share * plain_3d, atol=2e-5)


@pytest.mark.parametrize("mode", ["same_view", "cross_view"])
def test_sparse_pieces_match_the_dense_ones(mode):
    X, _, pose = make_faces(1)
    metric = FusedMetric.fit(X, pose=pose_points(pose["yaw"], pose["landmark_quality"]), pose_weighting=mode)
    rows = np.arange(metric.n_faces)
    for lam in (0.0, 0.6, 1.0):
        dense = metric.pairwise(lam)
        np.testing.assert_allclose(fused_rows.FusedRows(metric, lam, rows)[rows], dense, atol=2e-5)
        graph = knn.FusedGraph.build(metric).fused(lam).tocoo()
        np.testing.assert_allclose(graph.data, dense[graph.row, graph.col], atol=2e-5)
    lam = 0.6
    labels = np.arange(metric.n_faces) % 7
    cents = metric.centroids(labels, 7)
    engine = GraphKMeans(metric, lam, rows, knn.FusedGraph.build(metric).fused(lam))
    faces = np.repeat(rows, 7)
    clusters = np.tile(np.arange(7), rows.size)
    np.testing.assert_allclose(engine._pair_distances(faces, clusters, cents),
                               metric.to_centroids(lam, cents).ravel(), atol=2e-5)


@pytest.mark.parametrize("mode", ["same_view", "cross_view"])
def test_hybrid_dense_and_sparse_agree_with_pose_weighting(mode):
    X, y, pose = make_faces(2)
    params = {"lam": 0.6, "pose_weighting": mode}
    dense = HybridClustering(algorithm="dense", **params).fit(X, pose=pose)
    fast = HybridClustering(algorithm="sparse", **params).fit(X, pose=pose)
    assert dense.pose_weighting_ == fast.pose_weighting_ == mode
    assert ari(dense.labels_, fast.labels_) >= 0.99 and ari(y, dense.labels_) > 0.5
    assert mode in dense.fusion_reason_ and "yaw gap" in dense.fusion_reason_


def test_refit_keeps_the_pose_and_lambda_one_ignores_it():
    X, _, pose = make_faces(3)
    model = HybridClustering(lam=0.6, pose_weighting="same_view").fit(X, pose=pose)
    plain = HybridClustering(lam=1.0).fit(X)
    assert model.refit(lam=1.0).n_clusters_ == plain.n_clusters_
    np.testing.assert_array_equal(model.labels_, plain.labels_)
    model.refit(pose_weighting="cross_view", lam=0.6)  # a cache parameter: rebuilt with the pose kept from fit
    assert model.pose_weighting_ == "cross_view" and not model.reused_cache_


def test_missing_pose_turns_the_weighting_off_and_says_so():
    X, _, pose = make_faces(4)
    model = HybridClustering(lam=0.6, pose_weighting="same_view").fit(X)
    assert model.pose_weighting_ == "off" and "no pose" in model.fusion_reason_
    model = HybridClustering(lam=0.6, pose_weighting="same_view").fit(X, pose=pose[["yaw"]])
    assert model.pose_weighting_ == "off" and "landmark_quality" in model.fusion_reason_
    with pytest.raises(FeatureInputError, match="one yaw/landmark_quality per face"):
        HybridClustering(lam=0.6, pose_weighting="same_view").fit(X, pose=pose.iloc[:10])
    with pytest.raises(FeatureInputError, match="fusion='metric'"):
        FusedMetric.fit(X, fusion="concat", pose=pose_points(pose["yaw"], pose["landmark_quality"]),
                        pose_weighting="same_view")


def test_session_keeps_pose_weighting_while_lambda_moves():
    """The explorer's λ slider moves the base λ of a pose-weighted clustering (the session is what it calls)."""
    X, y, pose = make_faces(5)
    faces = FaceCollection.from_features(X, labels=[str(v) for v in y])
    faces.table["yaw"], faces.table["landmark_quality"] = pose["yaw"], pose["landmark_quality"]
    session = ClusterSession(faces, persist=False, lam=0.8, pose_weighting="same_view")
    assert session.model is None and session.view.params["pose_weighting"] == "same_view"
    assert session.model.pose_weighting_ == "same_view"
    session.update(lam=0.6)
    assert session.model.reused_cache_ and session.model.pose_weighting_ == "same_view"
    assert "λ = 0.6 with pose weighting 'same_view'" in session.model.fusion_reason_
    assert session.preview(lam=0.5) is not None and session.preview(pose_weighting="off") is None
    weighted_map = session.projection("pca")
    session.update(fusion="concat")  # no per-pair weight in a concatenation: off, and said why
    assert session.model.pose_weighting_ == "off" and "fusion='metric'" in session.model.fusion_reason_
    assert session._fusion_key() == "concat" and weighted_map.shape == (len(faces), 2)
    session.update(fusion="metric", lam=0.7)
    assert "λ = 0.7 with pose weighting" in session.view.reason and session.view.reason.startswith("DBSCAN")
