"""A tracking store created first serves several processes writing at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from mlflow.tracking import MlflowClient

from segmentation.tracking import store as tracking_store


def _log(args: tuple[str, str]) -> str:
    uri, artifacts = args
    client = tracking_store.connect(uri)
    exp = tracking_store.experiment_id(client, "shared", artifacts)
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "m", 1.0)
    return run.info.run_id


def test_a_store_created_first_serves_processes_writing_at_once(tmp_path: Path):
    db = tmp_path / "mlruns" / "mlflow.db"
    uri = f"sqlite:///{db}"
    tracking_store.connect(uri)  # as the sweep does before it starts any other process
    assert db.is_file()
    args = (uri, str(tmp_path / "artifacts"))
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        run_ids = pool.map(_log, [args] * 4)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("shared")
    runs = client.search_runs([exp.experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted(run_ids)
    assert all(r.data.metrics == {"m": 1.0} for r in runs)
