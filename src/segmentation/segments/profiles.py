"""Segment profiles: what each segment looks like in the original units of the feature space."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import TransformerMixin


def original_centers(scaler: TransformerMixin, centers: np.ndarray | None) -> np.ndarray | None:
    """Centres fitted in the scaled space (KMeans centroids, GMM means) in original units."""
    if centers is None:
        return None
    return np.asarray(scaler.inverse_transform(np.asarray(centers, dtype=float)), dtype=float)


def segment_profile(
    X_raw: np.ndarray,
    labels: np.ndarray,
    columns: Sequence[str],
    centers: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per segment (noise ``-1`` included): size, share, and per feature the mean, the
    median, the z-score of the mean against the whole population and, when given, the centre.

    ``centers`` (original units) is indexed by segment id, as KMeans and GMM number them.
    """
    X_raw = np.asarray(X_raw, dtype=float)
    labels = np.asarray(labels)
    mean_all = X_raw.mean(axis=0)
    # A constant feature has no spread: its z-scores are 0, not a division by zero.
    std_all = X_raw.std(axis=0)
    std_all = np.where(std_all > 0, std_all, 1.0)
    rows = []
    for segment in np.unique(labels):
        part = X_raw[labels == segment]
        mean = part.mean(axis=0)
        row: dict[str, Any] = {
            "segment": int(segment),
            "size": int(len(part)),
            "share": len(part) / len(labels),
        }
        for j, column in enumerate(columns):
            row[f"mean:{column}"] = float(mean[j])
            row[f"median:{column}"] = float(np.median(part[:, j]))
            row[f"z:{column}"] = float((mean[j] - mean_all[j]) / std_all[j])
            if centers is not None and segment >= 0 and segment < len(centers):
                row[f"center:{column}"] = float(centers[int(segment)][j])
        rows.append(row)
    profile = pd.DataFrame(rows)
    profile.attrs["columns"] = list(columns)
    profile.attrs["population_mean"] = [float(v) for v in mean_all]
    # The customers' quintile cut points per feature: RFM scores of segment centres use them.
    profile.attrs["quintiles"] = {
        c: [float(v) for v in np.quantile(X_raw[:, j], [0.2, 0.4, 0.6, 0.8])]
        for j, c in enumerate(columns)
    }
    return profile


def profile_columns(profile: pd.DataFrame) -> list[str]:
    """The feature names of a profile."""
    return list(profile.attrs.get("columns") or [c[5:] for c in profile if c.startswith("mean:")])


def profile_records(profile: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-friendly records: per segment, size and share, and per feature its statistics."""
    columns = profile_columns(profile)
    records = []
    for _, row in profile.iterrows():
        features = {}
        for column in columns:
            stats = {
                stat: float(row[f"{stat}:{column}"])
                for stat in ("mean", "median", "z", "center")
                if f"{stat}:{column}" in profile and not pd.isna(row[f"{stat}:{column}"])
            }
            features[column] = stats
        records.append(
            {
                "segment": int(row["segment"]),
                "size": int(row["size"]),
                "share": float(row["share"]),
                "features": features,
            }
        )
    return records


def write_profile(
    profile: pd.DataFrame, out_dir: Path, stem: str = "segment_profile"
) -> list[Path]:
    """The profile as CSV (one column per statistic and feature) and JSON (nested)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{stem}.csv"
    json_path = out_dir / f"{stem}.json"
    profile.to_csv(csv_path, index=False, float_format="%.6g")
    payload = {
        "features": profile_columns(profile),
        "population_mean": profile.attrs.get("population_mean"),
        "segments": profile_records(profile),
    }
    json_path.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    return [csv_path, json_path]
