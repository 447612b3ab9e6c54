"""Champion against challenger: the challenger's segments renumbered to match the champion's,
and who changes segment if it is promoted (:mod:`segmentation.promotion.alignment`)."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import LoggedModelOutput
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from segmentation.data import load_dataset, load_file
from segmentation.promotion.alignment import (
    align_segments,
    migration_heatmap,
    migration_html,
    migration_markdown,
    migration_report,
    relabel,
    transition_frame,
)
from segmentation.tracking.model import SegmentModel, log_segment_model


@dataclass
class Migration:
    """A challenger aligned to the champion, and what promoting it changes."""

    report: dict[str, Any]
    model: SegmentModel  # the challenger, renumbered: matched segments keep champion ids
    customers: pd.DataFrame


def customers(dataset: DictConfig, input_path: str | Path | None = None) -> pd.DataFrame:
    """The customers both models score: ``input_path`` (read and cleaned as training reads a
    file), else the ``dataset`` group's training data; without the id column (no model input)."""
    data = load_file(input_path, dataset) if input_path else load_dataset(dataset)
    id_column = dataset.get("id_column")
    return data.frame.drop(columns=[id_column], errors="ignore").reset_index(drop=True)


def compare(
    champion: mlflow.pyfunc.PyFuncModel, challenger: SegmentModel, frame: pd.DataFrame
) -> Migration:
    """Score ``frame`` with both, align the challenger's segment ids to the champion's and
    report the migration. A matched segment takes the champion's id and persona name."""
    before = champion.predict(frame)["segment"].to_numpy()
    old_names = champion.unwrap_python_model().personas
    raw = challenger.predict(None, frame)["segment"].to_numpy()
    mapping = align_segments(before, raw, reserved=old_names.keys())
    matched = {new for new in mapping.values() if new in set(before.tolist()) and new != -1}
    names = {
        mapping[old]: (old_names[mapping[old]] if mapping[old] in matched else name)
        for old, name in challenger.personas.items()
        if old in mapping
    }
    reference = dict(challenger.reference)
    if reference.get("segments"):
        reference["segments"] = [
            {**row, "segment": mapping.get(int(row["segment"]), int(row["segment"]))}
            for row in reference["segments"]
        ]
        reference["personas"] = {str(k): v for k, v in names.items()}
    aligned = SegmentModel(
        challenger.pipeline,
        names,
        challenger.inputs,
        relabel={k: v for k, v in mapping.items() if k != v},
        reference=reference,
    )
    after = relabel(raw, mapping)
    return Migration(migration_report(before, after, old_names, names), aligned, frame)


def log_aligned_model(
    client: MlflowClient, run_id: str, migration: Migration, name: str
) -> tuple[str, str]:
    """Log the aligned challenger into its run (with the migration report as JSON, CSV and a
    heatmap among the model's artifacts); returns its model URI and model id."""
    run = client.get_run(run_id)
    model_id = client.create_logged_model(
        run.info.experiment_id, name=name, source_run_id=run_id, params=run.data.params
    ).model_id
    client.log_outputs(run_id, models=[LoggedModelOutput(model_id, step=0)])
    info = log_segment_model(
        migration.model, migration.customers.head(5), client.tracking_uri, model_id=model_id
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "migration.json").write_text(json.dumps(migration.report, indent=1))
        transition_frame(migration.report).to_csv(out / "transitions.csv", index=False)
        migration_heatmap(migration.report, out / "transitions.png")
        (out / "migration.html").write_text(
            migration_html(migration.report, out / "transitions.png"), encoding="utf-8"
        )
        client.log_model_artifacts(info.model_id, tmp, "migration")
        client.log_artifacts(run_id, tmp, "migration")
    return info.model_uri, info.model_id


def headline_tags(report: dict[str, Any], champion_version: str) -> dict[str, str]:
    """The migration's headline figures, as version tags."""
    return {
        "migration.aligned_to": f"v{champion_version}",
        "migration.adjusted_rand_index": f"{report['adjusted_rand_index']:.4f}",
        "migration.reassigned_share": f"{report['reassigned_share']:.4f}",
        "migration.customers": str(report["n_customers"]),
    }


def description_section(report: dict[str, Any], champion_version: str) -> str:
    return f"**Migration from v{champion_version}**\n\n" + migration_markdown(report)
