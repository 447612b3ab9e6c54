"""Scaling options (``conf/scaling``): standard, robust, minmax or none."""

from __future__ import annotations

from sklearn.base import TransformerMixin
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, RobustScaler, StandardScaler

from segmentation.errors import InputError

SCALERS = {
    "standard": StandardScaler,
    "robust": RobustScaler,
    "minmax": MinMaxScaler,
    "none": lambda: FunctionTransformer(None, validate=False),
}


def make_scaler(name: str) -> TransformerMixin:
    """A new, unfitted scaler by config name."""
    try:
        return SCALERS[name]()
    except KeyError:
        raise InputError(f"scaling '{name}' unknown; expected one of {sorted(SCALERS)}") from None
