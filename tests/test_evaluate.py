"""The evaluation harness on synthetic identities: every method runs, the table has the method's shape,
the λ sweep and DBSCAN figures are computed, and results are reproducible."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from support.synthetic import make_identity_features

from facecluster_widgets.errors import FaceclusterError
from facecluster_widgets.evaluation.evaluate import COLUMNS, METHODS, evaluate_features


@pytest.fixture(scope="module")
def faces():
    blocks, y = make_identity_features(n_ids=8, per_id=12, d2=64, blocks_3d={"shape": 6, "curvature": 4}, noise2=0.4,
                                       seed=3)
    return blocks, np.array([f"person{i}" for i in y])


@pytest.fixture(scope="module")
def result(faces):
    blocks, labels = faces
    conditions = np.where(np.arange(len(labels)) % 4 == 0, "profile", "frontal")
    return evaluate_features(blocks, labels, name="synthetic", conditions=conditions)


def test_table_has_every_method_and_metric(result):
    assert list(result.table.index) == list(METHODS)
    assert list(result.table.columns) == list(COLUMNS)
    assert result.table.loc["full", "ari"] > 0.9
    assert result.table.loc["2d_kmeans_true_k", "clusters_found"] == 8
    assert (result.table["clusters_true"] == 8).all()


def test_sweep_covers_lambda_and_dbscan_figures_are_consistent(result):
    sweep = result.lam_sweep
    assert sweep["lam"].iloc[0] == 0.0 and sweep["lam"].iloc[-1] == 1.0 and len(sweep) == 21
    assert sweep["ari"].between(-1, 1).all()
    d = result.dbscan
    assert 0 <= d["noise_fraction"] <= 1
    assert d["silhouette_change"] == pytest.approx(d["silhouette_hybrid"] - d["silhouette_kmeans"])


def test_subsets_and_markdown(result):
    assert set(result.subsets.index.get_level_values("subset")) == {"frontal", "profile"}
    text = result.to_markdown()
    assert "Full method" in text and "λ sweep" in text and "DBSCAN stage" in text


def test_reproducible(faces):
    blocks, labels = faces
    a = evaluate_features(blocks, labels, methods=["full", "2d_kmeans"])
    b = evaluate_features(blocks, labels, methods=["full", "2d_kmeans"])
    assert a.table.drop(columns="seconds").equals(b.table.drop(columns="seconds"))


def test_without_3d_blocks_the_3d_methods_are_skipped_with_a_note(faces):
    blocks, labels = faces
    out = evaluate_features({"2d": blocks["2d"]}, labels, methods=["full", "dbscan_2d", "2d_kmeans_true_k"])
    assert list(out.table.index) == ["dbscan_2d", "2d_kmeans_true_k"]
    assert any("skipped full" in note for note in out.notes)


def test_unlabelled_rows_are_left_out_and_all_missing_is_an_error(faces):
    blocks, labels = faces
    partial = labels.astype(object)
    partial[:10] = None
    out = evaluate_features(blocks, partial, methods=["dbscan_2d"])
    assert out.table.loc["dbscan_2d", "clusters_true"] == 8
    with pytest.raises(Exception, match="no face has a label"):
        evaluate_features(blocks, [None] * len(labels), methods=["dbscan_2d"])


def test_photo_groups_follow_files_not_content():
    """Identical files are one face twice (free to share a cluster); two faces of one file are two people."""
    import pandas as pd

    from facecluster_widgets.io.table import photo_groups

    faces = pd.DataFrame({"path": ["a/normal.gif", "a/noglasses.gif", "group.jpg", "group.jpg"],
                          "image_id": ["same", "same", "g", "g"]})
    codes = photo_groups(faces)
    assert codes[0] != codes[1] and codes[2] == codes[3] and len(set(codes)) == 3


def test_one_name_per_method():
    """The report's methods are the baselines' own names: nothing translates between two vocabularies."""
    from facecluster_widgets.cluster import BASELINES

    assert METHODS[0] == "full" and set(METHODS[1:]) <= set(BASELINES) and METHODS[1] == "full_3d_off"
    blocks, y = make_identity_features(n_ids=3, per_id=5, d2=16, blocks_3d={"shape": 4}, seed=0)
    with pytest.raises(FaceclusterError, match="unknown method.*'kmeans-true-k'.*known: full, full_3d_off, 2d_kmeans"):
        evaluate_features(blocks, [str(v) for v in y], methods=["kmeans-true-k"])


@pytest.mark.slow
def test_3d_weight_off_row_is_the_full_method_at_lambda_1_with_the_same_groups(faces):
    from facecluster_widgets.cluster import HybridClustering, run_baseline

    blocks, labels = faces
    groups = np.arange(len(labels)) // 2  # pairs of faces share a photo: cannot-link must reach the ablation too
    out = evaluate_features(blocks, labels, groups=groups, methods=["full", "full_3d_off"])
    direct = HybridClustering(lam=1.0).fit(blocks, groups=groups).labels_
    assert np.array_equal(run_baseline("full_3d_off", blocks, groups=groups), direct)
    from facecluster_widgets.metrics import scores

    assert out.table.loc["full_3d_off", "ari"] == pytest.approx(scores(pd.factorize(labels)[0], direct)["ari"])
    assert "3D branch: full method minus \"3D weight off\" = " in out.to_markdown()


def test_per_yaw_table_bins_the_pipelines_yaw(faces):
    blocks, labels = faces
    yaw = np.tile([5.0, -25.0, 45.0, -80.0, np.nan, 95.0], len(labels) // 6 + 1)[:len(labels)]
    out = evaluate_features(blocks, labels, yaw=yaw, methods=["full", "dbscan_2d"])
    faces_per_bin = out.by_yaw.xs("full", level="method")["faces"]
    magnitude = np.abs(yaw)
    assert faces_per_bin.to_dict() == {"0-30°": int((magnitude < 30).sum()),
                                       "30-60°": int(((magnitude >= 30) & (magnitude < 60)).sum()),
                                       "60-90°": int((magnitude >= 60).sum())}
    assert set(out.by_yaw.index.get_level_values("method")) == {"full", "dbscan_2d"}
    assert "Scores per yaw bin" in out.to_markdown()
    assert evaluate_features(blocks, labels, methods=["dbscan_2d"]).by_yaw.empty
