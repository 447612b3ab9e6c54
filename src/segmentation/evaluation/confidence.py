"""How sure is a customer's segment? A score in [0, 1] per customer, by kind of model.

All distances are in the model's (scaled) feature space. Noise (segment ``-1``) scores 0.

Gaussian mixture (has ``predict_proba``)
    The posterior probability of the assigned component.
Centroid models (have ``cluster_centers_``: KMeans, MiniBatchKMeans, BisectingKMeans)
    ``1 - d1 / d2``, ``d1`` the distance to the assigned segment's centre and ``d2`` to the
    nearest other centre: 1 at a centre, 0 halfway between two (and when the assigned centre
    is not the nearest, as BisectingKMeans' tree can assign). A model with one centre scores 1.
Density models (NearestCoreDBSCAN: ``components_``, ``core_labels_``, ``eps``; ReachHDBSCAN:
``members_``, ``member_labels_``, ``reach_``)
    ``1 - d / reach`` clipped to [0, 1], ``d`` the distance to the nearest core sample
    (DBSCAN) or member (HDBSCAN) of the assigned segment and ``reach`` how far the model
    assigns from one: ``eps``, or the cluster's ``reach_``. Training members of an HDBSCAN
    cluster, like DBSCAN core samples, score 1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import euclidean_distances
from sklearn.neighbors import NearestNeighbors


def confidence(estimator: Any, X: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """Confidence of each row's segment, in [0, 1] (see the module docstring).

    Parameters
    ----------
    estimator : fitted clusterer
        A Gaussian mixture, a centroid model or a density model (NearestCoreDBSCAN,
        ReachHDBSCAN).
    X : ndarray of shape (n_samples, n_features)
        Rows in the estimator's (scaled) feature space.
    labels : ndarray of shape (n_samples,), optional
        Their segments; ``estimator.predict(X)`` by default.

    Returns
    -------
    ndarray of shape (n_samples,)
        Confidence per row, 0 for noise.

    Raises
    ------
    TypeError
        For a model of no kind above.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    n_features = getattr(estimator, "n_features_in_", X.shape[1])
    if X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features, the model was fitted on {n_features}")
    # Refuse an unknown kind before predicting: predict could fail first with a vaguer message.
    if callable(getattr(estimator, "predict_proba", None)):
        kind = _mixture
    elif hasattr(estimator, "cluster_centers_"):
        kind = _centroid
    elif all(hasattr(estimator, a) for a in ("members_", "member_labels_", "reach_")):
        kind = _reach_density
    elif all(hasattr(estimator, a) for a in ("components_", "core_labels_", "eps")):
        kind = _core_density
    else:
        raise TypeError(
            f"no confidence defined for {type(estimator).__name__}: it is no Gaussian mixture "
            "(predict_proba), centroid model (cluster_centers_) or NearestCoreDBSCAN/ReachHDBSCAN"
        )
    labels = np.asarray(estimator.predict(X) if labels is None else labels)
    if labels.shape != (len(X),):
        raise ValueError(f"labels must have shape ({len(X)},), got {labels.shape}")
    labels = labels.astype(np.int64)
    scores = np.zeros(len(X))
    segment = labels >= 0
    if segment.any():
        scores[segment] = kind(estimator, X[segment], labels[segment])
    return np.clip(scores, 0.0, 1.0)


def _check_range(labels: np.ndarray, n_segments: int, name: str) -> None:
    if labels.size and labels.max() >= n_segments:
        raise ValueError(f"segment {labels.max()} unknown to the model ({n_segments} {name})")


def _mixture(estimator: Any, X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    posterior = estimator.predict_proba(X)
    _check_range(labels, posterior.shape[1], "components")
    return posterior[np.arange(len(X)), labels]


def _centroid(estimator: Any, X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    centres = np.asarray(estimator.cluster_centers_, dtype=np.float64)
    _check_range(labels, len(centres), "centres")
    if len(centres) == 1:
        return np.ones(len(X))
    distance = euclidean_distances(X, centres)
    rows = np.arange(len(X))
    d1 = distance[rows, labels].copy()
    distance[rows, labels] = np.inf
    d2 = distance.min(axis=1)
    # d2 == 0: the row sits on another centre (or on two equal centres): no confidence.
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d2 > 0, 1.0 - d1 / d2, 0.0)


def _core_density(estimator: Any, X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    points = np.asarray(estimator.components_, dtype=np.float64)
    point_labels = np.asarray(estimator.core_labels_)
    reach = np.full(int(labels.max()) + 1, float(estimator.eps))
    return _density(X, labels, points, point_labels, reach, estimator.metric)


def _reach_density(estimator: Any, X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    reach = np.asarray(estimator.reach_, dtype=np.float64)
    _check_range(labels, len(reach), "clusters")
    return _density(
        X, labels, estimator.members_, estimator.member_labels_, reach, estimator.metric
    )


def _density(
    X: np.ndarray,
    labels: np.ndarray,
    points: np.ndarray,
    point_labels: np.ndarray,
    reach: np.ndarray,
    metric: str,
) -> np.ndarray:
    scores = np.zeros(len(X))
    for segment in np.unique(labels):
        rows = labels == segment
        own = points[point_labels == segment]
        if not len(own):
            continue  # a segment without core samples: nothing vouches for it
        # Nearest point of the ASSIGNED segment: a given label need not be the nearest one's.
        d = NearestNeighbors(n_neighbors=1, metric=metric).fit(own).kneighbors(X[rows])[0][:, 0]
        r = reach[segment]
        scores[rows] = 1.0 - d / r if r > 0 else (d == 0).astype(float)
    return scores
