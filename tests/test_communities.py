"""k capped by the communities of the mutual-neighbour graph: a person seen along a pose sweep is a chain in feature
space, which the silhouette sweep alone cuts into pieces and the community count keeps whole; below the cap the
silhouette sweep rejoins a compact group that Louvain cut."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from support.synthetic import make_identity_features

from facecluster_widgets.cluster import HybridClustering
from facecluster_widgets.cluster.communities import community_labels, nearest
from facecluster_widgets.metrics import ari


def chains(n_ids: int = 6, per_id: int = 24, dim: int = 64, seed: int = 0) -> tuple[dict, np.ndarray]:
    """Each person a curved, stretched chain of faces (a head turning), chains far apart from each other."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_ids), per_id)
    centres = rng.normal(size=(n_ids, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    turn = rng.normal(size=(n_ids, dim))
    turn /= np.linalg.norm(turn, axis=1, keepdims=True)
    t = np.tile(np.linspace(-1.0, 1.0, per_id), n_ids)
    x = centres[y] + 1.0 * t[:, None] * turn[y] + 0.02 * rng.normal(size=(y.size, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    shape = 0.1 * rng.normal(size=(y.size, 4)) + centres[y][:, :4]
    return {"2d": x, "shape": shape}, y


def test_communities_keep_a_pose_chain_whole_where_silhouette_splits_it():
    X, y = chains()
    silhouette = HybridClustering(lam=1.0, auto_k="silhouette").fit(X)
    communities = HybridClustering(lam=1.0, auto_k="communities").fit(X)
    assert communities.n_clusters_ == 6
    assert ari(y, communities.labels_) > 0.95
    assert silhouette.n_clusters_ > 6 and ari(y, silhouette.labels_) < ari(y, communities.labels_)
    assert "6 Louvain communities, which caps k; k=6 has the highest silhouette" in communities.n_clusters_reason_


def test_a_large_compact_group_louvain_cuts_is_rejoined_below_the_cap():
    X, y = make_identity_features(n_ids=6, per_id=20, d2=64, blocks_3d={"shape": 5, "curvature": 3}, seed=0)
    assert np.unique(community_labels(1.0 - X["2d"] @ X["2d"].T, np.arange(y.size))).size > 6  # Louvain over-splits
    model = HybridClustering().fit(X)
    assert model.n_clusters_ == 6 and ari(y, model.labels_) == 1.0


def test_compact_identities_give_the_same_k_either_way():
    X, y = make_identity_features(n_ids=8, per_id=12, d2=64, noise2=0.4, seed=3)
    a = HybridClustering(auto_k="communities").fit(X)
    b = HybridClustering(auto_k="silhouette").fit(X)
    assert a.n_clusters_ == b.n_clusters_ == 8 and ari(y, a.labels_) == 1.0


def test_sparse_neighbour_graph_gives_the_dense_answer():
    X, _ = chains(seed=1)
    d = 1.0 - X["2d"] @ X["2d"].T
    rows = np.arange(d.shape[0])
    keep = np.zeros_like(d, dtype=bool)
    order = np.argsort(d, axis=1)[:, :16]  # self + 15 nearest, as a kNN graph stores them
    np.put_along_axis(keep, order, True, axis=1)
    graph = sp.csr_matrix(np.where(keep, d, 0.0))
    assert nearest(graph, rows, 10) == nearest(d, rows, 10)
    assert np.array_equal(community_labels(graph, rows), community_labels(d, rows))


def test_the_largest_photo_sets_a_floor_and_refit_switches_methods():
    X, y = make_identity_features(n_ids=3, per_id=10, d2=32, noise2=0.3, seed=0)
    groups = np.arange(y.size)
    groups[:5] = 0  # one photo with five faces: at least five people
    model = HybridClustering(auto_k="communities").fit(X, groups=groups)
    assert model.n_clusters_ >= 5 and "at least 5" in model.n_clusters_reason_
    assert "Louvain" not in model.refit(auto_k="silhouette").n_clusters_reason_
