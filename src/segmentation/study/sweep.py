"""The sweep (``conf/sweep``): an Optuna study whose every trial is an MLflow child run of one
parent run, which ends with the study's summary, the best model registered and the report.

This module orchestrates; the trial is objective.py, the study's definition and choice
definition.py, the runs run_logging.py, the registry registration.py, the terminal console.py."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import optuna
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from segmentation.algorithms.limits import check_algorithm_limits
from segmentation.errors import InputError, TrackingError
from segmentation.evaluation.choosing_k import elbow_k
from segmentation.features.space import FeatureSpace, SpaceConfig, prepare_space
from segmentation.study import interrupts, workers
from segmentation.study.artifacts import ArtifactWriter
from segmentation.study.budget import run_budget
from segmentation.study.console import Progress, announce, show, show_best, show_next
from segmentation.study.definition import (
    algorithm_specs,
    check_sweep,
    chosen_trial,
    count_states,
    directions,
    finished_trials,
    make_sampler,
    silhouette_of,
)
from segmentation.study.insights import (
    Drawing,
    best_fit,
    explain,
    log_sweep_insights,
    start_data_insights,
    start_study_plots,
)
from segmentation.study.objective import SweepContext, SweepGroups, TrialRunner
from segmentation.study.registration import register_best, start_input_example
from segmentation.study.run_logging import (
    close_orphan_child_runs,
    copy_repeated_plots,
    dataset_input,
    log_pareto_front,
    open_parent_run,
    report_link,
    summary,
    write_report_file,
)
from segmentation.study.storage import fail_dead_trials, study_storage
from segmentation.tracking import runs
from segmentation.tracking.descriptions import NOTE_TAG, describe_experiment
from segmentation.tracking.store import connect, experiment_id, find_sweep_run


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


def artifact_writer(cfg_tracking: DictConfig) -> ArtifactWriter:
    """The processes that draw plots and log models (``tracking.artifact_workers``)."""
    return ArtifactWriter(int(cfg_tracking.artifact_workers))


def run_sweep(cfg: DictConfig) -> SweepResult:
    """Run (or resume) the study the config describes and register its best model.

    A composition root: it takes the whole config and gives each stage the groups it reads."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_sweep(cfg.sweep, cfg.tracking)
    space = prepare_space(SpaceConfig.of(cfg))  # bad input is refused here, before any write
    specs = algorithm_specs(cfg.algorithm)
    n_workers = workers.worker_count(cfg.sweep)
    workers.check_shared_tracking(cfg.storage, str(cfg.paths.tracking_uri))
    check_algorithm_limits(specs, space.n_rows)
    show(space.data.describe())
    return sweep_space(cfg, space, n_workers)


