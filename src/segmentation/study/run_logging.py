"""The sweep's MLflow runs: the parent run's params, config, data reports and summary, the
dataset input every run shares, the Pareto front, the report file."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import mlflow
import optuna
import pandas as pd
from mlflow.entities import DatasetInput, Run
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema
from omegaconf import OmegaConf
from optuna.trial import TrialState

from segmentation.data import LoadedData, data_profile
from segmentation.features.space import FeatureSpace
from segmentation.study.definition import chosen_trial, count_states
from segmentation.study.objective import SweepContext, SweepGroups
from segmentation.tracking import runs
from segmentation.tracking.store import redact_all

# Rows from which a dataset input's column types are inferred.
SCHEMA_SAMPLE_ROWS = 1000


def dataset_input(data: LoadedData) -> DatasetInput:
    """The dataset as an MLflow run input (name, digest, schema, source), built once."""
    # A synthetic frame has no file: MLflow then records the code that made it as the source.
    source = Path(data.path).as_uri() if data.source == "real" else None
    with warnings.catch_warnings():
        # MLflow registers its local-file source twice and says so on every file URI.
        warnings.filterwarnings("ignore", "The specified dataset source can be interpreted")
        # A hint about serving integer columns; a dataset input is not served.
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer column")
        dataset = mlflow.data.from_pandas(
            data.frame, source=source, name=f"{data.name}-{data.source}"
        )
        # MLflow infers the schema value by value: the types come from a sample (the frame is
        # cleaned, one type per column); whether a column may be missing, from every row.
        sample = data.frame.head(SCHEMA_SAMPLE_ROWS)
        dataset.schema = Schema(
            [
                ColSpec(spec.type, spec.name, required=not bool(data.frame[spec.name].isna().any()))
                for spec in infer_signature(sample).inputs.inputs
            ]
        )
    return runs.dataset_input(dataset)


def copy_repeated_plots(client: MlflowClient, copies: list[tuple[str, str]]) -> None:
    """Log each ``(source, target)`` run pair's plots from source to target (call it once the
    artifact jobs are done, so every source has its plots)."""
    for source, target in copies:
        with tempfile.TemporaryDirectory() as tmp:
            client.log_artifacts(target, client.download_artifacts(source, "plots", tmp), "plots")
    copies.clear()


def open_parent_run(
    client: MlflowClient,
    groups: SweepGroups,
    config: dict[str, Any],
    exp_id: str,
    study: optuna.Study,
    space: FeatureSpace,
    parent: Run | None,
) -> str:
    """The study's parent run: the existing one set RUNNING again, or a new one with the
    sweep's params (from ``groups``), its resolved config (``config``, logged as
    ``config.yaml``), data reports and dataset input."""
    if parent is not None:
        client.update_run(parent.info.run_id, status="RUNNING")
        return parent.info.run_id
    parent_id = client.create_run(
        exp_id,
        run_name=f"sweep-{groups.dataset.name}-{groups.features.name}",
        tags={
            runs.ROLE_TAG: "sweep",
            runs.STUDY_TAG: study.study_name,
            runs.SPACE_TAG: groups.space_config.name,
            "data_source": space.data.source,
            "dataset": groups.dataset.name,
            runs.DATASET_HASH_TAG: space.dataset_hash,
            "feature_set": groups.features.name,
        },
    ).info.run_id
    constraints = OmegaConf.to_container(groups.sweep.constraints, resolve=True, enum_to_str=True)
    params = {
        "dataset": groups.dataset.name,
        "data_source": space.data.source,
        "data_path": space.data.path,
        "feature_set": groups.features.name,
        "features": ",".join(space.columns),
        "scaler": groups.scaling.name,
        "algorithms": ",".join(sorted(groups.algorithm)),
        "n_trials": int(groups.sweep.n_trials),
        "seed": int(groups.sweep.seed),
        "sampler": str(groups.sampler._target_).rsplit(".", 1)[-1],
        **runs.flatten("constraints", constraints),
    }
    runs.log_batch(
        client,
        parent_id,
        params=params,
        metrics={"rows_raw": space.data.rows_raw, "rows_clean": space.data.rows_clean},
    )
    # The tracking URI may come from MLFLOW_TRACKING_URI with a password in it.
    client.log_dict(parent_id, redact_all(config), "config.yaml")
    client.log_dict(
        parent_id,
        {
            "source": space.data.source,
            "path": space.data.path,
            "detected": space.data.detected,
            "cleaning": space.data.cleaning,
        },
        "data/cleaning_report.json",
    )
    client.log_dict(parent_id, data_profile(space.data), "data/profile.json")
    runs.log_dataset(client, parent_id, dataset_input(space.data))
    return parent_id


def close_orphan_child_runs(client: MlflowClient, ctx: SweepContext, study: optuna.Study) -> None:
    """Child runs left RUNNING by a killed process are closed as KILLED, and so is the run of a
    failed trial that was closed FINISHED: a process killed after closing its trial's run and
    before Optuna recorded the trial leaves the run finished and the trial failed (it does not
    count)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.FAIL))
    running = {t.user_attrs.get("mlflow_run_id") for t in trials if t.state == TrialState.RUNNING}
    failed = {t.user_attrs.get("mlflow_run_id") for t in trials if t.state == TrialState.FAIL}
    for run in client.search_runs(
        [ctx.experiment_id],
        filter_string=(
            f"tags.mlflow.parentRunId = '{ctx.parent_run_id}' and attributes.status = 'RUNNING'"
        ),
    ):
        if run.info.run_id not in running:
            client.set_terminated(run.info.run_id, status="KILLED")
    for run_id in sorted(failed - {None}):
        if client.get_run(run_id).info.status == "FINISHED":
            client.set_terminated(run_id, status="KILLED")


