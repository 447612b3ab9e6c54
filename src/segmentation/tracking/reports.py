"""The HTML report of a sweep run, rendered from the artifacts of the run and its best trial."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from segmentation.errors import InputError
from segmentation.segments.report import render_report
from segmentation.tracking.runs import ROLE_TAG
from segmentation.tracking.store import connect, given_run


def _download(client: MlflowClient, run_id: str, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        return Path(client.download_artifacts(run_id, "", str(dest)))
    except Exception:  # a run without artifacts
        return dest


def build_report(client: MlflowClient, parent_id: str) -> str:
    """Download a sweep run's artifacts (and its best trial's) and render the report."""
    parent = given_run(client, parent_id)
    if parent.data.tags.get(ROLE_TAG) != "sweep":
        raise InputError(f"run {parent_id}: not a sweep run (tag {ROLE_TAG} != sweep)")
    best_id = parent.data.tags.get("best_run_id")
    best = client.get_run(best_id) if best_id and best_id != "None" else None
    with tempfile.TemporaryDirectory() as tmp:
        parent_dir = _download(client, parent_id, Path(tmp) / "parent")
        best_dir = _download(client, best_id, Path(tmp) / "best") if best else Path(tmp) / "none"
        return render_report(parent, best, parent_dir, best_dir)


def latest_sweep_run(client: MlflowClient, experiment_name: str) -> str:
    """Id of the experiment's most recent sweep run."""
    experiment = client.get_experiment_by_name(experiment_name)
    runs = (
        []
        if experiment is None
        else client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`{ROLE_TAG}` = 'sweep'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
    )
    if not runs:
        raise InputError(f"experiment '{experiment_name}': no sweep run; run `make sweep` first")
    return runs[0].info.run_id


def write_report(
    paths: DictConfig,
    experiment_name: str,
    run_id: str | None = None,
    output: str | Path | None = None,
) -> Path:
    """Render the report of ``run_id`` (default: the experiment's latest sweep, in the ``paths``
    group's store) into ``paths.reports_dir``, or into the HTML file ``output``."""
    if output is not None:
        check_report_path(Path(output))
    client = connect(str(paths.tracking_uri))
    run_id = run_id or latest_sweep_run(client, experiment_name)
    html = build_report(client, run_id)
    path = Path(output) if output else Path(str(paths.reports_dir)) / f"report-{run_id}.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(html, encoding="utf-8")
    return path


def check_report_path(path: Path) -> None:
    """Refuse, before anything is read or written, a report ``output`` that is a folder or not
    an HTML file name: a customer file given by mistake would be written over."""
    if path.is_dir() or path.suffix.lower() not in (".html", ".htm"):
        raise InputError(
            f"{path}: a report is written to an HTML file (expected a file name ending in .html)"
        )
