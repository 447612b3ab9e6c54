"""What drawing a figure needs from matplotlib: text colours that read on white, and writing a
figure as PNG."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib import rc_context
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure

from segmentation.plots import DPI, PNG_OPTIONS, TEXT_STYLE, segment_colour


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


def save(
    fig: Figure,
    path: Path,
    dpi: int = DPI,
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
    return write_png(fig, path, dpi)


def write_png(fig: Figure, path: Path, dpi: int = DPI) -> Path:
    """Write a figure whose layout is set as PNG, its text in ``TEXT_STYLE``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rc_context(TEXT_STYLE):
        fig.savefig(path, dpi=dpi, pil_kwargs=PNG_OPTIONS)
    return path
