"""A trial's logging, plots and model, done off the sweep's main process.

Drawing a trial's figures and logging a pyfunc model cost several times a small fit, and its
params, metrics and files are several store writes. Worker processes do that work for trial n
while the main process fits trial n+1; the main process only creates the run and the trial's
LoggedModel, so the model URI is known at once. :meth:`ArtifactWriter.wait` returns when every
job is logged, so a sweep never ends with work outstanding. Two workers (the default) keep up
with small fits, where drawing and logging outlast the fit. At the end of a sweep they also
draw the study plots (:meth:`ArtifactWriter.call`).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segmentation import interrupts
from segmentation.plots import MAX_POINTS, subsample

# Jobs waiting per worker at most; beyond that the main process waits (bounded memory).
PENDING_PER_WORKER = 2


@dataclass
class TrialArtifacts:
    """What the worker needs for one trial: plot inputs capped at ``MAX_POINTS`` rows."""

    tracking_uri: str
    run_id: str
    X_raw: np.ndarray
    X_scaled: np.ndarray
    labels: np.ndarray
    sizes: dict[int, int]
    names: list[str]
    silhouette_values: np.ndarray
    silhouette_labels: np.ndarray
    silhouette: float
    title: str
    log_plots: bool
    profile: pd.DataFrame | None = None
    personas: dict[int, str] | None = None
    pipeline: Any = None
    input_example: pd.DataFrame | None = None
    model_id: str | None = None
    main_logging_seconds: float = 0.0
    # The run's params, metrics and tags, and its dataset input.
    params: dict[str, Any] | None = None
    metrics: dict[str, float] | None = None
    tags: dict[str, Any] | None = None
    dataset_input: Any = None
    # A run that has (or will soon have) the very same plots: they are copied from it.
    plots_from: str | None = None


def trial_artifacts(
    tracking_uri: str,
    run_id: str,
    X_raw: np.ndarray,
    X_scaled: np.ndarray,
    labels: np.ndarray,
    names: list[str],
    silhouette_values: np.ndarray,
    silhouette_labels: np.ndarray,
    silhouette: float,
    title: str,
    log_plots: bool,
    seed: int = 0,
    profile: pd.DataFrame | None = None,
    personas: dict[int, str] | None = None,
) -> TrialArtifacts:
    """A job with every per-row input subsampled, so its cost is flat in the number of rows."""
    idx = subsample(len(labels), MAX_POINTS, seed)
    values, counts = np.unique(labels, return_counts=True)
    sil_idx = subsample(len(silhouette_values), MAX_POINTS, seed)
    return TrialArtifacts(
        tracking_uri=tracking_uri,
        run_id=run_id,
        X_raw=X_raw[idx],
        X_scaled=X_scaled[idx],
        labels=labels[idx],
        sizes={int(v): int(c) for v, c in zip(values, counts, strict=True)},
        names=list(names),
        silhouette_values=silhouette_values[sil_idx],
        silhouette_labels=silhouette_labels[sil_idx],
        silhouette=silhouette,
        title=title,
        log_plots=log_plots,
        profile=profile,
        personas=personas,
    )


def write_trial_artifacts(job: TrialArtifacts) -> dict[str, float]:
    """Draw and log the plots, log the profile files, the model and the dataset, then the
    run's params, metrics (with how long this took) and tags in one batch.

    The batch comes last: a run whose timings are logged is complete (:func:`_copy_plots` and
    the benchmark rely on it), and a model logged into a run without metrics yet does not
    read them back to copy them to the model (its metrics go with the batch instead).
    """
    import mlflow

    from segmentation import tracking
    from segmentation.model import log_segment_model
    from segmentation.profiles import write_profile

    started = time.perf_counter()
    client = mlflow.MlflowClient(job.tracking_uri)
    plots_seconds = 0.0
    if job.log_plots and not job.plots_from:
        plots_seconds = _draw_plots(client, job)
    if job.profile is not None:
        with tempfile.TemporaryDirectory() as tmp:
            write_profile(job.profile, Path(tmp) / "segments")
            client.log_artifacts(job.run_id, tmp)
    if job.model_id is not None:
        tracking.set_tracking_uri(job.tracking_uri)
        log_segment_model(
            job.pipeline, job.input_example, personas=job.personas, model_id=job.model_id
        )
    if job.dataset_input is not None:
        tracking.log_dataset(client, job.run_id, job.dataset_input)
    # Copied plots come last: the job that draws them, in the other worker, has had the
    # longest time to finish meanwhile (copying first, this worker mostly waited for it).
    if job.log_plots and job.plots_from and not _copy_plots(client, job.plots_from, job.run_id):
        plots_seconds = _draw_plots(client, job)
    timings = {
        "plots_seconds": plots_seconds,
        "logging_seconds": job.main_logging_seconds + time.perf_counter() - started - plots_seconds,
    }
    tracking.log_batch(
        client,
        job.run_id,
        params=job.params,
        metrics={**(job.metrics or {}), **timings},
        tags=job.tags,
        model_id=job.model_id,
    )
    return timings


def _draw_plots(client: Any, job: TrialArtifacts) -> float:
    """Draw the trial's plots and log them under ``plots/``; returns the seconds of drawing."""
    from segmentation.plots.trial import write_trial_plots

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        write_trial_plots(
            Path(tmp),
            job.X_raw,
            job.X_scaled,
            job.labels,
            job.names,
            job.silhouette_values,
            job.silhouette_labels,
            job.silhouette,
            job.title,
            profile=job.profile,
            personas=job.personas,
            sizes=job.sizes,
        )
        seconds = time.perf_counter() - start
        client.log_artifacts(job.run_id, tmp, "plots")
    return seconds


