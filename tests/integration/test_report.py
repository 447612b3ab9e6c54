"""One small sweep: the parent run holds EDA, choosing-k and study plots, personas, stability
and a self-contained report; the report escapes text from data."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from segmentation.cli import report_task
from segmentation.segments.describe import Segments
from segmentation.segments.personas import build_personas
from segmentation.segments.profiles import segment_profile
from segmentation.study.sweep import run_sweep
from segmentation.tracking import runs as tags
from segmentation.tracking import store as tracking_store
from segmentation.tracking.reports import build_report
from tests.conftest import make_cfg, module_store


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    with module_store(tmp_path_factory, "report") as store:
        cfg = make_cfg(
            store,
            "sweep.n_trials=4",
            "algorithm=[kmeans,gmm]",
            "features=age_income_spending",
            "sweep.stability.bootstraps=4",
            "sweep.constraints.k_max=6",
        )
        result = run_sweep(cfg)
        yield cfg, result, MlflowClient(str(cfg.paths.tracking_uri))


def _paths(client, run_id, folder=""):
    return {a.path for a in client.list_artifacts(run_id, folder)}


def test_sweep_logs_plots_personas_stability_and_report(swept, tmp_path):
    cfg, result, client = swept
    parent_id = result.parent_run_id
    assert {
        "eda/histograms.png",
        "eda/category_counts.png",
        "eda/correlation.png",
        "eda/pairwise_features.png",
        "eda/box_spending_score__1_100_by_gender.png",
    } <= _paths(client, parent_id, "eda")
    assert {
        "choosing_k/elbow.png",
        "choosing_k/gmm_bic.png",
        "choosing_k/silhouette_vs_k_fits.png",
    } <= _paths(client, parent_id, "choosing_k")
    assert {"study/optuna_history.png", "study/param_importances.png", "study/slice.png"} <= _paths(
        client, parent_id, "study"
    )
    assert {"segments/personas.csv", "segments/personas.json"} <= _paths(
        client, parent_id, "segments"
    )
    parent = client.get_run(parent_id)
    best_run = result.best_trial.user_attrs["mlflow_run_id"]
    best_ari = client.get_run(best_run).data.metrics["stability_ari"]
    assert best_ari >= cfg.sweep.constraints.min_stability
    assert parent.data.metrics["best_stability_ari"] == pytest.approx(best_ari)
    assert {"segments/personas.json", "segments/segment_profile.csv"} <= _paths(
        client, best_run, "segments"
    )
    assert "plots/cluster_scatter_3d.png" in _paths(client, best_run, "plots")
    local = Path(client.download_artifacts(parent_id, "segments/personas.json", str(tmp_path)))
    personas = json.loads(local.read_text())
    names = [p["name"] for p in personas]
    assert len(set(names)) == len(names)
    assert all(p["recommendations"] for p in personas)
    html = Path(client.download_artifacts(parent_id, "report.html", str(tmp_path))).read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "stability_ari" in html and parent_id in html and names[0] in html
    assert html.count("data:image/png;base64,") >= 8
    assert not re.search(r"(src|href)=\"https?://", html)
    # The registered model names the segments with the personas.
    model = mlflow.pyfunc.load_model(
        f"models:/{cfg.tracking.registered_model_name}/{result.registered_version}"
    )
    frame = pd.DataFrame(
        {
            "CustomerID": ["1"],
            "Gender": ["Male"],
            "Age": [30.0],
            "Annual Income (k$)": [90.0],
            "Spending Score (1-100)": [85.0],
        }
    )
    assert model.predict(frame)["persona"][0] in names


def test_report_cli_writes_file_and_personas_on_request(swept, tmp_path):
    cfg, result, client = swept
    out = tmp_path / "report.html"
    cfg = make_cfg(Path(cfg.paths.mlruns_dir), "features=age_income_spending", f"+output={out}")
    assert report_task(cfg) == out and out.stat().st_size > 50_000
    trial_run = next(
        r
        for r in client.search_runs(
            [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
        )
        if r.data.tags["trial_state"] == "COMPLETE"
    )
    cfg = make_cfg(
        Path(cfg.paths.mlruns_dir),
        "features=age_income_spending",
        f"+run_id={trial_run.info.run_id}",
        "+persona_table=true",
    )
    table = report_task(cfg)
    assert table["name"].is_unique
    assert "segments/personas.json" in _paths(client, trial_run.info.run_id, "segments")


def test_report_escapes_text_from_data(swept, tmp_path):
    cfg, _, client = swept
    exp = tracking_store.experiment_id(client, "escape", cfg.paths.artifact_root)
    parent = client.create_run(exp, tags={tags.ROLE_TAG: "sweep"}).info.run_id
    best = client.create_run(exp, tags={tags.ROLE_TAG: "trial"}).info.run_id
    client.set_tag(parent, "best_run_id", best)
    tags.log_batch(client, parent, params={"dataset": "<script>alert(1)</script>"})
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    X = np.column_stack([rng.normal(labels * 5, 1), rng.normal(0, 1, 40)])
    profile = segment_profile(X, labels, ["<script>", "Income & <b>"])
    segments = Segments(labels, profile, build_personas(profile))
    segments.write(tmp_path / "segments")
    client.log_artifacts(parent, str(tmp_path / "segments"), "segments")
    html = build_report(client, parent)
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html and "Income &amp; &lt;b&gt;" in html
