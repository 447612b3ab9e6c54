"""``make bench``: what tracking costs, and how the sweep holds up at a million customers.

Sections (``--only small,scale,workers,stability`` by default; ``seeds``, ``spark``,
``issue23``, ``spark-prepare`` on request):

- ``small`` (issue 2): the default 50-trial Mall sweep with full tracking, run through the CLI
  in a fresh process (process start to registered model), against the same trials bare
  (Optuna + scikit-learn with the same seed and objective, nothing logged).
- ``scale`` (issue 6): a 20-trial KMeans/GMM sweep on 1,000,000 synthetic customers with six
  features and full tracking (wall time, peak RSS, per-trial split into fit, metrics, plots and
  logging), and tracked against bare at 100,000 rows.
- ``workers`` (issue 7): trials per minute with 1 and 2 worker processes on 100,000 synthetic
  customers, with plots and models off and with full tracking.
- ``seeds`` (issue 16): the default sweep on the real Mall file (``DATA_DIR``) for the default
  seed and 10 others: how many reach the known optimum.
- ``stability`` (issue 16): a trial's fit against its stability refits at 200, 100,000 and
  1,000,000 rows.
- ``issue23`` (on request): the default sweep on the real Mall file (``DATA_DIR``), process
  start to registered model, against its floor (the same trials bare) and, with ``--before
  DIR``, against another checkout.
- ``spark-prepare`` (issue 23, on request, after ``make spark-install``): the Spark preparation
  of ``--prepare-rows`` generated retail rows, this tree against ``--before``, medians of
  ``--prepare-repeats`` (``spark_bench.section_prepare``).
- ``spark`` (issue 18, on request, after ``make spark-install``): scoring rows per second and a
  5-trial KMeans sweep, Spark against local, at ``--spark-rows`` and ten times that
  (``spark_bench.py``).
- ``scoring`` (issue 23, on request): local scoring of ``--scoring-rows`` retail rows against
  its floor (read + the model's predict + write), ``--scoring-big-rows`` within bounded memory,
  a 10-row predict and a wrong option, beside the code of ``--before-src``
  (``scoring_bench.py``).

Figures are medians of ``--repeats`` runs, measured side by side in one invocation; they are
printed and written into ``bench-results/RESULTS.md`` (only the sections that ran are replaced).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib
import importlib.metadata
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf
from optuna.trial import TrialState
from scoring_bench import child_env, run_command
from threadpoolctl import threadpool_limits

from segmentation import algorithms
from segmentation.config import compose, ensure_root_env, project_root
from segmentation.evaluation.constraints import constraint_values, degenerate
from segmentation.evaluation.metrics import cluster_metrics, model_metrics
from segmentation.evaluation.segment_stability import stability_summary
from segmentation.features.space import SpaceConfig, prepare_space
from segmentation.study.definition import algorithm_specs, make_sampler
from segmentation.study.storage import study_storage
from segmentation.study.sweep import enqueue_starts, run_sweep
from segmentation.tracking.console import quiet_console

SECTIONS = (
    "small",
    "scale",
    "workers",
    "seeds",
    "stability",
    "spark",
    "scoring",
    "issue23",
    "spark-prepare",
)
CHILD_MODES = ("tracked", "bare")
SPLIT_METRICS = ("fit_seconds", "metrics_seconds", "plots_seconds", "logging_seconds")
SCALE_OVERRIDES = ("features=engineered", "algorithm=[kmeans,gmm]", "experiment_name=bench_scale")


# --- the bare sweep: the same trials, nothing logged ---------------------------------------


def bare_sweep(cfg: Any) -> dict[str, Any]:
    """Run the config's trials with Optuna and scikit-learn only (same seed and objective).

    Returns the wall time of the optimisation, the best value and its parameters.
    """

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = prepare_space(SpaceConfig.of(cfg))
    specs = algorithm_specs(cfg.algorithm)
    constraints = OmegaConf.to_container(cfg.sweep.constraints, resolve=True)
    seed = int(cfg.sweep.seed)

    def objective(trial: optuna.Trial) -> float:
        name, params = algorithms.suggest(trial, specs)
        try:
            estimator = algorithms.build(name, specs[name], params, seed, space.n_rows)
            with threadpool_limits(1):
                labels = np.asarray(estimator.fit_predict(space.X))
            metrics, _, _ = cluster_metrics(
                space.X,
                labels,
                sample_above=int(cfg.sweep.silhouette.sample_above),
                sample_size=int(cfg.sweep.silhouette.sample_size),
                seed=seed,
            )
            metrics.update(model_metrics(estimator, space.X))
        except Exception as exc:  # as in the tracked sweep: a fit error prunes the trial
            raise optuna.TrialPruned(str(exc)) from None
        reason = degenerate(metrics)
        if reason:
            raise optuna.TrialPruned(reason)
        # As in the tracked sweep: stability of every scored trial, constraints for the sampler.
        metrics["stability_ari"], _ = stability_summary(
            lambda: algorithms.build(name, specs[name], params, seed, space.n_rows),
            space.X,
            labels,
            bootstraps=int(cfg.sweep.stability.bootstraps),
            seed=seed,
            sample_rows=cfg.sweep.stability.get("sample_rows"),
            on_sample=bool(specs[name].get("stability_on_sample", False)),
        )
        for key, value in constraint_values(metrics, constraints).items():
            trial.set_constraint(key, value)
        return float(metrics["silhouette"])

    study = optuna.create_study(
        direction="maximize", sampler=make_sampler(cfg.sampler, cfg.sweep.seed)
    )
    start = time.perf_counter()
    # As the tracked sweep starts a new study.
    enqueue_starts(cfg.algorithm, cfg.sweep, space, study)
    study.optimize(objective, n_trials=int(cfg.sweep.n_trials), gc_after_trial=False)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "best_value": study.best_value, "best_params": study.best_params}


def trials_seconds(client: Any, runs: Sequence[Any]) -> float:
    """The trials alone: from the first trial run's start until the last one ends or its plots
    and model are logged (an artifact process logs ``logging_seconds`` last)."""
    end = max(r.info.end_time for r in runs)
    for r in runs:
        for m in client.get_metric_history(r.info.run_id, "logging_seconds"):
            end = max(end, m.timestamp)
    return (end - min(r.info.start_time for r in runs)) / 1000


def tracked_summary(cfg: Any, result: Any) -> dict[str, Any]:
    """Sweep wall time (the parent run's duration) and per-trial time splits from the store."""

    client = MlflowClient(str(cfg.paths.tracking_uri))
    parent = client.get_run(result.parent_run_id)
    children = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"
    )
    splits = {
        key: statistics.median(r.data.metrics[key] for r in children if key in r.data.metrics)
        for key in SPLIT_METRICS
        if any(key in r.data.metrics for r in children)
    }
    estimators = sorted({r.data.params.get("estimator", "?") for r in children})
    insights = {
        k[len("insights_") : -len("_seconds")]: v
        for k, v in parent.data.metrics.items()
        if k.startswith("insights_") and k.endswith("_seconds")
    }
    logged = sum(1 for r in children if r.outputs and r.outputs.model_outputs)
    registered_at = math.nan  # epoch seconds: the registry's own time of the version
    if result.registered_version is not None:
        name = str(cfg.tracking.registered_model_name)
        version = client.get_model_version(name, result.registered_version)
        registered_at = version.creation_timestamp / 1000
    return {
        "seconds": (parent.info.end_time - parent.info.start_time) / 1000,
        "best_value": result.best_trial.value,
        "best_params": result.best_trial.params,
        "trials": len(children),
        "models_logged": logged,
        "registered_version": result.registered_version,
        "registered_at": registered_at,
        "splits": splits,
        "estimators": estimators,
        "trials_seconds": trials_seconds(client, children),
        "insights": insights,
    }


