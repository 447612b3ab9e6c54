"""The sweep (``conf/sweep``): an Optuna study whose every trial is an MLflow child run of one
parent run, which ends with the study's summary, the best model registered and the report."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from segmentation.algorithms.limits import check_algorithm_limits
from segmentation.data import data_profile
from segmentation.errors import InputError, TrackingError
from segmentation.evaluation.choosing_k import elbow_k
from segmentation.features.space import FeatureSpace, feature_space_name, prepare_space
from segmentation.study import interrupts, workers
from segmentation.study.artifacts import ArtifactWriter
from segmentation.study.budget import run_budget
from segmentation.study.insights import (
    Drawing,
    FittedTrial,
    best_fit,
    explain,
    log_sweep_insights,
    start_data_insights,
    start_study_plots,
)
from segmentation.study.objective import (
    Progress,
    SweepContext,
    TrialRunner,
    algorithm_specs,
    chosen_trial,
    copy_repeated_plots,
    dataset_input,
    directions,
    finished_trials,
    make_sampler,
    silhouette_of,
    study_name,
)
from segmentation.study.storage import fail_dead_trials, study_storage
from segmentation.tracking import runs
from segmentation.tracking.descriptions import (
    NOTE_TAG,
    describe_experiment,
    registered_model_description,
    version_description,
)
from segmentation.tracking.model import with_input_example
from segmentation.tracking.store import (
    connect,
    experiment_id,
    find_sweep_run,
    redact_all,
    register_run_model,
)


@dataclass
class SweepResult:
    study_name: str
    experiment_id: str
    parent_run_id: str
    n_trials: int
    ran: int
    best_trial: optuna.trial.FrozenTrial | None
    registered_version: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    insight_seconds: dict[str, float] = field(default_factory=dict)
    report: Path | None = None


def count_states(study: optuna.Study) -> dict[str, int]:
    """Trials by state; a complete trial that breaks a constraint counts as INFEASIBLE."""
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        state = trial.state.name
        if trial.state == TrialState.COMPLETE and trial.user_attrs.get("reason"):
            state = "INFEASIBLE"
        counts[state] = counts.get(state, 0) + 1
    return counts


def artifact_writer(cfg: DictConfig) -> ArtifactWriter:
    """The processes that draw plots and log models (``tracking.artifact_workers``)."""
    return ArtifactWriter(int(cfg.tracking.get("artifact_workers", 0)))


def run_sweep(cfg: DictConfig) -> SweepResult:
    """Run (or resume) the study the config describes and register its best model."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = prepare_space(cfg)  # bad input is refused here, before anything is written
    specs = algorithm_specs(cfg)
    n_workers = workers.worker_count(cfg)
    workers.check_shared_tracking(cfg)
    check_algorithm_limits(specs, space.n_rows)
    print(space.data.describe(), flush=True)
    return sweep_space(cfg, space, n_workers)


def sweep_space(
    cfg: DictConfig,
    space: FeatureSpace,
    n_workers: int = 1,
    runner_factory: Callable[[SweepContext], TrialRunner] = TrialRunner,
) -> SweepResult:
    """The study of a prepared feature space, its parent run, its trials (each run by a runner
    from ``runner_factory``: another engine brings its own fit) and its summary, with the
    artifact pool drawing the data's plots from the start."""
    # With several sweep workers, each draws its own trials' plots; the data's are drawn here.
    writer = artifact_writer(cfg) if n_workers == 1 else ArtifactWriter(0)
    writer.start()
    drawings = {}
    try:
        # Built (a new store: seconds) while the pool's processes start on the other cores.
        client = connect(str(cfg.paths.tracking_uri))
        if cfg.tracking.log_plots:
            drawings[""] = start_data_insights(cfg, space, writer)
        return _sweep(cfg, client, space, n_workers, writer, drawings, runner_factory)
    finally:
        for drawing in drawings.values():
            drawing.close()
        writer.close()


