"""Customer segmentation: an Optuna sweep over clustering algorithms, tracked in MLflow."""

__version__ = "0.1.0"
