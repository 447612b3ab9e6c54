"""Gaussian mixture: each customer's segment is its most likely component."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.mixture import GaussianMixture


def build(params: dict[str, Any], seed: int, n_rows: int) -> GaussianMixture:
    return GaussianMixture(random_state=seed, **params)


def extra_metrics(estimator: GaussianMixture, X: np.ndarray) -> dict[str, float]:
    return {"bic": float(estimator.bic(X)), "aic": float(estimator.aic(X))}


def centers(estimator: GaussianMixture) -> np.ndarray:
    """Component means in the scaled space."""
    return estimator.means_
