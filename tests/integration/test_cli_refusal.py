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


@pytest.mark.parametrize(
    ("command", "override", "line"),
    [
        ("sweep_main", "sweep.n_trials=abc", "error: sweep.n_trials=abc: expected an integer"),
        (
            "sweep_main",
            "engine=nope",
            "error: engine=nope: no such option of engine; choose from local, spark",
        ),
        (
            "sweep_main",
            "sweep.objective=nonsense",
            "error: sweep.objective=nonsense: expected one of silhouette, pareto",
        ),
        (
            "predict_main",
            "dataset.cleaning.implausible.action=foo",
            "error: dataset.cleaning.implausible.action=foo: expected one of drop, keep",
        ),
        (
            "sweep_main",
            "sweep.constraints.min_stability=x",
            "error: sweep.constraints.min_stability=x: expected a float",
        ),
        ("sweep_main", "sweep.progress=maybe", "error: sweep.progress=maybe: expected a boolean"),
        (
            "drift_main",
            "monitoring.thresholds.min_rows=many",
            "error: monitoring.thresholds.min_rows=many: expected an integer",
        ),
        (
            "report_main",
            "personas.rules.0.when.income=rich",
            "error: personas.rules[0].when.income=rich: expected one of high, low, average",
        ),
        (
            "report_main",
            "personas.features.Income.lable=pay",
            "error: personas.features.Income.lable=pay: no such setting in "
            "personas.features.Income; expected one of label, unit, percent, high, low, "
            "very_high, very_low",
        ),
        (
            "drift_main",
            "sweep.nope=1",
            "error: sweep.nope=1: no such setting in sweep; expected one of n_trials, seed, "
            "workers, objective, constraints, silhouette, heartbeat_interval, grace_period, "
            "progress, stability",
        ),
    ],
)
def test_config_the_schema_refuses_is_one_line_exit_2_nothing_written(
    command, override, line, store, tmp_path, monkeypatch, capsys
):
    """A value of the wrong type or outside the choices, or a key the schema lacks, on any
    console script: one line naming the key, the value and what was expected; no store, no
    Hydra outputs folder, no reports."""
    from segmentation import cli
    from tests.conftest import run_main

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    (tmp_path / "customers.csv").write_text("ID\n1\n")  # a file: the setting is at fault
    code = run_main(
        getattr(cli, command),
        monkeypatch,
        "experiments=retail_rfm",
        override,
        f"+input={tmp_path / 'customers.csv'}",
        f"+output={tmp_path / 'scored.csv'}",
        f"paths.mlruns_dir={store}",
        f"paths.reports_dir={tmp_path / 'reports'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert code == 2
    assert capsys.readouterr().err.splitlines() == [line]
    assert list(store.iterdir()) == []
    assert not (tmp_path / "run").exists() and not (tmp_path / "reports").exists()
    assert not (tmp_path / "scored.csv").exists()
    # The variable that makes Hydra raise is not left behind for what runs next.
    assert "HYDRA_FULL_ERROR" not in os.environ
