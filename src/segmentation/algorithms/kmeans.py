"""KMeans (MiniBatchKMeans above ``minibatch_above`` rows, where full batches get slow)."""

from __future__ import annotations

from typing import Any

from sklearn.cluster import KMeans, MiniBatchKMeans


def build(
    *, random_state: int | None = None, n_rows: int | None = None, **params: Any
) -> KMeans | MiniBatchKMeans:
    """KMeans with ``params``; MiniBatchKMeans when ``n_rows`` is above ``minibatch_above``."""
    minibatch_above = params.pop("minibatch_above", None)
    if minibatch_above is not None and n_rows is not None and n_rows > int(minibatch_above):
        params.pop("algorithm", None)
        return MiniBatchKMeans(random_state=random_state, batch_size=4096, **params)
    return KMeans(random_state=random_state, **params)
