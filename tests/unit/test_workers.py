"""Several worker processes on one study: exact budget, one parent run, refusals at start."""

from __future__ import annotations

import fcntl
import os

import pytest

from segmentation.errors import InputError, TrackingError
from segmentation.study.artifacts import ArtifactWriter
from segmentation.study.processes import BACKGROUND_NICENESS
from segmentation.study.storage import study_storage
from segmentation.study.sweep import run_sweep
from segmentation.tracking import store as tracking_store
from tests.conftest import FAST, make_cfg


def test_unreachable_postgres_refused_in_one_line(store, monkeypatch):
    # Port 1 on localhost refuses at once: both stores must say so without MLflow's retries.
    url = "postgresql://user:secret@127.0.0.1:1/segments"
    with pytest.raises(TrackingError) as err:
        tracking_store.connect(url)
    assert "secret" not in str(err.value) and "\n" not in str(err.value)
    monkeypatch.setenv("SEGMENTATION_DB_URL", url)
    cfg = make_cfg(store, "storage=postgres", *FAST)
    with pytest.raises(TrackingError, match="SEGMENTATION_DB_URL"):
        study_storage(cfg.storage, cfg.sweep, cfg.paths, str(cfg.experiment_name))


def test_postgres_study_needs_a_shared_tracking_store(store, monkeypatch):
    monkeypatch.setenv("SEGMENTATION_DB_URL", "postgresql://user:secret@127.0.0.1:1/segments")
    with pytest.raises(InputError, match="MLFLOW_TRACKING_URI"):
        run_sweep(make_cfg(store, "storage=postgres", *FAST))
    with pytest.raises(InputError, match="sweep.workers"):
        run_sweep(make_cfg(store, "sweep.workers=0", *FAST))


@pytest.mark.parametrize(
    ("configured", "workers", "cpus", "expected"),
    [(2, 2, 2, 0), (2, 4, 2, 0), (2, 1, 2, 1), (2, 2, 8, 2), (1, 2, 8, 1), (0, 2, 8, 0)],
)
def test_artifact_processes_only_on_spare_cores(configured, workers, cpus, expected):
    from segmentation.study.workers import artifact_workers_per_worker

    assert artifact_workers_per_worker(configured, workers, cpus) == expected


def test_journal_lock_of_a_killed_process_is_free_at_once(tmp_path):
    import signal
    import time

    from segmentation.study.storage import FlockJournalLock

    journal = tmp_path / "study.journal"
    pid = os.fork()
    if pid == 0:  # the child takes the lock and is killed holding it
        FlockJournalLock(journal).acquire()
        time.sleep(60)
        os._exit(0)
    try:
        while not (tmp_path / "study.journal.flock").exists():
            time.sleep(0.01)
        time.sleep(0.2)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    # Free at once (Optuna's own symlink lock would wait out its 30 s grace period here): a
    # non-blocking probe of the lock file succeeds.
    fd = os.open(f"{journal}.flock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    lock = FlockJournalLock(journal)
    assert lock.acquire()
    lock.release()


def test_journal_lock_left_held_by_an_interrupt_is_taken_again(tmp_path):
    import fcntl
    import threading

    from segmentation.study.storage import FlockJournalLock

    lock = FlockJournalLock(tmp_path / "study.journal")
    lock.acquire()  # and no release: a Ctrl-C cut in before Optuna's try
    again = threading.Thread(target=lock.acquire, daemon=True)
    again.start()
    again.join(timeout=10)
    assert not again.is_alive(), "the process waited for its own lock"

    def free_elsewhere() -> bool:
        fd = os.open(lock.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another open file: another holder
        except BlockingIOError:
            return False
        finally:
            os.close(fd)
        return True

    assert not free_elsewhere(), "still held against other processes"
    lock.release()
    assert free_elsewhere()


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info()]


def test_artifact_processes_yield_the_cpu_to_the_trials():
    writer = ArtifactWriter(1)
    writer.start()
    try:
        niceness = writer.call(os.nice, 0).result(timeout=60)
        threads = writer.call(_blas_threads).result(timeout=60)
    finally:
        writer.close()
    assert niceness == min(19, os.nice(0) + BACKGROUND_NICENESS)
    assert threads and set(threads) == {1}


def test_artifact_pool_starts_behind_the_sweep_and_closes_at_any_point():
    """start() does not wait for the fork server (a thread asks for the processes); a job
    submitted at once queues until they are up, and closing before any job is clean."""
    writer = ArtifactWriter(2)
    writer.start()
    try:
        first = writer.call(os.getpid)
        pids = {first.result(timeout=120), *(writer.call(os.getpid).result(60) for _ in range(4))}
    finally:
        writer.close()
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    idle = ArtifactWriter(1)
    idle.start()
    idle.close()  # waits for the starting thread, then stops the processes
    assert idle._pool is None and idle._spawner is None
