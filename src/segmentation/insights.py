"""From a fitted segmentation to what people act on: profiles and personas per trial, and at the
end of a sweep the EDA, choosing-k and study plots, the best trial's personas and stability, and
the HTML report, all logged to MLflow."""

from __future__ import annotations

import json
import os
import tempfile
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from threadpoolctl import threadpool_limits

from segmentation import algorithms, interrupts, tracking
from segmentation.personas import build_personas, persona_names, write_personas
from segmentation.plots.eda import box_pairs, eda_frame, write_eda_plots
from segmentation.plots.study import k_curves, write_k_plots
from segmentation.profiles import original_centers, segment_profile, write_profile
from segmentation.stability import configured_stability


@dataclass
class Segments:
    """A segmentation described: profile in original units and personas."""

    labels: np.ndarray
    profile: pd.DataFrame
    personas: pd.DataFrame

    @property
    def names(self) -> dict[int, str]:
        return persona_names(self.personas)

    def write(self, out_dir: Path, personas: bool = True) -> list[Path]:
        paths = write_profile(self.profile, out_dir)
        if personas:
            paths += write_personas(self.personas, out_dir)
        return paths


@dataclass
class FittedTrial:
    """A trial's fit kept in memory, so the end of the sweep need not fit it again."""

    number: int
    value: float
    module: Any
    params: dict
    segments: Segments


def describe_segments(
    cfg: DictConfig, space: Any, labels: np.ndarray, module: Any, estimator: Any
) -> Segments:
    """Profile (with centres back in original units) and personas of one fitted segmentation."""
    centres_fn = getattr(module, "centers", None)
    centres = original_centers(space.scaler, centres_fn(estimator)) if centres_fn else None
    profile = segment_profile(space.X_raw, labels, space.columns, centres)
    return Segments(labels, profile, build_personas(profile, cfg.get("personas")))


def refit_trial(cfg: DictConfig, space: Any, trial: Any) -> tuple[Any, Any, dict, np.ndarray]:
    """Refit a finished trial's estimator on the study's data (seeded: the same segments)."""
    specs = OmegaConf.to_container(cfg.algorithm, resolve=True)
    name = algorithms.trial_algorithm(trial)
    module = algorithms.algorithm_module(name, specs[name])
    params = algorithms.trial_params(trial, specs)
    estimator = module.build(params, int(cfg.sweep.seed), space.n_rows)
    with threadpool_limits(1):
        labels = np.asarray(estimator.fit_predict(space.X))
    return module, estimator, params, labels


def write_data_insights(cfg: DictConfig, space: Any, out: Path) -> dict[str, float]:
    """The EDA and choosing-k plots into ``out``; returns the seconds each took.

    They depend on the data alone, not on the trials (see :class:`DataInsights`).
    """
    seconds: dict[str, float] = {}
    title = f"{cfg.dataset.name} / {cfg.features.name}"
    start = time.perf_counter()
    engineered = space.engineer.transform(space.data.frame)
    frame = eda_frame(space.data.frame, engineered, cfg.dataset.get("id_column"))
    kinds = OmegaConf.to_container(cfg.dataset.get("columns") or {}, resolve=True)
    cats = [c for c, spec in kinds.items() if (spec or {}).get("kind") == "category"]
    write_eda_plots(
        out / "eda",
        frame,
        space.X_raw,
        space.columns,
        title,
        box=box_pairs(cfg.dataset),
        categories=cats or None,
    )
    seconds["eda"] = time.perf_counter() - start
    start = time.perf_counter()
    ks = range(int(cfg.sweep.constraints.k_min), int(cfg.sweep.constraints.k_max) + 1)
    curves = k_curves(
        space.X,
        ks,
        int(cfg.sweep.seed),
        int(cfg.sweep.silhouette.curve_sample_size),
        fit_rows=int(cfg.sweep.silhouette.curve_fit_rows),
    )
    write_k_plots(out / "choosing_k", curves, title)
    (out / "choosing_k" / "k_curves.json").write_text(json.dumps(curves, indent=1))
    seconds["choosing_k"] = time.perf_counter() - start
    return seconds


def _draw_data_insights(cfg: DictConfig, space: Any, out: str, parent_pid: int) -> None:
    from segmentation.background import LOWEST_NICENESS, become_background

    become_background(parent_pid, LOWEST_NICENESS)
    seconds = write_data_insights(cfg, space, Path(out))
    (Path(out) / SECONDS_FILE).write_text(json.dumps(seconds))


SECONDS_FILE = "seconds.json"
DATA_INSIGHTS_TAG = "segmentation.data_insights"


