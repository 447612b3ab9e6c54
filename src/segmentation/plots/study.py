"""Plots of a whole study: optimisation history and silhouette against k per algorithm."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optuna
from matplotlib.figure import Figure

from segmentation.plots import PALETTE, save


def _completed(trials: Sequence[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]


def optimisation_history(trials: Sequence[optuna.trial.FrozenTrial], title: str) -> Figure:
    """Silhouette of each trial and the best so far; rejected trials marked at the bottom."""
    fig = Figure(figsize=(7.0, 4.5))
    ax = fig.add_subplot()
    done = sorted(_completed(trials), key=lambda t: t.number)
    if done:
        numbers = [t.number for t in done]
        values = [t.value for t in done]
        ax.scatter(numbers, values, s=18, color=PALETTE[0], label="trial silhouette")
        ax.step(numbers, np.maximum.accumulate(values), where="post", color=PALETTE[5],
                label="best so far")
    rejected = [t.number for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    if rejected:
        bottom = min([t.value for t in done], default=0.0) - 0.05
        ax.scatter(rejected, [bottom] * len(rejected), marker="x", s=18, color="#777777",
                   label="rejected (constraint or fit error)")
    ax.set_xlabel("trial number")
    ax.set_ylabel("silhouette (scaled feature space)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def silhouette_vs_k(trials: Sequence[optuna.trial.FrozenTrial], title: str) -> Figure:
    """Best silhouette per number of segments, one line per algorithm."""
    fig = Figure(figsize=(7.0, 4.5))
    ax = fig.add_subplot()
    best: dict[str, dict[int, float]] = {}
    for t in _completed(trials):
        algorithm = t.user_attrs.get("algorithm", "?")
        k = int(t.user_attrs.get("n_clusters", 0))
        per_k = best.setdefault(algorithm, {})
        per_k[k] = max(per_k.get(k, -1.0), t.value)
    for i, (algorithm, per_k) in enumerate(sorted(best.items())):
        ks = sorted(per_k)
        ax.plot(ks, [per_k[k] for k in ks], marker="o", color=PALETTE[i % len(PALETTE)],
                label=algorithm)
    ax.set_xlabel("number of segments (k)")
    ax.set_ylabel("best silhouette (scaled feature space)")
    ax.set_title(title)
    if best:
        ax.legend(fontsize=8)
    ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


def write_study_plots(out_dir: Path, trials: Sequence[optuna.trial.FrozenTrial], title: str) -> list[Path]:
    return [
        save(optimisation_history(trials, f"Optimisation history: {title}"),
             out_dir / "optimisation_history.png"),
        save(silhouette_vs_k(trials, f"Silhouette against k: {title}"),
             out_dir / "silhouette_vs_k.png"),
    ]
