"""Optuna study storage (``conf/storage``): a local journal file, or PostgreSQL."""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

import optuna
from omegaconf import DictConfig
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from segmentation.errors import InputError, TrackingError

HOST_ATTR = "worker_host"
PID_ATTR = "worker_pid"


def study_storage(
    storage: DictConfig, sweep: DictConfig, paths: DictConfig, experiment_name: str
) -> optuna.storages.BaseStorage:
    """The storage the ``storage`` group names (a journal: ``paths.study_dir``'s file of the
    experiment; a database: the ``sweep`` group's heartbeat); refuses with one line when it
    cannot be used."""
    kind = storage.kind
    if kind == "journal":
        path = journal_path(paths, experiment_name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(JournalFileBackend(str(path), lock_obj=FlockJournalLock(path)))
        except OSError as exc:
            raise TrackingError(f"study storage {path} is unusable: {exc}") from None
    # rdb, the only other kind the schema's enum admits.
    url = os.environ.get(storage.url_env)
    if not url:
        raise InputError(
            f"storage={storage.name}: environment variable {storage.url_env} is not "
            "set (expected a database URL such as postgresql://user:pass@host:5432/db)"
        )
    try:
        return RDBStorage(
            url,
            heartbeat_interval=int(sweep.heartbeat_interval),
            grace_period=int(sweep.grace_period),
            engine_kwargs={"pool_pre_ping": True},
        )
    except Exception as exc:  # driver errors vary; the user needs the one line
        first = str(exc).strip().splitlines()[0]
        raise TrackingError(f"study storage ({storage.url_env}) is unreachable: {first}") from None


class FlockJournalLock:
    """The journal's write lock as a kernel file lock (``flock``), released when its holder
    dies.

    Optuna's default lock is a symlink that a killed process leaves behind; every other
    process then waits out its grace period. A sweep killed with SIGKILL while a worker is
    appending (often: the journal is written all the time) would make its restart wait it out.

    A Ctrl-C can cut in between the lock being taken and Optuna's ``try`` that releases it.
    The descriptor is kept before ``flock`` and reused, so the next write of this process
    (Optuna marks the interrupted trial failed) goes on instead of waiting for itself forever.
    One storage uses its lock from one thread at a time (``JournalStorage`` serialises them).
    """

    def __init__(self, journal: Path):
        self.path = Path(f"{journal}.flock")
        self._fd: int | None = None

    def acquire(self) -> bool:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        # Taking a lock this descriptor already holds returns at once.
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return True

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def journal_path(paths: DictConfig, experiment_name: str) -> Path:
    """The experiment's journal file of the local study storage (in ``paths.study_dir``)."""
    return Path(paths.study_dir) / f"{experiment_name}.journal"


def mark_worker(trial: optuna.Trial) -> None:
    """Record which process runs a trial, so a restart can tell a dead one from a live one."""
    trial.set_user_attr(HOST_ATTR, socket.gethostname())
    trial.set_user_attr(PID_ATTR, os.getpid())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_trials(
    study: optuna.Study, all_dead: bool = False, heartbeat: bool = False
) -> list[int]:
    """Mark as FAIL the RUNNING trials whose worker process is gone; return their numbers.

    ``all_dead`` says no process uses the study any more (the caller holds the study's lock
    alone), so every RUNNING trial is dead, even one killed before it recorded its worker.
    Otherwise trials of this host are checked by process id (exact and immediate); trials of
    other hosts are left to the storage's heartbeat (``heartbeat``: PostgreSQL).
    """
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    before = {t.number for t in running}
    if heartbeat:
        optuna.storages.fail_stale_trials(study)
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        attrs = trial.user_attrs
        dead = all_dead or (
            attrs.get(HOST_ATTR) == host and PID_ATTR in attrs and not _alive(int(attrs[PID_ATTR]))
        )
        if dead:
            # A trial that finished meanwhile is left as it is.
            study.tell(trial.number, state=TrialState.FAIL, skip_if_finished=True)
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    return sorted(t.number for t in failed if t.number in before)
