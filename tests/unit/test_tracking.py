"""The tracking store: creating it, experiments, passwords kept out of artifacts."""

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


def test_config_artifact_hides_passwords():
    config = {
        "paths": {"tracking_uri": "postgresql://segments:s3cret@db:5432/mlflow"},
        "list": ["http://u:p@host/x", 3],
        "n": 5,
    }
    clean = tracking_store.redact_all(config)
    assert clean["paths"]["tracking_uri"] == "postgresql://segments:***@db:5432/mlflow"
    assert clean["list"] == ["http://u:***@host/x", 3]
    assert clean["n"] == 5
    assert "s3cret" not in str(clean)


def test_dataset_input_schema_matches_mlflows_own_inference():
    import warnings

    import mlflow
    import numpy as np
    import pandas as pd

    from segmentation.data import LoadedData
    from segmentation.study.objective import SCHEMA_SAMPLE_ROWS, dataset_input

    n = SCHEMA_SAMPLE_ROWS + 500
    frame = pd.DataFrame(
        {
            "ID": [str(i) for i in range(n)],
            "Income": np.linspace(1.0, 2.0, n),
            "Kids": np.arange(n) % 3,
        }
    )
    frame.loc[n - 1, "Income"] = np.nan  # missing only beyond the sample the types come from
    data = LoadedData(frame, "test", "synthetic", "none", n)
    entity = dataset_input(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = mlflow.data.from_pandas(frame, name="test-synthetic").to_dict()
    assert entity.dataset.schema == expected["schema"]
    assert '"name": "Income", "required": false' in entity.dataset.schema
    assert entity.dataset.digest == expected["digest"]
    assert entity.dataset.profile == expected["profile"]
