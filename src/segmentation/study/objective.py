"""The objective: one trial fitted, scored, checked against the constraints and logged as an
MLflow child run of the sweep's parent run."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
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
from segmentation.evaluation.constraints import constraint_violation
from segmentation.evaluation.metrics import cluster_metrics, model_metrics
from segmentation.evaluation.stability import configured_stability
from segmentation.features.space import FeatureSpace, feature_space_name
from segmentation.segments.describe import describe_segments
from segmentation.study import interrupts
from segmentation.study.artifacts import ArtifactWriter, TrialArtifacts
from segmentation.study.insights import FittedTrial
from segmentation.study.storage import mark_worker
from segmentation.tracking import runs
from segmentation.tracking.model import build_pipeline

FINISHED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
# Rows from which a dataset input's column types are inferred.
SCHEMA_SAMPLE_ROWS = 1000


def study_name(cfg: DictConfig, dataset_hash: str) -> str:
    """One study per feature space and data: silhouettes of another space, or of other data
    (the real file after the synthetic default, a new export), do not compare, and a rerun
    must not resume such a study."""
    return f"{cfg.experiment_name}.{feature_space_name(cfg)}.data-{dataset_hash[:8]}"


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

    def __call__(self, trial: optuna.Trial) -> float:
        interrupts.checkpoint()  # a Ctrl-C after the last trial: no new run
        mark_worker(trial)
        name, params = algorithms.suggest(trial, self.specs)
        trial.set_user_attr("algorithm", name)
        space = self.ctx.space
        run = mlflow.start_run(
            experiment_id=self.ctx.experiment_id,
            run_name=f"trial-{trial.number:03d}-{name}",
            parent_run_id=self.ctx.parent_run_id,
            tags={
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
            mlflow.end_run(status)

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

    def _run(self, trial: optuna.Trial, run_id: str, name: str, params: dict) -> float:
        cfg, space = self.ctx.cfg, self.ctx.space
        flat = {f"{name}.{k}": v for k, v in params.items()}
        run_params = {**self.common_params, "algorithm": name, "trial": trial.number, **flat}
        try:
            with interrupts.allowed():  # the fit and its metrics: computing only
                fit = self.fit(name, params)
        except Exception as exc:  # any fit error is recorded and the sweep goes on
            first = str(exc).splitlines()[0] if str(exc) else ""
            reason = f"fit error: {type(exc).__name__}: {first}"
            runs.log_batch(
                self.client,
                run_id,
                params=run_params,
                tags={"trial_state": "PRUNED", "rejected_reason": reason},
            )
            trial.set_user_attr("reason", reason)
            raise optuna.TrialPruned(reason) from None
        run_params["estimator"] = type(fit.estimator).__name__
        metrics = fit.metrics
        reason = constraint_violation(metrics, self.constraints)
        k = int(metrics["n_clusters"])
        trial.set_user_attr("n_clusters", k)
        trial.set_user_attr("metrics", {m: v for m, v in metrics.items() if not math.isnan(v)})
        start = time.perf_counter()
        with interrupts.allowed():
            if cfg.sweep.stability.every_trial:
                metrics["stability_ari"] = configured_stability(
                    cfg,
                    lambda: algorithms.build(
                        name, self.specs[name], params, self.seed, len(space.X)
                    ),
                    space.X,
                    fit.labels,
                    on_sample=bool(self.specs[name].get("stability_on_sample", False)),
                )
            segments = describe_segments(cfg, space, fit.labels, fit.estimator)
        metrics["metrics_seconds"] += time.perf_counter() - start
        start = time.perf_counter()
        silhouette = metrics["silhouette"]
        summary = f"{name}, {k} segments, silhouette {silhouette:.3f}"
        tags = {
            "trial_state": "PRUNED" if reason else "COMPLETE",
            # The run's description in the MLflow UI.
            "mlflow.note.content": (
                f"{summary}: " + ", ".join(segments.names.values())
                if not reason
                else f"{summary}; rejected: {reason}"
            ),
        }
        if reason:
            tags["rejected_reason"] = reason
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
            params=run_params,
            metrics=metrics,
            tags=tags,
            dataset_input=self.ctx.dataset,
        )
        if cfg.tracking.log_models:
            self._attach_model(trial, job, name, params, fit, f"{name}-k{k}")
        job.main_logging_seconds = time.perf_counter() - start
        self.ctx.artifacts.submit(job)
        if reason:
            trial.set_user_attr("reason", reason)
            raise optuna.TrialPruned(reason)
        value = float(silhouette)
        best = self.best_fitted
        if best is None or value > best.value:  # ties: Optuna's best is the first
            self.best_fitted = FittedTrial(trial.number, value, name, params, segments)
        return value

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
            job.pipeline = build_pipeline(
                space.engineer, space.columns, space.scaler, fit.estimator
            )
            job.input_example, job.model_id = space.input_example, model_id
            self.models_by_key[key] = (model_id, run_id)
        trial.set_user_attr("model_uri", f"models:/{model_id}")
        job.tags[runs.MODEL_ID_TAG] = model_id


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
