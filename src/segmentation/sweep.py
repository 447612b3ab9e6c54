"""The sweep (``conf/sweep``): an Optuna study whose every trial is an MLflow child run."""

from __future__ import annotations

import logging
import math
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
import pandas as pd
from mlflow.entities import DatasetInput, LoggedModelOutput
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags
from mlflow.types import ColSpec, Schema
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState
from sklearn.base import TransformerMixin
from threadpoolctl import threadpool_limits

from segmentation import algorithms, background, interrupts, scale, tracking, workers
from segmentation.datasets import (
    LoadedData,
    data_profile,
    load_dataset,
    make_engineer,
    model_input_example,
)
from segmentation.datasets.reading import content_hash
from segmentation.errors import InputError, TrackingError
from segmentation.features import feature_matrix
from segmentation.insights import (
    DataInsights,
    FittedTrial,
    StudyPlots,
    describe_segments,
    log_sweep_insights,
)
from segmentation.metrics import cluster_metrics, constraint_violation
from segmentation.model import build_pipeline
from segmentation.plots.study import STUDY_PLOT_PARTS, draw_study_plots
from segmentation.plots.templates import data_key
from segmentation.scaling import make_scaler
from segmentation.stability import configured_stability
from segmentation.storage import fail_dead_trials, mark_worker, study_storage

log = logging.getLogger(__name__)
FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
# Rows from which a dataset input's column types are inferred.
SCHEMA_SAMPLE_ROWS = 1000


@dataclass
class FeatureSpace:
    """Everything fixed for one study: the data, its features and the fitted scaling."""

    data: LoadedData
    engineer: TransformerMixin
    columns: list[str]
    X_raw: np.ndarray
    scaler: TransformerMixin
    X: np.ndarray
    input_example: pd.DataFrame
    # Content hash of the loaded frame: tagged on the runs and on a promoted model version.
    dataset_hash: str = ""

    @property
    def n_rows(self) -> int:
        return len(self.X)


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


def feature_space_name(cfg: DictConfig) -> str:
    """The space a study's silhouettes live in: dataset, feature set and scaling."""
    return f"{cfg.dataset.name}.{cfg.features.name}.{cfg.scaling.name}"


def study_name(cfg: DictConfig, dataset_hash: str) -> str:
    """One study per feature space and data: silhouettes of another space, or of other data
    (the real file after the synthetic default, a new export), do not compare, and a rerun
    must not resume such a study."""
    return f"{cfg.experiment_name}.{feature_space_name(cfg)}.data-{dataset_hash[:8]}"


