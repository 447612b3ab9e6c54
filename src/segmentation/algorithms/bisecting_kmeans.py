"""Bisecting KMeans: segments split top-down (with one seed, k+1 segments refine k)."""

from __future__ import annotations

from typing import Any

from sklearn.cluster import BisectingKMeans


def build(
    *, random_state: int | None = None, n_rows: int | None = None, **params: Any
) -> BisectingKMeans:
    """Bisecting KMeans with ``params`` (``n_rows`` unused)."""
    return BisectingKMeans(random_state=random_state, **params)
