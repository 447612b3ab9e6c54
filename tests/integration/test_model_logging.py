"""What a sweep logs as models: every trial's model has its signature, the pinned requirements
and its example rows, but no input example (MLflow then skips validating its serving input);
the registered version, and a trial promoted later, have the input example, validated."""

from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.models import Model
from mlflow.tracking import MlflowClient

from segmentation.features.space import SpaceConfig, prepare_space
from segmentation.tracking.model import (
    download_model,
    load_pyfunc,
    log_segment_model,
    pip_requirements,
    with_input_example,
)
from segmentation.tracking.store import (
    connect,
    process_tracking_uri,
    register_model,
    register_run_model,
    set_tracking_uri,
)
from tests.conftest import Swept


def uses(swept: Swept) -> tuple[object, object, object]:
    """The sweep's config and result and its feature space."""
    return swept.cfg, swept.result, prepare_space(SpaceConfig.of(swept.cfg))


@pytest.fixture
def swept(promoted):
    """The session's promoted store, read only."""
    return uses(promoted)


def _model(cfg, uri: str) -> tuple[Model, Path]:
    path = download_model(uri, str(cfg.paths.tracking_uri), tempfile.mkdtemp())
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
    scored = load_pyfunc(version.source, str(cfg.paths.tracking_uri)).predict(example)
    assert scored["segment"].tolist() == scored["segment"].astype(int).tolist()
    assert len(scored) == len(example)
    store = str(cfg.paths.tracking_uri)
    assert not with_input_example(version.source, store), "a model with its example is left alone"


def test_a_trial_model_gets_its_example_when_it_is_promoted(promoted_copy):
    """A trial model, logged without an input example as a sweep logs it, gets its example
    from the rows kept with it. The function rewrites a model's files: the model is logged
    anew into a run of a private copy (a model of the shared store stays as it is)."""
    cfg, result, space = uses(promoted_copy)
    store = str(cfg.paths.tracking_uri)
    client = MlflowClient(store)
    children = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    best_id = result.best_trial.user_attrs["model_uri"][len("models:/") :]
    other = next(
        r.data.tags["segmentation.model_id"]
        for r in children
        if r.data.tags["segmentation.model_id"] != best_id
    )
    trial_model = load_pyfunc(f"models:/{other}", store).unwrap_python_model()
    with (
        process_tracking_uri(store),
        mlflow.start_run(experiment_id=result.experiment_id, run_name="trial-like"),
        warnings.catch_warnings(record=True) as shown,
    ):
        warnings.simplefilter("always")
        info = log_segment_model(
            trial_model, space.input_example, store, name="kmeans-trial", with_example=False
        )
    # MLflow's advice to give an input example would print once per trial of a sweep.
    assert not [w for w in shown if "input example" in str(w.message)], shown
    uri = info.model_uri
    model, path = _model(cfg, uri)
    assert model.saved_input_example_info is None  # as the sweep logged the trial's
    before = load_pyfunc(uri, store).predict(space.input_example)
    pd.testing.assert_frame_equal(
        before, load_pyfunc(f"models:/{other}", store).predict(space.input_example)
    )
    assert with_input_example(uri, store)
    model, path = _model(cfg, uri)
    same_rows(model.load_input_example(str(path)), space.input_example)
    assert (path / "serving_input_example.json").is_file()
    after = load_pyfunc(uri, store).predict(space.input_example)
    pd.testing.assert_frame_equal(before, after)
    assert not with_input_example(uri, store), "a model with its example is left alone"


def process_uri() -> str | None:
    """The process-wide tracking URI, ``None`` when unset."""
    return mlflow.get_tracking_uri() if mlflow.is_tracking_uri_set() else None


def test_load_log_and_register_use_the_store_given_not_the_process_wide_one(
    promoted_copy, tmp_path
):
    """With this process's MLflow pointed at store A (as `connect` left it before, or a user's
    notebook), loading, logging and registering in store B write only to B, and neither they
    nor `connect` move the process-wide URI."""
    cfg, result, space = uses(promoted_copy)
    store_a = f"sqlite:///{tmp_path / 'a' / 'mlflow.db'}"
    store_b = str(cfg.paths.tracking_uri)
    before = process_uri()
    try:
        connect(store_a)
        assert process_uri() == before, "connect leaves the process-wide URI"
        set_tracking_uri(store_a)
        client = connect(store_b)
        assert process_uri() == store_a
        name = str(cfg.tracking.registered_model_name)
        champion = load_pyfunc(f"models:/{name}@champion", store_b)
        scored = champion.predict(space.input_example)
        trial = load_pyfunc(result.best_trial.user_attrs["model_uri"], store_b)
        pd.testing.assert_frame_equal(scored, trial.predict(space.input_example))
        # A trial-like run of B gets a model, registered as a new version of B's model.
        run = client.create_run(result.experiment_id, run_name="explicit-store")
        model_id = client.create_logged_model(
            result.experiment_id, name="kmeans-explicit", source_run_id=run.info.run_id
        ).model_id
        log_segment_model(
            trial.unwrap_python_model(), space.input_example, store_b, model_id=model_id
        )
        versions = len(client.search_model_versions(f"name = '{name}'"))
        version = register_run_model(
            client, name, run.info.run_id, f"models:/{model_id}", tags={"origin": "test"}
        )
        assert process_uri() == store_a, "loading, logging and registering leave it"
    finally:
        set_tracking_uri(before)
    assert int(version) == versions + 1
    registered = client.get_model_version(name, version)
    assert (registered.source, registered.run_id) == (f"models:/{model_id}", run.info.run_id)
    assert registered.tags == {"origin": "test"} and registered.status == "READY"
    listed = json.loads(client.get_logged_model(model_id).tags["mlflow.modelVersions"])
    assert listed == [{"name": name, "version": int(version)}]
    reloaded = load_pyfunc(f"models:/{name}/{version}", store_b)
    pd.testing.assert_frame_equal(reloaded.predict(space.input_example), scored)
    # Store A holds nothing but the Default experiment MLflow creates with a store.
    a = MlflowClient(store_a)
    assert [e.name for e in a.search_experiments()] == ["Default"]
    assert a.search_runs(["0"]) == [] and a.search_registered_models() == []
    assert a.search_logged_models(["0"]) == []


def test_nothing_lands_in_mlflows_default_store_when_no_uri_is_set(
    promoted_copy, tmp_path, monkeypatch
):
    """With no process-wide URI at all, MLflow's default is a store in the working directory:
    loading and registering in the given store leave that directory empty."""
    cfg, _, space = uses(promoted_copy)
    store = str(cfg.paths.tracking_uri)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = process_uri()
    set_tracking_uri(None)
    try:
        client = connect(store)
        name = str(cfg.tracking.registered_model_name)
        source = client.get_model_version_by_alias(name, "champion").source  # models:/<id>
        scored = load_pyfunc(f"models:/{name}@champion", store).predict(space.input_example)
        copy = register_model(client, f"{name}-copy", source)
        again = load_pyfunc(f"models:/{name}-copy/{copy}", store).predict(space.input_example)
        assert process_uri() is None
    finally:
        set_tracking_uri(before)
    pd.testing.assert_frame_equal(again, scored)
    assert copy == "1" and list(cwd.iterdir()) == []
