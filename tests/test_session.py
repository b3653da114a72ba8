"""The explorer's computations without a notebook: refits on parameter changes, errors that keep the previous
state, stable cluster ids, metrics, gallery order, the possible-matches queue, maps and sweeps."""

from __future__ import annotations

import numpy as np
import pytest
from support.synthetic import make_identity_features

from facecluster_widgets.metrics import ari
from facecluster_widgets.review.collection import FaceCollection
from facecluster_widgets.review.edits import EditError, EditLog
from facecluster_widgets.review.session import DEFAULT_PARAMS, ClusterSession


@pytest.fixture()
def faces():
    blocks, y = make_identity_features(n_ids=6, per_id=15, d2=64, blocks_3d={"shape": 8}, noise2=0.35, seed=2)
    blocks["shape"][7] = np.nan  # one face whose 3D stage failed
    return FaceCollection.from_features(blocks, labels=[f"p{v}" for v in y]), y


def test_first_update_fits_and_later_updates_refit_on_cached_distances(faces):
    collection, y = faces
    session = ClusterSession(collection)
    view = session.update()
    assert view.params == DEFAULT_PARAMS and session.model.reused_cache_ is False
    assert ari(y[view.labels >= 0], view.labels[view.labels >= 0]) > 0.9
    wide = session.update(eps=1.4)
    assert session.model.reused_cache_ is True and wide.number == view.number + 1
    narrow = session.update(eps=0.1)
    assert narrow.n_noise > wide.n_noise  # a smaller radius leaves more faces in no cluster
    assert view.labels[7] == -1 and 7 not in session.valid_rows


def test_cluster_ids_stay_put_when_nothing_moves(faces):
    collection, _ = faces
    session = ClusterSession(collection)
    first = session.update(eps=0.7)
    again = session.update(min_samples=int(session.params["min_samples"]))
    np.testing.assert_array_equal(first.labels, again.labels)


def test_a_failing_change_keeps_the_previous_state(faces):
    collection, _ = faces
    session = ClusterSession(collection)
    view = session.update()
    with pytest.raises(ValueError):
        session.update(n_clusters=10_000)  # more clusters than faces
    assert session.view is view and session.params["n_clusters"] == "auto"
    assert session.model.get_params()["n_clusters"] == "auto"
    assert session.update(eps=0.8).n_clusters >= 1  # and the session still works
    with pytest.raises(TypeError):
        session.update(colour="red")


def test_metrics_silhouette_always_external_scores_with_labels(faces):
    collection, _ = faces
    metrics = ClusterSession(collection).metrics()
    assert {"silhouette", "ari", "nmi", "purity", "clusters", "noise_fraction"} <= set(metrics)
    assert metrics["labelled_faces"] == len(collection)
    unlabelled = FaceCollection.from_features(collection.features)
    plain = ClusterSession(unlabelled).metrics()
    assert "ari" not in plain and np.isfinite(plain["silhouette"])


def test_gallery_orders_clusters_and_faces_and_puts_noise_last(faces):
    collection, _ = faces
    session = ClusterSession(collection)
    view = session.update(eps=0.45)
    rows = session.gallery(view)
    clusters = [r for r in rows if r.label >= 0]
    assert [r.size for r in clusters] == sorted((r.size for r in clusters), reverse=True)
    assert sum(r.size for r in rows) == len(collection)
    if view.n_noise:
        assert rows[-1].label == -1 and rows[-1].size == view.n_noise
    labels, dist = session.centroid_distances(view)
    for r in clusters:
        own = dist[r.rows, np.flatnonzero(labels == r.label)[0]]
        assert np.all(np.diff(own[np.isfinite(own)]) >= -1e-9)  # closest to the centre first
    far = session.gallery(view, face_order="farthest")
    assert far[0].rows[0] == clusters[0].rows[-1] or far[0].label != clusters[0].label
    with pytest.raises(ValueError):
        session.gallery(view, cluster_order="colour")


def test_possible_matches_are_unassigned_faces_nearest_first(faces):
    collection, _ = faces
    session = ClusterSession(collection)
    view = session.update(eps=0.45)
    label = int(view.clusters[0])
    queue = session.possible_matches(label, n=50)
    assert all(view.labels[r] == -1 for r, _ in queue)
    assert [d for _, d in queue] == sorted(d for _, d in queue)
    with pytest.raises(EditError):
        session.possible_matches(999)


