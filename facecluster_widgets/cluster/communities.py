"""A graph-based cap on the number of people: communities (Louvain) of the mutual k-nearest-neighbour graph of the
fused distance (``HybridClustering(auto_k="communities")``).

Why: the silhouette sweep over-splits under pose when the alignment is poor. A person's profiles and frontal photos
form an elongated, chained group in the fused space; silhouette favours compact clusters and cuts the chain into
pieces (benchmarks/README.md), while the chain stays one densely linked community of the neighbour graph. Mutual
neighbours (each among the other's ``n_neighbors`` nearest) keep a person's chain and drop the stray links
between people; Louvain's modularity then needs no distance threshold, so nothing is tuned per embedder.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import scipy.sparse as sp

#: Neighbours per face in the graph; at most the smallest group a person is expected to have (~10 photos).
COMMUNITY_NEIGHBORS = 10


def nearest(fused: np.ndarray | sp.spmatrix, rows: np.ndarray, n_neighbors: int) -> list[dict[int, float]]:
    """For each face in ``rows`` its ``n_neighbors`` nearest others among ``rows`` (positions in ``rows``) with
    their distances. ``fused``: a dense (n, n) matrix or a sparse kNN graph (only its stored pairs count)."""
    position = {int(face): i for i, face in enumerate(rows)}
    out: list[dict[int, float]] = []
    if sp.issparse(fused):
        graph = sp.csr_matrix(fused)
        for face in rows:
            start, end = graph.indptr[face], graph.indptr[face + 1]
            pairs = [(float(d), position[int(j)]) for j, d in zip(graph.indices[start:end], graph.data[start:end],
                                                                  strict=True)
                     if int(j) in position and int(j) != int(face)]
            out.append({j: d for d, j in sorted(pairs)[:n_neighbors]})
        return out
    sub = np.asarray(fused)[np.ix_(rows, rows)].astype(np.float64, copy=True)
    np.fill_diagonal(sub, np.inf)
    m = min(n_neighbors, max(len(rows) - 1, 0))
    if m == 0:
        return [{} for _ in rows]
    idx = np.argpartition(sub, m - 1, axis=1)[:, :m]
    return [{int(j): float(sub[i, j]) for j in idx[i]} for i in range(len(rows))]


def community_labels(fused: np.ndarray | sp.spmatrix, rows: np.ndarray, n_neighbors: int = COMMUNITY_NEIGHBORS,
                     seed: int = 0) -> np.ndarray:
    """Louvain communities (weights exp(−distance)) of the mutual ``n_neighbors``-NN graph over ``rows``."""
    neighbours = nearest(fused, np.asarray(rows), n_neighbors)
    graph = nx.Graph()
    graph.add_nodes_from(range(len(neighbours)))
    for i, near in enumerate(neighbours):
        for j, distance in near.items():
            if j > i and i in neighbours[j]:
                graph.add_edge(i, j, weight=float(np.exp(-distance)))
    labels = np.empty(len(neighbours), dtype=int)
    for label, members in enumerate(nx.community.louvain_communities(graph, weight="weight", seed=seed)):
        labels[list(members)] = label
    return labels
