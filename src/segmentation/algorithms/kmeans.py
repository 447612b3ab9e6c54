"""KMeans (MiniBatchKMeans above ``minibatch_above`` rows, where full batches get slow)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans


def build(params: dict[str, Any], seed: int, n_rows: int) -> KMeans | MiniBatchKMeans:
    params = dict(params)
    minibatch_above = params.pop("minibatch_above", None)
    if minibatch_above is not None and n_rows > int(minibatch_above):
        params.pop("algorithm", None)
        return MiniBatchKMeans(random_state=seed, batch_size=4096, **params)
    return KMeans(random_state=seed, **params)


def extra_metrics(estimator: KMeans, X: np.ndarray) -> dict[str, float]:
    return {"inertia": float(estimator.inertia_)}


def centers(estimator: KMeans) -> np.ndarray:
    """Segment centres in the scaled space."""
    return estimator.cluster_centers_