def child_main(mode: str, out: Path, overrides: Sequence[str]) -> None:
    """``--child``: one sweep in this fresh process; the result as JSON into ``out``."""

    cfg = compose(list(overrides))
    summary = bare_sweep(cfg) if mode == "bare" else tracked_summary(cfg, run_sweep(cfg))
    out.write_text(json.dumps(summary, default=str), encoding="utf-8")


# --- running children ------------------------------------------------------------------------


def run_sweep_child(mode: str, store: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """A tracked or bare sweep in a fresh ``python benchmarks/bench.py --child`` process."""
    store.mkdir(parents=True, exist_ok=True)
    out = store / f"{mode}.json"
    args = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        mode,
        "--child-out",
        str(out),
        "--",
        f"paths.mlruns_dir={store}",
        "sweep.progress=false",
        *overrides,
    ]
    proc = run_command(args, child_env(project_root()))
    return {**json.loads(out.read_text(encoding="utf-8")), **proc}


def run_cli_sweep(
    store: Path, overrides: Sequence[str], env: dict[str, str] | None = None
) -> dict[str, Any]:
    """The real CLI (``segmentation-sweep``) in a fresh process: start to registered model
    (``env``: the process's environment, e.g. another tree's ``src`` on ``PYTHONPATH``)."""

    store.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable,
        "-c",
        "from segmentation.cli import sweep_main; sweep_main()",
        f"paths.mlruns_dir={store}",
        f"hydra.run.dir={store}/hydra",
        "sweep.progress=false",
        *overrides,
    ]
    proc = run_command(args, env or child_env(project_root()))
    client = MlflowClient(f"sqlite:///{store}/mlflow.db")
    parent = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        "tags.`segmentation.role` = 'sweep'",
    )[0]
    versions = client.search_model_versions()
    return {
        **proc,
        "seconds": (parent.info.end_time - parent.info.start_time) / 1000,
        # The registry's own timestamp of the version: process start to registered model.
        "to_registered": (
            versions[0].creation_timestamp / 1000 - proc["started_at"] if versions else math.nan
        ),
        "best_silhouette": parent.data.metrics.get("best_silhouette"),
    }


