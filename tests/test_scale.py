"""Scale: sampled silhouette, algorithm limits, and a 200k-row sweep that logs everything."""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.models import Model
from mlflow.tracking import MlflowClient
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

from segmentation.algorithms import dbscan, kmeans
from segmentation.data.mall import INCOME, SPENDING, generate
from segmentation.errors import InputError
from segmentation.evaluation.metrics import cluster_metrics
from segmentation.study.sweep import run_sweep
from tests.conftest import make_cfg, module_store


def test_sampled_silhouette_within_0005_of_full_on_20k_rows():
    frame = generate(20_000, seed=7)
    X = StandardScaler().fit_transform(frame[[INCOME, SPENDING]].to_numpy(float))
    labels = KMeans(n_clusters=5, n_init=1, random_state=0).fit_predict(X)
    metrics, values, _ = cluster_metrics(
        X, labels, sample_above=10_000, sample_size=10_000, seed=42
    )
    assert metrics["silhouette_sampled"] == 1.0
    assert metrics["silhouette_sample_size"] == 10_000
    assert len(values) == 10_000
    assert abs(metrics["silhouette"] - silhouette_score(X, labels)) <= 0.005


def test_dbscan_above_row_limit_refused_in_one_line_before_anything_is_written(store):
    cfg = make_cfg(
        store,
        "algorithm=all",
        "dataset.synthetic_rows=2000",
        "algorithm.dbscan.max_rows=1000",
    )
    with pytest.raises(InputError) as err:
        run_sweep(cfg)
    message = str(err.value)
    assert "\n" not in message
    assert "2000 rows exceed algorithm.dbscan.max_rows=1000" in message
    assert "algorithm=[kmeans,gmm]" in message and "sample_rows" in message
    assert list(store.iterdir()) == [], "nothing may be written before the refusal"


def test_dbscan_on_a_sample_still_labels_every_row():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(c, 0.2, size=(1500, 2)) for c in (0.0, 3.0)])
    model = dbscan.build(
        eps=0.3, min_samples=5, sample_rows=600, random_state=1, n_rows=len(X)
    ).fit(X)
    np.testing.assert_array_equal(model.labels_, model.predict(X))
    assert set(np.unique(model.labels_)) - {-1} == {0, 1}
    # Every row is labelled: the two blobs of 1,500 rows each, a few stragglers as noise.
    assert (model.labels_[:1500] == model.labels_[0]).mean() > 0.99
    assert (model.labels_[1500:] == model.labels_[-1]).mean() > 0.99
    core = model.core_sample_indices_
    # The core samples are rows of the 600-row sample, and get their fitted labels back.
    assert len(core) <= 600
    np.testing.assert_array_equal(model.predict(X[core]), model.core_labels_)


def test_kmeans_switches_to_minibatch_above_the_configured_size():
    params = {"n_clusters": 3, "n_init": 1, "minibatch_above": 1000}
    assert isinstance(kmeans.build(**params, random_state=0, n_rows=1000), KMeans)
    assert isinstance(kmeans.build(**params, random_state=0, n_rows=1001), MiniBatchKMeans)


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_logged_model_keeps_a_few_rows_and_scores_every_row(big_sweep):
    cfg, result = big_sweep
    uri = result.best_trial.user_attrs["model_uri"]
    path = mlflow.artifacts.download_artifacts(uri, tracking_uri=str(cfg.paths.tracking_uri))
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
