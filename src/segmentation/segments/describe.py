"""A fitted segmentation described: its profile in original units, its personas, its value
table and its profile over every attribute of the data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segmentation.algorithms import centers
from segmentation.features.space import FeatureSpace
from segmentation.segments.personas import (
    build_personas,
    feature_info,
    persona_config,
    persona_names,
    write_personas,
)
from segmentation.segments.profiles import original_centers, segment_profile, write_profile
from segmentation.segments.value import (
    attribute_profile,
    value_markdown,
    value_records,
    value_table,
    write_value,
)


@dataclass
class Segments:
    """A segmentation described: profile in original units, personas, and (when the data's
    engineered columns are known) the value table and the attribute profile."""

    labels: np.ndarray
    profile: pd.DataFrame
    personas: pd.DataFrame
    value: pd.DataFrame | None = None
    attributes: dict[str, Any] | None = None
    # What stands for spend and response in the value table, for readers of value.json.
    value_meta: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> dict[int, str]:
        return persona_names(self.personas)

    def write(self, out_dir: Path, personas: bool = True) -> list[Path]:
        paths = write_profile(self.profile, out_dir)
        if personas:
            paths += write_personas(self.personas, out_dir)
        if self.value is not None:
            paths += write_value(self.value, self.attributes, out_dir, self.value_meta)
        return paths


def engineered_frame(space: FeatureSpace, n_rows: int) -> pd.DataFrame | None:
    """Every engineered column of the space's customers, when they are the labelled rows."""
    frame = space.engineered
    if frame is None and len(space.data.frame) == n_rows:
        frame = space.engineer.transform(space.data.frame)
    return frame.reset_index(drop=True) if frame is not None and len(frame) == n_rows else None


def describe_frame(
    personas_cfg: Mapping[str, Any] | None,
    profile: pd.DataFrame,
    labels: np.ndarray,
    frame: pd.DataFrame | None,
) -> Segments:
    """Personas of ``profile``; with ``frame`` (engineered columns), the value table and the
    attribute profile too (what they use: the ``value`` and ``attributes`` persona settings)."""
    settings = persona_config(personas_cfg)
    personas = build_personas(profile, settings)
    if frame is None:
        return Segments(labels, profile, personas)
    value_cfg = dict(settings.get("value") or {})
    spend, response = value_cfg.get("spend"), value_cfg.get("response")
    value = value_table(frame, labels, persona_names(personas), spend, response)
    clustered = list(profile.attrs.get("columns") or [])
    groups = {"Clustered": clustered}
    # Each attribute once: the clustered ones are not repeated in their usual group.
    for group, columns in (settings.get("attributes") or {}).items():
        groups[group] = [c for c in columns if c not in clustered]
    meta = {
        "spend": value.attrs["spend"],
        "spend_label": value_cfg.get("spend_label") or value.attrs["spend"],
        "response": value.attrs["response"],
        "note": value_cfg.get("note"),
        "priority": "customers x mean spend x response rate"
        if value.attrs["response"]
        else "customers x mean spend",
    }
    attributes = attribute_profile(frame, labels, groups)
    for group in attributes["groups"]:
        for row in group["attributes"]:
            info = feature_info(settings, row["attribute"])
            row.update(label=info["label"], unit=info["unit"], percent=bool(info.get("percent")))
    return Segments(labels, profile, personas, value, attributes, meta)


def describe_segments(
    personas: Mapping[str, Any] | None,
    space: FeatureSpace,
    labels: np.ndarray,
    estimator: Any,
    value: bool = True,
) -> Segments:
    """Profile (with centres back in original units), personas and (``value``) the value table
    and attribute profile of one fitted segmentation."""
    scaled = centers(estimator)
    centres = original_centers(space.scaler, scaled) if scaled is not None else None
    profile = segment_profile(space.X_raw, labels, space.columns, centres)
    frame = engineered_frame(space, len(labels)) if value else None
    return describe_frame(personas, profile, labels, frame)


def with_value(
    personas: Mapping[str, Any] | None, space: FeatureSpace, segments: Segments
) -> Segments:
    """``segments`` with the value table and attribute profile, when the data has them."""
    if segments.value is not None:
        return segments
    frame = engineered_frame(space, len(segments.labels))
    return describe_frame(personas, segments.profile, segments.labels, frame)


def value_section(segments: Segments) -> list[str]:
    """The value table as a description section (none without a value table)."""
    if segments.value is None:
        return []
    payload = {**segments.value_meta, "segments": value_records(segments.value)}
    return ["**Segment value**", value_markdown(payload)]
