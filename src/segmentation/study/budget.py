"""The study's budget: ``sweep.n_trials`` finished or running trials in all, exact across
worker processes."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from segmentation.study import interrupts

BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
OVER_BUDGET_ATTR = "over_budget"


class OverBudget(Exception):
    """A trial asked for when the budget was already taken by other workers."""


def budget_used(study: optuna.Study, below: int | None = None) -> int:
    """Trials that count against the budget: finished (COMPLETE, PRUNED) or running.

    With ``below``, only trials numbered lower than it.
    """
    trials = study.get_trials(deepcopy=False, states=BUDGET_STATES)
    if below is None:
        return len(trials)
    return sum(1 for t in trials if t.number < below)


class BudgetedObjective:
    """Runs the objective only when this trial is within the study's budget.

    Storages number trials in the order they create them, and a worker reads the study after
    its own trial exists: counting only the lower-numbered trials that are finished or running
    therefore lets exactly one of several simultaneous asks take the last slot. The others are
    told FAIL with ``over_budget`` set (Optuna cannot delete a trial) and have no MLflow run.
    """

    def __init__(self, objective: Callable[[optuna.Trial], float], n_trials: int):
        self.objective = objective
        self.n_trials = n_trials

    def __call__(self, trial: optuna.Trial) -> float:
        study = trial.study
        if budget_used(study, below=trial.number) >= self.n_trials:
            trial.set_user_attr(OVER_BUDGET_ATTR, True)
            study.stop()
            raise OverBudget(f"trial {trial.number}: the {self.n_trials} trials are taken")
        return self.objective(trial)


def run_budget(
    study: optuna.Study,
    objective: Callable[[optuna.Trial], float],
    n_trials: int,
    callbacks: Iterable[Callable[[optuna.Study, FrozenTrial], None]] = (),
) -> None:
    """Run trials in this process until the study has ``n_trials`` finished or running ones."""
    if budget_used(study) >= n_trials:
        return
    # study.optimize (not a bare ask/tell loop) keeps the RDB heartbeat of each trial alive.
    with interrupts.deferred():  # Ctrl-C stops the trials, never inside a store write
        study.optimize(
            BudgetedObjective(objective, n_trials),
            n_trials=None,
            catch=(OverBudget,),
            callbacks=[MaxTrialsCallback(n_trials, states=BUDGET_STATES), *callbacks],
            gc_after_trial=False,
        )
