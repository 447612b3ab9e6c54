"""What the sweep sets up before its trials: the artifact pool's early start, one BLAS/OpenMP
thread per section."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from segmentation.algorithms import one_thread
from segmentation.cli import pool_expected, run_cli


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ([], True),
        (["experiments=retail_rfm", "sweep.n_trials=6"], True),
        (["sweep.workers=1", "tracking.artifact_workers=2", "engine=local"], True),
        (["tracking.artifact_workers=0"], False),
        (["+tracking.artifact_workers=0"], False),
        (["tracking.artifact_workers=null"], False),
        (["engine=spark"], False),
        (["sweep.workers=2"], False),
        # the last override of a key counts, as in Hydra
        (["tracking.artifact_workers=0", "tracking.artifact_workers=2"], True),
    ],
)
def test_the_pool_is_started_early_only_when_the_command_line_leaves_it_on(overrides, expected):
    assert pool_expected(overrides) is expected


def test_one_thread_limits_every_pool_and_puts_them_back():
    np.ones((64, 64)) @ np.ones((64, 64))  # BLAS loaded
    before = {p["filepath"]: p["num_threads"] for p in threadpool_info()}
    assert before, "no BLAS/OpenMP library found to limit"
    for _ in range(2):  # the cached controller works again
        with one_thread():
            inside = {p["filepath"]: p["num_threads"] for p in threadpool_info()}
            assert set(inside.values()) == {1}
        after = {p["filepath"]: p["num_threads"] for p in threadpool_info()}
        assert after == before


def test_the_sweeps_own_process_does_not_load_matplotlib():
    # It fits and logs; the artifact pool draws. matplotlib and Pillow cost its start-up.
    code = (
        "import sys, segmentation.study.sweep, segmentation.study.registration, "
        "segmentation.study.worker; "
        "print(sorted(m for m in ('matplotlib', 'PIL') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_the_pool_starts_after_the_options_are_checked_and_before_the_config(monkeypatch, tmp_path):
    calls = []
    argv = ["segmentation-sweep", "sweep.n_trials=3", f"hydra.run.dir={tmp_path}"]
    monkeypatch.setattr(sys, "argv", argv)
    run_cli(lambda cfg: calls.append(("task", cfg.sweep.n_trials)), lambda: calls.append("pool"))
    assert calls == ["pool", ("task", 3)]

    calls.clear()
    monkeypatch.setattr(sys, "argv", ["segmentation-sweep", "algorithm=nope"])
    with pytest.raises(SystemExit) as exit_:
        run_cli(lambda cfg: calls.append("task"), lambda: calls.append("pool"))
    assert exit_.value.code == 2
    assert calls == []  # a wrong option starts nothing
