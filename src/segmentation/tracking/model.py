"""The logged model: raw customer rows in, a segment id (and persona name) out."""

from __future__ import annotations

import functools
import importlib.metadata
import json
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import joblib
import mlflow
import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import AnyType
from sklearn.base import TransformerMixin
from sklearn.pipeline import Pipeline

from segmentation.features.selection import FeatureSelector
from segmentation.tracking.segmenter import RowsRefused, Segmenter
from segmentation.tracking.store import process_tracking_uri

# Passing the requirements skips MLflow's inference, a subprocess per model.
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


class SegmentModel(Segmenter, mlflow.pyfunc.PythonModel):
    """The :class:`~segmentation.tracking.segmenter.Segmenter` as an MLflow pyfunc model (its
    parameters are the segmenter's); rows it cannot score are refused as MLflow's invalid
    input, which a model server answers with status 400."""

    def load_context(self, context: Any) -> None:
        self.load(context.artifacts["pipeline"], context.artifacts["card"])

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        try:
            return self.segment(frame)
        except RowsRefused as exc:
            raise mlflow.exceptions.MlflowException.invalid_parameter_value(str(exc)) from None


OUTPUT_SCHEMA = Schema(
    [ColSpec("long", "segment"), ColSpec("string", "persona"), ColSpec("double", "confidence")]
)


def model_signature(example: pd.DataFrame) -> ModelSignature:
    """Inputs: the dataset's raw columns by name, numbers of any numeric type (``pd.read_csv``
    gives whole numbers as int64, a column with a gap as float64; the model checks the values
    itself), text as strings; outputs: segment id, persona name and confidence."""
    inputs = [
        ColSpec(AnyType(), spec.name, required=spec.required)
        if pd.api.types.is_numeric_dtype(example[spec.name])
        else spec
        for spec in infer_signature(example).inputs.inputs
    ]
    return ModelSignature(inputs=Schema(inputs), outputs=OUTPUT_SCHEMA)


# The rows a logged model's input example is made of, kept with every model (a Parquet file:
# the exact dtypes), so the one that gets registered can be given its example later.
EXAMPLE_ARTIFACT = "example"


@contextmanager
def _pyfunc_arguments(
    model: SegmentModel, example: pd.DataFrame, with_example: bool = True
) -> Iterator[dict[str, Any]]:
    """The arguments that make the segment model a pyfunc model: its code, its artifacts (the
    pipeline, the card and the example rows, written to a temporary directory for as long as
    the block runs), the signature, the input example (``with_example``) and the pinned
    requirements."""
    with tempfile.TemporaryDirectory() as tmp:
        pipeline_path = Path(tmp) / "pipeline.joblib"
        card_path = Path(tmp) / "card.json"
        example_path = Path(tmp) / "example.parquet"
        joblib.dump(model.pipeline, pipeline_path)
        card_path.write_text(json.dumps(model.card(), default=float), encoding="utf-8")
        example.to_parquet(example_path, index=False)
        arguments = {
            "python_model": str(Path(__file__).with_name("logged_model.py")),
            "artifacts": {
                "pipeline": str(pipeline_path),
                "card": str(card_path),
                EXAMPLE_ARTIFACT: str(example_path),
            },
            "signature": model_signature(example),
            "pip_requirements": pip_requirements(),
        }
        if with_example:
            arguments["input_example"] = example
        yield arguments


def log_segment_model(
    model: SegmentModel,
    example: pd.DataFrame,
    tracking_uri: str,
    name: str = "model",
    model_id: str | None = None,
    with_example: bool = True,
    **options: Any,
) -> mlflow.models.model.ModelInfo:
    """Log the model into the already created LoggedModel ``model_id`` (or a new one) of the
    store ``tracking_uri``, with a signature and a few-row input example (never the training
    data); ``options`` go to :func:`mlflow.pyfunc.log_model`.

    ``with_example=False`` logs the example rows as an artifact only: MLflow then skips
    validating the serving input (loading the model and scoring the example), which a sweep's
    trial models do not need; :func:`with_input_example` gives a model its example when it is
    registered.
    """
    with (
        _pyfunc_arguments(model, example, with_example) as arguments,
        warnings.catch_warnings(),
        # mlflow.pyfunc.log_model has no argument for the store: it logs to the process's.
        process_tracking_uri(tracking_uri),
    ):
        # A trial model leaves its example out on purpose: MLflow's advice would print per trial.
        # MLflow wraps the message in terminal colour codes, hence the leading ".*".
        warnings.filterwarnings("ignore", message=".*An input example was not provided")
        return mlflow.pyfunc.log_model(name=name, model_id=model_id, **arguments, **options)


def download_model(uri: str, tracking_uri: str, dst: str | Path) -> Path:
    """The folder of the model ``uri`` (``models:/...`` or an artifact URI) of the store
    ``tracking_uri``, downloaded into ``dst``."""
    # MLflow resolves a models:/ URI through the process-wide store, whatever store
    # download_artifacts is given.
    with process_tracking_uri(tracking_uri):
        return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst)))


def load_pyfunc(uri: str, tracking_uri: str) -> mlflow.pyfunc.PyFuncModel:
    """The pyfunc model ``uri`` of the store ``tracking_uri``."""
    # pyfunc.load_model takes no store. MLflow's requirement check reads every installed
    # package's metadata; the pipeline's own unpickling warns when scikit-learn differs.
    with process_tracking_uri(tracking_uri):
        return mlflow.pyfunc.load_model(uri, suppress_warnings=True)


def with_input_example(model_uri: str, tracking_uri: str) -> bool:
    """Give a logged model (``models:/<model_id>`` of the store ``tracking_uri``) its input
    example from the rows kept with it, logged again into the same LoggedModel (so MLflow
    validates that it serves); a model that has its example is left as it is. Returns whether it
    was logged again."""
    with process_tracking_uri(tracking_uri):  # get_model_info takes no store
        info = mlflow.models.get_model_info(model_uri)
    if info.saved_input_example_info is not None:
        return False
    with tempfile.TemporaryDirectory(prefix="segmentation-model-") as tmp:
        local = download_model(model_uri, tracking_uri, tmp)
        model = mlflow.pyfunc.load_model(str(local), suppress_warnings=True).unwrap_python_model()
        example = pd.read_parquet(local / "artifacts" / "example.parquet")
    log_segment_model(model, example, tracking_uri, model_id=info.model_id)
    return True
