"""Where the project lives, how its Hydra config is composed, and the schemas that type-check
the config groups at compose time (structured configs in Hydra's ConfigStore)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import MISSING, DictConfig, OmegaConf

# The name under which each group's schema is stored; a group's YAML files start from it.
SCHEMA = "_schema"


def project_root() -> Path:
    """Return the project folder (holding ``conf/`` and ``experiments/``).

    ``SEGMENTATION_ROOT`` wins; otherwise the checkout this package is installed from
    (the Makefile installs it in editable mode).
    """
    env = os.environ.get("SEGMENTATION_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2]


def conf_dir() -> Path:
    """Return the folder of the Hydra config groups."""
    return project_root() / "conf"


def ensure_root_env() -> None:
    """Expose the project root to the configs (``${oc.env:SEGMENTATION_ROOT}``)."""
    os.environ.setdefault("SEGMENTATION_ROOT", str(project_root()))


@dataclass
class PathsConfig:
    root: str = MISSING
    data_dir: str = MISSING
    mlruns_dir: str = MISSING
    tracking_uri: str = MISSING
    # null: an MLflow server places the artifacts.
    artifact_root: str | None = None
    study_dir: str = MISSING
    reports_dir: str = MISSING


@dataclass
class FeaturesConfig:
    name: str = MISSING
    columns: list[str] = MISSING


@dataclass
class ScalingConfig:
    name: str = MISSING
    # A ``_target_`` node: the scikit-learn transformer.
    scaler: Any = MISSING


@dataclass
class ConstraintsConfig:
    k_min: int = 2
    k_max: int = 10
    max_noise_fraction: float = 0.10
    min_segment_fraction: float = 0.02
    min_stability: float | None = 0.6


@dataclass
class SilhouetteConfig:
    sample_above: int = 20000
    sample_size: int = 10000
    curve_fit_rows: int = 10000
    curve_sample_size: int = 4000


@dataclass
class StabilityConfig:
    bootstraps: int = 5
    sample_rows: int | None = 2000


@dataclass
class SweepConfig:
    n_trials: int = 50
    seed: int = 42
    workers: int = 1
    objective: str = "silhouette"
    constraints: ConstraintsConfig = field(default_factory=ConstraintsConfig)
    silhouette: SilhouetteConfig = field(default_factory=SilhouetteConfig)
    heartbeat_interval: int = 5
    grace_period: int = 20
    progress: bool = True
    stability: StabilityConfig = field(default_factory=StabilityConfig)


@dataclass
class TrackingConfig:
    register_model: bool = True
    registered_model_name: str = MISSING
    log_models: bool = True
    log_plots: bool = True
    input_example_rows: int = 5
    artifact_workers: int = 2


@dataclass
class StorageConfig:
    name: str = "local"
    kind: str = "journal"
    url_env: str | None = None


@dataclass
class PromotionConfig:
    min_silhouette: float = 0.35
    min_stability_ari: float = 0.7
    max_reassigned_share: float | None = None


@dataclass
class DriftThresholds:
    psi_warn: float = 0.1
    psi_drift: float = 0.25
    segment_psi_drift: float = 0.25
    min_rows: int = 50
    low_confidence: float = 0.5
    max_low_confidence_increase: float = 0.1
    max_low_confidence_share: float = 0.3
    p_value: float = 0.01


@dataclass
class MonitoringConfig:
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)


@dataclass
class HoldoutConfig:
    share: float = 0.0
    seed: int = 42


@dataclass
class PowerConfig:
    alpha: float = 0.05
    power: float = 0.8
    default_baseline: float = 0.1


@dataclass
class AudiencesConfig:
    output_dir: str = MISSING
    identifiers: dict[str, list[str]] = field(default_factory=dict)
    phone_country_code: str | None = None
    min_size: dict[str, int] = field(default_factory=dict)
    holdout: HoldoutConfig = field(default_factory=HoldoutConfig)
    power: PowerConfig = field(default_factory=PowerConfig)


SCHEMAS = {
    "paths": PathsConfig,
    "features": FeaturesConfig,
    "scaling": ScalingConfig,
    "sweep": SweepConfig,
    "tracking": TrackingConfig,
    "storage": StorageConfig,
    "promotion": PromotionConfig,
    "monitoring": MonitoringConfig,
    "audiences": AudiencesConfig,
}


def register_schemas() -> None:
    """Store each group's schema as ``<group>/_schema`` (idempotent)."""
    store = ConfigStore.instance()
    for group, node in SCHEMAS.items():
        store.store(group=group, name=SCHEMA, node=node)


register_schemas()


def compose(overrides: Sequence[str] = (), config_name: str = "config") -> DictConfig:
    """Compose the real config outside ``@hydra.main`` (tests, scripts, notebooks)."""
    ensure_root_env()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(
            config_name=config_name, overrides=list(overrides), return_hydra_config=False
        )


def group_options(group: str) -> list[str]:
    """The options of a config group (its YAML files), or the presets for ``experiments``."""
    folder = project_root() / "experiments" if group == "experiments" else conf_dir() / group
    return sorted(p.stem for p in folder.glob("*.yaml"))


def feature_sets() -> dict[str, list[str]]:
    """Each feature set's columns, by name."""
    return {
        name: list(OmegaConf.load(conf_dir() / "features" / f"{name}.yaml").columns)
        for name in group_options("features")
    }


def presets_of_dataset(dataset: str) -> list[str]:
    """The presets in ``experiments/`` that use ``dataset``."""
    out = []
    for name in group_options("experiments"):
        preset = OmegaConf.load(project_root() / "experiments" / f"{name}.yaml")
        for entry in preset.get("defaults") or []:
            if isinstance(entry, DictConfig) and entry.get("override /dataset") == dataset:
                out.append(name)
    return out


# Groups a user picks an option of on the command line (``experiments``: the presets).
CHOSEN_GROUPS = (
    "dataset",
    "features",
    "scaling",
    "algorithm",
    "sampler",
    "storage",
    "promotion",
    "experiments",
)


def unknown_option(overrides: Sequence[str]) -> str | None:
    """One line naming the first override that picks an option its group does not have, with
    the valid ones (Hydra's own message is a traceback-like block); ``None`` if all exist."""
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.lstrip("+~")
        if not sep or key not in CHOSEN_GROUPS:
            continue
        options = [o for o in group_options(key) if o != SCHEMA]
        names = [v.strip() for v in value.strip("[]").split(",") if v.strip()]
        bad = [n for n in names if n not in options]
        if bad:
            what = "preset" if key == "experiments" else "option of " + key
            return f"{key}={bad[0]}: no such {what}; choose from {', '.join(options)}"
    return None
