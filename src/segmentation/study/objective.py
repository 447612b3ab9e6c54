"""The objective: one trial fitted, scored, checked against the constraints and logged as an
MLflow child run of the sweep's parent run."""

from __future__ import annotations

import math
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import mlflow
import numpy as np
import optuna
import pandas as pd
from hydra.utils import instantiate
from mlflow.entities import DatasetInput, LoggedModelOutput
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, Schema
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState
from threadpoolctl import threadpool_limits

from segmentation import algorithms
from segmentation.data import LoadedData
from segmentation.errors import InputError
from segmentation.evaluation.confidence import confidence
from segmentation.evaluation.constraints import (
    constraint_values,
    constraint_violation,
    degenerate,
)
from segmentation.evaluation.drift import reference_profile
from segmentation.evaluation.metrics import cluster_metrics, model_metrics
from segmentation.evaluation.segment_stability import stability_summary
from segmentation.features.space import FeatureSpace, feature_space_name
from segmentation.plots import subsample
from segmentation.plots.templates import data_key
from segmentation.segments.describe import describe_segments
from segmentation.study import interrupts
from segmentation.study.artifacts import ArtifactWriter, TrialArtifacts
from segmentation.study.insights import FittedTrial
from segmentation.study.storage import mark_worker
from segmentation.tracking import runs
from segmentation.tracking.descriptions import NOTE_TAG
from segmentation.tracking.model import SegmentModel, build_pipeline

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
# Customers a model's drift reference is computed from (a seeded sample above that).
REFERENCE_ROWS = 50_000
# Training confidences kept with a model (the drift check's baseline of low-confidence share).
REFERENCE_CONFIDENCES = 2000
# Rows from which a dataset input's column types are inferred.
SCHEMA_SAMPLE_ROWS = 1000


def study_name(cfg: DictConfig, dataset_hash: str) -> str:
    """One study per feature space and data: silhouettes of another space, or of other data
    (the real file after the synthetic default, a new export), do not compare, and a rerun
    must not resume such a study."""
    name = f"{cfg.experiment_name}.{feature_space_name(cfg)}.data-{dataset_hash[:8]}"
    # A two-objective study cannot resume a one-objective one (nor the other way round).
    return f"{name}.pareto" if pareto(cfg) else name


def algorithm_specs(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """The selected algorithms' configs, by name."""
    specs = OmegaConf.to_container(cfg.algorithm, resolve=True)
    if not specs:
        raise InputError("algorithm: no algorithm selected (expected kmeans, dbscan, gmm or all)")
    return specs


def make_sampler(cfg: DictConfig, worker: int = 0) -> optuna.samplers.BaseSampler:
    """The configured sampler (``conf/sampler``); each worker its own seed, or identical seeds
    would propose identical trials."""
    return instantiate(cfg.sampler, seed=int(cfg.sweep.seed) + worker)


def pareto(cfg: DictConfig) -> bool:
    """``sweep.objective=pareto``: silhouette and stability, both maximised."""
    objective = str(cfg.sweep.objective)
    if objective not in ("silhouette", "pareto"):
        raise InputError(f"sweep.objective={objective}: expected silhouette or pareto")
    return objective == "pareto"


def directions(cfg: DictConfig) -> list[str]:
    return ["maximize", "maximize"] if pareto(cfg) else ["maximize"]


def chosen_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    """The trial the sweep picks: the best feasible one; with two objectives (silhouette and
    stability), the knee of the feasible Pareto front (:func:`knee`). Raises ``ValueError``
    when no trial is feasible."""
    if len(study.directions) == 1:
        return study.best_trial
    front = study.best_trials
    if not front:
        raise ValueError("no feasible trial")
    return knee(front)


def knee(front: list[optuna.trial.FrozenTrial]) -> optuna.trial.FrozenTrial:
    """The Pareto-front trial nearest the ideal point (best silhouette and best stability), each
    objective scaled to [0, 1] over the front; ties go to the earlier trial."""
    values = np.array([t.values for t in front], dtype=float)
    low, high = values.min(axis=0), values.max(axis=0)
    scaled = (values - low) / np.where(high > low, high - low, 1.0)
    distance = np.hypot(*(1.0 - scaled).T)
    order = sorted(range(len(front)), key=lambda i: (round(distance[i], 12), front[i].number))
    return front[order[0]]


def silhouette_of(trial: optuna.trial.FrozenTrial) -> float:
    """A finished trial's silhouette (its first objective)."""
    return float(trial.values[0])


def finished_trials(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED_STATES))


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


