"""Models logged before the feature engineering moved to features/ still load."""

from __future__ import annotations

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from segmentation.data.mall import generate as generate_mall
from segmentation.data.retail_marketing import generate as generate_retail
from segmentation.features.mall import MallFeatures
from segmentation.features.retail_marketing import RetailFeatures
from segmentation.tracking.segmenter import load_pipeline


@pytest.mark.parametrize(
    ("features", "generate", "old_module", "new_module"),
    [
        (MallFeatures(), generate_mall, "segmentation.data.mall", "segmentation.features.mall"),
        (
            RetailFeatures(),
            generate_retail,
            "segmentation.data.retail_marketing",
            "segmentation.features.retail_marketing",
        ),
    ],
)
def test_a_pipeline_pickled_under_the_old_module_loads_and_transforms_alike(
    tmp_path, features, generate, old_module, new_module
):
    rows = generate(50, seed=3)
    pipeline = Pipeline([("features", features)]).fit(rows)
    path = tmp_path / "pipeline.joblib"
    # Protocol 0 names classes as text lines ("c<module>\n<name>\n"), so the pickle can be
    # rewritten as one logged before the move.
    joblib.dump(pipeline, path, protocol=0)
    data = path.read_bytes()
    name = type(features).__name__
    new, old = f"c{new_module}\n{name}\n".encode(), f"c{old_module}\n{name}\n".encode()
    assert new in data
    path.write_bytes(data.replace(new, old))
    loaded = load_pipeline(path)
    assert type(loaded.named_steps["features"]) is type(features)
    pd.testing.assert_frame_equal(loaded.transform(rows), pipeline.transform(rows))
    assert np.isfinite(loaded.transform(rows).select_dtypes("number").to_numpy()).any()
