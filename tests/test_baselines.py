"""Baselines: each recovers well-separated synthetic identities, late fusion's alignment and vote are invariant
to how clusters are named, NaN rows get −1, thresholds follow their documented conversions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from support.synthetic import make_identity_features

from facecluster_widgets.cluster.baselines import (
    BASELINES,
    DLIB_DESCRIPTOR_NORM,
    THRESHOLDS,
    align_labels,
    late_fusion,
    majority_vote,
    run_baseline,
)
from facecluster_widgets.errors import FeatureInputError
from facecluster_widgets.metrics import ari


def make_faces(n_ids: int = 6, per_id: int = 20, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Unit 2D embeddings and two 3D blocks."""
    return make_identity_features(n_ids, per_id, 64, {"shape": 5, "curvature": 3}, seed=seed)


@pytest.fixture(scope="module")
def faces():
    return make_faces()


#: Thresholds for the synthetic scale (the defaults are the embedders' own; tested separately below).
SYNTHETIC = {
    "dbscan_2d": {"eps": 0.5},
    "agglomerative_2d": {"threshold": 0.6},
    "chinese_whispers": {"threshold": 1.0},
}


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_each_baseline_recovers_separated_identities(faces, name):
    X, y = faces
    labels = run_baseline(name, X, n_clusters=6, labels_true=y, **SYNTHETIC.get(name, {}))
    assert labels.shape == y.shape and labels.dtype.kind == "i"
    assert ari(y, labels) > 0.9


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_nan_rows_get_minus_one(faces, name):
    X, y = faces
    bad = {k: v.copy() for k, v in X.items()}
    bad["2d"][[3, 40]] = np.nan  # each baseline reads the 2D block, the 3D blocks or both
    bad["shape"][[3, 40], 0] = np.inf
    labels = run_baseline(name, bad, n_clusters=6, labels_true=y, **SYNTHETIC.get(name, {}))
    assert (labels[[3, 40]] == -1).all()
    keep = np.ones(y.size, dtype=bool)
    keep[[3, 40]] = False
    assert ari(y[keep], labels[keep]) > 0.9


@pytest.mark.parametrize("name", ["2d_kmeans", "3d_kmeans", "late_fusion", "true_k_kmeans", "2d_kmeans_true_k"])
def test_seeded_baselines_are_deterministic(faces, name):
    X, y = faces
    a = run_baseline(name, X, n_clusters=4, labels_true=y, random_state=3)
    b = run_baseline(name, X, n_clusters=4, labels_true=y, random_state=3)
    np.testing.assert_array_equal(a, b)


def test_published_thresholds_are_converted_as_documented():
    dlib = THRESHOLDS["dlib"]
    assert dlib.chinese_whispers == pytest.approx(0.5 / DLIB_DESCRIPTOR_NORM)
    # cosine distance of unit vectors = chord² / 2
    assert dlib.dbscan_eps == pytest.approx((0.5 / DLIB_DESCRIPTOR_NORM) ** 2 / 2)
    assert dlib.agglomerative == pytest.approx((0.6 / DLIB_DESCRIPTOR_NORM) ** 2 / 2)
    arcface = THRESHOLDS["arcface"]
    assert arcface.chinese_whispers == pytest.approx(math.sqrt(2 * arcface.dbscan_eps))


def test_default_thresholds_per_embedder(faces):
    X, y = faces
    # the synthetic within-identity cosine distance (~0.3) is inside ArcFace's 0.5 and far outside dlib's 0.064
    assert ari(y, run_baseline("dbscan_2d", X, embedder="arcface")) > 0.9
    assert ari(y, run_baseline("chinese_whispers", X, embedder="arcface")) > 0.9
    assert (run_baseline("dbscan_2d", X, embedder="dlib") == -1).all()
    with pytest.raises(FeatureInputError, match="no thresholds"):
        run_baseline("agglomerative_2d", X, embedder="vgg")


def test_align_labels_known_answer():
    reference = np.array([0, 0, 1, 1, 2, 2])
    labels = np.array([5, 5, 3, 3, 3, 7])
    np.testing.assert_array_equal(align_labels(reference, labels), [0, 0, 1, 1, 1, 2])
    # more clusters than the reference: the unmatched one gets a fresh id
    np.testing.assert_array_equal(align_labels(np.array([0, 0, 0, 1]), np.array([4, 4, 9, 8])), [0, 0, 2, 1])


def _rename(labels: np.ndarray, seed: int) -> np.ndarray:
    ids = np.unique(labels)
    return (np.random.default_rng(seed).permutation(ids.size) * 3 + 1)[np.searchsorted(ids, labels)]


def test_alignment_and_vote_are_invariant_to_cluster_names():
    rng = np.random.default_rng(0)
    truth = np.repeat(np.arange(5), 12)
    voters = [np.where(rng.random(60) < 0.8, truth, rng.integers(0, 5, 60)) for _ in range(4)]
    base = majority_vote([voters[0]] + [align_labels(voters[0], v) for v in voters[1:]])
    for seed in range(3):
        renamed = [_rename(v, seed + i) for i, v in enumerate(voters)]
        again = majority_vote([renamed[0]] + [align_labels(renamed[0], v) for v in renamed[1:]])
        assert ari(base, again) == pytest.approx(1.0)  # the same partition, whatever the names
        np.testing.assert_array_equal(align_labels(voters[0], renamed[1]), align_labels(voters[0], voters[1]))
    assert ari(truth, base) > ari(truth, voters[1])  # and the vote helps


def test_late_fusion_partition_does_not_depend_on_face_order(faces):
    """Permuting the faces' order permutes the late-fusion labels consistently (same partition)."""
    X, y = faces
    order = np.random.default_rng(1).permutation(y.size)
    a = late_fusion(X, 6)
    b = late_fusion({k: v[order] for k, v in X.items()}, 6)
    assert ari(a[order], b) > 0.99


def test_majority_vote_tie_rule():
    # face 0: 2-2 tie between 1 and 0 -> the first voter's label (1); face 1: majority 2; face 2: all abstain
    votes = [np.array([1, 2, -1]), np.array([0, 2, -1]), np.array([1, 0, -1]), np.array([0, 2, -1])]
    np.testing.assert_array_equal(majority_vote(votes), [1, 2, -1])
    # a tie not involving the first voter's label: the earliest voter among the tied ones decides
    votes = [np.array([5]), np.array([1]), np.array([2]), np.array([2]), np.array([1])]
    np.testing.assert_array_equal(majority_vote(votes), [1])


def test_run_baseline_errors(faces):
    X, y = faces
    with pytest.raises(FeatureInputError, match="unknown baseline"):
        run_baseline("kmeans", X)
    with pytest.raises(FeatureInputError, match="needs n_clusters"):
        run_baseline("2d_kmeans", X)
    with pytest.raises(FeatureInputError, match="needs labels_true"):
        run_baseline("true_k_kmeans", X)
    with pytest.raises(FeatureInputError, match="n_clusters=500"):
        run_baseline("3d_kmeans", X, n_clusters=500)
    with pytest.raises(FeatureInputError, match="one label per face"):
        run_baseline("true_k_kmeans", X, labels_true=y[:5])
    with pytest.raises(FeatureInputError, match="needs block"):
        run_baseline("dbscan_2d", {"shape": X["shape"]})
