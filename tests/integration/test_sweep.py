"""End to end: the composed config, shrunk, sweeps into a temporary MLflow store."""

from __future__ import annotations

import json
import os

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from segmentation.features.space import feature_space_name
from segmentation.study.storage import study_storage
from segmentation.study.sweep import run_sweep
from segmentation.tracking import runs as tags
from segmentation.tracking import store as tracking_store
from segmentation.tracking.model import load_pyfunc
from tests.conftest import REPORT_SWEEP, make_cfg, real_file


def test_sweep_logs_runs_models_and_registers(swept_stores, tmp_path):
    # The session's sweep with plots (read only): KMeans and GMM trials.
    swept = swept_stores.swept(*REPORT_SWEEP)
    cfg, result = swept.cfg, swept.result
    client = MlflowClient(str(cfg.paths.tracking_uri))
    children = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    assert len(children) == result.n_trials == 4
    complete = [r for r in children if r.data.tags["trial_state"] == "COMPLETE"]
    assert complete
    # Each run's silhouette is its Optuna trial's value.
    study = {t.user_attrs.get("mlflow_run_id"): t for t in result_trials(cfg, result)}
    for run in complete:
        trial = study[run.info.run_id]
        assert run.data.metrics["silhouette"] == pytest.approx(trial.values[0], abs=1e-9)
        assert int(run.data.metrics["n_clusters"]) == trial.user_attrs["n_clusters"]
    run = complete[0]
    params = run.data.params
    assert (params["dataset"], params["feature_set"], params["scaler"]) == (
        cfg.dataset.name,
        cfg.features.name,
        cfg.scaling.name,
    )
    assert params["algorithm"] in ("kmeans", "gmm") and params["data_source"] == "synthetic"
    assert run.data.tags["data_source"] == "synthetic"
    for key in (
        "silhouette",
        "davies_bouldin",
        "calinski_harabasz",
        "n_clusters",
        "noise_fraction",
        "min_segment_fraction",
        "max_segment_fraction",
        "fit_seconds",
    ):
        assert key in run.data.metrics, key
    algo = run.data.params["algorithm"]
    assert ("inertia" if algo == "kmeans" else "bic") in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert {
        "plots/cluster_scatter.png",
        "plots/segment_sizes.png",
        "plots/silhouette.png",
    } <= artifacts
    assert run.inputs.dataset_inputs, "dataset logged as the run's input"
    parent = client.get_run(result.parent_run_id)
    assert parent.data.tags[tags.ROLE_TAG] == "sweep"
    assert parent.data.metrics["best_silhouette"] == pytest.approx(result.best_trial.values[0])
    assert {a.path for a in client.list_artifacts(result.parent_run_id)} >= {"config.yaml", "study"}
    # The registered model scores raw rows.
    version = client.get_model_version(
        cfg.tracking.registered_model_name, result.registered_version
    )
    model = load_pyfunc(
        f"models:/{cfg.tracking.registered_model_name}/{version.version}",
        str(cfg.paths.tracking_uri),
    )
    rows = pd.DataFrame(
        {
            "CustomerID": ["1", "2"],
            "Gender": ["Male", "Female"],
            "Age": [30.0, 40.0],
            "Annual Income (k$)": [20.0, 90.0],
            "Spending Score (1-100)": [80.0, 15.0],
        }
    )
    out = model.predict(rows)
    assert list(out.columns) == ["segment", "persona", "confidence"]
    assert out["segment"].dtype == np.int64
    # Opposite customers (low income, high spending; high income, low spending) part ways.
    assert out["segment"][0] != out["segment"][1]
    path = client.download_artifacts(version.run_id, "segments/personas.json", str(tmp_path))
    with open(path, encoding="utf-8") as fh:
        names = {int(p["segment"]): p["name"] for p in json.load(fh)}
    assert out["persona"].tolist() == [names[s] for s in out["segment"]]


def result_trials(cfg, result) -> list:
    """The trials of a sweep's study, from its Optuna storage."""
    study = optuna.load_study(
        study_name=result.study_name,
        storage=study_storage(cfg.storage, cfg.sweep, cfg.paths, str(cfg.experiment_name)),
    )
    return study.get_trials(deepcopy=False)


