"""The feature space of a Spark study: the whole table cleaned, engineered and scaled by Spark
(the dataset's own ``prepare`` and fitted engineering applied per batch), and a seeded, bounded
sample of it collected as the :class:`~segmentation.features.space.FeatureSpace` that metrics,
plots, profiles and the logged model's example use."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from segmentation.data import (
    LoadedData,
    dataset_file,
    dataset_module,
    model_input_example,
    synthetic_frame,
)
from segmentation.errors import InputError
from segmentation.features.engineering import make_engineer
from segmentation.features.scaling import make_scaler
from segmentation.features.selection import feature_matrix
from segmentation.features.space import FeatureSpace, SpaceConfig, check_feature_set
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


FIGURE = "_figure_"  # prefix of a cleaned row's value of a table figure
# The content hash rides on the cleaning's read of the table: each row's hash goes in with the
# row, and each partition adds one row of its rows' count and hash (xor), null elsewhere.
ROW_HASH, PART_HASH, PART_ROWS = "_row_hash", "_part_hash", "_part_rows"


def _clean_schema(dataset: DictConfig, columns: list[str]) -> list[tuple[str, str]]:
    """The cleaned rows' Spark columns: each canonical column of the table but the id (not a
    model input; numbers as doubles, the rest as text), each table figure's value, then the
    partitions' row counts and hashes."""
    specs = OmegaConf.to_container(dataset.columns, resolve=True)
    out = [
        (c, "double" if specs[c].get("kind", "numeric") == "numeric" else "string")
        for c in columns
        if c != str(dataset.id_column)
    ]
    spec = getattr(dataset_module(dataset), "TABLE_FIGURES", None) or {}
    out += [(FIGURE + name, kind) for name, (_, kind) in spec.items()]
    return out + [(PART_HASH, "bigint"), (PART_ROWS, "bigint")]


def cleaning(cfg_dataset: dict, path: str, schema: list[tuple[str, str]]):
    """Per partition of ``mapInPandas``: the dataset's typing and cleaning, once per batch (a
    dataset with table figures: its ``prepare_batch``, the cleaned rows with their figure
    values), then one row of the partition's row count and hash. A column the batch's
    cleaning dropped (e.g. constant in it) is null."""
    dataset = OmegaConf.create(cfg_dataset)
    rows = [(n, k) for n, k in schema if n not in (PART_HASH, PART_ROWS)]

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        module = dataset_module(dataset)
        staged = hasattr(module, "TABLE_FIGURES")
        count, digest = 0, np.int64(0)
        for batch in batches:
            if batch.empty:
                continue
            hashes = batch.pop(ROW_HASH).to_numpy(dtype=np.int64)
            count += len(hashes)
            digest ^= np.bitwise_xor.reduce(hashes)
            if staged:
                clean, values = module.prepare_batch(_plain(batch), dataset, path)
            else:
                clean, values = module.prepare(_plain(batch), dataset, path).frame, None
            if clean.empty:
                continue
            out = {}
            for name, kind in rows:
                if name.startswith(FIGURE):
                    column = values[name[len(FIGURE) :]]
                elif name not in clean.columns:
                    column = pd.Series([None] * len(clean), dtype=object)
                else:
                    column = clean[name]
                if kind == "double":
                    out[name] = pd.to_numeric(column).astype(float).to_numpy()
                else:
                    column = column.astype(object)
                    out[name] = column.where(column.notna(), None).to_numpy()
            out[PART_HASH] = out[PART_ROWS] = np.full(len(clean), None, dtype=object)
            yield pd.DataFrame(out)
        part = {n: [None] for n, _ in rows}
        yield pd.DataFrame({**part, PART_HASH: [int(digest)], PART_ROWS: [count]})

    return run, ", ".join(f"`{n}` {k}" for n, k in schema)


def engineering(cfg_dataset: dict, figures: dict[str, Any], engineer: Any, columns: list[str]):
    """Per batch of cached cleaned rows: finished with the table's figures (the dataset's
    ``finish_batch``), then the fitted engineering and the feature set's columns."""
    dataset = OmegaConf.create(cfg_dataset)
    names = [f"f{i}" for i in range(len(columns))]

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        module = dataset_module(dataset)
        for batch in batches:
            if batch.empty:
                continue
            clean = module.finish_batch(batch, dataset, figures) if figures else batch
            X = feature_matrix(engineer.transform(clean), columns)
            yield pd.DataFrame(X, columns=names)

    return run, ", ".join(f"{n} double" for n in names)


def cleaned_rows(clean: Any) -> Any:
    """The cached cleaned rows as the engineering reads them: without the partitions' rows
    and the figure values."""
    from pyspark.sql import functions as F

    kept = [
        c for c in clean.columns if not c.startswith(FIGURE) and c not in (PART_HASH, PART_ROWS)
    ]
    return clean.where(F.col(PART_ROWS).isNull()).select(*[F.col(f"`{c}`") for c in kept])


def batch_settings(dataset: DictConfig, sample: LoadedData) -> DictConfig:
    """The dataset config every batch is prepared with: the day/month order of dates decided
    once, on the sample, so that every batch reads them alike (a batch alone may not)."""
    settings = OmegaConf.to_container(dataset, resolve=True)
    order = (sample.detected.get("dates") or {}).get("order")
    if order and not settings.get("date_format"):
        settings["date_format"] = order
    return OmegaConf.create(settings)


