"""One small sweep with plots: the parent run holds EDA, choosing-k and study plots, personas,
stability and a self-contained report whose figures are the run's; the report escapes text
from data."""

from __future__ import annotations

import html as htmllib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from segmentation.cli import report_task
from segmentation.data import load_dataset
from segmentation.segments.describe import Segments
from segmentation.segments.personas import build_personas
from segmentation.segments.profiles import segment_profile
from segmentation.tracking import runs as tags
from segmentation.tracking import store as tracking_store
from segmentation.tracking.model import load_pyfunc
from segmentation.tracking.reports import build_report
from tests.conftest import REPORT_SWEEP, Swept, make_cfg


@pytest.fixture(scope="module")
def report_store(swept_stores) -> Swept:
    """The session's sweep of REPORT_SWEEP (run once, whoever asks first), read only."""
    return swept_stores.swept(*REPORT_SWEEP)


@pytest.fixture
def swept(report_store):
    """The report sweep's config, result and client."""
    cfg = report_store.cfg
    return cfg, report_store.result, MlflowClient(str(cfg.paths.tracking_uri))


def _paths(client, run_id, folder=""):
    return {a.path for a in client.list_artifacts(run_id, folder)}


def test_sweep_logs_plots_personas_stability_and_report(swept, tmp_path):
    cfg, result, client = swept
    parent_id = result.parent_run_id
    assert {
        "eda/histograms.png",
        "eda/category_counts.png",
        "eda/correlation.png",
        "eda/pairwise_features.png",
        "eda/box_spending_score__1_100_by_gender.png",
    } <= _paths(client, parent_id, "eda")
    assert {
        "choosing_k/elbow.png",
        "choosing_k/gmm_bic.png",
        "choosing_k/silhouette_vs_k_fits.png",
    } <= _paths(client, parent_id, "choosing_k")
    assert {"study/optuna_history.png", "study/param_importances.png", "study/slice.png"} <= _paths(
        client, parent_id, "study"
    )
    assert {"segments/personas.csv", "segments/personas.json"} <= _paths(
        client, parent_id, "segments"
    )
    parent = client.get_run(parent_id)
    best_run = result.best_trial.user_attrs["mlflow_run_id"]
    best_ari = client.get_run(best_run).data.metrics["stability_ari"]
    assert best_ari >= cfg.sweep.constraints.min_stability
    assert parent.data.metrics["best_stability_ari"] == pytest.approx(best_ari)
    assert {"segments/personas.json", "segments/segment_profile.csv"} <= _paths(
        client, best_run, "segments"
    )
    assert "plots/cluster_scatter_3d.png" in _paths(client, best_run, "plots")
    local = Path(client.download_artifacts(parent_id, "segments/personas.json", str(tmp_path)))
    personas = json.loads(local.read_text())
    names = [p["name"] for p in personas]
    assert len(set(names)) == len(names)
    assert all(p["recommendations"] for p in personas)
    html = Path(client.download_artifacts(parent_id, "report.html", str(tmp_path))).read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "stability_ari" in html and parent_id in html and names[0] in html
    assert html.count("data:image/png;base64,") >= 8
    assert not re.search(r"(src|href)=\"https?://", html)
    # The registered model names the segments with the personas.
    model = load_pyfunc(
        f"models:/{cfg.tracking.registered_model_name}/{result.registered_version}",
        str(cfg.paths.tracking_uri),
    )
    frame = pd.DataFrame(
        {
            "CustomerID": ["1"],
            "Gender": ["Male"],
            "Age": [30.0],
            "Annual Income (k$)": [90.0],
            "Spending Score (1-100)": [85.0],
        }
    )
    assert model.predict(frame)["persona"][0] in names


def cells(page: str, heading: str) -> dict[str, str]:
    """The two-column table after ``heading`` in the report, as {first cell: second cell}."""
    table = page.split(f"<h2>{heading}</h2>", 1)[1].split("</table>", 1)[0]
    pairs = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td></tr>", table)
    return {htmllib.unescape(k): htmllib.unescape(v) for k, v in pairs}


