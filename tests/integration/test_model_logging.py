"""What a sweep logs as models: every trial's model has its signature, the pinned requirements
and its example rows, but no input example (MLflow then skips validating its serving input);
the registered version, and a trial promoted later, have the input example, validated."""

from __future__ import annotations

import warnings
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from segmentation.features.space import SpaceConfig, prepare_space
from segmentation.tracking.model import log_segment_model, pip_requirements, with_input_example
from segmentation.tracking.store import set_tracking_uri
from tests.conftest import Swept


def uses(swept: Swept) -> tuple[object, object, object]:
    """The sweep's config and result and its feature space; MLflow pointed at its store
    (``models:/<model id>`` URIs are resolved against the current store)."""
    set_tracking_uri(str(swept.cfg.paths.tracking_uri))
    return swept.cfg, swept.result, prepare_space(SpaceConfig.of(swept.cfg))


@pytest.fixture
def swept(promoted):
    """The session's promoted store, read only."""
    return uses(promoted)


def _model(cfg, uri: str) -> tuple[Model, Path]:
    path = Path(mlflow.artifacts.download_artifacts(uri, tracking_uri=str(cfg.paths.tracking_uri)))
    return Model.load(path), path


def test_trial_models_keep_signature_requirements_and_rows_without_an_example(swept):
    cfg, result, space = swept
    client = MlflowClient(str(cfg.paths.tracking_uri))
    children = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    best_uri = result.best_trial.user_attrs["model_uri"]
    others = {r.data.tags["segmentation.model_id"] for r in children} - {best_uri[8:]}
    assert len(children) == 3 and others, "the sweep logged models beside the registered one"
    for model_id in others:
        model, path = _model(cfg, f"models:/{model_id}")
        assert model.saved_input_example_info is None
        assert not (path / "serving_input_example.json").exists()
        names = [spec.name for spec in model.signature.inputs.inputs]
        assert names == list(space.input_example.columns)
        assert [s.name for s in model.signature.outputs.inputs] == [
            "segment",
            "persona",
            "confidence",
        ]
        lines = (path / "requirements.txt").read_text().split()
        assert lines == pip_requirements()
        rows = pd.read_parquet(path / "artifacts" / "example.parquet")
        same_rows(rows, space.input_example)


def same_rows(read: pd.DataFrame, example: pd.DataFrame) -> None:
    """The example rows as written: equal values, numbers of the same dtype (text read back
    from a file is pandas' string dtype, whatever dtype of text it was written from)."""
    example = example.reset_index(drop=True)
    pd.testing.assert_frame_equal(read.reset_index(drop=True), example, check_dtype=False)
    numbers = example.select_dtypes("number").columns
    assert list(numbers) and (read[numbers].dtypes == example[numbers].dtypes).all()


def test_the_registered_version_has_its_input_example(swept):
    cfg, result, space = swept
    client = MlflowClient(str(cfg.paths.tracking_uri))
    version = client.get_model_version(
        str(cfg.tracking.registered_model_name), result.registered_version
    )
    assert version.source == result.best_trial.user_attrs["model_uri"]
    model, path = _model(cfg, version.source)
    example = model.load_input_example(str(path))
    same_rows(example, space.input_example)
    assert (path / "serving_input_example.json").is_file()
    assert (path / "requirements.txt").read_text().split() == pip_requirements()
    # The registered model scores its example as the trial's pipeline does.
    scored = mlflow.pyfunc.load_model(version.source).predict(example)
    assert scored["segment"].tolist() == scored["segment"].astype(int).tolist()
    assert len(scored) == len(example)
    assert not with_input_example(version.source), "a model with its example is left alone"


def test_a_trial_model_gets_its_example_when_it_is_promoted(promoted_copy):
    """A trial model, logged without an input example as a sweep logs it, gets its example
    from the rows kept with it. The function rewrites a model's files: the model is logged
    anew into a run of a private copy (a model of the shared store stays as it is)."""
    cfg, result, space = uses(promoted_copy)
    client = MlflowClient(str(cfg.paths.tracking_uri))
    children = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    best_id = result.best_trial.user_attrs["model_uri"][len("models:/") :]
    other = next(
        r.data.tags["segmentation.model_id"]
        for r in children
        if r.data.tags["segmentation.model_id"] != best_id
    )
    trial_model = mlflow.pyfunc.load_model(f"models:/{other}").unwrap_python_model()
    with (
        mlflow.start_run(experiment_id=result.experiment_id, run_name="trial-like"),
        warnings.catch_warnings(record=True) as shown,
    ):
        warnings.simplefilter("always")
        info = log_segment_model(
            trial_model, space.input_example, name="kmeans-trial", with_example=False
        )
    # MLflow's advice to give an input example would print once per trial of a sweep.
    assert not [w for w in shown if "input example" in str(w.message)], shown
    uri = info.model_uri
    model, path = _model(cfg, uri)
    assert model.saved_input_example_info is None  # as the sweep logged the trial's
    before = mlflow.pyfunc.load_model(uri).predict(space.input_example)
    pd.testing.assert_frame_equal(
        before, mlflow.pyfunc.load_model(f"models:/{other}").predict(space.input_example)
    )
    assert with_input_example(uri)
    model, path = _model(cfg, uri)
    same_rows(model.load_input_example(str(path)), space.input_example)
    assert (path / "serving_input_example.json").is_file()
    after = mlflow.pyfunc.load_model(uri).predict(space.input_example)
    pd.testing.assert_frame_equal(before, after)
    assert not with_input_example(uri), "a model with its example is left alone"