def test_rerun_resumes_same_parent_and_finishes_budget(store, monkeypatch):
    from segmentation.study import insights

    refits = []
    refit = insights.refit_trial
    monkeypatch.setattr(
        insights, "refit_trial", lambda *args: refits.append(args[3].number) or refit(*args)
    )
    light = ("algorithm=kmeans", "tracking.log_plots=false")
    cfg = make_cfg(store, "sweep.n_trials=3", *light)
    first = run_sweep(cfg)
    assert refits == []  # its best trial ran in this process: its fit is reused
    client = MlflowClient(str(cfg.paths.tracking_uri))
    fidelity = client.get_run(first.parent_run_id).data.metrics["surrogate_fidelity"]
    cfg = make_cfg(store, "sweep.n_trials=5", *light)
    second = run_sweep(cfg)
    assert second.parent_run_id == first.parent_run_id
    assert second.ran == 2
    # A finished study reports its best and exits: nothing is fitted or logged again.
    summarised = client.get_run(first.parent_run_id)
    fitted = len(refits)
    third = run_sweep(cfg)
    assert third.ran == 0 and len(refits) == fitted
    assert third.registered_version == second.registered_version
    assert third.best_trial.number == second.best_trial.number
    again = client.get_run(first.parent_run_id)
    assert (again.info.status, again.info.end_time) == ("FINISHED", summarised.info.end_time)
    assert again.data.metrics == summarised.data.metrics
    # A process that died during the summary left the parent RUNNING: the next one redoes it.
    client.update_run(first.parent_run_id, status="RUNNING")
    fourth = run_sweep(cfg)
    assert fourth.ran == 0
    assert refits[-1] == fourth.best_trial.number  # an earlier process's trial: fitted again
    assert client.get_run(first.parent_run_id).info.status == "FINISHED"
    if fourth.best_trial.number == first.best_trial.number:  # the refit gives the same segments
        assert client.get_run(first.parent_run_id).data.metrics["surrogate_fidelity"] == fidelity
    # MLflow exports the URI it is given; the next composed config must not read it as the
    # user's choice of store.
    assert "MLFLOW_TRACKING_URI" not in os.environ
    children = client.search_runs(
        [first.experiment_id], f"tags.mlflow.parentRunId = '{first.parent_run_id}'"
    )
    assert len(children) == 5


def test_real_data_after_the_synthetic_default_is_a_new_study(store):
    """`make sweep` offline, then with DATA_DIR: the real data must not resume the synthetic
    study (its silhouettes, its best and its model belong to other customers)."""
    light = ("sweep.n_trials=3", "algorithm=kmeans", "tracking.log_plots=false")
    synthetic = run_sweep(make_cfg(store, *light))
    cfg = make_cfg(store, *light, data_dir=real_file("Mall_Customers.csv").parent)
    real = run_sweep(cfg)
    assert real.ran == 3
    assert real.study_name != synthetic.study_name
    assert real.parent_run_id != synthetic.parent_run_id
    assert real.registered_version != synthetic.registered_version
    client = MlflowClient(str(cfg.paths.tracking_uri))
    parent = client.get_run(real.parent_run_id)
    assert parent.data.tags["data_source"] == "real"
    assert parent.data.tags[tags.DATASET_HASH_TAG][:8] in real.study_name
    # The latest sweep of the feature space (what promotion picks) is the real one.
    latest = tracking_store.find_sweep_run(
        client,
        real.experiment_id,
        feature_space_name(cfg.dataset, cfg.features, cfg.scaling),
        tag=tags.SPACE_TAG,
    )
    assert latest.info.run_id == real.parent_run_id


def test_seeded_sweeps_agree(store, tmp_path):
    # Determinism is about the search, so the sweeps log no plots and no models.
    light = ("sweep.n_trials=8", "tracking.log_plots=false", "tracking.log_models=false")
    a = run_sweep(make_cfg(store, *light, "experiment_name=a"))
    b = run_sweep(make_cfg(store, *light, "experiment_name=b"))
    assert a.best_trial.params == b.best_trial.params