def summary(study: optuna.Study) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
    """The parent run's summary of the study: metrics (trial counts, the best's metrics),
    tags (rejection reasons, the best trial) and params (the best's)."""
    counts = count_states(study)
    reasons: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED, TrialState.COMPLETE)):
        if t.state == TrialState.COMPLETE and not t.user_attrs.get("reason"):
            continue
        key = str(t.user_attrs.get("reason", "?")).split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    metrics = {f"trials_{k.lower()}": v for k, v in counts.items()}
    tags: dict[str, Any] = {"rejected_reasons": reasons}
    params: dict[str, Any] = {}
    try:
        best = chosen_trial(study)
    except ValueError:
        return metrics, tags, params
    metrics.update({f"best_{k}": v for k, v in best.user_attrs.get("metrics", {}).items()})
    tags.update(
        {
            "best_trial": best.number,
            "best_run_id": best.user_attrs.get("mlflow_run_id"),
            "best_algorithm": best.user_attrs.get("algorithm"),
            "best_model_uri": best.user_attrs.get("model_uri"),
        }
    )
    params = {f"best.{k}": v for k, v in best.params.items()}
    return metrics, tags, params


PARETO_RULE = (
    "knee of the feasible Pareto front: the trial nearest the ideal point (best silhouette "
    "and best stability_ari), each objective scaled to [0, 1] over the front"
)


def log_pareto_front(
    client: MlflowClient, parent_id: str, study: optuna.Study, picked: optuna.trial.FrozenTrial
) -> None:
    """The feasible Pareto front as a table on the parent run, with the trial picked and why
    (the front's plot is among the study plots)."""
    rows = [
        {
            "trial": t.number,
            "algorithm": t.user_attrs.get("algorithm"),
            "k": t.user_attrs.get("n_clusters"),
            "silhouette": t.values[0],
            "stability_ari": t.values[1],
            "run_id": t.user_attrs.get("mlflow_run_id"),
            "picked": t.number == picked.number,
        }
        for t in sorted(study.best_trials, key=lambda t: -t.values[0])
    ]
    client.log_table(parent_id, pd.DataFrame(rows), "pareto/front.json")
    client.log_text(parent_id, pd.DataFrame(rows).to_csv(index=False), "pareto/front.csv")
    runs.log_batch(
        client,
        parent_id,
        tags={
            "pareto_picked_trial": picked.number,
            "pareto_rule": PARETO_RULE,
            "pareto_front_size": len(rows),
        },
    )


def report_link(run_id: str) -> str:
    """The run's report as the MLflow UI's server serves it (relative to the UI's address)."""
    return f"get-artifact?path=report.html&run_uuid={run_id}"


def write_report_file(reports_dir: str, client: MlflowClient, parent_id: str) -> Path:
    """The parent run's report, also as a file under ``reports_dir`` (``paths.reports_dir``)."""
    path = Path(reports_dir) / f"report-{parent_id}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    client.download_artifacts(parent_id, "report.html", str(path.parent))
    (path.parent / "report.html").replace(path)
    return path
