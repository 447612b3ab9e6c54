"""`make bench` calls the project's functions directly: its modules import, and the bare sweep
(the floor the default sweep is measured against) runs on the functions as they are now."""

from __future__ import annotations

import importlib
import os
import sys
import time

import pytest

from segmentation.config import project_root
from tests.conftest import make_cfg


@pytest.fixture
def benchmarks(monkeypatch):
    monkeypatch.syspath_prepend(str(project_root() / "benchmarks"))
    yield
    for name in ("bench", "scoring_bench", "spark_bench"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize("module", ["bench", "scoring_bench", "spark_bench"])
def test_the_benchmark_modules_import(benchmarks, module):
    assert importlib.import_module(module).__doc__


def test_the_bare_sweep_floor_runs_the_configured_trials(benchmarks, tmp_path):
    bench = importlib.import_module("bench")
    cfg = make_cfg(tmp_path / "mlruns", "sweep.n_trials=3", "algorithm=kmeans")
    result = bench.bare_sweep(cfg)
    assert result["seconds"] > 0
    assert -1.0 <= result["best_value"] <= 1.0
    # One algorithm: the study suggests only its parameters.
    assert result["best_params"] and all(k.startswith("kmeans.") for k in result["best_params"])


def test_a_launched_command_reports_its_own_peak_memory_not_the_benchmarks(benchmarks):
    scoring_bench = importlib.import_module("scoring_bench")
    held = bytearray(400 * 2**20)  # the benchmark holding 400 MB, as after the scoring floor
    before = time.time()
    small = scoring_bench.launch([sys.executable, "-c", "pass"], dict(os.environ))
    big = scoring_bench.launch(
        [sys.executable, "-c", "b = bytearray(200 * 2**20)"], dict(os.environ)
    )
    assert len(held) and small["code"] == 0 and big["code"] == 0
    assert small["peak_rss_mb"] < 100
    assert 200 < big["peak_rss_mb"] < 350
    assert before <= small["started_at"] <= time.time() and 0 < small["wall"] < 30
    failed = scoring_bench.launch([sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ))
    assert failed["code"] == 3


def test_the_quick_commands_table_has_before_columns_only_when_the_code_before_ran(benchmarks):
    scoring_bench = importlib.import_module("scoring_bench")
    after = [{"wall": 4.0}, {"wall": 5.0}, {"wall": 6.0}]
    alone = scoring_bench.quick_table({"predict": {"after": after, "before": []}}, 2.5, 10.0)
    assert alone == [
        "| command | after | after / `import mlflow` | after / start-up floor |",
        "|---|---|---|---|",
        "| predict | 5.00 s | 2.00x | 0.50x |",
    ]
    before = [{"wall": 10.0}] * 3
    beside = scoring_bench.quick_table({"predict": {"after": after, "before": before}}, 2.5, 10.0)
    assert beside[0] == (
        "| command | before | after | before / after | after / `import mlflow` "
        "| after / start-up floor |"
    )
    assert beside[1] == "|---|---|---|---|---|---|"
    assert beside[2] == "| predict | 10.00 s | 5.00 s | 2.00x | 2.00x | 0.50x |"
    assert "nan" not in "\n".join(alone + beside)
