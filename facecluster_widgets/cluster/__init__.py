"""Clustering faces: the hybrid method (:class:`HybridClustering`) and the baselines it is compared with."""

from .baselines import BASELINES, align_labels, majority_vote, run_baseline
from .hybrid import HybridClustering
from .kmeans import KMeansResult, assign, fused_kmeans, kmeans_plusplus

__all__ = [
    "BASELINES", "HybridClustering", "KMeansResult", "align_labels", "assign", "fused_kmeans", "kmeans_plusplus",
    "majority_vote", "run_baseline",
]
