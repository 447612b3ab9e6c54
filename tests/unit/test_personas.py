"""Personas from handmade profiles, unique names, noise, and bootstrap stability."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import make_blobs

from segmentation.algorithms import dbscan, kmeans
from segmentation.config import compose
from segmentation.evaluation.segment_stability import stability_summary
from segmentation.segments.personas import build_personas, persona_names
from segmentation.segments.profiles import segment_profile

INCOME, SPENDING = "Annual Income (k$)", "Spending Score (1-100)"


def bootstrap_ari(build, X, labels, bootstraps, seed, on_sample=False, sample_rows=None):
    return stability_summary(build, X, labels, bootstraps, seed, sample_rows, on_sample)[0]


def _profile(groups: list[tuple[int, float, float]], columns=(INCOME, SPENDING)):
    """Rows per segment: (segment id, income, spending), 30 customers each, a little spread."""
    rng = np.random.default_rng(0)
    X, labels = [], []
    for segment, income, spending in groups:
        X.append(np.column_stack([rng.normal(income, 2, 30), rng.normal(spending, 2, 30)]))
        labels += [segment] * 30
    return segment_profile(np.vstack(X), np.array(labels), list(columns))


def mall_personas():
    return compose(["dataset=mall"]).personas


def test_high_income_low_spending_named_and_recommended():
    profile = _profile([(0, 90, 15), (1, 25, 80), (2, 55, 50), (3, 90, 85), (4, 25, 20)])
    table = build_personas(profile, mall_personas()).set_index("segment")
    # Income and spending: named by the Mall grid, the rule says so.
    assert table.loc[0, "name"] == "Careful"
    assert table.loc[1, "name"] == "Careless"
    assert table.loc[3, "name"] == "Target"
    assert table.loc[2, "name"] == "Standard"
    assert table.loc[4, "name"] == "Sensible"
    assert set(table["naming"]) == {"grid"}
    assert "income high" in table.loc[0, "rule"] and "spending low" in table.loc[0, "rule"]
    assert any("Engagement" in r for r in table.loc[0, "recommendations"])
    assert any("Premium" in r for r in table.loc[3, "recommendations"])
    assert any("Loyalty" in r for r in table.loc[3, "recommendations"])
    assert any("Flash sales" in r for r in table.loc[1, "recommendations"])
    assert any("Value bundles" in r for r in table.loc[4, "recommendations"])
    assert table.loc[0, "profile"][INCOME]["level"] == "high"
    assert "90" in table.loc[0, "description"] or "89" in table.loc[0, "description"]


def test_age_words_and_names_unique():
    # Two segments low on both income and spending, one far lower: names must differ.
    profile = _profile([(0, 20, 10), (1, 30, 35), (2, 80, 60), (3, 85, 70), (4, 60, 55)])
    table = build_personas(profile, mall_personas())
    assert table["name"].is_unique, table["name"].tolist()
    young = segment_profile(
        np.array([[20, 90], [22, 85], [60, 20], [65, 25], [40, 50], [42, 55]], dtype=float),
        np.array([0, 0, 1, 1, 2, 2]),
        ["Age", SPENDING],
    )
    names = build_personas(young, mall_personas()).set_index("segment")["name"]
    assert names[0] == "Young, high spending"
    assert names[1] == "Older, low spending"


def test_identical_segments_get_deterministic_unique_names_and_noise_row():
    profile = _profile([(-1, 55, 50), (0, 90, 15), (1, 90, 15), (2, 20, 80)])
    first = build_personas(profile, mall_personas())
    second = build_personas(profile, mall_personas())
    assert first["name"].tolist() == second["name"].tolist()
    assert first["name"].is_unique
    noise = first.set_index("segment").loc[-1]
    assert noise["name"] == "Unassigned"
    assert -1 not in persona_names(first)
    # Without a persona config names come from the column names.
    generic = build_personas(_profile([(0, 90, 15), (1, 20, 80)]))
    assert generic["name"].tolist()[0] == f"High {INCOME.lower()}, low {SPENDING.lower()}"


def test_stability_high_on_blobs_lower_on_noise():
    def km():
        return kmeans.build(n_clusters=4, n_init=4, random_state=0)

    X, _ = make_blobs(300, centers=4, cluster_std=0.4, center_box=(-10, 10), random_state=1)
    labels = km().fit_predict(X)
    blobs = bootstrap_ari(km, X, labels, bootstraps=5, seed=0)
    noise_X = np.random.default_rng(0).uniform(size=(300, 2))
    noise_labels = km().fit_predict(noise_X)
    noise = bootstrap_ari(km, noise_X, noise_labels, bootstraps=5, seed=0)
    assert blobs > 0.95
    assert noise < blobs - 0.1

    # DBSCAN compares on the bootstrap's own points.
    def db():
        return dbscan.build(eps=0.8, min_samples=5, random_state=0)

    db_labels = db().fit_predict(X)
    assert bootstrap_ari(db, X, db_labels, 3, 0, on_sample=True) > 0.9
    # Seeded: the same number twice.
    assert bootstrap_ari(km, noise_X, noise_labels, 5, 0) == noise
    # Bootstrap samples capped below the data size tell the same story.
    assert bootstrap_ari(km, X, labels, 5, 0, sample_rows=100) > 0.95
    assert bootstrap_ari(km, noise_X, noise_labels, 5, 0, sample_rows=100) < 0.9
