"""What the person running a sweep reads in the terminal, through ``logging``: the
``segmentation.sweep`` logger writes its INFO lines to stdout as they are, so that a program
running the sweep can silence it (``setLevel``) or send it elsewhere (its own handler)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import optuna
from omegaconf import DictConfig
from optuna.trial import TrialState

from segmentation.study.definition import chosen_trial, finished_trials, silhouette_of

log = logging.getLogger("segmentation.sweep")


class _Stdout(logging.Handler):
    """Each line to the ``sys.stdout`` of the moment (pytest and Hydra swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stdout.write(self.format(record) + "\n")
            sys.stdout.flush()
        except Exception:
            self.handleError(record)


def show(text: str) -> None:
    """One line for the person running the sweep."""
    # A logging.config.dictConfig elsewhere in the process (its default disables the loggers
    # it does not name) must not silence the sweep.
    log.disabled = False
    log.info(text)


if not log.handlers:
    log.addHandler(_Stdout())
    log.setLevel(logging.INFO)
    # Hydra's job logging would prefix each line with a time and the logger's name.
    log.propagate = False


def announce(
    sweep: DictConfig,
    experiment_name: str,
    parent_run_id: str,
    study: optuna.Study,
    revived: list[int],
    remaining: int,
) -> None:
    """The study's state before trials run: revived trials, trials done and to run (of the
    ``sweep`` group's ``n_trials``)."""
    n_trials = int(sweep.n_trials)
    if revived:
        show(f"Marked interrupted trial(s) {revived} as failed; they do not count.")
    if remaining <= 0:
        show(
            f"Study {study.study_name} already has its {n_trials} trials; finishing its summary.",
        )
    else:
        show(
            f"Study {study.study_name}: {finished_trials(study)} of {n_trials} trials done, "
            f"running {remaining} (MLflow experiment '{experiment_name}', parent run "
            f"{parent_run_id})",
        )


def show_best(tracking: DictConfig, best: optuna.trial.FrozenTrial, version: str | None) -> None:
    """The trial the sweep picked, and its registered version (of the ``tracking`` group's
    registered model)."""
    metrics = best.user_attrs.get("metrics", {})
    show(
        f"Best: trial {best.number} ({best.user_attrs.get('algorithm')}, "
        f"{best.user_attrs.get('n_clusters')} segments) silhouette {silhouette_of(best):.4f}, "
        f"davies_bouldin {metrics.get('davies_bouldin', float('nan')):.3f}; run "
        f"{best.user_attrs.get('mlflow_run_id')}"
        + (f"; registered {tracking.registered_model_name} v{version}" if version else ""),
    )


def show_next(
    paths: DictConfig,
    experiment_name: str,
    report: Path | None,
    experiment_id: str,
    parent_run_id: str,
) -> None:
    """Where to look next: the report, the parent run in the MLflow UI (of the ``paths``
    group's store), the next command."""
    uri = str(paths.tracking_uri)
    local = uri.startswith("sqlite:")
    ui = "http://127.0.0.1:5000" if local else uri
    show(f"Report: {report}")
    # The query opens the UI in its model-training mode (else it may open in its GenAI mode).
    show(
        f"MLflow UI: {'make ui, then ' if local else ''}{ui}/#/experiments/"
        f"{experiment_id}/runs/{parent_run_id}?workflowType=machine_learning",
    )
    show(f"Next: make promote EXPERIMENT={experiment_name}")


class Progress:
    """One line per finished trial: trials done, best so far."""

    def __init__(self, total: int, enabled: bool):
        self.total = total
        self.enabled = enabled
        self.started = time.perf_counter()

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if not self.enabled:
            return
        done = finished_trials(study)
        try:
            best = chosen_trial(study)
            best_text = (
                f"best silhouette {silhouette_of(best):.4f} (trial {best.number}, "
                f"{best.user_attrs.get('algorithm')}, k={best.user_attrs.get('n_clusters')})"
            )
        except ValueError:
            best_text = "no valid trial yet"
        reason = trial.user_attrs.get("reason")
        this = (
            f"{silhouette_of(trial):.4f}"
            if trial.state == TrialState.COMPLETE and not reason
            else f"rejected: {reason or trial.state.name}"
        )
        show(
            f"[{done:>3}/{self.total}] {best_text} | trial {trial.number}: {this} "
            f"| {time.perf_counter() - self.started:.1f}s",
        )