class DataInsights:
    """The EDA and choosing-k plots, drawn by a forked process while the trials run.

    They need the data only, and at scale they cost seconds (18 quick fits for the k curves):
    drawn at the end they added about 18 s to a 100,000-row sweep. The process writes files
    only (it never touches the tracking store); :meth:`collect` hands them to the parent run.
    Where forking is not safe (see :func:`segmentation.background.fork_context`) they are
    drawn at the end, as before.
    """

    def __init__(self, cfg: DictConfig, space: Any):
        self.cfg = cfg
        self.space = space
        self._proc: Any = None
        self._dir: tempfile.TemporaryDirectory | None = None
        # Where the plots were drawn: "background" (during the trials) or "inline".
        self.drawn = ""

    def start(self) -> None:
        """Fork the drawing process (call it before any database connection or lock)."""
        from segmentation.background import fork_context

        context = fork_context() if self.cfg.tracking.log_plots else None
        if context is None:
            return
        self._dir = tempfile.TemporaryDirectory(prefix="segmentation-insights-")
        self._proc = context.Process(
            target=_draw_data_insights,
            args=(self.cfg, self.space, self._dir.name, os.getpid()),
            daemon=True,
        )
        self._proc.start()

    def collect(self, out: Path) -> dict[str, float]:
        """Copy the plots into ``out`` (drawing them now if the process did not) and return
        the seconds each took."""
        import shutil

        if self._proc is not None:
            with interrupts.allowed():
                self._proc.join()
            done = Path(self._dir.name) / SECONDS_FILE
            if self._proc.exitcode == 0 and done.exists():
                seconds = json.loads(done.read_text())
                done.unlink()
                shutil.copytree(self._dir.name, out, dirs_exist_ok=True)
                self.close()
                self.drawn = "background"
                return seconds
            self.close()
        self.drawn = "inline"
        return write_data_insights(self.cfg, self.space, out)

    def close(self) -> None:
        """Stop the process if it still runs and remove its files."""
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join()
            self._proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None


@dataclass
class StudyPlots:
    """The study's plots, being drawn into ``out_dir`` by artifact workers (each of
    ``futures`` gives :func:`segmentation.plots.study.draw_study_plots`'s result for a part)."""

    futures: list[Future]
    out_dir: Path

    def log(self, client: MlflowClient, parent_id: str) -> float:
        """Wait for the plots, log them under ``study/`` (with ``skipped.json``, the Optuna
        plots skipped and why) and return the seconds of drawing."""
        seconds, skipped = 0.0, {}
        for future in self.futures:
            interrupts.wait(future)
            drawn = future.result()
            seconds += float(drawn["seconds"])
            skipped.update(drawn["skipped"])
        if skipped:
            (self.out_dir / "skipped.json").write_text(json.dumps(skipped, indent=1))
        client.log_artifacts(parent_id, str(self.out_dir), "study")
        return seconds


def log_sweep_insights(
    cfg: DictConfig,
    client: MlflowClient,
    space: Any,
    best: Any,
    parent_id: str,
    data_insights: DataInsights | None = None,
    fitted: FittedTrial | None = None,
    study_plots: StudyPlots | None = None,
) -> dict[str, float]:
    """Log the parent's plots, the best trial's personas and stability, and the report
    (the EDA and choosing-k plots from ``data_insights`` when given; the best trial's fit
    from ``fitted`` when it is that trial, else it is fitted again; the study's plots from
    ``study_plots``, drawn meanwhile).

    Returns the seconds each part took.
    """
    seconds: dict[str, float] = {}
    best_run = best.user_attrs.get("mlflow_run_id")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        if cfg.tracking.log_plots:
            drawn = data_insights or DataInsights(cfg, space)  # not started: draws now
            seconds.update(drawn.collect(out))
            client.set_tag(parent_id, DATA_INSIGHTS_TAG, drawn.drawn)
        start = time.perf_counter()
        if fitted is not None and fitted.number == best.number:
            module, params, segments = fitted.module, fitted.params, fitted.segments
        else:  # a resumed study's or another worker's trial
            module, estimator, params, labels = refit_trial(cfg, space, best)
            segments = describe_segments(cfg, space, labels, module, estimator)
        segments.write(out / "segments")
        ari = configured_stability(cfg, module, params, space.X, segments.labels)
        seconds["personas_stability"] = time.perf_counter() - start
        client.log_artifacts(parent_id, tmp)
        if best_run:
            client.log_artifacts(best_run, str(out / "segments"), "segments")
            tracking.log_batch(client, best_run, metrics={"stability_ari": ari})
    tracking.log_batch(client, parent_id, metrics={"stability_ari": ari})
    if study_plots is not None:  # the report embeds them
        seconds["study_plots"] = study_plots.log(client, parent_id)
    start = time.perf_counter()
    from segmentation.report import build_report

    client.log_text(parent_id, build_report(client, parent_id), "report.html")
    seconds["report"] = time.perf_counter() - start
    return seconds


def log_run_personas(cfg: DictConfig, client: MlflowClient, run_id: str) -> pd.DataFrame:
    """Persona table of any trial run (a sweep run: its best trial), logged to that run.

    The run's own fitted model segments the configured data, so the names match its model.
    """
    import mlflow

    from segmentation.sweep import prepare_space

    run = client.get_run(run_id)
    if run.data.tags.get(tracking.ROLE_TAG) == "sweep":
        run_id = run.data.tags["best_run_id"]
        run = client.get_run(run_id)
    model_id = run.data.tags.get(tracking.MODEL_ID_TAG)
    space = prepare_space(cfg)
    model = mlflow.pyfunc.load_model(f"models:/{model_id}").unwrap_python_model()
    clusterer = model.pipeline[-1]
    fitted = getattr(clusterer, "labels_", None)
    labels = (
        np.asarray(fitted)
        if fitted is not None and len(fitted) == space.n_rows
        else np.asarray(clusterer.predict(space.X))
    )
    specs = OmegaConf.to_container(cfg.algorithm, resolve=True)
    name = run.data.params.get("algorithm", "")
    module = algorithms.algorithm_module(name, specs.get(name, {}))
    segments = describe_segments(cfg, space, labels, module, clusterer)
    with tempfile.TemporaryDirectory() as tmp:
        segments.write(Path(tmp))
        client.log_artifacts(run_id, tmp, "segments")
    return segments.personas
