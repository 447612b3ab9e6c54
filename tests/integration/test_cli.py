"""The command-line entry points of ``segmentation.cli``, run as a user runs them (in this
process, through Hydra): a multirun over feature sets, the model URI, promotion and rollback."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from segmentation.cli import model_uri_main, promote_main, rollback_main, sweep_main
from segmentation.promotion.promote import CHAMPION, PREVIOUS, alias_version, gate_failures
from segmentation.tracking import runs
from tests.conftest import run_main

TINY = ("sweep.n_trials=2", "tracking.log_plots=false", "tracking.artifact_workers=0")
MODEL = "mall-income_spending-segments"


def _paths(store: Path, tmp_path: Path) -> tuple[str, ...]:
    """The tracking store, no data file (synthetic customers), the reports and Hydra's folders
    under tmp_path."""
    return (
        f"paths.mlruns_dir={store}",
        f"paths.reports_dir={tmp_path / 'reports'}",
        f"paths.data_dir={tmp_path / 'no-data'}",
        f"hydra.run.dir={tmp_path / 'run'}",
        f"hydra.sweep.dir={tmp_path / 'multirun'}",
        "sweep.progress=false",
    )


def test_multirun_over_feature_sets_runs_one_study_each(store, tmp_path, monkeypatch, capsys):
    code = run_main(
        sweep_main, monkeypatch, "--multirun", "features=income_spending,age_spending",
        *TINY, *_paths(store, tmp_path),
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    client = MlflowClient(f"sqlite:///{store}/mlflow.db")
    experiment = client.get_experiment_by_name("mall_income_spending")
    parents = client.search_runs([experiment.experiment_id], f"tags.`{runs.ROLE_TAG}` = 'sweep'")
    spaces = sorted(run.data.tags[runs.SPACE_TAG] for run in parents)
    assert spaces == ["mall.age_spending.standard", "mall.income_spending.standard"]
    for parent in parents:
        features = parent.data.params["feature_set"]
        assert parent.info.status == "FINISHED"
        trials = client.search_runs(
            [experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
        )
        assert len(trials) == 2
        version = client.get_model_version(f"mall-{features}-segments", "1")
        assert version.run_id == parent.data.tags["best_run_id"]
        assert version.run_id in {trial.info.run_id for trial in trials}


@pytest.mark.parametrize(
    ("preset", "uri"),
    [
        (None, f"models:/{MODEL}@champion"),
        ("retail_rfm", "models:/retail_marketing-rfm-segments@champion"),
    ],
)
def test_model_uri_prints_the_champion_uri(preset, uri, store, tmp_path, monkeypatch, capsys):
    chosen = [f"experiments={preset}"] if preset else []
    code = run_main(model_uri_main, monkeypatch, *chosen, *_paths(store, tmp_path))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.out == f"{uri}\n"


def _aliases(client: MlflowClient) -> tuple[str | None, str | None]:
    return alias_version(client, MODEL, CHAMPION), alias_version(client, MODEL, PREVIOUS)


def test_promote_twice_then_rollback(swept_copy, tmp_path, monkeypatch, capsys):
    # A private copy of the session's sweep: its best registered as v1, nothing promoted.
    store, cfg, result = swept_copy.store, swept_copy.cfg, swept_copy.result
    client = MlflowClient(str(cfg.paths.tracking_uri))
    first = result.best_trial.user_attrs["mlflow_run_id"]  # the sweep registered it: v1
    # A second trial that passes the promotion gate, with a model of its own.
    trials = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    first_model = client.get_run(first).data.tags[runs.MODEL_ID_TAG]
    passing = [
        run
        for run in trials
        if not gate_failures(run, cfg.promotion) and run.data.tags[runs.MODEL_ID_TAG] != first_model
    ]
    candidates = [
        r.info.run_id for r in sorted(passing, key=lambda r: -r.data.metrics["silhouette"])
    ]
    assert candidates, "no second trial passes the promotion gate"
    second = candidates[0]
    paths = _paths(store, tmp_path)

    assert run_main(promote_main, monkeypatch, f"+run_id={first}", *paths) == 0
    assert capsys.readouterr().out == f"promoted {MODEL} v1 (run {first}) to champion\n"
    assert _aliases(client) == ("1", None)

    # Nothing to roll back to yet: one line on stderr, exit code 2, aliases unchanged.
    assert run_main(rollback_main, monkeypatch, *paths) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        f"error: model '{MODEL}': no version holds alias 'previous' (champion is v1); "
        "nothing to roll back to\n"
    )
    assert captured.out == ""
    assert _aliases(client) == ("1", None)

    assert run_main(promote_main, monkeypatch, f"+run_id={second}", *paths) == 0
    # The last line says what moved (a segment migration table may come before it).
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith(f"promoted {MODEL} v2 (run {second}) to champion; previous is v1")
    assert _aliases(client) == ("2", "1")

    assert run_main(rollback_main, monkeypatch, *paths) == 0
    out = capsys.readouterr().out
    assert out == f"rolled back {MODEL} v1 (run {first}) to champion; previous is v2\n"
    assert _aliases(client) == ("1", "2")
