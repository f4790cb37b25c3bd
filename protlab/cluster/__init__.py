"""Stage 04 · family discovery without labels: SCAN on homology / embedding neighbours,
k-means and PCA + k-means baselines (notebook ``04_cluster``).

``run(run_dir, **params)`` is what the notebook does; :class:`ScanClusterer` fits and
predicts on its own (``ScanClusterer.load(path).predict(embeddings, sequences)``).
"""
from protlab.cluster.methods import METHODS, Clustering, cluster, kmeans, pca_kmeans
from protlab.cluster.scan import ScanClusterer
from protlab.cluster.neighbors import NeighborGraph, mine_neighbors
from protlab.cluster.stage import STAGE, read_clustering, run, write_clustering

__all__ = ["run", "STAGE", "METHODS", "Clustering", "ScanClusterer", "cluster", "kmeans", "pca_kmeans",
           "NeighborGraph", "mine_neighbors", "read_clustering", "write_clustering"]
