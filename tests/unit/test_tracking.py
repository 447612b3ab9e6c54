"""The tracking store: creating it, experiments, passwords kept out of artifacts."""

from __future__ import annotations

import os

from segmentation.tracking import store as tracking_store


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
    from segmentation.study.run_logging import SCHEMA_SAMPLE_ROWS, dataset_input

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


def test_connect_and_the_scoped_uri_leave_the_process_wide_store_as_it_was(tmp_path, monkeypatch):
    """`connect` hands back a client and leaves MLflow's process-wide URI alone; the few calls
    that need it set it for their block only, and the user's MLFLOW_TRACKING_URI stays."""
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracking_store.set_tracking_uri(None)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = tracking_store.connect(uri)
    assert client.tracking_uri == uri and not mlflow.is_tracking_uri_set()
    with tracking_store.process_tracking_uri(uri):
        assert mlflow.get_tracking_uri() == uri
    assert not mlflow.is_tracking_uri_set()
    user = f"sqlite:///{tmp_path / 'user.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", user)
    with tracking_store.process_tracking_uri(uri):
        assert mlflow.get_tracking_uri() == uri
    assert mlflow.get_tracking_uri() == user
    assert os.environ["MLFLOW_TRACKING_URI"] == user
    tracking_store.set_tracking_uri(None)