def test_report_figures_are_the_runs(swept, tmp_path):
    """Every figure of the report equals what the sweep logged to MLflow and what it returned."""
    cfg, result, client = swept
    parent = client.get_run(result.parent_run_id)
    p, m, t = parent.data.params, parent.data.metrics, parent.data.tags
    best = client.get_run(result.best_trial.user_attrs["mlflow_run_id"])
    page = Path(client.download_artifacts(parent.info.run_id, "report.html", str(tmp_path)))
    page = page.read_text(encoding="utf-8")

    frame = load_dataset(cfg.dataset).frame
    data = cells(page, "Data")
    # The page names the file in the store the sweep ran in; this store is a copy of it.
    assert Path(data.pop("file")).parts[-3:] == Path(p["data_path"]).parts[-3:]
    assert data == {
        "source": p["data_source"],
        "rows read": f"{int(m['rows_raw']):,}",
        "rows used": f"{int(m['rows_clean']):,}",
        "features": ", ".join(p["features"].split(",")),
        "scaling": p["scaler"],
    }
    assert p["data_source"] == "synthetic" and int(m["rows_clean"]) == len(frame)
    assert p["features"].split(",") == list(cfg.features.columns)

    # The study paragraph: the budget, the search space and the best trial's silhouette.
    assert int(p["n_trials"]) == result.n_trials == 4
    assert f"An Optuna study of {result.n_trials} trials over {p['algorithms']}" in page
    assert f"segments between {p['constraints.k_min']} and {p['constraints.k_max']}" in page
    silhouette = best.data.metrics["silhouette"]
    assert m["best_silhouette"] == pytest.approx(silhouette)
    assert silhouette == pytest.approx(result.best_trial.value, abs=1e-9)
    k = int(best.data.metrics["n_clusters"])
    assert k == result.best_trial.user_attrs["n_clusters"]
    assert (
        f"The best trial ({t['best_algorithm']}) has {k} segments and silhouette "
        f"{silhouette:.3f}." in " ".join(page.split())
    )
    assert t["best_algorithm"] == best.data.params["algorithm"]
    ari = m["best_stability_ari"]
    assert ari == pytest.approx(best.data.metrics["stability_ari"])
    assert f"stability_ari = {ari:.3f}</strong>" in page

    # The personas table: one row per segment, sizes that add up to the customers used.
    personas = json.loads(
        Path(
            client.download_artifacts(parent.info.run_id, "segments/personas.json", str(tmp_path))
        ).read_text()
    )
    assert len(personas) == k and sum(r["size"] for r in personas) == int(m["rows_clean"])
    for row in personas:
        assert f"<strong>{htmllib.escape(row['name'])}</strong>" in page
        assert f"<td class=num>{row['size']:,}</td>" in page
        assert row["share"] == pytest.approx(row["size"] / int(m["rows_clean"]))

    assert cells(page, "Which run and model") == {
        "sweep run": parent.info.run_id,
        "best trial": str(result.best_trial.number),
        "best trial run": best.info.run_id,
        "model URI": result.best_trial.user_attrs["model_uri"],
        "registered version": str(result.registered_version),
    }


def test_timings_are_positive_and_within_their_runs(swept):
    """The seconds a sweep logs are positive and fit inside the run they describe."""
    cfg, result, client = swept
    parent = client.get_run(result.parent_run_id)
    trials = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    assert len(trials) == result.n_trials
    for run in trials:
        seconds = (run.info.end_time - run.info.start_time) / 1000
        fitted = run.data.metrics["fit_seconds"] + run.data.metrics["metrics_seconds"]
        assert run.data.metrics["fit_seconds"] > 0 and run.data.metrics["metrics_seconds"] > 0
        assert fitted <= seconds + 0.01, (run.info.run_id, fitted, seconds)
        # A trial runs inside its sweep.
        assert parent.info.start_time <= run.info.start_time <= run.info.end_time
        assert run.info.end_time <= parent.info.end_time
    insights = {k: v for k, v in parent.data.metrics.items() if k.startswith("insights_")}
    assert insights and all(v > 0 for v in insights.values()), insights
    sweep_seconds = (parent.info.end_time - parent.info.start_time) / 1000
    assert sum(insights.values()) <= sweep_seconds


def test_report_cli_writes_file_and_personas_on_request(swept, tmp_path):
    cfg, result, client = swept
    out = tmp_path / "report.html"
    cfg = make_cfg(Path(cfg.paths.mlruns_dir), "features=age_income_spending", f"+output={out}")
    assert report_task(cfg) == out
    # The same page as the sweep logged (the report is rendered from the run alone).
    logged = Path(client.download_artifacts(result.parent_run_id, "report.html", str(tmp_path)))
    assert out.read_text(encoding="utf-8") == logged.read_text(encoding="utf-8")
    # The persona table of a trial, recomputed from its model, logged to its run again: the
    # best trial's, which the sweep logged, so the shared store's file is replaced by an
    # equal one (checked).
    best = result.best_trial.user_attrs["mlflow_run_id"]
    before = personas_of(client, best, tmp_path / "before")
    cfg = make_cfg(
        Path(cfg.paths.mlruns_dir),
        "features=age_income_spending",
        f"+run_id={best}",
        "+persona_table=true",
    )
    table = report_task(cfg)
    assert table["name"].is_unique
    assert table["name"].tolist() == [r["name"] for r in before]
    assert table["size"].tolist() == [r["size"] for r in before]
    assert personas_of(client, best, tmp_path / "after") == before


def personas_of(client: MlflowClient, run_id: str, folder: Path) -> list[dict]:
    path = client.download_artifacts(run_id, "segments/personas.json", str(folder))
    return json.loads(Path(path).read_text())


def test_report_escapes_text_from_data(store, tmp_path):
    cfg = make_cfg(store)
    client = MlflowClient(str(cfg.paths.tracking_uri))
    exp = tracking_store.experiment_id(client, "escape", cfg.paths.artifact_root)
    parent = client.create_run(exp, tags={tags.ROLE_TAG: "sweep"}).info.run_id
    best = client.create_run(exp, tags={tags.ROLE_TAG: "trial"}).info.run_id
    client.set_tag(parent, "best_run_id", best)
    tags.log_batch(client, parent, params={"dataset": "<script>alert(1)</script>"})
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 20)
    X = np.column_stack([rng.normal(labels * 5, 1), rng.normal(0, 1, 40)])
    profile = segment_profile(X, labels, ["<script>", "Income & <b>"])
    segments = Segments(labels, profile, build_personas(profile))
    segments.write(tmp_path / "segments")
    client.log_artifacts(parent, str(tmp_path / "segments"), "segments")
    html = build_report(client, parent)
    assert "<script>" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html and "Income &amp; &lt;b&gt;" in html
