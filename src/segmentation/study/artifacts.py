"""A trial's plots, profile files, model and logging, done by a pool of processes beside the fits.

Drawing a trial's figures and logging a pyfunc model cost several times a small fit. The pool's
processes do that work for trial n while the sweep's process fits trial n+1; the sweep's process
only creates the run and the trial's LoggedModel, so the model URI is known at once. The same
pool draws the sweep's EDA, choosing-k and study plots (:meth:`ArtifactWriter.call`): it is the
one mechanism for background work. :meth:`ArtifactWriter.wait` returns when every trial job is
logged, so a sweep never ends with work outstanding.
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import optuna
import pandas as pd
from mlflow.entities import LoggedModelOutput

from segmentation.plots import MAX_POINTS, subsample
from segmentation.segments.profiles import write_profile
from segmentation.study import interrupts
from segmentation.study.processes import become_background, pool_context
from segmentation.tracking.console import quiet_console
from segmentation.tracking.model import SegmentModel, log_segment_model
from segmentation.tracking.runs import log_batch, log_dataset

# Jobs waiting per worker at most; beyond that the sweep's process waits (bounded memory).
PENDING_PER_WORKER = 2


@dataclass
class TrialArtifacts:
    """What a pool process needs for one trial: plot inputs capped at ``MAX_POINTS`` rows, the
    model to log, and the run's params, metrics and tags (logged in one batch, last)."""

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
    segment_stability: dict[int, float] | None = None
    model: SegmentModel | None = None
    input_example: pd.DataFrame | None = None
    model_id: str | None = None
    main_logging_seconds: float = 0.0
    params: dict[str, Any] | None = None
    metrics: dict[str, float] | None = None
    tags: dict[str, Any] | None = None
    dataset_input: Any = None

    @classmethod
    def sampled(
        cls,
        *,
        X_raw: np.ndarray,
        X_scaled: np.ndarray,
        labels: np.ndarray,
        silhouette_values: np.ndarray,
        silhouette_labels: np.ndarray,
        seed: int = 0,
        **fields: Any,
    ) -> TrialArtifacts:
        """A job with every per-row input subsampled, so its cost is flat in the rows."""
        idx = subsample(len(labels), MAX_POINTS, seed)
        sil_idx = subsample(len(silhouette_values), MAX_POINTS, seed)
        values, counts = np.unique(labels, return_counts=True)
        return cls(
            X_raw=X_raw[idx],
            X_scaled=X_scaled[idx],
            labels=labels[idx],
            sizes={int(v): int(c) for v, c in zip(values, counts, strict=True)},
            silhouette_values=silhouette_values[sil_idx],
            silhouette_labels=silhouette_labels[sil_idx],
            **fields,
        )


def write_trial_artifacts(job: TrialArtifacts) -> dict[str, float]:
    """Draw and log the plots, log the profile files, the model and the dataset, then the
    run's params, metrics (with how long this took) and tags in one batch.

    The batch comes last: a run whose timings are logged is complete, and a model logged into
    a run without metrics yet does not read them back to copy them to the model (its metrics
    go with the batch instead).
    """
    # Runs in the pool, whose fork server imported matplotlib; the sweep's process never draws.
    from segmentation.plots.trial import write_trial_plots

    started = time.perf_counter()
    client = mlflow.MlflowClient(job.tracking_uri)
    plots_seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        if job.log_plots:
            write_trial_plots(
                Path(tmp) / "plots",
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
            plots_seconds = time.perf_counter() - started
        if job.profile is not None:
            write_profile(job.profile, Path(tmp) / "segments")
        if job.segment_stability:
            (Path(tmp) / "segments" / "stability.json").write_text(
                json.dumps({str(k): v for k, v in job.segment_stability.items()}, indent=1)
            )
        client.log_artifacts(job.run_id, tmp)
    if job.model_id is not None:
        # The input example is given at registration (tracking.model.with_input_example).
        log_segment_model(
            job.model,
            job.input_example,
            job.tracking_uri,
            model_id=job.model_id,
            with_example=False,
        )
        client.log_outputs(job.run_id, models=[LoggedModelOutput(job.model_id, step=0)])
    if job.dataset_input is not None:
        log_dataset(client, job.run_id, job.dataset_input)
    timings = {
        "plots_seconds": plots_seconds,
        "logging_seconds": job.main_logging_seconds + time.perf_counter() - started - plots_seconds,
    }
    log_batch(
        client,
        job.run_id,
        params=job.params,
        metrics={**(job.metrics or {}), **timings},
        tags=job.tags,
        model_id=job.model_id,
    )
    return timings


def _init_worker() -> None:
    # The pool's processes are the fork server's children; it ends with the sweep.
    become_background(os.getppid())
    quiet_console()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The modules the fork server imported are never freed: the garbage collector's full
    # passes need not visit them again.
    gc.freeze()


class ArtifactWriter:
    """Runs :func:`write_trial_artifacts` and other drawing jobs in a pool of processes, or
    inline.

    Parameters
    ----------
    workers : int
        Processes (0: run each job at once, in this process). They are forked from a fork
        server that imported the drawing and logging code once; each dies with it, and it
        with the sweep.
    """

    def __init__(self, workers: int):
        self.workers = max(0, int(workers))
        self._pool: ProcessPoolExecutor | None = None
        self._pending: deque[Future] = deque()
        self._spawner: threading.Thread | None = None

    def start(self) -> None:
        """Start the processes without waiting for them: their first fork waits for the fork
        server's imports (seconds), which a thread sits out while the sweep's process goes on
        (creating the store, the study); a job submitted meanwhile queues until they are up."""
        if self.workers and self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=pool_context(),
                initializer=_init_worker,
            )
            self._spawner = threading.Thread(
                target=self._spawn, args=(self._pool,), name="artifact-pool-start", daemon=True
            )
            self._spawner.start()

    def _spawn(self, pool: ProcessPoolExecutor) -> None:
        for _ in range(self.workers):  # a submit is what makes the pool start a process
            pool.submit(int)

    def submit(self, job: TrialArtifacts) -> None:
        """Log a trial's artifacts (in the pool, or at once without one)."""
        if not self.workers:
            write_trial_artifacts(job)
            return
        self.start()
        self._reap()
        while len(self._pending) >= PENDING_PER_WORKER * self.workers + 1:
            interrupts.wait(self._pending[0])  # a Ctrl-C leaves the job queued
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(write_trial_artifacts, job))

    def call(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` in the pool (inline when there is none); its result or error comes
        from the returned future."""
        if not self.workers:
            done: Future = Future()
            try:
                done.set_result(fn(*args))
            except Exception as exc:
                done.set_exception(exc)
            return done
        self.start()
        return self._pool.submit(fn, *args)

    def wait(self) -> None:
        """Wait until every trial job is logged (the processes stay up). Raises the first job
        error, if any."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pending.clear()

    def _reap(self) -> None:
        """Surface a job's error early (a failed job stops the sweep, as inline it would)."""
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()

    def close(self) -> None:
        """Wait for every job, then stop the processes. Raises the first job error, if any."""
        try:
            self.wait()
        finally:
            if self._spawner is not None:
                self._spawner.join()
                self._spawner = None
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None
