"""Drift against the training profile: PSI, the report's verdict and its HTML page."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from segmentation.errors import InputError
from segmentation.monitoring.drift import drift_html, drift_report, psi, reference_profile

COLUMNS = ["Age", "Income", "Spending"]
PERSONAS = {0: "Savers", 1: "Spenders", 2: "Families", 3: "<b>Bold</b> & co"}
THRESHOLDS = {"psi_warn": 0.1, "psi_drift": 0.25, "min_rows": 50}


@pytest.fixture(scope="module")
def training() -> tuple[pd.DataFrame, np.ndarray]:
    """2,000 customers, segments drawn independently of the features (so that removing a
    segment moves no feature)."""
    rng = np.random.default_rng(3)
    n = 2000
    frame = pd.DataFrame(
        {
            "Age": rng.integers(18, 70, n),
            "Income": rng.lognormal(4.0, 0.4, n),
            "Spending": rng.uniform(1, 100, n),
            "Region": rng.choice(["north", "south"], n),
        }
    )
    return frame, rng.integers(0, 4, n)


@pytest.fixture(scope="module")
def profile(training: tuple[pd.DataFrame, np.ndarray]) -> dict:
    frame, segments = training
    return reference_profile(
        frame, [*COLUMNS, "Region"], segments, sample_rows=500, personas=PERSONAS
    )


def test_psi_of_a_sample_against_itself_and_doubled() -> None:
    values = np.random.default_rng(1).normal(50, 10, 3000)
    assert psi(values, values) == pytest.approx(0.0, abs=1e-12)
    assert psi(values, values * 2) > 0.25
    # Another draw of the same distribution stays in the stable band.
    assert psi(values, np.random.default_rng(2).normal(50, 10, 3000)) < 0.1


def test_profile_is_json_and_bounded(profile: dict) -> None:
    assert json.loads(json.dumps(profile)) == profile
    assert list(profile["features"]) == COLUMNS
    assert profile["skipped"] == ["Region"]
    assert len(profile["features"]["Income"]["sample"]) == 500
    assert sum(profile["features"]["Income"]["shares"]) == pytest.approx(1.0)
    assert sum(s["share"] for s in profile["segments"]) == pytest.approx(1.0)


def test_same_data_is_not_drift(training: tuple[pd.DataFrame, np.ndarray], profile: dict) -> None:
    frame, segments = training
    confidence = np.full(len(frame), 0.9)
    report = drift_report(profile, frame, segments, confidence, THRESHOLDS)
    assert report["over_threshold"] is False
    assert report["reasons"] == []
    assert [f["status"] for f in report["features"]] == ["ok"] * 3
    assert max(f["psi"] for f in report["features"]) == pytest.approx(0.0, abs=1e-12)
    assert report["segments"]["psi"] == pytest.approx(0.0, abs=1e-12)
    assert report["segments"]["chi2_p_value"] == pytest.approx(1.0)
    assert report["low_confidence"]["share"] == 0.0
    assert json.loads(json.dumps(report)) == report

    page = drift_html(report, "Drift of mall")
    assert "No drift over threshold" in page


def test_doubled_column_and_removed_segment_are_drift(
    training: tuple[pd.DataFrame, np.ndarray], profile: dict
) -> None:
    frame, segments = training
    keep = segments != 3
    current = frame[keep].assign(Income=frame.loc[keep, "Income"] * 2)
    report = drift_report(profile, current, segments[keep], None, THRESHOLDS)

    assert report["over_threshold"] is True
    status = {f["feature"]: f["status"] for f in report["features"]}
    assert status == {"Age": "ok", "Income": "drift", "Spending": "ok"}
    assert any(r.startswith("feature 'Income' PSI ") for r in report["reasons"])
    assert not any("'Age'" in r or "'Spending'" in r for r in report["reasons"])
    segment_reasons = [r for r in report["reasons"] if r.startswith("segment 3 ")]
    assert len(segment_reasons) == 1
    assert "share 0.00 against 0.2" in segment_reasons[0]
    assert report["segments"]["changed_most"][0] == 3
    assert report["low_confidence"] is None

    page = drift_html(report, "Drift <of> mall")
    assert "Drift over threshold" in page and "No drift" not in page
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; co" in page
    assert "<b>" not in page
    assert "Drift &lt;of&gt; mall" in page


def test_low_confidence_share_is_a_reason(
    training: tuple[pd.DataFrame, np.ndarray], profile: dict
) -> None:
    frame, segments = training
    confidence = np.where(np.arange(len(frame)) % 2 == 0, 0.2, 0.9)
    report = drift_report(profile, frame, segments, confidence, THRESHOLDS)
    assert report["low_confidence"]["share"] == 0.5
    assert report["reasons"] == ["low-confidence share 0.50 > 0.30 (confidence < 0.50)"]


def test_too_few_rows_and_unknown_thresholds_are_refused(
    training: tuple[pd.DataFrame, np.ndarray], profile: dict
) -> None:
    frame, segments = training
    with pytest.raises(
        InputError, match="at least 50 scored rows .monitoring.thresholds.min_rows., got 10"
    ) as info:
        drift_report(profile, frame.head(10), segments[:10], None, THRESHOLDS)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="psi_drfit"):
        drift_report(profile, frame, segments, None, {"psi_drfit": 0.3})


@pytest.mark.parametrize(
    ("setting", "line"),
    [
        ("psi_drift=-1", "monitoring.thresholds.psi_drift=-1: expected a PSI >= 0"),
        ("psi_warn=0.5", "monitoring.thresholds.psi_warn=0.5: expected at most psi_drift (0.25)"),
        ("min_rows=0", "monitoring.thresholds.min_rows=0: expected a whole number >= 1"),
        ("low_confidence=5", "monitoring.thresholds.low_confidence=5: expected a confidence "),
        ("max_low_confidence_increase=-0.2", "max_low_confidence_increase=-0.2: expected a share"),
        ("max_low_confidence_share=1.5", "max_low_confidence_share=1.5: expected a share"),
        ("p_value=1", "monitoring.thresholds.p_value=1: expected a significance level between"),
        ("p_value=0", "monitoring.thresholds.p_value=0: expected a significance level between"),
    ],
)
def test_thresholds_without_meaning_are_refused_before_scoring(setting, line, store, tmp_path):
    """A verdict against them would be drift, or no drift, whatever the data (a p-value of 2
    made every test significant): refused naming the setting, before the model or the file
    is read (neither exists here)."""
    from segmentation.monitoring.check import check_drift
    from segmentation.promotion.aliases import ModelRef
    from tests.conftest import make_cfg

    cfg = make_cfg(store, f"monitoring.thresholds.{setting}")
    with pytest.raises(InputError) as refused:
        check_drift(
            cfg.dataset,
            cfg.monitoring,
            cfg.paths,
            "x",
            ModelRef("models:/nothing@champion", str(cfg.paths.tracking_uri)),
            tmp_path / "missing.csv",
        )
    assert line in str(refused.value) and "\n" not in str(refused.value)
    assert list(store.iterdir()) == []
