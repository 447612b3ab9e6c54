"""Where a sweep and batch scoring run (``conf/engine``): the group's ``_target_`` names the
engine and :func:`engine` builds it with ``instantiate``; every engine has ``sweep``,
``score`` and ``report``. Each engine imports its stage only when one of them runs: a command
does not pay for the sweep's Optuna and matplotlib, or for pyspark, unless it uses them."""

from __future__ import annotations

from typing import Any, Protocol

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from segmentation.errors import InputError
from segmentation.study.processes import start_pool_server


class Engine(Protocol):
    def sweep(self, cfg: DictConfig) -> Any: ...

    def score(
        self, cfg: DictConfig, input_path: str, output_path: str, model_uri: str | None
    ) -> Any: ...

    def report(self, result: Any) -> None: ...


class LocalEngine:
    """pandas and scikit-learn in this process."""

    def __init__(self, name: str = "local", **settings: Any):
        self.name = name
        self.settings = settings

    def sweep(self, cfg: DictConfig) -> Any:
        if int(cfg.tracking.artifact_workers) > 0 and str(cfg.sweep.workers) == "1":
            start_pool_server()  # its imports beside this process's import of the sweep
        from segmentation.study.sweep import run_sweep

        return run_sweep(cfg)

    def score(self, cfg: DictConfig, input_path: str, output_path: str, model_uri: str | None):
        from segmentation.serving import predict

        return predict.score_file(cfg, input_path, output_path, model_uri)

    def report(self, result: Any) -> None:
        from segmentation.serving import predict

        predict.report(result)


class SparkEngine:
    """Spark (``engine=spark``); its settings are read by :mod:`segmentation.spark.session`."""

    def __init__(self, name: str = "spark", **settings: Any):
        self.name = name
        self.settings = settings

    def sweep(self, cfg: DictConfig) -> Any:
        from segmentation import spark

        return spark.run_spark_sweep(cfg)

    def score(self, cfg: DictConfig, input_path: str, output_path: str, model_uri: str | None):
        from segmentation import spark

        return spark.score_table(cfg, input_path, output_path, model_uri)

    def report(self, result: Any) -> None:
        from segmentation import spark

        spark.spark_report(result)


def engine(cfg: DictConfig) -> Engine:
    """The engine ``cfg.engine`` names by its ``_target_``."""
    try:
        return instantiate(cfg.engine)
    except InstantiationException as exc:
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"engine: cannot build it ({first})") from None
