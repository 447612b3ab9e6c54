"""A fitted segmentation described: its profile in original units and its personas."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig

from segmentation.algorithms import centers
from segmentation.features.space import FeatureSpace
from segmentation.segments.personas import build_personas, persona_names, write_personas
from segmentation.segments.profiles import original_centers, segment_profile, write_profile


@dataclass
class Segments:
    """A segmentation described: profile in original units and personas."""

    labels: np.ndarray
    profile: pd.DataFrame
    personas: pd.DataFrame

    @property
    def names(self) -> dict[int, str]:
        return persona_names(self.personas)

    def write(self, out_dir: Path, personas: bool = True) -> list[Path]:
        paths = write_profile(self.profile, out_dir)
        if personas:
            paths += write_personas(self.personas, out_dir)
        return paths


def describe_segments(
    cfg: DictConfig, space: FeatureSpace, labels: np.ndarray, estimator: Any
) -> Segments:
    """Profile (with centres back in original units) and personas of one fitted segmentation."""
    scaled = centers(estimator)
    centres = original_centers(space.scaler, scaled) if scaled is not None else None
    profile = segment_profile(space.X_raw, labels, space.columns, centres)
    return Segments(labels, profile, build_personas(profile, cfg.get("personas")))
