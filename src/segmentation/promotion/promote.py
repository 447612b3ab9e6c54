"""Promotion (``conf/promotion``): the quality gate, the ``champion`` and ``previous`` aliases.

Only registry aliases and version tags are used (registry stages are deprecated since
MLflow 2.9). ``champion`` is what ``make predict`` and ``make serve`` score with by default.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig

from segmentation.config import project_root
from segmentation.errors import InputError
from segmentation.features.space import feature_space_name

# champion_uri is re-exported: scoring imports it from aliases, without this module's imports.
from segmentation.promotion.aliases import CHAMPION, PREVIOUS, model_name
from segmentation.promotion.aliases import champion_uri as champion_uri
from segmentation.promotion.alignment import migration_table
from segmentation.promotion.migration import (
    Migration,
    compare,
    customers,
    description_section,
    headline_tags,
    log_aligned_model,
)
from segmentation.segments.value import value_markdown
from segmentation.tracking import runs
from segmentation.tracking.descriptions import version_description
from segmentation.tracking.model import SegmentModel, load_pyfunc, with_input_example
from segmentation.tracking.store import (
    connect,
    find_sweep_run,
    given_run,
    register_model,
    register_run_model,
)


@dataclass
class Promotion:
    """What a promotion or rollback did."""

    model_name: str
    version: str
    run_id: str
    previous: str | None
    changed: bool
    migration: dict | None = None


def code_version() -> str:
    """The git commit of the project checkout, else the installed package version."""
    try:
        out = subprocess.run(
            ["git", "-C", str(project_root()), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        try:
            return f"segmentation=={importlib.metadata.version('segmentation')}"
        except importlib.metadata.PackageNotFoundError:
            return "unknown"


def candidate_run(
    client: MlflowClient, experiment_name: str, space: str, run_id: str | None = None
) -> Run:
    """The run to promote: ``run_id`` if given, else the best trial of the latest sweep of the
    feature ``space`` in ``experiment_name``."""
    if run_id:
        run = given_run(client, run_id)
        if run.data.tags.get(runs.ROLE_TAG) != "sweep":
            return run
        # A sweep's parent run stands for its best trial.
        best = run.data.tags.get("best_run_id")
        if not best:
            raise InputError(f"sweep run {run_id} has no finished best trial yet")
        return client.get_run(best)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        raise InputError(f"experiment '{experiment_name}' has no runs; run `make sweep` first")
    # The latest sweep of this feature space, whichever data it ran on.
    parent = find_sweep_run(client, experiment.experiment_id, space, tag=runs.SPACE_TAG)
    if parent is None:
        raise InputError(f"experiment '{experiment_name}': no sweep of {space}")
    best = parent.data.tags.get("best_run_id")
    if not best:
        study = parent.data.tags.get(runs.STUDY_TAG)
        raise InputError(
            f"sweep run {parent.info.run_id} (study {study}) has no finished best trial yet"
        )
    return client.get_run(best)


# Where a refused promotion's gates are set, so the user knows which knob the figures name.
GATES = (
    " (gates: promotion.* in conf/promotion/default.yaml or the preset; "
    'for one promotion: ARGS="promotion.<gate>=<value>")'
)


def gate_failures(run: Run, gate: DictConfig) -> list[str]:
    """Each failed promotion gate, with its figures (empty: the run may be champion)."""
    failures = []
    metrics, tags = run.data.metrics, run.data.tags
    silhouette = metrics.get("silhouette", math.nan)
    if not silhouette >= float(gate.min_silhouette):  # also refuses NaN
        failures.append(f"silhouette {silhouette:.4f} below min_silhouette {gate.min_silhouette}")
    state = tags.get("trial_state", "unknown")
    if state != "COMPLETE":
        reason = tags.get("rejected_reason", "not a finished sweep trial")
        failures.append(f"sweep constraints not met (trial_state {state}: {reason})")
    if "stability_ari" in metrics and not metrics["stability_ari"] >= float(gate.min_stability_ari):
        failures.append(
            f"stability_ari {metrics['stability_ari']:.4f} below min_stability_ari "
            f"{gate.min_stability_ari}"
        )
    return failures


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version holding ``alias``, or ``None``."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException:
        return None


def promote(cfg: DictConfig, run_id: str | None = None, input_path: str | None = None) -> Promotion:
    """Register the candidate's model if needed and move ``champion`` to it if it passes the gate.

    Over an existing champion, the candidate's segments are first aligned to the champion's
    (:mod:`segmentation.promotion.migration`) on the training customers (or ``input_path``): the
    aligned model is what gets registered, and the migration report is printed, tagged and
    logged. Raises :class:`InputError` naming each failed gate (nothing is changed then).
    """
    client = connect(str(cfg.paths.tracking_uri))
    store = client.tracking_uri
    run = candidate_run(
        client,
        str(cfg.experiment_name),
        feature_space_name(cfg.dataset, cfg.features, cfg.scaling),
        run_id,
    )
    rid = run.info.run_id
    tags, params = run.data.tags, run.data.params
    name = model_name(cfg.tracking)
    if params.get("feature_set") not in (None, str(cfg.features.name)) or tags.get(
        "dataset", cfg.dataset.name
    ) != str(cfg.dataset.name):
        raise InputError(
            f"run {rid}: dataset '{tags.get('dataset')}' / feature set "
            f"'{params.get('feature_set')}' does not match model '{name}' "
            f"(dataset '{cfg.dataset.name}', features '{cfg.features.name}'); pick its experiment"
        )
    failures = gate_failures(run, cfg.promotion)
    if failures:
        raise InputError(
            f"promotion of run {rid} ({tags.get('algorithm', '?')}) refused: "
            + "; ".join(failures)
            + GATES
        )
    model_id = tags.get(runs.MODEL_ID_TAG)
    if not model_id:
        raise InputError(f"run {rid}: no logged model (was tracking.log_models false?)")
    silhouette = f"{run.data.metrics['silhouette']:.4f}"
    current = alias_version(client, name, CHAMPION)
    migration = None
    if current is not None and client.get_model_version(name, current).run_id != rid:
        challenger = load_pyfunc(f"models:/{model_id}", store).unwrap_python_model()
        champion = load_pyfunc(f"models:/{name}/{current}", store)
        migration = compare(champion, challenger, customers(cfg.dataset, input_path))
        refused = reassignment_failure(migration.report, cfg.promotion)
        if refused:
            print(migration_table(migration.report), flush=True)
            raise InputError(
                f"promotion of run {rid} ({tags.get('algorithm', '?')}) refused: {refused}{GATES}"
            )
        version = aligned_version(client, name, rid, migration, challenger)
        if version is None:
            label = f"{tags.get('algorithm', 'model')}-k{int(run.data.metrics['n_clusters'])}"
            uri, model_id = log_aligned_model(client, rid, migration, f"{label}-aligned")
            version = register_model(client, name, uri)
            client.set_model_version_tag(name, version, ALIGNMENT_TAG, alignment_key(migration))
    else:
        with_input_example(f"models:/{model_id}", store)  # a sweep logs trial models without one
        version = register_run_model(client, name, rid, f"models:/{model_id}")
    version_tags = {
        "dataset": tags.get("dataset", cfg.dataset.name),
        runs.DATASET_HASH_TAG: tags.get(runs.DATASET_HASH_TAG, "unknown"),
        "data_source": tags.get("data_source", "unknown"),
        "feature_set": params.get("feature_set", cfg.features.name),
        "algorithm": tags.get("algorithm", "unknown"),
        "silhouette": silhouette,
        "source_run": rid,
        "code_version": code_version(),
        "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if "stability_ari" in run.data.metrics:
        version_tags["stability_ari"] = f"{run.data.metrics['stability_ari']:.4f}"
    if current == version:
        return Promotion(name, version, rid, alias_version(client, name, PREVIOUS), False)
    if migration is not None:
        version_tags.update(headline_tags(migration.report, current))
    for key, value in version_tags.items():
        client.set_model_version_tag(name, version, key, value)
    client.update_model_version(
        name, version, description=promoted_description(client, run, migration, current)
    )
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, current)
    client.set_registered_model_alias(name, CHAMPION, version)
    return Promotion(name, version, rid, current, True, migration.report if migration else None)


# On a version registered at promotion: the renumbering and persona names it was aligned with.
ALIGNMENT_TAG = "segmentation.alignment"


def alignment_key(migration: Migration) -> str:
    model = migration.model
    return json.dumps(
        {"relabel": sorted(model.relabel.items()), "personas": sorted(model.personas.items())}
    )


def aligned_version(
    client: MlflowClient, name: str, run_id: str, migration: Migration, challenger: SegmentModel
) -> str | None:
    """A version of the run that already scores as the aligned model would: the run's own
    (registered by its sweep) when no id or name changes, or one registered at an earlier
    promotion with the same alignment. ``None``: a new aligned version is needed."""
    key = alignment_key(migration)
    unchanged = not migration.model.relabel and migration.model.personas == challenger.personas
    for version in client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'"):
        tag = version.tags.get(ALIGNMENT_TAG)
        if tag == key or (tag is None and unchanged):
            return str(version.version)
    return None


def reassignment_failure(report: dict, gate: DictConfig) -> str | None:
    """The optional migration gate (``promotion.max_reassigned_share``, off when null)."""
    limit = gate.get("max_reassigned_share")
    if limit is not None and report["reassigned_share"] > float(limit):
        return (
            f"reassigned_share {report['reassigned_share']:.4f} above max_reassigned_share "
            f"{limit} ({report['n_customers']} customers scored by both models)"
        )
    return None


def promoted_description(
    client: MlflowClient, run: Run, migration: Migration | None, champion: str | None
) -> str:
    """The version's markdown: the run's data, features, algorithm and metrics, its personas
    (aligned ones over a champion) and the migration report."""
    if migration is not None:
        sizes = {int(s["segment"]): s for s in migration.report["sizes"]}
        total = max(migration.report["n_customers"], 1)
        personas = [
            {
                "segment": k,
                "name": v,
                "size": sizes.get(k, {}).get("count_after", 0),
                "share": sizes.get(k, {}).get("count_after", 0) / total,
            }
            for k, v in sorted(migration.model.personas.items())
        ]
        extra = [description_section(migration.report, str(champion))]
    else:
        personas, extra = run_personas(client, run.info.run_id), []
        value = _run_json(client, run.info.run_id, "segments/value.json")
        if value:
            extra = ["**Segment value**", value_markdown(value)]
    return version_description(run.data.params, run.data.metrics, personas, extra)


def run_personas(client: MlflowClient, run_id: str) -> list[dict]:
    """The persona table a run logged (the best trial of a sweep has one), else empty."""
    return _run_json(client, run_id, "segments/personas.json") or []


def _run_json(client: MlflowClient, run_id: str, artifact: str) -> Any:
    """A JSON artifact of a run, ``None`` when the run has none."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, artifact, tmp)
        except mlflow.exceptions.MlflowException:
            return None
        return json.loads(Path(path).read_text(encoding="utf-8"))


