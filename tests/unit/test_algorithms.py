"""Algorithms, the DBSCAN predictor, metrics and constraints."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_samples
from sklearn.mixture import GaussianMixture
from sklearn.utils.estimator_checks import check_estimator

from segmentation.algorithms import gmm, suggest, trial_params
from segmentation.algorithms.dbscan import NearestCoreDBSCAN
from segmentation.config import compose
from segmentation.evaluation.constraints import constraint_violation
from segmentation.evaluation.metrics import cluster_metrics, model_metrics, silhouette_values
from segmentation.features.scaling import make_scaler


def test_nearest_core_dbscan_passes_sklearn_checks():
    check_estimator(NearestCoreDBSCAN())


@pytest.mark.parametrize("init_sample_size", [None, 20])
def test_sample_init_gaussian_mixture_passes_sklearn_checks(init_sample_size):
    check_estimator(gmm.SampleInitGaussianMixture(init_sample_size=init_sample_size))


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_gmm_started_from_a_sample_reaches_the_full_fit(covariance_type):
    X, _ = make_blobs(n_samples=4000, centers=4, cluster_std=0.8, random_state=3)
    full = GaussianMixture(4, covariance_type=covariance_type, random_state=0).fit(X)
    model = gmm.build(
        n_components=4, covariance_type=covariance_type, init_sample_size=500, random_state=0
    )
    labels = model.fit_predict(X)
    np.testing.assert_array_equal(labels, model.predict(X))
    assert model.score(X) == pytest.approx(full.score(X), abs=1e-3)
    assert 1 <= model.n_iter_ <= 5  # EM on all rows ran, from near the optimum
    below = gmm.build(n_components=4, init_sample_size=len(X), random_state=0).fit(X)
    np.testing.assert_allclose(below.means_, GaussianMixture(4, random_state=0).fit(X).means_)
    metrics = model_metrics(model, X)
    assert metrics["bic"] == pytest.approx(model.bic(X))
    assert metrics["aic"] == pytest.approx(model.aic(X))


def test_silhouette_values_match_sklearn():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(700, 3))
    labels = rng.integers(0, 4, len(X))
    labels[0] = 9  # a point alone in its cluster scores 0
    X[1] = X[2]  # duplicate points: zero distances
    np.testing.assert_allclose(
        silhouette_values(X, labels), silhouette_samples(X, labels), atol=1e-12
    )
    with pytest.raises(ValueError, match="2 to n_samples - 1 labels"):
        silhouette_values(X, np.zeros(len(X), dtype=int))


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
    for _ in range(30):
        trial = study.ask()
        name, params = suggest(trial, specs)
        seen.add(name)
        assert all(k.startswith(f"{name}.") for k in trial.params if k != "algorithm")
        study.tell(trial, 0.0)
        frozen = study.trials[-1]
        assert trial_params(frozen, specs) == params
    assert seen == {"kmeans", "bisecting_kmeans", "gmm", "dbscan", "hdbscan"}


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


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("standard", [[-1.22474487, -1.06904497], [0.0, -0.26726124], [1.22474487, 1.33630621]]),
        ("robust", [[-1.0, -0.66666667], [0.0, 0.0], [1.0, 1.33333333]]),
        ("minmax", [[0.0, 0.0], [0.5, 1 / 3], [1.0, 1.0]]),
        ("none", [[1.0, 10.0], [2.0, 20.0], [3.0, 40.0]]),
    ],
)
def test_scalers_are_built_from_the_scaling_group(name, expected):
    X = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 40.0]])
    out = make_scaler(compose([f"scaling={name}"]).scaling).fit_transform(X)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_tracking_uri_env_wins(monkeypatch, tmp_path):
    uri = f"sqlite:///{tmp_path}/other.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    assert compose([]).paths.tracking_uri == uri
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert compose([]).paths.tracking_uri.endswith("/mlruns/mlflow.db")
