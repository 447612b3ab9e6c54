"""MLflow's store: connecting to it, experiments, finding a sweep's parent run, registering."""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import os
import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import mlflow
import sqlalchemy
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from segmentation.errors import InputError, TrackingError
from segmentation.tracking.runs import ROLE_TAG, STUDY_TAG


def set_tracking_uri(tracking_uri: str | None) -> None:
    """Point this process's MLflow at a store (``None``: back to MLflow's default), leaving
    ``MLFLOW_TRACKING_URI`` as it was.

    ``mlflow.set_tracking_uri`` also exports the URI to the environment, where the next config
    composed in this process would read it as the user's choice of store.
    """
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


@contextlib.contextmanager
def process_tracking_uri(tracking_uri: str) -> Iterator[None]:
    """This process's MLflow pointed at ``tracking_uri`` for the block, for the few MLflow calls
    that take no store (each caller says which); the URI before is put back after."""
    previous = mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None
    set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        set_tracking_uri(previous)


def connect(tracking_uri: str) -> MlflowClient:
    """A client of the store, which is made sure to answer (a new store's schema created).

    The process-wide tracking URI is left alone: the client is passed on. Call it in one
    process before others use the store: processes creating a new SQLite store at once corrupt
    it. Raises :class:`TrackingError` with one line when the store cannot be reached.
    """
    match = re.match(r"sqlite:///(.+)", tracking_uri)
    if match:
        Path(match.group(1)).parent.mkdir(parents=True, exist_ok=True)
    try:
        if match:
            start_from_template(Path(match.group(1)))
            _checkpoint_at_exit(Path(match.group(1)))
        _probe_database(tracking_uri)
        # A database store connects (and may fail) as soon as the client is made.
        client = MlflowClient(tracking_uri)
        client.search_experiments(max_results=1)
    except Exception as exc:  # any driver or HTTP error means the same thing to the user
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackingError(
            f"tracking store {redact(tracking_uri)} is unreachable: {first}"
        ) from None
    return client


def store_cache_dir() -> Path:
    """Where the empty stores are cached: ``SEGMENTATION_CACHE``, else the user's cache folder."""
    if os.environ.get("SEGMENTATION_CACHE"):
        return Path(os.environ["SEGMENTATION_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "segmentation"


def empty_store_template() -> Path:
    """An empty SQLite store made by MLflow itself (its own schema and Default experiment),
    built once per MLflow version and working directory and cached (see :func:`connect`).

    The working directory is part of the key: MLflow sets the Default experiment's artifact
    location from it, so a copy is the store MLflow would have created here. Built in a
    private temporary folder and renamed into place: builders running at once each make their
    own, and the cache never holds a half-built store.
    """
    place = hashlib.sha256(os.getcwd().encode()).hexdigest()[:12]
    template = store_cache_dir() / f"mlflow-{mlflow.__version__}-{place}-wal.db"
    if template.exists():
        return template
    template.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=".build-", dir=template.parent))
    try:
        db = build / "mlflow.db"
        client = MlflowClient(f"sqlite:///{db}")
        client.search_experiments(max_results=1)  # MLflow creates its schema here
        client.search_registered_models(max_results=1)
        write_ahead_log(db)
        os.replace(db, template)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return template