def rollback(client: MlflowClient, tracking: DictConfig) -> Promotion:
    """Swap ``champion`` and ``previous`` of the ``tracking`` group's registered model: the
    former champion becomes ``previous``."""
    name = model_name(tracking)
    current = alias_version(client, name, CHAMPION)
    previous = alias_version(client, name, PREVIOUS)
    if previous is None:
        raise InputError(
            f"model '{name}': no version holds alias '{PREVIOUS}' "
            f"(champion is {'v' + current if current else 'unset'}); nothing to roll back to"
        )
    client.set_registered_model_alias(name, CHAMPION, previous)
    if current is not None:
        client.set_registered_model_alias(name, PREVIOUS, current)
    else:
        client.delete_registered_model_alias(name, PREVIOUS)
    run_id = client.get_model_version(name, previous).run_id
    return Promotion(name, previous, run_id, current, True)


def describe(result: Promotion, action: str = "promoted") -> str:
    """One line for the terminal."""
    if not result.changed:
        return f"{result.model_name} v{result.version} (run {result.run_id}) is already {CHAMPION}"
    before = f"; {PREVIOUS} is v{result.previous}" if result.previous else ""
    model = f"{result.model_name} v{result.version} (run {result.run_id})"
    line = f"{action} {model} to {CHAMPION}{before}"
    if result.migration is not None:
        aligned = f"segments aligned to v{result.previous}"
        return f"{migration_table(result.migration)}\n{line} ({aligned})"
    return line
