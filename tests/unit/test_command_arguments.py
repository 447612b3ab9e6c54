"""A command's own arguments (`RUN=`, `DASHBOARD_PORT=`, `INPUT=`) that cannot be used: one
line naming the argument, exit 2 (they were tracebacks with exit 1, or a wrong reason)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from segmentation import cli
from tests.conftest import run_main


def _run(main, monkeypatch, store, tmp_path, *args: str) -> int:
    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    return run_main(
        main,
        monkeypatch,
        *args,
        f"paths.mlruns_dir={store}",
        f"paths.reports_dir={tmp_path / 'reports'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )


@pytest.mark.parametrize("command", ["report_main", "promote_main"])
def test_a_run_the_store_lacks_is_one_line(command, store, tmp_path, monkeypatch, capsys):
    code = _run(getattr(cli, command), monkeypatch, store, tmp_path, "+run_id=nope")
    assert (code, capsys.readouterr().err.splitlines()) == (
        2,
        [f"error: run nope: not found in sqlite:///{store / 'mlflow.db'}"],
    )
    assert not (tmp_path / "reports").exists()


def test_a_dashboard_port_that_is_none_or_taken_is_one_line(store, tmp_path, monkeypatch, capsys):
    for port in ("abc", "0", "99999"):
        code = _run(cli.dashboard_main, monkeypatch, store, tmp_path, f"+port={port}")
        assert (code, capsys.readouterr().err.splitlines()) == (
            2,
            [f"error: port={port}: expected a TCP port number from 1 to 65535"],
        )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = _run(cli.dashboard_main, monkeypatch, store, tmp_path, f"+port={port}")
    assert (code, capsys.readouterr().err.splitlines()) == (
        2,
        [f"error: port={port}: cannot serve on 127.0.0.1 (Address already in use)"],
    )


INPUT_COMMANDS = [
    ("predict_main", ["+output={tmp}/out.csv"]),
    ("audiences_main", ["+output={tmp}/audiences"]),
    ("drift_main", []),
    ("promote_main", []),
]


@pytest.mark.parametrize(("command", "args"), INPUT_COMMANDS)
def test_an_input_that_is_a_folder_or_missing_is_one_line_before_the_config(
    command, args, store, tmp_path, monkeypatch, capsys
):
    """A folder given as INPUT= (the local engine reads one file) is named as a folder, not as
    a file that is not found; a mistyped INPUT= is refused before the config is composed (it
    took five seconds): Hydra's run folder is not even made, and nothing is written."""
    folder = tmp_path / "exports"
    folder.mkdir()
    given = [a.format(tmp=tmp_path) for a in args]
    main = getattr(cli, command)
    for path, what in ((folder, "a folder, not a file"), (folder / "c.csv", "file not found")):
        code = _run(main, monkeypatch, store, tmp_path, f"+input={path}", *given)
        assert (code, capsys.readouterr().err.splitlines()) == (
            2,
            [f"error: {path}: {what} (expected a CSV or Parquet customer file)"],
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exports", "mlruns"]
    assert list(store.iterdir()) == []


@pytest.mark.parametrize(
    ("command", "args", "uri"),
    [
        ("predict_main", ["+input=hdfs:///customers/c.csv", "+output={tmp}/out.csv"], "hdfs"),
        ("predict_main", ["+input={tmp}/c.csv", "+output=s3a://bucket/out.csv"], "s3a"),
        ("audiences_main", ["+input=gs://bucket/c.csv"], "gs"),
        ("sweep_main", ["paths.data_dir=hdfs:///customers"], "hdfs"),
    ],
)
def test_a_cluster_uri_is_one_line_not_a_folder_named_after_it(
    command, args, uri, store, tmp_path, monkeypatch, capsys
):
    """A cluster file system's URI (the README's Spark example used one) was taken for a relative
    folder named `hdfs:`: the sweep found no file there and trained on the synthetic stand-in.
    Every command now refuses it in one line, before anything is written."""
    given = [a.format(tmp=tmp_path) for a in args]
    code = _run(getattr(cli, command), monkeypatch, store, tmp_path, *given)
    lines = capsys.readouterr().err.splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert (
        f": a URI ({uri}://); files are read and written on this machine's file system" in lines[0]
    )
    assert list(store.iterdir()) == [] and not any(
        p.name.endswith(":") for p in tmp_path.rglob("*")
    )


def test_a_file_uri_is_its_path():
    from segmentation.locations import local_path

    assert str(local_path("file:///tmp/my%20customers.csv")) == "/tmp/my customers.csv"
    assert str(local_path("FILE:///data/c.csv")) == "/data/c.csv"
    assert str(local_path("relative/c.csv")) == "relative/c.csv"
    assert local_path("~/c.csv") == Path.home() / "c.csv"
