"""Exit codes as a scheduler sees them: `segmentation-drift` exits 0, 3 (drift) and 2 (bad
input); `make drift` can only exit 0 or 2 (GNU make's one failure code) and says on its last
line when the failure was drift."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from segmentation.data.mall import INCOME, generate

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
DRIFT_LINE = "make drift: DRIFT over the thresholds"


@pytest.fixture(scope="module")
def batches(promoted, tmp_path_factory) -> dict[str, Path]:
    """The training customers as a file, the same with doubled incomes, and a file without
    the spending score."""
    dataset = promoted.cfg.dataset
    frame = generate(int(dataset.synthetic_rows), int(dataset.synthetic_seed))
    folder = tmp_path_factory.mktemp("batches")
    files = {
        "same": frame,
        "doubled": frame.assign(**{INCOME: frame[INCOME] * 2}),
        "bad": frame.drop(columns=["Spending Score (1-100)"]),
    }
    for name, batch in files.items():
        batch.to_csv(folder / f"{name}.csv", index=False)
    return {name: folder / f"{name}.csv" for name in files}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MAKEFLAGS")}
    return {**env, "MPLBACKEND": "Agg"}


def console(promoted, batch: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            str(BIN / "segmentation-drift"),
            f"+input={batch}",
            f"+output={out}",
            f"+model_uri=models:/{promoted.name}@champion",
            *promoted.cli_args(),
        ],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )


def make_drift(promoted, batch: Path, out: Path) -> subprocess.CompletedProcess:
    # BIN= the interpreter's scripts: the same installation whichever venv runs the tests.
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "drift",
            f"BIN={BIN}",
            f"INPUT={batch}",
            f"OUTPUT={out}",
            f"MODEL=models:/{promoted.name}@champion",
            f"ARGS={' '.join(promoted.cli_args())}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=300,
    )


def test_console_script_exits_3_on_drift_and_2_on_bad_input(promoted, batches, tmp_path):
    drift = console(promoted, batches["doubled"], tmp_path / "drift")
    assert drift.returncode == 3, drift.stderr[-2000:]
    assert drift.stdout.startswith("DRIFT: ")
    report = json.loads((tmp_path / "drift" / "drift.json").read_text())
    income = next(row for row in report["features"] if row["feature"] == INCOME)
    assert report["over_threshold"] and income["status"] == "drift" and income["psi"] >= 0.25

    bad = console(promoted, batches["bad"], tmp_path / "bad")
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert (
        lines[-1].startswith("error: ") and "required column 'Spending Score (1-100)'" in lines[-1]
    )
    assert sum(line.startswith("error: ") for line in lines) == 1, lines
    assert not (tmp_path / "bad").exists()


def test_make_drift_exits_0_or_2_and_names_drift_on_its_last_line(promoted, batches, tmp_path):
    same = make_drift(promoted, batches["same"], tmp_path / "same")
    assert same.returncode == 0, same.stderr[-2000:]
    printed = same.stdout.splitlines()
    assert any(line.startswith("no drift over the thresholds: 200 rows") for line in printed)
    assert not json.loads((tmp_path / "same" / "drift.json").read_text())["over_threshold"]

    drift = make_drift(promoted, batches["doubled"], tmp_path / "drift")
    assert drift.returncode == 2  # GNU make's only failure code
    lines = drift.stderr.strip().splitlines()
    assert lines[-2].startswith(DRIFT_LINE) and lines[-1].endswith("drift] Error 3"), lines
    assert json.loads((tmp_path / "drift" / "drift.json").read_text())["over_threshold"]

    bad = make_drift(promoted, batches["bad"], tmp_path / "bad")
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert lines[-2].startswith("error: ") and "Spending Score (1-100)" in lines[-2], lines
    assert lines[-1].endswith("drift] Error 2") and DRIFT_LINE not in bad.stderr
    assert not (tmp_path / "bad").exists()