def test_real_mall_kmeans_k5_published_silhouette(store):
    path = real_file("Mall_Customers.csv")
    # The search is what is tested here: plots are covered by the other tests.
    cfg = make_cfg(
        store,
        "algorithm=kmeans",
        "sweep.n_trials=50",
        "tracking.log_plots=false",
        data_dir=path.parent,
    )
    result = run_sweep(cfg)
    best = result.best_trial
    assert best.user_attrs["n_clusters"] == 5
    assert best.value == pytest.approx(0.5547, abs=0.001)


def test_repeated_trials_share_the_model_and_draw_the_same_plots(store):
    # Two parameter sets only: most of the 5 trials repeat an earlier one.
    cfg = make_cfg(
        store,
        "sweep.n_trials=5",
        "sampler=random",
        "algorithm=kmeans",
        "algorithm.kmeans.search.n_clusters.low=4",
        "algorithm.kmeans.search.n_clusters.high=5",
        "algorithm.kmeans.search.init.choices=[k-means++]",
        "algorithm.kmeans.search.n_init.low=2",
        "algorithm.kmeans.search.n_init.high=2",
        "tracking.register_model=false",
    )
    result = run_sweep(cfg)
    client = MlflowClient(str(cfg.paths.tracking_uri))
    runs = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    assert len(runs) == 5
    by_id = {r.info.run_id: r for r in runs}
    shared = [r for r in runs if tags.MODEL_SHARED_TAG in r.data.tags]
    distinct = {r.data.params["kmeans.n_clusters"] for r in runs}
    assert len(shared) == 5 - len(distinct)
    for run in shared:
        first = by_id[run.data.tags[tags.MODEL_SHARED_TAG]]
        assert first.data.params["kmeans.n_clusters"] == run.data.params["kmeans.n_clusters"]
        model_id = run.data.tags[tags.MODEL_ID_TAG]
        assert model_id == first.data.tags[tags.MODEL_ID_TAG]
        # Its fit, scores and stability are the first one's, not computed again.
        assert run.data.tags[tags.REPEAT_TAG] == first.info.run_id
        timings = ("plots_seconds", "logging_seconds")
        ours, theirs = (
            {k: v for k, v in r.data.metrics.items() if k not in timings} for r in (run, first)
        )
        assert ours == theirs and "stability_ari" in ours
        assert [o.model_id for o in run.outputs.model_outputs] == [model_id]
        # The same labels draw the same plots, byte for byte.
        for name in ("cluster_scatter.png", "segment_sizes.png", "silhouette.png"):
            ours = client.download_artifacts(run.info.run_id, f"plots/{name}", str(store / "a"))
            theirs = client.download_artifacts(first.info.run_id, f"plots/{name}", str(store / "b"))
            with open(ours, "rb") as a, open(theirs, "rb") as b:
                assert a.read() == b.read()
    assert len({r.data.tags[tags.MODEL_ID_TAG] for r in runs}) == len(distinct)
    assert not any(
        tags.REPEAT_TAG in by_id[r].data.tags
        for r in {s.data.tags[tags.MODEL_SHARED_TAG] for s in shared}
    )


def test_cli_sweep_draws_data_insights_while_the_trials_run(store):
    from tests.integration.test_resume import start_sweep

    overrides = (
        "sweep.n_trials=2",
        "algorithm=kmeans",
        "tracking.log_models=false",
        f"hydra.run.dir={store / 'hydra'}",
    )
    proc = start_sweep(store, *overrides)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    client = MlflowClient(f"sqlite:///{store}/mlflow.db")
    parent = client.search_runs(
        [client.get_experiment_by_name("mall_income_spending").experiment_id],
        f"tags.`{tags.ROLE_TAG}` = 'sweep'",
    )[0]
    # The artifact pool draws the EDA and choosing-k plots from the start of the sweep.
    paths = {a.path for a in client.list_artifacts(parent.info.run_id, "eda")}
    assert "eda/histograms.png" in paths
    k = {a.path for a in client.list_artifacts(parent.info.run_id, "choosing_k")}
    assert "choosing_k/k_curves.json" in k
    # An artifact worker draws the study plots while the sweep registers the best model.
    study = {a.path for a in client.list_artifacts(parent.info.run_id, "study")}
    assert {"study/optuna_history.png", "study/optimisation_history.png"} <= study
    for part in ("eda", "choosing_k", "study_plots"):
        assert parent.data.metrics[f"insights_{part}_seconds"] > 0
