"""The algorithm configs (``conf/algorithm``) on Spark: the same names, fixed arguments and
Optuna search spaces, mapped to ``pyspark.ml.clustering`` estimators.

- kmeans -> KMeans: n_clusters -> k, max_iter -> maxIter, init -> initMode (k-means++ ->
  k-means||, random -> random), tol, seed. Spark runs one initialisation (n_init ignored) and
  never switches to mini-batches (minibatch_above ignored): every row, every iteration.
- bisecting_kmeans -> BisectingKMeans: n_clusters -> k, max_iter -> maxIter, seed. Spark splits
  every divisible leaf level by level (bisecting_strategy ignored), minDivisibleClusterSize 1.
- gmm -> GaussianMixture: n_components -> k, max_iter -> maxIter, tol, seed. Spark fits full
  covariances only (covariance_type ignored: the run still logs the searched value) and starts
  from random samples (no KMeans start, n_init, init_sample_size).

DBSCAN and HDBSCAN have no Spark counterpart and are refused with engine=spark.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from segmentation.errors import InputError

SUPPORTED = ("kmeans", "bisecting_kmeans", "gmm")
# Searched or fixed parameters Spark has no counterpart for (see the module's table).
IGNORED = {
    "kmeans": ("n_init", "minibatch_above", "algorithm"),
    "bisecting_kmeans": ("bisecting_strategy", "n_init", "init", "algorithm"),
    "gmm": ("covariance_type", "n_init", "init_params", "init_sample_size", "reg_covar"),
}


def spark_kind(spec: Mapping[str, Any]) -> str:
    """Which Spark algorithm an algorithm config maps to (by its estimator factory's module)."""
    target = str((spec.get("estimator") or {}).get("_target_", ""))
    parts = target.split(".")
    return parts[-2] if len(parts) >= 2 else target


def check_spark_algorithms(specs: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse, in one line, algorithms Spark does not have (DBSCAN, HDBSCAN)."""
    bad = sorted(name for name, spec in specs.items() if spark_kind(spec) not in SUPPORTED)
    if bad:
        raise InputError(
            f"engine=spark: algorithm(s) {bad} have no Spark counterpart; choose from "
            f"{', '.join(SUPPORTED)} (e.g. algorithm=kmeans)"
        )


def spark_estimator(spec: Mapping[str, Any], params: Mapping[str, Any], seed: int) -> Any:
    """The unfitted ``pyspark.ml.clustering`` estimator of a trial (features column
    ``features``, predictions in ``prediction``)."""
    from pyspark.ml.clustering import BisectingKMeans, GaussianMixture, KMeans

    kind = spark_kind(spec)
    k = int(params.get("n_clusters") or params.get("n_components") or 2)
    common: dict[str, Any] = {"k": k, "seed": int(seed), "featuresCol": "features"}
    if params.get("max_iter") is not None:
        common["maxIter"] = int(params["max_iter"])
    if kind == "kmeans":
        init = "random" if params.get("init") == "random" else "k-means||"
        extra = {"tol": float(params["tol"])} if params.get("tol") is not None else {}
        return KMeans(initMode=init, **common, **extra)
    if kind == "bisecting_kmeans":
        return BisectingKMeans(**common)
    if kind == "gmm":
        extra = {"tol": float(params["tol"])} if params.get("tol") is not None else {}
        return GaussianMixture(probabilityCol="probability", **common, **extra)
    raise InputError(f"engine=spark: no Spark algorithm for '{kind}'")
