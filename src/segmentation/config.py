"""Where the project lives, how its Hydra config is composed, and the schemas that type-check
the config groups at compose time (structured configs in Hydra's ConfigStore)."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import MissingConfigException, OverrideParseException
from omegaconf import (
    MISSING,
    BooleanNode,
    DictConfig,
    EnumNode,
    FloatNode,
    IntegerNode,
    OmegaConf,
    PathNode,
)
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

# The name under which each group's schema is stored; a group's YAML files start from it.
SCHEMA = "_schema"

# Choices are enums: a value outside them stops the composition, naming the valid ones. Member
# names are the values (OmegaConf reads a choice by its name); StrEnum members compare, print and
# serialise as the plain strings the code and the logged configs use.


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


class ColumnKind(StrEnum):
    id = "id"
    numeric = "numeric"
    category = "category"
    date = "date"


@dataclass
class ColumnSpec:
    """One canonical column of a dataset file."""

    kind: ColumnKind = ColumnKind.numeric
    # Header variants accepted for it (case, spacing and punctuation are ignored).
    aliases: list[str] = field(default_factory=list)
    # false: a file without the column is read all the same.
    required: bool = True
    # Values below are refused (negative amounts, counts or ages are not valid).
    min: float | None = None


@dataclass
class DatasetConfig:
    name: str = MISSING
    # Dotted path of the module that reads, validates and cleans the dataset (data/<name>.py).
    module: str = MISSING
    # ``_target_`` of the feature engineering step that travels inside the model.
    engineer: Any = MISSING
    file: str = MISSING
    path: str = MISSING
    # When the real file is absent, generate seeded synthetic customers of the same schema.
    synthetic_fallback: bool = True
    synthetic_rows: int = MISSING
    synthetic_seed: int = 42
    id_column: str = MISSING
    columns: dict[str, ColumnSpec] = MISSING
    # ``box``: (value, group) pairs of the EDA box plots (null: the plots' defaults).
    eda: Any = None
    # The last campaign's 0/1 response column (null: the dataset has none).
    response_column: str | None = None
    # The CSV files' text encoding, a Python codec name (cp1252: a Windows Excel CSV); null:
    # UTF-8, or UTF-16 after its byte-order mark.
    encoding: str | None = None


class ImplausibleAction(StrEnum):
    drop = "drop"  # the rows are left out
    keep = "keep"  # only counted


class DuplicateAction(StrEnum):
    keep = "keep"
    drop = "drop"


@dataclass
class ImplausibleConfig:
    action: ImplausibleAction = ImplausibleAction.drop
    # null: no bound.
    income_max: int | None = None
    year_birth_min: int | None = None


@dataclass
class RetailCleaningConfig:
    """The retail cleaning rules, applied in this order (data/retail_marketing.py)."""

    constant_columns: list[str] = field(default_factory=list)
    implausible: ImplausibleConfig = field(default_factory=ImplausibleConfig)
    # median, drop or a number (a median learnt beforehand): a choice or a figure, which
    # OmegaConf cannot type as one, so data/retail_marketing.py checks it.
    missing_income: Any = "median"
    marital_groups: dict[str, str] = field(default_factory=dict)
    # Marital_Status values meaning the customer lives with a partner, and those meaning not;
    # any other value (not folded by marital_groups) is refused.
    partner_statuses: list[str] = MISSING
    no_partner_statuses: list[str] = MISSING
    duplicates: DuplicateAction = DuplicateAction.keep


@dataclass
class RetailDatasetConfig(DatasetConfig):
    # null: the day/month order decided from the whole column; dayfirst, monthfirst, or a
    # strptime format.
    date_format: str | None = None
    date_column: str = MISSING
    cleaning: RetailCleaningConfig = field(default_factory=RetailCleaningConfig)
    # Education as an ordered level.
    education_levels: dict[str, int] = MISSING


class Level(StrEnum):
    high = "high"
    low = "low"
    average = "average"


@dataclass
class PersonaFeature:
    """How a feature reads in persona names (null: derived from the label)."""

    label: str | None = None
    unit: str | None = None
    # A share, shown as a percentage.
    percent: bool = False
    high: str | None = None
    low: str | None = None
    very_high: str | None = None
    very_low: str | None = None


@dataclass
class PersonaRule:
    """Recommendations for segments at these levels (by feature label)."""

    when: dict[str, Level] = field(default_factory=dict)
    recommend: list[str] = field(default_factory=list)


@dataclass
class PersonaValue:
    """The segment value table's columns (null: the dataset has none)."""

    spend: str | None = None
    spend_label: str | None = None
    response: str | None = None
    note: str | None = None


