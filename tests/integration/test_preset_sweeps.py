"""Each preset runs a small sweep to a registered model."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from segmentation.promotion.promote import promote
from segmentation.study.sweep import run_sweep
from tests.conftest import make_cfg, module_store, real_file
from tests.unit.test_presets import PRESETS, SMALL


@pytest.fixture(scope="module")
def presets_store(tmp_path_factory):
    """One tracking store for every preset's sweep: each has its own experiment and model."""
    with module_store(tmp_path_factory, "presets") as store:
        yield store


@pytest.mark.parametrize("name", PRESETS)
def test_preset_runs_a_small_sweep_to_a_registered_model(name, presets_store):
    # KMeans only: two trials of the preset's own algorithms may all be pruned (a degenerate
    # DBSCAN) or infeasible, which is the sweep working, not the preset failing.
    reports = f"paths.reports_dir={presets_store.parent / 'reports'}"
    cfg = make_cfg(presets_store, f"experiments={name}", *SMALL, "algorithm=kmeans", reports)
    result = run_sweep(cfg)
    assert (result.n_trials, result.ran) == (2, 2)
    assert result.best_trial is not None and result.best_trial.state.name == "COMPLETE"
    assert result.registered_version == "1"
    client = MlflowClient(str(cfg.paths.tracking_uri))
    version = client.get_model_version(str(cfg.tracking.registered_model_name), "1")
    best_run = result.best_trial.user_attrs["mlflow_run_id"]
    assert version.run_id == best_run
    parent = client.get_run(result.parent_run_id)
    assert client.get_experiment(parent.info.experiment_id).name == name
    assert parent.data.tags["best_run_id"] == best_run
    assert parent.data.params["feature_set"] == cfg.features.name
    assert parent.data.tags["data_source"] == "synthetic"


FILES = {"mall": "Mall_Customers.csv", "retail_marketing": "marketing_campaign.csv"}


@pytest.mark.parametrize("name", PRESETS)
def test_preset_best_on_the_real_file_passes_its_gate(name, presets_store):
    """What the sweep's last line says next, `make promote`, works for every preset on the real
    file (two retail presets' 4 to 6 segments scored under the default gate, which refused
    them): its best has as many segments as the preset asks for and passes its gate. Its own
    experiment and model in the store, beside the synthetic sweeps'."""
    path = real_file(FILES[str(make_cfg(presets_store, f"experiments={name}").dataset.name)])
    cfg = make_cfg(
        presets_store, f"experiments={name}", "algorithm=kmeans", "sweep.n_trials=4",
        "tracking.log_plots=false", "tracking.artifact_workers=0",
        f"experiment_name={name}-real", f"tracking.registered_model_name={name}-real",
        f"paths.reports_dir={presets_store.parent / 'reports'}", data_dir=path.parent,
    )  # fmt: skip
    result = run_sweep(cfg)
    wanted = cfg.sweep.constraints
    assert wanted.k_min <= result.best_trial.user_attrs["n_clusters"] <= wanted.k_max
    assert promote(cfg).version == result.registered_version
