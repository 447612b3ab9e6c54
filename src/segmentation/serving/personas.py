"""The persona table of any trial run (``make report ARGS=+persona_table=true``)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from segmentation.features.space import SpaceConfig, prepare_space
from segmentation.segments.describe import Segments, describe_segments, value_section
from segmentation.tracking import runs
from segmentation.tracking.model import load_pyfunc


def log_run_personas(
    space_cfg: SpaceConfig, personas: DictConfig | None, client: MlflowClient, run_id: str
) -> Segments:
    """Personas (named by the ``personas`` group) and value table of a trial run (a sweep run:
    its best trial), logged to that run.

    The run's own fitted model segments the data of ``space_cfg``, so the names match its model.
    """
    run = client.get_run(run_id)
    if run.data.tags.get(runs.ROLE_TAG) == "sweep":
        run_id = run.data.tags["best_run_id"]
        run = client.get_run(run_id)
    model_id = run.data.tags.get(runs.MODEL_ID_TAG)
    space = prepare_space(space_cfg)
    model = load_pyfunc(f"models:/{model_id}", client.tracking_uri).unwrap_python_model()
    clusterer = model.pipeline[-1]
    fitted = getattr(clusterer, "labels_", None)
    labels = (
        np.asarray(fitted)
        if fitted is not None and len(fitted) == space.n_rows
        else np.asarray(clusterer.predict(space.X))
    )
    segments = describe_segments(personas, space, labels, clusterer)
    with tempfile.TemporaryDirectory() as tmp:
        segments.write(Path(tmp))
        client.log_artifacts(run_id, tmp, "segments")
    return segments


def persona_text(segments: Segments) -> str:
    """The persona table (name, the rule that named it, size, share, first recommendation)
    and the value table, for the terminal."""
    table = segments.personas.assign(
        share=[f"{v:.1%}" for v in segments.personas["share"]],
        first_recommendation=[r[0] if r else "" for r in segments.personas["recommendations"]],
    )
    columns = ["segment", "name", "naming", "size", "share", "first_recommendation"]
    lines = [table[columns].to_string(index=False), ""]
    lines += [f"{row.segment} {row.name}: {row.rule}" for row in segments.personas.itertuples()]
    section = value_section(segments)
    if section:
        lines += ["", "Segment value", section[1]]
    return "\n".join(lines)
