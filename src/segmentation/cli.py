"""Command-line entry points: thin ``@hydra.main`` wrappers around plain, testable functions."""

from __future__ import annotations

import sys
from collections.abc import Callable

from omegaconf import DictConfig

from segmentation.config import conf_dir, ensure_root_env
from segmentation.errors import InputError, TrackingError


def run_cli(task: Callable[[DictConfig], object]) -> None:
    """Run ``task`` under Hydra; user errors become one line on stderr and exit code 2."""
    import logging
    import os

    import hydra

    ensure_root_env()
    # A CLI prints its own progress lines: MLflow's INFO chatter and download bars drown them.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    @hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        try:
            task(cfg)
        except (InputError, TrackingError) as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)
        except KeyboardInterrupt:
            sys.exit(130)

    _main()


def sweep_main() -> None:
    """``segmentation-sweep``: run or resume the configured sweep."""
    from segmentation.sweep import run_sweep

    run_cli(run_sweep)


def report_task(cfg: DictConfig) -> object:
    """Write the sweep report of ``+run_id`` (default: the experiment's latest sweep) to
    ``reports/`` (or ``+output``); with ``+persona_table=true``, log and print the persona table of
    ``+run_id`` (any trial run, or a sweep's best trial) instead."""
    from omegaconf import OmegaConf

    run_id = OmegaConf.select(cfg, "run_id", default=None)
    if OmegaConf.select(cfg, "persona_table", default=False):
        from segmentation import tracking
        from segmentation.insights import log_run_personas
        from segmentation.report import latest_sweep_run

        client = tracking.connect(str(cfg.paths.tracking_uri))
        run_id = run_id or latest_sweep_run(client, str(cfg.experiment_name))
        table = log_run_personas(cfg, client, str(run_id))
        print(table[["segment", "name", "size", "share"]].to_string(index=False), flush=True)
        return table
    from segmentation.report import write_report

    path = write_report(cfg, run_id, OmegaConf.select(cfg, "output", default=None))
    print(f"Report written to {path}", flush=True)
    return path


def report_main() -> None:
    """``segmentation-report``: the HTML report of a sweep (``make report RUN=<run id>``)."""
    run_cli(report_task)
