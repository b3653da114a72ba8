"""HybridClustering on synthetic identities: recovers the partition (k given and "auto"), λ's ends ignore a block,
cannot-link holds, refit reuses the cache and equals a fresh fit, degenerate input fails clearly or falls back as
documented, and the scikit-learn estimator basics hold."""

from __future__ import annotations

import warnings
from collections import Counter
from types import MethodType

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils.estimator_checks import parametrize_with_checks
from support.synthetic import make_identity_features

from facecluster_widgets import fusion
from facecluster_widgets.cluster import HybridClustering, assign, knn
from facecluster_widgets.errors import FaceclusterError
from facecluster_widgets.features import Features
from facecluster_widgets.fusion import FusedMetric
from facecluster_widgets.metrics import ari


def make_faces(n_ids: int = 6, per_id: int = 20, d2: int = 128, d3: int = 6, noise2: float = 0.6,
               noise3: float = 0.3, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    return make_identity_features(n_ids, per_id, d2, {"shape": d3}, noise2, noise3, seed)


@pytest.fixture(scope="module")
def faces():
    return make_faces()


@pytest.mark.parametrize("fusion", ["metric", "concat"])
@pytest.mark.parametrize("n_clusters", [6, "auto"])
def test_recovers_identities(faces, fusion, n_clusters):
    X, y = faces
    model = HybridClustering(n_clusters=n_clusters, fusion=fusion, auto_k="silhouette").fit(X)
    assert ari(y, model.labels_) > 0.95
    assert model.n_clusters_ == 6
    assert "DBSCAN" in model.n_clusters_reason_
    assert set(model.centroids_) == {"2d", "3d"} and model.centroids_["2d"].shape == (6, 128)
    if n_clusters == "auto":
        assert max(model.auto_k_scores_, key=model.auto_k_scores_.get) == 6
        assert "silhouette" in model.n_clusters_reason_


def test_auto_k_follows_the_data_not_a_constant():
    X, y = make_faces(n_ids=9, per_id=12, seed=3)
    model = HybridClustering(lam=0.65).fit(X)  # this synthetic 2D block is noisier than real embeddings
    assert model.n_clusters_ == 9
    assert ari(y, model.labels_) > 0.95


def test_features_object_input_equals_dict_input(faces):
    X, _ = faces
    features = Features(face_ids=np.arange(120), blocks=X)
    np.testing.assert_array_equal(HybridClustering().fit(features).labels_, HybridClustering().fit(X).labels_)


def test_lambda_one_ignores_3d_and_zero_ignores_2d(faces):
    X, _ = faces
    rng = np.random.default_rng(9)
    other_3d = dict(X, shape=rng.normal(size=X["shape"].shape))
    e = rng.normal(size=X["2d"].shape)
    other_2d = dict(X, **{"2d": e / np.linalg.norm(e, axis=1, keepdims=True)})
    for lam, changed in ((1.0, other_3d), (0.0, other_2d)):
        a = HybridClustering(lam=lam, n_clusters=6).fit(X)
        b = HybridClustering(lam=lam, n_clusters=6).fit(changed)
        np.testing.assert_array_equal(a.labels_, b.labels_)
        np.testing.assert_array_equal(a.fused_distances_, b.fused_distances_)
    # ... while at λ = 0.65 the same change does matter
    a = HybridClustering(n_clusters=6, lam=0.65).fit(X)
    assert not np.array_equal(a.fused_distances_,
                              HybridClustering(n_clusters=6, lam=0.65).fit(other_3d).fused_distances_)


def test_deterministic_with_random_state(faces):
    X, _ = faces
    a = HybridClustering(n_clusters=6, random_state=5).fit(X)
    b = HybridClustering(n_clusters=6, random_state=5).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.inertia_ == b.inertia_


def test_cannot_link_compatible_photos_keep_the_partition(faces):
    X, y = faces
    # 20 photos, each showing one face of each of the 6 people: the true partition satisfies every constraint
    groups = np.tile(np.arange(20), 6)
    model = HybridClustering(n_clusters="auto").fit(X, groups=groups)
    assert ari(y, model.labels_) > 0.95
    _assert_no_shared_cluster(model.labels_, groups)


def test_cannot_link_splits_faces_of_one_photo(faces):
    X, y = faces
    # adversarial photos: faces 0-1, 2-3, ... of the SAME person appear together; the constraint must win
    groups = np.arange(120) // 2
    free = HybridClustering(n_clusters=6, cannot_link=False).fit(X, groups=groups)
    assert _pairs_sharing(free.labels_, groups) > 0  # without the constraint they do share (so the test can fail)
    model = HybridClustering(n_clusters=6, noise="assign").fit(X, groups=groups)
    _assert_no_shared_cluster(model.labels_, groups)
    assert (model.labels_ >= 0).all()


def test_cannot_link_surplus_faces_get_noise_label(faces):
    X, _ = faces
    groups = np.zeros(120, dtype=int)
    groups[:8] = 1  # a photo with 8 faces but only 6 clusters
    groups[8:] = np.arange(2, 114)
    model = HybridClustering(n_clusters=6).fit(X, groups=groups)
    assert model.cannot_link_unassigned_ == 2
    _assert_no_shared_cluster(model.labels_, groups)


def test_assign_solves_each_photo_jointly():
    dist = np.array([[0.1, 0.2], [0.1, 0.9], [0.5, 0.4]])
    np.testing.assert_array_equal(assign(dist), [0, 0, 1])
    np.testing.assert_array_equal(assign(dist, [np.array([0, 1])]), [1, 0, 1])  # 0.2 + 0.1 < 0.1 + 0.9
    forbidden = np.array([[False, True], [True, True], [False, False]])
    np.testing.assert_array_equal(assign(dist, [], forbidden), [0, -1, 1])


def _pairs_sharing(labels: np.ndarray, groups: np.ndarray) -> int:
    clustered = labels >= 0
    pairs = {(g, lab) for g, lab in zip(groups[clustered], labels[clustered], strict=True)}
    return int(clustered.sum()) - len(pairs)


def _assert_no_shared_cluster(labels: np.ndarray, groups: np.ndarray) -> None:
    assert _pairs_sharing(labels, groups) == 0


def test_noise_keep_and_assign(faces):
    X, _ = faces
    rng = np.random.default_rng(4)
    e = rng.normal(size=(3, 128))
    outliers = {"2d": np.vstack([X["2d"], e / np.linalg.norm(e, axis=1, keepdims=True)]),
                "shape": np.vstack([X["shape"], rng.normal(size=(3, 6)) * 30])}
    kept = HybridClustering(n_clusters=6).fit(outliers)
    assert kept.noise_mask_[-3:].all()
    assert (kept.labels_[-3:] == -1).all()
    assigned = HybridClustering(n_clusters=6, noise="assign").fit(outliers)
    assert (assigned.labels_ >= 0).all()
    np.testing.assert_array_equal(assigned.labels_[:-3], kept.labels_[:-3])


def test_nan_rows_get_minus_one_and_are_reported(faces, caplog):
    X, y = faces
    bad = {name: block.copy() for name, block in X.items()}
    bad["shape"][[5, 50]] = np.nan
    bad["2d"][70] = np.inf
    model = HybridClustering(n_clusters=6, noise="assign").fit(bad)
    assert model.invalid_mask_.sum() == 3 and model.invalid_mask_[[5, 50, 70]].all()
    assert (model.labels_[[5, 50, 70]] == -1).all()
    assert "incomplete features" in caplog.text
    ok = ~model.invalid_mask_
    assert ari(y[ok], model.labels_[ok]) > 0.95
    assert model.distance_.n_faces == 117


def test_refit_reuses_cache_and_equals_a_fresh_fit(faces):
    X, _ = faces
    model = HybridClustering(n_clusters="auto").fit(X)
    cache = model.distance_
    for params in ({"lam": 0.4}, {"eps": 0.45, "min_samples": 4}, {"n_clusters": 5, "noise": "assign"}):
        model.refit(**params)
        assert model.distance_ is cache and model.reused_cache_
        fresh = clone(model).fit(X)
        np.testing.assert_array_equal(model.labels_, fresh.labels_)
        assert model.n_clusters_ == fresh.n_clusters_
    model.refit(fusion="concat")  # invalidates the cache: rebuilt from the kept features
    assert model.distance_ is not cache and model.distance_.fusion == "concat" and not model.reused_cache_


@pytest.mark.parametrize("algorithm", ["dense", "sparse"])
def test_refit_recomputes_no_distance_between_faces(monkeypatch, algorithm):
    """Why a slider move is cheap, counted instead of timed: a refit builds no new metric, no per-block n×n
    matrix and no kNN graph; a changed fusion rebuilds them."""
    calls = Counter()

    def counting(owner, name):
        real = getattr(owner, name)
        real = real.__func__ if isinstance(real, MethodType) else real

        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return classmethod(wrapper) if owner in (FusedMetric, knn.FusedGraph) else wrapper

    monkeypatch.setattr(fusion, "_pairwise", counting(fusion, "_pairwise"))
    monkeypatch.setattr(FusedMetric, "fit", counting(FusedMetric, "fit"))
    monkeypatch.setattr(knn.FusedGraph, "build", counting(knn.FusedGraph, "build"))
    X, _ = make_faces(n_ids=10, per_id=12, d3=30, noise3=0.5)
    model = HybridClustering(n_clusters=10, algorithm=algorithm).fit(X)
    cold = dict(calls)
    assert cold["fit"] == 1 and cold.get("_pairwise", 0) == (2 if algorithm == "dense" else 0)
    assert cold.get("build", 0) == (1 if algorithm == "sparse" else 0)
    for params in ({"lam": 0.5}, {"eps": 0.5}, {"min_samples": 4}, {"n_clusters": "auto"}):
        model.refit(**params)
        assert dict(calls) == cold and model.reused_cache_, params
    model.refit(fusion="concat")
    assert calls["fit"] == 2 and not model.reused_cache_


def test_timings_are_reported(faces):
    model = HybridClustering().fit(faces[0])
    assert {"prepare", "fuse", "dbscan", "kmeans", "assign", "total"} <= set(model.timings_)
    assert model.timings_["total"] >= model.timings_["kmeans"] >= 0


def test_fewer_faces_than_min_samples_is_a_clear_error(faces):
    X, _ = faces
    with pytest.raises(ValueError, match="min_samples") as info:
        HybridClustering(min_samples=5).fit({k: v[:4] for k, v in X.items()})
    assert isinstance(info.value, FaceclusterError)


def test_every_face_noise_falls_back_to_all_minus_one(faces):
    X, _ = faces
    with pytest.warns(UserWarning, match="every face as noise"):
        model = HybridClustering(eps=1e-6).fit(X)
    assert (model.labels_ == -1).all() and model.n_clusters_ == 0
    assert "noise" in model.n_clusters_reason_


def test_k_larger_than_faces_is_a_clear_error(faces):
    X, _ = faces
    with pytest.raises(ValueError, match="n_clusters=500"):
        HybridClustering(n_clusters=500).fit(X)
    with pytest.raises(ValueError, match="DBSCAN left only"):
        HybridClustering(n_clusters=110, eps=0.3, min_samples=10, lam=0.65).fit(X)


def test_identical_embeddings_do_not_crash():
    X = {"2d": np.tile([[0.6, 0.8, 0.0]], (10, 1)), "shape": np.tile([[1.0, 2.0]], (10, 1))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto = HybridClustering().fit(X)
    assert auto.n_clusters_ == 1 and (auto.labels_ == 0).all()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        HybridClustering(n_clusters=3).fit(X)
    messages = " | ".join(str(w.message) for w in caught)
    assert "distinct clusters" in messages and "constant" in messages


def test_zero_variance_3d_block_falls_back_to_2d(faces):
    X, y = faces
    flat = dict(X, shape=np.ones_like(X["shape"]))
    with pytest.warns(UserWarning, match="constant"):
        model = HybridClustering(n_clusters=6).fit(flat)
    assert ari(y, model.labels_) > 0.95


def test_all_rows_invalid_is_a_clear_error(faces):
    X, _ = faces
    with pytest.raises(ValueError, match="complete features"):
        HybridClustering().fit(dict(X, shape=np.full_like(X["shape"], np.nan)))


@pytest.mark.parametrize("params", [{"lam": 1.5}, {"noise": "drop"}, {"n_clusters": 0}, {"fusion": "early"},
                                    {"eps": 0.0}, {"n_clusters": "many"}])
def test_invalid_parameters_raise_value_error(faces, params):
    with pytest.raises(ValueError):
        HybridClustering(**params).fit(faces[0])


def test_bad_groups_and_inputs(faces):
    X, _ = faces
    with pytest.raises(ValueError, match="one photo id per face"):
        HybridClustering().fit(X, groups=[1, 2, 3])
    with pytest.raises(ValueError, match="Features object or a dict"):
        HybridClustering().fit(np.ones((10, 3)))


class ArrayInput(HybridClustering):
    """scikit-learn's checks feed one (n, d) array; HybridClustering takes named blocks. This passes the array
    as the 2D block, so the checks exercise the estimator itself (parameters, fit, clone, pickle, idempotence,
    sample-order invariance, clustering quality on blobs)."""

    def fit(self, X, y=None, groups=None):
        return super().fit({"2d": X}, groups=groups)

    def fit_predict(self, X, y=None, groups=None):
        return self.fit(X, groups=groups).labels_


#: Checks that cannot apply, and why. Every other check of scikit-learn's suite must pass.
NOT_APPLICABLE = {
    "check_estimators_nan_inf": "a face with NaN/inf features (a stage could not process it) is kept with label -1 "
                                "and invalid_mask_, by design, instead of failing the whole collection",
    "check_dtype_object": "a non-numeric block raises FeatureInputError (a ValueError naming the block), "
                          "not the TypeError the check expects",
    "check_estimators_empty_data_messages": "the error names the empty block (\"feature block '2d' has no "
                                            "columns\") rather than sklearn's wording",
    "check_fit2d_1sample": "the error says one face is fewer than min_samples (what to change), not sklearn's "
                           "'1 sample' wording",
}


@parametrize_with_checks([ArrayInput()], expected_failed_checks=lambda estimator: NOT_APPLICABLE)
def test_scikit_learn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "1 of 20 faces have incomplete features" from NaN checks
        check(estimator)


def test_sklearn_estimator_basics(faces):
    est = HybridClustering(lam=0.3, n_clusters=4)
    cloned = clone(est)
    assert cloned.get_params() == est.get_params() and cloned is not est
    assert est.set_params(eps=0.4) is est and est.eps == 0.4
    model = HybridClustering(n_clusters=6)
    assert model.fit(faces[0]) is model
    assert model.n_features_in_ == sum(block.shape[1] for block in faces[0].values())
    np.testing.assert_array_equal(HybridClustering(n_clusters=6).fit_predict(faces[0]), model.labels_)


def test_warm_start_walks_to_the_nearby_peak_with_few_runs():
    """warm_start re-scores only k near the previous auto k (a slider move), and still lands on the true k."""
    X, y = make_faces(n_ids=9, per_id=12, seed=3)
    model = HybridClustering(lam=0.65, warm_start=True, auto_k="silhouette").fit(X)
    cold_runs = len(model.auto_k_scores_)
    assert model.n_clusters_ == 9
    model.refit(eps=0.55)
    assert model.n_clusters_ == 9 and ari(y, model.labels_) > 0.95
    assert len(model.auto_k_scores_) < cold_runs / 2 and "warm start" in model.n_clusters_reason_
    model._auto_k_previous = 3  # far below the peak: the window must walk uphill to it
    model.refit(eps=0.5)
    assert model.n_clusters_ == 9 and min(model.auto_k_scores_) <= 3
    cold = HybridClustering(lam=0.65, eps=0.5, auto_k="silhouette").fit(X)
    np.testing.assert_array_equal(model.labels_ >= 0, cold.labels_ >= 0)
