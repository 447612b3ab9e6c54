"""What a study is (its name, objectives, sampler and algorithms) and which of its trials the
sweep picks."""

from __future__ import annotations

from typing import Any

import numpy as np
import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from segmentation.algorithms import check_search
from segmentation.errors import InputError

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def study_name(experiment_name: str, space_name: str, sweep: DictConfig, dataset_hash: str) -> str:
    """One study per feature space (``space_name``, as ``feature_space_name`` gives it) and
    data: silhouettes of another space, or of other data (the real file after the synthetic
    default, a new export), do not compare, and a rerun must not resume such a study. The name
    is how a rerun finds the study to resume."""
    name = f"{experiment_name}.{space_name}.data-{dataset_hash[:8]}"
    # A two-objective study cannot resume a one-objective one (nor the other way round).
    return f"{name}.pareto" if pareto(sweep) else name


def algorithm_specs(cfg_algorithm: DictConfig) -> dict[str, dict[str, Any]]:
    """The selected algorithms' configs (``cfg.algorithm``), by name; a search space Optuna
    cannot sample is refused."""
    specs = OmegaConf.to_container(cfg_algorithm, resolve=True)
    if not specs:
        raise InputError("algorithm: no algorithm selected (expected kmeans, dbscan, gmm or all)")
    for name, spec in specs.items():
        check_search(name, spec)
    return specs


def check_sweep(sweep: DictConfig, tracking: DictConfig) -> None:
    """Refuse, before anything is written, ``sweep`` and ``tracking`` settings no trial could
    meet or Optuna would stop on mid-study (the schema has made each a number of its type)."""
    constraints, k_max = sweep.constraints, int(sweep.constraints.k_max)
    stability_needed = constraints.min_stability is not None or pareto(sweep)
    rules = [
        ("sweep.n_trials", sweep.n_trials, sweep.n_trials >= 1, "a whole number >= 1"),
        ("sweep.seed", sweep.seed, 0 <= sweep.seed < 2**32, "a whole number from 0 to 2**32 - 1"),
        (
            "sweep.constraints.k_min",
            constraints.k_min,
            constraints.k_min >= 2,
            "a whole number >= 2",
        ),
        (
            "sweep.constraints.k_max",
            k_max,
            k_max >= constraints.k_min,
            f"a whole number >= sweep.constraints.k_min ({constraints.k_min})",
        ),
        *(
            (
                f"sweep.constraints.{key}",
                constraints[key],
                0 <= constraints[key] <= 1,
                "from 0 to 1",
            )
            for key in ("max_noise_fraction", "min_segment_fraction")
        ),
        (
            "sweep.constraints.min_stability",
            constraints.min_stability,
            constraints.min_stability is None or 0 <= constraints.min_stability <= 1,
            "from 0 to 1, or null",
        ),
        (
            "sweep.stability.bootstraps",
            sweep.stability.bootstraps,
            sweep.stability.bootstraps >= int(stability_needed),
            "a whole number >= 1 with sweep.constraints.min_stability set or "
            "sweep.objective=pareto (0 turns stability off)"
            if stability_needed
            else "a whole number >= 0",
        ),
        *(
            (
                key,
                value,
                value is None or value > k_max,
                f"more rows than sweep.constraints.k_max ({k_max})",
            )
            for key, value in (
                ("sweep.stability.sample_rows", sweep.stability.sample_rows),
                ("sweep.silhouette.sample_size", sweep.silhouette.sample_size),
                ("sweep.silhouette.curve_fit_rows", sweep.silhouette.curve_fit_rows),
                ("sweep.silhouette.curve_sample_size", sweep.silhouette.curve_sample_size),
            )
        ),
        *(
            (f"sweep.{key}", sweep[key], sweep[key] >= 1, "a whole number of seconds >= 1")
            for key in ("heartbeat_interval", "grace_period")
        ),
        (
            "tracking.input_example_rows",
            tracking.input_example_rows,
            tracking.input_example_rows >= 1,
            "a whole number >= 1",
        ),
        (
            "tracking.artifact_workers",
            tracking.artifact_workers,
            tracking.artifact_workers >= 0,
            "a whole number >= 0 (0: plots and models drawn in the sweep's process)",
        ),
    ]
    for key, value, ok, expected in rules:
        if not ok:
            raise InputError(f"{key}={value}: expected {expected}")


def make_sampler(
    cfg_sampler: DictConfig, seed: int, worker: int = 0
) -> optuna.samplers.BaseSampler:
    """The configured sampler (``cfg.sampler``, seeded with ``sweep.seed``); each worker its
    own seed, or identical seeds would propose identical trials."""
    return instantiate(cfg_sampler, seed=int(seed) + worker)


def pareto(cfg_sweep: DictConfig) -> bool:
    """``sweep.objective=pareto``: silhouette and stability, both maximised."""
    return cfg_sweep.objective == "pareto"


def directions(cfg_sweep: DictConfig) -> list[str]:
    return ["maximize", "maximize"] if pareto(cfg_sweep) else ["maximize"]


def chosen_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The trial the sweep picks: the best feasible one; with two objectives (silhouette and
    stability), the knee of the feasible Pareto front (:func:`knee`). Raises ``ValueError``
    when no trial is feasible."""
    if len(study.directions) == 1:
        return study.best_trial
    front = study.best_trials
    if not front:
        raise ValueError("no feasible trial")
    return knee(front)


def knee(front: list[optuna.trial.FrozenTrial]) -> optuna.trial.FrozenTrial:
    """The Pareto-front trial nearest the ideal point (best silhouette and best stability), each
    objective scaled to [0, 1] over the front; ties go to the earlier trial."""
    values = np.array([t.values for t in front], dtype=float)
    low, high = values.min(axis=0), values.max(axis=0)
    scaled = (values - low) / np.where(high > low, high - low, 1.0)
    distance = np.hypot(*(1.0 - scaled).T)
    order = sorted(range(len(front)), key=lambda i: (round(distance[i], 12), front[i].number))
    return front[order[0]]


def silhouette_of(trial: optuna.trial.FrozenTrial) -> float:
    """A finished trial's silhouette (its first objective)."""
    return float(trial.values[0])


def finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


def count_states(study: optuna.Study) -> dict[str, int]:
    """Trials by state; a complete trial that breaks a constraint counts as INFEASIBLE."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        state = trial.state.name
        if trial.state == TrialState.COMPLETE and trial.user_attrs.get("reason"):
            state = "INFEASIBLE"
        counts[state] = counts.get(state, 0) + 1
    return counts
