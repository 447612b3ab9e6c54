"""``make drift``: a new batch of customers against the model's training data.

The model carries what it needs of its training data (feature distributions and segment
shares, stored when it was logged); the batch is read and cleaned as batch scoring reads a
file (rows that cannot be scored are listed and counted), scored, and compared
(:mod:`segmentation.monitoring.drift`). The reports are written as HTML and JSON and logged as a
run of the ``<experiment>-monitoring`` MLflow experiment, so drift over months is one chart.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf

from segmentation.data.reading import file_sha256
from segmentation.errors import InputError
from segmentation.monitoring.drift import check_thresholds, drift_html, drift_report
from segmentation.promotion.aliases import ModelRef
from segmentation.serving.predict import LINE, REASON, SHOWN_REJECTIONS, score_rows
from segmentation.tracking.descriptions import NOTE_TAG, describe_experiment
from segmentation.tracking.runs import log_batch
from segmentation.tracking.store import experiment_id

# `make drift` exits with this when a threshold is crossed (0 within, 2 on bad input).
EXIT_OVER_THRESHOLD = 3


@dataclass
class DriftCheck:
    report: dict[str, Any]
    html: Path
    json: Path
    run_id: str


def model_features(model: Any, rows: pd.DataFrame) -> pd.DataFrame:
    """The model's features of ``rows`` before scaling (what its reference describes)."""
    features: Any = rows
    for name, step in model.pipeline.steps:
        features = step.transform(features)
        if name == "select":
            return pd.DataFrame(np.asarray(features, dtype=float), columns=list(step.columns))
    raise InputError("the model's pipeline has no feature selection step")


def metric_key(name: str) -> str:
    """A feature name as an MLflow metric key (letters, digits, ``_-. /`` only)."""
    return re.sub(r"[^\w\-. /]", "", name).strip()


def check_drift(
    dataset: DictConfig,
    monitoring: DictConfig,
    paths: DictConfig,
    experiment_name: str,
    model_ref: ModelRef,
    input_path: str | Path,
    output_dir: str | Path | None = None,
) -> DriftCheck:
    """Compare ``input_path`` (a file of the ``dataset`` group) with the model's training data
    against the ``monitoring`` group's thresholds; write the reports (``output_dir``, else
    under ``paths.reports_dir``) and log them to ``<experiment_name>-monitoring``."""
    thresholds = OmegaConf.to_container(monitoring.thresholds, resolve=True)
    check_thresholds(thresholds)  # before the batch is read
    scored = score_rows(dataset, model_ref, input_path)
    model = scored.model.segmenter
    if not model.reference:
        raise InputError(
            f"model {scored.model_uri} stores no training reference (logged before drift "
            "checks existed); promote a model of a newer sweep"
        )
    # Low confidence is judged against training: customers between segments were there too.
    increase = thresholds.pop("max_low_confidence_increase")
    trained = np.asarray(model.reference.get("confidence") or [], dtype=float)
    if len(trained):
        baseline = float(np.mean(trained < thresholds["low_confidence"]))
        thresholds["max_low_confidence_share"] = min(1.0, baseline + increase)
    try:
        report = drift_report(
            model.reference,
            model_features(model, scored.model_rows),
            scored.scored["segment"].to_numpy(),
            scored.scored["confidence"].to_numpy(),
            thresholds,
            personas=model.personas,
        )
    except InputError as exc:  # what is wrong with this batch: named with it
        rejected = f" ({len(scored.rejected)} row(s) rejected)" if len(scored.rejected) else ""
        raise InputError(f"{input_path}: {exc}{rejected}") from None
    report.update(
        {
            "model_uri": scored.model_uri,
            "input": str(Path(input_path).resolve()),
            "input_sha256": file_sha256(input_path),
            "rows_rejected": len(scored.rejected),
            "checked_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    )
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    out = Path(output_dir or Path(str(paths.reports_dir)) / f"drift-{stamp}")
    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "drift.json", out / "drift.html"
    json_path.write_text(json.dumps(report, indent=1, default=float), encoding="utf-8")
    title = f"Drift of {Path(input_path).name} against {scored.model_uri}"
    html_path.write_text(drift_html(report, title), encoding="utf-8")
    if len(scored.rejected):
        scored.rejected.to_csv(out / "rejected.csv", index=False)
    client = MlflowClient(model_ref.tracking_uri)
    run_id = log_check(client, experiment_name, paths.artifact_root, report, out)
    return DriftCheck(report, html_path, json_path, run_id)


def log_check(
    client: MlflowClient,
    experiment_name: str,
    artifact_root: str | None,
    report: dict[str, Any],
    out: Path,
) -> str:
    """One run of the ``<experiment>-monitoring`` experiment: metrics, tags, the reports."""
    name = f"{experiment_name}-monitoring"
    exp = experiment_id(client, name, artifact_root)
    describe_experiment(client, exp, f"Drift checks of the models of {experiment_name}.")
    metrics = {
        "rows_scored": report["n_rows"],
        "rows_rejected": report["rows_rejected"],
        "over_threshold": float(report["over_threshold"]),
        "segment_psi": report["segments"]["psi"],
    }
    for row in report["features"]:
        if row["psi"] is not None:
            metrics[f"psi.{metric_key(row['feature'])}"] = row["psi"]
    psis = [row["psi"] for row in report["features"] if row["psi"] is not None]
    if psis:
        metrics["max_feature_psi"] = max(psis)
    if report["low_confidence"] and report["low_confidence"]["share"] is not None:
        metrics["low_confidence_share"] = report["low_confidence"]["share"]
    verdict = "drift" if report["over_threshold"] else "ok"
    tags = {
        "model_uri": report["model_uri"],
        "model_version": model_version(client, report["model_uri"]),
        "input": report["input"],
        "input_sha256": report["input_sha256"],
        "verdict": verdict,
        NOTE_TAG: f"{verdict}: " + ("; ".join(report["reasons"]) or "within thresholds"),
    }
    run = client.create_run(exp, run_name=f"drift-{Path(report['input']).stem}", tags=tags)
    log_batch(client, run.info.run_id, metrics=metrics)
    client.log_artifacts(run.info.run_id, str(out), "drift")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def model_version(client: MlflowClient, uri: str) -> str:
    """``name vN`` of a registry URI (``models:/name@alias`` or ``models:/name/N``), else the
    URI itself."""
    match = re.match(r"models:/([^@/]+)(?:@(.+)|/(\d+))$", uri)
    if not match:
        return uri
    name, alias, number = match.groups()
    if alias:
        number = client.get_model_version_by_alias(name, alias).version
    return f"{name} v{number}"


def print_check(check: DriftCheck, rejected: pd.DataFrame | None = None) -> None:
    """The verdict, the reasons, and where the reports are."""
    report = check.report
    verdict = "DRIFT" if report["over_threshold"] else "no drift over the thresholds"
    print(f"{verdict}: {report['n_rows']} rows scored with {report['model_uri']}", flush=True)
    for reason in report["reasons"]:
        print(f"  - {reason}", flush=True)
    for warning in report["warnings"]:
        print(f"  (warn) {warning}", flush=True)
    if rejected is not None:
        for row in rejected.head(SHOWN_REJECTIONS).itertuples(index=False):
            print(f"rejected line {getattr(row, LINE)}: {getattr(row, REASON)}", file=sys.stderr)
    print(f"Reports: {check.html} and {check.json} (monitoring run {check.run_id})", flush=True)
