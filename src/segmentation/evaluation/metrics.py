"""Cluster quality metrics: silhouette (sampled above a size), Davies-Bouldin,
Calinski-Harabasz, segment shares, and what a fitted model reports of itself."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

from segmentation.algorithms import seeded_sample

# Distances held at once by silhouette_values (rows x n): 2M floats, 16 MB.
SILHOUETTE_BLOCK = 2_000_000


def segment_sizes(labels: np.ndarray) -> dict[int, int]:
    """Customers per segment (``-1`` is noise)."""
    values, counts = np.unique(labels, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts, strict=True)}


def silhouette_values(X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Silhouette of each point, as :func:`sklearn.metrics.silhouette_samples` (Euclidean).

    The same values (to rounding), faster on few features: distances come from
    ``scipy.spatial.distance.cdist`` in row blocks that stay in cache and are summed per
    cluster with one matrix product, where scikit-learn's generic path expands
    ``|x-y|^2`` with a thin matrix product and reduces in Python. Memory is
    ``SILHOUETTE_BLOCK`` floats, whatever ``n``.
    """
    X = np.asarray(X, dtype=float)
    n = len(X)
    clusters, index = np.unique(labels, return_inverse=True)
    if not 2 <= len(clusters) <= n - 1:
        raise ValueError(f"silhouette needs 2 to n_samples - 1 labels, got {len(clusters)}")
    onehot = np.zeros((n, len(clusters)))
    onehot[np.arange(n), index] = 1.0
    counts = onehot.sum(axis=0)
    sums = np.empty((n, len(clusters)))
    step = max(1, SILHOUETTE_BLOCK // n)
    for start in range(0, n, step):
        sums[start : start + step] = cdist(X[start : start + step], X) @ onehot
    rows = np.arange(n)
    own = counts[index]
    a = sums[rows, index] / np.maximum(own - 1, 1)
    mean_other = sums / counts
    mean_other[rows, index] = np.inf
    b = mean_other.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.nan_to_num((b - a) / np.maximum(a, b))
    values[own == 1] = 0.0  # a point alone in its cluster scores 0, as in scikit-learn
    return values


def silhouette_rows(
    X: np.ndarray, labels: np.ndarray, sample_above: int, sample_size: int, seed: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The rows the silhouette is computed on, since it is O(n^2): all of them up to
    ``sample_above``, else a seeded sample of ``sample_size``. Returns them, their labels and
    whether they are a sample."""
    n = len(X)
    if n <= sample_above:
        return X, labels, False
    idx = seeded_sample(n, sample_size, seed)
    return (X, labels, True) if idx is None else (X[idx], labels[idx], True)


def cluster_metrics(
    X: np.ndarray,
    labels: np.ndarray,
    *,
    sample_above: int = 20000,
    sample_size: int = 10000,
    seed: int = 0,
) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Silhouette (on a seeded sample above ``sample_above`` rows), Davies-Bouldin and
    Calinski-Harabasz on the clustered points (noise left out), and segment shares.

    Returns the metrics and the per-customer silhouette values with their labels (for the
    silhouette plot). Metrics that need two or more segments are NaN when there are fewer.
    """
    n = len(labels)
    sizes = segment_sizes(labels)
    noise = sizes.pop(-1, 0)
    clustered = labels != -1
    metrics: dict[str, float] = {
        "n_clusters": float(len(sizes)),
        "noise_fraction": noise / n if n else 0.0,
        "min_segment_fraction": min(sizes.values()) / n if sizes else 0.0,
        "max_segment_fraction": max(sizes.values()) / n if sizes else 0.0,
        "silhouette": float("nan"),
        "davies_bouldin": float("nan"),
        "calinski_harabasz": float("nan"),
        "silhouette_sampled": 0.0,
        "silhouette_sample_size": 0.0,
    }
    empty = np.empty(0), np.empty(0, dtype=labels.dtype)
    n_clustered = int(clustered.sum())
    if len(sizes) < 2 or n_clustered <= len(sizes):
        return metrics, *empty
    Xc, lc = X[clustered], labels[clustered]
    Xs, ls, sampled = silhouette_rows(Xc, lc, sample_above, sample_size, seed)
    if len(np.unique(ls)) >= 2:
        values = silhouette_values(Xs, ls)
        metrics["silhouette"] = float(values.mean())
    else:
        values, ls = empty
    metrics["silhouette_sampled"] = float(sampled)
    metrics["silhouette_sample_size"] = float(len(Xs))
    metrics["davies_bouldin"] = float(davies_bouldin_score(Xc, lc))
    metrics["calinski_harabasz"] = float(calinski_harabasz_score(Xc, lc))
    return metrics, values, ls


def model_metrics(estimator: Any, X: np.ndarray) -> dict[str, float]:
    """What a fitted model says of its own fit: KMeans inertia, a mixture's BIC and AIC,
    DBSCAN's core samples."""
    out: dict[str, float] = {}
    if hasattr(estimator, "inertia_"):
        out["inertia"] = float(estimator.inertia_)
    if callable(getattr(estimator, "bic", None)):
        out["bic"] = float(estimator.bic(X))
        out["aic"] = float(estimator.aic(X))
    if hasattr(estimator, "core_sample_indices_"):
        out["core_samples"] = float(len(estimator.core_sample_indices_))
    return out
