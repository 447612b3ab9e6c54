"""The logged model: raw customer rows in, a segment id (and persona name) out."""

from __future__ import annotations

import functools
import importlib.metadata
import json
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema
from sklearn.base import TransformerMixin
from sklearn.pipeline import Pipeline

from segmentation.features.selection import FeatureSelector
from segmentation.segments.personas import segment_personas

# Passing the requirements skips MLflow's inference, a subprocess of about 2.4 s per model.
_REQUIREMENTS = ("mlflow", "scikit-learn", "pandas", "numpy", "cloudpickle", "threadpoolctl")


def pip_requirements() -> list[str]:
    """Pinned requirements of a logged model (the versions this process runs)."""
    return list(_pinned_requirements())


@functools.cache  # each version lookup parses a package's metadata: once per process
def _pinned_requirements() -> tuple[str, ...]:
    out = []
    for name in _REQUIREMENTS:
        try:
            out.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(name)
    return tuple(out)


def build_pipeline(
    engineer: TransformerMixin,
    columns: Sequence[str],
    scaler: TransformerMixin,
    clusterer: Any,
) -> Pipeline:
    """One pipeline from raw rows: engineering, feature selection, scaling, clustering.

    The steps may already be fitted (the sweep fits the engineering and scaling once per study
    and only the clusterer per trial).
    """
    return Pipeline(
        [
            ("engineer", engineer),
            ("select", FeatureSelector(list(columns))),
            ("scale", scaler),
            ("cluster", clusterer),
        ]
    )


class SegmentModel(mlflow.pyfunc.PythonModel):
    """Pyfunc model: ``predict`` returns ``segment`` and ``persona`` columns.

    Parameters
    ----------
    pipeline : Pipeline, optional
        Fitted pipeline from raw rows to segment ids; when logged, read from the
        ``pipeline`` artifact at load time.
    personas : mapping of int to str, optional
        Persona name per segment id; when logged, read from the ``personas`` artifact.
    """

    def __init__(self, pipeline: Pipeline | None = None, personas: Mapping[int, str] | None = None):
        self.pipeline = pipeline
        self.personas = {int(k): str(v) for k, v in (personas or {}).items()}

    def load_context(self, context: Any) -> None:
        self.pipeline = joblib.load(context.artifacts["pipeline"])
        with open(context.artifacts["personas"], encoding="utf-8") as fh:
            self.personas = {int(k): str(v) for k, v in json.load(fh).items()}

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        self._refuse_missing_features(frame)
        segments = np.asarray(self.pipeline.predict(frame), dtype=np.int64)
        return pd.DataFrame(
            {"segment": segments, "persona": segment_personas(segments, self.personas)}
        )

    def _refuse_missing_features(self, frame: pd.DataFrame) -> None:
        """Name the rows and features left missing (a REST client then gets a 400 that says
        what to fix, instead of the clusterer's bare NaN error)."""
        if "select" not in self.pipeline.named_steps:
            return
        features: Any = frame
        # Step by step: the sweep assembles the pipeline from fitted parts without fitting it.
        for name, step in self.pipeline.steps:
            features = step.transform(features)
            if name == "select":
                break
        features = np.asarray(features, dtype=float)
        missing = np.isnan(features)
        if missing.any():
            rows = np.flatnonzero(missing.any(axis=1))
            names = np.asarray(self.pipeline.named_steps["select"].columns)
            cols = names[missing.any(axis=0)].tolist()
            raise mlflow.exceptions.MlflowException.invalid_parameter_value(
                f"missing or non-numeric values in feature(s) {cols} at row(s) "
                f"{rows[:10].tolist()} (0-based) of {len(frame)}"
            )


OUTPUT_SCHEMA = Schema([ColSpec("long", "segment"), ColSpec("string", "persona")])


def model_signature(example: pd.DataFrame) -> ModelSignature:
    """Inputs: the dataset's raw columns (numbers as doubles, so missing values are allowed);
    outputs: segment id and persona name."""
    example = example.copy()
    for column in example.columns:
        if pd.api.types.is_numeric_dtype(example[column]):
            example[column] = example[column].astype("float64")
    return ModelSignature(inputs=infer_signature(example).inputs, outputs=OUTPUT_SCHEMA)


@contextmanager
def _pyfunc_arguments(
    pipeline: Pipeline, example: pd.DataFrame, personas: Mapping[int, str] | None
) -> Iterator[dict[str, Any]]:
    """The arguments that make the segment model a pyfunc model: its code, its artifacts (the
    pipeline and the persona names, written to a temporary directory for as long as the block
    runs), the signature, the input example and the pinned requirements."""
    with tempfile.TemporaryDirectory() as tmp:
        pipeline_path = Path(tmp) / "pipeline.joblib"
        personas_path = Path(tmp) / "personas.json"
        joblib.dump(pipeline, pipeline_path)
        personas_path.write_text(
            json.dumps({str(k): v for k, v in (personas or {}).items()}), encoding="utf-8"
        )
        yield {
            "python_model": str(Path(__file__).with_name("logged_model.py")),
            "artifacts": {"pipeline": str(pipeline_path), "personas": str(personas_path)},
            "signature": model_signature(example),
            "input_example": example,
            "pip_requirements": pip_requirements(),
        }


def save_segment_model(
    path: str | Path,
    pipeline: Pipeline,
    example: pd.DataFrame,
    personas: Mapping[int, str] | None = None,
) -> None:
    """Save the model as :func:`log_segment_model` logs it, into the directory ``path``."""
    with _pyfunc_arguments(pipeline, example, personas) as arguments:
        mlflow.pyfunc.save_model(path=str(path), **arguments)


def log_segment_model(
    pipeline: Pipeline,
    example: pd.DataFrame,
    personas: Mapping[int, str] | None = None,
    name: str = "model",
    model_id: str | None = None,
) -> mlflow.models.model.ModelInfo:
    """Log the model to the active run (or into the already created LoggedModel ``model_id``)
    with a signature and a few-row input example (never the training data)."""
    with _pyfunc_arguments(pipeline, example, personas) as arguments:
        return mlflow.pyfunc.log_model(name=name, model_id=model_id, **arguments)
