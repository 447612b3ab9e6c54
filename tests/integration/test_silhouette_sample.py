"""The sampled silhouette of 20,000 rows against the full one."""

from __future__ import annotations

from sklearn.cluster import KMeans
from sklearn.metrics import silhouette_score
from sklearn.preprocessing import StandardScaler

from segmentation.data.mall import INCOME, SPENDING, generate
from segmentation.evaluation.metrics import cluster_metrics


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
