"""Limits that keep a sweep tractable as the data grows (checked once, at sweep start)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segmentation.errors import InputError


def check_algorithm_limits(specs: Mapping[str, Mapping[str, Any]], n_rows: int) -> None:
    """Refuse, before anything is written, an algorithm that cannot run on ``n_rows`` rows.

    DBSCAN above ``algorithm.dbscan.fixed.max_rows`` rows is refused unless
    ``sample_rows`` asks for a fit on a seeded sample.
    """
    for name, spec in specs.items():
        if spec.get("module", name) != "dbscan":
            continue
        fixed = spec.get("fixed") or {}
        limit = fixed.get("max_rows")
        if limit is None or n_rows <= int(limit) or fixed.get("sample_rows") is not None:
            continue
        raise InputError(
            f"algorithm {name}: {n_rows} rows exceed algorithm.{name}.fixed.max_rows={int(limit)} "
            "(DBSCAN's time and memory grow with neighbour counts: 12-20 s per fit at 100k rows); "
            f"leave it out (algorithm=[kmeans,gmm]), fit it on a sample "
            f"(algorithm.{name}.fixed.sample_rows={int(limit)}) or raise max_rows"
        )
