"""Spark's preparation runs the dataset's rules once over the rows (cleaned rows cached, the
table's figures aggregated from them) and gives what the local pandas route gives: the same
figures and, row for row, the same features, also when the table arrives in many batches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from segmentation.features.space import prepare_space
from tests.conftest import make_cfg, real_file
from tests.test_spark import SPARK


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    from segmentation.spark.session import get_session

    session = get_session(make_cfg(tmp_path_factory.mktemp("one-pass-session"), *SPARK))
    # Small Arrow batches: the rules run on many batches, each cleaned on its own.
    session.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "300")
    yield session
    session.stop()


def _both(spark, tmp_path, *overrides: str, data_dir=None):
    from segmentation.spark.space import prepare_spark_space

    # Every row in the sample, so the Spark side's rows compare with the local ones.
    common = ["algorithm=kmeans", *overrides]
    local = prepare_space(make_cfg(tmp_path / "local", *common, data_dir=data_dir))
    cfg = make_cfg(
        tmp_path / "spark", *SPARK, "engine.sample_rows=100000", *common, data_dir=data_dir
    )
    space, tables = prepare_spark_space(cfg, spark)
    return local, space, tables


def test_retail_one_pass_equals_the_pandas_route(spark, tmp_path):
    path = real_file("marketing_campaign.csv")
    local, space, tables = _both(spark, tmp_path, "experiments=retail_rfm", data_dir=path.parent)
    raw = pd.read_csv(path, sep="\t")
    assert raw["Income"].isna().sum() == 24  # filled with the table's median on both routes
    assert space.data.rows_raw == len(raw) == 2240
    assert tables.rows == space.n_rows == local.n_rows == len(local.data.frame)
    figures = space.data.detected["table_figures"]
    (median,) = [c["value"] for c in local.data.cleaning if c["rule"] == "missing_income"]
    assert figures == {
        "reference_date": str(local.engineer.reference_date_.date()),
        "income_median": median,
    }
    assert space.engineer.income_median_ == local.engineer.income_median_
    np.testing.assert_allclose(space.X_raw, local.X_raw, rtol=0, atol=1e-9)
    # Scaled as the logged model's scaler scales (Spark's standard deviation is the sample's).
    np.testing.assert_allclose(space.X, space.scaler.transform(space.X_raw), atol=1e-9)


def test_mall_one_pass_equals_the_pandas_route(spark, tmp_path):
    path = real_file("Mall_Customers.csv")
    local, space, _ = _both(spark, tmp_path, data_dir=path.parent)
    assert space.n_rows == local.n_rows == 200
    assert space.data.detected["table_figures"] == {}
    np.testing.assert_allclose(space.X_raw, local.X_raw, rtol=0, atol=0)
    # Scaled as the logged model's scaler scales (Spark's standard deviation is the sample's).
    np.testing.assert_allclose(space.X, space.scaler.transform(space.X_raw), atol=1e-9)
