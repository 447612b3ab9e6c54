"""Plots. Figures are built with the object API (no pyplot state), so they are safe in worker
threads and never open a window. Every segment keeps one colour across all plots of a run.

This module does not import matplotlib (the drawing modules do): the sweep's own process, which
only samples rows and names colours, never loads it; the artifact pool draws."""

from __future__ import annotations

import hashlib

import numpy as np

from segmentation.algorithms import seeded_sample

# Okabe-Ito, a colour-blind-safe palette; noise (-1) is grey.
PALETTE = [
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
    "#999933",
    "#882255",
    "#44AA99",
    "#AA4499",
]
NOISE_COLOUR = "#BBBBBB"
# PNGs are mostly flat colour: zlib's fastest level packs them nearly as small, several times
# faster than the default level 6.
PNG_OPTIONS = {"compress_level": 1}
# Every plot's resolution (pixels per inch).
DPI = 90
# Text is drawn without glyph hinting: most of a plot's drawing is text, unhinted glyphs draw
# faster, and at these sizes they look the same.
TEXT_STYLE = {"text.hinting": "no_hinting"}
# Plots draw at most this many points, so their cost does not grow with the data (more points
# show no more structure).
MAX_POINTS = 5000


def segment_colour(segment: int) -> str:
    """The colour of a segment id, the same in every plot."""
    return NOISE_COLOUR if segment == -1 else PALETTE[int(segment) % len(PALETTE)]


def segment_label(segment: int) -> str:
    return "noise" if segment == -1 else f"segment {int(segment)}"


def subsample(n: int, cap: int = MAX_POINTS, seed: int = 0) -> np.ndarray:
    """Sorted row indices of a seeded sample of at most ``cap`` rows."""
    sample = seeded_sample(n, cap, seed)
    return np.arange(n) if sample is None else sample


def data_key(*arrays: np.ndarray) -> str:
    """A digest of array contents (shapes, dtypes and bytes), for keys of figures and plots."""
    digest = hashlib.blake2b(digest_size=16)
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.data)
    return digest.hexdigest()
