"""The sweep on Spark: the local sweep's study, parent run, child runs, artifacts, registration
and insights (``segmentation.study``), with each trial fitted by Spark on every row.

Only the fit differs (:class:`SparkTrialRunner`): the trial's Spark model is converted to its
scikit-learn equivalent, so the logged and registered model is the local engine's pyfunc model.
Its metrics are the local engine's, computed on the seeded sample of the study (Euclidean
silhouette, Davies-Bouldin, Calinski-Harabasz) with Spark's own predictions, while segment
counts and shares, inertia and log-likelihood come from the whole table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from segmentation.errors import InputError
from segmentation.evaluation.metrics import cluster_metrics, model_metrics
from segmentation.features.space import SpaceConfig
from segmentation.spark.algorithms import check_spark_algorithms, spark_estimator
from segmentation.spark.convert import to_sklearn
from segmentation.spark.session import get_session, spark_errors
from segmentation.spark.space import ID, SparkTables, prepare_spark_space
from segmentation.study.console import show
from segmentation.study.definition import algorithm_specs, check_sweep
from segmentation.study.objective import Fit, TrialRunner
from segmentation.study.sweep import SweepResult, sweep_space


@dataclass
class SparkTrialRunner(TrialRunner):
    """The local objective (runs, params, constraints, artifacts, model) with a Spark fit."""

    tables: SparkTables | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.common_params["n_rows"] = self.tables.rows
        self.common_params["engine"] = "spark"

    def fit(self, name: str, params: dict[str, Any]) -> Fit:
        """Fit Spark's estimator on every row; score Spark's predictions on the sample."""
        space, sweep, tables = self.ctx.space, self.ctx.groups.sweep, self.tables
        estimator = spark_estimator(self.specs[name], params, self.seed)
        with spark_errors(f"trial fit ({name})"):
            start = time.perf_counter()
            model = estimator.fit(tables.table)
            fit_seconds = time.perf_counter() - start
            start = time.perf_counter()
            predicted = (
                model.transform(tables.sample).select(ID, "prediction").toPandas().sort_values(ID)
            )
            sizes = np.asarray(model.summary.clusterSizes, dtype=np.int64)
            converted = to_sklearn(model)
        labels = predicted["prediction"].to_numpy(dtype=np.int64)
        metrics, sil_values, sil_labels = cluster_metrics(
            space.X,
            labels,
            sample_above=int(sweep.silhouette.sample_above),
            sample_size=int(sweep.silhouette.sample_size),
            seed=self.seed,
        )
        present = sizes[sizes > 0]
        metrics["n_clusters"] = float(len(present))
        metrics["min_segment_fraction"] = float(present.min() / tables.rows)
        metrics["max_segment_fraction"] = float(present.max() / tables.rows)
        metrics["silhouette_sampled"] = float(len(space.X) < tables.rows)
        metrics.update(model_metrics(converted, space.X))
        if hasattr(model.summary, "logLikelihood"):
            metrics["log_likelihood"] = float(model.summary.logLikelihood)
        metrics["metrics_seconds"] = time.perf_counter() - start
        metrics["fit_seconds"] = fit_seconds
        return Fit(converted, labels, metrics, sil_values, sil_labels)


def run_spark_sweep(cfg: DictConfig) -> SweepResult:
    """Run (or resume) the configured study on Spark and register its best model.

    A composition root, as ``run_sweep``: it takes the whole config and gives each stage the
    groups it reads."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_sweep(cfg.sweep, cfg.tracking)
    specs = algorithm_specs(cfg.algorithm)
    check_spark_algorithms(specs)
    if int(cfg.sweep.workers) > 1:
        raise InputError("engine=spark: sweep.workers must be 1 (Spark parallelises each fit)")
    spark = get_session(cfg.engine)
    # Bad input stops here, nothing written.
    space, tables = prepare_spark_space(SpaceConfig.of(cfg), cfg.engine, spark)
    show(space.data.describe() + f" [engine=spark, {spark.sparkContext.master}]")
    try:
        result = sweep_space(cfg, space, 1, lambda ctx: SparkTrialRunner(ctx, tables=tables))
    finally:
        tables.table.unpersist()
    MlflowClient(str(cfg.paths.tracking_uri)).set_tag(result.parent_run_id, "engine", "spark")
    return result