def table_figures(
    settings: DictConfig, clean: Any, path: str
) -> tuple[dict[str, Any], tuple[int, int]]:
    """The figures the dataset's cleaning and engineering learn from the whole table (the
    dataset module's ``TABLE_FIGURES``, e.g. the retail reference date and median Income),
    aggregated by Spark over the cleaned rows' figure values, with the table's row count and
    the xor of its rows' hashes (for :func:`content_hash`), in one job."""
    from pyspark.sql import functions as F

    spec = getattr(dataset_module(settings), "TABLE_FIGURES", None) or {}
    aggregates = {"max": F.max, "median": F.median}  # median: exact, as pandas'
    row = clean.agg(
        *[aggregates[how](FIGURE + name).alias(name) for name, (how, _) in spec.items()],
        F.sum(PART_ROWS).alias("n"),
        F.bit_xor(PART_HASH).alias("x"),
    ).first()
    figures = {name: row[name] for name in spec}
    missing = [name for name, value in figures.items() if value is None]
    if missing:
        raise InputError(f"{path}: no values to learn {missing} from")
    return figures, (int(row["n"] or 0), int(row["x"] or 0))


def read_training_table(dataset: DictConfig, spark: Any) -> tuple[Any, str, str]:
    """The ``dataset`` group's file as Spark text columns (canonical names), its source and
    path."""
    specs = OmegaConf.to_container(dataset.columns, resolve=True)
    path, synthetic = dataset_file(dataset)
    if synthetic:
        table = spark.createDataFrame(synthetic_frame(dataset).astype(str))
        source = "synthetic"
    else:
        table = read_input(spark, path, dataset.get("encoding"))
        source = "real"
    renames = column_renames(list(table.columns), specs, path)
    return table.select(*canonical_text(table, specs, renames)), source, str(path)


def content_hash(columns: list[str], rows: int, xor: int) -> str:
    """The table's content hash from its text columns' names, its row count and the xor of
    every row's ``xxhash64`` of those columns (see :func:`hashed`)."""
    digest = hashlib.sha256("\x1f".join(columns).encode())
    digest.update(f"spark:{rows}:{xor}".encode())
    return digest.hexdigest()[:16]


def hashed(text: Any) -> Any:
    """The text table with each row's ``xxhash64`` of its columns (``ROW_HASH``)."""
    from pyspark.sql import functions as F

    return text.withColumn(ROW_HASH, F.xxhash64(*text.columns))


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


def prepare_spark_space(
    groups: SpaceConfig, engine: DictConfig, spark: Any
) -> tuple[FeatureSpace, SparkTables]:
    """Read, clean, engineer and scale the whole table with Spark; collect a seeded sample of
    the ``engine`` group's ``sample_rows``."""
    from pyspark.ml.feature import VectorAssembler
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    scaling = str(groups.scaling.name)
    if scaling not in SPARK_SCALINGS:
        raise InputError(
            f"engine=spark: scaling={scaling} is not available; use one of {SPARK_SCALINGS}"
        )
    seed = int(groups.sweep.seed)
    wanted = int(engine.sample_rows)
    with spark_errors(f"dataset {groups.dataset.name}"):
        text, source, path = read_training_table(groups.dataset, spark)
        rows_raw = text.count()  # reads no column
        raw_sample = text.sample(fraction=_fraction(wanted, rows_raw), seed=seed).limit(wanted)
        raw_rows = _plain(raw_sample.toPandas())
        module = dataset_module(groups.dataset)
        sample = module.prepare(raw_rows, groups.dataset, path)
        if sample.frame.empty:
            raise InputError(f"{path}: no usable rows")
        settings = batch_settings(groups.dataset, sample)
        # The one pass of the dataset's rules over every row; its cleaned rows are cached for
        # the figures and the engineering.
        run, schema = cleaning(
            OmegaConf.to_container(settings, resolve=True),
            path,
            _clean_schema(settings, list(text.columns)),
        )
        clean = hashed(text).mapInPandas(run, schema).persist()
        figures, (rows_read, xor) = table_figures(settings, clean, path)
        data_hash = content_hash(list(text.columns), rows_read, xor)
        batch_cfg = module.with_figures(settings, figures) if figures else settings
        if figures:  # the sample as every batch is prepared: with the table's figures
            sample = module.prepare(raw_rows, batch_cfg, path)
        engineer = make_engineer(batch_cfg, sample).set_params(**figures).fit(sample.frame)
        check_feature_set(
            groups.dataset,
            groups.features,
            groups.experiment_name,
            engineer.transform(sample.frame.head(50)),
        )
        columns = list(groups.features.columns)
        # The batches are finished with the settings they were cleaned with.
        run, schema = engineering(
            OmegaConf.to_container(settings, resolve=True), figures, engineer, columns
        )
        names = [f"f{i}" for i in range(len(columns))]
        features = cleaned_rows(clean).mapInPandas(run, schema)
        assembled = VectorAssembler(inputCols=names, outputCol="raw").transform(features)
        assembled = assembled.persist()  # the scaler's fit and the scaling read it
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
        assembled.unpersist()
        clean.unpersist()
        k_max = int(groups.sweep.constraints.k_max)
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
    X_raw = np.stack(local["raw"].to_numpy()).astype(np.float64)
    X = np.ascontiguousarray(np.stack(local["x"].to_numpy()), dtype=np.float64)
    if scaling == "none":
        scaler = make_scaler(groups.scaling).fit(X_raw)
    elif hasattr(scaler, "n_samples_seen_"):
        scaler.n_samples_seen_ = rows
    data = SparkLoadedData(
        frame=sample.frame,
        name=str(groups.dataset.name),
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
    example = model_input_example(sample, groups.dataset, int(groups.tracking.input_example_rows))
    space = FeatureSpace(data, engineer, columns, X_raw, scaler, X, example, data_hash)
    return space, SparkTables(table=table, sample=picked, rows=rows)
