"""What a logged model computes, without MLflow: raw customer rows in; ``segment``, ``persona``
and ``confidence`` out. :class:`segmentation.tracking.model.SegmentModel` is this as an MLflow
pyfunc model; batch scoring of a local champion uses it directly (see
:mod:`segmentation.tracking.local_registry`), so a short file is not held up by importing MLflow."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from segmentation.data import mall as mall_data
from segmentation.data import retail_marketing as retail_data
from segmentation.data.reading import row_problems
from segmentation.evaluation.confidence import confidence
from segmentation.features.mall import MallFeatures
from segmentation.features.retail_marketing import RetailFeatures
from segmentation.segments.personas import segment_personas


class RowsRefused(ValueError):
    """Rows the model cannot score (a broken column rule, a feature it cannot compute)."""


def load_pipeline(path: str | Path) -> Pipeline:
    """A logged model's pipeline. Models logged before the feature engineering moved from
    ``data/`` to ``features/`` pickled its classes under their old modules: they are found there
    too, so a stored champion keeps scoring."""
    for module, cls in ((mall_data, MallFeatures), (retail_data, RetailFeatures)):
        if not hasattr(module, cls.__name__):
            setattr(module, cls.__name__, cls)
    return joblib.load(path)


class Segmenter:
    """Raw customer rows in; ``segment``, ``persona`` and ``confidence`` out.

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

    def load(self, pipeline: str | Path, card: str | Path) -> None:
        """Read the pipeline and the card from a logged model's artifact files."""
        self.pipeline = load_pipeline(pipeline)
        data = json.loads(Path(card).read_text(encoding="utf-8"))
        self.personas = {int(k): str(v) for k, v in data["personas"].items()}
        self.inputs = data["inputs"]
        self.relabel = {int(k): int(v) for k, v in data["relabel"].items()}
        self.reference = data["reference"]

    def segment(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``segment``, ``persona`` and ``confidence`` of each row; :class:`RowsRefused` when
        a row cannot be scored."""
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
            raise RowsRefused(
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
            raise RowsRefused(
                f"missing or non-numeric values in feature(s) {cols} at row(s) "
                f"{rows[:10].tolist()} (0-based) of {len(frame)}"
            )
        return features


@dataclass(frozen=True)
class ScoringModel:
    """A model to score with: its segmenter (the pyfunc model itself when MLflow loaded it)
    and the input columns its signature names."""

    segmenter: Segmenter
    input_names: list[str]
