"""What each segment is worth: the segment value table and the profile over every attribute.

The value table has per segment its size and share, total and mean spend, the response rate to
the last campaign with a 95% Wilson interval, and a priority: ``customers x mean spend x
response rate`` (the spend of the customers a campaign to the segment would reach; without a
response column ``customers x mean spend``), ranked 1 = first. Noise is listed, not ranked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from segmentation.reports import number

VALUE_COLUMNS = [
    "segment",
    "persona",
    "customers",
    "share",
    "total_spend",
    "mean_spend",
    "spend_share",
    "responders",
    "response_rate",
    "response_low",
    "response_high",
    "priority_score",
    "priority",
]


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (scipy's ``binomtest``); NaN for ``n = 0``."""
    if n <= 0:
        return float("nan"), float("nan")
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence, method="wilson")
    return float(ci.low), float(ci.high)


def value_table(
    frame: pd.DataFrame,
    labels: np.ndarray,
    names: Mapping[int, str],
    spend: str | None,
    response: str | None = None,
) -> pd.DataFrame:
    """One row per segment of ``labels`` over ``frame`` (engineered columns, one row a
    customer): see the module docstring. ``spend``/``response`` columns missing from ``frame``
    (or ``None``) leave their columns empty."""
    labels = np.asarray(labels)
    spend_values = _column(frame, spend)
    response_values = _column(frame, response)
    total_all = float(spend_values.sum()) if spend_values is not None else float("nan")
    # Per-segment counts and sums in one pass each (bincount), not a mask per segment.
    ids, codes = np.unique(labels, return_inverse=True)
    counts = np.bincount(codes, minlength=len(ids))
    totals = np.bincount(codes, spend_values, len(ids)) if spend_values is not None else None
    responders = (
        np.bincount(codes, np.round(response_values), len(ids))
        if response_values is not None
        else None
    )
    rows = []
    for i, segment in enumerate(ids):
        n = int(counts[i])
        row: dict[str, Any] = {
            "segment": int(segment),
            "persona": names.get(int(segment), "Unassigned" if segment == -1 else ""),
            "customers": n,
            "share": n / len(labels),
        }
        if totals is not None:
            total = float(totals[i])
            row.update(
                total_spend=total,
                mean_spend=total / n,
                spend_share=total / total_all if total_all else float("nan"),
            )
        if responders is not None:
            k = int(responders[i])
            low, high = wilson_interval(k, n)
            row.update(responders=k, response_rate=k / n, response_low=low, response_high=high)
        mean = row.get("mean_spend", 1.0)
        row["priority_score"] = n * mean * row.get("response_rate", 1.0)
        rows.append(row)
    table = pd.DataFrame(rows, columns=VALUE_COLUMNS)
    ranked = table["segment"] != -1
    table["priority"] = pd.array([pd.NA] * len(table), dtype="Int64")
    table.loc[ranked, "priority"] = (
        table.loc[ranked, "priority_score"].rank(ascending=False, method="first").astype("Int64")
    )
    table.loc[~ranked, "priority_score"] = float("nan")
    table.attrs.update(spend=spend if spend_values is not None else None)
    table.attrs.update(response=response if response_values is not None else None)
    return table


def _column(frame: pd.DataFrame, column: str | None) -> np.ndarray | None:
    if not column or column not in frame.columns:
        return None
    return frame[column].to_numpy(dtype=float)


def value_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-friendly rows: missing values as ``None``."""
    out = []
    for row in table.to_dict(orient="records"):
        out.append({k: (None if pd.isna(v) else v) for k, v in row.items()})
    for row in out:
        for key in ("segment", "customers", "responders", "priority"):
            if row.get(key) is not None:
                row[key] = int(row[key])
    return out


def attribute_profile(
    frame: pd.DataFrame, labels: np.ndarray, groups: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """The mean of every attribute of ``groups`` (group -> engineered columns; those ``frame``
    lacks are skipped) per segment and over all customers."""
    labels = np.asarray(labels)
    wanted = list(dict.fromkeys(c for cols in groups.values() for c in cols if c in frame))
    # One grouped pass over every attribute (NaN skipped), not a pass per segment and column.
    means = frame[wanted].groupby(labels).mean()
    overall = frame[wanted].mean()
    segments = [int(s) for s in means.index]
    out_groups = []
    for group, columns in groups.items():
        present = [c for c in columns if c in frame.columns]
        if not present:
            continue
        rows = [
            {
                "attribute": column,
                "all": float(overall[column]),
                "segments": {str(s): float(means.at[s, column]) for s in segments},
            }
            for column in present
        ]
        out_groups.append({"group": group, "attributes": rows})
    return {"segments": segments, "groups": out_groups}


def write_value(
    table: pd.DataFrame, attributes: Mapping[str, Any] | None, out_dir: Path, meta: Mapping
) -> list[Path]:
    """``value.csv``/``value.json`` (with what stands for spend and response) and
    ``attributes.json``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / "value.csv", out_dir / "value.json"]
    table.to_csv(paths[0], index=False, float_format="%.6g")
    payload = {**meta, "segments": value_records(table)}
    paths[1].write_text(json.dumps(payload, indent=1, default=float), encoding="utf-8")
    if attributes is not None:
        paths.append(out_dir / "attributes.json")
        paths[-1].write_text(json.dumps(attributes, indent=1), encoding="utf-8")
    return paths


def value_markdown(payload: Mapping[str, Any]) -> str:
    """The value table (``value.json``'s content: ``segments`` and what stands for spend and
    response) as markdown, for a registered version's description."""
    rows = payload["segments"]
    label = payload.get("spend_label") or "spend"
    has_spend = any(r.get("total_spend") is not None for r in rows)
    has_response = any(r.get("response_rate") is not None for r in rows)
    header = ["segment", "persona", "customers", "share"]
    header += [f"total {label}", f"mean {label}"] if has_spend else []
    header += ["last-campaign response (95% CI)"] if has_response else []
    header += ["priority"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [
            str(row["segment"]),
            str(row["persona"]).replace("|", "\\|"),
            f"{row['customers']:,}",
            f"{row['share']:.1%}",
        ]
        if has_spend:
            cells += [number(row["total_spend"]), number(row["mean_spend"])]
        if has_response:
            cells.append(
                f"{row['response_rate']:.1%} ({row['response_low']:.1%} to "
                f"{row['response_high']:.1%})"
            )
        cells.append(str(row["priority"]) if row.get("priority") is not None else "-")
        lines.append("| " + " | ".join(cells) + " |")
    priority = payload.get("priority") or "customers x mean spend"
    lines += ["", f"Priority: rank of {priority} (1 = first)."]
    if payload.get("note"):
        lines[-1] += f" {payload['note']}"
    return "\n".join(lines)