def _copy_plots(client: Any, source_run: str, run_id: str, timeout: float = 300.0) -> bool:
    """Log ``source_run``'s plots to ``run_id``; False if they did not appear within
    ``timeout`` (its job runs in another worker, submitted earlier, so they normally will)."""
    deadline = time.monotonic() + timeout
    # The source job logs its metrics last: once they are there, its plots are complete.
    while "plots_seconds" not in client.get_run(source_run).data.metrics:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    with tempfile.TemporaryDirectory() as tmp:
        local = client.download_artifacts(source_run, "plots", tmp)
        client.log_artifacts(run_id, local, "plots")
    return True


# Imported once by the fork server; every worker it forks starts with them. The last two draw
# the study's Optuna plots after the trials, where importing them (0.15 s) would delay the end.
PRELOAD = [
    "matplotlib.figure",
    "mlflow.pyfunc",
    "segmentation.model",
    "segmentation.plots.trial",
    "matplotlib.pyplot",
    "optuna.visualization.matplotlib",
]


# Niceness of the processes that draw and log behind the trials. The main process fits the
# trials, the critical path: on 2 cores it would otherwise share a core with them whenever
# both of them are busy. Lowered, they use the time the fits leave idle.
BACKGROUND_NICENESS = 10
# The sweep-level plots (EDA, choosing k) are needed only at the end, while a trial's plots
# and model hold up the trials once the queue is full: they yield to those too.
LOWEST_NICENESS = 19


def become_background(parent_pid: int, niceness: int = BACKGROUND_NICENESS) -> None:
    """Set up a process that works behind the sweep: it dies with ``parent_pid`` (a sweep
    killed with SIGKILL must not leave it behind), yields the CPU to the sweep's own
    processes (by ``niceness``) and uses one BLAS/OpenMP thread."""
    from threadpoolctl import threadpool_limits

    from segmentation.worker import die_with_parent

    die_with_parent(parent_pid)
    with contextlib.suppress(OSError):  # not permitted here: stay at normal priority
        os.nice(niceness)
    # For the rest of the process: a second BLAS thread would only contend with the sweep.
    threadpool_limits(1)


def _init_worker(parent_pid: int | None) -> None:
    # A fork server's worker dies with the fork server, which ends with the sweep.
    become_background(parent_pid if parent_pid is not None else os.getppid())
    # A spawned worker imports the heavy modules while the main process fits the first trial
    # (a forked one has them already).
    import matplotlib

    matplotlib.use("Agg")
    for name in PRELOAD:
        importlib.import_module(name)
    warm_up()  # nothing to do when forked from a process that did it


