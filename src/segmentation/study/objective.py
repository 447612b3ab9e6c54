"""The objective: one trial fitted, scored, checked against the constraints and logged as an
MLflow child run of the sweep's parent run."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np
import optuna
import pandas as pd
from mlflow.entities import DatasetInput, LoggedModelOutput
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from sklearn.base import clone

from segmentation import algorithms
from segmentation.evaluation.confidence import confidence
from segmentation.evaluation.constraints import (
    constraint_values,
    constraint_violation,
    degenerate,
)
from segmentation.evaluation.metrics import cluster_metrics, model_metrics
from segmentation.evaluation.segment_stability import stability_summary
from segmentation.features.space import FeatureSpace, SpaceConfig
from segmentation.monitoring.drift import reference_profile
from segmentation.plots import data_key, subsample
from segmentation.segments.describe import Segments, describe_segments
from segmentation.study import interrupts
from segmentation.study.artifacts import ArtifactWriter, TrialArtifacts
from segmentation.study.definition import algorithm_specs, pareto, study_name
from segmentation.study.insights import FittedTrial
from segmentation.study.storage import mark_worker
from segmentation.tracking import runs
from segmentation.tracking.descriptions import NOTE_TAG
from segmentation.tracking.model import SegmentModel, build_pipeline

# Customers a model's drift reference is computed from (a seeded sample above that).
REFERENCE_ROWS = 50_000
# Training confidences kept with a model (the drift check's baseline of low-confidence share).
REFERENCE_CONFIDENCES = 2000


def model_inputs(dataset: DictConfig, space: FeatureSpace) -> dict[str, Any]:
    """What a logged model accepts: the ``dataset`` group's rules for its input columns, and the
    figures training filled missing values with (a cleaning rule's ``column`` and ``value``)."""
    # Plain text for the choices: the model is unpickled without the config's classes.
    rules = OmegaConf.to_container(dataset.columns, resolve=True, enum_to_str=True)
    example = space.input_example.columns
    return {
        "columns": {c: spec for c, spec in rules.items() if c in example},
        "impute": {
            str(c["column"]): c["value"]
            for c in space.data.cleaning
            if "column" in c and "value" in c and c["column"] in example
        },
    }


@dataclass(frozen=True)
class SweepGroups:
    """The config groups a sweep's trials, parent run, registration and summary read, taken
    once from the composed config by the processes that run a sweep (:meth:`of`)."""

    dataset: DictConfig
    features: DictConfig
    scaling: DictConfig
    algorithm: DictConfig
    sweep: DictConfig
    sampler: DictConfig
    tracking: DictConfig
    paths: DictConfig
    # The dataset's persona rules (an optional group).
    personas: DictConfig | None
    experiment_name: str
    experiment_description: str

    @classmethod
    def of(cls, cfg: DictConfig) -> SweepGroups:
        """The groups of a composed config (``run_sweep``'s, a worker's, a test's)."""
        return cls(
            dataset=cfg.dataset,
            features=cfg.features,
            scaling=cfg.scaling,
            algorithm=cfg.algorithm,
            sweep=cfg.sweep,
            sampler=cfg.sampler,
            tracking=cfg.tracking,
            paths=cfg.paths,
            personas=cfg.get("personas"),
            experiment_name=str(cfg.experiment_name),
            experiment_description=str(cfg.experiment_description),
        )

    @property
    def space_config(self) -> SpaceConfig:
        """The groups the study's feature space is built from."""
        return SpaceConfig(
            self.dataset,
            self.features,
            self.scaling,
            self.sweep,
            self.tracking,
            self.experiment_name,
        )

    def study_name(self, dataset_hash: str) -> str:
        """The name of this sweep's study of the data ``dataset_hash`` (a rerun's and a worker's
        way back to it)."""
        return study_name(self.experiment_name, self.space_config.name, self.sweep, dataset_hash)


@dataclass
class SweepContext:
    """What every trial of a sweep shares."""

    groups: SweepGroups
    space: FeatureSpace
    experiment_id: str
    parent_run_id: str
    dataset: DatasetInput
    artifacts: ArtifactWriter
    # The sweep's store, given explicitly (not MLflow's process-wide tracking URI).
    client: MlflowClient


@dataclass
class Fit:
    """One trial's fit and its scores."""

    estimator: Any
    labels: np.ndarray
    metrics: dict[str, float]
    silhouette_values: np.ndarray
    silhouette_labels: np.ndarray


@dataclass
class Outcome:
    """What a trial's parameters gave: the fit with its final metrics, the segments'
    stability and their description (the same for every trial with those parameters)."""

    fit: Fit
    segment_stability: dict[int, float]
    segments: Segments
    first_run: str


@dataclass
class TrialRunner:
    """The objective: fit, score, check constraints and log one child run per trial."""

    ctx: SweepContext
    # A trial that repeats an earlier one's parameters links the same model (TPE repeats
    # itself) instead of logging it again.
    models_by_key: dict[str, tuple[str, str]] = field(default_factory=dict)
    # The best trial this process ran, so the end of the sweep need not fit it again.
    best_fitted: FittedTrial | None = None
    # A trial whose labels and title repeat an earlier trial's gets that trial's plots, copied
    # when the artifact jobs are done (TPE repeats itself, and drawing is the costly part).
    plots_by_key: dict[str, str] = field(default_factory=dict)
    plot_copies: list[tuple[str, str]] = field(default_factory=list)
    # Fits are seeded and single-threaded, so a trial that repeats an earlier one's parameters
    # reuses its fit, stability and segments instead of computing them again.
    outcomes_by_key: dict[str, Outcome] = field(default_factory=dict)

    def __post_init__(self) -> None:
        groups = self.ctx.groups
        self.client = self.ctx.client
        self.specs = algorithm_specs(groups.algorithm)
        self.constraints = OmegaConf.to_container(groups.sweep.constraints, resolve=True)
        self.seed = int(groups.sweep.seed)
        space = self.ctx.space
        self.common_params = {
            "dataset": groups.dataset.name,
            "data_source": space.data.source,
            "feature_set": groups.features.name,
            "features": ",".join(space.columns),
            "scaler": groups.scaling.name,
            "n_rows": space.n_rows,
            "seed": self.seed,
        }
        self.model_inputs = model_inputs(groups.dataset, space)

    def reference(self, fit: Fit) -> dict[str, Any]:
        """The training distributions a model keeps for drift checks (from a seeded sample of
        at most ``REFERENCE_ROWS`` customers): its features, segment shares and confidences, and
        each segment's response rate when the dataset has a ``response_column``."""
        space = self.ctx.space
        rows = subsample(space.n_rows, REFERENCE_ROWS, self.seed)
        frame = pd.DataFrame(space.X_raw[rows], columns=space.columns)
        # The last campaign's response per segment: the baseline of `make audiences` holdouts.
        column = self.ctx.groups.dataset.get("response_column")
        data = space.data.frame
        answered = (
            data[column].to_numpy()[rows]
            if column and column in data.columns and len(data) == space.n_rows
            else None
        )
        reference = reference_profile(
            frame, space.columns, fit.labels[rows], seed=self.seed, response=answered
        )
        sure = confidence(fit.estimator, space.X[rows], fit.labels[rows])
        reference["confidence"] = np.round(sure[:REFERENCE_CONFIDENCES], 4).tolist()
        return reference

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        interrupts.checkpoint()  # a Ctrl-C after the last trial: no new run
        mark_worker(trial)
        name, params = algorithms.suggest(trial, self.specs)
        trial.set_user_attr("algorithm", name)
        space = self.ctx.space
        # The client, not mlflow.start_run: that also reads the parent run and resolves the
        # source's git commit for every trial.
        run = self.client.create_run(
            self.ctx.experiment_id,
            run_name=f"trial-{trial.number:03d}-{name}",
            tags={
                runs.PARENT_TAG: self.ctx.parent_run_id,
                runs.ROLE_TAG: "trial",
                runs.STUDY_TAG: trial.study.study_name,
                runs.TRIAL_TAG: str(trial.number),
                "data_source": space.data.source,
                "dataset": self.ctx.groups.dataset.name,
                runs.DATASET_HASH_TAG: space.dataset_hash,
                "algorithm": name,
            },
        )
        trial.set_user_attr("mlflow_run_id", run.info.run_id)
        status = "FAILED"
        try:
            # One BLAS/OpenMP thread for the whole trial: small fits are faster, workers must
            # not oversubscribe the cores, and a second thread in the metrics costs CPU time
            # without shortening them.
            with algorithms.one_thread():
                value = self._run(trial, run.info.run_id, name, params)
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

    def fit(self, name: str, params: dict[str, Any]) -> Fit:
        """Fit the trial's estimator and compute its metrics."""
        space, sweep = self.ctx.space, self.ctx.groups.sweep
        estimator = algorithms.build(name, self.specs[name], params, self.seed, space.n_rows)
        start = time.perf_counter()
        labels = np.asarray(estimator.fit_predict(space.X))
        fit_seconds = time.perf_counter() - start
        start = time.perf_counter()
        metrics, sil_values, sil_labels = cluster_metrics(
            space.X,
            labels,
            sample_above=int(sweep.silhouette.sample_above),
            sample_size=int(sweep.silhouette.sample_size),
            seed=self.seed,
        )
        metrics.update(model_metrics(estimator, space.X))
        metrics["metrics_seconds"] = time.perf_counter() - start
        metrics["fit_seconds"] = fit_seconds
        return Fit(estimator, labels, metrics, sil_values, sil_labels)

    def stability(self, name: str, params: dict, fit: Fit) -> tuple[float, dict[int, float]]:
        """Bootstrap stability of a fit: the refits' mean ARI and each segment's Jaccard."""
        sweep, X = self.ctx.groups.sweep, self.ctx.space.X
        spec = self.specs[name]
        # Each refit starts from an unfitted copy of the trial's estimator (the same
        # parameters and seed as building it again from the config, without the config).
        return stability_summary(
            lambda: clone(fit.estimator),
            X,
            fit.labels,
            bootstraps=int(sweep.stability.bootstraps),
            seed=self.seed,
            sample_rows=sweep.stability.get("sample_rows"),
            on_sample=bool(spec.get("stability_on_sample", False)),
        )

    def _run(
        self, trial: optuna.Trial, run_id: str, name: str, params: dict
    ) -> float | tuple[float, float]:
        groups, space = self.ctx.groups, self.ctx.space
        flat = {f"{name}.{k}": v for k, v in params.items()}
        run_params = {**self.common_params, "algorithm": name, "trial": trial.number, **flat}
        key = repr((name, sorted(params.items())))
        outcome = self.outcomes_by_key.get(key)
        if outcome is None:
            outcome = self._outcome(trial, run_id, run_params, name, params)
            self.outcomes_by_key[key] = outcome
        run_params["estimator"] = type(outcome.fit.estimator).__name__
        fit, segments = outcome.fit, outcome.segments
        segment_stability = outcome.segment_stability
        metrics = dict(fit.metrics)
        k = int(metrics["n_clusters"])
        trial.set_user_attr("n_clusters", k)
        trial.set_user_attr("metrics", {m: v for m, v in metrics.items() if not math.isnan(v)})
        reason = constraint_violation(metrics, self.constraints)
        start = time.perf_counter()
        silhouette = metrics["silhouette"]
        summary = f"{name}, {k} segments, silhouette {silhouette:.3f}"
        state = "PRUNED" if degenerate(metrics) else "INFEASIBLE" if reason else "COMPLETE"
        tags = {
            "trial_state": state,
            # The run's description in the MLflow UI.
            NOTE_TAG: (
                f"{summary}, stability {metrics['stability_ari']:.2f}: "
                + ", ".join(segments.names.values())
                if not reason
                else f"{summary}; rejected: {reason}"
            ),
        }
        if reason:
            tags["rejected_reason"] = reason
            trial.set_user_attr("reason", reason)
        job = TrialArtifacts.sampled(
            X_raw=space.X_raw,
            X_scaled=space.X,
            labels=fit.labels,
            silhouette_values=fit.silhouette_values,
            silhouette_labels=fit.silhouette_labels,
            seed=self.seed,
            tracking_uri=str(groups.paths.tracking_uri),
            run_id=run_id,
            names=list(space.columns),
            silhouette=silhouette,
            title=summary,
            log_plots=bool(groups.tracking.log_plots),
            profile=segments.profile,
            personas=segments.names,
            segment_stability=segment_stability,
            params=run_params,
            metrics=metrics,
            tags=tags,
            dataset_input=self.ctx.dataset,
        )
        first = self.plots_by_key.setdefault(data_key(fit.labels) + summary, run_id)
        if outcome.first_run != run_id:
            job.tags[runs.REPEAT_TAG] = outcome.first_run
        if job.log_plots and first != run_id:
            job.log_plots = False
            self.plot_copies.append((first, run_id))
        if groups.tracking.log_models:
            self._attach_model(trial, job, name, params, fit, f"{name}-k{k}")
        job.main_logging_seconds = time.perf_counter() - start
        self.ctx.artifacts.submit(job)
        if state == "PRUNED":
            raise optuna.TrialPruned(reason)
        # Measured violations, so the sampler learns where the feasible region lies.
        for key, value in constraint_values(metrics, self.constraints).items():
            trial.set_constraint(key, value)
        value = float(silhouette)
        best = self.best_fitted
        if not reason and (best is None or value > best.value):  # ties: the first, as Optuna
            self.best_fitted = FittedTrial(trial.number, value, name, params, segments)
        if pareto(groups.sweep):
            return value, float(metrics["stability_ari"])
        return value

    def _outcome(
        self, trial: optuna.Trial, run_id: str, run_params: dict, name: str, params: dict
    ) -> Outcome:
        """Fit the trial's parameters, score the fit, measure its stability and describe its
        segments (a fit error prunes the trial)."""
        try:
            with interrupts.allowed():  # the fit and its metrics: computing only
                fit = self.fit(name, params)
        except Exception as exc:  # any fit error is recorded and the sweep goes on
            first = str(exc).splitlines()[0] if str(exc) else ""
            self._prune(trial, run_id, run_params, f"fit error: {type(exc).__name__}: {first}")
        metrics = fit.metrics
        start = time.perf_counter()
        segment_stability: dict[int, float] = {}
        if degenerate(metrics) is None:
            with interrupts.allowed():
                metrics["stability_ari"], segment_stability = self.stability(name, params, fit)
            if segment_stability:
                metrics["min_segment_stability"] = min(segment_stability.values())
        with interrupts.allowed():
            # The value table and attribute profile are the chosen trial's (best_fit).
            segments = describe_segments(
                self.ctx.groups.personas, self.ctx.space, fit.labels, fit.estimator, value=False
            )
        metrics["metrics_seconds"] += time.perf_counter() - start
        return Outcome(fit, segment_stability, segments, run_id)

    def _prune(self, trial: optuna.Trial, run_id: str, params: dict, reason: str) -> NoReturn:
        """Record a trial that has no score (a fit error) and prune it."""
        runs.log_batch(
            self.client,
            run_id,
            params=params,
            tags={"trial_state": "PRUNED", "rejected_reason": reason, NOTE_TAG: reason},
        )
        trial.set_user_attr("reason", reason)
        raise optuna.TrialPruned(reason)

    def _attach_model(
        self,
        trial: optuna.Trial,
        job: TrialArtifacts,
        name: str,
        params: dict,
        fit: Fit,
        label: str,
    ) -> None:
        """Give the run its LoggedModel: a new one (created here, so its URI is known now; the
        pool logs its files) or the one an earlier trial with the same parameters logged."""
        run_id, space = job.run_id, self.ctx.space
        key = repr((name, sorted(params.items())))
        if key in self.models_by_key:
            model_id, first_run = self.models_by_key[key]
            job.tags[runs.MODEL_SHARED_TAG] = first_run
            self.client.log_outputs(run_id, models=[LoggedModelOutput(model_id, step=0)])
        else:
            model_id = self.client.create_logged_model(
                self.ctx.experiment_id,
                name=label,
                source_run_id=run_id,
                params={k: str(v) for k, v in job.params.items()},
            ).model_id
            pipeline = build_pipeline(space.engineer, space.columns, space.scaler, fit.estimator)
            job.model = SegmentModel(
                pipeline, job.personas, self.model_inputs, reference=self.reference(fit)
            )
            job.input_example, job.model_id = space.input_example, model_id
            self.models_by_key[key] = (model_id, run_id)
        trial.set_user_attr("model_uri", f"models:/{model_id}")
        job.tags[runs.MODEL_ID_TAG] = model_id
