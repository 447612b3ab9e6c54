"""DBSCAN, with a ``predict`` so a fitted model can score new customers."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import DBSCAN
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_is_fitted, validate_data

from segmentation.algorithms import seeded_sample


class NearestCoreDBSCAN(ClusterMixin, BaseEstimator):
    """DBSCAN that can assign new points.

    A new point joins the cluster of its nearest core sample when that sample is within
    ``eps``; otherwise it is noise (``-1``). On the training data every core sample gets its
    training label back.

    Parameters
    ----------
    eps : float, default=0.5
        Neighbourhood radius, in the (scaled) feature space.
    min_samples : int, default=5
        Points in a neighbourhood (including the point) for it to be a core sample.
    metric : str, default="euclidean"
        Distance metric, as in :class:`sklearn.cluster.DBSCAN`.
    leaf_size : int, default=30
        Leaf size of the neighbour trees.
    n_jobs : int, default=None
        Parallel jobs for the neighbour searches.
    max_samples : int, default=None
        Fit DBSCAN on a seeded sample of at most this many rows (its cost grows with
        neighbour counts); every row then gets its segment from :meth:`predict`.
        ``None`` fits on all rows.
    random_state : int, default=None
        Seed of that sample.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Training labels, ``-1`` for noise.
    core_sample_indices_ : ndarray
        Indices of the core samples.
    components_ : ndarray of shape (n_core_samples, n_features)
        The core samples.
    core_labels_ : ndarray of shape (n_core_samples,)
        Labels of the core samples.
    n_features_in_ : int
        Number of features seen at fit.
    """

    def __init__(
        self,
        eps: float = 0.5,
        min_samples: int = 5,
        metric: str = "euclidean",
        leaf_size: int = 30,
        n_jobs: int | None = None,
        max_samples: int | None = None,
        random_state: int | None = None,
    ):
        self.eps = eps
        self.min_samples = min_samples
        self.metric = metric
        self.leaf_size = leaf_size
        self.n_jobs = n_jobs
        self.max_samples = max_samples
        self.random_state = random_state

    def fit(self, X: Any, y: object = None) -> NearestCoreDBSCAN:
        """Cluster ``X`` with DBSCAN and index its core samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self : NearestCoreDBSCAN
        """
        X = validate_data(self, X, dtype=np.float64)
        sample = seeded_sample(len(X), self.max_samples, self.random_state)
        fitted = X if sample is None else X[sample]
        dbscan = DBSCAN(
            eps=self.eps,
            min_samples=self.min_samples,
            metric=self.metric,
            leaf_size=self.leaf_size,
            n_jobs=self.n_jobs,
        ).fit(fitted)
        core = dbscan.core_sample_indices_
        self.core_sample_indices_ = core if sample is None else sample[core]
        self.components_ = fitted[core].copy()
        self.core_labels_ = dbscan.labels_[core]
        if len(self.components_):
            self._neighbours = NearestNeighbors(
                n_neighbors=1, metric=self.metric, leaf_size=self.leaf_size, n_jobs=self.n_jobs
            ).fit(self.components_)
        # On a sample, the rows left out join their nearest core sample like new customers.
        self.labels_ = dbscan.labels_ if sample is None else self._assign(X)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Segment of each point: its nearest core sample's, if within ``eps``, else -1.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        check_is_fitted(self, "labels_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._assign(X)

    def _assign(self, X: np.ndarray) -> np.ndarray:
        labels = np.full(X.shape[0], -1, dtype=np.int64)
        if not len(self.components_):
            return labels
        distance, index = self._neighbours.kneighbors(X, n_neighbors=1)
        near = distance[:, 0] <= self.eps
        labels[near] = self.core_labels_[index[near, 0]]
        return labels


def build(
    *,
    random_state: int | None = None,
    n_rows: int | None = None,
    sample_rows: int | None = None,
    **params: Any,
) -> NearestCoreDBSCAN:
    """DBSCAN with ``params``, fitted on a seeded sample of ``sample_rows`` rows if set (the
    config's ``max_rows`` is checked once at sweep start: ``segmentation.algorithms.limits``)."""
    return NearestCoreDBSCAN(max_samples=sample_rows, random_state=random_state, **params)
