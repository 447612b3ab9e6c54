"""Limits that keep a sweep tractable as the data grows (checked once, at sweep start)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segmentation.errors import InputError


def check_algorithm_limits(specs: Mapping[str, Mapping[str, Any]], n_rows: int) -> None:
    """Refuse, before anything is written, an algorithm that cannot run on ``n_rows`` rows:
    one whose config's ``max_rows`` is below them, unless its estimator fits a sample
    (``estimator.sample_rows``)."""
    for name, spec in specs.items():
        limit = spec.get("max_rows")
        sample = (spec.get("estimator") or {}).get("sample_rows")
        if limit is None or n_rows <= int(limit) or sample is not None:
            continue
        raise InputError(
            f"algorithm {name}: {n_rows} rows exceed algorithm.{name}.max_rows={int(limit)} "
            "(its time and memory grow with neighbour counts: 12-20 s per fit at 100k rows); "
            f"leave it out (algorithm=[kmeans,gmm]), fit it on a sample "
            f"(algorithm.{name}.estimator.sample_rows={int(limit)}) or raise max_rows"
        )
