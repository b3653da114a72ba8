"""Corrections survive re-clustering by the documented rules, and round-trip through the store as JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.synthetic import make_identity_features

from facecluster_widgets.review.collection import FaceCollection
from facecluster_widgets.review.edits import (
    Edit,
    EditError,
    EditLog,
    apply_edits,
    check_name,
    identify,
    majority_clusters,
)
from facecluster_widgets.review.session import ClusterSession
from facecluster_widgets.store import open_store

IDS = [f"f{i}" for i in range(12)]


def ids(*rows: int) -> tuple[str, ...]:
    return tuple(IDS[r] for r in rows)


def test_identify_takes_the_cluster_holding_most_anchor_faces_ties_to_smaller_id():
    labels = np.array([0, 0, 1, 1, 1, -1])
    assert identify(labels, np.array([0, 2, 3])) == 1
    assert identify(labels, np.array([0, 2])) == 0  # one each: the smaller id
    assert identify(labels, np.array([5])) is None  # only noise
    assert identify(labels, np.array([], dtype=int)) is None


def test_majority_claims_only_clusters_mostly_made_of_the_anchor():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    assert majority_clusters(labels, np.array([0, 1, 3, 4, 5])) == [0, 1]  # 2 holds 1 of 4 anchor faces


def test_merge_follows_the_faces_when_cluster_ids_are_renumbered():
    labels = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    log = EditLog([Edit("merge", anchor=ids(0, 1, 2, 3, 4, 5))])
    assert len(set(log.apply(labels, IDS).labels[:6])) == 1
    renumbered = np.array([3, 3, 3, 0, 0, 0, 1, 1, 1, 2, 2, 2])  # the same partition under new ids
    out = log.apply(renumbered, IDS).labels
    assert len(set(out[:6])) == 1 and len(set(out)) == 3
    assert set(out[6:9]).isdisjoint(out[:6])


def test_merge_does_not_grab_a_cluster_that_only_touches_the_merged_faces():
    log = EditLog([Edit("merge", anchor=ids(0, 1, 2, 3, 4, 5))])
    # re-clustered: faces 0-2 alone, faces 3-4 now inside a cluster of mostly other faces
    labels = np.array([0, 0, 0, 1, 1, 2, 1, 1, 1, 2, 2, 2])
    out = log.apply(labels, IDS).labels
    np.testing.assert_array_equal(out, labels)


def test_split_is_pinned_whatever_the_clustering_does():
    log = EditLog([Edit("split", faces=ids(1, 4))])
    for labels in (np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]), np.array([-1] * 6 + [0] * 6)):
        out = log.apply(labels, IDS).labels
        assert out[1] == out[4] >= 0
        assert out[1] not in np.delete(out, [1, 4])


def test_not_this_person_forces_the_face_out_only_of_that_person():
    anchor = ids(0, 1, 2)  # the cluster the face was in, without the face
    log = EditLog([Edit("not_person", faces=ids(3), anchor=anchor)])
    same = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    assert log.apply(same, IDS).labels[3] == -1
    elsewhere = np.array([0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2])
    assert log.apply(elsewhere, IDS).labels[3] == 1  # it went to another person: nothing to undo


def test_assign_puts_faces_into_the_cluster_that_holds_the_target_faces():
    log = EditLog([Edit("assign", faces=ids(9), anchor=ids(0, 1, 2))])
    labels = np.array([4, 4, 4, 1, 1, 1, 2, 2, 2, -1, 3, 3])
    assert log.apply(labels, IDS).labels[9] == 4


def test_names_follow_the_largest_overlap_later_names_win_and_lost_names_are_reported():
    log = EditLog([Edit("name", anchor=ids(0, 1, 2), name="Ann"), Edit("name", anchor=ids(6, 7, 8), name="Bob"),
                   Edit("name", anchor=ids(0, 1), name="Anne"), Edit("name", anchor=ids(10), name="Cy")])
    labels = np.array([2, 2, 1, 0, 0, 0, 1, 1, 5, 3, -1, 3])  # Ann's faces split 2:1; Bob's 2:1 into cluster 1
    applied = log.apply(labels, IDS)
    assert applied.names[2] == "Anne"  # renamed: the later name of the same cluster stands
    assert applied.names[1] == "Bob"
    assert "Ann" not in applied.names.values()
    assert applied.unplaced == ("Cy",)  # its only face is noise now


def test_faces_no_longer_in_the_collection_are_ignored():
    log = EditLog([Edit("split", faces=("gone", IDS[2])), Edit("name", anchor=("gone",), name="X")])
    applied = log.apply(np.zeros(12, int), IDS)
    assert applied.labels[2] == 1 and applied.unplaced == ("X",)


@pytest.mark.parametrize("name", ["", "   ", "a\x00b", "tab\there", "x" * 500, 42, None])
def test_bad_names_are_refused(name):
    with pytest.raises(EditError):
        check_name(name)


def test_names_are_stored_as_typed_even_when_they_look_like_paths_or_html():
    for name in ("../../etc", "<img src=x onerror=alert(1)>.jpg", "Zoë Ångström"):
        assert check_name(f"  {name} ") == name


def test_edit_needs_its_faces_and_a_known_kind():
    with pytest.raises(EditError):
        Edit("split")
    with pytest.raises(EditError):
        Edit("merge")
    with pytest.raises(EditError):
        Edit("rename", anchor=ids(0))


def test_log_round_trips_through_the_store_as_json(tmp_path):
    store = open_store(tmp_path / "s")
    log = EditLog([Edit("merge", anchor=ids(0, 1)), Edit("split", faces=ids(2)),
                   Edit("name", anchor=ids(3), name="<b>Zoë</b> ../x")])
    log.save(store)
    raw = json.loads((store.root / "edits.json").read_text())
    assert raw["format"] == "facecluster-edits" and len(raw["edits"]) == 3
    again = EditLog.load(store)
    assert again.edits == log.edits
    assert EditLog.load(open_store(tmp_path / "empty")).edits == []


def test_a_damaged_log_is_an_error_naming_the_file(tmp_path):
    store = open_store(tmp_path / "s")
    (store.root / "edits.json").write_text('{"format": "something else"}')
    with pytest.raises(EditError, match="edits.json"):
        EditLog.load(store)
    (store.root / "edits.json").write_text('{"format": "facecluster-edits", "edits": [{"kind": "merge"}]}')
    with pytest.raises(EditError):
        EditLog.load(store)


def test_apply_edits_does_not_modify_its_input():
    labels = np.array([0, 0, 1, 1])
    apply_edits(labels, IDS[:4], [Edit("split", faces=ids(0))])
    np.testing.assert_array_equal(labels, [0, 0, 1, 1])


# -- through a session, on synthetic faces with a real store --------------------------------------------


@pytest.fixture()
def faces(tmp_path):
    blocks, y = make_identity_features(n_ids=5, per_id=12, d2=32, blocks_3d={"shape": 6}, noise2=0.3, seed=4)
    collection = FaceCollection.from_features(blocks, labels=[f"p{v}" for v in y])
    return FaceCollection(collection.table, collection.features, store=open_store(tmp_path / "store"))


def test_session_edits_persist_and_are_reapplied_after_reclustering(faces):
    session = ClusterSession(faces)
    view = session.update(eps=0.6)
    a, b = view.labels[0], view.labels[12]
    assert a >= 0 and b >= 0 and a != b
    session.merge([a, b])
    session.split([30, 31])
    view = session.name(int(session.view.labels[0]), "Ann & Bea")
    merged = view.labels[0]
    assert view.labels[12] == merged and view.names[merged] == "Ann & Bea"

    fresh = ClusterSession(faces)  # a new kernel: the log comes from the store
    assert len(fresh.edits) == 3
    again = fresh.update(eps=0.6)
    np.testing.assert_array_equal(again.labels == again.labels[0], view.labels == view.labels[0])
    assert again.names[int(again.labels[0])] == "Ann & Bea"
    moved = fresh.update(lam=0.9, eps=0.55)  # other parameters: the corrections still apply
    assert moved.labels[12] == moved.labels[0] and moved.name_of(int(moved.labels[0])) == "Ann & Bea"
    assert moved.labels[30] == moved.labels[31] and (moved.labels == moved.labels[30]).sum() == 2


def test_not_this_person_and_undo_through_a_session(faces):
    session = ClusterSession(faces)
    view = session.update(eps=0.6)
    own = view.labels[5]
    view = session.not_person([5])
    assert view.labels[5] == -1
    assert 5 not in [r for r, _ in session.possible_matches(int(own), n=100)]
    view = session.undo()
    assert view.labels[5] == own
    with pytest.raises(EditError):
        ClusterSession(faces).undo()  # the undo was saved too: nothing left