def sweep_space(
    cfg: DictConfig,
    space: FeatureSpace,
    n_workers: int = 1,
    runner_factory: Callable[[SweepContext], TrialRunner] = TrialRunner,
) -> SweepResult:
    """The study of a prepared feature space, its parent run, its trials (each run by a runner
    from ``runner_factory``: another engine brings its own fit) and its summary, with the
    artifact pool drawing the data's plots from the start.

    Part of the engines' composition roots (``run_sweep``, ``run_spark_sweep``): it takes the
    whole config, which the parent run logs and worker processes are started with."""
    # With several sweep workers, each draws its own trials' plots; the data's are drawn here.
    writer = artifact_writer(cfg.tracking) if n_workers == 1 else ArtifactWriter(0)
    writer.start()
    drawings = {}
    try:
        # Built (a new store: seconds) while the pool's processes start on the other cores.
        client = connect(str(cfg.paths.tracking_uri))
        if cfg.tracking.log_plots:
            drawings[""] = start_data_insights(cfg.dataset, cfg.features, cfg.sweep, space, writer)
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
    groups = SweepGroups.of(cfg)
    name = groups.experiment_name
    storage = study_storage(cfg.storage, cfg.sweep, cfg.paths, name)
    lock = workers.StudyLock.for_config(cfg.storage, cfg.paths, name)
    try:
        alone = lock.claim()
        study = optuna.create_study(
            study_name=groups.study_name(space.dataset_hash),
            storage=storage,
            load_if_exists=True,
            directions=directions(cfg.sweep),
            sampler=make_sampler(cfg.sampler, cfg.sweep.seed),
        )
        if not study.trials:
            enqueue_starts(cfg.algorithm, cfg.sweep, space, study)
        revived = fail_dead_trials(study, all_dead=alone, heartbeat=cfg.storage.kind == "rdb")
        exp_id = experiment_id(client, name, cfg.paths.artifact_root)
        describe_experiment(client, exp_id, groups.experiment_description)
        parent = find_sweep_run(client, exp_id, study.study_name)
        remaining = int(cfg.sweep.n_trials) - finished_trials(study)
        if parent is not None and remaining <= 0 and not revived:
            done = finished_result(cfg.sweep, cfg.tracking, study, exp_id, parent)
            if done is not None:
                return done
        # The resolved config, logged by a new parent run; choices as plain text (the YAML of
        # config.yaml has no tag for an enum).
        resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
        ctx = SweepContext(
            groups,
            space,
            exp_id,
            open_parent_run(client, groups, resolved, exp_id, study, space, parent),
            dataset_input(space.data),
            writer,
            client,
        )
        close_orphan_child_runs(client, ctx, study)
        announce(cfg.sweep, name, ctx.parent_run_id, study, revived, remaining)
        return run_study(
            client, ctx, study, n_workers, remaining, drawings, runner_factory(ctx), cfg
        )
    finally:
        lock.release()


def enqueue_starts(
    algorithm: DictConfig, sweep: DictConfig, space: FeatureSpace, study: optuna.Study
) -> None:
    """A new study's first trials: each algorithm's ``start`` from its config, where ``elbow``
    is the elbow of a quick KMeans inertia curve of this data over the ``sweep`` group's k range
    (a sensible first k; TPE then searches around good trials rather than from random ones
    only)."""
    specs = algorithm_specs(algorithm)
    starts = {name: spec["start"] for name, spec in specs.items() if spec.get("start")}
    if not starts:
        return
    k = None
    if any(value == "elbow" for start in starts.values() for value in start.values()):
        ks = range(int(sweep.constraints.k_min), int(sweep.constraints.k_max) + 1)
        k = elbow_k(space.X, ks, int(sweep.seed), int(sweep.silhouette.curve_fit_rows))
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


def run_study(
    client: MlflowClient,
    ctx: SweepContext,
    study: optuna.Study,
    n_workers: int,
    remaining: int,
    drawings: dict[str, Drawing],
    runner: TrialRunner,
    worker_cfg: DictConfig,
) -> SweepResult:
    """Run the remaining budget, here (with ``runner``) or in worker processes (each started
    with ``worker_cfg``, the whole config: a worker composes its own sweep from it), then
    finish the summary."""
    sweep = ctx.groups.sweep
    n_trials = int(sweep.n_trials)
    before = finished_trials(study)
    try:
        if remaining > 0 and n_workers > 1:
            workers.run_workers(worker_cfg, n_workers, ctx.experiment_id, ctx.parent_run_id)
        elif remaining > 0:
            try:
                run_budget(study, runner, n_trials, [Progress(n_trials, bool(sweep.progress))])
            except BaseException:
                ctx.artifacts.wait()  # an interrupted sweep keeps what its trials logged
                copy_repeated_plots(client, runner.plot_copies)
                raise
        # Drawn by the pool while the last trials' artifacts are logged and the best model is
        # registered.
        start_summary_plots(ctx, study, drawings)
        ctx.artifacts.wait()  # every plot and model is logged before the sweep goes on
    except KeyboardInterrupt:
        client.set_terminated(ctx.parent_run_id, status="KILLED")
        show("Interrupted: open runs closed; run the same command again to resume.")
        raise
    except TrackingError:
        client.set_terminated(ctx.parent_run_id, status="FAILED")
        raise
    with interrupts.deferred():
        result = finish_sweep(client, ctx, study, runner, drawings)
    result.ran = finished_trials(study) - before
    return result


