"""Command-line entry points: thin ``@hydra.main`` wrappers around plain, testable functions.

Each command imports its stage inside its task, after the options are checked: a command does
not pay for the others' libraries (the sweep's Optuna and matplotlib, drift's SciPy), and a
wrong option is refused before any of them loads.
"""

from __future__ import annotations

import atexit
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence

import hydra
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from segmentation.config import (
    composition_error,
    conf_dir,
    ensure_root_env,
    given_value,
    unknown_option,
)
from segmentation.engines import engine
from segmentation.errors import InputError, TrackingError
from segmentation.locations import local_path, refuse_no_file
from segmentation.promotion.aliases import ModelRef, champion_uri


def run_cli(
    task: Callable[[DictConfig], object], before_compose: Callable[[], None] | None = None
) -> None:
    """Run ``task`` under Hydra; user errors become one line on stderr and exit code 2.
    ``before_compose`` runs once the options are checked, before Hydra composes the config
    (its InputError is such a line too)."""
    ensure_root_env()
    wrong = unknown_option(sys.argv[1:])
    if wrong:  # before Hydra, whose own message is a block of text
        print(f"error: {wrong}", file=sys.stderr, flush=True)
        sys.exit(2)
    if before_compose is not None:
        try:
            before_compose()
        except InputError as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)
    from segmentation.tracking.console import quiet_console  # every command but an error

    quiet_console()
    # Python's last garbage collections at exit are slow after every command (MLflow,
    # scikit-learn and pandas leave millions of objects behind); frozen, they are skipped.
    # Exit handlers still run; finalizers of objects left in reference cycles, which Python
    # does not promise at exit, may not (the commands close their files and runs themselves).
    atexit.unregister(gc.freeze)  # once, however many commands a process runs (tests)
    atexit.register(gc.freeze)
    # Hydra prints a config it cannot compose (a value the schema refuses, an unknown key) as a
    # block of text and exits 1. With its documented HYDRA_FULL_ERROR it raises instead, and the
    # error becomes one line here; the variable is dropped once the config is composed, so an
    # error of the task itself is reported as before. A user's own HYDRA_FULL_ERROR is kept.
    full_error = "HYDRA_FULL_ERROR" in os.environ
    if not full_error:
        os.environ["HYDRA_FULL_ERROR"] = "1"

    @hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
    def _main(cfg: DictConfig) -> None:
        if not full_error:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        try:
            check_names(cfg)
            task(cfg)
        except (InputError, TrackingError) as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)
        except KeyboardInterrupt:
            sys.exit(130)

    try:
        _main()
    except (HydraException, OmegaConfBaseException) as exc:
        if full_error:
            raise
        print(f"error: {composition_error(exc, sys.argv[1:])}", file=sys.stderr, flush=True)
        sys.exit(2)
    finally:
        if not full_error:
            os.environ.pop("HYDRA_FULL_ERROR", None)


def check_files(overrides: Sequence[str] | None = None) -> None:
    """Refuse an ``+input=`` that is no file of this machine, and an ``+input=`` or
    ``+output=`` that is a cluster URI, from the command line (default: this process's): in the
    second before the config is composed rather than after it (a mistyped file name is the
    likeliest mistake of the commands that read a file). A value with an interpolation, or a
    multirun's, is left to the command."""
    overrides = sys.argv[1:] if overrides is None else overrides
    if "--multirun" in overrides or "-m" in overrides:
        return
    given = {key: given_value(key, overrides) for key in ("input", "output")}
    paths = {key: local_path(v) for key, v in given.items() if v and "${" not in v}
    if "input" in paths:
        refuse_no_file(paths["input"])


def check_names(cfg: DictConfig) -> None:
    """Refuse, before any command writes, an experiment name that would leave its folders
    (the study's journal, the artifacts and audiences are filed under it) and a registered
    model name that MLflow refuses or that would break ``models:/<name>@<alias>``."""
    for key, value, forbidden, why in (
        ("experiment_name", cfg.experiment_name, "/\\", "it names folders"),
        (
            "tracking.registered_model_name",
            cfg.tracking.registered_model_name,
            "/:@",
            "it is part of models:/<name>@<alias>",
        ),
    ):
        name = str(value)
        if not name.strip():
            raise InputError(f"{key}={name!r}: expected a name ({why})")
        if name.startswith(".") or any(c in name for c in forbidden):
            raise InputError(
                f"{key}={name!r}: expected a name without {' or '.join(forbidden)}, not "
                f"starting with . ({why})"
            )