# --- sections --------------------------------------------------------------------------------


def _median(rows: Sequence[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in rows)


def tracked_and_bare(
    name: str,
    repeats: int,
    run_tracked: Callable[[int], dict[str, Any]],
    run_bare: Callable[[int], dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run the tracked and the bare sweep ``repeats`` times, alternating (so a drift of the
    machine's load hits both alike); print each pair as it ends."""
    tracked: list[dict[str, Any]] = []
    bare: list[dict[str, Any]] = []
    for i in range(repeats):
        tracked.append(run_tracked(i))
        bare.append(run_bare(i))
        print(
            f"  {name} repeat {i + 1}/{repeats}: tracked {tracked[-1]['seconds']:.1f}s "
            f"(process {tracked[-1]['wall']:.1f}s), bare {bare[-1]['seconds']:.2f}s",
            flush=True,
        )
    return tracked, bare


def section_small(tmp: Path, repeats: int, overrides: Sequence[str] = ()) -> str:
    """Issue 2: the default 50-trial Mall sweep, tracked (CLI) against bare (``overrides``
    apply to both, e.g. to compare with an older default)."""
    tracked, bare = tracked_and_bare(
        "small",
        repeats,
        lambda i: run_cli_sweep(tmp / f"small-{i}", overrides),
        lambda i: run_sweep_child("bare", tmp / f"small-bare-{i}", overrides),
    )
    t, b = _median(tracked, "seconds"), _median(bare, "seconds")
    wall = _median(tracked, "wall")
    registered = _median(tracked, "to_registered")
    n = 50
    same = {round(r["best_silhouette"], 6) for r in tracked} == {
        round(r["best_value"], 6) for r in bare
    }
    return "\n".join(
        [
            f"Default 50-trial Mall sweep (`make sweep`), median of {repeats} runs"
            + (f", with `{' '.join(overrides)}`." if overrides else "."),
            "",
            "| measure | value | target |",
            "|---|---|---|",
            "| process start to registered model (CLI, fresh process; the registry's time of "
            f"the version) | {registered:.1f} s | <= 12 s |",
            f"| process start to exit (summary, personas, report done) | {wall:.1f} s | |",
            f"| tracked sweep (parent run start to end) | {t:.2f} s | |",
            f"| bare sweep (Optuna + scikit-learn, nothing logged) | {b:.2f} s | |",
            f"| tracked / bare | {t / b:.1f}x | |",
            f"| tracking overhead per trial | {(t - b) / n:.3f} s | <= 0.12 s |",
            f"| same best silhouette tracked and bare | {'yes' if same else 'no'} | |",
            "",
            "Runs (tracked s / registered s / process s / bare s): "
            + ", ".join(
                f"{r['seconds']:.1f}/{r['to_registered']:.1f}/{r['wall']:.1f}/{s['seconds']:.2f}"
                for r, s in zip(tracked, bare, strict=True)
            ),
        ]
    )


def _commit(root: Path | None) -> str:
    """The short commit a checkout is at (for the table's labels)."""
    done = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return done.stdout.strip() or str(root)


def section_default(tmp: Path, repeats: int, before_root: Path | None) -> str:
    """Issue 23: the default sweep (`make sweep`, real Mall file from ``DATA_DIR``) from process
    start to registered model, this tree against its floor (the same trials bare: fits,
    metrics and stability, nothing logged) and against the tree at ``before_root``, each in a
    fresh process, alternating."""
    from segmentation.tracking.store import empty_store_template

    empty_store_template()  # built once per MLflow version: a user's first sweep builds it
    before_env = None
    if before_root is not None:
        before_env = child_env(before_root, before_root / "src")
    rows: dict[str, list[dict[str, Any]]] = {"before": [], "after": [], "bare": []}
    for i in range(repeats):
        if before_env is not None:
            rows["before"].append(run_cli_sweep(tmp / f"default-before-{i}", (), before_env))
        rows["after"].append(run_cli_sweep(tmp / f"default-after-{i}", ()))
        rows["bare"].append(run_sweep_child("bare", tmp / f"default-bare-{i}", ()))
        print(
            f"  default repeat {i + 1}/{repeats}: "
            + (f"before {rows['before'][-1]['to_registered']:.1f}s, " if rows["before"] else "")
            + f"after {rows['after'][-1]['to_registered']:.1f}s, "
            f"bare {rows['bare'][-1]['seconds']:.2f}s (process {rows['bare'][-1]['wall']:.1f}s)",
            flush=True,
        )
    after = _median(rows["after"], "to_registered")
    floor = _median(rows["bare"], "wall")
    trials = _median(rows["bare"], "seconds")
    lines = [
        f"The default sweep (`make sweep DATA_DIR=...`: 50 trials of the real Mall file), "
        f"process start to registered model (the registry's time of the version), median of "
        f"{repeats}, each in a fresh process with a new store; the floor is the same trials "
        "bare in a fresh process (Optuna + scikit-learn: fits, metrics, stability; nothing "
        "logged), start to exit.",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| after: process start to registered model | {after:.1f} s | <= 15 s idle |",
        f"| after: process start to exit | {_median(rows['after'], 'wall'):.1f} s | |",
        f"| floor: bare sweep, process start to exit | {floor:.1f} s | |",
        f"| floor: its trials alone | {trials:.2f} s | |",
        f"| after / floor | {after / floor:.2f}x | |",
    ]
    if rows["before"]:
        before = _median(rows["before"], "to_registered")
        lines.insert(
            4,
            f"| before ({_commit(before_root)}): process start to registered model "
            f"| {before:.1f} s | |",
        )
        lines += [
            f"| before / floor | {before / floor:.2f}x | |",
            f"| after / before | {after / before:.2f}x | |",
        ]
    same = {round(r["best_silhouette"], 6) for r in rows["after"] + rows["before"]}
    lines += [
        f"| best silhouette (every run) | {', '.join(f'{v:.4f}' for v in sorted(same))} | |",
        "",
        "Runs (s, to registered model / process): "
        + "; ".join(
            f"{label} "
            + ", ".join(f"{r['to_registered']:.1f}/{r['wall']:.1f}" for r in rows[label])
            for label in ("before", "after")
            if rows[label]
        )
        + "; bare (trials / process) "
        + ", ".join(f"{r['seconds']:.2f}/{r['wall']:.1f}" for r in rows["bare"])
        + ".",
    ]
    return "\n".join(lines)


def section_scale(
    tmp: Path, repeats: int, rows: int, trials: int, ratio_rows: int, scale_bare: bool
) -> str:
    """Issue 6: 1M customers x 6 features, and tracked against bare at ``ratio_rows``."""
    common = [*SCALE_OVERRIDES, f"sweep.n_trials={trials}", f"paths.data_dir={tmp}/no-data"]
    big = run_sweep_child("tracked", tmp / "scale-big", [*common, f"dataset.synthetic_rows={rows}"])
    print(
        f"  scale {rows} rows: process {big['wall']:.1f}s, peak RSS {big['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    big_bare = None
    if scale_bare:
        big_bare = run_sweep_child(
            "bare", tmp / "scale-big-bare", [*common, f"dataset.synthetic_rows={rows}"]
        )
    ratio = [*common, f"dataset.synthetic_rows={ratio_rows}"]
    tracked, bare = tracked_and_bare(
        f"scale {ratio_rows} rows",
        repeats,
        lambda i: run_sweep_child("tracked", tmp / f"scale-ratio-{i}", ratio),
        lambda i: run_sweep_child("bare", tmp / f"scale-ratio-bare-{i}", ratio),
    )
    t, b = _median(tracked, "seconds"), _median(bare, "seconds")
    tt = _median(tracked, "trials_seconds")
    split = big["splits"]
    lines = [
        f"{trials}-trial KMeans/GMM sweep (`{' '.join(SCALE_OVERRIDES[:2])}`) on synthetic Mall "
        "customers with 6 features, full tracking (params, metrics, 5 plots, model with "
        "signature and input example per trial).",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| {rows:,} rows: process start to registered model "
        f"| {big['registered_at'] - big['started_at']:.1f} s | <= 180 s |",
        f"| {rows:,} rows: process start to exit | {big['wall']:.1f} s | |",
        f"| {rows:,} rows: sweep (parent run) | {big['seconds']:.1f} s | |",
        f"| {rows:,} rows: peak RSS (largest process) | {big['peak_rss_mb']:.0f} MB | <= 4096 MB |",
        f"| {rows:,} rows: trials / models logged | {big['trials']} / {big['models_logged']} | |",
        f"| {rows:,} rows: estimators that ran | {', '.join(big['estimators'])} | |",
    ]
    if big_bare is not None:
        lines.append(
            f"| {rows:,} rows: bare sweep | {big_bare['seconds']:.1f} s "
            f"(tracked/bare {big['seconds'] / big_bare['seconds']:.2f}x) | |"
        )
    lines += [
        f"| {ratio_rows:,} rows: tracked sweep (median of {repeats}) | {t:.1f} s | |",
        f"| {ratio_rows:,} rows: bare sweep (median of {repeats}) | {b:.1f} s | |",
        f"| {ratio_rows:,} rows: tracked / bare | {t / b:.2f}x | <= 1.3 |",
        f"| {ratio_rows:,} rows: the trials alone, tracked (median of {repeats}) "
        f"| {tt:.1f} s ({tt / b:.2f}x bare) | |",
        "",
        f"Median per trial at {rows:,} rows: "
        + ", ".join(f"{k.replace('_seconds', '')} {v:.2f} s" for k, v in split.items())
        + ". Plots and model logging run in worker processes, overlapping the next fit, so "
        "they add to the wall time only where they outlast it.",
        "",
        f"After the trials, the parent run's insights at {rows:,} rows: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in big["insights"].items())
        + f"; at {ratio_rows:,} rows (last run): "
        + ", ".join(f"{k} {v:.1f} s" for k, v in tracked[-1]["insights"].items())
        + ".",
    ]
    return "\n".join(lines)


# --- workers: trials per minute with 1 and 2 worker processes --------------------------------

# "fits": plots and models off, so the figure is the parallelism of fitting and scoring;
# "full": the default tracking, what `make sweep WORKERS=2` does.
MODES = {
    "fits": ("tracking.log_plots=false", "tracking.log_models=false"),
    "full": (),
}


def trials_per_minute(study: optuna.Study, tracking_uri: str) -> float:
    """Finished trials per minute, over :func:`trials_seconds`."""

    client = MlflowClient(tracking_uri)
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    runs = [client.get_run(t.user_attrs["mlflow_run_id"]) for t in trials]
    return len(trials) / max(trials_seconds(client, runs), 1e-9) * 60.0


def sweep_throughput(workers: int, rows: int, n_trials: int, overrides: tuple[str, ...]) -> float:
    """One KMeans/GMM sweep in a fresh temporary store; its trials per minute."""

    with tempfile.TemporaryDirectory() as tmp:
        cfg = compose(
            [
                f"paths.mlruns_dir={Path(tmp)}",
                f"paths.data_dir={Path(tmp) / 'no-data'}",
                f"dataset.synthetic_rows={rows}",
                "algorithm=[kmeans,gmm]",
                f"sweep.n_trials={n_trials}",
                f"sweep.workers={workers}",
                "sweep.progress=false",
                *overrides,
            ]
        )
        result = run_sweep(cfg)
        study = optuna.load_study(
            study_name=result.study_name,
            storage=study_storage(cfg.storage, cfg.sweep, cfg.paths, str(cfg.experiment_name)),
        )
        return trials_per_minute(study, str(cfg.paths.tracking_uri))


def bench_workers(n_trials: int = 16, rows: int = 100_000) -> dict[str, Any]:
    """Trials per minute with 1 and 2 workers, for each of :data:`MODES`.

    Worker start-up and the final registration are left out (first trial start to last trial
    end). Returns ``{"rows", "n_trials", "<mode>": {"tpm_1", "tpm_2", "speedup"}}``.
    """
    figures: dict[str, Any] = {"rows": rows, "n_trials": n_trials}
    for mode, overrides in MODES.items():
        tpm = {w: sweep_throughput(w, rows, n_trials, overrides) for w in (1, 2)}
        figures[mode] = {"tpm_1": tpm[1], "tpm_2": tpm[2], "speedup": tpm[2] / tpm[1]}
        print(
            f"  workers ({mode}): {tpm[1]:.1f} trials/min with 1, {tpm[2]:.1f} with 2",
            flush=True,
        )
    return figures


def workers_table(figures: dict[str, Any]) -> str:
    """The results as a Markdown section."""
    lines = [
        f"{figures['n_trials']}-trial KMeans/GMM sweep on {figures['rows']:,} synthetic Mall "
        "customers, trials per minute from the first trial's start until the last trial's "
        "plots and model are logged. With full tracking one worker already keeps both cores "
        "busy (2 artifact processes draw and log while it fits; with 2 workers on 2 cores "
        "each worker draws inline), so the workers' gain shows in the first row.",
        "",
        "| tracking | 1 worker | 2 workers | speed-up | target |",
        "|---|---|---|---|---|",
    ]
    labels = {"fits": "params and metrics only", "full": "full (plots and models)"}
    for mode in MODES:
        f = figures[mode]
        lines.append(
            f"| {labels[mode]} | {f['tpm_1']:.1f} | {f['tpm_2']:.1f} | {f['speedup']:.2f}x "
            "| >= 1.7x |"
        )
    return "\n".join(lines)


def section_workers() -> str:
    """Issue 7: trials per minute with 1 and 2 workers at 100,000 rows."""
    return workers_table(bench_workers())


# --- seeds: the known Mall optimum over seeds; stability's cost --------------------------------

# Silhouette of KMeans k=5 on the real Mall file's income and spending (the published figure).
MALL_OPTIMUM = 0.554


def section_seeds(tmp: Path) -> str:
    """Issue 16: the default 50-trial sweep on the real Mall file for the default seed and 10
    others (the same objective as the tracked sweep, nothing logged)."""
    data_dir = Path(os.environ.get("DATA_DIR", project_root() / "data" / "raw")).resolve()
    if not (data_dir / "Mall_Customers.csv").is_file():
        return f"Skipped: {data_dir}/Mall_Customers.csv not found (set DATA_DIR)."
    seeds = [42, *range(10)]
    best = {}
    for seed in seeds:
        run = run_sweep_child(
            "bare", tmp / f"seed-{seed}", [f"sweep.seed={seed}", f"paths.data_dir={data_dir}"]
        )
        best[seed] = run["best_value"]
        print(f"  seed {seed}: best silhouette {best[seed]:.4f}", flush=True)
    others = [s for s in seeds if s != 42]
    reached = sum(best[s] >= MALL_OPTIMUM for s in others)
    return "\n".join(
        [
            "Default sweep (`make sweep DATA_DIR=...`: 50 trials, all algorithms, stability and "
            "constraints as configured) on the real Mall file; best silhouette per seed.",
            "",
            "| seed | best silhouette | >= 0.554 |",
            "|---|---|---|",
            *[
                f"| {s}{' (default)' if s == 42 else ''} | {best[s]:.4f} | "
                f"{'yes' if best[s] >= MALL_OPTIMUM else 'no'} |"
                for s in seeds
            ],
            "",
            f"Other seeds reaching the optimum: **{reached} of {len(others)}** (target 9); "
            f"default seed: {'yes' if best[42] >= MALL_OPTIMUM else 'no'}.",
        ]
    )


def section_stability(repeats: int) -> str:
    """Issue 16: a KMeans k=5 trial's fit and its stability (bootstrap refits as configured)
    at 200, 100,000 and 1,000,000 synthetic customers (6 features)."""
    cfg = compose(["features=engineered", "paths.data_dir=/nonexistent"])
    lines = [
        f"KMeans k=5 (n_init 4) on synthetic Mall customers, 6 features; stability = "
        f"{cfg.sweep.stability.bootstraps} bootstrap refits of at most "
        f"{cfg.sweep.stability.sample_rows} rows (ARI and per-segment Jaccard from the same "
        f"refits); median of {repeats}.",
        "",
        "| rows | fit | stability | stability / fit |",
        "|---|---|---|---|",
    ]
    for rows in (200, 100_000, 1_000_000):
        space = prepare_space(
            SpaceConfig.of(compose(["features=engineered", f"dataset.synthetic_rows={rows}"]))
        )

        build = partial(
            algorithms.build,
            "kmeans",
            {"estimator": {"_target_": "segmentation.algorithms.kmeans.build"}},
            {"n_clusters": 5, "n_init": 4},
            0,
            rows,
        )

        fits, stabilities = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            with threadpool_limits(1):
                labels = build().fit_predict(space.X)
            fits.append(time.perf_counter() - start)
            start = time.perf_counter()
            stability_summary(
                build,
                space.X,
                labels,
                bootstraps=int(cfg.sweep.stability.bootstraps),
                seed=0,
                sample_rows=cfg.sweep.stability.sample_rows,
            )
            stabilities.append(time.perf_counter() - start)
        fit, stab = statistics.median(fits), statistics.median(stabilities)
        print(f"  stability {rows} rows: fit {fit:.3f}s, stability {stab:.3f}s", flush=True)
        lines.append(f"| {rows:,} | {fit:.3f} s | {stab:.3f} s | {stab / fit:.2f}x |")
    return "\n".join(lines)


# --- the report ------------------------------------------------------------------------------


def machine() -> str:
    """nproc, CPU model, memory, Python and library versions, date."""
    cpu = "unknown"
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
        cpu = re.search(r"model name\s*:\s*(.+)", text).group(1).strip()
    except (OSError, AttributeError):
        pass
    mem = "unknown"
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f"{kb / 1024 / 1024:.1f} GB"
    except (OSError, AttributeError):
        pass
    libs = []
    for name in ("mlflow", "optuna", "scikit-learn", "numpy", "pandas", "matplotlib"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            libs.append(f"{name} {importlib.metadata.version(name)}")
    # Other work on the machine slows every figure; the load average says how busy it was.
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs ({cpu}), {mem} RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; {', '.join(libs)}; load average {load} at start"
    )


TITLES = {
    "small": "Speed: the default sweep, tracked against bare (issue 2)",
    "scale": "Scale: a million customers (issue 6)",
    "workers": "Parallel workers (issue 7)",
    "seeds": "The default sweep finds the known Mall optimum (issue 16)",
    "stability": "What stability costs per trial (issue 16)",
    "spark": "Spark against the local engine (issue 18)",
    "scoring": "Issue 23: scoring, streaming and quick commands",
    "issue23": "Issue 23: the default sweep and Spark preparation",
    "spark-prepare": "Issue 23: Spark preparation in one pass over the rows",
}


def write_results(path: Path, results: dict[str, str]) -> None:
    """Replace the sections that ran in ``path``, keeping the others."""
    text = (
        path.read_text(encoding="utf-8")
        if path.exists()
        else (
            "# Benchmark results\n\nWritten by `make bench` (`python benchmarks/bench.py`); "
            "each section is replaced when it runs again.\n"
        )
    )
    stamp = f"Measured {dt.date.today().isoformat()} on {machine()}."
    for name, body in results.items():
        block = (
            f"<!-- section:{name} -->\n## {TITLES[name]}\n\n{stamp}\n\n{body}\n"
            f"<!-- /section:{name} -->"
        )
        pattern = re.compile(rf"<!-- section:{name} -->.*?<!-- /section:{name} -->", re.S)
        text = (
            pattern.sub(lambda _m, b=block: b, text)
            if pattern.search(text)
            else (text.rstrip("\n") + "\n\n" + block + "\n")
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``make bench`` (``ARGS="--only small --repeats 3"``)."""
    parser = argparse.ArgumentParser(
        prog="python benchmarks/bench.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--only",
        default="small,scale,workers,stability",
        help=f"comma-separated sections of {', '.join(SECTIONS)} (seeds needs DATA_DIR)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per measure (median)")
    parser.add_argument(
        "--small-args", default="", help="small section: config overrides of both sweeps"
    )
    parser.add_argument(
        "--before",
        type=Path,
        default=None,
        help="issue23 and spark-prepare sections: a checkout of the tree to compare with",
    )
    parser.add_argument(
        "--prepare-rows",
        type=int,
        default=1_000_000,
        help="spark-prepare section: rows of the Spark preparation",
    )
    parser.add_argument("--prepare-repeats", type=int, default=1)
    parser.add_argument("--scale-rows", type=int, default=1_000_000)
    parser.add_argument("--scale-trials", type=int, default=20)
    parser.add_argument("--ratio-rows", type=int, default=100_000)
    parser.add_argument(
        "--spark-rows", type=int, default=1_000_000, help="spark section: this and 10 times it"
    )
    parser.add_argument("--scoring-rows", type=int, default=1_000_000)
    parser.add_argument("--scoring-big-rows", type=int, default=10_000_000)
    parser.add_argument("--scoring-repeats", type=int, default=1, help="runs of 1M-row scoring")
    parser.add_argument("--before-rows", type=int, default=200_000)
    parser.add_argument(
        "--before-src",
        type=Path,
        default=None,
        help="scoring section: the src/ folder of a checkout of the code before, measured beside",
    )
    parser.add_argument(
        "--scale-repeats",
        type=int,
        default=1,
        help="runs of the tracked/bare ratio at --ratio-rows",
    )
    parser.add_argument(
        "--scale-bare", action="store_true", help="also run the bare sweep at --scale-rows"
    )
    parser.add_argument(
        "--results", type=Path, default=None, help="results file (default bench-results/RESULTS.md)"
    )
    parser.add_argument("--child", choices=CHILD_MODES, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("overrides", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child, args.child_out, args.overrides)
        return

    ensure_root_env()
    quiet_console()
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    results: dict[str, str] = {}
    print(f"Machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="segmentation-bench-") as tmp:
        for name in sections:
            print(f"== {TITLES[name]}", flush=True)
            if name == "small":
                results[name] = section_small(Path(tmp), args.repeats, shlex.split(args.small_args))
            elif name == "scale":
                results[name] = section_scale(
                    Path(tmp),
                    args.scale_repeats,
                    args.scale_rows,
                    args.scale_trials,
                    args.ratio_rows,
                    args.scale_bare,
                )
            elif name == "issue23":
                results[name] = section_default(Path(tmp), args.repeats, args.before)
            elif name == "spark-prepare":
                # pyspark is an optional extra (make spark-install).
                from spark_bench import section_prepare

                results[name] = section_prepare(
                    args.prepare_rows, args.before, args.prepare_repeats
                )
            elif name == "seeds":
                results[name] = section_seeds(Path(tmp))
            elif name == "stability":
                results[name] = section_stability(args.repeats)
            elif name == "spark":
                # pyspark is an optional extra (make spark-install): imported for this section only.
                from spark_bench import section_spark

                results[name] = section_spark(
                    scoring_rows=(args.spark_rows, 10 * args.spark_rows),
                    sweep_rows=(args.spark_rows, 10 * args.spark_rows),
                    local_sweep_max=args.spark_rows,
                    # The local route holds the table in memory: 10 million retail rows need
                    # about 30 GB.
                    local_scoring_max=args.spark_rows,
                )
            elif name == "scoring":
                from scoring_bench import section_scoring

                results[name] = section_scoring(
                    Path(tmp),
                    args.repeats,
                    args.scoring_rows,
                    args.scoring_big_rows,
                    args.before_src.resolve() if args.before_src else None,
                    args.before_rows,
                    args.scoring_repeats,
                )
            else:
                results[name] = section_workers()
            print(results[name], flush=True)
    path = args.results or project_root() / "bench-results" / "RESULTS.md"
    write_results(path, results)
    print(f"Results written to {path}", flush=True)


if __name__ == "__main__":
    main()
