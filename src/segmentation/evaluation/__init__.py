"""Evaluation: cluster quality metrics, the sweep's constraints, stability and choosing k."""
