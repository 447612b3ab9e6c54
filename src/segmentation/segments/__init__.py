"""Segments: what a fitted segmentation means to people (profiles in original units, persona
names and recommendations, the HTML report)."""
