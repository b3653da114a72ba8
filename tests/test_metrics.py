"""Clustering scores: known answers, the invariances every score must have (driven by the METRICS registry, as
sklearn's test_common does), the documented noise rule, and input validation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score
from sklearn.metrics.pairwise import euclidean_distances

from facecluster_widgets.errors import FaceclusterError
from facecluster_widgets.metrics import (
    METRICS,
    SYMMETRIC,
    MetricInputError,
    ari,
    bcubed,
    clusters_found,
    noise_as_singletons,
    noise_fraction,
    pairwise_scores,
    purity,
    scores,
    silhouette,
    silhouette_or_nan,
)

RNG = np.random.default_rng(7)
TRUE = RNG.integers(0, 5, size=60)
PRED = np.where(RNG.random(60) < 0.7, TRUE, RNG.integers(0, 6, size=60))
PRED[:4] = -1  # some noise


def _permute(labels: np.ndarray, seed: int) -> np.ndarray:
    """Rename clusters (noise stays −1)."""
    ids = np.unique(labels[labels >= 0])
    names = dict(zip(ids.tolist(), (np.random.default_rng(seed).permutation(ids.size) + 10).tolist(), strict=True))
    return np.array([names.get(v, -1) for v in labels.tolist()])


@pytest.mark.parametrize("name", sorted(METRICS))
def test_perfect_labelling_scores_one(name):
    true = np.array(["ann", "ann", "bob", "bob", "bob", "cy"])
    pred = np.array([7, 7, 2, 2, 2, 0])
    assert METRICS[name](true, pred) == pytest.approx(1.0)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_invariant_to_renaming_clusters(name):
    fn = METRICS[name]
    base = fn(TRUE, PRED)
    assert fn(TRUE, _permute(PRED, 1)) == pytest.approx(base)
    assert fn(_permute(TRUE, 2), PRED) == pytest.approx(base)


@pytest.mark.parametrize("name", sorted(SYMMETRIC))
def test_symmetric_scores(name):
    assert METRICS[name](TRUE, PRED) == pytest.approx(METRICS[name](PRED, TRUE))


@pytest.mark.parametrize("family", ["bcubed", "pairwise"])
def test_precision_and_recall_swap_with_arguments(family):
    assert METRICS[f"{family}_precision"](TRUE, PRED) == pytest.approx(METRICS[f"{family}_recall"](PRED, TRUE))


@pytest.mark.parametrize("name", sorted(METRICS))
def test_scores_lie_in_unit_interval_or_ari_range(name):
    value = METRICS[name](TRUE, PRED)
    assert (-0.5 if name == "ari" else 0.0) <= value <= 1.0
    assert value < 1.0  # PRED is not perfect: every score must notice


@pytest.mark.parametrize("name", sorted(METRICS))
@pytest.mark.parametrize("bad", [
    ([0, 1, np.nan], [0, 1, 1]),
    ([0, 1, 1], [0, np.inf, 1]),
    ([0, 1, 1], [0, 1]),
    ([[0, 1]], [[0, 1]]),
    ([], []),
    ([0, 1, None], [0, 1, 1]),
    ([0.5, 1, 1], [0, 1, 1]),
])
def test_bad_labels_raise_value_error(name, bad):
    with pytest.raises(ValueError) as info:
        METRICS[name](*bad)
    assert isinstance(info.value, FaceclusterError)


def test_known_answers_on_a_hand_example():
    # true: a a a b b ; pred: 0 0 1 1 1  (one "a" merged into b's cluster)
    true, pred = [0, 0, 0, 1, 1], [0, 0, 1, 1, 1]
    p, r, f = bcubed(true, pred)
    assert (p, r) == pytest.approx((11 / 15, 11 / 15))  # (1+1+1/3+2/3+2/3)/5 both ways
    assert f == pytest.approx(11 / 15)
    assert pairwise_scores(true, pred) == pytest.approx((0.5, 0.5, 0.5))  # 2 of 4 predicted pairs, 2 of 4 true
    assert purity(true, pred) == pytest.approx(0.8)
    assert ari(true, pred) == pytest.approx(adjusted_rand_score(true, pred))


def test_ari_and_nmi_match_sklearn_without_noise():
    pred = np.abs(PRED)
    assert METRICS["ari"](TRUE, pred) == pytest.approx(adjusted_rand_score(TRUE, pred))
    assert METRICS["nmi"](TRUE, pred) == pytest.approx(normalized_mutual_info_score(TRUE, pred))


def test_noise_counts_as_singletons():
    singles = noise_as_singletons(PRED)
    assert np.unique(singles[PRED == -1]).size == int((PRED == -1).sum())
    assert not set(singles[PRED == -1]) & set(singles[PRED != -1])
    for name, fn in METRICS.items():
        assert fn(TRUE, PRED) == pytest.approx(fn(TRUE, singles)), name


def test_all_noise_prediction():
    true = np.array([0, 0, 1, 1])
    pred = np.full(4, -1)
    assert ari(true, pred) == pytest.approx(0.0)
    assert bcubed(true, pred)[:2] == pytest.approx((1.0, 0.5))  # pure singletons, half of each identity
    assert pairwise_scores(true, pred)[:2] == (1.0, 0.0)  # no predicted pair: nothing wrongly merged
    assert noise_fraction(pred) == 1.0
    assert clusters_found(pred) == 0


def test_silhouette_matches_sklearn_and_excludes_noise():
    points = RNG.normal(size=(60, 3)) + TRUE[:, None] * 3
    D = euclidean_distances(points)
    keep = PRED >= 0
    expected = silhouette_score(D[np.ix_(keep, keep)], PRED[keep], metric="precomputed")
    assert silhouette(PRED, D) == pytest.approx(expected)
    assert silhouette(PRED, D.astype(np.float32)) == pytest.approx(expected, abs=1e-5)
    assert silhouette(TRUE, D) > 0.5


def test_silhouette_rejects_what_it_cannot_score():
    D = np.ones((4, 4)) - np.eye(4)
    with pytest.raises(MetricInputError, match="2 <= clusters"):
        silhouette([0, 0, 0, -1], D)
    with pytest.raises(MetricInputError, match="square"):
        silhouette([0, 1, 0], D)
    with pytest.raises(MetricInputError, match="NaN"):
        silhouette([0, 1, 0, 1], np.full((4, 4), np.nan))


def test_silhouette_or_nan_is_nan_only_where_the_silhouette_is_undefined():
    D = euclidean_distances(np.arange(4.0)[:, None])
    assert silhouette_or_nan([0, 0, 1, 1], D) == silhouette([0, 0, 1, 1], D)
    for undefined in ([0, 0, 0, -1], [0, 1, 2, 3], [-1, -1, -1, -1], []):
        assert np.isnan(silhouette_or_nan(undefined, D if undefined else np.zeros((0, 0))))
    with pytest.raises(MetricInputError, match="square"):  # bad input is still an error, not a NaN
        silhouette_or_nan([0, 0, 1], D)


def test_scores_reports_everything():
    points = RNG.normal(size=(60, 2)) + TRUE[:, None] * 3
    out = scores(TRUE, PRED, euclidean_distances(points))
    assert set(METRICS) <= set(out)
    assert out["noise_fraction"] == pytest.approx(4 / 60)
    assert out["clusters_true"] == 5
    assert 0 < out["silhouette"] <= 1
    assert np.isnan(scores([0, 1], [-1, -1], np.zeros((2, 2)))["silhouette"])
