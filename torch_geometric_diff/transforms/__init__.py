from .gaussian_knn_graph import GaussianKNNGraph, gaussian_knn_graph

__all__ = [
    'GaussianKNNGraph',
    'gaussian_knn_graph',
]
