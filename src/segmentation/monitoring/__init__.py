"""Monitoring: drift of new customers against a model's training data."""
