"""Where customer files are: a location a user gives (a path, a ``file://`` URI) as a path of
this machine, refused in one line when it is not one. Light (no pandas), so every command
checks its input file before composing its config."""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path

from segmentation.errors import InputError

_URI = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def local_path(location: str | Path) -> Path:
    """A data location as a path of this machine's file system (``~`` expanded): a ``file://``
    URI's path; another URI (``hdfs://``, ``s3a://``) is refused in one line (it was taken for a
    relative folder named ``hdfs:``, which the sweep then found missing and replaced with
    synthetic data)."""
    text = str(location)
    match = _URI.match(text)
    if match is None:
        return Path(text).expanduser()
    if match.group(1).lower() != "file":
        raise InputError(
            f"{text}: a URI ({match.group(1)}://); files are read and written on this machine's "
            "file system (a local folder, or a shared one mounted at the same path on every "
            "Spark executor): copy or mount the data there"
        )
    return Path(urllib.parse.unquote(urllib.parse.urlparse(text).path))


def refuse_no_file(path: Path) -> None:
    """Refuse a customer file that is not there, or is a folder, in one line."""
    if path.is_dir():
        raise InputError(f"{path}: a folder, not a file (expected a CSV or Parquet customer file)")
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected a CSV or Parquet customer file)")
