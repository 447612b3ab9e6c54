"""Scoring a local SQLite store's champion without MLflow's start-up: the version an alias or a
number names is the one MLflow resolves, as the registry is at that moment; the model scores as
MLflow's pyfunc model does; whatever is not as expected takes MLflow's route; and a
`make predict` of a short file never imports MLflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest
from mlflow import MlflowClient

from segmentation.errors import InputError
from segmentation.promotion.aliases import ModelRef
from segmentation.serving import predict
from segmentation.serving.predict import load_model, load_with_mlflow, score_rows
from segmentation.tracking.local_registry import load_local, model_folder
from segmentation.tracking.store import process_tracking_uri
from tests.unit.test_datasets import retail_text


def _folder(client: MlflowClient, name: str, version: str) -> Path:
    return Path(unquote(urlparse(client.get_model_version_download_uri(name, version)).path))


@pytest.fixture(scope="module")
def customers(tmp_path_factory) -> Path:
    frame = retail_text(300, seed=23)
    frame.loc[[4, 150], "Income"] = ""  # filled with the model's training median
    frame.loc[77, "Recency"] = "-3"  # rejected with its line
    path = tmp_path_factory.mktemp("local") / "customers.csv"
    frame.to_csv(path, sep="\t", index=False)
    return path


def test_the_champion_is_the_version_mlflow_resolves(retail_promoted):
    cfg = retail_promoted.cfg
    uri, name = str(cfg.paths.tracking_uri), retail_promoted.name
    client = MlflowClient(uri)
    version = client.get_model_version_by_alias(name, "champion").version
    expected = _folder(client, name, version)
    assert model_folder(uri, f"models:/{name}@champion") == expected
    assert model_folder(uri, f"models:/{name}/{version}") == expected
    local = load_local(uri, f"models:/{name}@champion")
    assert local is not None  # the folder is expected's (model_folder, above)
    with_mlflow = load_with_mlflow(ModelRef(f"models:/{name}@champion", uri))
    assert local.input_names == with_mlflow.input_names
    assert local.segmenter.card() == with_mlflow.segmenter.card()


def test_both_routes_score_a_file_alike(retail_promoted, customers, monkeypatch):
    cfg = retail_promoted.cfg
    ref = ModelRef.of(cfg.tracking, cfg.paths)
    local = score_rows(cfg.dataset, ref, customers)
    assert type(local.model.segmenter).__name__ == "Segmenter"  # not MLflow's pyfunc model
    monkeypatch.setattr(predict, "load_local", lambda *_: None)
    with_mlflow = score_rows(cfg.dataset, ref, customers)
    assert type(with_mlflow.model.segmenter).__name__ == "SegmentModel"
    pd.testing.assert_frame_equal(local.scored, with_mlflow.scored)
    pd.testing.assert_frame_equal(local.rejected, with_mlflow.rejected)
    assert len(local.scored) == 299 and local.rejected[predict.LINE].tolist() == [79]
    assert local.scored["segment"].nunique() >= 2


def test_the_registry_is_read_as_it_is_now(promoted_copy):
    """No copy of an earlier answer: an alias moved or removed is seen by the next scoring."""
    cfg = promoted_copy.cfg
    uri, name = str(cfg.paths.tracking_uri), promoted_copy.name
    client = MlflowClient(uri)
    champion = f"models:/{name}@champion"
    first = client.get_model_version_by_alias(name, "champion")
    assert model_folder(uri, champion) == _folder(client, name, first.version)
    with process_tracking_uri(uri):  # MLflow resolves a models:/ source in the process's store
        second = client.create_model_version(name, first.source, model_id=first.model_id)
    client.set_registered_model_alias(name, "champion", second.version)
    assert model_folder(uri, champion) == _folder(client, name, second.version)
    client.delete_registered_model_alias(name, "champion")
    assert model_folder(uri, champion) is None
    # Nothing to find: MLflow's route gives the refusal its words.
    with pytest.raises(InputError, match=r"cannot be loaded .*make promote"):
        load_model(ModelRef(champion, uri))
    assert model_folder(uri, f"models:/{name}/99") is None


def test_what_is_not_a_local_registered_version_takes_mlflows_route(retail_promoted, monkeypatch):
    cfg = retail_promoted.cfg
    uri, name = str(cfg.paths.tracking_uri), retail_promoted.name
    client = MlflowClient(uri)
    source = client.get_model_version_by_alias(name, "champion").source  # models:/m-...
    assert model_folder(uri, source) is None
    assert model_folder("postgresql://u@127.0.0.1:1/db", f"models:/{name}@champion") is None
    assert model_folder(uri.replace("mlflow.db", "absent.db"), f"models:/{name}@champion") is None
    monkeypatch.setenv("MLFLOW_WORKSPACE", "team-a")
    assert model_folder(uri, f"models:/{name}@champion") is None


def test_a_short_predict_never_imports_mlflow(retail_promoted, customers, tmp_path):
    out = tmp_path / "segments.csv"
    code = (
        "import sys\n"
        "from segmentation.cli import predict_main\n"
        "try:\n"
        "    predict_main()\n"
        "finally:\n"
        "    print('imported:', sorted(m for m in ('mlflow', 'sqlalchemy', 'optuna',"
        " 'matplotlib') if m in sys.modules))\n"
    )
    args = [*retail_promoted.cli_args(), f"+input={customers}", f"+output={out}"]
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "imported: []" in done.stdout
    cfg = retail_promoted.cfg
    expected = score_rows(cfg.dataset, ModelRef.of(cfg.tracking, cfg.paths), customers).scored
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(_csv(expected, tmp_path)))


def _csv(frame: pd.DataFrame, folder: Path) -> Path:
    path = folder / "expected.csv"
    frame.to_csv(path, index=False)
    return path
