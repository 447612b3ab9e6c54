"""Shared fixtures: the real config composed and shrunk, a temporary tracking store."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
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


@dataclass(frozen=True)
class Promoted:
    """A finished sweep whose best is the champion (version 1)."""

    store: Path
    cfg: object
    result: object  # the sweep's SweepResult

    @property
    def name(self) -> str:
        return str(self.cfg.tracking.registered_model_name)

    def cli_args(self) -> list[str]:
        """The command line's overrides for this store (`ARGS=` of make, or the console
        scripts'), Hydra's own folder and the reports under the store's folder."""
        return [
            *PROMOTED_SWEEP,
            f"paths.mlruns_dir={self.store}",
            f"paths.data_dir={self.store / 'no-data'}",
            f"paths.reports_dir={self.store.parent / 'reports'}",
            f"hydra.run.dir={self.store.parent / 'hydra'}",
        ]


@pytest.fixture(scope="session")
def promoted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Promoted]:
    """One swept-and-promoted store for every test that only reads a finished sweep (scoring,
    serving, drift, the engines). Its users add runs (monitoring, predictions) but never move
    its aliases or register versions: a test that promotes builds its own store."""
    from segmentation.promotion.promote import promote
    from segmentation.study.sweep import run_sweep

    with module_store(tmp_path_factory, "promoted") as store:
        cfg = make_cfg(store, *PROMOTED_SWEEP)
        result = run_sweep(cfg)
        done = promote(cfg)
        assert done.changed and done.version == "1"
        yield Promoted(store, cfg, result)


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
