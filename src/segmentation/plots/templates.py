"""Figures drawn once and reused: the part that stays the same across a study's trials (axes,
ticks, axis labels, colour bar) is rendered once per worker process; each trial draws only its
own artists (points, bars, texts, title) over a copy of that background.

This is matplotlib's blitting, used to write files: text layout dominates a small figure's
cost, while the artists a trial changes take a few milliseconds.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

from matplotlib import rc_context, rcParams
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import ScaledTranslation, blended_transform_factory
from PIL import Image

from segmentation.plots import DPI, PNG_OPTIONS, TEXT_STYLE

# Per process. A study needs about a dozen: one per scatter, a few share axes, silhouette axes
# and colour scales.
MAX_TEMPLATES = 48


class FigureTemplate:
    """A figure whose fixed part is drawn once.

    Parameters
    ----------
    figure : Figure
        The figure with everything that does not change between uses. Its axes keep the limits
        they have now (autoscaling is turned off), so later artists cannot move them.
    margins : float
        ``left``, ``right``, ``bottom``, ``top`` for ``Figure.subplots_adjust``.
    """

    def __init__(self, figure: Figure, **margins: float):
        self.figure = figure
        figure.subplots_adjust(**margins)
        for ax in figure.axes:
            ax.set_autoscale_on(False)
        figure.set_dpi(DPI)
        self.canvas = FigureCanvasAgg(figure)
        with rc_context(TEXT_STYLE):
            self.canvas.draw()
        self._background = self.canvas.copy_from_bbox(figure.bbox)

    @property
    def axes(self) -> Axes:
        return self.figure.axes[0]

    def write(self, artists: Sequence[Artist], path: Path) -> Path:
        """Draw ``artists`` (already added to this figure) over the fixed part, write the PNG,
        then remove them, so the template is as it was."""
        try:
            self.canvas.restore_region(self._background)
            with rc_context(TEXT_STYLE):
                for artist in artists:
                    self.figure.draw_artist(artist)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Pillow drops the alpha channel itself, several times faster than a numpy slice
            # (a strided view it would copy row by row).
            size = self.canvas.get_width_height()
            pixels = Image.frombuffer("RGBA", size, self.canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
            pixels.convert("RGB").save(path, format="png", **PNG_OPTIONS)
            return path
        finally:
            for artist in artists:
                artist.remove()


_templates: OrderedDict[Hashable, FigureTemplate] = OrderedDict()


def template(key: Hashable, build: Callable[[], Figure], **margins: float) -> FigureTemplate:
    """The template for ``key``, built with ``build()`` the first time (least recently used
    ones are dropped beyond ``MAX_TEMPLATES``)."""
    if key in _templates:
        _templates.move_to_end(key)
        return _templates[key]
    made = _templates[key] = FigureTemplate(build(), **margins)
    while len(_templates) > MAX_TEMPLATES:
        _templates.popitem(last=False)
    return made


def clear_templates() -> None:
    """Forget every template (tests compare a reused template with a fresh one)."""
    _templates.clear()


def side_legend(
    ax: Axes, entries: Sequence[tuple[str, str, str | None]], fontsize: float = 8
) -> list[Artist]:
    """A legend column right of ``ax``, one ``(colour, label, linestyle)`` per row: a point
    marker when ``linestyle`` is ``None``, else a short line.

    Matplotlib's own legend is slow to draw (a layout of boxes); these few artists are quick,
    and sit outside the axes so they never hide data. They belong to
    the figure (placed in ``ax``'s coordinates), so 3D axes take them as well.
    """
    figure = ax.get_figure()
    step = 1.7 * fontsize * (figure.dpi / 72) / ax.bbox.height
    artists: list[Artist] = []
    for i, (colour, label, linestyle) in enumerate(entries):
        y = 1.0 - (i + 0.5) * step
        if linestyle is None:
            style = {"marker": "o", "linestyle": "none", "markersize": 6, "markeredgewidth": 0}
            xs = [1.035]
        else:
            style, xs = {"linestyle": linestyle}, [1.02, 1.05]
        handle = Line2D(xs, [y] * len(xs), transform=ax.transAxes, color=colour, **style)
        figure.add_artist(handle)
        artists += [
            handle,
            figure.text(1.065, y, label, transform=ax.transAxes, fontsize=fontsize, va="center"),
        ]
    return artists


def axes_title(ax: Axes, text: str, over_figure: bool = False) -> Artist:
    """A title above ``ax`` where ``Axes.set_title`` puts it (6 points above), as an artist of
    its own: the template's fixed part has no title. ``over_figure`` centres it on the figure
    instead, for axes too narrow or too far right to hold it."""
    figure = ax.get_figure()
    offset = ScaledTranslation(0, 6 / 72, figure.dpi_scale_trans)
    above = ax.transAxes + offset
    return figure.text(
        0.5,
        1.0,
        text,
        transform=blended_transform_factory(figure.transFigure, above) if over_figure else above,
        ha="center",
        va="baseline",
        fontsize=rcParams["axes.titlesize"],
    )