def sweep_main() -> None:
    """``segmentation-sweep``: run or resume the configured sweep (on the configured engine)."""

    run_cli(lambda cfg: engine(cfg.engine).sweep(cfg), _start_pool_server)


def _start_pool_server() -> None:
    """Start the artifact pool's fork server before the config is composed: its imports then
    run beside Hydra's compose and the sweep's own imports instead of after them, and the pool
    is up when the sweep first needs it."""
    if pool_expected(sys.argv[1:]):
        from segmentation.study.processes import start_pool_server

        start_pool_server()


def pool_expected(overrides: Sequence[str]) -> bool:
    """Whether a sweep run with these overrides will use the artifact pool: the defaults do
    (the local engine, one sweep worker, artifact workers); a command line that turns any of
    them off does not. (A preset that turned it off would leave an idle process that ends with
    the sweep.)"""
    artifact_workers = given_value("tracking.artifact_workers", overrides)
    sweep_workers = given_value("sweep.workers", overrides)
    return (
        given_value("engine", overrides) in (None, "local")
        and (artifact_workers is None or artifact_workers.strip() not in ("0", "null"))
        and (sweep_workers is None or sweep_workers.strip() == "1")
    )


def report_task(cfg: DictConfig) -> object:
    """Write the sweep report of ``+run_id`` (default: the experiment's latest sweep) to
    ``reports/`` (or ``+output``); with ``+persona_table=true``, log and print the persona table of
    ``+run_id`` (any trial run, or a sweep's best trial) instead."""
    from segmentation.features.space import SpaceConfig
    from segmentation.serving.personas import log_run_personas, persona_text
    from segmentation.tracking.reports import latest_sweep_run, write_report
    from segmentation.tracking.store import connect

    run_id = OmegaConf.select(cfg, "run_id", default=None)
    if OmegaConf.select(cfg, "persona_table", default=False):
        client = connect(str(cfg.paths.tracking_uri))
        run_id = run_id or latest_sweep_run(client, str(cfg.experiment_name))
        segments = log_run_personas(SpaceConfig.of(cfg), cfg.get("personas"), client, str(run_id))
        print(persona_text(segments), flush=True)
        return segments.personas
    output = OmegaConf.select(cfg, "output", default=None)
    path = write_report(cfg.paths, str(cfg.experiment_name), run_id, output)
    print(f"Report written to {path}", flush=True)
    return path


def report_main() -> None:
    """``segmentation-report``: the HTML report of a sweep (``make report RUN=<run id>``)."""
    run_cli(report_task)


def _overrides(cfg: DictConfig, *keys: str) -> dict[str, str | None]:
    """Values given on the command line with ``+key=value`` (absent: ``None``); an ``input``
    or ``output`` as a path of this machine (a ``file://`` URI's path, another URI refused)."""
    given = {key: (str(cfg[key]) if cfg.get(key) not in (None, "") else None) for key in keys}
    paths = [key for key in ("input", "output") if given.get(key)]
    given.update({key: str(local_path(given[key])) for key in paths})
    return given


def promote_main() -> None:
    """``segmentation-promote``: move ``champion`` to the latest sweep's best (or ``+run_id``)."""

    def task(cfg: DictConfig) -> None:
        from segmentation.promotion.promote import describe, promote

        given = _overrides(cfg, "run_id", "input")
        print(describe(promote(cfg, given["run_id"], given["input"])), flush=True)

    run_cli(task, check_files)


def rollback_main() -> None:
    """``segmentation-rollback``: move ``champion`` back to the ``previous`` version."""

    def task(cfg: DictConfig) -> None:
        from segmentation.promotion.promote import describe, rollback
        from segmentation.tracking.store import connect

        client = connect(str(cfg.paths.tracking_uri))
        print(describe(rollback(client, cfg.tracking), "rolled back"), flush=True)

    run_cli(task)


