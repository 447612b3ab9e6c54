"""Trials per minute with 1 and 2 worker processes on a large synthetic Mall set (issue 7)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

# "fits": plots and models off, so the figure is the parallelism of fitting and scoring;
# "full": the default tracking, what `make sweep WORKERS=2` does.
MODES = {
    "fits": ("tracking.log_plots=false", "tracking.log_models=false"),
    "full": (),
}


def trials_per_minute(study: optuna.Study, tracking_uri: str) -> float:
    """Finished trials per minute, over :func:`segmentation.bench.trials_seconds`."""
    from mlflow.tracking import MlflowClient

    from segmentation.bench import trials_seconds

    client = MlflowClient(tracking_uri)
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    runs = [client.get_run(t.user_attrs["mlflow_run_id"]) for t in trials]
    return len(trials) / max(trials_seconds(client, runs), 1e-9) * 60.0


def sweep_throughput(workers: int, rows: int, n_trials: int, overrides: tuple[str, ...]) -> float:
    """One KMeans/GMM sweep in a fresh temporary store; its trials per minute."""
    from segmentation.config import compose
    from segmentation.storage import study_storage
    from segmentation.sweep import run_sweep

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
        study = optuna.load_study(study_name=result.study_name, storage=study_storage(cfg))
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


if __name__ == "__main__":
    print(workers_table(bench_workers()))
