"""The logged model's code (MLflow "models from code"): MLflow runs this file when it loads
the model; the fitted pipeline and persona names come from the model's artifacts."""

import mlflow

from segmentation.tracking.model import SegmentModel

mlflow.models.set_model(SegmentModel())
