"""The sweep's constraints (``sweep.constraints``): a trial that breaks one never wins.

A degenerate trial (fewer than two segments, no silhouette) has no value to compare. Any other
violation is measured (:func:`constraint_values`, positive when violated) so that the sampler
learns where the feasible region lies (Optuna's ``Trial.set_constraint``), and named
(:func:`constraint_violation`) for the run and the trial.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def degenerate(metrics: Mapping[str, float]) -> str | None:
    """Why a segmentation cannot be scored at all, or ``None``."""
    k = int(metrics["n_clusters"])
    if k < 2:
        return f"degenerate: {k} segment(s)"
    if np.isnan(metrics["silhouette"]):
        return "degenerate: silhouette undefined"
    return None


def constraint_values(
    metrics: Mapping[str, float], constraints: Mapping[str, Any]
) -> dict[str, float]:
    """How far a scored trial is from each constraint: positive when violated, else <= 0."""
    k = int(metrics["n_clusters"])
    values = {
        "noise_fraction": metrics["noise_fraction"] - constraints["max_noise_fraction"],
        "k_range": float(max(constraints["k_min"] - k, k - constraints["k_max"])),
        "min_segment_fraction": constraints["min_segment_fraction"]
        - metrics["min_segment_fraction"],
    }
    stability = metrics.get("stability_ari", float("nan"))
    if constraints.get("min_stability") is not None and not np.isnan(stability):
        values["stability"] = float(constraints["min_stability"]) - metrics["stability_ari"]
    return values


def constraint_violation(
    metrics: Mapping[str, float], constraints: Mapping[str, Any]
) -> str | None:
    """The reason a trial may not win, or ``None`` when it meets every constraint."""
    reason = degenerate(metrics)
    if reason:
        return reason
    k = int(metrics["n_clusters"])
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
    minimum = constraints.get("min_stability")
    if minimum is not None and metrics.get("stability_ari", 1.0) < float(minimum):
        return f"stability_ari {metrics['stability_ari']:.3f} below min_stability {minimum}"
    return None
