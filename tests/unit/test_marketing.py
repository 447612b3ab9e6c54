"""Segments a marketer recognises: convention names (RF(M) table, Mall grid) with their rule,
recommendations for every preset, the segment value table and escaping in the HTML templates."""

from __future__ import annotations

import json
import math
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm
from sklearn.cluster import KMeans

from segmentation.config import compose, group_options
from segmentation.features.space import SpaceConfig, prepare_space
from segmentation.monitoring.drift import drift_html
from segmentation.promotion.alignment import migration_html
from segmentation.reports import number, render
from segmentation.segments.describe import describe_frame, describe_segments, value_section
from segmentation.segments.personas import (
    build_personas,
    levels,
    persona_config,
    quintile_score,
    recommendations,
    rfm_row,
)
from segmentation.segments.profiles import segment_profile
from segmentation.segments.report import render_report
from segmentation.segments.value import value_table, wilson_interval

RFM = ["Recency", "Frequency", "Monetary"]
INCOME, SPENDING = "Annual Income (k$)", "Spending Score (1-100)"


def personas_of(dataset: str) -> dict:
    return persona_config(compose([f"dataset={dataset}"]).personas)


def test_quintile_scores_reverse_recency():
    cuts = [20.0, 40.0, 60.0, 80.0]
    assert [quintile_score(v, cuts) for v in (5, 20, 21, 50, 79, 81, 99)] == [1, 1, 2, 3, 4, 5, 5]
    assert [quintile_score(v, cuts, reverse=True) for v in (5, 50, 99)] == [5, 3, 1]


def test_rfm_table_covers_every_score_and_every_name():
    table = personas_of("retail_marketing")["naming"]["rfm"]["table"]
    hits: dict[str, int] = {}
    for r in range(1, 6):
        for fm in range(1, 6):
            row = rfm_row({"R": r, "FM": fm}, table)
            lo_r, hi_r = row["r"]
            lo_fm, hi_fm = row["fm"]
            # An exact match, never the nearest-row fallback: the table has no gap.
            assert lo_r <= r <= hi_r and lo_fm <= fm <= hi_fm, (r, fm, row["name"])
            hits[row["name"]] = hits.get(row["name"], 0) + 1
    assert set(hits) == {
        "Champions",
        "Loyal",
        "Potential Loyalists",
        "New",
        "Promising",
        "Need Attention",
        "About to Sleep",
        "At Risk",
        "Can't Lose Them",
        "Hibernating",
        "Lost",
    }
    assert rfm_row({"R": 5, "FM": 5}, table)["name"] == "Champions"
    assert rfm_row({"R": 4, "FM": 4}, table)["name"] == "Champions"
    assert rfm_row({"R": 3, "FM": 5}, table)["name"] == "Loyal"
    assert rfm_row({"R": 1, "FM": 1}, table)["name"] == "Lost"
    assert rfm_row({"R": 2, "FM": 1}, table)["name"] == "Hibernating"
    assert rfm_row({"R": 1, "FM": 5}, table)["name"] == "Can't Lose Them"


def test_rfm_centres_named_from_their_scores():
    # Customers spread evenly over 0..99 on each column: quintile cuts near 20, 40, 60, 80.
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 100, (2000, 3))
    labels = np.arange(2000) % 6
    # Centres (Recency, Frequency, Monetary): a low recency is a recent purchase.
    centres = np.array(
        [
            [5, 95, 90],  # R5 F5 M5 -> Champions
            [95, 95, 95],  # R1 FM5 -> Can't Lose Them
            [5, 5, 5],  # R5 FM1 -> New
            [95, 5, 5],  # R1 FM1 -> Lost
            [50, 50, 50],  # R3 FM3 -> Need Attention
            [70, 30, 70],  # R2 F2 M4 -> FM 3 -> At Risk
        ]
    )
    profile = segment_profile(X, labels, RFM, centres)
    cuts = profile.attrs["quintiles"]["Recency"]
    assert cuts == pytest.approx(np.quantile(X[:, 0], [0.2, 0.4, 0.6, 0.8]))
    table = build_personas(profile, personas_of("retail_marketing")).set_index("segment")
    assert table["name"].tolist() == [
        "Champions",
        "Can't Lose Them",
        "New",
        "Lost",
        "Need Attention",
        "At Risk",
    ]
    assert set(table["naming"]) == {"rfm"}
    assert "RFM R2 F2 M4, FM 3" in table.loc[5, "rule"]
    assert "table row At Risk (R 1-2, FM 3-4)" in table.loc[5, "rule"]
    # The convention row's recommendations come first.
    assert table.loc[0, "recommendations"][0].startswith("Reward them")
    assert table.loc[3, "recommendations"][0].startswith("Revive")


def test_rfm_clash_gets_a_trait_in_brackets():
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 100, (1000, 3))
    labels = np.arange(1000) % 2
    centres = np.array([[5, 95, 90], [8, 99, 99]])  # both Champions
    table = build_personas(
        segment_profile(X, labels, RFM, centres), personas_of("retail_marketing")
    )
    names = table["name"].tolist()
    assert len(set(names)) == 2 and all(n.startswith("Champions") for n in names)