@dataclass
class PersonasConfig:
    name: str = MISSING
    # A segment is "high" ("low") on a feature when its mean is this many population standard
    # deviations above (below) the population mean.
    threshold: float = 0.5
    # Beyond this z-score a trait reads "very high"/"very low" when names would clash.
    strong: float = 1.5
    max_traits: int = 2
    neutral_name: str = "Average customers"
    # Feature -> how it reads; the missing words are derived.
    features: dict[str, PersonaFeature] = field(default_factory=dict)
    # In order.
    rules: list[PersonaRule] = field(default_factory=list)
    default: list[str] = field(default_factory=list)
    unassigned: list[str] = field(default_factory=list)
    # Naming by convention: ``rfm`` (the RF(M) score table) and ``grid`` (two features' levels).
    naming: dict[str, Any] = field(default_factory=dict)
    value: PersonaValue = field(default_factory=PersonaValue)
    # Attributes profiled per segment besides the clustered ones, by group.
    attributes: dict[str, list[str]] = field(default_factory=dict)


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


class Objective(StrEnum):
    silhouette = "silhouette"  # the best feasible silhouette wins
    pareto = "pareto"  # silhouette and stability_ari both maximised


@dataclass
class SweepConfig:
    n_trials: int = 50
    seed: int = 42
    workers: int = 1
    objective: Objective = Objective.silhouette
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


class StorageKind(StrEnum):
    journal = "journal"  # Optuna's JournalStorage in a file (one machine)
    rdb = "rdb"  # a database whose URL is in the environment variable ``url_env``


@dataclass
class StorageConfig:
    name: str = "local"
    kind: StorageKind = StorageKind.journal
    url_env: str | None = None


@dataclass
class EngineConfig:
    # The engine's class, built with ``instantiate`` (segmentation.engines).
    _target_: str = MISSING
    name: str = MISSING


@dataclass
class SparkEngineConfig(EngineConfig):
    """``conf/engine/spark.yaml``: the SparkSession's settings (spark/session.py)."""

    # null: the SPARK_MASTER environment variable, else local[*].
    master: str | None = None
    app_name: str = "segmentation"
    driver_memory: str = "4g"
    shuffle_partitions: int = 8
    # Rows collected to the driver for the sweep's figures, plots and personas.
    sample_rows: int = 20000
    # null: a file in the temp folder.
    log_file: str | None = None
    conf: dict[str, Any] = field(default_factory=dict)


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
    "dataset": DatasetConfig,
    "personas": PersonasConfig,
    "features": FeaturesConfig,
    "scaling": ScalingConfig,
    "sweep": SweepConfig,
    "tracking": TrackingConfig,
    "storage": StorageConfig,
    "engine": EngineConfig,
    "promotion": PromotionConfig,
    "monitoring": MonitoringConfig,
    "audiences": AudiencesConfig,
}


# Options whose schema extends their group's: ``<group>/_schema_<option>``.
OPTION_SCHEMAS = {
    ("dataset", "retail_marketing"): RetailDatasetConfig,
    ("engine", "spark"): SparkEngineConfig,
}


