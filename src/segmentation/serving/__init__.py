"""Serving: the promotion gate and aliases, batch scoring, the persona table of a run."""
