"""An unwritable study folder is refused before any trial is fitted."""

from __future__ import annotations

import pytest

from segmentation.errors import TrackingError
from segmentation.study.sweep import run_sweep
from tests.conftest import FAST, make_cfg


def test_unwritable_study_dir_refused_before_fitting(store, capsys):
    blocker = store / "a-file"
    blocker.write_text("not a folder")
    cfg = make_cfg(store, f"paths.study_dir={blocker}/optuna", *FAST)
    with pytest.raises(TrackingError, match="study storage .* is unusable"):
        run_sweep(cfg)
    assert "running" not in capsys.readouterr().out  # no trial started
