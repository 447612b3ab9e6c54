"""Drift: do the customers scored now look like the customers the model was trained on?

At training, :func:`reference_profile` stores what drift needs about the training data
(bin edges and shares per feature, a sample of values, the segment shares), so that
:func:`drift_report` never re-reads the training file. The verdict uses the population
stability index (PSI); the statistical tests (Kolmogorov-Smirnov, chi-square) are reported
only: with many rows every difference is significant.

PSI bands (the usual rule of thumb): below 0.1 stable, 0.1 to 0.25 a moderate shift worth a
look, 0.25 and above a significant shift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import chisquare, ks_2samp

from segmentation.config import DriftThresholds
from segmentation.errors import InputError
from segmentation.reports import render

# Share given to an empty bin: PSI's log is infinite at 0, and 1e-4 keeps one empty bin's
# term finite yet clearly large (a share of 0.2 falling to 0 adds about 1.6).
EPSILON = 1e-4

PROFILE_VERSION = 1

# The thresholds of ``conf/monitoring`` (its schema's defaults); the increase over training is
# turned into max_low_confidence_share by the check, which knows the training share.
DEFAULT_THRESHOLDS: dict[str, float] = {
    k: float(v) for k, v in asdict(DriftThresholds()).items() if k != "max_low_confidence_increase"
}

NOISE = -1


def _finite(values: Any) -> np.ndarray:
    """``values`` as float64 without missing or infinite values (these carry no position)."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    return array[np.isfinite(array)]


