"""Trials per minute with 1 and 2 worker processes on a large synthetic Mall set."""

from __future__ import annotations

import tempfile
from pathlib import Path

import optuna
from optuna.trial import TrialState


def _trials_per_minute(study: optuna.Study) -> float:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    start = min(t.datetime_start for t in trials)
    end = max(t.datetime_complete for t in trials)
    return len(trials) / max((end - start).total_seconds(), 1e-9) * 60.0


def bench_workers(n_trials: int = 12, rows: int = 100_000) -> dict:
    """Sweep ``n_trials`` KMeans/GMM trials on ``rows`` synthetic customers with 1 and 2 workers.

    Each sweep gets a fresh temporary store. Throughput is measured from the first trial's start
    to the last trial's end (worker start-up and the final registration are left out).
    Returns ``{"rows", "n_trials", "tpm_1", "tpm_2", "speedup"}``.
    """
    from segmentation.config import compose
    from segmentation.storage import study_storage
    from segmentation.sweep import run_sweep, study_name

    figures: dict = {"rows": rows, "n_trials": n_trials}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            cfg = compose(
                [
                    f"paths.mlruns_dir={Path(tmp)}",
                    f"paths.data_dir={Path(tmp) / 'no-data'}",
                    f"paths.tracking_uri=sqlite:///{Path(tmp)}/mlflow.db",
                    f"dataset.synthetic_rows={rows}",
                    "algorithm=[kmeans,gmm]",
                    f"sweep.n_trials={n_trials}",
                    f"sweep.workers={workers}",
                    "sweep.progress=false",
                    "tracking.log_plots=false",
                    "tracking.log_models=false",
                ]
            )
            run_sweep(cfg)
            study = optuna.load_study(study_name=study_name(cfg), storage=study_storage(cfg))
            figures[f"tpm_{workers}"] = round(_trials_per_minute(study), 2)
    figures["speedup"] = round(figures["tpm_2"] / figures["tpm_1"], 2)
    return figures


if __name__ == "__main__":
    print(bench_workers())
