"""A study is found again by its name, its journal and its lock: the functions that make them
from the config groups give the strings a resume looks for."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from segmentation.features.space import SpaceConfig, feature_space_name
from segmentation.study.console import announce, show_best, show_next
from segmentation.study.definition import study_name
from segmentation.study.objective import SweepGroups
from segmentation.study.storage import journal_path
from segmentation.study.workers import StudyLock
from tests.conftest import make_cfg

HASH = "1a2b3c4d5e6f7a8b"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ((), "mall_income_spending.mall.income_spending.standard.data-1a2b3c4d"),
        (
            ("sweep.objective=pareto",),
            "mall_income_spending.mall.income_spending.standard.data-1a2b3c4d.pareto",
        ),
        (
            ("experiments=retail_rfm", "scaling=robust"),
            "retail_rfm.retail_marketing.rfm.robust.data-1a2b3c4d",
        ),
    ],
)
def test_study_name_from_the_groups(tmp_path, overrides, expected):
    cfg = make_cfg(tmp_path, *overrides)
    space = SpaceConfig.of(cfg)
    assert space.name == feature_space_name(cfg.dataset, cfg.features, cfg.scaling)
    assert study_name(space.experiment_name, space.name, cfg.sweep, HASH) == expected
    # The sweep and its worker processes name it from their groups.
    groups = SweepGroups.of(cfg)
    assert groups.space_config == space
    assert groups.study_name(HASH) == expected


def test_journal_and_lock_of_the_experiment(tmp_path):
    cfg = make_cfg(tmp_path, "experiments=retail_rfm")
    journal = journal_path(cfg.paths, str(cfg.experiment_name))
    assert journal == tmp_path / "optuna" / "retail_rfm.journal"
    lock = StudyLock.for_config(cfg.storage, cfg.paths, str(cfg.experiment_name))
    assert lock.path == Path(f"{journal}.sweep-lock")
    postgres = make_cfg(tmp_path, "storage=postgres")
    assert StudyLock.for_config(postgres.storage, postgres.paths, "x").path is None


def test_console_lines_from_the_groups(tmp_path, capsys):
    cfg = make_cfg(
        tmp_path,
        "tracking.registered_model_name=segs",
        f"paths.tracking_uri=sqlite:///{tmp_path}/m.db",
    )
    study = optuna.create_study(study_name="s", directions=["maximize"])
    study.enqueue_trial({"x": 1.0})
    study.optimize(lambda t: t.suggest_float("x", 0, 2), n_trials=1)
    best = study.best_trial
    best.set_user_attr("algorithm", "kmeans")
    best.set_user_attr("n_clusters", 5)
    best.set_user_attr("metrics", {"davies_bouldin": 0.5721})
    best.set_user_attr("mlflow_run_id", "r1")
    announce(cfg.sweep, str(cfg.experiment_name), "p1", study, [], 3)
    show_best(cfg.tracking, best, "2")
    show_next(cfg.paths, str(cfg.experiment_name), Path("/r/report.html"), "7", "p1")
    assert capsys.readouterr().out.splitlines() == [
        "Study s: 1 of 50 trials done, running 3 (MLflow experiment 'mall_income_spending', "
        "parent run p1)",
        "Best: trial 0 (kmeans, 5 segments) silhouette 1.0000, davies_bouldin 0.572; run r1; "
        "registered segs v2",
        "Report: /r/report.html",
        "MLflow UI: make ui, then http://127.0.0.1:5000/#/experiments/7/runs/p1"
        "?workflowType=machine_learning",
        "Next: make promote EXPERIMENT=mall_income_spending",
    ]
