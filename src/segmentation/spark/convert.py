"""Fitted Spark models -> the scikit-learn estimators of :mod:`segmentation.spark.estimators`
(the registered model holds those, so serving needs no JVM)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from segmentation.spark.estimators import (
    BisectingTree,
    gmm_from_spark,
    kmeans_from_spark,
    minmax_scaler_from_spark,
    robust_scaler_from_spark,
    standard_scaler_from_spark,
)


def to_sklearn(model: Any) -> Any:
    """The scikit-learn estimator that predicts as the fitted Spark clustering ``model``."""
    from pyspark.ml.clustering import BisectingKMeansModel, GaussianMixtureModel, KMeansModel

    if isinstance(model, KMeansModel):
        summary = model.summary
        return kmeans_from_spark(
            np.asarray(model.clusterCenters()), summary.trainingCost, summary.numIter
        )
    if isinstance(model, BisectingKMeansModel):
        return bisecting_tree(model)
    if isinstance(model, GaussianMixtureModel):
        return gmm_from_spark(
            np.asarray(model.weights),
            np.asarray([g.mean.toArray() for g in model.gaussians]),
            np.asarray([g.cov.toArray() for g in model.gaussians]),
            model.summary.logLikelihood,
        )
    raise TypeError(f"no scikit-learn equivalent for {type(model).__name__}")


def bisecting_tree(model: Any) -> BisectingTree:
    """The whole tree of a ``BisectingKMeansModel`` (Spark exposes only the leaf centres; the
    tree, which decides assignments, is read from the model as Spark saves it)."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    with tempfile.TemporaryDirectory() as tmp:
        model.write().overwrite().save(tmp)
        meta_file = next((Path(tmp) / "data" / "metadata").glob("part-*"))
        root_id = int(json.loads(meta_file.read_text().splitlines()[0])["rootId"])
        nodes = (
            spark.read.parquet(str(Path(tmp) / "data" / "data"))
            .select("index", vector_to_array("center").alias("center"), "children")
            .toPandas()
        )
    position = {int(i): p for p, i in enumerate(nodes["index"])}
    children = [[position[int(c)] for c in kids] for kids in nodes["children"]]
    tree = BisectingTree(
        centres=np.stack(nodes["center"].to_numpy()).astype(np.float64),
        children=children,
        leaf_ids=[int(i) if i >= 0 else -1 for i in nodes["index"]],
        root=position[root_id],
    )
    return tree.fit()


def scaler_to_sklearn(model: Any, n_rows: int) -> Any:
    """The scikit-learn scaler equal to a fitted Spark ``StandardScalerModel``,
    ``MinMaxScalerModel`` or ``RobustScalerModel``."""
    kind = type(model).__name__
    if kind == "MinMaxScalerModel":
        return minmax_scaler_from_spark(model.originalMin.toArray(), model.originalMax.toArray())
    if kind == "RobustScalerModel":
        return robust_scaler_from_spark(model.median.toArray(), model.range.toArray())
    return standard_scaler_from_spark(model.mean.toArray(), model.std.toArray(), n_rows)