@functools.cache  # once per process: a process forked after it inherits the cache as well
def warm_up() -> None:
    """Pay once, before the first trial, what a fresh process pays on its first plots and
    model: matplotlib loads its fonts, MLflow's first model save reads the metadata of every
    installed package (0.3-0.6 s) and its first load imports the serving code. Processes
    forked after it start warm. Drawn and saved into a temporary directory: nothing reaches
    the store."""
    import mlflow
    from sklearn.cluster import KMeans
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    from segmentation.model import build_pipeline, save_segment_model
    from segmentation.plots.trial import write_trial_plots
    from segmentation.profiles import segment_profile

    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    X = rng.normal(size=(60, 2)) + labels[:, None] * 3.0
    names = ["x", "y"]
    frame = pd.DataFrame(X, columns=names)
    scaler = StandardScaler().fit(X)
    clusterer = KMeans(3, n_init=1, random_state=0).fit(scaler.transform(X))
    pipeline = build_pipeline(FunctionTransformer(), names, scaler, clusterer)
    with tempfile.TemporaryDirectory() as tmp:
        silhouette = rng.uniform(0.2, 0.8, size=len(labels))
        write_trial_plots(
            Path(tmp) / "plots",
            X,
            scaler.transform(X),
            labels,
            names,
            silhouette,
            labels,
            float(silhouette.mean()),
            "warm-up",
            profile=segment_profile(X, labels, names),
            personas={0: "warm-up"},
        )
        save_segment_model(Path(tmp) / "model", pipeline, frame.head(5))
        mlflow.pyfunc.load_model(str(Path(tmp) / "model")).predict(frame.head(5))


def fork_context() -> Any:
    """The ``fork`` multiprocessing context if forking is safe now, else ``None``.

    Forking copies this process: callers use it only before they open a database connection
    or a lock, and it is refused while another thread runs (one could hold a lock the child
    would then wait for forever) and off Linux. Standard output is flushed first, or the
    child would write the buffered lines again.
    """
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    return multiprocessing.get_context("fork")


class ArtifactWriter:
    """Runs :func:`write_trial_artifacts` in worker processes, or inline.

    Parameters
    ----------
    workers : int
        Worker processes (0: run each job at once, in this process).
    """

    def __init__(self, workers: int):
        self.workers = max(0, int(workers))
        self.background = self.workers > 0
        self._pool: ProcessPoolExecutor | None = None
        self._pending: deque[Future] = deque()

    def start(self, fork: bool = False) -> None:
        """Start the workers.

        Pass ``fork`` only before this process opens a database connection or a lock (see
        :func:`fork_context`): forked workers start at once with everything this process
        imported, where spawned ones spend about 4 s of CPU importing MLflow, scikit-learn and
        matplotlib again, which on 2 cores delays the first fits.
        """
        if self.background and self._pool is None:
            context = fork_context() if fork else None
            if context is not None:
                # Once, here, for all the workers forked next (a worker forked cold warms up
                # on its own: 0.6-1 s of CPU each, while the first trials waited for them).
                warm_up()
            parent_pid: int | None = os.getpid()
            if context is None and sys.platform.startswith("linux"):
                # A long-lived process with threads (a notebook, a test session): a fork server
                # imports the heavy modules once and forks every later worker from itself.
                context = multiprocessing.get_context("forkserver")
                context.set_forkserver_preload(PRELOAD)
                parent_pid = None  # its workers are the fork server's children
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=context or multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(parent_pid,),
            )
            for _ in range(self.workers):  # makes the pool spawn its workers now
                self._pool.submit(int)

    def submit(self, job: TrialArtifacts) -> None:
        if not self.background:
            write_trial_artifacts(job)
            return
        self.start()
        self._reap()
        while len(self._pending) >= PENDING_PER_WORKER * self.workers + 1:
            interrupts.wait(self._pending[0])  # a Ctrl-C leaves the job queued
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(write_trial_artifacts, job))

    def call(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` in a worker (inline when there is none); its result or error
        comes from the returned future."""
        if self._pool is None:
            done: Future = Future()
            try:
                done.set_result(fn(*args))
            except Exception as exc:
                done.set_exception(exc)
            return done
        return self._pool.submit(fn, *args)

    def wait(self) -> None:
        """Wait until every trial job is logged (the workers stay up). Raises the first job
        error, if any."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pending.clear()

    def _reap(self) -> None:
        """Surface a worker error early (a failed job stops the sweep, as inline it would)."""
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()

    def close(self) -> None:
        """Wait for every job, then stop the workers. Raises the first job error, if any."""
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
