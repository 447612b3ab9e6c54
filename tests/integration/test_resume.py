"""Crash-safe resume, for real: a sweep process killed with SIGKILL or interrupted with SIGINT,
then the same command again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from segmentation.features.space import SpaceConfig, prepare_space
from segmentation.study.definition import study_name
from segmentation.study.run_logging import close_orphan_child_runs
from segmentation.study.storage import PID_ATTR, study_storage
from segmentation.study.sweep import run_sweep
from segmentation.tracking import runs as tags
from tests.conftest import FAST, WAIT_BOUND, make_cfg, wait_until
from tests.integration.test_workers_sweeps import check_sweep


def sweep_command(store: Path, *overrides: str) -> list[str]:
    script = Path(sys.executable).with_name("segmentation-sweep")
    head = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from segmentation.cli import sweep_main; sweep_main()"]
    )
    return [*head, f"paths.mlruns_dir={store}", f"paths.data_dir={store / 'no-data'}", *overrides]


def start_sweep(store: Path, *overrides: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = os.pathsep.join([src, env.get("PYTHONPATH", "")])
    # A hang is reported with every thread's stack (SIGABRT, see stop_or_report).
    env["PYTHONFAULTHANDLER"] = "1"
    return subprocess.Popen(
        sweep_command(store, *overrides),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # A runner started in the background ignores SIGINT, and its children inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def stop_or_report(proc: subprocess.Popen, timeout: float = WAIT_BOUND) -> int:
    """Wait for ``proc`` to exit; if it hangs, fail with the stacks of all its threads."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)
        proc.wait(timeout=30)
        pytest.fail(f"the sweep hung for {timeout} s; its stacks:\n{proc.stderr.read()}")


def wait_mid_trial(cfg, proc: subprocess.Popen, finished: int) -> None:
    """Return once ``finished`` trials are done and another one has its MLflow run open."""
    name = study_of(cfg)

    def reached() -> bool:
        assert proc.poll() is None, proc.stderr.read()
        try:
            study = optuna.load_study(
                study_name=name,
                storage=study_storage(cfg.storage, cfg.sweep, cfg.paths, str(cfg.experiment_name)),
            )
        except KeyError:  # not created yet
            return False
        trials = study.get_trials(deepcopy=False)
        done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        open_run = [
            t for t in trials if t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs
        ]
        return len(done) >= finished and bool(open_run)

    wait_until(reached, f"{finished} finished trials and another with its run open")


def study_of(cfg) -> str:
    """The study a sweep of ``cfg`` runs (its name holds the data's hash)."""
    groups = SpaceConfig.of(cfg)
    return study_name(
        str(cfg.experiment_name), groups.name, cfg.sweep, prepare_space(groups).dataset_hash
    )


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def interrupted_trials(cfg):
    study = optuna.load_study(
        study_name=study_of(cfg),
        storage=study_storage(cfg.storage, cfg.sweep, cfg.paths, str(cfg.experiment_name)),
    )
    return study, [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.FAIL]


def check_killed_runs(cfg, failed) -> None:
    client = MlflowClient(str(cfg.paths.tracking_uri))
    for trial in failed:
        if "mlflow_run_id" in trial.user_attrs:
            assert client.get_run(trial.user_attrs["mlflow_run_id"]).info.status == "KILLED"


def test_sigkill_mid_sweep_then_rerun_finishes_the_remaining_budget(store):
    # On 200 rows a trial can finish between the moment the test sees it running and the
    # kill (it did in CI). On 5,000 rows a trial lasts 0.27-0.37 s here.
    overrides = ("sweep.n_trials=7", "sweep.workers=2", "dataset.synthetic_rows=5000", *FAST)
    cfg = make_cfg(store, *overrides)
    proc = start_sweep(store, *overrides)
    try:
        wait_mid_trial(cfg, proc, finished=2)
    finally:
        proc.send_signal(signal.SIGKILL)  # also when the wait failed: no sweep left behind
        stop_or_report(proc)
    # The workers die with their parent.
    study, _ = interrupted_trials(cfg)
    trials = study.get_trials(deepcopy=False)
    worker_pids = {t.user_attrs[PID_ATTR] for t in trials if PID_ATTR in t.user_attrs}
    wait_until(lambda: all(gone(pid) for pid in worker_pids), "the workers to exit")
    # What the storage holds once every process is gone is what the kill left behind.
    trials = study.get_trials(deepcopy=False)
    before = {t.number for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)}
    open_at_kill = {
        t.number
        for t in trials
        if t.state == TrialState.RUNNING and "mlflow_run_id" in t.user_attrs
    }
    assert open_at_kill, "a trial had its MLflow run open at the kill"

    result = run_sweep(cfg)  # the same command again
    finished = check_sweep_after_crash(cfg, result, 7)
    assert before <= {t.number for t in finished}, "no completed trial lost"
    study, failed = interrupted_trials(cfg)
    assert open_at_kill <= {t.number for t in failed}, "the trials running at the kill failed"
    check_killed_runs(cfg, failed)