def write_ahead_log(db: Path) -> None:
    """Switch a SQLite store to write-ahead logging (kept in the file, so its copies have it).

    In SQLite's default rollback mode every commit syncs the database and its journal several
    times and locks out readers; a sweep commits after each of its many small writes, from its
    own and the artifact pool's processes. With the log, a commit is one append and readers
    go on while one process writes. The store then has ``-wal`` and ``-shm`` files beside it
    while it is open (a copy of an open store is made with SQLite's backup, not a file copy).
    """
    with contextlib.closing(sqlite3.connect(db)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


@functools.cache  # once per store and process
def _checkpoint_at_exit(db: Path) -> None:
    """Fold the store's write-ahead log into the database file when this process exits.

    The log is folded when the last connection closes, but a command exits with MLflow's
    connections open; until the next use the newest runs would sit in ``mlflow.db-wal``, and a
    copy of ``mlflow.db`` alone would miss them.
    """
    atexit.register(checkpoint, db)


def checkpoint(db: Path) -> None:
    """Copy the write-ahead log into the database file and empty it (a no-op without a log)."""
    with (
        contextlib.suppress(sqlite3.Error),
        contextlib.closing(sqlite3.connect(db, timeout=1)) as conn,
    ):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def start_from_template(db_path: Path) -> None:
    """A new SQLite store at ``db_path`` as a copy of :func:`empty_store_template` (MLflow's
    schema creation takes seconds; a file copy, milliseconds). An existing store is left as it
    is. The copy is linked into place, which fails if another process made the store
    meanwhile (theirs is as good); where the template cannot be made or linked, MLflow creates
    the store as before."""
    if db_path.exists() or str(db_path) == ":memory:":
        return
    try:
        template = empty_store_template()
    except Exception:  # e.g. no writable cache: MLflow makes the store itself, as before
        return
    fd, copy = tempfile.mkstemp(prefix=".new-store-", suffix=".db", dir=db_path.parent)
    os.close(fd)
    try:
        shutil.copyfile(template, copy)
        os.chmod(copy, 0o644)  # as MLflow's own file (mkstemp makes it private)
        with contextlib.suppress(FileExistsError):
            os.link(copy, db_path)
    except OSError:
        pass  # e.g. a file system without hard links
    finally:
        Path(copy).unlink(missing_ok=True)


DATABASE_URI = r"(postgresql|mysql|mssql)(\+\w+)?://"


def _probe_database(uri: str) -> None:
    """Connect once to a database store: MLflow itself retries for about two minutes."""
    if not re.match(DATABASE_URI, uri):
        return
    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


def given_run(client: MlflowClient, run_id: str) -> Run:
    """The run a user named (``RUN=<id>``); one that the store does not hold is refused."""
    try:
        return client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise InputError(f"run {run_id}: not found in {redact(client.tracking_uri)}") from None


def redact(uri: str) -> str:
    """A URI with any password hidden."""
    return re.sub(r"(://[^:/@]+:)[^@]+@", r"\1***@", uri)


def redact_all(value: Any) -> Any:
    """``value`` (nested dicts and lists) with a password hidden in every string."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_all(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_all(v) for v in value]
    return value


def experiment_id(client: MlflowClient, name: str, artifact_root: str | Path | None) -> str:
    """Id of the named experiment, created with artifacts under ``artifact_root`` if new."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    location = None
    if artifact_root is not None and "://" not in str(artifact_root):
        location = (Path(artifact_root).resolve() / name).as_uri()
    elif artifact_root is not None:
        location = f"{str(artifact_root).rstrip('/')}/{name}"
    try:
        return client.create_experiment(name, artifact_location=location)
    except mlflow.exceptions.MlflowException:
        # Another worker created it first.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def find_sweep_run(
    client: MlflowClient, exp_id: str, value: str, tag: str = STUDY_TAG
) -> Run | None:
    """The latest parent run whose ``tag`` is ``value``: of a study (by default) or of a
    feature space (``SPACE_TAG``); ``None`` if there is none."""
    runs = client.search_runs(
        [exp_id],
        filter_string=f"tags.`{ROLE_TAG}` = 'sweep' and tags.`{tag}` = '{value}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def register_run_model(
    client: MlflowClient,
    model_name: str,
    run_id: str,
    model_uri: str,
    tags: Mapping[str, Any] | None = None,
) -> str:
    """Version of ``model_name`` holding the run's model, registered if it is not yet.

    A run's model is registered once: a rerun (or a promotion of the sweep's best) finds the
    existing version instead of adding a duplicate.
    """
    try:
        for version in client.search_model_versions(f"name = '{model_name}'"):
            if version.run_id == run_id:
                return str(version.version)
    except mlflow.exceptions.MlflowException:
        pass  # the registered model does not exist yet
    clean = {k: str(v) for k, v in (tags or {}).items() if v is not None}
    return register_model(client, model_name, model_uri, tags=clean)


def register_model(
    client: MlflowClient, model_name: str, model_uri: str, tags: Mapping[str, str] | None = None
) -> str:
    """A new version of ``model_name`` (created if missing) holding the LoggedModel
    ``model_uri`` (``models:/<model_id>``) in the client's store."""
    # mlflow.register_model takes no store (nor does MLflow's SQL registry when it reads a
    # models:/ source's LoggedModel): the process-wide URI is the client's for the call.
    with process_tracking_uri(client.tracking_uri):
        return str(mlflow.register_model(model_uri, model_name, tags=dict(tags or {})).version)
