"""The logged model: raw customer rows in, a segment id (and persona name) out."""

from __future__ import annotations

import functools
import importlib.metadata
import json
import tempfile
import warnings
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
from mlflow.types.schema import AnyType
from sklearn.base import TransformerMixin
from sklearn.pipeline import Pipeline

from segmentation.data import mall as mall_data
from segmentation.data import retail_marketing as retail_data
from segmentation.data.reading import row_problems
from segmentation.evaluation.confidence import confidence
from segmentation.features.mall import MallFeatures
from segmentation.features.retail_marketing import RetailFeatures
from segmentation.features.selection import FeatureSelector
from segmentation.segments.personas import segment_personas
from segmentation.tracking.store import process_tracking_uri

# Passing the requirements skips MLflow's inference, a subprocess per model.
_REQUIREMENTS = ("mlflow", "scikit-learn", "pandas", "numpy", "cloudpickle", "threadpoolctl")


def load_pipeline(path: str | Path) -> Pipeline:
    """A logged model's pipeline. Models logged before the feature engineering moved from
    ``data/`` to ``features/`` pickled its classes under their old modules: they are found there
    too, so a stored champion keeps scoring."""
    for module, cls in ((mall_data, MallFeatures), (retail_data, RetailFeatures)):
        if not hasattr(module, cls.__name__):
            setattr(module, cls.__name__, cls)
    return joblib.load(path)


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
    """Pyfunc model: raw customer rows in; ``segment``, ``persona`` and ``confidence`` out.

    Parameters
    ----------
    pipeline : Pipeline, optional
        Fitted pipeline from raw rows to segment ids (engineering, feature selection, scaling,
        clustering); when logged, read from the ``pipeline`` artifact at load time.
    personas : mapping of int to str, optional
        Persona name per segment id.
    inputs : mapping, optional
        What the model accepts: ``columns`` (the dataset's column rules: kind, min) and
        ``impute`` (column -> the training figure a missing value is filled with, as the
        training data's cleaning did).
    relabel : mapping of int to int, optional
        Segment ids renumbered at promotion, so a segment matched to the previous champion's
        keeps its id (see :mod:`segmentation.promotion.alignment`).
    reference : mapping, optional
        The training data's feature distributions and segment shares, for drift checks.

    The personas, inputs, relabelling and reference are read from the ``card`` artifact when
    logged.
    """

    def __init__(
        self,
        pipeline: Pipeline | None = None,
        personas: Mapping[int, str] | None = None,
        inputs: Mapping[str, Any] | None = None,
        relabel: Mapping[int, int] | None = None,
        reference: Mapping[str, Any] | None = None,
    ):
        self.pipeline = pipeline
        self.personas = {int(k): str(v) for k, v in (personas or {}).items()}
        self.inputs = dict(inputs or {})
        self.relabel = {int(k): int(v) for k, v in (relabel or {}).items()}
        self.reference = dict(reference or {})

    def card(self) -> dict[str, Any]:
        """Everything but the pipeline, as JSON-ready data."""
        return {
            "personas": {str(k): v for k, v in self.personas.items()},
            "inputs": self.inputs,
            "relabel": {str(k): v for k, v in self.relabel.items()},
            "reference": self.reference,
        }

    def load_context(self, context: Any) -> None:
        self.pipeline = load_pipeline(context.artifacts["pipeline"])
        card = json.loads(Path(context.artifacts["card"]).read_text(encoding="utf-8"))
        self.personas = {int(k): str(v) for k, v in card["personas"].items()}
        self.inputs = card["inputs"]
        self.relabel = {int(k): int(v) for k, v in card["relabel"].items()}
        self.reference = card["reference"]

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        X = self.features(frame)
        clusterer = self.pipeline.steps[-1][1]
        segments = np.asarray(clusterer.predict(X), dtype=np.int64)
        sure = confidence(clusterer, X, segments)
        if self.relabel:
            segments = np.array([self.relabel.get(int(s), int(s)) for s in segments], np.int64)
        return pd.DataFrame(
            {
                "segment": segments,
                "persona": segment_personas(segments, self.personas),
                "confidence": sure,
            }
        )

    def features(self, frame: pd.DataFrame) -> np.ndarray:
        """The scaled features of raw rows, after filling what training filled; a row that
        breaks the dataset's column rules is refused with the reason batch scoring gives it."""
        impute = self.inputs.get("impute") or {}
        if impute:
            frame = frame.assign(
                **{c: frame[c].fillna(v) for c, v in impute.items() if c in frame.columns}
            )
        reasons = row_problems(frame, self.inputs.get("columns") or {})
        bad = np.flatnonzero((reasons != "").to_numpy())
        if len(bad):
            shown = "; ".join(f"row {i}: {reasons.iloc[i]}" for i in bad[:10])
            more = f" (and {len(bad) - 10} more rows)" if len(bad) > 10 else ""
            raise mlflow.exceptions.MlflowException.invalid_parameter_value(
                f"{len(bad)} of {len(frame)} rows cannot be scored (0-based rows): {shown}{more}"
            )
        features: Any = frame
        # Step by step: the sweep assembles the pipeline from fitted parts without fitting it.
        for _, step in self.pipeline.steps[:-1]:
            features = step.transform(features)
        features = np.asarray(features, dtype=float)
        missing = np.isnan(features)
        if missing.any():  # a value the engineering could not compute
            rows = np.flatnonzero(missing.any(axis=1))
            names = np.asarray(self.pipeline.named_steps["select"].columns)
            cols = names[missing.any(axis=0)].tolist()
            raise mlflow.exceptions.MlflowException.invalid_parameter_value(
                f"missing or non-numeric values in feature(s) {cols} at row(s) "
                f"{rows[:10].tolist()} (0-based) of {len(frame)}"
            )
        return features


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
