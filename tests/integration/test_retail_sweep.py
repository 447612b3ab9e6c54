"""The retail marketing dataset swept end to end on the real file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient

from segmentation.study.sweep import run_sweep
from segmentation.tracking.model import load_pyfunc
from tests.conftest import make_cfg, real_file
from tests.unit.test_retail import FILE


def test_retail_sweep_end_to_end(store, tmp_path):
    path = real_file(FILE)
    cfg = make_cfg(
        store, "experiments=retail_rfm", "algorithm=kmeans", "sweep.n_trials=3",
        "tracking.log_plots=false",
        data_dir=path.parent,
    )  # fmt: skip
    assert (cfg.sweep.constraints.k_min, cfg.sweep.constraints.k_max) == (4, 6)
    result = run_sweep(cfg)
    client = MlflowClient(str(cfg.paths.tracking_uri))
    parent = client.get_run(result.parent_run_id)
    assert parent.data.metrics["rows_raw"] == 2240
    assert parent.data.metrics["rows_clean"] == 2236
    assert 4 <= parent.data.metrics["best_n_clusters"] <= 6
    paths = {a.path for a in client.list_artifacts(result.parent_run_id, "data")}
    assert paths == {"data/cleaning_report.json", "data/profile.json"}
    folder = Path(client.download_artifacts(result.parent_run_id, "data", str(tmp_path)))
    report = json.loads((folder / "cleaning_report.json").read_text())
    assert [e["rule"] for e in report["cleaning"]][0] == "constant_columns"
    profile = json.loads((folder / "profile.json").read_text())
    assert profile["columns"]["Recency"]["max"] == 99
    # Raw rows of the file score: missing Income, 666666, 1893, Alone, the constant columns.
    name = cfg.tracking.registered_model_name
    model = load_pyfunc(f"models:/{name}/{result.registered_version}", str(cfg.paths.tracking_uri))
    raw = pd.read_csv(path, sep="\t")
    rows = raw.astype({c: "float64" for c in raw.select_dtypes("number").columns})
    out = model.predict(rows)
    assert len(out) == 2240 and out["segment"].dtype == np.int64
    assert out["segment"].nunique() == parent.data.metrics["best_n_clusters"]
