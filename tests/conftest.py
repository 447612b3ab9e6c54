"""Shared fixtures: the real config composed and shrunk, a temporary tracking store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from segmentation.config import compose

DATA_DIR = Path(os.environ.get("DATA_DIR", "../shared/data")).resolve()


def real_file(name: str) -> Path:
    """A real data file from DATA_DIR; skipped only outside CI when absent."""
    path = DATA_DIR / name
    if not path.is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{path} missing: CI must run the real-data tests")
        pytest.skip(f"{path} not available (set DATA_DIR)")
    return path


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MLflow SQLite store and study folder under tmp_path."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "mlruns"
    root.mkdir()
    return root


@contextmanager
def module_store(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A fresh store for a module-scoped fixture: what ``store`` gives a single test."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        root = tmp_path_factory.mktemp(name) / "mlruns"
        root.mkdir()
        yield root


def make_cfg(store: Path, *overrides: str, data_dir: Path | None = None):
    """Compose the real config with a tmp store and the given overrides."""
    base = [
        f"paths.mlruns_dir={store}",
        f"paths.data_dir={data_dir or store / 'no-data'}",
        f"paths.reports_dir={store / 'reports'}",
        "sweep.progress=false",
    ]
    return compose([*base, *overrides])


def run_main(main, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """Run a ``segmentation.cli`` entry point in this process; return its exit code."""
    quiet = [
        "hydra/job_logging=disabled",
        "hydra/hydra_logging=disabled",
        "hydra.output_subdir=null",
    ]
    monkeypatch.setattr("sys.argv", ["segmentation", *args, *quiet])
    try:
        main()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0
