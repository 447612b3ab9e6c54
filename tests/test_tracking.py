"""The tracking store: a new SQLite store from the cached empty schema."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from mlflow.tracking import MlflowClient

from segmentation import tracking


def _connect(args: tuple[str, str, str]) -> str:
    uri, cache, artifacts = args
    client = tracking.connect(uri, cache, artifacts)
    exp = tracking.experiment_id(client, "shared", artifacts)
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "m", 1.0)
    return run.info.run_id


def test_new_store_is_a_copy_of_the_cached_schema(tmp_path: Path):
    cache = tmp_path / "cache"
    first = tmp_path / "one" / "mlflow.db"
    client = tracking.connect(f"sqlite:///{first}", cache, tmp_path / "one" / "artifacts")
    templates = list(cache.glob("mlflow-*-schema.db"))
    assert len(templates) == 1, "the empty schema is cached once per MLflow version"
    assert list(cache.iterdir()) == templates, "no half-built schema left behind"
    assert client.get_experiment("0").artifact_location == str(tmp_path / "one" / "artifacts" / "0")
    # Several processes creating the same new store at once all get one working store.
    second = tmp_path / "two" / "mlflow.db"
    args = (f"sqlite:///{second}", str(cache), str(tmp_path / "two" / "artifacts"))
    with multiprocessing.get_context("fork").Pool(4) as pool:
        run_ids = pool.map(_connect, [args] * 4)
    client = MlflowClient(f"sqlite:///{second}")
    exp = client.get_experiment_by_name("shared")
    assert sorted(r.info.run_id for r in client.search_runs([exp.experiment_id])) == sorted(run_ids)
    assert [p.name for p in second.parent.iterdir() if p.name.startswith(".new-store-")] == []
    assert client.get_experiment("0").artifact_location == str(tmp_path / "two" / "artifacts" / "0")


def test_config_artifact_hides_passwords():
    config = {
        "paths": {"tracking_uri": "postgresql://segments:s3cret@db:5432/mlflow"},
        "list": ["http://u:p@host/x", 3],
        "n": 5,
    }
    clean = tracking.redact_all(config)
    assert clean["paths"]["tracking_uri"] == "postgresql://segments:***@db:5432/mlflow"
    assert clean["list"] == ["http://u:***@host/x", 3]
    assert clean["n"] == 5
    assert "s3cret" not in str(clean)


def test_dataset_input_schema_matches_mlflows_own_inference():
    import warnings

    import mlflow
    import numpy as np
    import pandas as pd

    from segmentation.datasets import LoadedData
    from segmentation.sweep import SCHEMA_SAMPLE_ROWS, dataset_input

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
        expected = mlflow.data.from_pandas(frame, name="test-synthetic")._to_mlflow_entity()
    assert entity.dataset.schema == expected.schema
    assert '"name": "Income", "required": false' in entity.dataset.schema
    assert entity.dataset.digest == expected.digest
    assert entity.dataset.profile == expected.profile
