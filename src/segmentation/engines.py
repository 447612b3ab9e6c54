"""Where a sweep and batch scoring run (``conf/engine``): the group's ``_target_`` names the
engine and :func:`engine` builds it with ``instantiate``; every engine has ``sweep``,
``score`` and ``report``. Each engine imports its stage only when one of them runs: a command
does not pay for the sweep's Optuna and matplotlib, or for pyspark, unless it uses them."""

from __future__ import annotations

import gc
from typing import Any, Protocol

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from segmentation.errors import InputError
from segmentation.promotion.aliases import ModelRef
from segmentation.study.processes import start_pool_server


class Engine(Protocol):
    """The sweep takes the whole config (it uses every group); batch scoring the dataset
    group and the model, the engine's own group being the engine's."""

    def sweep(self, cfg: DictConfig) -> Any: ...

    def score(
        self, dataset: DictConfig, model_ref: ModelRef, input_path: str, output_path: str
    ) -> Any: ...

    def report(self, result: Any) -> None: ...


class LocalEngine:
    """pandas and scikit-learn in this process."""

    def __init__(self, name: str = "local", **settings: Any):
        self.name = name
        self.settings = settings

    def sweep(self, cfg: DictConfig) -> Any:
        if cfg.tracking.artifact_workers > 0 and cfg.sweep.workers == 1:
            start_pool_server()  # its imports beside this process's import of the sweep
        from segmentation.study.sweep import run_sweep

        # The libraries just imported stay: the collector's full passes need not visit them
        # while the sweep runs (a process that sweeps again collects them as before).
        gc.freeze()
        try:
            return run_sweep(cfg)
        finally:
            gc.unfreeze()

    def score(self, dataset: DictConfig, model_ref: ModelRef, input_path: str, output_path: str):
        from segmentation.serving import predict

        return predict.score_file(dataset, model_ref, input_path, output_path)

    def report(self, result: Any) -> None:
        from segmentation.serving import predict

        predict.report(result)


class SparkEngine:
    """Spark (``engine=spark``); its settings (the engine group) go to
    :mod:`segmentation.spark.session`."""

    def __init__(self, name: str = "spark", **settings: Any):
        self.name = name
        self.settings = settings

    def sweep(self, cfg: DictConfig) -> Any:
        from segmentation import spark

        return spark.run_spark_sweep(cfg)

    def score(self, dataset: DictConfig, model_ref: ModelRef, input_path: str, output_path: str):
        from segmentation import spark

        group = OmegaConf.create({"name": self.name, **self.settings})
        return spark.score_table(dataset, group, model_ref, input_path, output_path)

    def report(self, result: Any) -> None:
        from segmentation import spark

        spark.spark_report(result)


def engine(group: DictConfig) -> Engine:
    """The engine the ``engine`` group names by its ``_target_``."""
    try:
        return instantiate(group)
    except InstantiationException as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"engine: cannot build it ({first})") from None
