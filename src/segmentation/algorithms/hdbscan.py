"""HDBSCAN, with a ``predict`` so a fitted model can score new customers.

A cluster's *reach* is the largest core distance among its members (the distance from a member
to its ``min_samples``-th nearest training point, counting itself, as HDBSCAN defines it), or
``cluster_selection_epsilon`` if that is larger (clusters closer than it are one cluster). The
largest core distance is the smallest DBSCAN* radius at which every member is a core point; it
never exceeds the distance at which HDBSCAN split the cluster from its parent. A new point joins
the cluster of its nearest clustered training point when that point is within its cluster's
reach, as a border point joins a DBSCAN cluster within ``eps`` of a core point
(:mod:`segmentation.algorithms.dbscan`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import HDBSCAN
from sklearn.neighbors import NearestNeighbors
from sklearn.utils.validation import check_is_fitted, validate_data

from segmentation.algorithms import seeded_sample


class ReachHDBSCAN(ClusterMixin, BaseEstimator):
    """HDBSCAN that can assign new points.

    A new point joins the cluster of its nearest clustered training point (a *member*) when
    that member is within the cluster's reach (``reach_``: the largest core distance among the
    cluster's members, at least ``cluster_selection_epsilon``); otherwise it is noise (``-1``).
    On the training data every member gets its training label back.

    Parameters
    ----------
    min_cluster_size : int, default=5
        Smallest group of points HDBSCAN calls a cluster.
    min_samples : int, default=None
        Neighbours (including the point) that set a point's core distance; ``None``:
        ``min_cluster_size``.
    cluster_selection_epsilon : float, default=0.0
        Clusters split below this distance are merged, as in :class:`sklearn.cluster.HDBSCAN`.
    metric : str, default="euclidean"
        Distance metric, as in :class:`sklearn.cluster.HDBSCAN` (not ``"precomputed"``:
        :meth:`predict` needs the points).
    max_samples : int, default=None
        Fit HDBSCAN on a seeded sample of at most this many rows; every row then gets its
        segment from :meth:`predict`. ``None`` fits on all rows.
    random_state : int, default=None
        Seed of that sample.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
        Training labels, ``-1`` for noise.
    member_indices_ : ndarray of shape (n_members,)
        Indices of the clustered training points (of the sample, in the training rows).
    members_ : ndarray of shape (n_members, n_features)
        The clustered training points.
    member_labels_ : ndarray of shape (n_members,)
        Their labels.
    member_core_distances_ : ndarray of shape (n_members,)
        Their core distances.
    reach_ : ndarray of shape (n_clusters,)
        Reach of each cluster, indexed by label.
    n_features_in_ : int
        Number of features seen at fit.
    """

    def __init__(
        self,
        min_cluster_size: int = 5,
        min_samples: int | None = None,
        cluster_selection_epsilon: float = 0.0,
        metric: str = "euclidean",
        max_samples: int | None = None,
        random_state: int | None = None,
    ):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_epsilon = cluster_selection_epsilon
        self.metric = metric
        self.max_samples = max_samples
        self.random_state = random_state

    def fit(self, X: Any, y: object = None) -> ReachHDBSCAN:
        """Cluster ``X`` with HDBSCAN and index its members and their clusters' reach.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        self : ReachHDBSCAN
        """
        if self.metric == "precomputed":
            raise ValueError("ReachHDBSCAN needs feature vectors to predict: not 'precomputed'")
        X = validate_data(self, X, dtype=np.float64)
        sample = seeded_sample(len(X), self.max_samples, self.random_state)
        fitted = X if sample is None else X[sample]
        # copy=True: the coming default, and silences sklearn's FutureWarning about it.
        hdbscan = HDBSCAN(
            min_cluster_size=self.min_cluster_size,
            min_samples=self.min_samples,
            cluster_selection_epsilon=self.cluster_selection_epsilon,
            metric=self.metric,
            copy=True,
        ).fit(fitted)
        members = np.flatnonzero(hdbscan.labels_ >= 0)
        self.member_indices_ = members if sample is None else sample[members]
        self.members_ = fitted[members].copy()
        self.member_labels_ = hdbscan.labels_[members].astype(np.int64)
        n_clusters = int(self.member_labels_.max()) + 1 if len(members) else 0
        self.member_core_distances_ = np.zeros(len(members))
        self.reach_ = np.full(n_clusters, float(self.cluster_selection_epsilon))
        if len(members):
            k = self.min_cluster_size if self.min_samples is None else self.min_samples
            # HDBSCAN keeps its core distances private: recompute them as it does (the k-th
            # nearest fitted point, the point itself first).
            core, _ = (
                NearestNeighbors(metric=self.metric)
                .fit(fitted)
                .kneighbors(self.members_, n_neighbors=int(k))
            )
            self.member_core_distances_ = core[:, -1]
            np.maximum.at(self.reach_, self.member_labels_, self.member_core_distances_)
            self._neighbours = NearestNeighbors(n_neighbors=1, metric=self.metric).fit(
                self.members_
            )
        # On a sample, the rows left out join their nearest member like new customers.
        self.labels_ = hdbscan.labels_.astype(np.int64) if sample is None else self._assign(X)
        return self

    def predict(self, X: Any) -> np.ndarray:
        """Segment of each point: its nearest member's, if within that cluster's reach, else -1.

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
        if not len(self.members_):
            return labels
        distance, index = self._neighbours.kneighbors(X, n_neighbors=1)
        nearest = self.member_labels_[index[:, 0]]
        near = distance[:, 0] <= self.reach_[nearest]
        labels[near] = nearest[near]
        return labels


def build(
    *,
    random_state: int | None = None,
    n_rows: int | None = None,
    sample_rows: int | None = None,
    min_cluster_fraction: float | None = None,
    **params: Any,
) -> ReachHDBSCAN:
    """HDBSCAN with ``params``, fitted on a seeded sample of ``sample_rows`` rows if set (the
    configs' name for ``max_samples``, as for DBSCAN).

    ``min_cluster_fraction`` sets ``min_cluster_size`` as that share of the rows fitted
    (``n_rows``, or the sample), at least 2: a fixed size is a different model on 200 rows
    than on 200,000."""
    if sample_rows is not None:
        if params.get("max_samples") is not None:
            raise ValueError("give sample_rows or max_samples, not both")
        params["max_samples"] = sample_rows
    if min_cluster_fraction is not None:
        if params.get("min_cluster_size") is not None:
            raise ValueError("give min_cluster_fraction or min_cluster_size, not both")
        if n_rows is None:
            raise ValueError("min_cluster_fraction needs n_rows")
        if not 0.0 < float(min_cluster_fraction) < 1.0:
            raise ValueError(f"min_cluster_fraction={min_cluster_fraction}: expected 0 < f < 1")
        fitted = min(int(n_rows), int(params.get("max_samples") or n_rows))
        params["min_cluster_size"] = max(2, round(float(min_cluster_fraction) * fitted))
    return ReachHDBSCAN(random_state=random_state, **params)
