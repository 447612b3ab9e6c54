"""MLflow: the store, experiments, parent and child runs, logged models and the registry."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import logging
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import DatasetInput, InputTag, Metric, Param, Run, RunTag
from mlflow.tracking import MlflowClient

from segmentation.errors import TrackingError

ROLE_TAG = "segmentation.role"
STUDY_TAG = "segmentation.study"
# On a sweep's parent run: the feature space of its study (any data), to find the latest one.
SPACE_TAG = "segmentation.feature_space"
TRIAL_TAG = "segmentation.trial"
MODEL_ID_TAG = "segmentation.model_id"
# On a trial that repeated an earlier trial's parameters: the run whose model it shares.
MODEL_SHARED_TAG = "segmentation.model_shared_with"
DATASET_HASH_TAG = "dataset_hash"

# Passing the requirements skips MLflow's inference, a subprocess of about 2.4 s per model.
_REQUIREMENTS = ("mlflow", "scikit-learn", "pandas", "numpy", "cloudpickle", "threadpoolctl")


def quiet_console() -> None:
    """Keep MLflow's INFO chatter and download bars off the console: a sweep prints its own
    progress lines (the CLI and every worker process call this)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)


def pip_requirements() -> list[str]:
    """Pinned requirements of a logged model (the versions this process runs)."""
    return list(_pinned_requirements())


@functools.cache  # each version lookup parses a package's metadata: once per process
def _pinned_requirements() -> tuple[str, ...]:
    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(name)
    return tuple(out)


def set_tracking_uri(tracking_uri: str) -> None:
    """Point this process's MLflow at a store, leaving ``MLFLOW_TRACKING_URI`` as it was.

    ``mlflow.set_tracking_uri`` also exports the URI to the environment, where the next config
    composed in this process would read it as the user's choice of store.
    """
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(tracking_uri)
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


def connect(
    tracking_uri: str,
    schema_cache: str | Path | None = None,
    artifact_root: str | Path | None = None,
) -> MlflowClient:
    """Point MLflow at the store and make sure it answers (creating a SQLite schema once).

    A new SQLite store is copied from the empty schema cached in ``schema_cache`` (see
    :func:`create_sqlite_store`); without it, MLflow builds the schema itself.
    Raises :class:`TrackingError` with one line when the store cannot be reached.
    """
    match = re.match(r"sqlite:///(.+)", tracking_uri)
    if match:
        db_path = Path(match.group(1))
        db_path.parent.mkdir(parents=True, exist_ok=True)
        if schema_cache is not None and not db_path.exists():
            # An unwritable cache only costs time: MLflow then builds the schema itself.
            with contextlib.suppress(OSError):
                create_sqlite_store(db_path, Path(schema_cache), artifact_root)
    set_tracking_uri(tracking_uri)
    try:
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


def create_sqlite_store(
    db_path: Path, schema_cache: Path, artifact_root: str | Path | None = None
) -> None:
    """Create the SQLite store ``db_path`` as a copy of a cached empty MLflow schema.

    MLflow builds a new store by replaying its whole migration history, about 3 s here; the
    empty schema of one MLflow version never changes, so it is built once per version into
    ``schema_cache`` and copied from then on. The copy is moved into place in one step:
    processes starting together cannot half-create the store (concurrent creation by MLflow
    itself corrupts it). MLflow's ``Default`` experiment gets its artifacts under
    ``artifact_root`` (MLflow would use ``./mlruns`` of whatever directory it ran in).
    """
    import shutil
    import sqlite3
    import tempfile

    template = schema_cache / f"mlflow-{mlflow.__version__}-schema.db"
    if not template.exists():
        schema_cache.mkdir(parents=True, exist_ok=True)
        fd, build = tempfile.mkstemp(suffix=".db", dir=schema_cache)
        os.close(fd)
        os.unlink(build)  # MLflow must find no file, or it takes it for a store
        try:
            MlflowClient(f"sqlite:///{build}").search_experiments(max_results=1)
            os.replace(build, template)
        finally:
            Path(build).unlink(missing_ok=True)
    fd, copy = tempfile.mkstemp(suffix=".db", dir=db_path.parent, prefix=".new-store-")
    os.close(fd)
    try:
        shutil.copyfile(template, copy)
        os.chmod(copy, 0o644)
        root = str(artifact_root or db_path.parent)
        location = f"{root.rstrip('/')}/0" if "://" in root else str(Path(root).resolve() / "0")
        with sqlite3.connect(copy) as conn:
            conn.execute(
                "UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0", (location,)
            )
        conn.close()
        # Fails if another process made the store meanwhile: theirs is as good.
        with contextlib.suppress(FileExistsError):
            os.link(copy, db_path)
    finally:
        Path(copy).unlink(missing_ok=True)


DATABASE_URI = r"(postgresql|mysql|mssql)(\+\w+)?://"


def import_store_code(tracking_uri: str) -> None:
    """Import MLflow's database store now when ``tracking_uri`` is a database (1.1 s): the
    processes forked next start with it, where each would import it again."""
    if tracking_uri.startswith("sqlite:") or re.match(DATABASE_URI, tracking_uri):
        import mlflow.store.tracking.sqlalchemy_store  # noqa: F401


def _probe_database(uri: str) -> None:
    """Connect once to a database store: MLflow itself retries for about two minutes."""
    if not re.match(DATABASE_URI, uri):
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(uri)
    try:
        with engine.connect():
            pass
    finally:
        engine.dispose()


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
    return str(mlflow.register_model(model_uri, model_name, tags=clean).version)


def log_batch(
    client: MlflowClient,
    run_id: str,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, Any] | None = None,
    model_id: str | None = None,
) -> None:
    """Params, metrics and tags in one request (far cheaper than one call each); with
    ``model_id``, the metrics are the logged model's too."""
    import math
    import time

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        params=[Param(k, _param_value(v)) for k, v in (params or {}).items()],
        metrics=[
            Metric(k, float(v), now, 0, model_id=model_id)
            for k, v in (metrics or {}).items()
            if v is not None and not (isinstance(v, float) and math.isnan(v))
        ],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
    )


def dataset_input(dataset: Any, context: str = "training") -> DatasetInput:
    """An MLflow dataset as a run input (shown in the UI's Datasets column).

    Build it once per sweep: its schema and profile are computed from the whole frame (about
    2.5 s at 200,000 rows), and every trial logs the same input.
    """
    tags = [InputTag("mlflow.data.context", context)]
    return DatasetInput(dataset._to_mlflow_entity(), tags=tags)


def log_dataset(client: MlflowClient, run_id: str, entity: DatasetInput) -> None:
    """Record the dataset (see :func:`dataset_input`) as the run's input."""
    client.log_inputs(run_id, datasets=[entity])


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    """Flatten nested mappings into dotted keys (the UI's compare view needs flat params)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(flatten(f"{prefix}.{key}" if prefix else str(key), sub))
        return out
    return {prefix: value}


def python_version() -> str:
    return ".".join(map(str, sys.version_info[:3]))
