"""Stability per segment: which segments survive resampling? (as R's ``fpc::clusterboot``)

The estimator is refitted on bootstrap samples. For each refit, each original segment is
compared, on the bootstrap's points, with every segment of the refit by the Jaccard similarity
``|A & B| / |A | B|``: ``A`` the bootstrap points the original fit put in the segment, ``B``
the points the refit put in one of its segments. The segment's score for that refit is its
best match (0 when none of its points was drawn); its stability is the mean over the refits.

As in clusterboot with ``multipleboot=TRUE, bscompare=TRUE`` (the refit sees the points drawn
twice, as the ARI's refits do), a point drawn twice counts twice. Noise (``-1``) is no segment:
it gets no score, and no segment is matched with the refit's noise (clusterboot's
``noisemethod=TRUE``); noise points still count in the sizes of ``A`` and ``B``.

Hennig's reading (clusterboot's documentation): 0.5 or less, the segment dissolved; below
0.6 it should not be trusted; 0.6-0.75 it shows a pattern, but which customers belong to it is
doubtful; 0.75 or more it is stable, 0.85 or more highly stable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.metrics import adjusted_rand_score
from sklearn.metrics.cluster import contingency_matrix

from segmentation.algorithms import one_thread


def segment_jaccard(
    build: Callable[[], Any],
    X: np.ndarray,
    labels: np.ndarray,
    bootstraps: int = 10,
    seed: int = 0,
    sample_rows: int | None = None,
    on_sample: bool = False,
) -> dict[int, float]:
    """Mean best Jaccard similarity of each segment with the segments of bootstrap refits.

    Parameters
    ----------
    build : callable
        Returns a new, unfitted estimator configured like the full fit.
    X : ndarray of shape (n_samples, n_features)
        The (scaled) data of the full fit.
    labels : ndarray of shape (n_samples,)
        The full fit's segments, ``-1`` for noise.
    bootstraps : int
        Number of bootstrap refits.
    seed : int
        Seed of the bootstrap draws.
    sample_rows : int, optional
        Size of each bootstrap sample when smaller than the data (drawn with replacement).
    on_sample : bool
        Only changes the ARI of :func:`stability_summary`; the Jaccard is always computed on
        the bootstrap's points. Accepted so both take the same arguments.

    Returns
    -------
    dict of int to float
        Stability of each segment in ``labels`` (noise left out), in [0, 1]; ``nan`` when
        ``bootstraps`` is 0.
    """
    return _refits(build, X, labels, bootstraps, seed, sample_rows, on_sample, ari=False)[1]


def stability_summary(
    build: Callable[[], Any],
    X: np.ndarray,
    labels: np.ndarray,
    bootstraps: int = 10,
    seed: int = 0,
    sample_rows: int | None = None,
    on_sample: bool = False,
) -> tuple[float, dict[int, float]]:
    """Mean adjusted Rand index of bootstrap refits and, from the same refits, the per-segment
    Jaccard stability of :func:`segment_jaccard`.

    The ARI is the mean adjusted Rand index of the refits against the full fit (same
    draws, same refits): on the bootstrap's points when ``on_sample`` is true or the
    estimator cannot predict, else between ``labels`` and the refit's prediction of all of
    ``X``.

    Parameters
    ----------
    build, X, labels, bootstraps, seed, sample_rows
        As in :func:`segment_jaccard`.
    on_sample : bool
        Compare on the bootstrap's own points (for estimators whose ``predict`` is not a
        faithful re-labelling of new data, e.g. DBSCAN); otherwise each refit predicts all rows.

    Returns
    -------
    ari : float
        Mean ARI, ``nan`` when ``bootstraps`` is 0.
    jaccard : dict of int to float
        Stability of each segment, as :func:`segment_jaccard` returns it.
    """
    return _refits(build, X, labels, bootstraps, seed, sample_rows, on_sample, ari=True)


def _refits(
    build: Callable[[], Any],
    X: np.ndarray,
    labels: np.ndarray,
    bootstraps: int,
    seed: int,
    sample_rows: int | None,
    on_sample: bool,
    ari: bool,
) -> tuple[float, dict[int, float]]:
    labels = np.asarray(labels)
    if len(labels) != len(X):
        raise ValueError(f"{len(labels)} labels for {len(X)} rows")
    segments = np.unique(labels[labels >= 0])
    # Draws as bootstrap_ari makes them, so its ARI and these scores come from the same refits.
    rng = np.random.default_rng(seed)
    n = len(X)
    size = n if sample_rows is None else min(n, int(sample_rows))
    aris: list[float] = []
    best: dict[int, list[float]] = {int(s): [] for s in segments}
    for _ in range(int(bootstraps)):
        idx = rng.choice(n, size=size, replace=True)
        estimator = build()
        # One thread: small refits are faster and sweep workers must not oversubscribe.
        with one_thread():
            refit = np.asarray(estimator.fit_predict(X[idx]))
            if ari and (on_sample or not callable(getattr(estimator, "predict", None))):
                aris.append(adjusted_rand_score(labels[idx], refit))
            elif ari:
                aris.append(adjusted_rand_score(labels, estimator.predict(X)))
        found = _best_jaccard(labels[idx], refit)
        for segment, scores in best.items():
            scores.append(found.get(segment, 0.0))
    jaccard = {s: float(np.mean(v)) if v else float("nan") for s, v in best.items()}
    return (float(np.mean(aris)) if aris else float("nan")), jaccard


def _best_jaccard(original: np.ndarray, refit: np.ndarray) -> dict[int, float]:
    """Best Jaccard of each original segment drawn with any refit segment (noise left out)."""
    rows, row_of = np.unique(original, return_inverse=True)
    columns, column_of = np.unique(refit, return_inverse=True)
    table = contingency_matrix(row_of, column_of).astype(np.float64)
    # Union = both sizes - intersection; noise rows and columns still count in the sizes.
    union = table.sum(axis=1, keepdims=True) + table.sum(axis=0, keepdims=True) - table
    jaccard = table / union
    jaccard = jaccard[:, columns >= 0]
    return {
        int(segment): float(jaccard[i].max()) if jaccard.shape[1] else 0.0
        for i, segment in enumerate(rows)
        if segment >= 0
    }
