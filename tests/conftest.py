"""Shared fixtures: the real config composed and shrunk, a temporary tracking store, and the
session's finished sweeps (one per distinct config, copied for the tests that change them)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from segmentation.config import compose

DATA_DIR = Path(os.environ.get("DATA_DIR", "../shared/data")).resolve()
SRC = Path(__file__).parents[1] / "src"
SERVER_START_TIMEOUT = 120
# A quick retail sweep: two KMeans trials, no plots.
QUICK_RETAIL = (
    "experiments=retail_rfm",
    "sweep.n_trials=2",
    "algorithm=kmeans",
    "tracking.log_plots=false",
)
# A sweep without plots and models: what tests of the study itself need.
FAST = ("algorithm=kmeans", "tracking.log_plots=false", "tracking.log_models=false")
# The shared store's sweep: three KMeans trials at k=4 on the synthetic Mall customers.
PROMOTED_K = 4
PROMOTED_SWEEP = (
    "algorithm=kmeans",
    f"algorithm.kmeans.search.n_clusters.low={PROMOTED_K}",
    f"algorithm.kmeans.search.n_clusters.high={PROMOTED_K}",
    "sweep.n_trials=3",
    "tracking.log_plots=false",
    "tracking.artifact_workers=0",
)


@pytest.fixture(scope="session", autouse=True)
def ctrl_c_as_in_a_terminal() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt, as in a terminal, even when the runner started the tests
    as a background job (whose SIGINT the shell ignores, and every child process inherits): the
    tests of Ctrl-C send real SIGINTs, to this process and to the commands they start."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def missing(reason: str) -> None:
    """Skip a test whose requirement is absent; in our CI (.ci/run sets SEGMENTATION_CI=1,
    not the CI=true every hosted service sets) fail instead, so that CI cannot skip it."""
    if os.environ.get("SEGMENTATION_CI"):
        pytest.fail(f"our CI must run this test: {reason}")
    pytest.skip(reason, allow_module_level=True)  # also from a module's top (test_spark)


def real_file(name: str) -> Path:
    """A real data file from DATA_DIR; skipped when absent (failed in our CI)."""
    path = DATA_DIR / name
    if not path.is_file():
        missing(f"{path} not available (set DATA_DIR)")
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


# A sweep with plots, two algorithms and three features: the report's figures, every kind of
# trial artifact (tests/integration/test_report.py, test_sweep.py).
REPORT_SWEEP = (
    "sweep.n_trials=4",
    "algorithm=[kmeans,gmm]",
    "features=age_income_spending",
    "sweep.stability.bootstraps=4",
    "sweep.constraints.k_max=6",
)
# The retail store's sweep: two KMeans trials on 400 synthetic retail customers.
RETAIL_SWEEP = (*QUICK_RETAIL, "dataset.synthetic_rows=400")


@dataclass(frozen=True)
class Swept:
    """A finished sweep in a store of its own: its overrides, config and ``SweepResult``."""

    store: Path
    overrides: tuple[str, ...]
    cfg: object
    result: object
    # The shared stores of this sweep (its live store and snapshot), whose logged models a
    # private copy must leave as they are (see ``private_copy``).
    shared: tuple[Path, ...] = ()

    @property
    def name(self) -> str:
        return str(self.cfg.tracking.registered_model_name)

    @property
    def best_run(self) -> str:
        return str(self.result.best_trial.user_attrs["mlflow_run_id"])

    def cli_args(self) -> list[str]:
        """The command line's overrides for this store (`ARGS=` of make, or the console
        scripts'), Hydra's own folder and the reports under the store's folder."""
        return [
            *self.overrides,
            f"paths.mlruns_dir={self.store}",
            f"paths.data_dir={self.store / 'no-data'}",
            f"paths.reports_dir={self.store.parent / 'reports'}",
            f"hydra.run.dir={self.store.parent / 'hydra'}",
        ]

    def copy(self, folder: Path) -> Swept:
        """A copy of this store under ``folder``: the same runs, models and versions (the same
        ids), in a database of its own (see :func:`copy_store`). Tests use ``private_copy``."""
        store = copy_store(self.store, folder / "mlruns")
        cfg = make_cfg(store, *self.overrides)
        return Swept(store, self.overrides, cfg, self.result, self.shared)


