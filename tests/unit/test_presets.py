"""Every preset in experiments/ and every feature set in conf/features/ composes, fits a dataset
and (presets) runs a small sweep to a registered model. The lists are read from disk, so a new
preset or feature set is tested without editing this file."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from segmentation.config import compose, feature_sets, group_options, project_root
from segmentation.data import load_dataset
from segmentation.features.engineering import make_engineer
from segmentation.features.space import SpaceConfig, prepare_space

PRESETS = group_options("experiments")
FEATURE_SETS = group_options("features")
DATASETS = group_options("dataset")
ROWS = 300
SMALL = (
    "sweep.n_trials=2",
    "tracking.log_plots=false",
    "tracking.artifact_workers=0",
    f"dataset.synthetic_rows={ROWS}",
)


def _compose(tmp, *overrides: str):
    """The real config on synthetic data (``tmp`` holds no data file)."""
    paths = [f"paths.{key}={tmp}" for key in ("data_dir", "mlruns_dir", "reports_dir")]
    return compose([*paths, *SMALL, *overrides])


@pytest.fixture(scope="module")
def engineered(tmp_path_factory) -> dict[str, pd.DataFrame]:
    """Each dataset's engineered features on its synthetic customers."""
    tmp = tmp_path_factory.mktemp("no-data")
    out = {}
    for name in DATASETS:
        cfg = _compose(tmp, f"dataset={name}")
        data = load_dataset(cfg.dataset)
        assert data.source == "synthetic" and data.rows_clean == ROWS
        out[name] = make_engineer(cfg.dataset, data).fit_transform(data.frame)
    return out


def _preset_choices(name: str) -> dict[str, str]:
    """The groups a preset file overrides: ``{"dataset": "mall", "features": ...}``."""
    preset = OmegaConf.load(project_root() / "experiments" / f"{name}.yaml")
    return {
        key.removeprefix("override /"): str(value)
        for entry in preset.get("defaults") or []
        for key, value in entry.items()
    }


def test_presets_and_feature_sets_are_found():
    assert "mall_income_spending" in PRESETS and len(PRESETS) >= 2
    assert "income_spending" in FEATURE_SETS and {"mall", "retail_marketing"} <= set(DATASETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes_and_fits_its_dataset(name, engineered, tmp_path):
    cfg = _compose(tmp_path, f"experiments={name}")
    choices = _preset_choices(name)
    assert cfg.experiment_name == name
    assert cfg.dataset.name == choices["dataset"]
    assert cfg.features.name == choices["features"]
    assert list(cfg.features.columns) == feature_sets()[cfg.features.name]
    missing = set(cfg.features.columns) - set(engineered[cfg.dataset.name].columns)
    assert not missing, f"{name}: {cfg.dataset.name} has no engineered column(s) {missing}"
    assert cfg.tracking.registered_model_name == (
        f"{cfg.dataset.name}-{cfg.features.name}-segments"
    )


@pytest.mark.parametrize("name", FEATURE_SETS)
def test_feature_set_composes_with_a_dataset_it_fits(name, engineered, tmp_path):
    columns = feature_sets()[name]
    fitting = [d for d, frame in engineered.items() if set(columns) <= set(frame.columns)]
    assert fitting, f"features={name}: no dataset has all of {columns}"
    for dataset in fitting:
        cfg = _compose(tmp_path, f"dataset={dataset}", f"features={name}")
        assert (cfg.features.name, list(cfg.features.columns)) == (name, columns)
        space = prepare_space(SpaceConfig.of(cfg))
        assert space.columns == columns
        np.testing.assert_array_equal(space.X_raw, engineered[dataset][columns].to_numpy())
