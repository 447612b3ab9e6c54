"""MLflow's console output, set before MLflow is imported (a command that never imports it
pays nothing)."""

from __future__ import annotations

import logging
import os


def quiet_console() -> None:
    """Keep MLflow's INFO chatter and download bars off the console: a sweep prints its own
    progress lines (the CLI and every worker process call this)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
