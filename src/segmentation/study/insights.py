"""The sweep's parent run: EDA and choosing-k plots, the study plots, the best trial's personas
and stability, and the HTML report. The plots are drawn by the artifact pool
(:class:`segmentation.study.artifacts.ArtifactWriter`) while the trials run."""

from __future__ import annotations

import json
import tempfile
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from segmentation import algorithms
from segmentation.evaluation.choosing_k import k_curves
from segmentation.features.space import FeatureSpace
from segmentation.plots import subsample
from segmentation.segments.describe import Segments, describe_segments, with_value
from segmentation.segments.explain import (
    distinguishing_features,
    explanations_markdown,
    surrogate_rules,
)
from segmentation.study import interrupts
from segmentation.study.artifacts import ArtifactWriter
from segmentation.tracking.reports import build_report
from segmentation.tracking.runs import log_batch

# Customers the explanations are computed from (a seeded sample above that).
EXPLAIN_ROWS = 50_000


@dataclass
class FittedTrial:
    """A trial's fit kept in memory, so the end of the sweep need not fit it again."""

    number: int
    value: float
    name: str
    params: dict
    segments: Segments


def refit_trial(
    algorithm: DictConfig, seed: int, space: FeatureSpace, trial: optuna.trial.FrozenTrial
) -> tuple[str, Any, dict, np.ndarray]:
    """Refit a finished trial's estimator (of the ``algorithm`` group, seeded with
    ``sweep.seed``) on the study's data: the same segments."""
    specs = OmegaConf.to_container(algorithm, resolve=True)
    name = algorithms.trial_algorithm(trial)
    params = algorithms.trial_params(trial, specs)
    estimator = algorithms.build(name, specs[name], params, int(seed), space.n_rows)
    with algorithms.one_thread():
        labels = np.asarray(estimator.fit_predict(space.X))
    return name, estimator, params, labels


def write_data_insights(
    dataset: DictConfig, features: DictConfig, sweep: DictConfig, space: FeatureSpace, out: Path
) -> dict[str, float]:
    """The EDA and choosing-k plots (over the ``sweep`` group's k range) into ``out``; returns
    the seconds each took (they depend on the data alone, so the artifact pool draws them while
    the trials run)."""
    # Runs in the pool, whose fork server imported matplotlib; the sweep's process never draws.
    from segmentation.plots.eda import box_pairs, eda_frame, write_eda_plots
    from segmentation.plots.study import write_k_plots

    seconds: dict[str, float] = {}
    title = f"{dataset.name} / {features.name}"
    start = time.perf_counter()
    engineered = space.engineer.transform(space.data.frame)
    frame = eda_frame(space.data.frame, engineered, dataset.get("id_column"))
    kinds = OmegaConf.to_container(dataset.get("columns") or {}, resolve=True)
    cats = [c for c, spec in kinds.items() if (spec or {}).get("kind") == "category"]
    write_eda_plots(
        out / "eda",
        frame,
        space.X_raw,
        space.columns,
        title,
        box=box_pairs(dataset),
        categories=cats or None,
    )
    seconds["eda"] = time.perf_counter() - start
    start = time.perf_counter()
    ks = range(int(sweep.constraints.k_min), int(sweep.constraints.k_max) + 1)
    curves = k_curves(
        space.X,
        ks,
        int(sweep.seed),
        int(sweep.silhouette.curve_sample_size),
        fit_rows=int(sweep.silhouette.curve_fit_rows),
    )
    write_k_plots(out / "choosing_k", curves, title)
    (out / "choosing_k" / "k_curves.json").write_text(json.dumps(curves, indent=1))
    seconds["choosing_k"] = time.perf_counter() - start
    return seconds


@dataclass
class Drawing:
    """Plots being drawn into ``out_dir`` by the artifact pool (``future`` gives the drawing
    function's result)."""

    future: Future
    out_dir: tempfile.TemporaryDirectory

    def result(self) -> Any:
        """Wait for the drawing and return its result (its error, if it failed)."""
        interrupts.wait(self.future)
        return self.future.result()

    def close(self) -> None:
        self.future.cancel()
        self.out_dir.cleanup()


def start_data_insights(
    dataset: DictConfig,
    features: DictConfig,
    sweep: DictConfig,
    space: FeatureSpace,
    writer: ArtifactWriter,
) -> Drawing:
    """Submit the EDA and choosing-k plots to the pool."""
    return Drawing(*_submit(writer, _data_insights_job, dataset, features, sweep, space))


