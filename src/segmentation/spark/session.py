"""The SparkSession of a run: master, Java and pyspark checked first, Spark's log lines kept out
of the terminal, and Spark's errors turned into the project's one-line errors."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from segmentation.errors import InputError

DEFAULT_MASTER = "local[*]"
MASTER_TIMEOUT_SECONDS = 5.0
_LOG4J = """\
rootLogger.level = warn
rootLogger.appenderRef.file.ref = file
appender.file.type = File
appender.file.name = file
appender.file.fileName = {path}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{{yy/MM/dd HH:mm:ss}} %p %c{{1}}: %m%n
"""


def master_url(engine: DictConfig) -> str:
    """``engine.master``, else ``SPARK_MASTER``, else ``local[*]``."""
    return str(engine.master or os.environ.get("SPARK_MASTER") or DEFAULT_MASTER)


def java_path() -> str:
    """The ``java`` Spark will start (``JAVA_HOME`` first); one line when there is none."""
    home = os.environ.get("JAVA_HOME")
    candidate = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not candidate or not os.access(candidate, os.X_OK):
        where = f"JAVA_HOME={home}" if home else "PATH"
        raise InputError(
            f"engine=spark needs Java 17 and none was found on {where}: install it with "
            "`make spark-install` (Debian: apt-get install openjdk-17-jre-headless)"
        )
    return candidate


def require_pyspark() -> None:
    """Refuse in one line when pyspark (the ``spark`` extra) is not installed."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise InputError(
            "engine=spark needs pyspark: install it with `make spark-install` "
            "(pip install -e '.[spark]')"
        ) from None


def check_master(master: str, timeout: float = MASTER_TIMEOUT_SECONDS) -> None:
    """Refuse a standalone master (``spark://host:port[,host:port]``) no host of which answers
    (Spark itself retries for minutes before it gives up)."""
    match = re.match(r"spark://(.+)", master)
    if not match:
        return
    hosts = match.group(1).split(",")
    for host_port in hosts:
        host, _, port = host_port.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout):
                return
        except (OSError, ValueError):
            continue
    raise InputError(f"Spark master {master} cannot be reached (no answer in {timeout:g} s)")


def check_engine(engine: DictConfig) -> None:
    """Refuse ``engine`` settings Spark cannot run with, before it starts: no shuffle
    partitions (its jobs wait forever), a driver memory that is no JVM size (the JVM exits
    before Spark can say why), an empty sample."""
    for key in ("shuffle_partitions", "sample_rows"):
        if int(engine[key]) < 1:
            raise InputError(f"engine.{key}={engine[key]}: expected a whole number >= 1")
    memory = str(engine.driver_memory)
    if not re.fullmatch(r"[1-9]\d*[kmgt]?b?", memory, flags=re.IGNORECASE):
        raise InputError(
            f"engine.driver_memory={memory}: expected a JVM memory size such as 4g or 512m"
        )


def log_file(engine: DictConfig) -> Path:
    """Where Spark's own log lines go (``engine.log_file``, else a file in the temp folder)."""
    given = engine.log_file
    path = (
        Path(given)
        if given
        else Path(tempfile.gettempdir()) / f"segmentation-spark-{os.getuid()}.log"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Point file descriptor 2 at ``path`` while the JVM starts: the JVM keeps it, so its
    start-up banner and log lines never reach the terminal; Python's stderr comes back after."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "a", encoding="utf-8") as target:
        os.dup2(target.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def get_session(engine: DictConfig) -> Any:
    """The process's SparkSession for the ``engine`` group (created once, then reused)."""
    require_pyspark()
    check_engine(engine)
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    master = master_url(engine)
    java_path()
    check_master(master)
    # The Python workers must run this interpreter (the one with the project and its pins).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    log_path = log_file(engine)
    log4j = log_path.with_suffix(".log4j2.properties")
    log4j.write_text(_LOG4J.format(path=log_path), encoding="utf-8")
    builder = (
        SparkSession.builder.master(master)
        .appName(str(engine.app_name))
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", str(engine.shuffle_partitions))
        .config("spark.driver.memory", str(engine.driver_memory))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # Fewer, larger pandas batches: each batch pays the dataset's checks and a model call.
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "50000")
        .config("spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile={log4j}")
        .config("spark.executor.extraJavaOptions", f"-Dlog4j2.configurationFile={log4j}")
    )
    for key, value in (engine.conf or {}).items():
        builder = builder.config(str(key), str(value))
    try:
        with _stderr_to(log_path):
            spark = builder.getOrCreate()
    except Exception as exc:
        raise InputError(f"Spark ({master}) did not start: {first_line(exc)}") from None
    spark.sparkContext.setLogLevel("WARN")
    # py4j logs each closed connection at INFO, which Hydra's logging would print.
    logging.getLogger("py4j").setLevel(logging.WARNING)
    return spark


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an error, or its type."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


_PROJECT_ERROR = re.compile(r"segmentation\.errors\.(?:InputError|TrackingError): (.+)")


@contextmanager
def spark_errors(what: str) -> Iterator[None]:
    """Run Spark actions, turning a project error raised in a Python worker (bad data in one
    partition) back into one :class:`InputError` line, and any other failure into one line
    naming ``what`` failed."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    try:
        yield
    except (PySparkException, Py4JError) as exc:
        found = _PROJECT_ERROR.search(str(exc))
        if found:
            raise InputError(found.group(1).strip()) from None
        raise InputError(f"{what}: {first_line(exc)}") from None