def _edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges: the reference's quantiles, deduplicated (ties, discrete values).

    The outer bins are open-ended, so current values beyond the reference's range still fall
    in a bin.
    """
    if bins < 2:
        raise InputError(f"PSI needs at least 2 bins, got {bins}")
    inner = np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1])
    return np.unique(inner)


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin: ``(-inf, e0), [e0, e1), ..., [ek, inf)``."""
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def _psi_terms(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Per-bin PSI terms ``(a - e) * ln(a / e)``, empty bins at :data:`EPSILON`."""
    e = np.clip(np.asarray(expected, dtype=np.float64), EPSILON, None)
    a = np.clip(np.asarray(actual, dtype=np.float64), EPSILON, None)
    return (a - e) * np.log(a / e)


def psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``current`` against ``reference`` (0 = same shape).

    Bins are the reference's quantiles (``bins`` of them, fewer when edges tie), the outer
    two open-ended; empty bins count as a share of :data:`EPSILON`. Missing and infinite
    values are left out. Bands: < 0.1 stable, 0.1-0.25 moderate, >= 0.25 significant shift.
    """
    ref, cur = _finite(reference), _finite(current)
    if not len(ref) or not len(cur):
        raise InputError("PSI needs at least one finite value in the reference and the current")
    edges = _edges(ref, bins)
    return float(_psi_terms(_shares(ref, edges), _shares(cur, edges)).sum())


def _column(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A numeric column as float64, missing values as NaN (nullable dtypes included)."""
    return frame[column].to_numpy(dtype=np.float64, na_value=np.nan)


def _segments(segments: Any, n: int, name: str = "segments") -> np.ndarray:
    array = np.asarray(segments).reshape(-1)
    if len(array) != n:
        raise InputError(f"{name} has {len(array)} values for {n} rows")
    if array.dtype.kind in "iu":
        return array.astype(np.int64)
    if array.dtype.kind not in "fb" and len(array):
        raise InputError(f"{name} must hold integer segment ids, got dtype {array.dtype}")
    # Float ids come from frames with missing values: accepted when whole numbers.
    floats = array.astype(np.float64)
    if not np.all(np.isfinite(floats)) or np.any(floats != np.round(floats)):
        raise InputError(f"{name} must hold whole segment ids, not missing or fractions")
    return floats.astype(np.int64)


def _persona(personas: Mapping[Any, str], segment: int) -> str:
    for key in (segment, str(segment)):
        if key in personas:
            return str(personas[key])
    return "noise" if segment == NOISE else f"segment {segment}"


def reference_profile(
    frame: pd.DataFrame,
    columns: list[str],
    segments: np.ndarray,
    bins: int = 10,
    sample_rows: int = 5000,
    seed: int = 0,
    *,
    personas: Mapping[int, str] | None = None,
    response: Any = None,
) -> dict[str, Any]:
    """What a model stores about its training data for :func:`drift_report` (JSON-ready).

    Per numeric column of ``columns``: inner quantile bin ``edges`` and the training
    ``shares`` of each bin (for PSI), the ``missing_share``, and a ``sample`` of at most
    ``sample_rows`` finite values drawn with ``seed`` (for the Kolmogorov-Smirnov test).
    Non-numeric columns are listed under ``skipped``. ``segments`` are the training segment
    ids of the rows; their counts and shares are stored, with ``personas`` when given.
    ``response`` (1 = the customer responded to the last campaign, per row) adds each segment's
    ``responders`` and ``response_rate`` over the rows that have one.
    """
    if len(frame) == 0:
        raise InputError("the training data has no rows: nothing to profile")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"columns {missing} are not in the training data")
    labels = _segments(segments, len(frame))
    rng = np.random.default_rng(seed)
    features: dict[str, Any] = {}
    skipped = []
    for column in columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            skipped.append(column)
            continue
        raw = _column(frame, column)
        values = raw[np.isfinite(raw)]
        if not len(values):
            raise InputError(f"column '{column}' has no finite value in the training data")
        edges = _edges(values, bins)
        take = min(len(values), int(sample_rows))
        sample = values[np.sort(rng.choice(len(values), size=take, replace=False))]
        features[column] = {
            "edges": edges.tolist(),
            "shares": _shares(values, edges).tolist(),
            "missing_share": float(1.0 - len(values) / len(raw)),
            "sample": sample.tolist(),
        }
    ids, counts = np.unique(labels, return_counts=True)
    segment_rows = [
        {"segment": int(s), "count": int(c), "share": float(c / len(labels))}
        for s, c in zip(ids, counts, strict=True)
    ]
    if response is not None:
        answered = pd.to_numeric(pd.Series(np.asarray(response).reshape(-1)), errors="coerce")
        if len(answered) != len(labels):
            raise InputError(f"{len(answered)} responses for {len(labels)} training rows")
        for row in segment_rows:
            mine = answered[labels == row["segment"]].dropna()
            row["responders"] = int((mine > 0).sum())
            row["response_rate"] = float((mine > 0).mean()) if len(mine) else None
    return {
        "version": PROFILE_VERSION,
        "n_rows": len(frame),
        "bins": int(bins),
        "features": features,
        "skipped": skipped,
        "segments": segment_rows,
        "personas": {str(k): str(v) for k, v in (personas or {}).items()},
    }


def _thresholds(thresholds: Mapping[str, Any]) -> dict[str, float]:
    """Defaults overridden by ``thresholds``; an unknown key is a typo, refused."""
    unknown = sorted(set(thresholds) - set(DEFAULT_THRESHOLDS))
    if unknown:
        raise InputError(f"unknown drift thresholds {unknown}; known: {sorted(DEFAULT_THRESHOLDS)}")
    merged = {**DEFAULT_THRESHOLDS, **{k: float(v) for k, v in thresholds.items()}}
    check_thresholds(merged)
    return merged


# What each threshold means, as the range of values that mean something.
_SHARE = (0.0, 1.0, "a share from 0 to 1")
_RANGES = {
    "psi_warn": (0.0, float("inf"), "a PSI >= 0"),
    "psi_drift": (0.0, float("inf"), "a PSI >= 0"),
    "segment_psi_drift": (0.0, float("inf"), "a PSI >= 0"),
    "min_rows": (1.0, float("inf"), "a whole number >= 1"),
    "low_confidence": (0.0, 1.0, "a confidence from 0 to 1"),
    "max_low_confidence_increase": _SHARE,
    "max_low_confidence_share": _SHARE,
    "p_value": (0.0, 1.0, "a significance level between 0 and 1 (not 0 or 1)"),
}


def check_thresholds(thresholds: Mapping[str, Any]) -> None:
    """Refuse a drift threshold outside the values that mean something (a verdict against it
    would be drift, or no drift, whatever the data), naming the setting."""
    for key, value in thresholds.items():
        low, high, expected = _RANGES[key]
        strict = key == "p_value"
        if not (low < value < high if strict else low <= value <= high):
            raise InputError(f"monitoring.thresholds.{key}={value:g}: expected {expected}")
    warn, drift = thresholds.get("psi_warn"), thresholds.get("psi_drift")
    if warn is not None and drift is not None and warn > drift:
        raise InputError(
            f"monitoring.thresholds.psi_warn={warn:g}: expected at most psi_drift ({drift:g})"
        )


def _status(value: float, warn: float, drift: float) -> str:
    return "drift" if value >= drift else "warn" if value >= warn else "ok"


def _features(
    profile: Mapping[str, Any], frame: pd.DataFrame, limits: Mapping[str, float]
) -> list[dict[str, Any]]:
    """PSI, KS test and status of each profiled feature on ``frame``."""
    rows = []
    for column, ref in profile["features"].items():
        raw = _column(frame, column)
        values = raw[np.isfinite(raw)]
        row: dict[str, Any] = {
            "feature": column,
            "psi": None,
            "ks_statistic": None,
            "ks_p_value": None,
            "significant": None,
            "missing_share_training": float(ref.get("missing_share", 0.0)),
            "missing_share_now": float(1.0 - len(values) / len(raw)),
            # A feature with no value left has certainly drifted.
            "status": "drift",
        }
        if len(values):
            edges = np.asarray(ref["edges"], dtype=np.float64)
            value = float(_psi_terms(np.asarray(ref["shares"]), _shares(values, edges)).sum())
            test = ks_2samp(np.asarray(ref["sample"], dtype=np.float64), values)
            row.update(
                psi=value,
                ks_statistic=float(test.statistic),
                ks_p_value=float(test.pvalue),
                significant=bool(test.pvalue < limits["p_value"]),
                status=_status(value, limits["psi_warn"], limits["psi_drift"]),
            )
        rows.append(row)
    return rows


def _segment_drift(
    profile: Mapping[str, Any],
    labels: np.ndarray,
    personas: Mapping[Any, str],
    limits: Mapping[str, float],
) -> dict[str, Any]:
    """Segment shares now against training: PSI, chi-square, per-segment changes."""
    training = {int(r["segment"]): float(r["share"]) for r in profile["segments"]}
    ids, counts = np.unique(labels, return_counts=True)
    now = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    order = sorted(set(training) | set(now))
    expected = np.array([training.get(s, 0.0) for s in order])
    observed = np.array([now.get(s, 0) for s in order], dtype=np.float64)
    n = len(labels)
    terms = _psi_terms(expected, observed / n)
    # A segment unseen at training has expected share 0: floored at EPSILON (then
    # renormalised, as chisquare needs equal totals), its chi-square term is huge, as it should.
    floor = np.clip(expected, EPSILON, None)
    test = chisquare(observed, floor / floor.sum() * n)
    rows = [
        {
            "segment": s,
            "persona": _persona(personas, s),
            "share_training": float(expected[i]),
            "share_now": float(observed[i] / n),
            "count_now": int(observed[i]),
            "change": float(observed[i] / n - expected[i]),
            "psi_term": float(terms[i]),
        }
        for i, s in enumerate(order)
    ]
    changed = sorted(
        (r for r in rows if r["change"]), key=lambda r: (-abs(r["change"]), r["segment"])
    )
    value = float(terms.sum())
    return {
        "psi": value,
        "status": _status(value, limits["psi_warn"], limits["segment_psi_drift"]),
        "chi2_statistic": float(test.statistic),
        "chi2_p_value": float(test.pvalue),
        "significant": bool(test.pvalue < limits["p_value"]),
        "segments": rows,
        "changed_most": [r["segment"] for r in changed[:3]],
    }


def drift_report(
    profile: Mapping[str, Any],
    frame: pd.DataFrame,
    segments: np.ndarray,
    confidence: np.ndarray | None,
    thresholds: Mapping[str, Any],
    *,
    personas: Mapping[int, str] | None = None,
) -> dict[str, Any]:
    """Compare ``frame`` and its ``segments`` with the training ``profile`` (JSON-ready dict).

    - ``features``: per profiled feature ``psi``, ``ks_statistic``, ``ks_p_value``,
      ``significant`` (p < ``p_value``), missing shares and ``status`` ok / warn / drift
      (PSI against ``psi_warn`` / ``psi_drift``).
    - ``segments``: shares now against training: ``psi`` (verdict against
      ``segment_psi_drift``), chi-square goodness of fit (training shares scaled to the current
      rows; segments absent now count 0), per-segment rows and ``changed_most``.
    - ``low_confidence``: share of ``confidence`` below ``low_confidence`` (finite values only),
      against ``max_low_confidence_share``; None without confidence.
    - ``over_threshold`` and ``reasons`` (one line per feature, segment or confidence share
      over its threshold); ``warnings`` for features in the warn band.

    ``thresholds`` override :data:`DEFAULT_THRESHOLDS` (unknown keys are refused). Fewer rows
    than ``min_rows`` raise InputError. ``personas`` (segment -> name) default to the
    profile's.
    """
    limits = _thresholds(thresholds)
    if len(frame) < limits["min_rows"]:
        raise InputError(
            f"drift needs at least {int(limits['min_rows'])} scored rows "
            f"(monitoring.thresholds.min_rows), got {len(frame)}"
        )
    missing = [c for c in profile["features"] if c not in frame.columns]
    if missing:
        raise InputError(f"columns {missing} of the training profile are not in the data")
    labels = _segments(segments, len(frame))
    names: Mapping[Any, str] = personas if personas is not None else profile.get("personas", {})

    features = _features(profile, frame, limits)
    segment_part = _segment_drift(profile, labels, names, limits)
    reasons, warnings = [], []
    for row in features:
        if row["psi"] is None:
            reasons.append(f"feature '{row['feature']}' has no value")
        elif row["status"] == "drift":
            reasons.append(
                f"feature '{row['feature']}' PSI {row['psi']:.2f} >= {limits['psi_drift']:.2f}"
            )
        elif row["status"] == "warn":
            warnings.append(
                f"feature '{row['feature']}' PSI {row['psi']:.2f} >= {limits['psi_warn']:.2f}"
            )
    if segment_part["psi"] >= limits["segment_psi_drift"]:
        reasons.append(
            f"segment shares PSI {segment_part['psi']:.2f} >= {limits['segment_psi_drift']:.2f}"
        )
        # Name the segments that moved most: those whose own term is in the warn band, else
        # the single largest, so a reason always says which segment.
        rows = sorted(segment_part["segments"], key=lambda r: -r["psi_term"])
        named = [r for r in rows if r["psi_term"] >= limits["psi_warn"]] or rows[:1]
        reasons += [
            f"segment {r['segment']} ({r['persona']}) share {r['share_now']:.2f} "
            f"against {r['share_training']:.2f} at training"
            for r in named
        ]

    low: dict[str, Any] | None = None
    if confidence is not None:
        scores = np.asarray(confidence, dtype=np.float64).reshape(-1)
        if len(scores) != len(frame):
            raise InputError(f"confidence has {len(scores)} values for {len(frame)} rows")
        scores = scores[np.isfinite(scores)]
        share = float(np.mean(scores < limits["low_confidence"])) if len(scores) else None
        low = {
            "share": share,
            "below": limits["low_confidence"],
            "max_share": limits["max_low_confidence_share"],
            "over_threshold": share is not None and share > limits["max_low_confidence_share"],
        }
        if low["over_threshold"]:
            reasons.append(
                f"low-confidence share {share:.2f} > {limits['max_low_confidence_share']:.2f} "
                f"(confidence < {limits['low_confidence']:.2f})"
            )

    return {
        "n_rows": len(frame),
        "n_rows_training": int(profile["n_rows"]),
        "thresholds": limits,
        "over_threshold": bool(reasons),
        "reasons": reasons,
        "warnings": warnings,
        "features": features,
        "skipped_features": list(profile.get("skipped", [])),
        "segments": segment_part,
        "low_confidence": low,
    }


def drift_html(report: Mapping[str, Any], title: str) -> str:
    """A self-contained HTML page of ``report``: verdict first, then features and segments
    (``templates/drift.html``; every value escaped by the template)."""
    limits = report["thresholds"]
    status = [
        _status(r["psi_term"], limits["psi_warn"], limits["segment_psi_drift"])
        for r in report["segments"]["segments"]
    ]
    return render("drift.html", title=title, r=report, segment_status=status)