def _sweep(
    cfg: DictConfig,
    client: MlflowClient,
    space: FeatureSpace,
    n_workers: int,
    writer: ArtifactWriter,
    drawings: dict[str, Drawing],
    runner_factory: Callable[[SweepContext], TrialRunner],
) -> SweepResult:
    storage = study_storage(cfg)
    lock = workers.StudyLock.for_config(cfg)
    try:
        alone = lock.claim()
        study = optuna.create_study(
            study_name=study_name(cfg, space.dataset_hash),
            storage=storage,
            load_if_exists=True,
            directions=directions(cfg),
            sampler=make_sampler(cfg),
        )
        if not study.trials:
            enqueue_starts(cfg, space, study)
        revived = fail_dead_trials(study, all_dead=alone, heartbeat=cfg.storage.kind == "rdb")
        exp_id = experiment_id(client, str(cfg.experiment_name), cfg.paths.artifact_root)
        describe_experiment(client, exp_id, str(cfg.experiment_description))
        parent = find_sweep_run(client, exp_id, study.study_name)
        remaining = int(cfg.sweep.n_trials) - finished_trials(study)
        if parent is not None and remaining <= 0 and not revived:
            done = finished_result(cfg, study, exp_id, parent)
            if done is not None:
                return done
        ctx = SweepContext(
            cfg,
            space,
            exp_id,
            open_parent_run(client, cfg, exp_id, study, space, parent),
            dataset_input(space.data),
            writer,
        )
        close_orphan_child_runs(client, ctx, study)
        announce(cfg, ctx, study, revived, remaining)
        return run_study(client, ctx, study, n_workers, remaining, drawings, runner_factory(ctx))
    finally:
        lock.release()


def enqueue_starts(cfg: DictConfig, space: FeatureSpace, study: optuna.Study) -> None:
    """A new study's first trials: each algorithm's ``start`` from its config, where ``elbow``
    is the elbow of a quick KMeans inertia curve of this data (a sensible first k; TPE then
    searches around good trials rather than from random ones only)."""
    specs = algorithm_specs(cfg)
    starts = {name: spec["start"] for name, spec in specs.items() if spec.get("start")}
    if not starts:
        return
    ks = range(int(cfg.sweep.constraints.k_min), int(cfg.sweep.constraints.k_max) + 1)
    k = elbow_k(space.X, ks, int(cfg.sweep.seed), int(cfg.sweep.silhouette.curve_fit_rows))
    for name, start in sorted(starts.items()):
        search = specs[name].get("search") or {}
        params = {}
        for param, value in start.items():
            space_ = search.get(param)
            value = k if value == "elbow" else value
            if space_ is None or space_["type"] == "categorical":
                if space_ is None or value in space_["choices"]:
                    params[f"{name}.{param}"] = value
                continue  # a choice the search space leaves out: the sampler picks
            # Within the parameter's own search range (a preset may narrow it).
            low, high = (type(value)(space_[end]) for end in ("low", "high"))
            params[f"{name}.{param}"] = min(max(value, low), high)
        if len(specs) > 1:
            params["algorithm"] = name
        study.enqueue_trial(params, skip_if_exists=True)


