"""Datasets: one module per ``conf/dataset`` config (loading, validation, cleaning and synthetic
data; the feature engineering that travels inside the logged model is in ``features/``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
from hydra.utils import get_object
from omegaconf import DictConfig

from segmentation.data.reading import read_table
from segmentation.errors import InputError
from segmentation.locations import local_path


@dataclass
class LoadedData:
    """A dataset ready for feature engineering, and how it was obtained."""

    frame: pd.DataFrame
    name: str
    source: str  # "real" or "synthetic"
    path: str
    rows_raw: int
    detected: dict[str, Any] = field(default_factory=dict)
    # One entry per cleaning rule: {"rule", "rows_in", "rows_out", "why"} (and counts).
    cleaning: list[dict[str, Any]] = field(default_factory=list)

    @property
    def rows_clean(self) -> int:
        return len(self.frame)

    def describe(self) -> str:
        """The loud one-line statement of which data a run uses."""
        if self.source == "synthetic":
            return (
                f"DATA: SYNTHETIC {self.name} customers ({self.rows_clean} rows, seeded "
                f"generator): {self.path} was not found"
            )
        return (
            f"DATA: REAL {self.name} file {self.path} ({self.rows_raw} rows, "
            f"{self.rows_clean} used)"
        )


def dataset_module(cfg_dataset: DictConfig | dict) -> ModuleType:
    """The dataset module (``generate``, ``prepare``) the config's ``module``
    names by its dotted path, located as Hydra locates a ``_target_``."""
    name = str(cfg_dataset["module"])
    try:
        return get_object(name)
    except ImportError:
        raise InputError(f"dataset config: module '{name}' not found") from None


def load_dataset(cfg_dataset: DictConfig) -> LoadedData:
    """Load (or generate) the dataset a config names, validated and cleaned."""
    module = dataset_module(cfg_dataset)
    path, synthetic = dataset_file(cfg_dataset)
    if synthetic:
        frame = synthetic_frame(cfg_dataset)
        loaded = module.prepare(frame, cfg_dataset, f"{path}")
        loaded.source = "synthetic"
        return loaded
    return load_file(path, cfg_dataset)


def dataset_file(cfg_dataset: DictConfig) -> tuple[Path, bool]:
    """The dataset's file on this machine, and whether the synthetic stand-in replaces it (it
    is missing and ``synthetic_fallback`` is on)."""
    path = local_path(cfg_dataset.path).resolve()
    return path, not path.exists() and bool(cfg_dataset.synthetic_fallback)


def synthetic_frame(cfg_dataset: DictConfig) -> pd.DataFrame:
    """The seeded synthetic customers that stand in for a missing file (raw columns)."""
    rows, seed = int(cfg_dataset.synthetic_rows), int(cfg_dataset.synthetic_seed)
    if rows < 1:
        raise InputError(f"dataset.synthetic_rows={rows}: expected a whole number >= 1")
    if not 0 <= seed < 2**32:
        raise InputError(
            f"dataset.synthetic_seed={seed}: expected a whole number from 0 to 2**32 - 1"
        )
    return dataset_module(cfg_dataset).generate(rows, seed)


def load_file(path: str | Path, cfg_dataset: DictConfig) -> LoadedData:
    """Read, validate and clean a customer file of the configured dataset (CSV or Parquet,
    delimiter, encoding and header variants detected)."""
    raw, detected = read_table(path, cfg_dataset.get("encoding"))
    if raw.empty:
        raise InputError(
            f"{path}: no customer rows after the header (expected a header line and customer rows)"
        )
    loaded = dataset_module(cfg_dataset).prepare(raw, cfg_dataset, str(path))
    loaded.detected = {**detected, **loaded.detected}
    return loaded


def model_input_example(data: LoadedData, cfg_dataset: DictConfig, rows: int) -> pd.DataFrame:
    """The first rows as the logged model's input example, without the id column.

    The id is not a model input: leaving it out of the signature lets files whose ids are
    numbers (or text) score alike.
    """
    id_column = cfg_dataset.id_column
    example = data.frame.head(rows).reset_index(drop=True)
    return example.drop(columns=[id_column]) if id_column in example.columns else example


def data_profile(data: LoadedData) -> dict[str, Any]:
    """Per column of the cleaned frame: dtype, missing values, range (or distinct values)."""
    frame = data.frame
    columns: dict[str, dict[str, Any]] = {}
    for name in frame.columns:
        values = frame[name]
        entry: dict[str, Any] = {"dtype": str(values.dtype), "missing": int(values.isna().sum())}
        present = values.dropna()
        if pd.api.types.is_numeric_dtype(values):
            if len(present):
                entry["min"], entry["max"] = float(present.min()), float(present.max())
        else:
            entry["distinct"] = int(present.nunique())
            if len(present):
                text = present.astype(str)
                entry["min"], entry["max"] = str(text.min()), str(text.max())
        columns[str(name)] = entry
    return {
        "rows_raw": data.rows_raw,
        "rows_clean": data.rows_clean,
        "source": data.source,
        "columns": columns,
    }
