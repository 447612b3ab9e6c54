"""The dataset's feature engineering step (``dataset.engineer._target_``, one module per dataset
in this package): the first step of every pipeline, fitted once per study."""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from segmentation.data import LoadedData
from segmentation.errors import InputError


def make_engineer(cfg_dataset: DictConfig, data: LoadedData | None = None) -> Any:
    """The dataset's (unfitted) feature engineering step, set up from its config and data."""
    try:
        build = instantiate(cfg_dataset.engineer, _partial_=True)
    except InstantiationException as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"dataset config: cannot build its engineer ({first})") from None
    return build(cfg_dataset, data)
