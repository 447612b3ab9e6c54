"""Scale: sampled silhouette, algorithm limits, and a 200k-row sweep that logs everything."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans, MiniBatchKMeans

from segmentation.algorithms import dbscan, kmeans
from segmentation.errors import InputError
from segmentation.study.sweep import run_sweep
from tests.conftest import make_cfg


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
