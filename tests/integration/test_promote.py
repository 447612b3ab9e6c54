"""Promotion with a real registry: the champion alias, its tags, the gate and the rollback."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from segmentation.cli import promote_main
from segmentation.data import load_dataset
from segmentation.data.reading import content_hash
from segmentation.errors import InputError
from segmentation.promotion.promote import CHAMPION, PREVIOUS, alias_version, promote, rollback
from segmentation.study.sweep import run_sweep
from segmentation.tracking import runs as tags
from tests.conftest import PROMOTED_SWEEP, make_cfg, private_copy, run_main


@pytest.fixture(scope="module")
def swept(swept_stores, tmp_path_factory):
    """A private copy of the session's PROMOTED_SWEEP store as it finished: its best is
    registered as version 1 and nothing is promoted yet (this module promotes)."""
    source = swept_stores.swept(*PROMOTED_SWEEP)
    with private_copy(source, tmp_path_factory.mktemp("promote")) as copy:
        yield copy.store, copy.cfg, copy.result


def aliases(cfg) -> tuple[str | None, str | None]:
    client = MlflowClient(str(cfg.paths.tracking_uri))
    name = str(cfg.tracking.registered_model_name)
    return alias_version(client, name, CHAMPION), alias_version(client, name, PREVIOUS)


def test_promote_moves_champion_and_tags_the_version(swept):
    store, cfg, result = swept
    done = promote(cfg)
    assert done.changed and done.previous is None
    assert done.run_id == result.best_trial.user_attrs["mlflow_run_id"]
    # The sweep registered the best already: promotion reuses that version.
    assert done.version == result.registered_version
    assert aliases(cfg) == (done.version, None)
    client = MlflowClient(str(cfg.paths.tracking_uri))
    version = client.get_model_version(cfg.tracking.registered_model_name, done.version)
    found = version.tags
    assert found["dataset"] == "mall"
    assert found["dataset_hash"] == content_hash(load_dataset(cfg.dataset).frame)
    assert found["feature_set"] == "income_spending"
    assert found["algorithm"] == "kmeans"
    assert float(found["silhouette"]) == pytest.approx(result.best_trial.value, abs=1e-4)
    assert found["source_run"] == done.run_id
    assert found["code_version"] and found["code_version"] != "unknown"
    assert found["promoted_at"].startswith("20")
    assert version.current_stage in (None, "None")  # aliases only, no registry stages
    # The runs carry the dataset hash too.
    run = client.get_run(done.run_id)
    assert run.data.tags[tags.DATASET_HASH_TAG] == found["dataset_hash"]
    # The version's tags are the run's own figures.
    assert float(found["silhouette"]) == pytest.approx(run.data.metrics["silhouette"], abs=1e-4)
    assert (found["algorithm"], found["feature_set"]) == (
        run.data.params["algorithm"],
        run.data.params["feature_set"],
    )
    # Promoting the same version again changes nothing; nothing to roll back to yet.
    assert not promote(cfg).changed
    with pytest.raises(InputError, match="nothing to roll back to"):
        rollback(MlflowClient(str(cfg.paths.tracking_uri)), cfg.tracking)


def test_gate_refusal_names_the_gate_and_exits_non_zero(swept, monkeypatch, capsys):
    store, cfg, result = swept
    promote(cfg)
    before = aliases(cfg)
    with pytest.raises(InputError, match=r"silhouette 0\.\d{4} below min_silhouette 0\.99"):
        promote(make_cfg(store, *PROMOTED_SWEEP, "promotion.min_silhouette=0.99"))
    code = run_main(
        promote_main,
        monkeypatch,
        f"paths.mlruns_dir={store}",
        f"paths.data_dir={store / 'no-data'}",
        "promotion.min_silhouette=0.99",
        f"hydra.run.dir={store.parent / 'hydra'}",
    )
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error: promotion of run "), err
    assert "below min_silhouette 0.99 (gates: promotion.* in conf/promotion/default.yaml" in err
    assert err.rstrip().endswith('for one promotion: ARGS="promotion.<gate>=<value>")'), err
    assert len(err.strip().splitlines()) == 1
    assert aliases(cfg) == before


def test_gate_checks_stability_and_constraints_where_recorded(swept):
    store, cfg, result = swept
    client = MlflowClient(str(cfg.paths.tracking_uri))
    best = result.best_trial.user_attrs["mlflow_run_id"]
    other = next(
        r
        for r in client.search_runs(
            [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
        )
        if r.info.run_id != best
    )
    client.log_metric(other.info.run_id, "stability_ari", 0.5)
    with pytest.raises(InputError) as refused:
        promote(cfg, other.info.run_id)
    assert "stability_ari 0.5000 below min_stability_ari 0.7" in str(refused.value)
    constraints_failed = "sweep constraints not met (trial_state PRUNED: "
    assert (constraints_failed in str(refused.value)) == (
        other.data.tags["trial_state"] == "PRUNED"
    )


def test_second_model_promoted_then_rolled_back(swept):
    store, cfg, first = swept
    promote(cfg)
    # A second sweep of the same dataset and features registers a new version of the model
    # (the one sweep of this module: what is tested is a second sweep's registration).
    cfg2 = make_cfg(store, *PROMOTED_SWEEP, "experiment_name=mall_second", "sweep.seed=7")
    second = run_sweep(cfg2)
    assert second.registered_version != first.registered_version
    done = promote(cfg2)
    # The second model's segments aligned to the first's: its sweep's version when no id or
    # persona name changes, else a new version of the aligned model from the same run.
    second_version = done.version
    assert done.previous == first.registered_version and done.migration is not None
    client = MlflowClient(str(cfg.paths.tracking_uri))
    name = cfg.tracking.registered_model_name
    second_run = second.best_trial.user_attrs["mlflow_run_id"]
    assert client.get_model_version(name, second_version).run_id == second_run
    assert aliases(cfg) == (second_version, first.registered_version)
    rollback(MlflowClient(str(cfg.paths.tracking_uri)), cfg.tracking)
    assert aliases(cfg) == (first.registered_version, second_version)
    # Rolling back again swaps back: previous always holds the last champion.
    rollback(MlflowClient(str(cfg.paths.tracking_uri)), cfg.tracking)
    assert aliases(cfg) == (second_version, first.registered_version)
    # A run id given explicitly (RUN=) is promoted the same way (aligned to the champion of the
    # moment); a sweep's id means its best.
    first_run = first.best_trial.user_attrs["mlflow_run_id"]
    done = promote(cfg, first_run)
    assert done.changed and done.run_id == first_run and done.previous == second_version
    assert aliases(cfg) == (done.version, second_version)
    assert client.get_model_version(name, done.version).run_id == first_run
    again = promote(cfg, second.parent_run_id)
    assert again.run_id == second_run and again.previous == done.version
    assert client.get_model_version(name, aliases(cfg)[0]).run_id == second_run
    with pytest.raises(InputError, match="not found"):
        promote(cfg, "0" * 32)
