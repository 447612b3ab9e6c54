"""A run's contents: the tags that tie runs together, params, metrics and tags in one batch,
and the dataset as a run input."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

from mlflow.data.dataset import Dataset as DataSource
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.tracking import MlflowClient

# MLflow's system tag that nests a run under its parent in the UI.
PARENT_TAG = "mlflow.parentRunId"
ROLE_TAG = "segmentation.role"
STUDY_TAG = "segmentation.study"
# On a sweep's parent run: the feature space of its study (any data), to find the latest one.
SPACE_TAG = "segmentation.feature_space"
TRIAL_TAG = "segmentation.trial"
MODEL_ID_TAG = "segmentation.model_id"
# On a trial that repeated an earlier trial's parameters: the run whose model it shares.
MODEL_SHARED_TAG = "segmentation.model_shared_with"
# A trial whose parameters repeat an earlier trial's: that trial's run (same fit and scores).
REPEAT_TAG = "segmentation.repeat_of"
DATASET_HASH_TAG = "dataset_hash"


def log_batch(
    client: MlflowClient,
    run_id: str,
    params: Mapping[str, Any] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, Any] | None = None,
    model_id: str | None = None,
) -> None:
    """Params, metrics and tags in one request (far cheaper than one call each); with
    ``model_id``, the metrics are the logged model's too."""
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        params=[Param(k, _param_value(v)) for k, v in (params or {}).items()],
        metrics=[
            Metric(k, float(v), now, 0, model_id=model_id)
            for k, v in (metrics or {}).items()
            if v is not None and not (isinstance(v, float) and math.isnan(v))
        ],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
    )


def dataset_input(dataset: DataSource, context: str = "training") -> DatasetInput:
    """An MLflow dataset as a run input (shown in the UI's Datasets column).

    Build it once per sweep: its schema and profile are computed from the whole frame, and
    every trial logs the same input.
    """
    fields = dataset.to_dict()
    entity = Dataset(
        name=fields["name"],
        digest=fields["digest"],
        source_type=fields["source_type"],
        source=fields["source"],
        schema=fields.get("schema"),
        profile=fields.get("profile"),
    )
    return DatasetInput(entity, tags=[InputTag("mlflow.data.context", context)])


def log_dataset(client: MlflowClient, run_id: str, entity: DatasetInput) -> None:
    """Record the dataset (see :func:`dataset_input`) as the run's input."""
    client.log_inputs(run_id, datasets=[entity])


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def flatten(prefix: str, value: Any) -> dict[str, Any]:
    """Flatten nested mappings into dotted keys (the UI's compare view needs flat params)."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, sub in value.items():
            out.update(flatten(f"{prefix}.{key}" if prefix else str(key), sub))
        return out
    return {prefix: value}
