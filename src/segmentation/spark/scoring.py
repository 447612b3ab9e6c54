"""Batch scoring on Spark: every row of a Parquet/CSV file or folder scored with the registered
pyfunc model through ``mlflow.pyfunc.spark_udf``, rows that cannot be scored written beside it
with their reason, exactly as :mod:`segmentation.serving.predict` decides them."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf

from segmentation.errors import InputError
from segmentation.promotion.aliases import ModelRef
from segmentation.serving.predict import (
    REASON,
    SHOWN_REJECTIONS,
    clean_rows,
    load_pyfunc_model,
    refuse_file_in_the_way,
    row_problems,
    same_file,
)
from segmentation.spark.reading import MISSING_TEXTS, canonical_text, column_renames, read_input
from segmentation.spark.session import get_session, spark_errors
from segmentation.tracking.model import download_model

SOURCE_FILE = "source_file"
_ROW = "__row__"
_FILE = "__file__"
_REASON = "__reason__"
# MLflow column types -> Spark SQL types (the model's output schema becomes the UDF's type).
SPARK_TYPES = {
    "long": "bigint",
    "integer": "int",
    "double": "double",
    "float": "float",
    "string": "string",
    "boolean": "boolean",
}


@dataclass
class SparkPredictResult:
    """What a Spark batch scoring wrote."""

    model_uri: str
    output: Path
    scored: int
    rejected: int
    rejected_path: Path | None
    segments: dict[int, int] = field(default_factory=dict)
    shown_rejections: pd.DataFrame | None = None


def rejected_folder(output: Path) -> Path:
    """Where the rejected rows of ``output`` go: ``<output>.rejected`` (Parquet)."""
    return output.with_name(output.name + ".rejected")


# What Spark itself writes into a Parquet output folder.
SPARK_WRITES = ("part-", ".part-", "_SUCCESS", "._SUCCESS", "_temporary")


def check_output_folder(input_path: Path, output_path: Path) -> None:
    """Refuse, before Spark starts, an output folder (or its ``.rejected`` folder) whose
    overwrite would lose data: Spark deletes the folder before writing it. The input itself,
    a folder holding the input or inside it, a file, and a folder holding anything but an
    earlier scoring's own Parquet parts are refused; a new, empty or earlier output folder
    is not."""
    marks = {output_path: ("segment", "persona"), rejected_folder(output_path): (REASON,)}
    for folder, columns in marks.items():
        if same_file(folder, input_path):
            raise InputError(
                f"{folder}: is the input; scoring never writes over its input (give another OUTPUT)"
            )
        if input_path.is_relative_to(folder):
            raise InputError(
                f"{folder}: holds the input {input_path}, and Spark replaces the output "
                "folder as a whole (give a new folder)"
            )
        refuse_file_in_the_way(folder)
        if folder.is_relative_to(input_path):
            raise InputError(
                f"{folder}: is inside the input folder {input_path} (give a folder apart "
                "from the input)"
            )
        if folder.exists() and not folder.is_dir():
            raise InputError(
                f"{folder}: exists and is a file (Spark writes the output as a Parquet folder)"
            )
        foreign = _not_an_earlier_output(folder, columns) if folder.is_dir() else None
        if foreign:
            raise InputError(
                f"{folder}: folder holds {foreign}, not an earlier scoring's output, and Spark "
                "replaces the output folder as a whole (give an empty or new folder)"
            )


def _not_an_earlier_output(folder: Path, columns: tuple[str, ...]) -> str | None:
    """What in ``folder`` an earlier scoring did not write (``None`` when nothing): a file
    Spark does not write, or Parquet parts without the scoring's ``columns`` (another job's
    table, such as the customers themselves)."""
    names = sorted(p.name for p in folder.iterdir())
    other = [n for n in names if not n.startswith(SPARK_WRITES)]
    if other:
        return repr(other[0])
    part = next((n for n in names if n.startswith("part-") and n.endswith(".parquet")), None)
    if part is None:
        return None
    try:
        found = set(pq.read_schema(folder / part).names)
    except (pa.ArrowException, OSError):
        return f"{part!r}, not a readable Parquet part"
    missing = [c for c in columns if c not in found]
    return f"Parquet parts without {missing[0]!r}" if missing else None


def _raw(i: int) -> str:
    return f"__raw{i}__"


def _model_in(j: int) -> str:
    return f"__in{j}__"


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def output_type(model: Any) -> str:
    """The UDF's struct type, from the model's output schema (``segment``, ``persona`` and any
    other column such as ``confidence``)."""
    schema = model.metadata.get_output_schema()
    if schema is None:
        return "segment bigint, persona string"
    return ", ".join(
        f"{_quoted(spec.name)} {SPARK_TYPES.get(str(getattr(spec.type, 'name', '')), 'string')}"
        for spec in schema.inputs
    )


def input_kind(spec: Any, specs: Mapping[str, Mapping[str, Any]]) -> str:
    """The MLflow type a model input is sent as: the signature's, or for an input of any type
    (numbers of any width), double for the dataset's numeric columns and string otherwise."""
    name = getattr(spec.type, "name", None)
    if isinstance(name, str) and name in SPARK_TYPES:
        return name
    numeric = (specs.get(spec.name) or {}).get("kind", "numeric") == "numeric"
    return "double" if numeric else "string"


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Text cells as Python objects, missing as None (pandas' own string dtype would send NaN
    back to Spark as the text 'nan')."""
    out = frame.astype(object)
    return out.where(out.notna(), None)


def validator(
    cfg_dataset: dict[str, Any],
    specs: Mapping[str, Mapping[str, Any]],
    canonical: list[str],
    inputs: list[tuple[str, str]],
    raw_names: list[str],
    path: str,
    impute: Mapping[str, Any] | None = None,
):
    """The per-batch check of ``mapInPandas``: the local route's row rules and the dataset's
    cleaning (:func:`row_problems`, :func:`clean_rows`), giving each row its reason ("" when
    it passes) and the model's typed inputs. A value the training data's cleaning filled
    (``impute``, kept in the model: a missing retail Income) gets the training's figure, as
    on the local route."""
    dataset = OmegaConf.create(cfg_dataset)
    fills = dict(impute or {})

    def check(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            mapped = _plain(batch[canonical])
            mapped = mapped.assign(
                **{c: mapped[c].fillna(str(v)) for c, v in fills.items() if c in mapped}
            )
            lines = batch[_ROW].astype("int64")
            reasons = row_problems(mapped, specs)
            ok = reasons == ""
            prepared, kept, rules = clean_rows(dataset, mapped[ok], lines[ok], Path(path))
            dropped = ok & ~lines.isin(kept)
            reasons[dropped] = (
                f"removed by the dataset's cleaning rule(s): {', '.join(rules) or '?'}"
            )
            out = _plain(batch[[*raw_names, _FILE, _ROW]])
            out[_ROW] = lines
            out[_REASON] = reasons.astype(object)
            by_line = prepared.set_axis(kept) if len(prepared) else pd.DataFrame(index=kept)
            for j, (name, kind) in enumerate(inputs):
                values = by_line[name].reindex(lines.to_numpy()) if name in by_line else None
                if values is None:
                    values = pd.Series([None] * len(batch))
                values = values.set_axis(batch.index)
                if kind in ("double", "float"):
                    out[_model_in(j)] = pd.to_numeric(values, errors="coerce").astype("float64")
                elif kind in ("long", "integer"):
                    out[_model_in(j)] = pd.to_numeric(values, errors="coerce").astype("Int64")
                else:
                    out[_model_in(j)] = _plain(values.to_frame())[values.name]
            yield out

    return check


def _text(column: Any) -> Any:
    """A text cell as the local route writes it: stripped, the missing markers as null."""
    from pyspark.sql import functions as F

    text = F.trim(column)
    return F.when(text.isin(*MISSING_TEXTS), None).otherwise(text)


def read_back_types(frame: Any, names: list[str]) -> dict[str, str]:
    """The type pandas gives each text column of ``frame`` when it reads the local route's CSV
    back: ``bigint`` when every cell is a whole number, ``double`` when every cell is a number
    (or the column is empty), ``string`` otherwise. One pass over ``frame``."""
    from pyspark.sql import functions as F

    if not names:
        return {}
    checks = []
    for i, name in enumerate(names):
        text = _text(F.col(_quoted(name)))
        for kind in ("bigint", "double"):
            fails = text.isNotNull() & text.try_cast(kind).isNull()
            checks.append(F.count(F.when(fails, 1)).alias(f"{kind}{i}"))
    row = frame.agg(*checks).first()
    return {
        name: next((k for k in ("bigint", "double") if not row[f"{k}{i}"]), "string")
        for i, name in enumerate(names)
    }


def _as_read_back(frame: Any, names: list[str], aliases: list[str]) -> list:
    """``frame``'s columns ``names`` under ``aliases``, text ones typed as the local route's
    output reads back in pandas (so ids, counts and amounts join and compare across engines);
    typed ones (Parquet input) as they are."""
    from pyspark.sql import functions as F

    text = [n for n in names if frame.schema[n].dataType.simpleString() == "string"]
    types = read_back_types(frame, text)
    out = []
    for name, alias in zip(names, aliases, strict=True):
        column = F.col(_quoted(name))
        if name in types:
            column = _text(column)
            column = column if types[name] == "string" else column.try_cast(types[name])
        out.append(column.alias(alias))
    return out


def _validated_schema(raw_schema: Any, inputs: list[tuple[str, str]]) -> str:
    fields = [
        f"{_quoted(name)} {raw_schema[name].dataType.simpleString()}" for name in raw_schema.names
    ]
    fields += [f"{_FILE} string", f"{_ROW} bigint", f"{_REASON} string"]
    fields += [
        f"{_model_in(j)} {SPARK_TYPES.get(kind, 'string')}" for j, (_, kind) in enumerate(inputs)
    ]
    return ", ".join(fields)


def score_table(
    dataset: DictConfig,
    engine: DictConfig,
    model_ref: ModelRef,
    input_path: str | Path,
    output_path: str | Path,
) -> SparkPredictResult:
    """Score ``input_path`` (a file or folder) of the ``dataset`` group with the model, on the
    ``engine`` group's SparkSession, into the Parquet folder ``output_path``: the
    input's columns, ``segment``, ``persona`` (and any further model output). Rows that cannot
    be scored go to ``<output>.rejected`` with ``source_file`` and ``reason``. Every check runs
    before anything is written."""
    from pyspark.sql import functions as F

    input_path = Path(input_path).expanduser().resolve()
    output_path = Path(output_path).expanduser().resolve()
    check_output_folder(input_path, output_path)
    specs = OmegaConf.to_container(dataset.columns, resolve=True)
    spark = get_session(engine)
    frame = read_input(spark, input_path, dataset.get("encoding"))
    raw_columns = list(frame.columns)
    renames = column_renames(raw_columns, specs, input_path)  # a missing required column stops
    uri, model = model_ref.uri, load_pyfunc_model(model_ref)
    source = {renames.get(c, c): c for c in raw_columns}
    canonical = [c for c in specs if c in source]
    schema = model.metadata.get_input_schema()
    inputs = [(spec.name, input_kind(spec, specs)) for spec in schema.inputs]
    absent = [name for name, _ in inputs if name not in source]
    if absent:
        raise InputError(
            f"{input_path}: column(s) {absent} needed by model {uri} not found; "
            f"columns found: {raw_columns}"
        )
    columns = [F.col(_quoted(c)).alias(_raw(i)) for i, c in enumerate(raw_columns)]
    columns += canonical_text(frame, specs, renames)
    staged = frame.select(
        *columns,
        F.col("_metadata.file_path").alias(_FILE),
        F.monotonically_increasing_id().alias(_ROW),
    )
    raw_names = [_raw(i) for i in range(len(raw_columns))]
    check = validator(
        OmegaConf.to_container(dataset, resolve=True),
        specs,
        canonical,
        inputs,
        raw_names,
        str(input_path),
        model.unwrap_python_model().inputs.get("impute"),
    )
    raw_schema = staged.select(*raw_names).schema
    validated = staged.mapInPandas(check, _validated_schema(raw_schema, inputs))
    validated = validated.persist()
    with tempfile.TemporaryDirectory(prefix="segmentation-model-") as tmp:
        # spark_udf copies the folder it is given: a models:/ URI it would resolve through the
        # process-wide store.
        predict = mlflow.pyfunc.spark_udf(
            spark,
            str(download_model(uri, model_ref.tracking_uri, tmp)),
            result_type=output_type(model),
            env_manager="local",
        )
    names = [spec.name for spec in model.metadata.get_output_schema().inputs]
    model_input = F.struct(*[F.col(_model_in(j)).alias(n) for j, (n, _) in enumerate(inputs)])
    passed = validated.filter(F.col(_REASON) == "")
    failed = validated.filter(F.col(_REASON) != "")
    with spark_errors(f"scoring {input_path}"):
        scored = passed.withColumn("__prediction__", predict(model_input)).select(
            *_as_read_back(passed, raw_names, raw_columns),
            *[F.col("__prediction__")[n].alias(n) for n in names],
        )
        rejected = failed.select(
            F.col(_FILE).alias(SOURCE_FILE),
            F.col(_REASON).alias(REASON),
            *_as_read_back(failed, raw_names, raw_columns),
        )
    rejected_path = rejected_folder(output_path)
    try:
        with spark_errors(f"scoring {input_path}"):
            scored.write.mode("overwrite").parquet(str(output_path))
            rejected.write.mode("overwrite").parquet(str(rejected_path))
            written = spark.read.parquet(str(output_path))
            counts = {
                int(r["segment"]): int(r["count"])
                for r in written.groupBy("segment").count().collect()
            }
            listed = spark.read.parquet(str(rejected_path))
            n_rejected = listed.count()
            shown = listed.limit(SHOWN_REJECTIONS).toPandas() if n_rejected else None
    except BaseException:
        shutil.rmtree(output_path, ignore_errors=True)  # nothing half-written is left behind
        shutil.rmtree(rejected_path, ignore_errors=True)
        raise
    finally:
        validated.unpersist()
    if not n_rejected:
        shutil.rmtree(rejected_path, ignore_errors=True)  # a stale list would mislead
    return SparkPredictResult(
        model_uri=uri,
        output=output_path,
        scored=sum(counts.values()),
        rejected=n_rejected,
        rejected_path=rejected_path if n_rejected else None,
        segments=dict(sorted(counts.items())),
        shown_rejections=shown,
    )


def report(result: SparkPredictResult) -> None:
    """Print the summary to stdout and the first rejected rows to stderr."""
    if result.shown_rejections is not None:
        for row in result.shown_rejections.itertuples(index=False):
            print(
                f"rejected row of {getattr(row, SOURCE_FILE)}: {getattr(row, REASON)}",
                file=sys.stderr,
            )
    more = result.rejected - SHOWN_REJECTIONS
    if more > 0:
        print(f"... and {more} more rejected row(s)", file=sys.stderr)
    listed = f"; list in {result.rejected_path}" if result.rejected_path else ""
    print(
        f"Scored {result.scored} row(s) with {result.model_uri} into {result.output} (Spark); "
        f"rejected {result.rejected}{listed}. Segments: {result.segments}",
        flush=True,
    )
