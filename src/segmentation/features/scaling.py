"""Scaling (``conf/scaling``): the scaler is built from the group's ``scaler`` node."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig
from sklearn.base import TransformerMixin


def make_scaler(cfg_scaling: DictConfig) -> TransformerMixin:
    """A new, unfitted scaler from ``cfg.scaling``."""
    return instantiate(cfg_scaling.scaler)
