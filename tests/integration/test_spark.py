"""The Spark engine on a real local[2] Spark: scoring with spark_udf agrees with the local
route row for row (rejected rows included), Spark models convert to scikit-learn estimators that
predict as Spark does, a Spark sweep logs the same runs and registers the same pyfunc model, and
bad input is one line with exit code 2."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from segmentation.data.mall import generate
from segmentation.data.reading import HEAD_BYTES
from segmentation.promotion.aliases import ModelRef
from segmentation.tracking.model import load_pyfunc
from segmentation.tracking.runs import ROLE_TAG
from tests.conftest import (
    PROMOTED_SWEEP,
    QUICK_RETAIL,
    make_cfg,
    missing,
    module_store,
    post,
    real_file,
    serve_model,
)


def _require_spark() -> None:
    """Skip without pyspark or Java (saying which); in our CI their absence fails."""
    absent = []
    try:
        import pyspark  # noqa: F401
    except ImportError:
        absent.append("pyspark is not installed (make spark-install)")
    home = os.environ.get("JAVA_HOME")
    if not (shutil.which("java") or (home and Path(home, "bin", "java").exists())):
        absent.append("Java 17 is not installed (apt-get install openjdk-17-jre-headless)")
    if absent:
        missing("; ".join(absent))


_require_spark()


def engine_override(name: str) -> str:
    """``engine=<name>`` once config.yaml lists the engine group, ``+engine=<name>`` before."""
    from segmentation.config import compose

    try:
        compose([f"engine={name}"])
        return f"engine={name}"
    except Exception:
        return f"+engine={name}"


SPARK = [engine_override("spark"), "engine.master='local[2]'", "engine.shuffle_partitions=2"]


@pytest.fixture(scope="module", autouse=True)
def sigint_handler_kept():
    """The SIGINT handler as before this file: a SparkContext installs its own (cancel the jobs,
    then KeyboardInterrupt) and leaves it after it stops, and the tests of Ctrl-C that run after
    this file in the same test process check the handler a sweep restores."""
    before = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    """One local[2] SparkSession for the whole file."""
    from segmentation.spark.session import get_session

    cfg = make_cfg(tmp_path_factory.mktemp("spark-session"), *SPARK)
    session = get_session(cfg.engine)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def champion(promoted):
    """The shared swept-and-promoted store (a local sweep), configured for Spark."""
    return make_cfg(promoted.store, *SPARK, *PROMOTED_SWEEP)


def customers_with_problems(n: int = 300, seed: int = 7) -> pd.DataFrame:
    """Raw customers under header variants, with a few rows that cannot be scored."""
    frame = generate(n, seed=seed).astype(object)
    frame.loc[3, "Age"] = None
    frame.loc[10, "Annual Income (k$)"] = "lots"
    frame.loc[20, "Spending Score (1-100)"] = -5
    return frame.rename(columns={"Annual Income (k$)": "annual_income", "Gender": "Genre"})


def engines_agree(local_csv: Path, spark_out: Path, id_column: str) -> pd.DataFrame:
    """Both routes' outputs of one file, read with pandas as a user reads them: the same rows,
    values and dtypes (the id an integer on both: they join without a cast)."""
    local = pd.read_csv(local_csv).sort_values(id_column, ignore_index=True)
    spark = pd.read_parquet(spark_out).sort_values(id_column, ignore_index=True)
    pd.testing.assert_frame_equal(local, spark, check_exact=False, rtol=1e-9)
    assert pd.api.types.is_integer_dtype(spark[id_column])
    return spark


def test_spark_scoring_equals_local_scoring(spark, champion, tmp_path):
    from segmentation.serving.predict import score_file
    from segmentation.spark.scoring import score_table

    frame = customers_with_problems()
    csv = tmp_path / "in" / "customers.csv"
    csv.parent.mkdir()
    frame.to_csv(csv, index=False)
    # Blank, whitespace-only and bare-delimiter lines are no customers on either route, also
    # before the header.
    lines = csv.read_text().split("\n")
    lines[5:5] = ["", "   ", "," * (len(frame.columns) - 1)]
    csv.write_text("\n \n" + "\n".join(lines) + "\n\n")
    local = score_file(
        champion.dataset,
        ModelRef.of(champion.tracking, champion.paths),
        csv,
        tmp_path / "local.csv",
    )
    result = score_table(
        champion.dataset,
        champion.engine,
        ModelRef.of(champion.tracking, champion.paths),
        csv.parent,
        tmp_path / "spark-out",
    )

    spark_out = engines_agree(tmp_path / "local.csv", tmp_path / "spark-out", "CustomerID")
    assert list(spark_out.columns) == [*frame.columns, "segment", "persona", "confidence"]
    assert result.scored == len(spark_out) == len(frame) - 3
    assert result.segments == local.segments
    assert spark_out["Age"].dtype == "int64"  # every scored row has an age

    # The rejected rows: the same reasons and cells ("lots" keeps its column as text).
    rejected = pd.read_parquet(result.rejected_path).sort_values("CustomerID", ignore_index=True)
    assert rejected["source_file"].str.endswith("customers.csv").all()
    local_rejected = pd.read_csv(local.rejected_path).sort_values("CustomerID", ignore_index=True)
    assert local_rejected["line"].tolist() == [7, 17, 27]  # rows 3, 10 and 20, as an editor shows
    pd.testing.assert_frame_equal(
        local_rejected.drop(columns=["line"]), rejected.drop(columns=["source_file"])
    )
    assert rejected["reason"].str.len().gt(0).all() and len(rejected) == 3


def test_spark_scoring_reads_a_latin1_csv_as_the_local_route(spark, champion, tmp_path):
    """`dataset.encoding=latin-1`: both routes decode the names alike and score the same rows;
    without it the file is refused as locally, and an encoding Spark cannot read (cp1252) is
    refused in a line before Spark reads."""
    from omegaconf import OmegaConf

    from segmentation.errors import InputError
    from segmentation.serving.predict import score_file
    from segmentation.spark.scoring import score_table

    path = tmp_path / "in" / "latin1.csv"
    path.parent.mkdir()
    generate(40, seed=8).assign(Name="Zoë Müller").to_csv(path, index=False, encoding="latin-1")
    model = ModelRef.of(champion.tracking, champion.paths)
    latin1 = OmegaConf.merge(champion.dataset, {"encoding": "latin-1"})
    score_file(latin1, model, path, tmp_path / "local.csv")
    result = score_table(latin1, champion.engine, model, path, tmp_path / "spark-out")
    out = engines_agree(tmp_path / "local.csv", tmp_path / "spark-out", "CustomerID")
    assert result.scored == 40 and out["Name"].eq("Zoë Müller").all()

    # A gzip file named .gz: Spark decompresses it, the local reader by its first bytes.
    packed = tmp_path / "gz" / "customers.csv.gz"
    packed.parent.mkdir()
    packed.write_bytes(gzip.compress(path.read_bytes()))
    score_file(latin1, model, packed, tmp_path / "local-gz.csv")
    score_table(latin1, champion.engine, model, packed, tmp_path / "spark-gz")
    engines_agree(tmp_path / "local-gz.csv", tmp_path / "spark-gz", "CustomerID")
    # The same as a part of a folder (compressed parts are read as single files are).
    folder = score_table(latin1, champion.engine, model, packed.parent, tmp_path / "spark-dir")
    engines_agree(tmp_path / "local-gz.csv", tmp_path / "spark-dir", "CustomerID")
    assert folder.scored == 40

    cp1252 = OmegaConf.merge(champion.dataset, {"encoding": "cp1252"})
    (tmp_path / "gz" / "named.csv").write_bytes(packed.read_bytes())
    # A byte that is not UTF-8 far past the head, in a folder's second, compressed part:
    # refused at its line, as locally (Spark alone would read it as U+FFFD and score the row).
    late = tmp_path / "late"
    late.mkdir()
    rows = generate(5000, seed=8).assign(Name="Zoe").to_csv(index=False).encode()
    (late / "a.csv").write_bytes(rows)
    lines = rows.split(b"\n")
    lines[4500] = lines[4500].replace(b"Zoe", b"Zo\xeb")  # line 4501
    assert b"\n".join(lines).index(b"\xeb") > HEAD_BYTES
    (late / "b.csv.gz").write_bytes(gzip.compress(b"\n".join(lines)))
    # A folder's second part written for Excel: Spark would take its sep= line for the header.
    excel = tmp_path / "excel"
    excel.mkdir()
    (excel / "a.csv").write_bytes(rows)
    (excel / "b.csv").write_bytes(b"sep=,\r\n" + rows)
    for dataset, source, message in (
        (champion.dataset, excel, "b.csv: its first line is Excel's sep= line, which Spark"),
        (champion.dataset, path, "line 2, column 'Name': not UTF-8 text"),
        (champion.dataset, late, r"b.csv.gz: line 4501, column 'Name': not UTF-8 text"),
        (cp1252, path, "Spark reads CSV text as UTF-8 or latin-1 only, not cp1252"),
        (latin1, tmp_path / "gz" / "named.csv", "gzip-compressed; Spark reads compressed CSV"),
    ):
        with pytest.raises(InputError, match=message):
            score_table(dataset, champion.engine, model, source, tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_spark_scoring_reads_parquet_folders(spark, champion, tmp_path):
    from segmentation.serving.predict import score_file
    from segmentation.spark.scoring import score_table

    frame = generate(120, seed=3)
    folder = tmp_path / "parts"
    folder.mkdir()
    frame.iloc[:60].to_parquet(folder / "part-0.parquet")
    frame.iloc[60:].to_parquet(folder / "part-1.parquet")
    (folder / "_SUCCESS").write_text("")
    local = score_file(
        champion.dataset,
        ModelRef.of(champion.tracking, champion.paths),
        folder / "part-0.parquet",
        tmp_path / "a.csv",
    )
    result = score_table(
        champion.dataset,
        champion.engine,
        ModelRef.of(champion.tracking, champion.paths),
        folder,
        tmp_path / "out",
    )
    assert result.scored == 120 and result.rejected == 0 and result.rejected_path is None
    # A rerun into the same folder replaces the earlier scoring's output (Spark's own files).
    again = score_table(
        champion.dataset,
        champion.engine,
        ModelRef.of(champion.tracking, champion.paths),
        folder / "part-1.parquet",
        tmp_path / "out",
    )
    assert again.scored == 60
    assert spark.read.parquet(str(tmp_path / "out")).count() == 60
    score_table(
        champion.dataset,
        champion.engine,
        ModelRef.of(champion.tracking, champion.paths),
        folder,
        tmp_path / "out",
    )
    out = spark.read.parquet(str(tmp_path / "out")).toPandas().sort_values("CustomerID")
    assert out["Age"].dtype == frame["Age"].dtype  # Parquet keeps the input's types
    first = pd.read_csv(tmp_path / "a.csv").sort_values("CustomerID")
    assert out["segment"].iloc[:60].tolist() == first["segment"].tolist()
    assert local.scored == 60


@pytest.fixture(scope="module")
def mall_dir(tmp_path_factory) -> Path:
    """A generated Mall file of 3,000 customers (the sweep's training table)."""
    folder = tmp_path_factory.mktemp("mall-data")
    generate(3000, seed=11).to_csv(folder / "Mall_Customers.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def spark_sweep(spark, mall_dir, tmp_path_factory):
    """A 2-trial KMeans sweep on Spark, its best model registered."""
    from segmentation.spark.sweep import run_spark_sweep

    with module_store(tmp_path_factory, "spark-sweep") as store:
        cfg = make_cfg(store, *SPARK, "sweep.n_trials=3", "algorithm=kmeans", data_dir=mall_dir)
        yield cfg, run_spark_sweep(cfg)


def _trial_runs(cfg):
    from mlflow import MlflowClient

    client = MlflowClient(str(cfg.paths.tracking_uri))
    exp = client.get_experiment_by_name(str(cfg.experiment_name))
    runs = client.search_runs([exp.experiment_id], f"tags.`{ROLE_TAG}` = 'trial'")
    return client, runs


def test_spark_sweep_logs_trials_and_registers_the_same_model_contract(
    spark, spark_sweep, champion, mall_dir
):

    cfg, result = spark_sweep
    assert result.best_trial is not None and result.registered_version == "1"
    client, runs = _trial_runs(cfg)
    assert len(runs) >= 2  # one child run per trial (the sweep may add its own)
    run = client.get_run(result.best_trial.user_attrs["mlflow_run_id"])
    _, local_runs = _trial_runs(champion)
    local_run = local_runs[0]
    assert set(local_run.data.params) <= set(run.data.params) | {"estimator"}
    assert run.data.params["engine"] == "spark"
    assert int(run.data.params["n_rows"]) == 3000
    for metric in ("silhouette", "davies_bouldin", "calinski_harabasz", "inertia", "fit_seconds"):
        assert metric in run.data.metrics
    assert run.data.metrics["silhouette"] == pytest.approx(result.best_trial.value)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts, "the trial's plots are logged"

    # The registered model is the local pyfunc contract: raw rows in, segment and persona out.
    name = str(cfg.tracking.registered_model_name)
    model = load_pyfunc(f"models:/{name}/1", str(cfg.paths.tracking_uri))
    rows = generate(50, seed=5).drop(columns=["CustomerID"])
    rows[["Age", "Annual Income (k$)", "Spending Score (1-100)"]] = rows[
        ["Age", "Annual Income (k$)", "Spending Score (1-100)"]
    ].astype(float)
    out = model.predict(rows)
    assert list(out.columns)[:2] == ["segment", "persona"]
    pipeline = model.unwrap_python_model().pipeline
    assert type(pipeline.named_steps["cluster"]).__name__ == "KMeans"
    assert type(pipeline.named_steps["scale"]).__name__ == "StandardScaler"


@pytest.fixture(scope="module")
def spark_space(spark, mall_dir, tmp_path_factory):
    """The Mall table engineered and scaled by Spark, in three features."""
    from segmentation.features.space import SpaceConfig
    from segmentation.spark.space import prepare_spark_space

    cfg = make_cfg(
        tmp_path_factory.mktemp("space"), *SPARK, "features=age_income_spending", data_dir=mall_dir
    )
    return prepare_spark_space(SpaceConfig.of(cfg), cfg.engine, spark)


def test_spark_scaling_converts_to_the_same_scaler(spark_space):
    space, tables = spark_space
    assert tables.rows == 3000 and space.data.rows_clean == 3000
    assert np.allclose(space.scaler.transform(space.X_raw), space.X, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("scaling", ["minmax", "robust"])
def test_spark_scalings_fit_on_every_row_and_scale_as_the_logged_scaler(
    spark, mall_dir, tmp_path, scaling
):
    """Spark fits the scaler's statistics on the whole table; every row is scaled as the
    logged scikit-learn scaler scales it."""
    from pyspark.ml.functions import vector_to_array
    from sklearn.preprocessing import MinMaxScaler, RobustScaler

    from segmentation.features.space import SpaceConfig
    from segmentation.spark.space import prepare_spark_space

    cfg = make_cfg(
        tmp_path, *SPARK, f"scaling={scaling}", "features=age_income_spending", data_dir=mall_dir
    )
    space, tables = prepare_spark_space(SpaceConfig.of(cfg), cfg.engine, spark)
    try:
        every = tables.table.select(vector_to_array("raw").alias("raw")).toPandas()
        scaled = tables.table.select(vector_to_array("features").alias("x")).toPandas()
    finally:
        tables.table.unpersist()
    X_all = np.stack(every["raw"].to_numpy())
    assert len(X_all) == 3000
    np.testing.assert_allclose(
        space.scaler.transform(X_all), np.stack(scaled["x"].to_numpy()), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(space.scaler.transform(space.X_raw), space.X, atol=1e-12)
    if scaling == "minmax":
        local = MinMaxScaler().fit(X_all)
        np.testing.assert_array_equal(space.scaler.data_min_, local.data_min_)
        np.testing.assert_array_equal(space.scaler.data_max_, local.data_max_)
        assert space.X.min() >= 0 and space.X.max() <= 1
    else:
        local = RobustScaler().fit(X_all)  # Spark's quantiles are approximate (error 0.001)
        span = X_all.max(axis=0) - X_all.min(axis=0)
        np.testing.assert_allclose(space.scaler.center_, local.center_, atol=0.01 * span.max())
        np.testing.assert_allclose(space.scaler.scale_, local.scale_, rtol=0.05)


@pytest.mark.parametrize("algorithm", ["kmeans", "bisecting_kmeans", "gmm"])
def test_converted_models_predict_as_spark(spark_space, algorithm):
    """Each Spark model's scikit-learn conversion assigns every row as Spark's own model does."""
    from pyspark.ml.functions import vector_to_array

    from segmentation.spark.algorithms import spark_estimator
    from segmentation.spark.convert import to_sklearn
    from segmentation.spark.space import ID

    space, tables = spark_space
    spec = {"estimator": {"_target_": f"segmentation.algorithms.{algorithm}.build"}}
    params = {"n_components" if algorithm == "gmm" else "n_clusters": 5, "max_iter": 50}
    model = spark_estimator(spec, params, seed=3).fit(tables.table)
    converted = to_sklearn(model)
    spark_side = (
        model.transform(tables.table)
        .select(ID, vector_to_array("features").alias("x"), "prediction")
        .toPandas()
    )
    X = np.stack(spark_side["x"].to_numpy())
    assert len(X) == 3000
    assert (converted.predict(X) == spark_side["prediction"].to_numpy()).all()


def test_bad_input_is_one_line_exit_2_and_nothing_written(
    spark, champion, tmp_path, monkeypatch, capsys
):
    """An input folder with no readable files, a missing column, a master that does not
    answer and a missing Java: one `error:` line, exit code 2, no output folder."""
    from segmentation.cli import run_cli
    from segmentation.errors import InputError
    from segmentation.spark.scoring import score_table
    from segmentation.spark.session import check_master, java_path
    from tests.conftest import run_main

    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "_SUCCESS").write_text("")
    no_income = tmp_path / "no-income.csv"
    generate(20, seed=1).drop(columns=["Annual Income (k$)"]).to_csv(no_income, index=False)
    for source, expected in ((empty, "no readable files"), (no_income, "Annual Income (k$)")):
        out = tmp_path / f"out-{source.stem}"

        def task(cfg, source=source, out=out):
            return score_table(
                champion.dataset,
                champion.engine,
                ModelRef.of(champion.tracking, champion.paths),
                source,
                out,
            )

        code = run_main(lambda task=task: run_cli(task), monkeypatch)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert len(err) == 1 and err[0].startswith("error: ") and expected in err[0]
        assert not out.exists() and not Path(f"{out}.rejected").exists()

    # Spark deletes the output folder before writing it: a folder holding the input, or
    # someone's files, is refused and kept as it was.
    data = tmp_path / "data"
    data.mkdir()
    generate(20, seed=2).to_csv(data / "customers.csv", index=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    kept = {p: p.read_bytes() for p in (data / "customers.csv", tmp_path / "mine" / "notes.txt")}
    for out, expected in (
        (data, "holds the input"),
        (tmp_path / "mine", "folder holds 'notes.txt'"),
    ):

        def task(cfg, out=out):
            return score_table(
                champion.dataset,
                champion.engine,
                ModelRef.of(champion.tracking, champion.paths),
                data / "customers.csv",
                out,
            )

        code = run_main(lambda task=task: run_cli(task), monkeypatch)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2
        assert len(err) == 1 and err[0].startswith(f"error: {out}: {expected}")
    assert {p: p.read_bytes() for p in kept} == kept

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(InputError, match="cannot be reached"):
        check_master(f"spark://127.0.0.1:{port}", timeout=1.0)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-java"))
    with pytest.raises(InputError, match="needs Java 17"):
        java_path()


def test_spark_one_pass_preparation_equals_the_local_route(spark, tmp_path):
    """The rules run once per batch of a generated retail file in 300-row batches: the table's
    figures, the kept rows, every row's features and the scaler's statistics are the local
    route's (the whole file at once), and each row is scaled as the logged scaler scales it."""
    from pyspark.sql import functions as F

    from segmentation.data.retail_marketing import generate as generate_retail
    from segmentation.features.space import SpaceConfig, prepare_space
    from segmentation.spark.space import prepare_spark_space, read_training_table

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    raw = generate_retail(3000, seed=11)
    assert raw["Income"].isna().sum() > 10  # filled with the table's median on both routes
    raw.to_csv(data_dir / "marketing_campaign.csv", sep="\t", index=False)
    common = ["experiments=retail_rfm", "algorithm=kmeans", "features=all_numeric"]
    local = prepare_space(SpaceConfig.of(make_cfg(tmp_path / "local", *common, data_dir=data_dir)))
    every_row = "engine.sample_rows=100000"  # the sample holds every row, as locally
    cfg = make_cfg(tmp_path / "spark", *SPARK, every_row, *common, data_dir=data_dir)
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key)
    spark.conf.set(key, "300")  # many batches, each cleaned on its own
    try:
        space, tables = prepare_spark_space(SpaceConfig.of(cfg), cfg.engine, spark)
        tables.table.unpersist()
    finally:
        spark.conf.set(key, before)

    (median,) = [c["value"] for c in local.data.cleaning if c["rule"] == "missing_income"]
    assert space.data.detected["table_figures"] == {
        "reference_date": str(local.engineer.reference_date_.date()),
        "income_median": median,
    }
    assert space.engineer.income_median_ == local.engineer.income_median_ == median
    assert space.engineer.reference_date_ == local.engineer.reference_date_
    assert space.data.rows_raw == 3000
    assert tables.rows == space.n_rows == local.n_rows == len(local.data.frame) > 2900
    np.testing.assert_allclose(space.X_raw, local.X_raw, rtol=0, atol=1e-9)
    # Spark's standard deviation is the sample's (n - 1), scikit-learn's the population's.
    n = local.n_rows
    np.testing.assert_allclose(space.scaler.mean_, local.scaler.mean_, rtol=1e-12)
    np.testing.assert_allclose(
        space.scaler.scale_, local.scaler.scale_ * np.sqrt(n / (n - 1)), rtol=1e-9
    )
    np.testing.assert_allclose(space.X, space.scaler.transform(space.X_raw), atol=1e-12)
    # The content hash (which names the study) is the one a separate read of the file gives.
    text, _, _ = read_training_table(cfg.dataset, spark)
    row = text.select(
        F.count(F.lit(1)).alias("n"), F.bit_xor(F.xxhash64(*text.columns)).alias("x")
    ).first()
    digest = hashlib.sha256("\x1f".join(text.columns).encode())
    digest.update(f"spark:{row['n']}:{row['x']}".encode())
    assert row["n"] == 3000 and space.dataset_hash == digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def retail_spark(spark, tmp_path_factory):
    """A 2-trial KMeans Spark sweep of the real retail file, its best promoted to champion as
    `make promote` does."""
    from segmentation.promotion.promote import promote
    from segmentation.spark.sweep import run_spark_sweep

    path = real_file("marketing_campaign.csv")
    with module_store(tmp_path_factory, "spark-retail") as store:
        cfg = make_cfg(
            store,
            *SPARK,
            *QUICK_RETAIL,
            # Four segments: the elbow's three reproduce at 0.58, below the sweep's and the
            # promotion gate's stability (this test is about the engine, not the choice of k).
            "algorithm.kmeans.search.n_clusters.low=4",
            "algorithm.kmeans.search.n_clusters.high=4",
            data_dir=path.parent,
        )
        result = run_spark_sweep(cfg)
        promote(cfg)
        yield cfg, result


def test_spark_learns_the_retail_figures_from_the_whole_table(retail_spark, tmp_path):
    """The reference date and the median Income come from every row (Spark aggregates), and
    equal what the local engine learns from the same file; the model keeps them."""
    import mlflow

    from segmentation.features.space import SpaceConfig, prepare_space
    from segmentation.promotion.promote import champion_uri

    cfg, result = retail_spark
    local_cfg = make_cfg(
        tmp_path,
        "experiments=retail_rfm",
        "algorithm=kmeans",
        data_dir=real_file("marketing_campaign.csv").parent,
    )
    local = prepare_space(SpaceConfig.of(local_cfg))
    (local_median,) = [c["value"] for c in local.data.cleaning if c["rule"] == "missing_income"]
    client = mlflow.MlflowClient(str(cfg.paths.tracking_uri))
    report = client.download_artifacts(result.parent_run_id, "data/cleaning_report.json")
    figures = json.loads(Path(report).read_text())["detected"]["table_figures"]
    assert figures == {
        "reference_date": str(local.engineer.reference_date_.date()),
        "income_median": local_median,
    }
    assert local.engineer.reference_date_ == pd.Timestamp("2014-06-29")

    model = load_pyfunc(
        champion_uri(cfg.tracking), str(cfg.paths.tracking_uri)
    ).unwrap_python_model()
    engineer = model.pipeline.named_steps["engineer"]
    assert engineer.reference_date_ == local.engineer.reference_date_
    assert engineer.income_median_ == pytest.approx(local.engineer.income_median_)
    assert model.inputs["impute"] == {"Income": local_median}


def test_spark_and_local_scoring_of_the_retail_file_are_equal(spark, retail_spark, tmp_path):
    """`make predict` and `make predict ENGINE=spark` of the real retail file: the same rows,
    values and dtypes, read back with pandas."""
    from segmentation.serving.predict import score_file
    from segmentation.spark.scoring import score_table

    cfg, _ = retail_spark
    path = real_file("marketing_campaign.csv")
    local = score_file(
        cfg.dataset, ModelRef.of(cfg.tracking, cfg.paths), path, tmp_path / "local.csv"
    )
    result = score_table(
        cfg.dataset, cfg.engine, ModelRef.of(cfg.tracking, cfg.paths), path, tmp_path / "spark-out"
    )
    out = engines_agree(tmp_path / "local.csv", tmp_path / "spark-out", "ID")
    assert result.scored == local.scored == len(out) >= 2200
    assert result.segments == local.segments
    assert out["Income"].isna().any()  # kept rows without Income: a float column on both
    assert out["Dt_Customer"].dtype == pd.read_csv(tmp_path / "local.csv")["Dt_Customer"].dtype


def test_spark_retail_champion_serves_as_make_predict_scores(retail_spark, tmp_path):
    """`make serve` (mlflow models serve) of the Spark-trained champion answers REST with the
    segments `make predict` (the local route, no JVM) gives the same raw rows."""
    from segmentation.promotion.promote import champion_uri
    from segmentation.serving.predict import score_file

    cfg, _ = retail_spark
    path = real_file("marketing_campaign.csv")
    batch = score_file(
        cfg.dataset, ModelRef.of(cfg.tracking, cfg.paths), path, tmp_path / "segments.csv"
    )
    assert batch.scored >= 2200
    scored = pd.read_csv(tmp_path / "segments.csv")
    raw = pd.read_csv(path, sep="\t")
    kept = raw[raw["ID"].isin(scored["ID"])]
    # 60 rows and 10 without Income (filled with the table's median, as locally).
    rows = pd.concat([kept.head(60), kept[kept["Income"].isna()].head(10)]).drop_duplicates("ID")
    assert rows["Income"].isna().sum() == 10
    payload = json.loads(rows.drop(columns=["ID"]).to_json(orient="split", index=False))
    with serve_model(champion_uri(cfg.tracking), cfg, tmp_path) as url:
        status, reply = post(url, {"dataframe_split": payload})
    assert status == 200, reply
    rest = pd.DataFrame(reply["predictions"])
    expected = scored.set_index("ID").loc[rows["ID"]]
    assert rest["segment"].tolist() == expected["segment"].tolist()
    assert rest["persona"].tolist() == expected["persona"].tolist()
    assert rest["segment"].nunique() >= 2
