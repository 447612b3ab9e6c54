"""Sweeps beyond one process (``sweep.workers``): worker processes on one study, an exact
trial budget shared by all of them, and the study lock that tells a restart which trials died."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from segmentation.errors import InputError, TrackingError
from segmentation.study import interrupts
from segmentation.study.storage import journal_path

# Each worker fits on one core: n workers on n cores must not oversubscribe them.
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# How long an interrupted worker gets to close its runs before it is killed.
STOP_TIMEOUT = 60.0


def worker_count(sweep: DictConfig) -> int:
    """The ``sweep`` group's ``workers``, at least 1 (the schema has made it an integer)."""
    n = int(sweep.workers)
    if n < 1:
        raise InputError(f"sweep.workers={n}: expected a whole number >= 1")
    return n


def check_shared_tracking(storage: DictConfig, tracking_uri: str) -> None:
    """A study shared through a database (the ``storage`` group) needs a shared MLflow store
    as well."""
    uri = str(tracking_uri)
    if storage.kind == "rdb" and uri.startswith(("sqlite:", "file:", "/")):
        raise InputError(
            f"storage={storage.name}: the MLflow store is local ({uri.split(':')[0]}); set "
            "MLFLOW_TRACKING_URI to the shared one (postgresql://... or http://mlflow-server:5000)"
        )


class StudyLock:
    """An advisory lock beside the local journal, held shared by every sweep process.

    A starting sweep that can take it exclusively knows no other process uses the study, so
    every RUNNING trial in the journal is dead, even one killed before it recorded its process.
    The kernel drops the lock when a process dies, SIGKILL included. RDB studies (several
    hosts) have no such lock and rely on process ids and the heartbeat.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self._fd: int | None = None

    @classmethod
    def for_config(cls, storage: DictConfig, paths: DictConfig, experiment_name: str) -> StudyLock:
        """The lock of the experiment's study in the ``storage`` group's store (none for a
        database)."""
        if storage.kind != "journal":
            return cls(None)
        path = journal_path(paths, experiment_name)
        return cls(path.with_name(path.name + ".sweep-lock"))

    def claim(self) -> bool:
        """Hold the lock shared; return whether no other process held it."""
        if self.path is None:
            return False
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise TrackingError(f"study lock {self.path} is unusable: {exc}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            alone = True
        except BlockingIOError:
            alone = False
        fcntl.flock(self._fd, fcntl.LOCK_SH)
        return alone

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def worker_env() -> dict[str, str]:
    """The environment of a worker process: this one, with one thread per numeric pool."""
    env = os.environ.copy()
    env.update({name: "1" for name in THREAD_VARS})
    return env


def worker_command(index: int, experiment_id: str, parent_run_id: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "segmentation.study.worker",
        "--index",
        str(index),
        "--experiment-id",
        experiment_id,
        "--parent-run-id",
        parent_run_id,
        "--parent-pid",
        str(os.getpid()),
    ]


def artifact_workers_per_worker(configured: int, workers: int, cpus: int) -> int:
    """Artifact processes each of ``workers`` sweep workers may start on ``cpus`` cores."""
    return max(0, min(configured, (cpus - workers) // workers))


def run_workers(cfg: DictConfig, n: int, experiment_id: str, parent_run_id: str) -> None:
    """Run the study's remaining budget in ``n`` worker processes and wait for them.

    It takes the whole config: each worker is a process of its own that composes its sweep
    from it (:func:`segmentation.study.worker.run_worker`). The resolved config goes to each
    worker on its standard input (it may hold database URLs, so it is never written to disk).
    Ctrl-C reaches every worker; each closes its open runs.
    """
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    # Artifact processes per worker only where cores are left over: n workers on n cores already
    # fill them, and 2 more processes each made the fits wait (workers draw inline then).
    cfg.tracking.artifact_workers = artifact_workers_per_worker(
        int(cfg.tracking.get("artifact_workers", 0)), n, os.cpu_count() or 1
    )
    text = OmegaConf.to_yaml(cfg, resolve=True)
    procs: list[subprocess.Popen] = []
    try:
        for index in range(n):
            proc = subprocess.Popen(
                worker_command(index, experiment_id, parent_run_id),
                stdin=subprocess.PIPE,
                env=worker_env(),
                text=True,
            )
            procs.append(proc)
            proc.stdin.write(text)
            proc.stdin.close()
        with interrupts.allowed():
            codes = [proc.wait() for proc in procs]
    except KeyboardInterrupt:
        _stop(procs)
        raise
    failed = [f"worker {i} exit code {code}" for i, code in enumerate(codes) if code != 0]
    if failed:
        raise TrackingError(
            f"{', '.join(failed)} (see its output above); run the same command again to resume"
        )


def _stop(procs: Sequence[subprocess.Popen]) -> None:
    # A terminal's Ctrl-C already reached them; a SIGINT sent to the parent alone did not.
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    for proc in procs:
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
