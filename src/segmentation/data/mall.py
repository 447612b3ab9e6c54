"""Mall customers: CustomerID, Gender, Age, Annual Income (k$), Spending Score (1-100)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from segmentation.data import LoadedData
from segmentation.data.reading import category_text, map_columns, typed_frame

INCOME = "Annual Income (k$)"
SPENDING = "Spending Score (1-100)"
NUMERIC = ["Age", INCOME, SPENDING]

# Synthetic segments modelled on the public file's five income/spending groups:
# (share, income mean, income sd, spending mean, spending sd, age mean, age sd).
_SEGMENTS = [
    (0.11, 26, 7, 20, 11, 45, 13),  # low income, low spending
    (0.11, 25, 7, 79, 10, 25, 5),  # low income, high spending
    (0.41, 55, 9, 50, 6, 42, 16),  # middle
    (0.195, 87, 16, 82, 9, 33, 4),  # high income, high spending
    (0.175, 88, 16, 17, 10, 41, 11),  # high income, low spending
]


def generate(n_rows: int, seed: int) -> pd.DataFrame:
    """Seeded synthetic mall customers with the real file's schema and group structure."""
    rng = np.random.default_rng(seed)
    shares = np.array([s[0] for s in _SEGMENTS])
    group = rng.choice(len(_SEGMENTS), size=n_rows, p=shares / shares.sum())
    params = np.array([s[1:] for s in _SEGMENTS], dtype=float)[group]
    income = rng.normal(params[:, 0], params[:, 1])
    spending = rng.normal(params[:, 2], params[:, 3])
    age = rng.normal(params[:, 4], params[:, 5])
    return pd.DataFrame(
        {
            "CustomerID": np.arange(1, n_rows + 1),
            "Gender": np.where(rng.random(n_rows) < 0.56, "Female", "Male"),
            "Age": np.clip(np.round(age), 18, 70).astype(int),
            INCOME: np.clip(np.round(income), 15, 137).astype(int),
            SPENDING: np.clip(np.round(spending), 1, 99).astype(int),
        }
    )


def prepare(raw: pd.DataFrame, cfg: DictConfig, path: str) -> LoadedData:
    """Map headers, type and validate columns, drop rows with missing values (counted)."""
    columns = OmegaConf.to_container(cfg.columns, resolve=True)
    frame, renamed = map_columns(raw.astype(object), columns, path)
    frame = typed_frame(frame, columns, path)
    if "Gender" in frame.columns:
        frame["Gender"] = genders(frame["Gender"])
    rows_in = len(frame)
    needed = [c for c in columns if c in frame.columns and c != "CustomerID"]
    frame = frame.dropna(subset=needed).reset_index(drop=True)
    cleaning = [
        {
            "rule": "drop_missing",
            "rows_in": rows_in,
            "rows_out": len(frame),
            "why": "a needed value is missing",
        }
    ]
    loaded = LoadedData(
        frame=frame,
        name=str(cfg.name),
        source="real",
        path=path,
        rows_raw=rows_in,
        cleaning=cleaning,
    )
    if renamed:
        loaded.detected["renamed"] = renamed
    return loaded


GENDERS = {
    **dict.fromkeys(("m", "male", "man"), "Male"),
    **dict.fromkeys(("f", "female", "woman"), "Female"),
}


def genders(values: pd.Series) -> pd.Series:
    """``Male`` or ``Female`` for the usual spellings (m, man, F, ...) of a Gender column
    (text and None), other values as they are."""
    return category_text(values, GENDERS)