def check_sweep_after_crash(cfg, result, n_trials: int):
    """The budget is exact and every child run is either a finished trial's or KILLED."""
    study, failed = interrupted_trials(cfg)
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == n_trials
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    client = MlflowClient(str(cfg.paths.tracking_uri))
    runs = client.search_runs([result.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get(tags.ROLE_TAG) == "sweep"]
    assert [r.info.run_id for r in parents] == [result.parent_run_id]
    children = [r for r in runs if r.data.tags.get(tags.ROLE_TAG) == "trial"]
    assert all(r.data.tags["mlflow.parentRunId"] == result.parent_run_id for r in children)
    done = sorted(r.info.run_id for r in children if r.info.status == "FINISHED")
    assert done == sorted(t.user_attrs["mlflow_run_id"] for t in finished)
    killed = [r for r in children if r.info.status == "KILLED"]
    failed_runs = {t.user_attrs["mlflow_run_id"] for t in failed if "mlflow_run_id" in t.user_attrs}
    assert failed_runs <= {r.info.run_id for r in killed}, "a failed trial's run is KILLED"
    # A run created just before the kill, before its trial recorded it, is KILLED as well.
    assert {int(r.data.tags[tags.TRIAL_TAG]) for r in killed} <= {t.number for t in failed}
    assert len(children) == len(done) + len(killed), "no duplicate or open child runs"
    return finished


@pytest.mark.parametrize("workers", [1, 2])
def test_sigint_ends_cleanly_and_a_restart_resumes(store, workers):
    # On 200 rows the 5 trials could all end before the test saw one running (1 run in 8).
    overrides = (
        "sweep.n_trials=5",
        f"sweep.workers={workers}",
        "dataset.synthetic_rows=5000",
        *FAST,
    )
    cfg = make_cfg(store, *overrides)
    proc = start_sweep(store, *overrides)
    try:
        wait_mid_trial(cfg, proc, finished=2)
        proc.send_signal(signal.SIGINT)
        code = stop_or_report(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 130, proc.stderr.read()
    study, failed = interrupted_trials(cfg)
    assert not study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    client = MlflowClient(str(cfg.paths.tracking_uri))
    assert not client.search_runs(
        [client.get_experiment_by_name(str(cfg.experiment_name)).experiment_id],
        "attributes.status = 'RUNNING'",
    ), "Ctrl-C closes every open run"
    check_killed_runs(cfg, failed)
    done_before = len(
        study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    )
    result = run_sweep(cfg)
    check_sweep_after_crash(cfg, result, 5)
    assert result.ran == 5 - done_before


def test_single_worker_sweep_is_checked_like_a_parallel_one(store):
    cfg = make_cfg(store, "sweep.n_trials=3", *FAST)
    check_sweep(cfg, run_sweep(cfg), 3)


def test_ctrl_c_inside_a_store_query_waits_for_it(store):
    """A Ctrl-C that lands inside an MLflow query (here: the first read after trial 2's run is
    inserted) stops the sweep at the next safe point, with no SQLite lock left behind.

    Raised inside a read-only query (mlflow.start_run's read of the parent run, no longer
    made per trial), it once left the read lock held while the clean-up waited for the
    artifact worker, whose writes waited for that lock: "database is locked" after 20 s,
    exit code 1 (seen with real Ctrl-Cs)."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    cfg = make_cfg(store, "sweep.n_trials=5", *FAST)
    inserted: list[str] = []
    interrupted: list[str] = []

    def interrupt_in_query(conn, cursor, statement, parameters, context, executemany):
        sql = statement.lstrip().upper()
        if sql.startswith("INSERT INTO RUNS"):
            inserted.append(statement)
        elif len(inserted) == 4 and not interrupted and sql.startswith("SELECT"):
            # The runs of the parent and trials 0 to 2 are inserted: trial 2's is read back
            # while the transaction that created it is open.
            interrupted.append(statement)
            signal.raise_signal(signal.SIGINT)

    event.listen(Engine, "after_cursor_execute", interrupt_in_query)
    try:
        with pytest.raises(KeyboardInterrupt):
            run_sweep(cfg)
    finally:
        event.remove(Engine, "after_cursor_execute", interrupt_in_query)
    assert interrupted, "the Ctrl-C was sent"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    db = sqlite3.connect(str(cfg.paths.tracking_uri).removeprefix("sqlite:///"), timeout=0)
    try:
        db.execute("BEGIN EXCLUSIVE")  # "database is locked" while any read is left open
        db.rollback()
    finally:
        db.close()
    study, failed = interrupted_trials(cfg)
    assert len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) == 2
    assert [t.number for t in failed] == [2]
    check_killed_runs(cfg, failed)
    result = run_sweep(cfg)
    check_sweep_after_crash(cfg, result, 5)
    assert result.ran == 3


def test_a_trial_killed_between_closing_its_run_and_being_recorded_leaves_no_finished_run(
    store,
):
    # The window the SIGKILL test hits now and then: the trial's run is FINISHED, the trial
    # itself was still RUNNING in Optuna and is marked FAIL on the rerun.
    client = MlflowClient(f"sqlite:///{store}/mlflow.db")
    exp = client.create_experiment("killed-window")
    parent = client.create_run(exp).info.run_id
    child_tags = {"mlflow.parentRunId": parent}
    closed, open_, done = (client.create_run(exp, tags=child_tags).info.run_id for _ in range(3))
    client.set_terminated(closed, "FINISHED")
    client.set_terminated(done, "FINISHED")
    study = optuna.create_study()
    for run_id, state in ((closed, TrialState.FAIL), (open_, TrialState.FAIL)):
        trial = study.ask()
        trial.set_user_attr("mlflow_run_id", run_id)
        study.tell(trial, state=state)
    trial = study.ask()
    trial.set_user_attr("mlflow_run_id", done)
    study.tell(trial, 0.5)
    ctx = SimpleNamespace(experiment_id=exp, parent_run_id=parent)

    close_orphan_child_runs(client, ctx, study)

    status = {r: client.get_run(r).info.status for r in (closed, open_, done)}
    assert status == {closed: "KILLED", open_: "KILLED", done: "FINISHED"}
