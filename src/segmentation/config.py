"""Where the project lives and how its Hydra config is composed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig


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


def compose(overrides: Sequence[str] = (), config_name: str = "config") -> DictConfig:
    """Compose the real config outside ``@hydra.main`` (tests, scripts, notebooks)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    ensure_root_env()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return hydra_compose(
            config_name=config_name, overrides=list(overrides), return_hydra_config=False
        )
