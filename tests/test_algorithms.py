"""Algorithms, the DBSCAN predictor, metrics and constraints."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from sklearn.datasets import make_blobs
from sklearn.utils.estimator_checks import check_estimator

from segmentation.algorithms import suggest, trial_params
from segmentation.algorithms.dbscan import NearestCoreDBSCAN
from segmentation.config import compose
from segmentation.metrics import cluster_metrics, constraint_violation
from segmentation.scaling import make_scaler


def test_nearest_core_dbscan_passes_sklearn_checks():
    check_estimator(NearestCoreDBSCAN())


def test_dbscan_predict_returns_core_labels_and_noise():
    X, _ = make_blobs(n_samples=300, centers=3, cluster_std=0.4, random_state=0)
    model = NearestCoreDBSCAN(eps=0.5, min_samples=5).fit(X)
    core = model.core_sample_indices_
    np.testing.assert_array_equal(model.predict(X[core]), model.labels_[core])
    far = X.max(axis=0) + 100
    assert model.predict(far[None, :])[0] == -1


def test_suggest_is_conditional_on_the_algorithm():
    cfg = compose(["algorithm=all"])
    from omegaconf import OmegaConf

    specs = OmegaConf.to_container(cfg.algorithm, resolve=True)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(15):
        trial = study.ask()
        name, params = suggest(trial, specs)
        seen.add(name)
        assert all(k.startswith(f"{name}.") for k in trial.params if k != "algorithm")
        study.tell(trial, 0.0)
        frozen = study.trials[-1]
        assert trial_params(frozen, specs) == params
    assert seen == {"kmeans", "dbscan", "gmm"}


def test_k_range_reaches_the_search_space():
    cfg = compose(["sweep.constraints.k_min=4", "sweep.constraints.k_max=6"])
    assert cfg.algorithm.kmeans.search.n_clusters.low == 4
    assert cfg.algorithm.gmm.search.n_components.high == 6


def test_metrics_leave_noise_out_and_flag_degenerate():
    X, y = make_blobs(n_samples=200, centers=3, cluster_std=0.3, random_state=0)
    metrics, values, labels = cluster_metrics(X, y)
    assert metrics["n_clusters"] == 3 and metrics["silhouette"] > 0.7
    assert len(values) == 200
    y_noise = y.copy()
    y_noise[:190] = -1
    noisy, _, _ = cluster_metrics(X, y_noise)
    assert noisy["noise_fraction"] == pytest.approx(0.95)
    limits = {"k_min": 2, "k_max": 10, "max_noise_fraction": 0.1, "min_segment_fraction": 0.02}
    assert "noise fraction" in constraint_violation(noisy, limits)
    one, _, _ = cluster_metrics(X, np.zeros(200, dtype=int))
    assert constraint_violation(one, limits).startswith("degenerate")
    small = y.copy()
    small[:2] = 3
    tiny, _, _ = cluster_metrics(X, small)
    assert "smallest segment" in constraint_violation(tiny, limits)


def test_silhouette_is_sampled_above_threshold():
    X, y = make_blobs(n_samples=3000, centers=4, random_state=0)
    full, _, _ = cluster_metrics(X, y, sample_above=5000)
    sampled, values, _ = cluster_metrics(X, y, sample_above=1000, sample_size=1500, seed=3)
    assert sampled["silhouette_sampled"] == 1.0 and len(values) == 1500
    assert full["silhouette_sampled"] == 0.0
    assert abs(full["silhouette"] - sampled["silhouette"]) < 0.02


@pytest.mark.parametrize("name", ["standard", "robust", "minmax", "none"])
def test_scalers(name):
    X = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 40.0]])
    out = make_scaler(name).fit_transform(X)
    assert out.shape == X.shape


def test_tracking_uri_env_wins(monkeypatch, tmp_path):
    uri = f"sqlite:///{tmp_path}/other.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert compose([]).paths.tracking_uri == uri
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert compose([]).paths.tracking_uri.endswith("/mlruns/mlflow.db")