def open_parent_run(
    client: MlflowClient,
    cfg: DictConfig,
    exp_id: str,
    study: optuna.Study,
    space: FeatureSpace,
    parent: Run | None,
) -> str:
    """The study's parent run: the existing one set RUNNING again, or a new one with the
    sweep's params, config, data reports and dataset input."""
    if parent is not None:
        client.update_run(parent.info.run_id, status="RUNNING")
        return parent.info.run_id
    parent_id = client.create_run(
        exp_id,
        run_name=f"sweep-{cfg.dataset.name}-{cfg.features.name}",
        tags={
            runs.ROLE_TAG: "sweep",
            runs.STUDY_TAG: study.study_name,
            runs.SPACE_TAG: feature_space_name(cfg),
            "data_source": space.data.source,
            "dataset": cfg.dataset.name,
            runs.DATASET_HASH_TAG: space.dataset_hash,
            "feature_set": cfg.features.name,
        },
    ).info.run_id
    resolved = OmegaConf.to_container(cfg, resolve=True)
    params = {
        "dataset": cfg.dataset.name,
        "data_source": space.data.source,
        "data_path": space.data.path,
        "feature_set": cfg.features.name,
        "features": ",".join(space.columns),
        "scaler": cfg.scaling.name,
        "algorithms": ",".join(sorted(cfg.algorithm)),
        "n_trials": int(cfg.sweep.n_trials),
        "seed": int(cfg.sweep.seed),
        "sampler": str(cfg.sampler._target_).rsplit(".", 1)[-1],
        **runs.flatten("constraints", resolved["sweep"]["constraints"]),
    }
    runs.log_batch(
        client,
        parent_id,
        params=params,
        metrics={"rows_raw": space.data.rows_raw, "rows_clean": space.data.rows_clean},
    )
    # The tracking URI may come from MLFLOW_TRACKING_URI with a password in it.
    client.log_dict(parent_id, redact_all(resolved), "config.yaml")
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


def announce(
    cfg: DictConfig, ctx: SweepContext, study: optuna.Study, revived: list[int], remaining: int
) -> None:
    n_trials = int(cfg.sweep.n_trials)
    if revived:
        print(f"Marked interrupted trial(s) {revived} as failed; they do not count.", flush=True)
    if remaining <= 0:
        print(
            f"Study {study.study_name} already has its {n_trials} trials; finishing its summary.",
            flush=True,
        )
    else:
        print(
            f"Study {study.study_name}: {finished_trials(study)} of {n_trials} trials done, "
            f"running {remaining} (MLflow experiment '{cfg.experiment_name}', parent run "
            f"{ctx.parent_run_id})",
            flush=True,
        )


def run_study(
    client: MlflowClient,
    ctx: SweepContext,
    study: optuna.Study,
    n_workers: int,
    remaining: int,
    drawings: dict[str, Drawing],
    runner: TrialRunner,
) -> SweepResult:
    """Run the remaining budget, here (with ``runner``) or in worker processes, then finish the
    summary."""
    cfg = ctx.cfg
    n_trials = int(cfg.sweep.n_trials)
    before = finished_trials(study)
    try:
        if remaining > 0 and n_workers > 1:
            workers.run_workers(cfg, n_workers, ctx.experiment_id, ctx.parent_run_id)
        elif remaining > 0:
            try:
                run_budget(study, runner, n_trials, [Progress(n_trials, bool(cfg.sweep.progress))])
            finally:
                ctx.artifacts.wait()  # every plot and model is logged before the sweep goes on
                copy_repeated_plots(client, runner.plot_copies)
    except KeyboardInterrupt:
        client.set_terminated(ctx.parent_run_id, status="KILLED")
        print("Interrupted: open runs closed; run the same command again to resume.", flush=True)
        raise
    except TrackingError:
        client.set_terminated(ctx.parent_run_id, status="FAILED")
        raise
    with interrupts.deferred():
        result = finish_sweep(client, ctx, study, runner, drawings)
    result.ran = finished_trials(study) - before
    return result


