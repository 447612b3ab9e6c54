"""Choosing k: quick KMeans and GMM fits over the k range (inertia, silhouette, BIC) and the
elbow of the inertia curve."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

from segmentation.algorithms import one_thread, seeded_sample
from segmentation.evaluation.metrics import silhouette_rows, silhouette_values


def k_curves(
    X: np.ndarray,
    ks: Sequence[int],
    seed: int,
    silhouette_sample: int = 10000,
    fit_rows: int = 20000,
) -> dict[str, list[float] | list[int] | int]:
    """KMeans inertia and silhouette, GMM silhouette and BIC for each k (scaled space).

    Quick fits for choosing k (KMeans ``n_init=4``, GMM full covariance), seeded and on one
    thread, on a seeded sample of at most ``fit_rows`` rows (the curves' shape is what
    matters, and 18 full fits of a million rows would cost minutes); the silhouette uses a
    seeded sample above ``silhouette_sample`` rows. ``fit_rows`` and ``silhouette_sample`` are
    recorded in the result.
    """
    sample = seeded_sample(len(X), fit_rows, seed)
    X = X if sample is None else X[sample]
    ks = [int(k) for k in ks if 2 <= int(k) < len(X)]
    sample = min(len(X), silhouette_sample)
    out: dict = {
        "k": ks,
        "kmeans_inertia": [],
        "kmeans_silhouette": [],
        "gmm_silhouette": [],
        "gmm_bic": [],
        "fit_rows": len(X),
        "silhouette_sample": sample,
    }

    def silhouette(labels: np.ndarray) -> float:
        if len(np.unique(labels)) < 2:
            return float("nan")
        rows, row_labels, _ = silhouette_rows(X, labels, sample, sample, seed)
        return float(silhouette_values(rows, row_labels).mean())

    with one_thread():
        for k in ks:
            km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(X)
            out["kmeans_inertia"].append(float(km.inertia_))
            out["kmeans_silhouette"].append(silhouette(km.labels_))
            gmm = GaussianMixture(n_components=k, random_state=seed, max_iter=200).fit(X)
            out["gmm_silhouette"].append(silhouette(gmm.predict(X)))
            out["gmm_bic"].append(float(gmm.bic(X)))
    out["elbow_k"] = elbow(ks, out["kmeans_inertia"])
    return out


def elbow(ks: Sequence[int], inertia: Sequence[float]) -> int:
    """The k farthest from the chord joining the curve's ends (both axes scaled to [0, 1])."""
    if len(ks) < 3:
        return int(ks[0]) if ks else 0
    x = np.asarray(ks, dtype=float)
    y = np.asarray(inertia, dtype=float)
    x = (x - x.min()) / (np.ptp(x) or 1.0)
    y = (y - y.min()) / (np.ptp(y) or 1.0)
    # Distance of each point to the line through the first and last point.
    dx, dy = x[-1] - x[0], y[-1] - y[0]
    distance = np.abs(dy * (x - x[0]) - dx * (y - y[0])) / np.hypot(dx, dy)
    return int(ks[int(np.argmax(distance))])


def elbow_k(X: np.ndarray, ks: Sequence[int], seed: int, fit_rows: int = 10000) -> int:
    """The elbow of a quick KMeans inertia curve (``n_init=4``, on a seeded sample of at most
    ``fit_rows`` rows): where a sweep starts its k-searching algorithms."""
    sample = seeded_sample(len(X), fit_rows, seed)
    X = X if sample is None else X[sample]
    ks = [int(k) for k in ks if 2 <= int(k) < len(X)]
    with one_thread():
        inertia = [KMeans(k, n_init=4, random_state=seed).fit(X).inertia_ for k in ks]
    return elbow(ks, inertia)
