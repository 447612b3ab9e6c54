"""Scale: a 200k-row sweep that logs everything, and artifacts logged inline."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import pytest
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from segmentation.data.mall import INCOME, SPENDING, generate
from segmentation.study.sweep import run_sweep
from segmentation.tracking.model import download_model
from tests.conftest import make_cfg, module_store


@pytest.fixture(scope="module")
def big_sweep(tmp_path_factory):
    with module_store(tmp_path_factory, "scale") as store:
        cfg = make_cfg(
            store,
            "algorithm=[kmeans,gmm]",
            "sweep.n_trials=3",
            "dataset.synthetic_rows=200000",
            "algorithm.kmeans.estimator.minibatch_above=100000",
            "algorithm.gmm.estimator.max_iter=50",
            "sweep.stability.bootstraps=2",
            # Fewer k for the parent's choosing-k curves: the scale of the trials is under test.
            "sweep.constraints.k_max=5",
        )
        yield cfg, run_sweep(cfg)


def test_200k_row_sweep_logs_every_trial_with_sampled_silhouette(big_sweep):
    cfg, result = big_sweep
    client = MlflowClient(str(cfg.paths.tracking_uri))
    children = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    assert len(children) == 3
    assert result.registered_version == "1"
    estimators = set()
    for run in children:
        assert run.data.params["n_rows"] == "200000"
        metrics = run.data.metrics
        for key in ("fit_seconds", "metrics_seconds", "plots_seconds", "logging_seconds"):
            assert metrics[key] > 0, key
        assert metrics["silhouette_sampled"] == 1.0
        assert metrics["silhouette_sample_size"] == 10_000
        plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert plots >= {
            "plots/cluster_scatter.png",
            "plots/segment_sizes.png",
            "plots/silhouette.png",
        }
        assert run.outputs.model_outputs, "every trial's model is logged"
        estimators.add(run.data.params["estimator"])
        if run.data.params["algorithm"] == "kmeans":
            assert run.data.params["estimator"] == "MiniBatchKMeans"
    assert "MiniBatchKMeans" in estimators


def test_logged_model_keeps_a_few_rows_and_scores_every_row(big_sweep):
    cfg, result = big_sweep
    uri = result.best_trial.user_attrs["model_uri"]
    path = str(download_model(uri, str(cfg.paths.tracking_uri), tempfile.mkdtemp()))
    example = Model.load(path).load_input_example(path)
    assert len(example) == int(cfg.tracking.input_example_rows)
    # No file of the model comes near the 200,000 training rows (~10 MB as CSV).
    assert max(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) < 2_000_000
    model = mlflow.pyfunc.load_model(path)
    frame = generate(50_000, seed=3).astype({"CustomerID": str, "Age": float, INCOME: float})
    frame = frame.astype({SPENDING: float})
    predicted = model.predict(frame)
    k = int(result.best_trial.user_attrs["n_clusters"])
    assert predicted["segment"].between(0, k - 1).all() and predicted["persona"].notna().all()
    assert predicted["segment"].nunique() == k


def test_inline_artifacts_log_the_same_plots_and_model(store):
    cfg = make_cfg(store, "algorithm=kmeans", "sweep.n_trials=2", "tracking.artifact_workers=0")
    result = run_sweep(cfg)
    client = MlflowClient(str(cfg.paths.tracking_uri))
    for run in client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    ):
        assert len(client.list_artifacts(run.info.run_id, "plots")) >= 3
        assert run.outputs.model_outputs
        assert "plots_seconds" in run.data.metrics
    assert result.registered_version == "1"
