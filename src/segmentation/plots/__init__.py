"""Plots. Figures are built with the object API (no pyplot state), so they are safe in worker
threads and never open a window. Every segment keeps one colour across all plots of a run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure

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
# Plots draw at most this many points, so their cost does not grow with the data (more points
# show no more structure).
MAX_POINTS = 5000


def segment_colour(segment: int) -> str:
    """The colour of a segment id, the same in every plot."""
    return NOISE_COLOUR if segment == -1 else PALETTE[int(segment) % len(PALETTE)]


def segment_text_colour(segment: int) -> str:
    """The segment's colour for text on white: light ones (the palette's yellow has a
    contrast of 1.2:1 with white) darkened until they read (at least 4.5:1, WCAG's AA)."""
    if segment == -1:
        return "#555555"
    rgb = np.array(to_rgb(segment_colour(segment)))
    while contrast_with_white(rgb) < 4.5:
        rgb = rgb * 0.9
    return to_hex(rgb)


def contrast_with_white(rgb: np.ndarray) -> float:
    """WCAG contrast ratio of an sRGB colour (values 0-1) with white."""
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    luminance = float(linear @ [0.2126, 0.7152, 0.0722])
    return 1.05 / (luminance + 0.05)


def segment_label(segment: int) -> str:
    return "noise" if segment == -1 else f"segment {int(segment)}"


def subsample(n: int, cap: int = MAX_POINTS, seed: int = 0) -> np.ndarray:
    """Sorted row indices of a seeded sample of at most ``cap`` rows."""
    sample = seeded_sample(n, cap, seed)
    return np.arange(n) if sample is None else sample


def save(
    fig: Figure,
    path: Path,
    dpi: int = 90,
    left: float = 0.12,
    right: float = 0.97,
    bottom: float = 0.12,
    top: float = 0.91,
    inches: Mapping[str, float] | None = None,
) -> Path:
    """Write a figure as PNG.

    Fixed margins instead of a layout engine: constrained layout doubles the drawing cost.
    Figures with long tick labels pass wider margins; ``inches`` gives some of them in inches
    from the figure's edge instead, for figures whose size depends on the data (a fraction of
    a short figure cut labels off).
    """
    margins = {"left": left, "right": right, "bottom": bottom, "top": top}
    width, height = fig.get_size_inches()
    for side, size in (inches or {}).items():
        extent = width if side in ("left", "right") else height
        margins[side] = size / extent if side in ("left", "bottom") else 1 - size / extent
    fig.subplots_adjust(**margins)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, pil_kwargs=PNG_OPTIONS)
    return path
