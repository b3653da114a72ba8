"""The explorer's quick DBSCAN mask equals scikit-learn's DBSCAN on the same distances, dense and sparse."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import csr_matrix
from sklearn.cluster import DBSCAN
from support.synthetic import make_identity_features

from facecluster_widgets.cluster import HybridClustering
from facecluster_widgets.cluster.density import dbscan_kept


def _sklearn_kept(distances, eps: float, min_samples: int) -> np.ndarray:
    return DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit(distances).labels_ >= 0


@pytest.fixture(scope="module")
def fitted() -> dict[str, HybridClustering]:
    features, _ = make_identity_features(n_ids=12, per_id=15, d2=128, blocks_3d={"shape": 20, "curvature": 6},
                                      noise2=0.6, noise3=0.4, seed=3)
    return {algorithm: HybridClustering(algorithm=algorithm, n_clusters=12, random_state=0).fit(features)
            for algorithm in ("dense", "sparse")}


@pytest.mark.parametrize("lam", [1.0, 0.7, 0.0])
def test_mask_equals_sklearn_on_the_estimators_distances(fitted, lam):
    dense = fitted["dense"].distance_.pairwise(lam)
    graph = fitted["sparse"].graph_.fused(lam)
    checked = 0
    for eps in np.quantile(dense[np.triu_indices_from(dense, 1)], [0.005, 0.02, 0.05, 0.1, 0.3]):
        for min_samples in (1, 2, 3, 5, 9):
            expected = _sklearn_kept(dense, eps, min_samples)
            assert np.array_equal(dbscan_kept(dense, eps, min_samples), expected)
            assert np.array_equal(dbscan_kept(graph, eps, min_samples), _sklearn_kept(graph, eps, min_samples))
            checked += int(0 < expected.sum() < len(expected))
    assert checked >= 5  # the grid holds radii at which some faces are noise and some are not


def test_mask_on_a_graph_without_its_diagonal():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(80, 2))
    d = np.linalg.norm(points[:, None] - points[None], axis=2)
    d[d > 0.6] = 0  # keep only the near pairs: a sparse graph that stores no self-distance
    graph = csr_matrix(d)
    graph.eliminate_zeros()
    for min_samples in (2, 3, 4):
        assert np.array_equal(dbscan_kept(graph, 0.4, min_samples), _sklearn_kept(graph, 0.4, min_samples))


@pytest.mark.parametrize("algorithm", ["dense", "sparse"])
def test_quick_view_is_dbscans_mask_on_the_last_runs_clusters(algorithm, monkeypatch):
    from facecluster_widgets.cluster import graph
    from facecluster_widgets.review.collection import FaceCollection
    from facecluster_widgets.review.session import ClusterSession

    if algorithm == "sparse":
        monkeypatch.setattr(graph, "AUTO_SPARSE_FACES", 50)
    blocks, y = make_identity_features(n_ids=10, per_id=12, d2=128, blocks_3d={"shape": 20, "curvature": 6},
                                       noise2=0.6, noise3=0.4, seed=5)
    session = ClusterSession(FaceCollection.from_features(blocks, labels=y), persist=False, eps=0.25)
    model = session.view and session.model
    assert model.algorithm_ == algorithm and (model.labels_ < 0).any()
    joined = 0
    for eps, lam in ((0.3, 1.0), (0.22, 0.8), (0.4, 0.3), (0.5, 0.0), (0.8, 0.6)):
        view = session.preview(eps=eps, lam=lam)
        fused = model.distance_.pairwise(lam) if model.graph_ is None else model.graph_.fused(lam)
        kept = _sklearn_kept(fused, eps, 3)
        nearest = np.argmin(model.distance_.to_centroids(lam, model.centroids_), axis=1)
        # a face kept now stays in its cluster of the last run, or (noise then) joins the nearest centre
        expected = np.where(kept, np.where(model.labels_ >= 0, model.labels_, nearest), -1)
        assert view.preview and np.array_equal(view.raw_labels >= 0, kept)
        pairs = set(zip(view.raw_labels[kept].tolist(), expected[kept].tolist(), strict=True))
        assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})  # same partition, ids renamed
        joined += int((kept & (model.labels_ < 0)).sum())
    assert joined  # some move kept faces that were noise


def test_refit_stops_when_asked_and_leaves_the_estimator_as_it_was(fitted):
    from facecluster_widgets.cluster.hybrid import RefitStopped

    model = fitted["dense"]
    model.set_params(n_clusters="auto")
    model.refit()
    labels, centroids, eps = model.labels_, model.centroids_, model.eps
    asked = []
    with pytest.raises(RefitStopped):
        model.refit(stop=lambda: asked.append(1) or len(asked) > 2, eps=eps * 0.8)
    assert len(asked) == 3  # two K-Means runs of the k search, then stopped
    assert model.eps == eps and model.labels_ is labels and model.centroids_ is centroids
    assert np.array_equal(model.refit(eps=eps * 0.8).labels_ >= 0, model.dbscan_labels_ >= 0)


def test_quick_view_answers_while_a_refit_holds_the_session():
    import threading

    from facecluster_widgets.review.collection import FaceCollection
    from facecluster_widgets.review.session import ClusterSession

    blocks, y = make_identity_features(n_ids=8, per_id=10, d2=64, seed=2)
    session = ClusterSession(FaceCollection.from_features(blocks, labels=y), persist=False)
    session.view  # noqa: B018 - the first fit
    held, release = threading.Event(), threading.Event()

    def refit_in_progress() -> None:
        with session._lock:
            held.set()
            release.wait(10)

    worker = threading.Thread(target=refit_in_progress)
    worker.start()
    held.wait(10)
    try:
        answer = []
        asking = threading.Thread(target=lambda: answer.append(session.preview(eps=0.5)))
        asking.start()
        asking.join(5)
        assert answer and answer[0].preview  # did not wait for the lock
    finally:
        release.set()
        worker.join()
