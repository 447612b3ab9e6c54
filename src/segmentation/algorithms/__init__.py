"""Clustering algorithms (``conf/algorithm``): one config file and one small module each.

An algorithm's config names its estimator factory as ``estimator._target_`` with the fixed
arguments beside it, and its Optuna ``search`` space. The module's factory takes the fixed and
searched arguments plus ``random_state`` and ``n_rows`` and returns an unfitted estimator with
``fit_predict`` and ``predict``::

    def build(*, random_state=None, n_rows=None, **params) -> estimator
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

import numpy as np
import optuna
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from threadpoolctl import ThreadpoolController

from segmentation.errors import InputError


def one_thread() -> AbstractContextManager:
    """A section whose BLAS and OpenMP run on one thread: small fits are faster so, and
    processes working side by side must not oversubscribe the cores."""
    return _threadpools().limit(limits=1)


@functools.cache  # finding the thread pools scans the loaded libraries: once per process
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()


def fixed_params(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments an algorithm's config fixes (its ``estimator`` node without ``_target_``)."""
    return {k: v for k, v in (spec.get("estimator") or {}).items() if not k.startswith("_")}


def build(name: str, spec: Mapping[str, Any], params: Mapping[str, Any], seed: int, n_rows: int):
    """The unfitted estimator of algorithm ``name`` with ``params`` (fixed and searched)."""
    try:
        return instantiate(spec["estimator"], **params, random_state=seed, n_rows=n_rows)
    except InstantiationException as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"algorithm '{name}': cannot build its estimator ({first})") from None


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)  # YAML's true is no 1


def check_search(name: str, spec: Mapping[str, Any]) -> None:
    """Refuse a search space :func:`suggest` cannot sample (an unknown type, a range whose low
    is above its high, a log range from 0 or below, no choices), naming its setting."""
    for param, space in (spec.get("search") or {}).items():
        key, kind = f"algorithm.{name}.search.{param}", space.get("type")
        if kind == "categorical":
            if not space.get("choices"):
                raise InputError(f"{key}: no choices (expected a list of values to try)")
            continue
        if kind not in ("int", "float"):
            raise InputError(f"{key}: type {kind!r} unknown (expected int, float or categorical)")
        low, high = space.get("low"), space.get("high")
        if not _number(low) or not _number(high) or low > high:
            raise InputError(f"{key}: low={low}, high={high} (expected numbers, low <= high)")
        if space.get("log") and low <= 0:
            raise InputError(f"{key}: low={low} on a log scale (expected low > 0)")
        if int(space.get("step", 1)) < 1:
            raise InputError(f"{key}: step={space['step']} (expected a whole number >= 1)")


def suggest(trial: optuna.Trial, algorithms: Mapping[str, Mapping[str, Any]]) -> tuple[str, dict]:
    """Sample an algorithm (categorical when several) and its conditional parameters."""
    names = sorted(algorithms)
    name = trial.suggest_categorical("algorithm", names) if len(names) > 1 else names[0]
    params = fixed_params(algorithms[name])
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
    return name, params


def trial_algorithm(trial: optuna.trial.FrozenTrial) -> str:
    """The algorithm a finished trial used."""
    return trial.params.get("algorithm") or trial.user_attrs["algorithm"]


def trial_params(trial: optuna.trial.FrozenTrial, algorithms: Mapping[str, Mapping]) -> dict:
    """The full estimator parameters (fixed + searched) of a finished trial."""
    name = trial_algorithm(trial)
    params = fixed_params(algorithms[name])
    prefix = f"{name}."
    params.update({k[len(prefix) :]: v for k, v in trial.params.items() if k.startswith(prefix)})
    return params


def seeded_sample(n_rows: int, size: int | None, random_state: Any) -> np.ndarray | None:
    """Sorted row indices of a seeded sample of ``size`` rows, or ``None`` when there are no
    more rows than that (density models fit a sample and assign the rest)."""
    if size is None or n_rows <= int(size):
        return None
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(n_rows, size=int(size), replace=False))


def centers(estimator: Any) -> np.ndarray | None:
    """Segment centres in the scaled space (KMeans centroids, GMM means), if the model has any."""
    for attribute in ("cluster_centers_", "means_"):
        value = getattr(estimator, attribute, None)
        if value is not None:
            return np.asarray(value)
    return None
