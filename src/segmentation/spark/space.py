"""The feature space of a Spark study: the whole table cleaned, engineered and scaled by Spark
(the dataset's own ``prepare`` and fitted engineering applied per batch), and a seeded, bounded
sample of it collected as the :class:`~segmentation.features.space.FeatureSpace` that metrics,
plots, profiles and the logged model's example use."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from segmentation.data import LoadedData, dataset_module, model_input_example
from segmentation.errors import InputError
from segmentation.features.engineering import make_engineer
from segmentation.features.scaling import make_scaler
from segmentation.features.selection import feature_matrix
from segmentation.features.space import FeatureSpace, check_feature_set
from segmentation.spark.convert import scaler_to_sklearn
from segmentation.spark.reading import canonical_text, column_renames, read_input
from segmentation.spark.session import spark_errors

ID = "_id"
SPARK_SCALINGS = ("standard", "minmax", "robust", "none")


@dataclass
class SparkLoadedData(LoadedData):
    """The sample's cleaned frame (``frame``) with the whole table's row counts."""

    rows_total: int = 0

    @property
    def rows_clean(self) -> int:
        return self.rows_total


@dataclass
class SparkTables:
    """The Spark side of a study: every row's ``features`` (scaled vector) and the sample."""

    table: Any
    sample: Any
    rows: int


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.astype(object)
    return out.where(out.notna(), None)


def _fraction(wanted: int, rows: int) -> float:
    return min(1.0, 1.5 * wanted / max(rows, 1))


def engineering(cfg_dataset: dict, path: str, engineer: Any, columns: list[str]):
    """Per batch of ``mapInPandas``: the dataset's typing and cleaning, then the fitted
    engineering and the feature set's columns (missing values refused, as locally)."""
    dataset = OmegaConf.create(cfg_dataset)
    names = [f"f{i}" for i in range(len(columns))]

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        module = dataset_module(dataset)
        for batch in batches:
            if batch.empty:
                continue
            loaded = module.prepare(_plain(batch), dataset, path)
            if loaded.frame.empty:
                continue
            X = feature_matrix(engineer.transform(loaded.frame), columns)
            yield pd.DataFrame(X, columns=names)

    return run, ", ".join(f"{n} double" for n in names)


