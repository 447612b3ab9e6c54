"""Mall features (``conf/dataset/mall.yaml``'s ``engineer``): the numeric columns, Gender as a
number and two ratios, the first step of every pipeline of this dataset."""

from __future__ import annotations

import pandas as pd
from omegaconf import DictConfig
from sklearn.base import BaseEstimator, TransformerMixin

from segmentation.data import LoadedData
from segmentation.data.mall import INCOME, NUMERIC, SPENDING, genders
from segmentation.data.reading import as_numbers
from segmentation.errors import InputError


class MallFeatures(TransformerMixin, BaseEstimator):
    """Turn raw Mall rows into numeric features: the numeric columns plus ``Gender_Male``.

    Stateless; kept as an estimator so it travels inside the logged pipeline.
    """

    def fit(self, X: pd.DataFrame, y: object = None) -> MallFeatures:
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise InputError("Mall features need a table with named columns")
        out = pd.DataFrame(index=X.index)
        for column in NUMERIC:
            if column in X.columns:
                out[column] = as_numbers(X[column])
        if "Gender" in X.columns:
            out["Gender_Male"] = (genders(X["Gender"]) == "Male").astype(float)
        # Ratios for the `engineered` feature set: spending relative to income, income per
        # year of age (a proxy for career stage).
        if {INCOME, SPENDING} <= set(out.columns):
            out["Spending to Income"] = out[SPENDING] / out[INCOME].clip(lower=1.0)
        if {INCOME, "Age"} <= set(out.columns):
            out["Income per Year of Age"] = out[INCOME] / out["Age"].clip(lower=1.0)
        return out


def engineer(cfg: DictConfig | None = None, data: LoadedData | None = None) -> MallFeatures:
    """The feature engineering step of this dataset's pipelines (stateless: no settings)."""
    return MallFeatures()