def _grid_profile(groups):
    rng = np.random.default_rng(0)
    X, labels = [], []
    for segment, income, spending in groups:
        X.append(np.column_stack([rng.normal(income, 2, 30), rng.normal(spending, 2, 30)]))
        labels += [segment] * 30
    return segment_profile(np.vstack(X), np.array(labels), [INCOME, SPENDING])


def test_income_spending_grid_and_its_gaps():
    profile = _grid_profile([(0, 90, 90), (1, 90, 10), (2, 55, 50), (3, 20, 90), (4, 20, 10)])
    table = build_personas(profile, personas_of("mall")).set_index("segment")
    assert table["name"].tolist() == ["Target", "Careful", "Standard", "Careless", "Sensible"]
    assert set(table["naming"]) == {"grid"}
    assert table.loc[0, "rule"].startswith("income x spending grid: income high (z +")
    assert table.loc[0, "recommendations"][0].startswith("Premium products")
    # High income with average spending is no cell of the grid: named by its traits.
    gap = _grid_profile([(0, 90, 50), (1, 20, 50), (2, 55, 50)])
    named = build_personas(gap, personas_of("mall")).set_index("segment")
    assert named.loc[0, "name"] == "High income" and named.loc[0, "naming"] == "traits"
    assert named.loc[0, "rule"].startswith("traits: income high (z +")


def test_every_preset_feature_has_recommendations_high_and_low():
    for preset in group_options("experiments"):
        cfg = compose([f"experiments={preset}"])
        settings = persona_config(cfg.personas)
        for column in cfg.features.columns:
            for level in ("high", "low"):
                lv = {c: "average" for c in cfg.features.columns} | {column: level}
                recs = recommendations(lv, settings)
                assert recs and recs != list(settings["default"]), (preset, column, level)


@pytest.mark.parametrize("preset", group_options("experiments"))
def test_presets_on_synthetic_data_named_and_recommended(preset, tmp_path):
    cfg = compose([f"experiments={preset}", f"paths.data_dir={tmp_path}"])
    space = prepare_space(SpaceConfig.of(cfg))
    assert space.data.source == "synthetic"
    km = KMeans(5, n_init=2, random_state=0).fit(space.X)
    segments = describe_segments(cfg.get("personas"), space, km.labels_, km)
    settings = persona_config(cfg.personas)
    for row in segments.personas.itertuples():
        levels_ = {c: v["level"] for c, v in row.profile.items()}
        truly_average = set(levels_.values()) == {"average"}
        assert row.recommendations, (preset, row.name)
        if not truly_average:
            assert row.recommendations != list(settings["default"]), (preset, row.name)
        assert row.rule and row.naming in {"rfm", "grid", "traits"}
        assert "e+" not in row.description, row.description
    expected = {"retail_rfm": "rfm", "mall_income_spending": "grid"}.get(preset)
    if expected:
        assert set(segments.personas["naming"]) == {expected}
    # The value table counts every customer once and sums the spend column.
    value = segments.value
    assert value["customers"].sum() == space.n_rows
    spend = persona_config(cfg.personas)["value"]["spend"]
    assert value["total_spend"].sum() == pytest.approx(space.engineered[spend].sum())
    attributes = segments.attributes
    columns = {a["attribute"] for g in attributes["groups"] for a in g["attributes"]}
    if cfg.dataset.name == "retail_marketing":
        wanted = {"Income", "Age", "Children", "NumWebPurchases", "MntWines", "AcceptedCmp3"}
        assert wanted | {"Response"} <= columns
    else:
        assert {"Age", INCOME, SPENDING, "Gender_Male"} <= columns


def _hand_wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    z = norm.ppf(0.5 + confidence / 2)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(0, 20), (3, 40), (67, 277), (40, 40)])
def test_wilson_interval_against_the_formula(k, n):
    assert wilson_interval(k, n) == pytest.approx(_hand_wilson(k, n), abs=1e-12)
    # Textbook value (Newcombe 1998, 81/263): 0.2553 to 0.3662.
    low, high = wilson_interval(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)


def test_value_table_against_a_hand_computation():
    frame = pd.DataFrame(
        {
            "MntTotal": [100, 300, 200, 50, 50, 1000, 0],
            "Response": [1, 0, 0, 1, 0, 1, 0],
        }
    )
    labels = np.array([0, 0, 0, 1, 1, 2, -1])
    table = value_table(frame, labels, {0: "A", 1: "B", 2: "C"}, "MntTotal", "Response")
    t = table.set_index("segment")
    assert t["customers"].tolist() == [1, 3, 2, 1]
    assert t.loc[0, "total_spend"] == 600 and t.loc[0, "mean_spend"] == 200
    assert t.loc[0, "spend_share"] == pytest.approx(600 / 1700)
    assert t.loc[1, "response_rate"] == pytest.approx(0.5) and t.loc[1, "responders"] == 1
    assert (t.loc[0, "response_low"], t.loc[0, "response_high"]) == pytest.approx(
        _hand_wilson(1, 3)
    )
    # Priority: customers x mean spend x response rate = 600/3, 100/2, 1000/1.
    assert t.loc[0, "priority_score"] == pytest.approx(3 * 200 * (1 / 3))
    assert t.loc[1, "priority_score"] == pytest.approx(2 * 50 * 0.5)
    assert t.loc[2, "priority_score"] == pytest.approx(1000)
    assert [t.loc[s, "priority"] for s in (2, 0, 1)] == [1, 2, 3]
    assert pd.isna(t.loc[-1, "priority"]) and t.loc[-1, "persona"] == "Unassigned"
    # No response column (Mall): the response columns stay empty, priority is size x spend.
    mall = value_table(frame, labels, {}, "MntTotal", None).set_index("segment")
    assert mall["response_rate"].isna().all()
    assert mall.loc[0, "priority_score"] == pytest.approx(600)