def start_study_plots(
    writer: ArtifactWriter,
    trials: list[optuna.trial.FrozenTrial],
    directions: list[str],
    title: str,
) -> Drawing:
    """Submit the study plots to the pool."""
    return Drawing(*_submit(writer, _study_plots_job, trials, directions, title))


def _submit(writer: ArtifactWriter, job: Any, *args: Any) -> tuple[Future, Any]:
    out = tempfile.TemporaryDirectory(prefix="segmentation-plots-")
    return writer.call(job, out.name, *args), out


def _data_insights_job(
    out: str, dataset: DictConfig, features: DictConfig, sweep: DictConfig, space: FeatureSpace
) -> dict[str, float]:
    return write_data_insights(dataset, features, sweep, space, Path(out))


def _study_plots_job(out: str, trials: list, directions: list[str], title: str) -> dict[str, Any]:
    from segmentation.plots.study import draw_study_plots  # drawn in the pool, as above

    start = time.perf_counter()
    skipped = draw_study_plots(Path(out), trials, directions, title)
    if skipped:
        (Path(out) / "skipped.json").write_text(json.dumps(skipped, indent=1))
    return {"study_plots": time.perf_counter() - start}


def best_fit(
    algorithm: DictConfig,
    personas: DictConfig | None,
    seed: int,
    space: FeatureSpace,
    best: optuna.trial.FrozenTrial,
    fitted: FittedTrial | None = None,
) -> FittedTrial:
    """The best trial's fit, its segments named by the ``personas`` group: ``fitted`` when it is
    that trial, else it is fitted again (a resumed study's or another worker's trial)."""
    if fitted is not None and fitted.number == best.number:
        segments = with_value(personas, space, fitted.segments)
        return FittedTrial(fitted.number, fitted.value, fitted.name, fitted.params, segments)
    name, estimator, params, labels = refit_trial(algorithm, seed, space, best)
    segments = describe_segments(personas, space, labels, estimator)
    return FittedTrial(best.number, float(best.values[0]), name, params, segments)


def explain(space: FeatureSpace, segments: Segments, seed: int) -> dict[str, Any]:
    """Per segment, the features that set it apart and a surrogate tree's rule (in original
    units, from a seeded sample of at most ``EXPLAIN_ROWS`` customers), with the markdown."""
    rows = subsample(space.n_rows, EXPLAIN_ROWS, seed)
    frame = pd.DataFrame(space.X_raw[rows], columns=space.columns)
    labels = segments.labels[rows]
    features = distinguishing_features(frame, labels)
    rules = surrogate_rules(frame, labels, seed=seed)
    return {
        "features": features,
        "rules": rules,
        "markdown": explanations_markdown(features, rules, segments.names),
    }


def log_sweep_insights(
    client: MlflowClient,
    space: FeatureSpace,
    parent_id: str,
    best_run: str | None,
    drawings: dict[str, Drawing],
    fit: FittedTrial,
    explanations: dict[str, Any],
) -> dict[str, float]:
    """Log the parent's plots (``drawings``: the EDA and choosing-k plots under their own
    folders, the study's under ``study/``), the best trial's personas and explanations (on the
    parent run and the best trial's run), and the report. Returns the seconds each part took."""
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        fit.segments.write(Path(tmp) / "segments")
        out = Path(tmp) / "explanations"
        out.mkdir()
        (out / "explanations.json").write_text(
            json.dumps({k: v for k, v in explanations.items() if k != "markdown"}, default=float)
        )
        (out / "explanations.md").write_text(explanations["markdown"], encoding="utf-8")
        client.log_artifacts(parent_id, tmp)
        if best_run:
            client.log_artifacts(best_run, str(Path(tmp) / "segments"), "segments")
            client.log_artifacts(best_run, str(out), "explanations")
            client.download_artifacts(best_run, "segments/stability.json", tmp)
            client.log_artifacts(parent_id, str(Path(tmp) / "segments"), "segments")
    log_batch(client, parent_id, metrics={"surrogate_fidelity": explanations["rules"]["fidelity"]})
    for folder, drawing in drawings.items():
        seconds.update(drawing.result())
        client.log_artifacts(parent_id, drawing.out_dir.name, folder or None)
    start = time.perf_counter()
    client.log_text(parent_id, build_report(client, parent_id), "report.html")
    seconds["report"] = time.perf_counter() - start
    return seconds