def finished_result(
    sweep: DictConfig, tracking: DictConfig, study: optuna.Study, exp_id: str, parent: Run
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
    wants_version = tracking.register_model and best.user_attrs.get("model_uri")
    if parent.info.status != "FINISHED" or (wants_version and registered is None):
        return None
    show(f"Study {study.study_name} already has its {int(sweep.n_trials)} trials.")
    show_best(tracking, best, registered if wants_version else None)
    return SweepResult(
        study_name=study.study_name,
        experiment_id=exp_id,
        parent_run_id=parent.info.run_id,
        n_trials=int(sweep.n_trials),
        ran=0,
        best_trial=best,
        registered_version=registered if wants_version else None,
        counts=count_states(study),
    )


def start_summary_plots(
    ctx: SweepContext, study: optuna.Study, drawings: dict[str, Drawing]
) -> None:
    """Submit the study plots of the finished trials to the pool."""
    groups = ctx.groups
    if groups.tracking.log_plots:
        title = f"{groups.dataset.name} / {groups.features.name}"
        trials = study.get_trials(deepcopy=False)
        names = [d.name.lower() for d in study.directions]
        drawings["study"] = start_study_plots(ctx.artifacts, trials, names, title)


def finish_sweep(
    client: MlflowClient,
    ctx: SweepContext,
    study: optuna.Study,
    runner: TrialRunner,
    drawings: dict[str, Drawing],
) -> SweepResult:
    """Log the study's summary to the parent run, register the best model and log the insights
    (the pool draws the study plots meanwhile; the runner's fit of the best trial is reused)."""
    groups, parent_id = ctx.groups, ctx.parent_run_id
    metrics, tags, params = summary(study)
    existing = client.get_run(parent_id).data.params
    params = {k: v for k, v in params.items() if k not in existing}
    runs.log_batch(client, parent_id, params=params, metrics=metrics, tags=tags)
    result = SweepResult(
        study_name=study.study_name,
        experiment_id=ctx.experiment_id,
        parent_run_id=parent_id,
        n_trials=int(groups.sweep.n_trials),
        ran=0,
        best_trial=None,
        counts=count_states(study),
    )
    try:
        best = chosen_trial(study)
    except ValueError:
        copy_repeated_plots(client, runner.plot_copies)
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
    registering = bool(groups.tracking.register_model and best.user_attrs.get("model_uri"))
    # The pool gives the best model its input example while this process fits and explains
    # the best trial; the plots of trials that repeated an earlier trial's segments are copied
    # once the model is registered (worker processes copy their own).
    example = start_input_example(ctx, best, client.tracking_uri) if registering else None
    seed = int(groups.sweep.seed)
    try:
        fit = best_fit(groups.algorithm, groups.personas, seed, ctx.space, best, runner.best_fitted)
        explanations = explain(ctx.space, fit.segments, seed)
        if example is not None:
            result.registered_version = register_best(client, ctx, best, fit, explanations, example)
    finally:  # a registration that fails leaves every trial's plots logged all the same
        copy_repeated_plots(client, runner.plot_copies)
    best_run = best.user_attrs.get("mlflow_run_id")
    result.insight_seconds = log_sweep_insights(
        client, ctx.space, parent_id, best_run, drawings, fit, explanations
    )
    runs.log_batch(
        client,
        parent_id,
        metrics={f"insights_{k}_seconds": v for k, v in result.insight_seconds.items()},
        tags={
            NOTE_TAG: (
                f"Sweep of {groups.dataset.name} / {groups.features.name}: best trial "
                f"{best.number}, "
                f"{fit.name} with {best.user_attrs.get('n_clusters')} segments, silhouette "
                f"{silhouette_of(best):.3f}. [Open the report]({report_link(parent_id)})"
            )
        },
    )
    result.report = write_report_file(str(groups.paths.reports_dir), client, parent_id)
    client.set_terminated(parent_id, status="FINISHED")
    show_best(groups.tracking, best, result.registered_version)
    show_next(
        groups.paths,
        groups.experiment_name,
        result.report,
        result.experiment_id,
        result.parent_run_id,
    )
    return result
