"""A new SQLite store starts as a copy of an empty store MLflow itself made once and cached: the
copy serves runs, logged models and the registry, several processes starting it at once get
one working store, and an existing store is never replaced."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from segmentation.tracking import store as tracking_store
from tests.integration.test_store_processes import _log


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SEGMENTATION_CACHE", str(folder))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return folder


def test_the_empty_store_is_made_once_and_copied(cache: Path, tmp_path: Path):
    first = tmp_path / "one" / "mlflow.db"
    tracking_store.connect(f"sqlite:///{first}")
    templates = list(cache.iterdir())
    assert [p.name for p in templates] == [tracking_store.empty_store_template().name]
    assert templates[0].name.startswith(f"mlflow-{mlflow.__version__}-")
    built = templates[0].stat().st_mtime_ns
    second = tmp_path / "two" / "mlflow.db"
    tracking_store.connect(f"sqlite:///{second}")
    assert list(cache.iterdir()) == templates, "no second template, no build folder left"
    assert templates[0].stat().st_mtime_ns == built, "the cached store is not rebuilt"
    assert second.read_bytes() == templates[0].read_bytes(), "the new store is the copy"
    # The open store's write-ahead log beside it, no temporary copy left.
    assert sorted(p.name for p in second.parent.iterdir()) == [
        "mlflow.db",
        "mlflow.db-shm",
        "mlflow.db-wal",
    ]
    with contextlib.closing(sqlite3.connect(second)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    # The Default experiment where MLflow itself puts it, run from this working directory.
    default = MlflowClient(f"sqlite:///{second}").get_experiment("0")
    assert default.name == "Default"
    assert default.artifact_location == str(Path.cwd() / "mlruns" / "0")


def test_a_copied_store_serves_runs_models_and_the_registry(cache: Path, tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    client = tracking_store.connect(uri)
    assert any(cache.iterdir())
    exp = tracking_store.experiment_id(client, "copied", tmp_path / "artifacts")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "silhouette", 0.55)
    model = client.create_logged_model(exp, name="m", source_run_id=run.info.run_id)
    client.set_terminated(run.info.run_id)
    version = tracking_store.register_run_model(
        client, "copied-segments", run.info.run_id, f"models:/{model.model_id}", {"k": 5}
    )
    client.set_registered_model_alias("copied-segments", "champion", version)
    again = MlflowClient(uri)
    champion = again.get_model_version_by_alias("copied-segments", "champion")
    assert (str(champion.version), champion.run_id, champion.tags) == (
        "1",
        run.info.run_id,
        {"k": "5"},
    )
    assert again.get_run(run.info.run_id).data.metrics == {"silhouette": 0.55}


def test_processes_starting_the_same_new_store_at_once_share_one(cache: Path, tmp_path: Path):
    tracking_store.empty_store_template()  # as the first sweep on this machine leaves it
    db = tmp_path / "new" / "mlflow.db"
    db.parent.mkdir()
    args = (f"sqlite:///{db}", str(tmp_path / "artifacts"))
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        run_ids = pool.map(_log, [args] * 3)
    client = MlflowClient(args[0])
    exp = client.get_experiment_by_name("shared")
    assert sorted(r.info.run_id for r in client.search_runs([exp.experiment_id])) == sorted(run_ids)
    left = sorted(p.name for p in db.parent.iterdir())
    assert left == ["mlflow.db", "mlflow.db-shm", "mlflow.db-wal"], "no copy left behind"


def test_an_existing_store_is_kept(cache: Path, tmp_path: Path):
    uri = f"sqlite:///{tmp_path / 'kept' / 'mlflow.db'}"
    client = tracking_store.connect(uri)
    exp = tracking_store.experiment_id(client, "kept", tmp_path / "artifacts")
    run_id = client.create_run(exp).info.run_id
    tracking_store.connect(uri)
    assert MlflowClient(uri).get_run(run_id).info.experiment_id == exp


def test_without_a_writable_cache_mlflow_makes_the_store(tmp_path: Path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("SEGMENTATION_CACHE", str(blocked / "cache"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'plain' / 'mlflow.db'}"
    client = tracking_store.connect(uri)
    assert client.get_experiment("0").name == "Default"
    assert os.listdir(tmp_path / "plain") == ["mlflow.db"]


def test_a_command_leaves_every_run_in_the_database_file(cache: Path, tmp_path: Path):
    store = tmp_path / "store"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from segmentation.cli import sweep_main; sweep_main()",
            f"paths.mlruns_dir={store}",
            f"paths.data_dir={tmp_path / 'no-data'}",
            f"paths.reports_dir={tmp_path / 'reports'}",
            f"hydra.run.dir={tmp_path / 'hydra'}",
            "sweep.n_trials=2",
            "sweep.stability.bootstraps=0",
            "sweep.constraints.min_stability=null",
            "tracking.log_plots=false",
            "tracking.log_models=false",
            "tracking.register_model=false",
        ],
        capture_output=True,
        check=True,
        env={**os.environ, "SEGMENTATION_CACHE": str(cache)},
    )
    # The command exits with MLflow's connections open; its log was folded in at exit.
    log = store / "mlflow.db-wal"
    assert not log.exists() or log.stat().st_size == 0
    alone = tmp_path / "copy" / "mlflow.db"
    alone.parent.mkdir()
    shutil.copyfile(store / "mlflow.db", alone)  # the database file alone, as a backup copies it
    client = MlflowClient(f"sqlite:///{alone}")
    exp = client.get_experiment_by_name("mall_income_spending")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.data.tags["segmentation.role"] for r in runs) == ["sweep", "trial", "trial"]
    assert {r.info.status for r in runs} == {"FINISHED"}
