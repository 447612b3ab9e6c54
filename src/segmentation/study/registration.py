"""The best trial's model in the Model Registry, with the registered model's and the version's
descriptions."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import optuna
from mlflow.tracking import MlflowClient

from segmentation.segments.describe import value_section
from segmentation.study import interrupts
from segmentation.study.definition import silhouette_of
from segmentation.study.insights import FittedTrial
from segmentation.study.objective import SweepContext
from segmentation.tracking import runs
from segmentation.tracking.descriptions import registered_model_description, version_description
from segmentation.tracking.model import with_input_example
from segmentation.tracking.store import register_run_model


def start_input_example(
    ctx: SweepContext, best: optuna.trial.FrozenTrial, tracking_uri: str
) -> Future:
    """Give the best trial's model its input example (trial models are logged without one), in
    the artifact pool: its processes have read the installed packages' metadata that logging a
    model checks, which this process has not."""
    return ctx.artifacts.call(with_input_example, best.user_attrs["model_uri"], tracking_uri)


def register_best(
    client: MlflowClient,
    ctx: SweepContext,
    best: optuna.trial.FrozenTrial,
    fit: FittedTrial,
    explanations: dict[str, Any],
    example: Future,
) -> str:
    """Register the best trial's model (once: a rerun finds the existing version) once
    ``example`` (:func:`start_input_example`) is done, with the registered model's and the
    version's descriptions."""
    groups, space = ctx.groups, ctx.space
    run_id = best.user_attrs["mlflow_run_id"]
    interrupts.wait(example)
    example.result()
    version = register_run_model(
        client,
        str(groups.tracking.registered_model_name),
        run_id,
        best.user_attrs["model_uri"],
        tags={
            "dataset": groups.dataset.name,
            runs.DATASET_HASH_TAG: space.dataset_hash,
            "data_source": space.data.source,
            "feature_set": groups.features.name,
            "algorithm": best.user_attrs.get("algorithm"),
            "silhouette": f"{silhouette_of(best):.4f}",
            "source_run": run_id,
            "sweep_run": ctx.parent_run_id,
        },
    )
    name = str(groups.tracking.registered_model_name)
    client.update_registered_model(
        name,
        description=registered_model_description(
            str(groups.dataset.name),
            str(groups.features.name),
            ", ".join(space.columns),
            str(groups.experiment_description),
        ),
    )
    run = client.get_run(run_id)
    client.update_model_version(
        name,
        version,
        description=version_description(
            run.data.params,
            run.data.metrics,
            fit.segments.personas.to_dict(orient="records"),
            extra=[*value_section(fit.segments), "**Explanations**", explanations["markdown"]],
        ),
    )
    client.set_tag(ctx.parent_run_id, "registered_version", version)
    return version
