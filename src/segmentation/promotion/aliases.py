"""The registered model of a config and its aliases: what scoring needs of promotion, without
promotion's own imports (migration, plots)."""

from __future__ import annotations

from omegaconf import DictConfig

CHAMPION = "champion"
PREVIOUS = "previous"


def model_name(cfg: DictConfig) -> str:
    """The registered model of the config's dataset and feature space."""
    return str(cfg.tracking.registered_model_name)


def champion_uri(cfg: DictConfig) -> str:
    """``models:/<name>@champion`` for the config (the default model to score with)."""
    return f"models:/{model_name(cfg)}@{CHAMPION}"
