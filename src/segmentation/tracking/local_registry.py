"""A registered segment model of a local SQLite store, loaded without MLflow.

Batch scoring of a short file is mostly start-up, and most of that was MLflow's (its import,
its SQL store, the pyfunc loader; bench-results, section "Issue 23"). When the
store is a local SQLite file, the model version an alias or number names is read from the
registry's own tables, and the model from its folder through its MLmodel file (MLflow's
documented model format): the :class:`~segmentation.tracking.segmenter.Segmenter` its pipeline
and card artifacts make. The registry tables are MLflow's internals (README, "Scoring without
MLflow's start-up"; ``mlflow<4`` in pyproject.toml): whatever this module does not find as it
expects (another store, schema or model kind, a missing alias, workspaces) gives ``None`` and
the caller takes MLflow's own route, which also gives every refusal its words.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from contextlib import closing
from pathlib import Path
from urllib.parse import unquote, urlparse

import yaml

from segmentation.tracking.segmenter import ScoringModel, Segmenter

# models:/<name>@<alias> or models:/<name>/<version>
_MODEL_URI = re.compile(r"models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))")

# The version's folder, by alias or by number, of the default workspace; only versions MLflow
# finished registering.
_BY_ALIAS = """
SELECT v.storage_location FROM registered_model_aliases AS a
JOIN model_versions AS v
  ON v.workspace = a.workspace AND v.name = a.name AND v.version = a.version
WHERE a.workspace = 'default' AND a.name = ? AND a.alias = ? AND v.status = 'READY'
"""
_BY_VERSION = """
SELECT storage_location FROM model_versions
WHERE workspace = 'default' AND name = ? AND version = ? AND status = 'READY'
"""


def model_folder(tracking_uri: str, model_uri: str) -> Path | None:
    """The local folder of the model version ``model_uri`` (``models:/name@alias`` or
    ``models:/name/version``) of the SQLite store ``tracking_uri``, read from the registry's
    tables as they are now; ``None`` where MLflow's own route is needed."""
    store = re.fullmatch(r"sqlite:///(.+)", tracking_uri)
    wanted = _MODEL_URI.fullmatch(model_uri)
    workspaces = os.environ.get("MLFLOW_ENABLE_WORKSPACES", "").lower() in ("1", "true")
    if store is None or wanted is None or workspaces or os.environ.get("MLFLOW_WORKSPACE"):
        return None
    database = Path(store.group(1))
    if not database.is_file():
        return None
    name, alias, version = wanted.group("name", "alias", "version")
    try:
        with closing(sqlite3.connect(database, timeout=30)) as db:
            db.execute("PRAGMA query_only = ON")
            row = db.execute(
                *((_BY_ALIAS, (name, alias)) if alias else (_BY_VERSION, (name, int(version))))
            ).fetchone()
    except sqlite3.Error:  # another schema, a locked or unreadable file
        return None
    if row is None or not row[0]:
        return None
    location = urlparse(row[0])
    if location.scheme not in ("", "file") or location.netloc not in ("", "localhost"):
        return None
    folder = Path(unquote(location.path))
    return folder if (folder / "MLmodel").is_file() else None


def load_local(tracking_uri: str, model_uri: str) -> ScoringModel | None:
    """The segment model ``model_uri`` of the SQLite store ``tracking_uri`` (see
    :func:`model_folder`), or ``None`` where MLflow's own route is needed (another kind of
    model among them)."""
    folder = model_folder(tracking_uri, model_uri)
    if folder is None:
        return None
    try:
        spec = yaml.safe_load((folder / "MLmodel").read_text(encoding="utf-8"))
        flavor = spec["flavors"]["python_function"]
        artifacts = flavor["artifacts"]
        inputs = json.loads(spec["signature"]["inputs"])
        pipeline = folder / artifacts["pipeline"]["path"]
        card = folder / artifacts["card"]["path"]
        ours = Path(str(flavor.get("model_code_path"))).name == "logged_model.py"
        names = [str(column["name"]) for column in inputs]
    except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError):
        return None
    if not ours or not pipeline.is_file() or not card.is_file():
        return None
    segmenter = Segmenter()
    segmenter.load(pipeline, card)
    return ScoringModel(segmenter, names)
