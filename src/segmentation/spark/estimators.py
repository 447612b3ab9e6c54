"""Scikit-learn estimators equal to fitted Spark models (no pyspark here: the registered model
unpickles them in serving, where there is no JVM).

Each ``*_from_spark`` function takes the figures a Spark model exposes and returns a fitted
scikit-learn estimator whose ``predict`` assigns rows as the Spark model's ``transform`` does.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.linalg import solve_triangular
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler
from sklearn.utils.validation import check_is_fitted, validate_data


def kmeans_from_spark(centres: np.ndarray, inertia: float, n_iter: int) -> KMeans:
    """A fitted :class:`~sklearn.cluster.KMeans` with Spark's centres: ``predict`` gives each
    row its nearest centre (Euclidean), as Spark's ``KMeansModel`` does.

    It is fitted on the centres themselves from the centres (one Lloyd step leaves them where
    they are), then given Spark's exact centres, cost (``inertia_``) and iterations.
    """
    centres = np.ascontiguousarray(centres, dtype=np.float64)
    estimator = KMeans(n_clusters=len(centres), init=centres, n_init=1, max_iter=1)
    estimator.fit(centres)
    estimator.cluster_centers_ = centres.copy()
    estimator.inertia_ = float(inertia)
    estimator.n_iter_ = int(n_iter)
    return estimator


class BisectingTree(ClusterMixin, BaseEstimator):
    """Spark's bisecting k-means tree: a row goes down from the root to the nearer child at
    every split until it reaches a leaf, exactly as ``BisectingKMeansModel`` predicts (which is
    not always the nearest leaf centre).

    Parameters
    ----------
    centres : array of shape (n_nodes, n_features)
        Centre of every node of the tree.
    children : sequence of sequences of int
        Child nodes of each node (empty for a leaf).
    leaf_ids : sequence of int
        Segment id of each node (leaves: 0..k-1; inner nodes: -1).
    """

    def __init__(
        self,
        centres: np.ndarray | None = None,
        children: Sequence[Sequence[int]] = (),
        leaf_ids: Sequence[int] = (),
        root: int = 0,
    ):
        self.centres = centres
        self.children = children
        self.leaf_ids = leaf_ids
        self.root = root

    def fit(self, X: np.ndarray | None = None, y: object = None) -> BisectingTree:
        centres = np.asarray(self.centres, dtype=np.float64)
        ids = np.asarray(self.leaf_ids)
        leaves = np.flatnonzero(ids >= 0)
        self.cluster_centers_ = centres[leaves[np.argsort(ids[leaves])]]
        self.n_features_in_ = centres.shape[1]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "cluster_centers_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        centres = np.asarray(self.centres, dtype=np.float64)
        node = np.full(len(X), self.root)
        labels = np.asarray(self.leaf_ids)[node]
        while (labels < 0).any():
            for parent in np.unique(node[labels < 0]):
                rows = np.flatnonzero(node == parent)
                kids = np.asarray(self.children[parent])
                diff = X[rows, None, :] - centres[kids][None, :, :]
                node[rows] = kids[np.argmin((diff**2).sum(axis=2), axis=1)]
            labels = np.asarray(self.leaf_ids)[node]
        return labels

    def fit_predict(self, X: np.ndarray, y: object = None) -> np.ndarray:
        return self.fit().predict(X)


def gmm_from_spark(
    weights: np.ndarray, means: np.ndarray, covariances: np.ndarray, log_likelihood: float
) -> GaussianMixture:
    """A fitted full-covariance :class:`~sklearn.mixture.GaussianMixture` with Spark's weights,
    means and covariances (precisions and their Cholesky factors derived): ``predict`` is the
    most likely component, as Spark's ``GaussianMixtureModel`` predicts."""
    weights = np.asarray(weights, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    covariances = np.asarray(covariances, dtype=np.float64)
    k, d = means.shape
    chol = np.empty_like(covariances)
    for i, cov in enumerate(covariances):
        lower = np.linalg.cholesky(cov)
        chol[i] = solve_triangular(lower, np.eye(d), lower=True).T
    estimator = GaussianMixture(n_components=k, covariance_type="full")
    estimator.weights_ = weights / weights.sum()
    estimator.means_ = means
    estimator.covariances_ = covariances
    estimator.precisions_cholesky_ = chol
    estimator.precisions_ = np.einsum("kij,klj->kil", chol, chol)
    estimator.converged_ = True
    estimator.n_iter_ = 0
    estimator.lower_bound_ = float(log_likelihood)
    estimator.n_features_in_ = d
    return estimator


def standard_scaler_from_spark(mean: np.ndarray, std: np.ndarray, n_rows: int) -> StandardScaler:
    """A fitted :class:`~sklearn.preprocessing.StandardScaler` scaling as Spark's
    ``StandardScalerModel`` (withMean, withStd): Spark divides by the sample standard deviation
    (n - 1), which this scaler is given as its ``scale_``."""
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    scaler = StandardScaler()
    scaler.mean_ = mean
    scaler.var_ = std**2
    scaler.scale_ = np.where(std > 0, std, 1.0)
    scaler.n_features_in_ = len(mean)
    scaler.n_samples_seen_ = int(n_rows)
    return scaler


def minmax_scaler_from_spark(low: np.ndarray, high: np.ndarray) -> MinMaxScaler:
    """A fitted :class:`~sklearn.preprocessing.MinMaxScaler` scaling as Spark's
    ``MinMaxScalerModel`` to [0, 1]. A constant feature: Spark gives 0.5, this scaler 0 (the
    same for every row either way, so no assignment changes)."""
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    span = high - low
    scaler = MinMaxScaler()
    scaler.data_min_, scaler.data_max_ = low, high
    scaler.data_range_ = span
    scaler.scale_ = 1.0 / np.where(span > 0, span, 1.0)
    scaler.min_ = -low * scaler.scale_
    scaler.n_features_in_ = len(low)
    scaler.n_samples_seen_ = 1
    return scaler


def robust_scaler_from_spark(median: np.ndarray, spread: np.ndarray) -> RobustScaler:
    """A fitted :class:`~sklearn.preprocessing.RobustScaler` scaling as Spark's
    ``RobustScalerModel`` (centred on the median, divided by the interquartile range)."""
    median = np.asarray(median, dtype=np.float64)
    spread = np.asarray(spread, dtype=np.float64)
    scaler = RobustScaler()
    scaler.center_ = median
    scaler.scale_ = np.where(spread > 0, spread, 1.0)
    scaler.n_features_in_ = len(median)
    return scaler
