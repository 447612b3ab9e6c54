"""Feature sets (``conf/features``): which engineered columns form the clustering space."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from segmentation.errors import InputError


class FeatureSelector(TransformerMixin, BaseEstimator):
    """Select the feature set's columns from the engineered frame, as a float array.

    Parameters
    ----------
    columns : sequence of str
        Engineered column names, in order.
    """

    def __init__(self, columns: Sequence[str] = ()):
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: object = None) -> FeatureSelector:
        self._check(X)
        self.feature_names_in_ = np.asarray(list(self.columns), dtype=object)
        self.n_features_in_ = len(self.columns)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        self._check(X)
        values = X[list(self.columns)].to_numpy(dtype=float)
        return values

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(list(self.columns), dtype=object)

    def _check(self, X: pd.DataFrame) -> None:
        missing = [c for c in self.columns if c not in X.columns]
        if missing:
            raise InputError(
                f"feature set needs column(s) {missing}; engineered columns are {list(X.columns)}"
            )


def feature_matrix(engineered: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """The clustering space before scaling, refusing missing values."""
    selector = FeatureSelector(columns).fit(engineered)
    X = selector.transform(engineered)
    if np.isnan(X).any():
        bad = np.flatnonzero(np.isnan(X).any(axis=1))[:5]
        raise InputError(f"feature values missing after engineering in rows {bad.tolist()}")
    return X