def predict_main() -> None:
    """``segmentation-predict``: score ``+input=file`` into ``+output=file``."""

    def task(cfg: DictConfig) -> None:
        given = _overrides(cfg, "input", "output", "model_uri")
        if not given["input"] or not given["output"]:
            raise InputError("predict needs +input=<customers file> and +output=<segments file>")
        runner = engine(cfg.engine)
        model = ModelRef.of(cfg.tracking, cfg.paths, given["model_uri"])
        runner.report(runner.score(cfg.dataset, model, given["input"], given["output"]))

    run_cli(task, check_files)


def audiences_task(cfg: DictConfig) -> object:
    """Write the audiences of ``+input=file`` (one upload file per segment, holdouts with
    ``audiences.holdout.share``) into ``+output=folder`` (default ``audiences.output_dir``)."""
    from segmentation.serving.audiences import export_audiences
    from segmentation.serving.audiences import report as audiences_report

    given = _overrides(cfg, "input", "output", "model_uri")
    if not given["input"]:
        raise InputError("audiences needs +input=<customers file> (make audiences INPUT=file)")
    export = export_audiences(
        cfg.dataset,
        cfg.audiences,
        str(cfg.experiment_name),
        ModelRef.of(cfg.tracking, cfg.paths, given["model_uri"]),
        given["input"],
        given["output"],
    )
    audiences_report(export)
    return export


def audiences_main() -> None:
    """``segmentation-audiences``: upload files per segment (``make audiences INPUT=file``)."""
    run_cli(audiences_task, check_files)


def model_uri_main() -> None:
    """``segmentation-model-uri``: print the champion's URI of the config (for ``make serve``)."""
    run_cli(lambda cfg: print(champion_uri(cfg.tracking), flush=True))


def dashboard_task(cfg: DictConfig) -> None:
    """Serve the study storage of the config (the journal file, or PostgreSQL with
    ``storage=postgres``) in optuna-dashboard on 127.0.0.1 (``+port=``, default 8080)."""
    # Only `make dashboard` needs them; every other command would pay their import.
    from wsgiref.simple_server import make_server

    from optuna_dashboard import wsgi

    from segmentation.study.storage import study_storage

    given = OmegaConf.select(cfg, "port", default=8080)
    port = int(given) if str(given).isdigit() else 0
    if not 1 <= port <= 65535:
        raise InputError(f"port={given}: expected a TCP port number from 1 to 65535")
    storage = study_storage(cfg.storage, cfg.sweep, cfg.paths, str(cfg.experiment_name))
    try:
        server = make_server("127.0.0.1", port, wsgi(storage))
    except OSError as exc:  # the port taken, or reserved
        raise InputError(f"port={port}: cannot serve on 127.0.0.1 ({exc.strerror})") from None
    # Served from a thread: wsgiref's handler catches a Ctrl-C that lands while it answers a
    # request and goes on serving; the main thread only waits, so the Ctrl-C reaches it.
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"optuna-dashboard on http://127.0.0.1:{port} (Ctrl-C stops it)", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()


def dashboard_main() -> None:
    """``segmentation-dashboard``: the studies in optuna-dashboard (``make dashboard``)."""
    run_cli(dashboard_task)


def drift_task(cfg: DictConfig) -> None:
    """Check ``+input=file`` against the model's training data (``+model_uri``, default the
    champion; ``+output=dir`` for the reports); exit 3 when a threshold is crossed."""
    given = _overrides(cfg, "input", "model_uri", "output")
    if not given["input"]:
        raise InputError("drift needs +input=<customers file> (make drift INPUT=file)")
    # SciPy: drift's alone.
    from segmentation.monitoring.check import EXIT_OVER_THRESHOLD, check_drift, print_check

    check = check_drift(
        cfg.dataset,
        cfg.monitoring,
        cfg.paths,
        str(cfg.experiment_name),
        ModelRef.of(cfg.tracking, cfg.paths, given["model_uri"]),
        given["input"],
        given["output"],
    )
    print_check(check)
    if check.report["over_threshold"]:
        sys.exit(EXIT_OVER_THRESHOLD)


def drift_main() -> None:
    """``segmentation-drift``: drift of a new batch (``make drift INPUT=file``)."""
    run_cli(drift_task, check_files)
