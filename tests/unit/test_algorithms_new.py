"""HDBSCAN with a predict (ReachHDBSCAN) and the bisecting KMeans factory."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.cluster import BisectingKMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.estimator_checks import check_estimator

from segmentation.algorithms import bisecting_kmeans, hdbscan, trial_algorithm
from segmentation.algorithms.hdbscan import ReachHDBSCAN
from segmentation.study.sweep import run_sweep
from tests.conftest import DATA_DIR, make_cfg, real_file

CENTRES = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])


def planted_blobs(n_per_blob: int = 150, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(c, 0.4, size=(n_per_blob, 2)) for c in CENTRES])
    return X, np.repeat(np.arange(len(CENTRES)), n_per_blob)


def test_reach_hdbscan_passes_sklearn_checks():
    check_estimator(ReachHDBSCAN())


def test_reach_hdbscan_gives_members_their_labels_and_far_points_noise():
    X, planted = planted_blobs()
    model = ReachHDBSCAN(min_cluster_size=15).fit(X)
    members = model.labels_ >= 0
    assert members.mean() > 0.9
    assert adjusted_rand_score(planted[members], model.labels_[members]) == 1.0
    np.testing.assert_array_equal(model.predict(X[members]), model.labels_[members])
    np.testing.assert_array_equal(model.member_indices_, np.flatnonzero(members))
    blob_labels = [model.labels_[planted == b][0] for b in range(3)]
    far, midway = [[50.0, 50.0]], [(CENTRES[0] + CENTRES[1]) / 2]
    np.testing.assert_array_equal(model.predict(CENTRES), blob_labels)
    assert model.predict(far)[0] == -1
    assert model.predict(midway)[0] == -1


def test_reach_is_the_largest_member_core_distance():
    X, _ = planted_blobs(60, seed=1)
    model = ReachHDBSCAN(min_cluster_size=10, min_samples=4).fit(X)
    # Core distance: the 4th nearest point, the point itself counted first (brute force).
    core = np.sort(cdist(X, X), axis=1)[:, 3]
    members = model.member_indices_
    np.testing.assert_allclose(model.member_core_distances_, core[members])
    for label in range(len(model.reach_)):
        assert model.reach_[label] == pytest.approx(core[model.labels_ == label].max())
    # A new point just within a member's reach joins its cluster, just beyond it is noise.
    edge = members[np.argmax(X[members, 0])]  # the member farthest right: nothing beyond it
    reach = model.reach_[model.labels_[edge]]
    inside, outside = X[edge] + [0.99 * reach, 0], X[edge] + [1.01 * reach, 0]
    assert model.predict([inside, outside]).tolist() == [model.labels_[edge], -1]


def test_reach_hdbscan_fits_a_seeded_sample_and_scores_every_row():
    X, planted = planted_blobs()
    model = hdbscan.build(random_state=7, n_rows=len(X), sample_rows=120, min_cluster_size=10)
    assert model.get_params()["max_samples"] == 120 and model.random_state == 7
    labels = model.fit_predict(X)
    assert len(model.members_) <= 120 and len(labels) == len(X)
    assert adjusted_rand_score(planted, labels) > 0.95
    np.testing.assert_array_equal(model.predict(X), labels)
    again = hdbscan.build(random_state=7, sample_rows=120, min_cluster_size=10).fit(X)
    np.testing.assert_array_equal(again.member_indices_, model.member_indices_)
    with pytest.raises(ValueError, match="not both"):
        hdbscan.build(sample_rows=10, max_samples=10)


def test_bisecting_kmeans_build_passes_params_and_seed():
    X, planted = planted_blobs()
    model = bisecting_kmeans.build(random_state=3, n_rows=len(X), n_clusters=3)
    assert isinstance(model, BisectingKMeans)
    assert model.n_clusters == 3 and model.random_state == 3
    assert adjusted_rand_score(planted, model.fit_predict(X)) == 1.0


def test_hdbscan_min_cluster_fraction_scales_with_the_rows_fitted():
    assert hdbscan.build(n_rows=200, min_cluster_fraction=0.05).min_cluster_size == 10
    assert hdbscan.build(n_rows=200_000, min_cluster_fraction=0.05).min_cluster_size == 10_000
    # Fitted on a sample: a share of the sample; never below 2.
    sampled = hdbscan.build(n_rows=200_000, sample_rows=1000, min_cluster_fraction=0.05)
    assert sampled.min_cluster_size == 50
    assert hdbscan.build(n_rows=20, min_cluster_fraction=0.02).min_cluster_size == 2
    with pytest.raises(ValueError, match="not both"):
        hdbscan.build(n_rows=200, min_cluster_fraction=0.05, min_cluster_size=5)
    with pytest.raises(ValueError, match="0 < f < 1"):
        hdbscan.build(n_rows=200, min_cluster_fraction=1.5)


def test_hdbscan_default_space_finds_segments_on_the_real_mall_file(store):
    # A 6-trial sweep of the default HDBSCAN space on the real file (it once ended with "no
    # trial met the constraints": a fixed min_cluster_size of 5-60 and min_samples up to 30).
    real_file("Mall_Customers.csv")
    cfg = make_cfg(
        store,
        "experiments=mall_income_spending",
        "algorithm=hdbscan",
        "sweep.n_trials=6",
        "tracking.log_plots=false",
        data_dir=DATA_DIR,
    )
    result = run_sweep(cfg)
    assert result.best_trial is not None and result.registered_version == "1"
    assert trial_algorithm(result.best_trial) == "hdbscan"
    assert result.counts.get("COMPLETE", 0) >= 1  # feasible trials
    assert result.best_trial.params["hdbscan.min_cluster_fraction"] <= 0.14
    assert result.best_trial.value > 0.45
