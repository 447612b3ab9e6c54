"""The registered model of a config and its aliases: what scoring needs of promotion, without
promotion's own imports (migration, plots)."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

CHAMPION = "champion"
PREVIOUS = "previous"


def model_name(tracking: DictConfig) -> str:
    """The registered model of the ``tracking`` group (the dataset's and feature space's)."""
    return str(tracking.registered_model_name)


def champion_uri(tracking: DictConfig) -> str:
    """``models:/<name>@champion`` of the ``tracking`` group (the default model to score with)."""
    return f"models:/{model_name(tracking)}@{CHAMPION}"


@dataclass(frozen=True)
class ModelRef:
    """A model to score with: its URI and the MLflow store that resolves it."""

    uri: str
    tracking_uri: str

    @classmethod
    def of(cls, tracking: DictConfig, paths: DictConfig, uri: str | None = None) -> ModelRef:
        """``uri``, else the champion of the ``tracking`` group, in the ``paths`` group's store."""
        return cls(uri or champion_uri(tracking), str(paths.tracking_uri))