def algorithm_specs(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    specs = OmegaConf.to_container(cfg.algorithm, resolve=True)
    if not specs:
        raise InputError("algorithm: no algorithm selected (expected kmeans, dbscan, gmm or all)")
    for name, spec in specs.items():
        algorithms.algorithm_module(name, spec)
    return specs


def prepare_space(cfg: DictConfig) -> FeatureSpace:
    """Load and validate the data, engineer features and fit the scaling (no side effects)."""
    data = load_dataset(cfg.dataset)
    engineer = make_engineer(cfg.dataset, data).fit(data.frame)
    engineered = engineer.transform(data.frame)
    columns = list(cfg.features.columns)
    X_raw = feature_matrix(engineered, columns)
    k_max = int(cfg.sweep.constraints.k_max)
    needed = max(2 * k_max, 10)
    if len(X_raw) < needed:
        raise InputError(
            f"{data.path}: {len(X_raw)} usable rows, fewer than the {needed} that the k range "
            f"up to {k_max} needs"
        )
    scaler = make_scaler(cfg.scaling.name).fit(X_raw)
    X = np.ascontiguousarray(scaler.transform(X_raw), dtype=np.float64)
    example = model_input_example(data, cfg.dataset, int(cfg.tracking.input_example_rows))
    return FeatureSpace(
        data, engineer, columns, X_raw, scaler, X, example, content_hash(data.frame)
    )


class TrialRunner:
    """The objective: fit, score, check constraints and log one child run per trial."""

    def __init__(
        self,
        cfg: DictConfig,
        space: FeatureSpace,
        experiment_id: str,
        parent_run_id: str,
        dataset_input: Any,
        artifacts: background.ArtifactWriter,
    ):
        self.cfg = cfg
        self.space = space
        self.experiment_id = experiment_id
        self.parent_run_id = parent_run_id
        self.dataset_input = dataset_input
        self.specs = algorithm_specs(cfg)
        self.constraints = OmegaConf.to_container(cfg.sweep.constraints, resolve=True)
        self.seed = int(cfg.sweep.seed)
        self.client = MlflowClient()
        # The tags MLflow's fluent API adds to a run or a logged model (user, source),
        # resolved once: mlflow.start_run also read the parent run again for every trial,
        # and the two took about twice the client's calls.
        self.context_tags = resolve_tags({})
        # A trial that repeats an earlier one reuses its work: the same labels draw the same
        # plots (copied from the first run), the same parameters fit the same model (linked,
        # not logged again). TPE repeats itself: 30 distinct labelings and 37 distinct
        # parameter sets in the default 50-trial sweep.
        self.plots_by_key: dict[str, str] = {}
        self.models_by_key: dict[str, tuple[str, str]] = {}
        # Plots and models are drawn and logged by a worker, overlapping the next fit.
        self.artifacts = artifacts
        # The best trial this process ran, so the end of the sweep need not fit it again.
        self.best_fitted: FittedTrial | None = None

    def common_params(self) -> dict[str, Any]:
        space = self.space
        return {
            "dataset": self.cfg.dataset.name,
            "data_source": space.data.source,
            "feature_set": self.cfg.features.name,
            "features": ",".join(space.columns),
            "scaler": self.cfg.scaling.name,
            "n_rows": space.n_rows,
            "seed": self.seed,
        }

    def __call__(self, trial: optuna.Trial) -> float:
        interrupts.checkpoint()  # a Ctrl-C after the last trial: no new run
        mark_worker(trial)
        name, params = algorithms.suggest(trial, self.specs)
        module = algorithms.algorithm_module(name, self.specs[name])
        trial.set_user_attr("algorithm", name)
        run_name = f"trial-{trial.number:03d}-{name}"
        run = self.client.create_run(
            self.experiment_id,
            run_name=run_name,
            tags={
                **self.context_tags,
                MLFLOW_PARENT_RUN_ID: self.parent_run_id,
                tracking.ROLE_TAG: "trial",
                tracking.STUDY_TAG: trial.study.study_name,
                tracking.TRIAL_TAG: str(trial.number),
                "data_source": self.space.data.source,
                "dataset": self.cfg.dataset.name,
                tracking.DATASET_HASH_TAG: self.space.dataset_hash,
                "algorithm": name,
            },
        )
        trial.set_user_attr("mlflow_run_id", run.info.run_id)
        status = "FAILED"
        try:
            # One BLAS/OpenMP thread for the whole trial: small fits are faster, workers must
            # not oversubscribe the cores, and a second thread in the metrics (silhouette's
            # matrix products) doubled their CPU time at 100,000 rows without shortening them,
            # CPU the plots and model logging behind the trials need.
            with threadpool_limits(1):
                value = self._run(trial, run.info.run_id, name, module, params)
            status = "FINISHED"
            return value
        except optuna.TrialPruned:
            status = "FINISHED"
            raise
        except BaseException:
            status = "KILLED"
            raise
        finally:
            self.client.set_terminated(run.info.run_id, status)

    def _run(self, trial, run_id: str, name: str, module, params: dict) -> float:
        space, cfg = self.space, self.cfg
        flat = {f"{name}.{k}": v for k, v in params.items()}
        base_params = {**self.common_params(), "algorithm": name, "trial": trial.number, **flat}
        try:
            with interrupts.allowed():  # the fit and its metrics: computing only
                estimator = module.build(params, self.seed, space.n_rows)
                base_params["estimator"] = type(estimator).__name__
                start = time.perf_counter()
                labels = np.asarray(estimator.fit_predict(space.X))
                fit_seconds = time.perf_counter() - start
                start = time.perf_counter()
                metrics, sil_values, sil_labels = cluster_metrics(
                    space.X,
                    labels,
                    sample_above=int(cfg.sweep.silhouette.sample_above),
                    sample_size=int(cfg.sweep.silhouette.sample_size),
                    seed=self.seed,
                )
                metrics.update(module.extra_metrics(estimator, space.X))
                metrics["metrics_seconds"] = time.perf_counter() - start
        except Exception as exc:  # any fit error is recorded and the sweep goes on
            reason = (
                f"fit error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            )
            tracking.log_batch(
                self.client,
                run_id,
                params=base_params,
                tags={"trial_state": "PRUNED", "rejected_reason": reason},
            )
            trial.set_user_attr("reason", reason)
            raise optuna.TrialPruned(reason) from None
        metrics["fit_seconds"] = fit_seconds
        reason = constraint_violation(metrics, self.constraints)
        trial.set_user_attr("n_clusters", int(metrics["n_clusters"]))
        trial.set_user_attr("metrics", {k: v for k, v in metrics.items() if not math.isnan(v)})
        tags = {"trial_state": "PRUNED" if reason else "COMPLETE"}
        if reason:
            tags["rejected_reason"] = reason
        start = time.perf_counter()
        with interrupts.allowed():
            if cfg.sweep.stability.every_trial:
                metrics["stability_ari"] = configured_stability(
                    cfg, module, params, space.X, labels
                )
            segments = describe_segments(cfg, space, labels, module, estimator)
        metrics["metrics_seconds"] += time.perf_counter() - start
        start = time.perf_counter()
        title = (
            f"{name}, {int(metrics['n_clusters'])} segments, silhouette {metrics['silhouette']:.3f}"
        )
        plot_key = content_key(labels, title)
        job = background.trial_artifacts(
            str(cfg.paths.tracking_uri),
            run_id,
            space.X_raw,
            space.X,
            labels,
            space.columns,
            sil_values,
            sil_labels,
            metrics["silhouette"],
            title,
            bool(cfg.tracking.log_plots),
            seed=self.seed,
            profile=segments.profile,
            personas=segments.names,
        )
        first = self.plots_by_key.setdefault(plot_key, run_id)
        job.plots_from = first if first != run_id else None
        model_key = repr((name, sorted(params.items())))
        if cfg.tracking.log_models and model_key in self.models_by_key:
            model_id, first_run = self.models_by_key[model_key]
            self.client.log_outputs(run_id, models=[LoggedModelOutput(model_id, step=0)])
            trial.set_user_attr("model_uri", f"models:/{model_id}")
            tags[tracking.MODEL_ID_TAG] = model_id
            tags[tracking.MODEL_SHARED_TAG] = first_run
        elif cfg.tracking.log_models:
            # The LoggedModel is created here so its URI is known now; the worker fills it.
            model = self.client.create_logged_model(
                self.experiment_id,
                name="model",
                source_run_id=run_id,
                tags=self.context_tags,
                params={k: str(v) for k, v in base_params.items()},
            )
            self.client.log_outputs(run_id, models=[LoggedModelOutput(model.model_id, step=0)])
            job.pipeline = build_pipeline(space.engineer, space.columns, space.scaler, estimator)
            job.input_example, job.model_id = space.input_example, model.model_id
            trial.set_user_attr("model_uri", f"models:/{model.model_id}")
            tags[tracking.MODEL_ID_TAG] = model.model_id
            self.models_by_key[model_key] = (model.model_id, run_id)
        # The run's params, metrics, tags, dataset and profile files: logged by the worker too.
        job.params, job.metrics, job.tags = base_params, metrics, tags
        job.dataset_input = self.dataset_input
        job.main_logging_seconds = time.perf_counter() - start
        self.artifacts.submit(job)
        if reason:
            trial.set_user_attr("reason", reason)
            raise optuna.TrialPruned(reason)
        value = float(metrics["silhouette"])
        best = self.best_fitted
        if best is None or value > best.value:  # ties: Optuna's best is the first
            self.best_fitted = FittedTrial(trial.number, value, module, params, segments)
        return value


def content_key(labels: np.ndarray, title: str) -> str:
    """What a trial's plots depend on besides the study's data: its labels and its title."""
    return f"{data_key(labels)}:{title}"


def artifact_writer(cfg: DictConfig) -> background.ArtifactWriter:
    """The processes that draw plots and log models (``tracking.artifact_workers``)."""
    return background.ArtifactWriter(int(cfg.tracking.get("artifact_workers", 0)))


def make_sampler(cfg: DictConfig, worker: int = 0) -> optuna.samplers.BaseSampler:
    seed = int(cfg.sweep.seed) + worker
    if cfg.sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if cfg.sweep.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=10)
    raise InputError(f"sweep.sampler '{cfg.sweep.sampler}' unknown; expected tpe or random")


def count_states(study: optuna.Study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
    return counts


def finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


class Progress:
    """One line per finished trial: trials done, best so far."""

    def __init__(self, total: int, enabled: bool):
        self.total = total
        self.enabled = enabled
        self.started = time.perf_counter()

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if not self.enabled:
            return
        done = finished_trials(study)
        try:
            best = study.best_trial
            best_text = (
                f"best silhouette {best.value:.4f} (trial {best.number}, "
                f"{best.user_attrs.get('algorithm')}, k={best.user_attrs.get('n_clusters')})"
            )
        except ValueError:
            best_text = "no valid trial yet"
        this = (
            f"{trial.value:.4f}"
            if trial.state == TrialState.COMPLETE
            else f"rejected: {trial.user_attrs.get('reason', trial.state.name)}"
        )
        print(
            f"[{done:>3}/{self.total}] {best_text} | trial {trial.number}: {this} "
            f"| {time.perf_counter() - self.started:.1f}s",
            flush=True,
        )


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
        # MLflow infers the schema value by value in Python: 5.6 s at 200,000 rows. The
        # types come from a sample (the frame is cleaned, one type per column); whether a
        # column may be missing is checked on every row.
        sample = data.frame.head(SCHEMA_SAMPLE_ROWS)
        dataset.schema = Schema(
            [
                ColSpec(spec.type, spec.name, required=not bool(data.frame[spec.name].isna().any()))
                for spec in infer_signature(sample).inputs.inputs
            ]
        )
    return tracking.dataset_input(dataset)


def run_sweep(cfg: DictConfig) -> SweepResult:
    """Run (or resume) the study the config describes and register its best model."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = prepare_space(cfg)  # bad input is refused here, before anything is written
    specs = algorithm_specs(cfg)
    n_workers = workers.worker_count(cfg)
    workers.check_shared_tracking(cfg)
    scale.check_algorithm_limits(specs, space.n_rows)
    print(space.data.describe(), flush=True)
    # Both started before any database connection, lock or thread exists: they may fork.
    tracking.import_store_code(str(cfg.paths.tracking_uri))
    data_insights = DataInsights(cfg, space)
    data_insights.start()
    writer = artifact_writer(cfg) if n_workers == 1 else background.ArtifactWriter(0)
    writer.start(fork=True)
    try:
        return _run_sweep(cfg, space, specs, n_workers, writer, data_insights)
    finally:
        writer.close()
        data_insights.close()


def _run_sweep(
    cfg, space: FeatureSpace, specs, n_workers: int, writer, data_insights
) -> SweepResult:
    client = tracking.connect(
        str(cfg.paths.tracking_uri), cfg.paths.schema_cache, cfg.paths.artifact_root
    )
    storage = study_storage(cfg)
    lock = workers.StudyLock.for_config(cfg)
    try:
        return _run_locked(
            cfg, space, specs, client, storage, lock, n_workers, writer, data_insights
        )
    finally:
        lock.release()


def _run_locked(
    cfg, space, specs, client, storage, lock, n_workers: int, writer, data_insights
) -> SweepResult:
    alone = lock.claim()
    name = study_name(cfg, space.dataset_hash)
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        load_if_exists=True,
        direction="maximize",
        sampler=make_sampler(cfg),
    )
    exp_id = tracking.experiment_id(client, str(cfg.experiment_name), cfg.paths.artifact_root)
    revived = fail_dead_trials(study, all_dead=alone)
    parent = tracking.find_sweep_run(client, exp_id, name)
    n_trials = int(cfg.sweep.n_trials)
    remaining = n_trials - finished_trials(study)
    if parent is not None and remaining <= 0 and not revived:
        done = finished_result(cfg, study, exp_id, parent)
        if done is not None:
            data_insights.close()  # its plots are logged already
            return done
    source_input = dataset_input(space.data)
    if parent is None:
        parent_id = client.create_run(
            exp_id,
            run_name=f"sweep-{cfg.dataset.name}-{cfg.features.name}",
            tags={
                tracking.ROLE_TAG: "sweep",
                tracking.STUDY_TAG: name,
                tracking.SPACE_TAG: feature_space_name(cfg),
                "data_source": space.data.source,
                "dataset": cfg.dataset.name,
                tracking.DATASET_HASH_TAG: space.dataset_hash,
                "feature_set": cfg.features.name,
            },
        ).info.run_id
        _log_parent_start(client, cfg, parent_id, space, specs, source_input)
    else:
        parent_id = parent.info.run_id
        client.update_run(parent_id, status="RUNNING")
    close_orphan_child_runs(client, exp_id, parent_id, study)
    if revived:
        print(f"Marked interrupted trial(s) {revived} as failed; they do not count.", flush=True)
    if remaining <= 0:
        print(f"Study {name} already has its {n_trials} trials; finishing its summary.", flush=True)
    else:
        print(
            f"Study {name}: {finished_trials(study)} of {n_trials} trials done, running "
            f"{remaining} (MLflow experiment '{cfg.experiment_name}', parent run {parent_id})",
            flush=True,
        )
    runner = TrialRunner(cfg, space, exp_id, parent_id, source_input, writer)
    before = finished_trials(study)
    try:
        if remaining > 0:
            run_trials(cfg, study, runner, n_trials, parent_id, n_workers)
    except KeyboardInterrupt:
        client.set_terminated(parent_id, status="KILLED")
        print("Interrupted: open runs closed; run the same command again to resume.", flush=True)
        raise
    except TrackingError:
        client.set_terminated(parent_id, status="FAILED")
        raise
    with interrupts.deferred():
        result = finish_sweep(cfg, client, study, space, exp_id, parent_id, data_insights, runner)
    result.ran = finished_trials(study) - before
    return result


def finished_result(cfg, study, exp_id: str, parent) -> SweepResult | None:
    """Report a study whose budget is spent and whose summary is complete, and return its
    result; ``None`` if the summary must be (re)done.

    The parent run is set FINISHED last, after the best model's registration and the
    insights, so a process that died before that leaves it otherwise and the next run
    finishes the summary. A finished study is not summarised again: that took about 10 s.
    """
    tags = parent.data.tags
    try:
        best = study.best_trial
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


def print_best(cfg, best, registered_version: str | None) -> None:
    metrics = best.user_attrs.get("metrics", {})
    print(
        f"Best: trial {best.number} ({best.user_attrs.get('algorithm')}, "
        f"{best.user_attrs.get('n_clusters')} segments) silhouette {best.value:.4f}, "
        f"davies_bouldin {metrics.get('davies_bouldin', float('nan')):.3f}; run "
        f"{best.user_attrs.get('mlflow_run_id')}"
        + (
            f"; registered {cfg.tracking.registered_model_name} v{registered_version}"
            if registered_version
            else ""
        ),
        flush=True,
    )


def run_trials(cfg, study, runner, n_trials: int, parent_id: str, n_workers: int = 1) -> None:
    """Run the remaining budget in this process, or in ``n_workers`` worker processes."""
    if n_workers > 1:
        workers.run_workers(cfg, n_workers, runner.experiment_id, parent_id)
        return
    progress = Progress(n_trials, bool(cfg.sweep.progress))
    try:
        workers.run_budget(study, runner, n_trials, [progress])
    finally:
        runner.artifacts.wait()  # every plot and model is logged before the sweep goes on


def close_orphan_child_runs(client: MlflowClient, exp_id: str, parent_id: str, study) -> None:
    """Child runs left RUNNING by a killed process are closed as KILLED."""
    running = {
        t.user_attrs.get("mlflow_run_id")
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    }
    for run in client.search_runs(
        [exp_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and attributes.status = 'RUNNING'",
    ):
        if run.info.run_id not in running:
            client.set_terminated(run.info.run_id, status="KILLED")


def _log_parent_start(client, cfg, parent_id, space: FeatureSpace, specs, source_input) -> None:
    resolved = OmegaConf.to_container(cfg, resolve=True)
    params = {
        "dataset": cfg.dataset.name,
        "data_source": space.data.source,
        "data_path": space.data.path,
        "feature_set": cfg.features.name,
        "features": ",".join(space.columns),
        "scaler": cfg.scaling.name,
        "algorithms": ",".join(sorted(specs)),
        "n_trials": int(cfg.sweep.n_trials),
        "seed": int(cfg.sweep.seed),
        "sampler": cfg.sweep.sampler,
        **tracking.flatten("constraints", resolved["sweep"]["constraints"]),
    }
    tracking.log_batch(
        client,
        parent_id,
        params=params,
        metrics={"rows_raw": space.data.rows_raw, "rows_clean": space.data.rows_clean},
    )
    # The tracking URI may come from MLFLOW_TRACKING_URI with a password in it.
    client.log_dict(parent_id, tracking.redact_all(resolved), "config.yaml")
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
    tracking.log_dataset(client, parent_id, source_input)


def finish_sweep(
    cfg, client, study, space, exp_id: str, parent_id: str, data_insights, runner: TrialRunner
) -> SweepResult:
    """Log the study's summary to the parent run and register the best model.

    The ``runner``'s artifact workers draw the study plots meanwhile, and its best trial's fit
    is reused."""
    name = study.study_name
    trials = study.get_trials(deepcopy=False)
    counts = count_states(study)
    result = SweepResult(
        study_name=name,
        experiment_id=exp_id,
        parent_run_id=parent_id,
        n_trials=int(cfg.sweep.n_trials),
        ran=0,
        best_trial=None,
        counts=counts,
    )
    reasons: dict[str, int] = {}
    for t in trials:
        if t.state == TrialState.PRUNED:
            key = str(t.user_attrs.get("reason", "?")).split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
    metrics = {f"trials_{k.lower()}": v for k, v in counts.items()}
    try:
        best = study.best_trial
    except ValueError:
        best = None
    tags: dict[str, Any] = {"rejected_reasons": reasons}
    params: dict[str, Any] = {}
    if best is not None:
        result.best_trial = best
        metrics.update({f"best_{k}": v for k, v in best.user_attrs.get("metrics", {}).items()})
        tags.update(
            {
                "best_trial": best.number,
                "best_run_id": best.user_attrs.get("mlflow_run_id"),
                "best_algorithm": best.user_attrs.get("algorithm"),
                "best_model_uri": best.user_attrs.get("model_uri"),
            }
        )
        existing = client.get_run(parent_id).data.params
        params = {f"best.{k}": v for k, v in best.params.items() if f"best.{k}" not in existing}
    tracking.log_batch(client, parent_id, params=params, metrics=metrics, tags=tags)
    with tempfile.TemporaryDirectory() as plots_dir:
        study_plots = None
        if cfg.tracking.log_plots:
            title = f"{cfg.dataset.name} / {cfg.features.name}"
            direction = study.direction.name.lower()
            futures = [
                runner.artifacts.call(
                    draw_study_plots, Path(plots_dir), trials, direction, title, part
                )
                for part in STUDY_PLOT_PARTS
            ]
            study_plots = StudyPlots(futures, Path(plots_dir))
        if best is None:
            if study_plots is not None:
                study_plots.log(client, parent_id)
            client.set_terminated(parent_id, status="FINISHED")
            raise InputError(
                f"study {name}: no trial met the constraints ({counts}); rejected: {reasons}. "
                "Widen sweep.constraints or the search space."
            )
        if cfg.tracking.register_model and best.user_attrs.get("model_uri"):
            result.registered_version = register_best(cfg, client, best, parent_id, space)
        result.insight_seconds = log_sweep_insights(
            cfg,
            client,
            space,
            best,
            parent_id,
            data_insights,
            runner.best_fitted,
            study_plots,
        )
    tracking.log_batch(
        client,
        parent_id,
        metrics={f"insights_{k}_seconds": v for k, v in result.insight_seconds.items()},
    )
    client.set_terminated(parent_id, status="FINISHED")
    print_best(cfg, best, result.registered_version)
    return result


def register_best(cfg, client: MlflowClient, best, parent_id: str, space: FeatureSpace) -> str:
    """Register the best trial's model (once: a rerun finds the existing version)."""
    run_id = best.user_attrs["mlflow_run_id"]
    version = tracking.register_run_model(
        client,
        str(cfg.tracking.registered_model_name),
        run_id,
        best.user_attrs["model_uri"],
        tags={
            "dataset": cfg.dataset.name,
            tracking.DATASET_HASH_TAG: space.dataset_hash,
            "data_source": space.data.source,
            "feature_set": cfg.features.name,
            "algorithm": best.user_attrs.get("algorithm"),
            "silhouette": f"{best.value:.4f}",
            "source_run": run_id,
            "sweep_run": parent_id,
        },
    )
    client.set_tag(parent_id, "registered_version", version)
    return version