def model_inputs(cfg: DictConfig, space: FeatureSpace) -> dict[str, Any]:
    """What a logged model accepts: the dataset's rules for its input columns, and the figures
    training filled missing values with (a cleaning rule's ``column`` and ``value``)."""
    rules = OmegaConf.to_container(cfg.dataset.columns, resolve=True)
    example = space.input_example.columns
    return {
        "columns": {c: spec for c, spec in rules.items() if c in example},
        "impute": {
            str(c["column"]): c["value"]
            for c in space.data.cleaning
            if "column" in c and "value" in c and c["column"] in example
        },
    }


@dataclass
class SweepContext:
    """What every trial of a sweep shares."""

    cfg: DictConfig
    space: FeatureSpace
    experiment_id: str
    parent_run_id: str
    dataset: DatasetInput
    artifacts: ArtifactWriter


@dataclass
class Fit:
    """One trial's fit and its scores."""

    estimator: Any
    labels: np.ndarray
    metrics: dict[str, float]
    silhouette_values: np.ndarray
    silhouette_labels: np.ndarray


@dataclass
class TrialRunner:
    """The objective: fit, score, check constraints and log one child run per trial."""

    ctx: SweepContext
    client: MlflowClient = field(default_factory=MlflowClient)
    # A trial that repeats an earlier one's parameters links the same model (TPE repeats
    # itself) instead of logging it again.
    models_by_key: dict[str, tuple[str, str]] = field(default_factory=dict)
    # The best trial this process ran, so the end of the sweep need not fit it again.
    best_fitted: FittedTrial | None = None
    # A trial whose labels and title repeat an earlier trial's gets that trial's plots, copied
    # when the artifact jobs are done (TPE repeats itself: drawing them again cost ~0.1 s each).
    plots_by_key: dict[str, str] = field(default_factory=dict)
    plot_copies: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        cfg = self.ctx.cfg
        self.specs = algorithm_specs(cfg)
        self.constraints = OmegaConf.to_container(cfg.sweep.constraints, resolve=True)
        self.seed = int(cfg.sweep.seed)
        space = self.ctx.space
        self.common_params = {
            "dataset": cfg.dataset.name,
            "data_source": space.data.source,
            "feature_set": cfg.features.name,
            "features": ",".join(space.columns),
            "scaler": cfg.scaling.name,
            "n_rows": space.n_rows,
            "seed": self.seed,
        }
        self.model_inputs = model_inputs(cfg, space)

    def reference(self, fit: Fit) -> dict[str, Any]:
        """The training distributions a model keeps for drift checks (from a seeded sample of
        at most ``REFERENCE_ROWS`` customers): its features, segment shares and confidences, and
        each segment's response rate when the dataset has a ``response_column``."""
        space = self.ctx.space
        rows = subsample(space.n_rows, REFERENCE_ROWS, self.seed)
        frame = pd.DataFrame(space.X_raw[rows], columns=space.columns)
        # The last campaign's response per segment: the baseline of `make audiences` holdouts.
        column = self.ctx.cfg.dataset.get("response_column")
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
        # source's git commit for every trial (46-68 ms against 29 ms a run here).
        run = self.client.create_run(
            self.ctx.experiment_id,
            run_name=f"trial-{trial.number:03d}-{name}",
            tags={
                runs.PARENT_TAG: self.ctx.parent_run_id,
                runs.ROLE_TAG: "trial",
                runs.STUDY_TAG: trial.study.study_name,
                runs.TRIAL_TAG: str(trial.number),
                "data_source": space.data.source,
                "dataset": self.ctx.cfg.dataset.name,
                runs.DATASET_HASH_TAG: space.dataset_hash,
                "algorithm": name,
            },
        )
        trial.set_user_attr("mlflow_run_id", run.info.run_id)
        status = "FAILED"
        try:
            # One BLAS/OpenMP thread for the whole trial: small fits are faster, workers must
            # not oversubscribe the cores, and a second thread in the metrics doubled their
            # CPU time at 100,000 rows without shortening them.
            with threadpool_limits(1):
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
        space, cfg = self.ctx.space, self.ctx.cfg
        estimator = algorithms.build(name, self.specs[name], params, self.seed, space.n_rows)
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
        metrics.update(model_metrics(estimator, space.X))
        metrics["metrics_seconds"] = time.perf_counter() - start
        metrics["fit_seconds"] = fit_seconds
        return Fit(estimator, labels, metrics, sil_values, sil_labels)

    def stability(self, name: str, params: dict, fit: Fit) -> tuple[float, dict[int, float]]:
        """Bootstrap stability of a fit: the refits' mean ARI and each segment's Jaccard."""
        cfg, X = self.ctx.cfg, self.ctx.space.X
        spec = self.specs[name]
        return stability_summary(
            lambda: algorithms.build(name, spec, params, self.seed, len(X)),
            X,
            fit.labels,
            bootstraps=int(cfg.sweep.stability.bootstraps),
            seed=self.seed,
            sample_rows=cfg.sweep.stability.get("sample_rows"),
            on_sample=bool(spec.get("stability_on_sample", False)),
        )

    def _run(
        self, trial: optuna.Trial, run_id: str, name: str, params: dict
    ) -> float | tuple[float, float]:
        cfg, space = self.ctx.cfg, self.ctx.space
        flat = {f"{name}.{k}": v for k, v in params.items()}
        run_params = {**self.common_params, "algorithm": name, "trial": trial.number, **flat}
        try:
            with interrupts.allowed():  # the fit and its metrics: computing only
                fit = self.fit(name, params)
        except Exception as exc:  # any fit error is recorded and the sweep goes on
            first = str(exc).splitlines()[0] if str(exc) else ""
            self._prune(trial, run_id, run_params, f"fit error: {type(exc).__name__}: {first}")
        run_params["estimator"] = type(fit.estimator).__name__
        metrics = fit.metrics
        k = int(metrics["n_clusters"])
        trial.set_user_attr("n_clusters", k)
        start = time.perf_counter()
        segment_stability: dict[int, float] = {}
        if degenerate(metrics) is None:
            with interrupts.allowed():
                metrics["stability_ari"], segment_stability = self.stability(name, params, fit)
            if segment_stability:
                metrics["min_segment_stability"] = min(segment_stability.values())
        trial.set_user_attr("metrics", {m: v for m, v in metrics.items() if not math.isnan(v)})
        reason = constraint_violation(metrics, self.constraints)
        with interrupts.allowed():
            segments = describe_segments(cfg, space, fit.labels, fit.estimator)
        metrics["metrics_seconds"] += time.perf_counter() - start
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
            tracking_uri=str(cfg.paths.tracking_uri),
            run_id=run_id,
            names=list(space.columns),
            silhouette=silhouette,
            title=summary,
            log_plots=bool(cfg.tracking.log_plots),
            profile=segments.profile,
            personas=segments.names,
            segment_stability=segment_stability,
            params=run_params,
            metrics=metrics,
            tags=tags,
            dataset_input=self.ctx.dataset,
        )
        first = self.plots_by_key.setdefault(data_key(fit.labels) + summary, run_id)
        if job.log_plots and first != run_id:
            job.log_plots = False
            self.plot_copies.append((first, run_id))
        if cfg.tracking.log_models:
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
        if pareto(cfg):
            return value, float(metrics["stability_ari"])
        return value

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


def copy_repeated_plots(client: MlflowClient, copies: list[tuple[str, str]]) -> None:
    """Log each ``(source, target)`` run pair's plots from source to target (call it once the
    artifact jobs are done, so every source has its plots)."""
    for source, target in copies:
        with tempfile.TemporaryDirectory() as tmp:
            client.log_artifacts(target, client.download_artifacts(source, "plots", tmp), "plots")
    copies.clear()


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
            best = chosen_trial(study)
            best_text = (
                f"best silhouette {silhouette_of(best):.4f} (trial {best.number}, "
                f"{best.user_attrs.get('algorithm')}, k={best.user_attrs.get('n_clusters')})"
            )
        except ValueError:
            best_text = "no valid trial yet"
        reason = trial.user_attrs.get("reason")
        this = (
            f"{silhouette_of(trial):.4f}"
            if trial.state == TrialState.COMPLETE and not reason
            else f"rejected: {reason or trial.state.name}"
        )
        print(
            f"[{done:>3}/{self.total}] {best_text} | trial {trial.number}: {this} "
            f"| {time.perf_counter() - self.started:.1f}s",
            flush=True,
        )