def table_settings(
    dataset: DictConfig, sample: LoadedData, text: Any, path: str
) -> tuple[DictConfig, dict[str, Any]]:
    """The dataset config every batch is prepared with, and the figures its cleaning and
    engineering learn from the whole table (the dataset module's ``TABLE_FIGURES``, e.g. the
    retail reference date and median Income), aggregated by Spark over every cleaned row.

    The day/month order of dates is decided once, on the sample, so that every batch reads
    them alike (a batch alone may not decide it)."""
    from pyspark.sql import functions as F

    settings = OmegaConf.to_container(dataset, resolve=True)
    order = (sample.detected.get("dates") or {}).get("order")
    if order and not settings.get("date_format"):
        settings["date_format"] = order
    module = dataset_module(dataset)
    spec = getattr(module, "TABLE_FIGURES", None)
    if not spec:
        return OmegaConf.create(settings), {}

    def rows(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        config = OmegaConf.create(settings)
        for batch in batches:
            if not batch.empty:
                yield module.figure_rows(_plain(batch), config, path)

    aggregates = {"max": F.max, "median": F.median}  # median: exact, as pandas'
    schema = ", ".join(f"{name} {kind}" for name, (_, kind) in spec.items())
    row = (
        text.mapInPandas(rows, schema)
        .agg(*[aggregates[how](name).alias(name) for name, (how, _) in spec.items()])
        .first()
    )
    figures = {name: row[name] for name in spec}
    missing = [name for name, value in figures.items() if value is None]
    if missing:
        raise InputError(f"{path}: no values to learn {missing} from")
    return module.with_figures(OmegaConf.create(settings), figures), figures


def read_training_table(cfg: DictConfig, spark: Any) -> tuple[Any, str, str]:
    """The configured dataset as Spark text columns (canonical names), its source and path."""
    specs = OmegaConf.to_container(cfg.dataset.columns, resolve=True)
    path = Path(str(cfg.dataset.path)).expanduser().resolve()
    if not path.exists() and cfg.dataset.get("synthetic_fallback", False):
        module = dataset_module(cfg.dataset)
        frame = module.generate(int(cfg.dataset.synthetic_rows), int(cfg.dataset.synthetic_seed))
        table = spark.createDataFrame(frame.astype(str))
        source = "synthetic"
    else:
        table = read_input(spark, path)
        source = "real"
    renames = column_renames(list(table.columns), specs, path)
    return table.select(*canonical_text(table, specs, renames)), source, str(path)


def table_hash(text: Any) -> str:
    """A content hash of the table computed by Spark (row order does not matter)."""
    from pyspark.sql import functions as F

    row = text.select(
        F.count(F.lit(1)).alias("n"),
        F.bit_xor(F.xxhash64(*text.columns)).alias("x"),
    ).first()
    digest = hashlib.sha256("\x1f".join(text.columns).encode())
    digest.update(f"spark:{row['n']}:{row['x']}".encode())
    return digest.hexdigest()[:16]


def spark_scaler(scaling: str) -> Any:
    """The ``pyspark.ml`` scaler of a scaling config, set as its scikit-learn namesake scales
    (RobustScaler centred on the median; its quantiles are Spark's, relative error 0.001)."""
    from pyspark.ml.feature import MinMaxScaler, RobustScaler, StandardScaler

    columns = {"inputCol": "raw", "outputCol": "features"}
    return {
        "standard": lambda: StandardScaler(withMean=True, withStd=True, **columns),
        "minmax": lambda: MinMaxScaler(min=0.0, max=1.0, **columns),
        "robust": lambda: RobustScaler(withCentering=True, withScaling=True, **columns),
    }[scaling]()


def scale_terms(scaler: Any) -> tuple[np.ndarray, np.ndarray]:
    """``centre`` and ``spread`` with ``scaler.transform(x) == (x - centre) / spread``."""
    if hasattr(scaler, "data_min_"):  # MinMaxScaler: x * scale_ + min_
        return -scaler.min_ / scaler.scale_, 1.0 / scaler.scale_
    centre = getattr(scaler, "center_", getattr(scaler, "mean_", None))
    return np.asarray(centre, dtype=np.float64), np.asarray(scaler.scale_, dtype=np.float64)


def affine(vector: Any, centre: np.ndarray, spread: np.ndarray) -> Any:
    """A Spark vector column scaled element-wise: ``(x - centre) / spread``."""
    from pyspark.ml.functions import array_to_vector, vector_to_array
    from pyspark.sql import functions as F

    c = F.array(*[F.lit(float(v)) for v in centre])
    d = F.array(*[F.lit(float(v)) for v in spread])
    return array_to_vector(
        F.transform(
            vector_to_array(vector),
            lambda x, i: (x - F.element_at(c, i + 1)) / F.element_at(d, i + 1),
        )
    )


def prepare_spark_space(cfg: DictConfig, spark: Any) -> tuple[FeatureSpace, SparkTables]:
    """Read, clean, engineer and scale the whole table with Spark; collect a seeded sample."""
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    scaling = str(cfg.scaling.name)
    if scaling not in SPARK_SCALINGS:
        raise InputError(
            f"engine=spark: scaling={scaling} is not available; use one of {SPARK_SCALINGS}"
        )
    seed = int(cfg.sweep.seed)
    wanted = int(cfg.engine.sample_rows)
    with spark_errors(f"dataset {cfg.dataset.name}"):
        text, source, path = read_training_table(cfg, spark)
        rows_raw = text.count()
        raw_sample = text.sample(fraction=_fraction(wanted, rows_raw), seed=seed).limit(wanted)
        raw_rows = _plain(raw_sample.toPandas())
        module = dataset_module(cfg.dataset)
        sample = module.prepare(raw_rows, cfg.dataset, path)
        if sample.frame.empty:
            raise InputError(f"{path}: no usable rows")
        batch_cfg, figures = table_settings(cfg.dataset, sample, text, path)
        if figures:  # the sample as every batch is prepared: with the table's figures
            sample = module.prepare(raw_rows, batch_cfg, path)
        engineer = make_engineer(batch_cfg, sample).set_params(**figures).fit(sample.frame)
        check_feature_set(cfg, engineer.transform(sample.frame.head(50)))
        columns = list(cfg.features.columns)
        run, schema = engineering(
            OmegaConf.to_container(batch_cfg, resolve=True), path, engineer, columns
        )
        names = [f"f{i}" for i in range(len(columns))]
        features = text.mapInPandas(run, schema)
        assembled = VectorAssembler(inputCols=names, outputCol="raw").transform(features)
        if scaling == "none":
            scaled = assembled.withColumn("features", F.col("raw"))
        else:
            # Spark fits the statistics; every row is then scaled as the converted
            # scikit-learn scaler (the logged model's) scales it, so training and scoring agree
            # where the two libraries differ (e.g. an interquartile range of 0).
            scaler = scaler_to_sklearn(spark_scaler(scaling).fit(assembled), 0)
            scaled = assembled.withColumn("features", affine(F.col("raw"), *scale_terms(scaler)))
        table = scaled.select(F.monotonically_increasing_id().alias(ID), "raw", "features")
        table = table.persist()
        rows = table.count()
        k_max = int(cfg.sweep.constraints.k_max)
        needed = max(2 * k_max, 10)
        if rows < needed:
            raise InputError(
                f"{path}: {rows} usable rows, fewer than the {needed} that the k range up to "
                f"{k_max} needs"
            )
        picked = table.sample(fraction=_fraction(wanted, rows), seed=seed).limit(wanted)
        picked = picked.localCheckpoint(eager=True)
        local = (
            picked.select(
                ID, vector_to_array("raw").alias("raw"), vector_to_array("features").alias("x")
            )
            .toPandas()
            .sort_values(ID)
        )
        data_hash = table_hash(text)
    X_raw = np.stack(local["raw"].to_numpy()).astype(np.float64)
    X = np.ascontiguousarray(np.stack(local["x"].to_numpy()), dtype=np.float64)
    if scaling == "none":
        scaler = make_scaler(cfg.scaling).fit(X_raw)
    elif hasattr(scaler, "n_samples_seen_"):
        scaler.n_samples_seen_ = rows
    data = SparkLoadedData(
        frame=sample.frame,
        name=str(cfg.dataset.name),
        source=source,
        path=path,
        rows_raw=rows_raw,
        detected={
            **sample.detected,
            "engine": "spark",
            "sample_rows": len(sample.frame),
            "table_figures": figures,
        },
        # The rules' own counts are the sample's; the figures they fill with (a logged
        # model's `impute`) are the table's.
        cleaning=[
            {
                "rule": "prepare (per Spark batch)",
                "rows_in": rows_raw,
                "rows_out": rows,
                "why": "the dataset's cleaning rules, applied to each batch of rows",
            },
            *[{**c, "counted_on": f"sample of {len(raw_rows)} rows"} for c in sample.cleaning],
        ],
        rows_total=rows,
    )
    example = model_input_example(sample, cfg.dataset, int(cfg.tracking.input_example_rows))
    space = FeatureSpace(data, engineer, columns, X_raw, scaler, X, example, data_hash)
    return space, SparkTables(table=table, sample=picked, rows=rows)
