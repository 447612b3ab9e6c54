"""Tracking: MLflow's store and registry, the runs of a sweep and the logged segment model."""
