"""Bad input through the sweep command: one line, exit code 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.unit.test_bad_input import ROWS, _write
from tests.unit.test_datasets import retail_text


@pytest.fixture
def canonical() -> pd.DataFrame:
    """Generated retail customers as text, as a user would edit the real file."""
    return retail_text(ROWS)


def test_cli_refuses_with_one_line_and_exit_code_2(tmp_path, canonical):
    root = Path(__file__).resolve().parents[2]
    data = _write(canonical.drop(columns=["Dt_Customer"]), tmp_path / "data")
    store = tmp_path / "mlruns"
    env = {
        **os.environ,
        "SEGMENTATION_ROOT": str(root),
        "PYTHONPATH": str(root / "src"),
        "DATA_DIR": str(data),
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    proc = subprocess.run(
        [
            sys.executable, "-c", "from segmentation.cli import sweep_main; sweep_main()",
            "experiments=retail_rfm", f"paths.mlruns_dir={store}",
            f"hydra.run.dir={tmp_path / 'outputs'}", "hydra.output_subdir=null",
        ],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in proc.stderr
    assert "required column 'Dt_Customer'" in lines[0]
    assert not store.exists() or not any(store.iterdir())
