"""A 2-worker sweep on a real, private PostgreSQL server (study and MLflow store)."""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import FAST, make_cfg, missing
from tests.integration.test_workers_sweeps import check_sweep

pytestmark = pytest.mark.postgres


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_postgres(args: list[str]) -> None:
    # PostgreSQL refuses to run as root: use the `postgres` system user then.
    cmd = args if os.geteuid() != 0 else ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(args)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=120)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A private server on 127.0.0.1 (trust auth, temp data dir), stopped whatever happens."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        missing("PostgreSQL binaries not installed (/usr/lib/postgresql/*/bin)")
    # Not under pytest's tmp dir: the postgres user cannot enter root's private folders.
    root = Path(tempfile.mkdtemp(prefix="seg-pg-", dir=os.environ.get("SEGMENTATION_PG_TMP")))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, port = root / "data", _free_port()
    _as_postgres(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]
    )
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {root}"
    _as_postgres(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(root / "log"),
            "-w",
            "start",
        ]
    )
    try:
        import psycopg

        with psycopg.connect(
            f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True
        ) as conn:
            # Two databases: Optuna and MLflow both keep an alembic_version table.
            conn.execute("CREATE DATABASE optuna")
            conn.execute("CREATE DATABASE mlflow")
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        _as_postgres([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(root, ignore_errors=True)


def test_two_workers_on_postgres(store, monkeypatch, postgres_url):
    from segmentation.study.sweep import run_sweep

    monkeypatch.setenv("SEGMENTATION_DB_URL", f"{postgres_url}/optuna")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"{postgres_url}/mlflow")
    cfg = make_cfg(store, "storage=postgres", "sweep.workers=2", "sweep.n_trials=4", *FAST)
    assert str(cfg.paths.tracking_uri).startswith("postgresql://")
    result = run_sweep(cfg)
    check_sweep(cfg, result, 4)
    assert not (Path(store) / "optuna").exists(), "nothing of the study is local"
