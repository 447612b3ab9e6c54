"""Stability: do the segments survive resampling? (``sweep.stability``)

The estimator is refitted on bootstrap samples; each refit's segmentation is compared with
the full fit by the adjusted Rand index (1 = same partition, about 0 = chance).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from omegaconf import DictConfig
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits


def bootstrap_ari(
    build: Callable[[], Any],
    X: np.ndarray,
    labels: np.ndarray,
    bootstraps: int = 10,
    seed: int = 0,
    on_sample: bool = False,
    sample_rows: int | None = None,
) -> float:
    """Mean adjusted Rand index of bootstrap refits against the full fit's ``labels``.

    Parameters
    ----------
    build : callable
        Returns a new, unfitted estimator configured like the full fit.
    X : ndarray of shape (n_samples, n_features)
        The (scaled) data of the full fit.
    labels : ndarray of shape (n_samples,)
        The full fit's segments.
    bootstraps : int
        Number of bootstrap refits.
    seed : int
        Seed of the bootstrap draws.
    on_sample : bool
        Compare on the bootstrap's own points (for estimators whose ``predict`` is not a
        faithful re-labelling of new data, e.g. DBSCAN); otherwise each refit predicts the
        full data.
    sample_rows : int, optional
        Size of each bootstrap sample when smaller than the data (drawn with replacement, as
        a full-size bootstrap is): ten GMM refits of a million rows would take minutes, while
        the agreement of the partitions shows as well on a few ten thousand rows.

    Returns
    -------
    float
        Mean ARI, ``nan`` when ``bootstraps`` is 0.
    """
    rng = np.random.default_rng(seed)
    n = len(X)
    size = n if sample_rows is None else min(n, int(sample_rows))
    scores = []
    for _ in range(int(bootstraps)):
        idx = rng.choice(n, size=size, replace=True)
        estimator = build()
        # One thread: small refits are faster and sweep workers must not oversubscribe.
        with threadpool_limits(1):
            if on_sample or not callable(getattr(estimator, "predict", None)):
                refit = np.asarray(estimator.fit_predict(X[idx]))
                scores.append(adjusted_rand_score(labels[idx], refit))
            else:
                estimator.fit(X[idx])
                scores.append(adjusted_rand_score(labels, estimator.predict(X)))
    return float(np.mean(scores)) if scores else float("nan")


def configured_stability(
    cfg: DictConfig,
    build: Callable[[], Any],
    X: np.ndarray,
    labels: np.ndarray,
    on_sample: bool = False,
) -> float:
    """:func:`bootstrap_ari` with the bootstraps, seed and sample size of ``cfg.sweep``."""
    return bootstrap_ari(
        build,
        X,
        labels,
        int(cfg.sweep.stability.bootstraps),
        int(cfg.sweep.seed),
        on_sample=on_sample,
        sample_rows=cfg.sweep.stability.get("sample_rows"),
    )
