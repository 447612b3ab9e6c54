"""Serving: batch scoring with a registered model, the persona table of a run."""
