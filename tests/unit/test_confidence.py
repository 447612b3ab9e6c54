"""Confidence per customer and stability per segment."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import AgglomerativeClustering, BisectingKMeans, KMeans
from sklearn.mixture import GaussianMixture

from segmentation.algorithms.dbscan import NearestCoreDBSCAN
from segmentation.algorithms.hdbscan import ReachHDBSCAN
from segmentation.evaluation.confidence import confidence
from segmentation.evaluation.segment_stability import segment_jaccard, stability_summary

CENTRES = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])


def planted_blobs(n_per_blob: int = 150, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.vstack([rng.normal(c, 0.3, size=(n_per_blob, 2)) for c in CENTRES])


MODELS = {
    "kmeans": lambda: KMeans(3, n_init=3, random_state=0),
    "bisecting": lambda: BisectingKMeans(3, random_state=0),
    "gmm": lambda: GaussianMixture(3, random_state=0),
    "dbscan": lambda: NearestCoreDBSCAN(eps=0.4, min_samples=5),
    "hdbscan": lambda: ReachHDBSCAN(min_cluster_size=15),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_centre_is_surer_than_halfway_between_two(name):
    X = planted_blobs()
    model = MODELS[name]().fit(X)
    halfway = (CENTRES[0] + CENTRES[1]) / 2
    at_centre, at_halfway = confidence(model, np.array([CENTRES[0], halfway]))
    assert at_centre > 0.8  # density models: 1 - (distance to the nearest member) / reach
    # A mixture's posterior there is split between two components; the others score about 0.
    assert at_halfway < (0.75 if name == "gmm" else 0.1)
    scores = confidence(model, X)
    assert scores.shape == (len(X),) and scores.min() >= 0.0 and scores.max() <= 1.0
    # Noise, given or predicted, scores 0.
    labels = model.predict(X)
    labels[:10] = -1
    assert (confidence(model, X, labels)[:10] == 0).all()


def test_centroid_confidence_is_one_minus_the_distance_ratio():
    X = planted_blobs()
    model = KMeans(3, n_init=3, random_state=0).fit(X)
    c = model.cluster_centers_
    i, j = model.predict(CENTRES[:2])
    quarter = c[i] + (c[j] - c[i]) / 4  # d1 = L/4, d2 = 3L/4 (the third centre is farther)
    assert confidence(model, quarter[None, :])[0] == pytest.approx(2 / 3)
    # Labelled with the farther centre: that is no confident assignment.
    assert confidence(model, quarter[None, :], np.array([j]))[0] == 0.0
    single = KMeans(1, n_init=1, random_state=0).fit(X)
    np.testing.assert_array_equal(confidence(single, X[:5]), np.ones(5))


def test_mixture_confidence_is_the_posterior_of_the_assigned_component():
    X = planted_blobs()
    model = GaussianMixture(3, random_state=0).fit(X)
    point = np.array([(CENTRES[0] + CENTRES[1]) / 2])
    posterior = model.predict_proba(point)[0]
    assert 0.05 < posterior.max() < 0.95  # a point whose posterior is not all-or-nothing
    assert confidence(model, point)[0] == pytest.approx(posterior.max())
    assert confidence(model, point, np.array([2]))[0] == pytest.approx(posterior[2])


def test_density_confidence_falls_with_the_distance_to_the_segment():
    X = planted_blobs()
    dbscan = NearestCoreDBSCAN(eps=0.4, min_samples=5).fit(X)
    hdbscan = ReachHDBSCAN(min_cluster_size=15).fit(X)
    # The last point sits in another segment: far from the one it is labelled with.
    points = CENTRES[0] + np.array([[0.0, 0.0], [1.1, 0.0], [1.3, 0.0], [2.0, 0.0], [4.0, 0.0]])
    for model, points_of, reach_of in [
        (dbscan, lambda s: dbscan.components_[dbscan.core_labels_ == s], lambda s: dbscan.eps),
        (hdbscan, lambda s: hdbscan.members_[hdbscan.member_labels_ == s], hdbscan.reach_.item),
    ]:
        segment = model.predict(CENTRES[:1])[0]
        own, reach = points_of(segment), reach_of(segment)
        labels = np.full(len(points), segment)
        expected = np.clip(1 - cdist(points, own).min(axis=1) / reach, 0, 1)
        np.testing.assert_allclose(confidence(model, points, labels), expected)
        assert expected[0] > 0.5 and expected[-2] == expected[-1] == 0.0
    # Training members of an HDBSCAN cluster sit on themselves.
    members = hdbscan.labels_ >= 0
    np.testing.assert_array_equal(confidence(hdbscan, X[members]), 1.0)


def test_confidence_refuses_a_model_of_no_known_kind():
    X = planted_blobs(20)
    model = AgglomerativeClustering(3).fit(X)
    with pytest.raises(TypeError, match="AgglomerativeClustering"):
        confidence(model, X, model.labels_)


def planted_blob_and_uniform_square(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    square = rng.uniform(-1, 1, size=(400, 2))
    return np.vstack([square, rng.normal((5, 5), 0.2, size=(150, 2))])


def test_a_planted_segment_is_stable_and_a_cut_through_noise_is_not():
    X = planted_blob_and_uniform_square()
    build = lambda: KMeans(3, n_init=1, random_state=0)  # noqa: E731
    labels = build().fit_predict(X)
    blob = int(labels[-1])
    halves = sorted(set(labels[:400].tolist()))
    assert len(halves) == 2 and blob not in halves  # k=3: the blob and the square cut in two
    ari, jaccard = stability_summary(build, X, labels, bootstraps=10, seed=0)
    assert set(jaccard) == {0, 1, 2}
    assert jaccard[blob] > 0.9
    for half in halves:
        assert jaccard[half] < 0.85 and jaccard[half] < jaccard[blob] - 0.15
    # The same refits give both; the same seed gives the same numbers.
    assert segment_jaccard(build, X, labels, bootstraps=10, seed=0) == jaccard
    assert stability_summary(build, X, labels, bootstraps=10, seed=0) == (ari, jaccard)
    assert 0 < ari < 1


class ColumnClusterer(ClusterMixin, BaseEstimator):
    """Labels each row with its first column: refits whose segments the test chooses."""

    def fit(self, X, y=None):
        self.labels_ = np.asarray(X)[:, 0].astype(int)
        return self

    def predict(self, X):
        return np.asarray(X)[:, 0].astype(int)


@pytest.mark.parametrize("sample_rows", [None, 5])
def test_segment_jaccard_is_clusterboot_on_the_bootstrap_points(sample_rows):
    # The refit's segments (first column) split segment 0 and merge segments 1 and 2, and call
    # two of segment 2's rows noise; original noise (-1) gets no score.
    labels = np.array([0] * 8 + [1] * 6 + [2] * 4 + [-1] * 2)
    refit = np.array([0] * 5 + [3] * 3 + [1] * 6 + [1] * 2 + [-1] * 2 + [1] * 2)
    X = np.c_[refit, np.arange(len(refit))]
    n, bootstraps, seed = len(X), 8, 4
    size = n if sample_rows is None else sample_rows
    rng = np.random.default_rng(seed)
    expected: dict[int, list[float]] = {0: [], 1: [], 2: []}
    for _ in range(bootstraps):
        idx = rng.choice(n, size=size, replace=True)  # the draws are bootstrap_ari's
        for segment, scores in expected.items():
            # Positions in the sample: a row drawn twice counts twice.
            a = {p for p in range(size) if labels[idx[p]] == segment}
            best = 0.0  # a segment not drawn scores 0, as in clusterboot
            for other in set(refit[idx].tolist()) - {-1}:
                b = {p for p in range(size) if refit[idx[p]] == other}
                best = max(best, len(a & b) / len(a | b))
            scores.append(best)
    jaccard = segment_jaccard(
        ColumnClusterer, X, labels, bootstraps=bootstraps, seed=seed, sample_rows=sample_rows
    )
    assert jaccard == pytest.approx({s: np.mean(v) for s, v in expected.items()})
    assert 0.2 < jaccard[1] < 0.95  # the merge shows
    _, same = stability_summary(
        ColumnClusterer, X, labels, bootstraps=bootstraps, seed=seed, sample_rows=sample_rows
    )
    assert same == jaccard


def test_no_bootstraps_give_nan():
    labels = np.array([0, 0, 1, 1, -1])
    X = np.c_[labels, np.arange(5)]
    ari, jaccard = stability_summary(ColumnClusterer, X, labels, bootstraps=0)
    assert np.isnan(ari) and set(jaccard) == {0, 1}
    assert all(np.isnan(v) for v in jaccard.values())