def finished_result(
    cfg: DictConfig, study: optuna.Study, exp_id: str, parent: Run
) -> SweepResult | None:
    """Report a study whose budget is spent and whose summary is complete, and return its
    result; ``None`` if the summary must be (re)done.

    The parent run is set FINISHED last, after the best model's registration and the
    insights, so a process that died before that leaves it otherwise and the next run
    finishes the summary.
    """
    tags = parent.data.tags
    try:
        best = chosen_trial(study)
    except ValueError:  # no valid trial: the summary step says so again
        return None
    registered = tags.get("registered_version")
    wants_version = cfg.tracking.register_model and best.user_attrs.get("model_uri")
    if parent.info.status != "FINISHED" or (wants_version and registered is None):
        return None
    print(f"Study {study.study_name} already has its {int(cfg.sweep.n_trials)} trials.", flush=True)
    print_best(cfg, best, registered if wants_version else None)
    return SweepResult(
        study_name=study.study_name,
        experiment_id=exp_id,
        parent_run_id=parent.info.run_id,
        n_trials=int(cfg.sweep.n_trials),
        ran=0,
        best_trial=best,
        registered_version=registered if wants_version else None,
        counts=count_states(study),
    )


def print_best(cfg: DictConfig, best: optuna.trial.FrozenTrial, version: str | None) -> None:
    metrics = best.user_attrs.get("metrics", {})
    print(
        f"Best: trial {best.number} ({best.user_attrs.get('algorithm')}, "
        f"{best.user_attrs.get('n_clusters')} segments) silhouette {silhouette_of(best):.4f}, "
        f"davies_bouldin {metrics.get('davies_bouldin', float('nan')):.3f}; run "
        f"{best.user_attrs.get('mlflow_run_id')}"
        + (f"; registered {cfg.tracking.registered_model_name} v{version}" if version else ""),
        flush=True,
    )


def close_orphan_child_runs(client: MlflowClient, ctx: SweepContext, study: optuna.Study) -> None:
    """Child runs left RUNNING by a killed process are closed as KILLED."""
    running = {
        t.user_attrs.get("mlflow_run_id")
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    }
    for run in client.search_runs(
        [ctx.experiment_id],
        filter_string=(
            f"tags.mlflow.parentRunId = '{ctx.parent_run_id}' and attributes.status = 'RUNNING'"
        ),
    ):
        if run.info.run_id not in running:
            client.set_terminated(run.info.run_id, status="KILLED")


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


def finish_sweep(
    client: MlflowClient,
    ctx: SweepContext,
    study: optuna.Study,
    runner: TrialRunner,
    drawings: dict[str, Drawing],
) -> SweepResult:
    """Log the study's summary to the parent run, register the best model and log the insights
    (the pool draws the study plots meanwhile; the runner's fit of the best trial is reused)."""
    cfg, parent_id = ctx.cfg, ctx.parent_run_id
    metrics, tags, params = summary(study)
    existing = client.get_run(parent_id).data.params
    params = {k: v for k, v in params.items() if k not in existing}
    runs.log_batch(client, parent_id, params=params, metrics=metrics, tags=tags)
    result = SweepResult(
        study_name=study.study_name,
        experiment_id=ctx.experiment_id,
        parent_run_id=parent_id,
        n_trials=int(cfg.sweep.n_trials),
        ran=0,
        best_trial=None,
        counts=count_states(study),
    )
    if cfg.tracking.log_plots:
        title = f"{cfg.dataset.name} / {cfg.features.name}"
        trials = study.get_trials(deepcopy=False)
        names = [d.name.lower() for d in study.directions]
        drawings["study"] = start_study_plots(ctx.artifacts, trials, names, title)
    try:
        best = chosen_trial(study)
    except ValueError:
        if "study" in drawings:
            drawings["study"].result()
            client.log_artifacts(parent_id, drawings["study"].out_dir.name, "study")
        client.set_terminated(parent_id, status="FINISHED")
        raise InputError(
            f"study {study.study_name}: no trial met the constraints ({result.counts}); "
            f"rejected: {tags['rejected_reasons']}. Widen sweep.constraints or the search space."
        ) from None
    result.best_trial = best
    if len(study.directions) > 1:
        log_pareto_front(client, parent_id, study, best)
    fit = best_fit(cfg, ctx.space, best, runner.best_fitted)
    explanations = explain(ctx.space, fit.segments, int(cfg.sweep.seed))
    if cfg.tracking.register_model and best.user_attrs.get("model_uri"):
        result.registered_version = register_best(client, ctx, best, fit, explanations)
    best_run = best.user_attrs.get("mlflow_run_id")
    result.insight_seconds = log_sweep_insights(
        cfg, client, ctx.space, parent_id, best_run, drawings, fit, explanations
    )
    runs.log_batch(
        client,
        parent_id,
        metrics={f"insights_{k}_seconds": v for k, v in result.insight_seconds.items()},
        tags={
            NOTE_TAG: (
                f"Sweep of {cfg.dataset.name} / {cfg.features.name}: best trial {best.number}, "
                f"{fit.name} with {best.user_attrs.get('n_clusters')} segments, silhouette "
                f"{silhouette_of(best):.3f}. [Open the report]({report_link(parent_id)})"
            )
        },
    )
    result.report = write_report_file(cfg, client, parent_id)
    client.set_terminated(parent_id, status="FINISHED")
    print_best(cfg, best, result.registered_version)
    print_next(cfg, result)
    return result


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


