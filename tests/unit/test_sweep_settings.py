"""Sweep settings no trial could meet, or that Optuna would stop on mid-study, are refused by
`make sweep` in one line naming the setting, exit 2, before the store is made; settings that
only look odd (stability off) run."""

from __future__ import annotations

import pytest
import yaml
from omegaconf import OmegaConf

from segmentation import cli
from segmentation.errors import InputError
from segmentation.study.definition import algorithm_specs, check_sweep
from tests.conftest import make_cfg, run_main


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """The default config, composed once: each case changes its copy."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        return make_cfg(tmp_path_factory.mktemp("settings"))


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (["sweep.n_trials=0"], "sweep.n_trials=0: expected a whole number >= 1"),
        (["sweep.seed=-1"], "sweep.seed=-1: expected a whole number from 0 to 2**32 - 1"),
        (["sweep.constraints.k_min=1"], "sweep.constraints.k_min=1: expected a whole number >= 2"),
        (
            ["sweep.constraints.k_min=9", "sweep.constraints.k_max=3"],
            "sweep.constraints.k_max=3: expected a whole number >= sweep.constraints.k_min (9)",
        ),
        (
            ["sweep.constraints.max_noise_fraction=-0.1"],
            "sweep.constraints.max_noise_fraction=-0.1: expected from 0 to 1",
        ),
        (
            ["sweep.constraints.min_segment_fraction=2"],
            "sweep.constraints.min_segment_fraction=2.0: expected from 0 to 1",
        ),
        (
            ["sweep.constraints.min_stability=1.5"],
            "sweep.constraints.min_stability=1.5: expected from 0 to 1, or null",
        ),
        (
            ["sweep.stability.bootstraps=0"],
            "sweep.stability.bootstraps=0: expected a whole number >= 1 with "
            "sweep.constraints.min_stability set or sweep.objective=pareto (0 turns stability "
            "off)",
        ),
        (
            ["sweep.stability.bootstraps=-1", "sweep.constraints.min_stability=null"],
            "sweep.stability.bootstraps=-1: expected a whole number >= 0",
        ),
        (
            ["sweep.stability.sample_rows=0"],
            "sweep.stability.sample_rows=0: expected more rows than sweep.constraints.k_max (10)",
        ),
        (
            ["sweep.silhouette.sample_size=5"],
            "sweep.silhouette.sample_size=5: expected more rows than sweep.constraints.k_max (10)",
        ),
        (
            ["sweep.heartbeat_interval=0"],
            "sweep.heartbeat_interval=0: expected a whole number of seconds >= 1",
        ),
        (
            ["tracking.input_example_rows=-1"],
            "tracking.input_example_rows=-1: expected a whole number >= 1",
        ),
        (
            ["tracking.artifact_workers=-1"],
            "tracking.artifact_workers=-1: expected a whole number >= 0 (0: plots and models "
            "drawn in the sweep's process)",
        ),
        (
            ["algorithm.kmeans.search.n_init.low=20"],
            "algorithm.kmeans.search.n_init: low=20, high=10 (expected numbers, low <= high)",
        ),
        (
            ["algorithm.kmeans.search.n_init.low=true"],
            "algorithm.kmeans.search.n_init: low=True, high=10 (expected numbers, low <= high)",
        ),
        (
            ["algorithm.gmm.search.n_components.type=foo"],
            "algorithm.gmm.search.n_components: type 'foo' unknown (expected int, float or "
            "categorical)",
        ),
        (
            ["algorithm.kmeans.search.init.choices=[]"],
            "algorithm.kmeans.search.init: no choices (expected a list of values to try)",
        ),
        (
            ["algorithm.dbscan.search.eps.low=0"],
            "algorithm.dbscan.search.eps: low=0 on a log scale (expected low > 0)",
        ),
    ],
)
def test_sweep_settings_no_study_could_use_are_refused_naming_them(overrides, line, base):
    cfg = base.copy()
    for override in overrides:
        key, value = override.split("=", 1)
        OmegaConf.update(cfg, key, yaml.safe_load(value))
    with pytest.raises(InputError) as refused:
        check_sweep(cfg.sweep, cfg.tracking)
        algorithm_specs(cfg.algorithm)
    assert str(refused.value) == line


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            ["sweep.constraints.k_min=9", "sweep.constraints.k_max=3"],
            "sweep.constraints.k_max=3: expected a whole number >= sweep.constraints.k_min (9)",
        ),
        (
            ["sweep.constraints.max_noise_fraction=-0.1"],
            "sweep.constraints.max_noise_fraction=-0.1: expected from 0 to 1",
        ),
        (
            ["algorithm.kmeans.search.n_init.low=20"],
            "algorithm.kmeans.search.n_init: low=20, high=10 (expected numbers, low <= high)",
        ),
    ],
)
def test_make_sweep_refuses_them_in_one_line_exit_2_no_store(
    overrides, line, store, tmp_path, monkeypatch, capsys
):
    """Through the command, as a user meets them (they were an Optuna traceback with exit 1,
    or an error after the study's runs were in the store)."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    code = run_main(
        cli.sweep_main,
        monkeypatch,
        *overrides,
        f"paths.mlruns_dir={store}",
        f"paths.data_dir={tmp_path / 'no-data'}",
        f"paths.reports_dir={tmp_path / 'reports'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert (code, capsys.readouterr().err.splitlines()) == (2, [f"error: {line}"])
    assert list(store.iterdir()) == []


def test_settings_that_only_look_odd_are_taken(store):
    """Stability off (no bootstraps, no stability constraint), a one-value k range, the
    fractions at their bounds; and every algorithm's shipped search space."""
    cfg = make_cfg(
        store,
        "sweep.stability.bootstraps=0",
        "sweep.constraints.min_stability=null",
        "sweep.constraints.k_min=4",
        "sweep.constraints.k_max=4",
        "sweep.constraints.max_noise_fraction=0",
        "sweep.constraints.min_segment_fraction=1",
        "sweep.stability.sample_rows=null",
    )
    check_sweep(cfg.sweep, cfg.tracking)
    assert set(algorithm_specs(cfg.algorithm)) == {
        "bisecting_kmeans",
        "dbscan",
        "gmm",
        "hdbscan",
        "kmeans",
    }
    with pytest.raises(InputError, match="sweep.stability.bootstraps=0"):
        pareto = make_cfg(store, "sweep.stability.bootstraps=0", "sweep.objective=pareto")
        check_sweep(pareto.sweep, pareto.tracking)


def test_the_spark_sweep_refuses_them_before_spark_starts(store, monkeypatch):
    from segmentation.spark import sweep as spark_sweep

    def no_spark(*args):
        raise AssertionError("Spark started")

    monkeypatch.setattr(spark_sweep, "get_session", no_spark)
    cfg = make_cfg(store, "engine=spark", "sweep.constraints.k_min=1")
    with pytest.raises(InputError, match=r"^sweep.constraints.k_min=1: expected"):
        spark_sweep.run_spark_sweep(cfg)
    assert list(store.iterdir()) == []


@pytest.mark.parametrize(
    ("command", "override", "line"),
    [
        (
            "sweep_main",
            "experiment_name=../../escape",
            "experiment_name='../../escape': expected a name without / or \\, not starting "
            "with . (it names folders)",
        ),
        (
            "audiences_main",
            "experiment_name=q4/mall",
            "experiment_name='q4/mall': expected a name without / or \\, not starting with . "
            "(it names folders)",
        ),
        (
            "sweep_main",
            "tracking.registered_model_name=mall@q4",
            "tracking.registered_model_name='mall@q4': expected a name without / or : or @, "
            "not starting with . (it is part of models:/<name>@<alias>)",
        ),
        (
            "predict_main",
            "tracking.registered_model_name=''",
            "tracking.registered_model_name='': expected a name (it is part of "
            "models:/<name>@<alias>)",
        ),
        (
            "sweep_main",
            "dataset.synthetic_rows=0",
            "dataset.synthetic_rows=0: expected a whole number >= 1",
        ),
        (
            "sweep_main",
            "dataset.synthetic_seed=-1",
            "dataset.synthetic_seed=-1: expected a whole number from 0 to 2**32 - 1",
        ),
        (
            "sweep_main",
            "features.columns=[Age]",
            "features.columns=['Age']: expected two or more different columns (segments are "
            "plotted and explained in two dimensions or more)",
        ),
        (
            "sweep_main",
            "features.columns=[Age,Age]",
            "features.columns=['Age', 'Age']: expected two or more different columns (segments "
            "are plotted and explained in two dimensions or more)",
        ),
    ],
)
def test_names_and_sizes_no_command_can_use_are_refused_before_writing(
    command, override, line, store, tmp_path, monkeypatch, capsys
):
    """An experiment name with ../ put the study's journal outside the store (and a sweep
    ran on); a model name MLflow refuses, and a feature set of one column, were tracebacks
    after every trial was logged; a negative seed or no rows were numpy tracebacks."""
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    (tmp_path / "customers.csv").write_text("CustomerID\n1\n")  # a file: the name is at fault
    code = run_main(
        getattr(cli, command),
        monkeypatch,
        override,
        f"+input={tmp_path / 'customers.csv'}",
        f"+output={tmp_path / 'out.csv'}",
        f"paths.mlruns_dir={store}",
        f"paths.data_dir={tmp_path / 'no-data'}",
        f"paths.reports_dir={tmp_path / 'reports'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert (code, capsys.readouterr().err.splitlines()) == (2, [f"error: {line}"])
    assert list(store.iterdir()) == [] and not (tmp_path / "escape.journal").exists()


@pytest.mark.parametrize(
    ("override", "line"),
    [
        # Spark's jobs waited forever (over 10 minutes before this check).
        (
            "engine.shuffle_partitions=0",
            "engine.shuffle_partitions=0: expected a whole number >= 1",
        ),
        ("engine.sample_rows=0", "engine.sample_rows=0: expected a whole number >= 1"),
        (
            "engine.driver_memory=lots",
            "engine.driver_memory=lots: expected a JVM memory size such as 4g or 512m",
        ),
    ],
)
def test_spark_settings_it_cannot_run_with_are_refused_before_it_starts(
    override, line, store, monkeypatch
):
    from segmentation.spark import session

    monkeypatch.setattr(session, "require_pyspark", lambda: None)
    with pytest.raises(InputError) as refused:
        session.get_session(make_cfg(store, "engine=spark", override).engine)
    assert str(refused.value) == line


def test_jvm_memory_sizes_are_taken(store):
    from segmentation.spark.session import check_engine

    engine = make_cfg(store, "engine=spark").engine
    for memory in ("4g", "512m", "2048", "1T", "8gb"):
        engine.driver_memory = memory
        check_engine(engine)
