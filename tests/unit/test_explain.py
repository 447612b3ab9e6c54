"""Segment explanations: distinguishing features, surrogate rules, markdown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segmentation.errors import InputError
from segmentation.segments.explain import (
    distinguishing_features,
    explanations_markdown,
    surrogate_rules,
)


def customers(n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "Age": rng.integers(18, 70, n),
            "Income": rng.integers(15, 140, n),
            "Spending": rng.integers(1, 100, n),
            "Name": [f"c{i}" for i in range(n)],  # not numeric: left out
        }
    )


def test_the_rule_of_a_planted_segment_names_its_feature():
    frame = customers()
    labels = (frame["Income"] > 70).to_numpy().astype(int)
    rules = surrogate_rules(frame, labels)
    assert rules["fidelity"] > 0.9
    high = rules["segments"][1]
    # Integer incomes: 70 splits them as the tree's 70.5 does, with fewer digits.
    assert high["rule"] == "Income > 70"
    assert high["conditions"] == [{"feature": "Income", "lower": 70.0, "upper": None}]
    assert high["precision"] == 1.0 and high["coverage"] == 1.0
    assert high["support"] == int(labels.sum()) and high["predicted"]
    assert rules["segments"][0]["rule"] == "Income <= 70"


def test_rules_merge_bounds_and_report_the_rule_as_written():
    frame = customers()
    age, income = frame["Age"].to_numpy(), frame["Income"].to_numpy()
    labels = np.where(income > 70, 1, 0)
    labels[(income <= 70) & (age > 40) & (age <= 60)] = 2
    middle_rows = np.flatnonzero(labels == 2)
    labels[middle_rows[:4]] = -1  # noise: a class of the tree, never a segment of its own
    rules = surrogate_rules(frame, labels, max_depth=3)
    assert set(rules["segments"]) == {0, 1, 2}
    middle = rules["segments"][2]
    assert middle["rule"] == "Income <= 70 and 40 < Age <= 60"
    chosen = (income <= 70) & (age > 40) & (age <= 60)
    assert middle["precision"] == pytest.approx(np.mean(labels[chosen] == 2))
    assert middle["coverage"] == pytest.approx(np.mean(chosen[labels == 2]))
    assert middle["precision"] < 1.0 and middle["coverage"] == 1.0  # the noise rows in it
    # Segment 0 is two leaves (young, old): the larger is its rule, the other is listed.
    young = rules["segments"][0]
    assert young["rule"] == "Income <= 70 and Age <= 40"
    assert young["other_rules"] == ["Income <= 70 and Age > 60"]
    assert 0.5 < young["coverage"] < 0.9


def test_thresholds_keep_at_most_four_significant_digits():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {"Balance": rng.uniform(0, 100_000, 800), "Visits": rng.uniform(0, 1, 800)}
    )
    labels = (frame["Balance"] > 43_210.987).to_numpy().astype(int)
    rule = surrogate_rules(frame, labels)["segments"][1]
    (condition,) = rule["conditions"]
    lower = condition["lower"]
    assert condition["feature"] == "Balance" and condition["upper"] is None
    assert float(f"{lower:.4g}") == lower
    assert abs(lower - 43_210.987) < 100
    chosen = frame["Balance"].to_numpy() > lower
    assert rule["rule"] == f"Balance > {lower:.0f}"
    assert rule["precision"] == pytest.approx(np.mean(labels[chosen] == 1))
    assert rule["coverage"] == pytest.approx(np.mean(chosen[labels == 1]))


def test_distinguishing_features_put_the_planted_feature_first():
    frame = customers()
    labels = (frame["Income"] > 100).to_numpy().astype(int)
    labels[:4] = -1
    features = distinguishing_features(frame, labels, top=2)
    assert set(features) == {0, 1}
    first = features[1][0]
    income = frame["Income"]
    assert first["feature"] == "Income" and len(features[1]) == 2
    assert first["segment_mean"] == pytest.approx(income[labels == 1].mean())
    assert first["population_mean"] == pytest.approx(income.mean())
    z = (income[labels == 1].mean() - income.mean()) / income.std(ddof=0)
    assert first["z"] == pytest.approx(z) and z > 1.0
    assert first["lift"] == pytest.approx(income[labels == 1].mean() / income.mean())
    assert features[0][0]["feature"] == "Income" and features[0][0]["z"] < 0
    assert all(row["feature"] != "Name" for rows in features.values() for row in rows)


def test_lift_is_none_when_the_population_mean_is_zero():
    frame = pd.DataFrame({"Net": [-1.0, 1.0, -2.0, 2.0], "Flag": [True, False, True, False]})
    features = distinguishing_features(frame, np.array([0, 0, 1, 1]))
    net = next(row for row in features[0] if row["feature"] == "Net")
    assert net["lift"] is None and net["population_mean"] == 0.0
    flag = next(row for row in features[0] if row["feature"] == "Flag")
    assert flag["segment_mean"] == 0.5 and flag["lift"] == pytest.approx(1.0)


def test_markdown_has_a_section_per_segment():
    frame = customers()
    labels = (frame["Income"] > 70).to_numpy().astype(int)
    text = explanations_markdown(
        distinguishing_features(frame, labels),
        surrogate_rules(frame, labels),
        {1: "High earners"},
    )
    assert "## Segment 0\n" in text and "## Segment 1: High earners\n" in text
    assert "Rule: Income > 70 (precision 100.0%, coverage 100.0%)" in text
    section = text.split("## Segment 1")[1]
    assert "| Income |" in section.splitlines()[6]  # the first row of its table
    assert text.startswith("A decision tree of depth 3")


def test_bad_input_is_refused():
    frame = customers(50)
    with pytest.raises(InputError, match="49 segment labels for 50 rows"):
        distinguishing_features(frame, np.zeros(49, dtype=int))
    with pytest.raises(InputError, match="no numeric columns"):
        surrogate_rules(frame[["Name"]], np.zeros(50, dtype=int))
    gaps = frame.astype({"Age": float})
    gaps.loc[3, "Age"] = np.nan
    with pytest.raises(InputError, match=r"missing in \['Age'\]"):
        surrogate_rules(gaps, np.zeros(50, dtype=int))
