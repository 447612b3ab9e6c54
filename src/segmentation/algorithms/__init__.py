"""Clustering algorithms (``conf/algorithm``): one small module per config file.

An algorithm module provides::

    build(params: dict, seed: int, n_rows: int) -> estimator  # unfitted, has fit_predict/predict
    extra_metrics(estimator, X) -> dict[str, float]            # e.g. inertia, bic

and its config states ``module``, ``fixed`` parameters and the Optuna ``search`` space.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import optuna

from segmentation.errors import InputError


def algorithm_module(name: str, spec: Mapping[str, Any]) -> ModuleType:
    """Import ``segmentation.algorithms.<module>`` for one algorithm config."""
    module = spec.get("module", name)
    try:
        return importlib.import_module(f"segmentation.algorithms.{module}")
    except ModuleNotFoundError:
        raise InputError(
            f"algorithm '{name}': no module segmentation.algorithms.{module}"
        ) from None


def suggest(trial: optuna.Trial, algorithms: Mapping[str, Mapping[str, Any]]) -> tuple[str, dict]:
    """Sample an algorithm (categorical when several) and its conditional parameters."""
    names = sorted(algorithms)
    name = trial.suggest_categorical("algorithm", names) if len(names) > 1 else names[0]
    if len(names) == 1:
        trial.set_user_attr("algorithm", name)
    params = dict(algorithms[name].get("fixed") or {})
    for param, space in (algorithms[name].get("search") or {}).items():
        # Namespaced so conditional parameters of different algorithms never collide.
        key = f"{name}.{param}"
        kind = space["type"]
        if kind == "int":
            params[param] = trial.suggest_int(
                key,
                int(space["low"]),
                int(space["high"]),
                step=int(space.get("step", 1)),
                log=bool(space.get("log", False)),
            )
        elif kind == "float":
            params[param] = trial.suggest_float(
                key, float(space["low"]), float(space["high"]), log=bool(space.get("log", False))
            )
        elif kind == "categorical":
            params[param] = trial.suggest_categorical(key, list(space["choices"]))
        else:
            raise InputError(f"algorithm '{name}': search type '{kind}' of '{param}' unknown")
    return name, params


def trial_algorithm(trial: optuna.trial.FrozenTrial) -> str:
    """The algorithm a finished trial used."""
    return trial.params.get("algorithm") or trial.user_attrs["algorithm"]


def trial_params(trial: optuna.trial.FrozenTrial, algorithms: Mapping[str, Mapping]) -> dict:
    """The full estimator parameters (fixed + searched) of a finished trial."""
    name = trial_algorithm(trial)
    params = dict(algorithms[name].get("fixed") or {})
    prefix = f"{name}."
    params.update({k[len(prefix) :]: v for k, v in trial.params.items() if k.startswith(prefix)})
    return params
