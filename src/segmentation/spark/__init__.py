"""The Spark engine (``conf/engine/spark.yaml``): training and batch scoring on tables beyond one
machine, with the same configs, the same MLflow runs and the same registered pyfunc model.

Importing this package does not import pyspark: :class:`segmentation.engines.SparkEngine` calls
these functions only for ``engine=spark``, and serving never needs a JVM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from segmentation.promotion.aliases import ModelRef


def run_spark_sweep(cfg: DictConfig) -> Any:
    """Run (or resume) the configured sweep on Spark (see :mod:`segmentation.spark.sweep`)."""
    from segmentation.spark.sweep import run_spark_sweep as run

    return run(cfg)


def score_table(
    dataset: DictConfig,
    engine: DictConfig,
    model_ref: ModelRef,
    input_path: str | Path,
    output_path: str | Path,
) -> Any:
    """Score a file or folder with Spark (see :mod:`segmentation.spark.scoring`)."""
    from segmentation.spark.scoring import score_table as score

    return score(dataset, engine, model_ref, input_path, output_path)


def spark_report(result: Any) -> None:
    """Print a Spark scoring's summary (see :func:`segmentation.spark.scoring.report`)."""
    from segmentation.spark.scoring import report

    report(result)
