"""The sweep's constraints (``sweep.constraints``): a trial that breaks one never wins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def constraint_violation(
    metrics: Mapping[str, float], constraints: Mapping[str, Any]
) -> str | None:
    """The reason a trial may not win, or ``None`` when it meets every constraint."""
    k = int(metrics["n_clusters"])
    if k < 2:
        return f"degenerate: {k} segment(s)"
    if np.isnan(metrics["silhouette"]):
        return "degenerate: silhouette undefined"
    if metrics["noise_fraction"] > constraints["max_noise_fraction"]:
        return (
            f"noise fraction {metrics['noise_fraction']:.3f} above "
            f"max_noise_fraction {constraints['max_noise_fraction']}"
        )
    if not constraints["k_min"] <= k <= constraints["k_max"]:
        return f"{k} segments outside k range [{constraints['k_min']}, {constraints['k_max']}]"
    if metrics["min_segment_fraction"] < constraints["min_segment_fraction"]:
        return (
            f"smallest segment {metrics['min_segment_fraction']:.3f} below "
            f"min_segment_fraction {constraints['min_segment_fraction']}"
        )
    return None