@contextmanager
def private_copy(source: Swept, folder: Path) -> Iterator[Swept]:
    """A private copy of a shared store for a test that changes its registry: promotes, rolls
    back, registers versions, logs new runs and models.

    MLflow resolves a run's or logged model's artifact folder once per process, by id (its
    tracking client caches it): an artifact logged into an existing run or model of the copy
    lands in the store where that id was first used, the shared one. Such a test logs a new
    run or model instead. Checked on leaving: the shared stores' logged models are as they
    were (the files scoring reads; MLflow's own ``registered_model_meta`` aside)."""
    before = {store: model_files(store) for store in source.shared}
    yield source.copy(folder)
    for store, files in before.items():
        assert model_files(store) == files, f"a private copy changed the shared store {store}"


def model_files(store: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of every file of the store's logged models."""
    return {
        str(path.relative_to(store)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in store.glob("artifacts/*/models/**/*")
        if path.is_file() and path.name != "registered_model_meta"
    }


def copy_store(source: Path, target: Path) -> Path:
    """Copy a local store folder (MLflow's SQLite file, its artifacts, the Optuna journals)
    while nothing writes to it. MLflow records artifact locations as absolute paths (of
    experiments, runs, logged models and model versions; the data path param too): every
    one under ``source`` is rewritten to ``target`` in the copy, so that the copy's new runs
    and models are stored in the copy (but see ``private_copy``). Checked: no text in the
    copy's database names ``source`` (files such as MLmodel or config.yaml still mention it,
    for information only)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("mlflow.db*"))
    old, new = str(source), str(target)
    with (
        closing(sqlite3.connect(source / "mlflow.db")) as src,
        closing(sqlite3.connect(target / "mlflow.db")) as dst,
    ):
        src.backup(dst)
        columns = text_columns(dst)
        with dst:  # one transaction
            for table, column in columns:
                dst.execute(
                    f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                    f'WHERE instr("{column}", ?) > 0',
                    (old, new, old),
                )
        left = [
            (table, column)
            for table, column in columns
            if dst.execute(
                f'SELECT 1 FROM "{table}" WHERE instr("{column}", ?) > 0 LIMIT 1', (old,)
            ).fetchone()
        ]
    assert not left, f"the copy still names {source} in {left}"
    return target


def text_columns(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """Every (table, column) of text in a SQLite database."""
    tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    return [
        (table, column[1])
        for table in tables
        for column in db.execute(f'PRAGMA table_info("{table}")')
        if any(kind in column[2].upper() for kind in ("CHAR", "TEXT", "CLOB")) or not column[2]
    ]


class SweptStores:
    """The session's finished sweeps: at most one sweep per distinct list of overrides, run
    on first use. Each is kept twice: as swept (a snapshot taken before any promotion, read
    only) and live, its best promoted to champion on first use of :meth:`promoted`. Tests
    read either directly; a test that changes a store works on a ``private_copy`` of it."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self._factory = factory
        self._swept: dict[tuple[str, ...], tuple[Swept, Swept]] = {}
        self._promoted: dict[tuple[str, ...], Swept] = {}
        self.sweeps = 0  # how many sweeps ran (the count the session prints)

    def _sweep(self, overrides: tuple[str, ...]) -> tuple[Swept, Swept]:
        if overrides not in self._swept:
            from segmentation.study.sweep import run_sweep

            store = self._factory.mktemp("swept") / "mlruns"
            store.mkdir()
            cfg = make_cfg(store, *overrides)
            result = run_sweep(cfg)
            self.sweeps += 1
            folder = self._factory.mktemp("swept-snapshot")
            shared = (store, folder / "mlruns")
            live = Swept(store, overrides, cfg, result, shared)
            snapshot = live.copy(folder)
            self._swept[overrides] = (snapshot, live)
        return self._swept[overrides]

    def swept(self, *overrides: str) -> Swept:
        """The sweep of ``overrides`` as it finished (its best registered, nothing promoted)."""
        return self._sweep(overrides)[0]

    def promoted(self, *overrides: str) -> Swept:
        """The sweep of ``overrides`` with its best promoted to champion (version 1)."""
        if overrides not in self._promoted:
            from segmentation.promotion.promote import promote

            live = self._sweep(overrides)[1]
            done = promote(live.cfg)
            assert done.changed and done.version == "1" and done.migration is None
            self._promoted[overrides] = live
        return self._promoted[overrides]


SWEPT_STORES = pytest.StashKey[SweptStores]()


@pytest.fixture(scope="session")
def swept_stores(
    tmp_path_factory: pytest.TempPathFactory, pytestconfig: pytest.Config
) -> Iterator[SweptStores]:
    """The session's sweeps (see :class:`SweptStores`); MLFLOW_TRACKING_URI unset meanwhile."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        stores = SweptStores(tmp_path_factory)
        pytestconfig.stash[SWEPT_STORES] = stores
        yield stores


SHARED_SWEEPS = pytest.StashKey[int]()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A test process of pytest-xdist hands its count of shared sweeps to the controller."""
    stores = session.config.stash.get(SWEPT_STORES, None)
    if stores is not None and hasattr(session.config, "workeroutput"):
        session.config.workeroutput["shared_sweeps"] = stores.sweeps


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """The controller adds up its test processes' shared sweeps."""
    sweeps = getattr(node, "workeroutput", {}).get("shared_sweeps")
    if sweeps is not None:
        config = node.config
        config.stash[SHARED_SWEEPS] = config.stash.get(SHARED_SWEEPS, 0) + sweeps


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    """How many shared sweeps the session ran: one per distinct config in each test process."""
    stores = config.stash.get(SWEPT_STORES, None)
    sweeps = stores.sweeps if stores is not None else config.stash.get(SHARED_SWEEPS, None)
    if sweeps is not None:
        terminalreporter.write_line(
            f"shared sweeps (one per distinct config and process): {sweeps}"
        )


@pytest.fixture(scope="session")
def promoted(swept_stores: SweptStores) -> Swept:
    """One swept-and-promoted store (PROMOTED_SWEEP) for every test that only reads a finished
    sweep (scoring, serving, drift, the engines). Its users add runs (monitoring,
    predictions) but never move its aliases or register versions: a test that does works on
    a ``private_copy`` of it (``promoted_copy``)."""
    return swept_stores.promoted(*PROMOTED_SWEEP)


@pytest.fixture
def promoted_copy(promoted: Swept, tmp_path: Path) -> Iterator[Swept]:
    """A private copy of ``promoted`` for one test that changes it (see ``private_copy``)."""
    with private_copy(promoted, tmp_path) as copy:
        yield copy


@pytest.fixture
def swept_copy(swept_stores: SweptStores, tmp_path: Path) -> Iterator[Swept]:
    """A private copy of PROMOTED_SWEEP's store before promotion (its best registered as
    version 1, no alias yet), for one test that promotes (see ``private_copy``)."""
    with private_copy(swept_stores.swept(*PROMOTED_SWEEP), tmp_path) as copy:
        yield copy


@pytest.fixture(scope="session")
def retail_promoted(swept_stores: SweptStores) -> Swept:
    """The quick retail sweep (RETAIL_SWEEP, synthetic customers who answer the last
    campaign), its best promoted: for tests that only read it (scoring, audiences)."""
    return swept_stores.promoted(*RETAIL_SWEEP)


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


# The bound of a wait on a condition: generous, as two cores are shared by several runs.
WAIT_BOUND = 120.0


def wait_until(
    condition: Callable[[], object],
    what: str | Callable[[], str],
    bound: float = WAIT_BOUND,
    poll: float = 0.05,
) -> object:
    """Poll ``condition`` until it returns something true (returned); fail naming ``what``
    (a text, or a function giving it at the time) after ``bound`` seconds. A condition may
    fail the test itself (e.g. on a process that died)."""
    deadline = time.monotonic() + bound
    while True:
        found = condition()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"waited {bound:g} s for {what() if callable(what) else what}")
        time.sleep(poll)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_model(model_uri: str, cfg, log_dir: Path) -> Iterator[str]:
    """`mlflow models serve` of ``model_uri`` (as `make serve` runs it) on a free local port;
    yields its URL once it answers /ping, and always stops it."""
    bin_dir = Path(sys.executable).parent
    port = free_port()
    log_path = log_dir / "serve.log"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": str(cfg.paths.tracking_uri),
        "PYTHONPATH": str(SRC),
    }
    started = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                str(bin_dir / "mlflow"),
                "models",
                "serve",
                "-m",
                model_uri,
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if proc.poll() is not None or time.perf_counter() - started > SERVER_START_TIMEOUT:
                pytest.fail(f"model server did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        print(f"\nmlflow models serve answered /ping after {time.perf_counter() - started:.1f}s")
        yield url
    finally:
        # The server runs its workers in its own process group: stop the whole group.
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def post(url: str, body: dict) -> tuple[int, dict]:
    """POST ``body`` as JSON to the server's /invocations: status and decoded reply."""
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.load(reply)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)