def register_schemas() -> None:
    """Store each group's schema as ``<group>/_schema`` (idempotent)."""
    store = ConfigStore.instance()
    for group, node in SCHEMAS.items():
        store.store(group=group, name=SCHEMA, node=node)
    for (group, option), node in OPTION_SCHEMAS.items():
        store.store(group=group, name=f"{SCHEMA}_{option}", node=node)


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


def dataset_columns() -> dict[str, dict[str, Any]]:
    """Each dataset's column specs (canonical name -> ``aliases``, ``required``), by name."""
    return {
        name: OmegaConf.to_container(
            OmegaConf.load(conf_dir() / "dataset" / f"{name}.yaml").columns, resolve=False
        )
        for name in group_options("dataset")
    }


# Groups a user picks an option of on the command line (``experiments``: the presets).
CHOSEN_GROUPS = (
    "dataset",
    "features",
    "scaling",
    "algorithm",
    "sampler",
    "storage",
    "engine",
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


# What a typed setting expects, by the kind of node OmegaConf failed to put the value in.
_EXPECTED = (
    (BooleanNode, "a boolean"),
    (IntegerNode, "an integer"),
    (FloatNode, "a float"),
    (PathNode, "a path"),
)


def _expected(node: object) -> str | None:
    if isinstance(node, EnumNode):
        return f"one of {', '.join(node.enum_type.__members__)}"
    return next((text for kind, text in _EXPECTED if isinstance(node, kind)), None)


def _first_line(text: object) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def given_value(key: str, overrides: Sequence[str]) -> str | None:
    """The value ``key`` was given on the command line (its last override), if it was."""
    found = None
    dotted = re.sub(r"\[(\d+)\]", r".\1", key)  # OmegaConf names list items rules[0]
    for item in overrides:
        name, sep, value = item.partition("=")
        if sep and name.lstrip("+~") == dotted:
            found = value
    return found


def composition_error(exc: BaseException, overrides: Sequence[str] = ()) -> str:
    """One line for a config that cannot be composed: the key, the value given and what was
    expected (Hydra's own message is several lines, its cause's block of ``full_key`` and
    ``object_type`` lines after it)."""
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options:
        group, _, name = str(exc.missing_cfg_file).rpartition("/")
        options = [o for o in exc.options if not o.startswith(SCHEMA)]
        return f"{group}={name}: no such option of {group}; choose from {', '.join(options)}"
    if isinstance(exc, OverrideParseException):
        return (
            f"{exc.override}: cannot be read ({_first_line(exc)}); expected key=value "
            "(https://hydra.cc/docs/advanced/override_grammar/basic/)"
        )
    cause = exc if isinstance(exc, OmegaConfBaseException) else exc.__cause__
    key = getattr(cause, "full_key", None) if isinstance(cause, OmegaConfBaseException) else None
    if not key:
        where = _first_line(exc)
        if "--multirun" in str(exc):  # a comma-separated value without --multirun
            return f"{where}: expected one value, or --multirun to sweep over them"
        why = _first_line(cause) if cause is not None else ""
        return f"{where}: {why}" if why and why not in where else where
    value = given = given_value(key, overrides)
    reason = _first_line(cause)
    if isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
        schema = getattr(cause, "object_type", None)
        known = (
            [f.name for f in dataclasses.fields(schema)] if dataclasses.is_dataclass(schema) else []
        )
        parent = key.rpartition(".")[0] or "the config"
        what = f"no such setting in {parent}"
        return f"{key}{'=' + value if value is not None else ''}: {what}" + (
            f"; expected one of {', '.join(known)}" if known else ""
        )
    expected = _expected(getattr(cause, "child_node", None))
    if value is None and getattr(cause, "value", None) is not None:
        value = str(cause.value)
    if expected is None:
        return f"{key}{'=' + value if value is not None else ''}: {reason}"
    # Where the value came from when the command line did not give it: a config file.
    where = "" if given is not None else f" ({_first_line(exc)})"
    return f"{key}={value}: expected {expected}{where}"
