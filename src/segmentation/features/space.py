"""The feature space of a study: the data, its engineered features, the feature set's columns
and the fitted scaling (everything fixed for all of a study's trials)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from omegaconf import DictConfig
from sklearn.base import TransformerMixin

from segmentation.config import feature_sets, presets_of_dataset
from segmentation.data import LoadedData, load_dataset, model_input_example
from segmentation.data.reading import content_hash
from segmentation.errors import InputError
from segmentation.features.engineering import make_engineer
from segmentation.features.scaling import make_scaler
from segmentation.features.selection import feature_matrix


@dataclass
class FeatureSpace:
    """Everything fixed for one study: the data, its features and the fitted scaling."""

    data: LoadedData
    engineer: TransformerMixin
    columns: list[str]
    X_raw: np.ndarray
    scaler: TransformerMixin
    X: np.ndarray
    input_example: pd.DataFrame
    # Content hash of the loaded frame: tagged on the runs and on a promoted model version.
    dataset_hash: str = ""
    # Every engineered column, row for row with X_raw: segments are profiled over all of them.
    engineered: pd.DataFrame | None = None

    @property
    def n_rows(self) -> int:
        return len(self.X)


@dataclass(frozen=True)
class SpaceConfig:
    """The config groups a study's feature space is built from, taken once from the composed
    config by the commands (:meth:`of`)."""

    dataset: DictConfig
    features: DictConfig
    scaling: DictConfig
    # ``constraints.k_max``: the rows the k range needs.
    sweep: DictConfig
    # ``input_example_rows``: the logged model's example.
    tracking: DictConfig
    # The preset, named when its feature set does not fit the dataset.
    experiment_name: str

    @classmethod
    def of(cls, cfg: DictConfig) -> SpaceConfig:
        """The groups of a composed config (a command's, or a test's)."""
        return cls(
            cfg.dataset,
            cfg.features,
            cfg.scaling,
            cfg.sweep,
            cfg.tracking,
            str(cfg.experiment_name),
        )

    @property
    def name(self) -> str:
        """The space's name (:func:`feature_space_name`)."""
        return feature_space_name(self.dataset, self.features, self.scaling)


def feature_space_name(dataset: DictConfig, features: DictConfig, scaling: DictConfig) -> str:
    """The space a study's silhouettes live in: dataset, feature set and scaling."""
    return f"{dataset.name}.{features.name}.{scaling.name}"


def check_feature_set(
    dataset: DictConfig, features: DictConfig, experiment_name: str, engineered: pd.DataFrame
) -> None:
    """Refuse a feature set of fewer than two different columns (the segment plots and
    explanations are drawn in two dimensions) or whose columns the dataset does not have,
    naming those that fit (and the preset ``experiment_name`` that chose it)."""
    columns = [str(c) for c in features.columns]
    if len(columns) < 2 or len(set(columns)) < len(columns):
        raise InputError(
            f"features.columns={columns}: expected two or more different columns (segments are "
            "plotted and explained in two dimensions or more)"
        )
    missing = [c for c in features.columns if c not in engineered.columns]
    if not missing:
        return
    fitting = [name for name, cols in feature_sets().items() if set(cols) <= set(engineered)]
    presets = presets_of_dataset(str(dataset.name))
    raise InputError(
        f"features={features.name} (of preset {experiment_name}) does not fit "
        f"dataset={dataset.name}: it needs "
        f"column(s) {missing}. Feature sets that fit {dataset.name}: {', '.join(fitting)}; "
        f"presets for it: {', '.join(presets) or 'none'} (make sweep EXPERIMENT=<preset>)"
    )


def prepare_space(groups: SpaceConfig) -> FeatureSpace:
    """Load and validate the data, engineer features and fit the scaling (no side effects)."""
    data = load_dataset(groups.dataset)
    engineer = make_engineer(groups.dataset, data).fit(data.frame)
    engineered = engineer.transform(data.frame)
    check_feature_set(groups.dataset, groups.features, groups.experiment_name, engineered)
    columns = list(groups.features.columns)
    X_raw = feature_matrix(engineered, columns)
    k_max = int(groups.sweep.constraints.k_max)
    needed = max(2 * k_max, 10)
    if len(X_raw) < needed:
        raise InputError(
            f"{data.path}: {len(X_raw)} usable rows, fewer than the {needed} that the k range "
            f"up to {k_max} needs"
        )
    scaler = make_scaler(groups.scaling).fit(X_raw)
    X = np.ascontiguousarray(scaler.transform(X_raw), dtype=np.float64)
    example = model_input_example(data, groups.dataset, int(groups.tracking.input_example_rows))
    return FeatureSpace(
        data, engineer, columns, X_raw, scaler, X, example, content_hash(data.frame), engineered
    )