def test_projection_is_nan_for_faces_without_features_and_cached(faces):
    collection, _ = faces
    session = ClusterSession(collection)
    xy = session.projection("pca")
    assert xy.shape == (len(collection), 2) and xy.dtype == np.float32
    assert np.isnan(xy[7]).all() and np.isfinite(np.delete(xy, 7, axis=0)).all()
    assert session.projection("pca") is xy
    assert session.projection("pca", lam=0.2) is not xy


def test_sweep_covers_the_grid_without_touching_the_session(faces):
    collection, _ = faces
    session = ClusterSession(collection)
    before = session.update(eps=0.6)
    frame = session.sweep([0.3, 0.6, 1.0], [0.0, 0.5, 1.0])
    assert len(frame) == 9 and {"eps", "lam", "clusters", "silhouette", "ari"} <= set(frame.columns)
    assert session.view is before and session.model.eps == 0.6 and session.model.labels_ is not None
    np.testing.assert_array_equal(session.model.labels_ >= 0, before.raw_labels >= 0)
    assert frame["ari"].max() > 0.9


def test_edits_without_a_store_stay_in_memory(faces):
    collection, _ = faces
    session = ClusterSession(collection, edits=EditLog())
    view = session.update(eps=0.6)
    view = session.split([0, 1, 2])
    assert view.labels[0] == view.labels[1] == view.labels[2] and session.persist is False
    assert (view.labels == view.labels[0]).sum() == 3


def test_silhouette_on_the_sparse_path_matches_the_dense_one():
    """Large collections run the sparse path (no n×n matrix): the metrics panel still gets a silhouette, the
    sampled one, which is exact when the faces fit in the sample."""
    from facecluster_widgets.cluster import HybridClustering
    from facecluster_widgets.metrics import silhouette
    from facecluster_widgets.review.scores import model_silhouette

    X, _ = make_identity_features(6, 20, 128, {"shape": 6}, 0.6, 0.3, 0)
    dense = HybridClustering(lam=0.65, n_clusters=6, algorithm="dense").fit(X)
    sparse = HybridClustering(lam=0.65, n_clusters=6, algorithm="sparse").fit(X)
    assert sparse.fused_distances_ is None
    expected = silhouette(dense.labels_[dense.valid_index_], dense.fused_distances_)
    assert model_silhouette(sparse, dense.labels_[sparse.valid_index_]) == pytest.approx(expected, abs=1e-5)
    assert model_silhouette(dense, dense.labels_[dense.valid_index_]) == pytest.approx(expected)
    assert np.isnan(model_silhouette(sparse, np.zeros(len(sparse.valid_index_), dtype=int)))


def test_browse_functions_work_on_a_view_alone():
    """The gallery, the "same person?" pairs and the matches queue are plain functions of a view and the distances
    to the centres: no session, no estimator."""
    from facecluster_widgets.review.browse import gallery, possible_matches, similar_pairs, unknown_pool
    from facecluster_widgets.review.view import ClusterView

    labels = np.array([0, 0, 1, 1, 2, -1, -1])
    view = ClusterView(number=0, params={}, raw_labels=labels, labels=labels, names={2: "Ann"}, reason="",
                       timings={})
    clusters = np.array([0, 1, 2])
    dist = np.array([[0.1, 2.0, 3.0], [0.3, 2.0, 3.0], [2.0, 0.2, 0.9], [2.0, 0.4, 1.1], [3.0, 0.9, 0.0],
                     [1.5, 0.5, 0.6], [0.7, 1.8, 2.5]])
    rows = gallery(view, clusters, dist, face_order="farthest")
    assert [r.label for r in rows] == [0, 1, 2, -1] and rows[0].rows.tolist() == [1, 0] and rows[2].name == "Ann"
    assert unknown_pool(view, clusters, dist).tolist() == [5, 6]  # nearest to some centre first
    assert [(p.a, p.b) for p in similar_pairs(view, clusters, dist, n=1)] == [(1, 2)]
    assert [r for r, _ in possible_matches(view, clusters, dist, 0)] == [6, 5]
    assert [r for r, _ in possible_matches(view, clusters, dist, 0, refused={6})] == [5]
    with pytest.raises(ValueError, match="cluster_order"):
        gallery(view, clusters, dist, cluster_order="random")
