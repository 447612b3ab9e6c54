"""Several worker processes on one study: the exact budget under one parent run."""

from __future__ import annotations

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from segmentation.study.budget import OVER_BUDGET_ATTR
from segmentation.study.storage import PID_ATTR, study_storage
from segmentation.study.sweep import run_sweep
from segmentation.tracking import runs as tags
from tests.conftest import FAST, make_cfg


def check_sweep(cfg, result, n_trials: int) -> list[optuna.trial.FrozenTrial]:
    """Exactly n_trials finished trials, each with one FINISHED child run of the one parent."""
    study = optuna.load_study(
        study_name=result.study_name,
        storage=study_storage(cfg.storage, cfg.sweep, cfg.paths, str(cfg.experiment_name)),
    )
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == n_trials
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # Any other trial is an over-budget ask, discarded before it had a run.
    others = [t for t in trials if t not in finished]
    assert all(t.user_attrs.get(OVER_BUDGET_ATTR) for t in others), others
    assert all("mlflow_run_id" not in t.user_attrs for t in others)
    client = MlflowClient(str(cfg.paths.tracking_uri))
    runs = client.search_runs([result.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get(tags.ROLE_TAG) == "sweep"]
    assert [r.info.run_id for r in parents] == [result.parent_run_id]
    assert parents[0].info.status == "FINISHED"
    children = [r for r in runs if r.data.tags.get(tags.ROLE_TAG) == "trial"]
    assert all(r.data.tags["mlflow.parentRunId"] == result.parent_run_id for r in children)
    assert sorted(r.info.run_id for r in children) == sorted(
        t.user_attrs["mlflow_run_id"] for t in finished
    )
    assert {r.info.status for r in children} == {"FINISHED"}
    assert len({r.data.tags[tags.TRIAL_TAG] for r in children}) == n_trials
    for t in finished:
        if t.state == TrialState.COMPLETE:
            run = next(r for r in children if r.info.run_id == t.user_attrs["mlflow_run_id"])
            assert run.data.metrics["silhouette"] == pytest.approx(t.value)
    return finished


def test_two_workers_run_the_exact_budget_under_one_parent(store):
    cfg = make_cfg(store, "sweep.n_trials=5", "sweep.workers=2", *FAST)
    result = run_sweep(cfg)
    finished = check_sweep(cfg, result, 5)
    assert result.ran == 5
    pids = {t.user_attrs[PID_ATTR] for t in finished}
    assert 1 <= len(pids) <= 2
    # A rerun has nothing left to do and starts no trial.
    again = run_sweep(cfg)
    assert again.ran == 0 and again.parent_run_id == result.parent_run_id
    check_sweep(cfg, again, 5)


def test_four_worker_stress_keeps_the_budget_exact(store):
    cfg = make_cfg(store, "sweep.n_trials=8", "sweep.workers=4", "sampler=random", *FAST)
    result = run_sweep(cfg)
    finished = check_sweep(cfg, result, 8)
    assert len({t.number for t in finished}) == 8
    client = MlflowClient(str(cfg.paths.tracking_uri))
    children = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    complete = [
        r.data.metrics["silhouette"] for r in children if r.data.tags["trial_state"] == "COMPLETE"
    ]
    parent = client.get_run(result.parent_run_id)
    assert parent.data.metrics["best_silhouette"] == pytest.approx(max(complete))