def test_numbers_for_people():
    assert number(1180.4) == "1,180"
    assert number(1.18e3, "over 2 years") == "1,180 over 2 years"
    assert number(12.345) == "12.3"
    assert number(0.4567) == "0.46"
    assert number(3.0) == "3"
    assert number(53941.2) == "53,941"
    assert number(0.2345, percent=True) == "23%"
    assert number(0.045, percent=True) == "4.5%"
    assert number(float("nan")) == "-"


def _run(params, run_id="r1"):
    data = types.SimpleNamespace(params=params, metrics={"best_silhouette": 0.5}, tags={})
    return types.SimpleNamespace(data=data, info=types.SimpleNamespace(run_id=run_id))


def test_sweep_report_escapes_values_from_the_run(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    evil = "<img src=x onerror=alert(1)>"
    X = np.column_stack([rng.normal(labels * 5, 1), rng.normal(0, 1, 40)])
    profile = segment_profile(X, labels, [evil, "Income & Co"])
    frame = pd.DataFrame({"MntTotal": np.arange(40.0), "Response": labels, evil: X[:, 0]})
    cfg = {
        "value": {"spend": "MntTotal", "response": "Response", "spend_label": "spend <2y>"},
        "attributes": {"Group <x>": [evil, "MntTotal"]},
    }
    segments = describe_frame(cfg, profile, labels, frame)
    segments.write(tmp_path / "parent" / "segments")
    value = json.loads((tmp_path / "parent" / "segments" / "value.json").read_text())
    assert value["segments"][1]["response_rate"] == 1.0
    html = render_report(
        _run({"dataset": "<script>x</script>"}), None, tmp_path / "parent", tmp_path
    )
    assert "<script>" not in html and "<img src=x" not in html
    assert "&lt;script&gt;x&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "Income &amp; Co" in html and "Group &lt;x&gt;" in html and "spend &lt;2y&gt;" in html
    # The value table: the Wilson interval of segment 1 (20 of 20 responded), its spend.
    low, _ = _hand_wilson(20, 20)
    assert f"100.0% ({low:.1%}&#8209;100.0%)" in html
    assert ">590<" in html  # total spend of segment 1: 20 + ... + 39
    # The version description's markdown carries the same table.
    section = value_section(segments)
    assert section[0] == "**Segment value**" and "| 1 |" in section[1]


def test_drift_and_migration_pages_escape():
    report = {
        "over_threshold": True,
        "reasons": ["<b>bold</b>"],
        "warnings": [],
        "n_rows": 10,
        "n_rows_training": 20,
        "thresholds": {"psi_warn": 0.1, "psi_drift": 0.25, "p_value": 0.01},
        "features": [],
        "skipped_features": ["<i>"],
        "segments": {
            "psi": 0.3,
            "status": "drift",
            "chi2_statistic": 1.0,
            "chi2_p_value": 0.5,
            "segments": [],
        },
        "low_confidence": None,
    }
    page = render("drift.html", title="Drift <t>", r=report, segment_status=[])
    assert "<b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page and "&lt;i&gt;" in page
    assert drift_html(report, "Drift <t>") == page
    migration = {
        "n_customers": 1200,
        "adjusted_rand_index": 0.8,
        "reassigned_share": 0.1,
        "transitions": [
            {
                "from_segment": 0,
                "from_persona": "A & <b>",
                "to_segment": 1,
                "to_persona": None,
                "count": 1200,
                "share_of_from": 1.0,
            }
        ],
        "sizes": [
            {
                "segment": 0,
                "persona_before": "<script>",
                "persona_after": None,
                "count_before": 1200,
                "count_after": 0,
                "share_before": 1.0,
                "share_after": 0.0,
            }
        ],
    }
    html = migration_html(migration)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "0 A &amp; &lt;b&gt;" in html and "1,200" in html


def test_templates_ship_with_the_package():
    folder = Path(__import__("segmentation.reports").reports.__file__).parent / "templates"
    assert {p.name for p in folder.glob("*.html")} == {
        "base.html",
        "drift.html",
        "migration.html",
        "sweep.html",
    }
    assert levels({"a": 0.6, "b": -0.6, "c": 0.1}, 0.5) == {"a": "high", "b": "low", "c": "average"}