def write_report_file(cfg: DictConfig, client: MlflowClient, parent_id: str) -> Path:
    """The parent run's report, also as a file under ``paths.reports_dir``."""
    path = Path(str(cfg.paths.reports_dir)) / f"report-{parent_id}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    client.download_artifacts(parent_id, "report.html", str(path.parent))
    (path.parent / "report.html").replace(path)
    return path


def print_next(cfg: DictConfig, result: SweepResult) -> None:
    """Where to look next: the report, the parent run in the MLflow UI, the next command."""
    uri = str(cfg.paths.tracking_uri)
    local = uri.startswith("sqlite:")
    ui = "http://127.0.0.1:5000" if local else uri
    print(f"Report: {result.report}", flush=True)
    # The query opens the UI in its model-training mode (else it may open in its GenAI mode).
    print(
        f"MLflow UI: {'make ui, then ' if local else ''}{ui}/#/experiments/"
        f"{result.experiment_id}/runs/{result.parent_run_id}?workflowType=machine_learning",
        flush=True,
    )
    print(f"Next: make promote EXPERIMENT={cfg.experiment_name}", flush=True)


def register_best(
    client: MlflowClient,
    ctx: SweepContext,
    best: optuna.trial.FrozenTrial,
    fit: FittedTrial,
    explanations: dict[str, Any],
) -> str:
    """Register the best trial's model (once: a rerun finds the existing version), with the
    registered model's and the version's descriptions."""
    cfg, space = ctx.cfg, ctx.space
    run_id = best.user_attrs["mlflow_run_id"]
    with_input_example(best.user_attrs["model_uri"])  # trial models are logged without one
    version = register_run_model(
        client,
        str(cfg.tracking.registered_model_name),
        run_id,
        best.user_attrs["model_uri"],
        tags={
            "dataset": cfg.dataset.name,
            runs.DATASET_HASH_TAG: space.dataset_hash,
            "data_source": space.data.source,
            "feature_set": cfg.features.name,
            "algorithm": best.user_attrs.get("algorithm"),
            "silhouette": f"{silhouette_of(best):.4f}",
            "source_run": run_id,
            "sweep_run": ctx.parent_run_id,
        },
    )
    name = str(cfg.tracking.registered_model_name)
    client.update_registered_model(
        name,
        description=registered_model_description(
            str(cfg.dataset.name),
            str(cfg.features.name),
            ", ".join(space.columns),
            str(cfg.experiment_description),
        ),
    )
    run = client.get_run(run_id)
    client.update_model_version(
        name,
        version,
        description=version_description(
            run.data.params,
            run.data.metrics,
            fit.segments.personas.to_dict(orient="records"),
            extra=["**Explanations**", explanations["markdown"]],
        ),
    )
    client.set_tag(ctx.parent_run_id, "registered_version", version)
    return version
