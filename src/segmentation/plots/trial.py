"""Plots of one trial's segmentation: cluster scatter (2D and 3D), segment sizes, silhouette and
the segment profile heatmap.

Each plot is a template (:mod:`segmentation.plots.templates`) holding what its trials share,
and the artists one trial adds; every function writes its PNG and returns the path."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import PercentFormatter
from matplotlib.transforms import ScaledTranslation
from sklearn.decomposition import PCA

from segmentation.plots import data_key, segment_colour, segment_label, subsample
from segmentation.plots.drawing import segment_text_colour
from segmentation.plots.templates import axes_title, side_legend, template

MEAN_COLOUR = "#D55E00"
PROFILE_CMAP = "RdBu_r"


def _plane(
    X_raw: np.ndarray, X_scaled: np.ndarray, names: Sequence[str], dims: int
) -> tuple[np.ndarray, list[str]]:
    """The points in ``dims`` dimensions and the axis names: the features in original units,
    or the first principal components of the scaled space when there are more."""
    if X_raw.shape[1] == dims:
        return X_raw, list(names)
    pca = PCA(n_components=dims, random_state=0).fit(X_scaled)
    axis_names = [
        f"PC{i + 1} ({r:.0%} of variance{', scaled units' if dims == 2 else ''})"
        for i, r in enumerate(pca.explained_variance_ratio_)
    ]
    return pca.transform(X_scaled), axis_names


def _limits(values: np.ndarray) -> tuple[float, float]:
    """Axis limits with matplotlib's default 5% margins."""
    low, high = float(np.min(values)), float(np.max(values))
    pad = 0.05 * (high - low) or 0.5
    return low - pad, high + pad


def _scatter_figure(points: np.ndarray, axis_names: list[str]) -> Figure:
    """Axes for a 2D or 3D scatter of ``points`` (limits from the points, named axes)."""
    three_d = points.shape[1] == 3
    fig = Figure(figsize=(7.6, 5.2) if three_d else (8.4, 4.8))
    ax = fig.add_subplot(projection="3d" if three_d else None)
    axes = [(ax.set_xlim, ax.set_xlabel), (ax.set_ylim, ax.set_ylabel)]
    if three_d:
        axes.append((ax.set_zlim, ax.set_zlabel))
        ax.tick_params(labelsize=7)
    for i, (set_limits, set_label) in enumerate(axes):
        set_limits(*_limits(points[:, i]))
        set_label(axis_names[i], **({"fontsize": 8} if three_d else {}))
    return fig


# Margins of the scatters: the legend sits right of the axes; 3D axes need room on every side
# for their tick labels.
SCATTER_MARGINS = {
    2: {"left": 0.12, "right": 0.72, "bottom": 0.12, "top": 0.91},
    3: {"left": 0.0, "right": 0.8, "bottom": 0.04, "top": 0.93},
}


def _segment_scatter(
    path: Path,
    X_raw: np.ndarray,
    X_scaled: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    dims: int,
    title: str,
    label: Callable[[int], str],
) -> Path:
    """The segments' points in ``dims`` dimensions (see :func:`_plane`), a legend entry per
    segment from ``label`` and ``title`` above."""
    idx = subsample(len(labels))
    labels = labels[idx]
    points, axis_names = _plane(X_raw[idx], X_scaled[idx], names, dims)
    # The axes depend on the study's data only: every trial of the study reuses them.
    page = template(
        (f"cluster_scatter_{dims}d", data_key(points), *axis_names),
        lambda: _scatter_figure(points, axis_names),
        **SCATTER_MARGINS[dims],
    )
    segments = [int(s) for s in np.unique(labels)]
    artists = _plot_segments(page.axes, points, labels, 4 if dims == 2 else 3.2)
    artists += side_legend(page.axes, [(segment_colour(s), label(s), None) for s in segments])
    return page.write([*artists, axes_title(page.axes, title)], path)


def cluster_scatter(
    path: Path,
    X_raw: np.ndarray,
    X_scaled: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    title: str,
    sizes: Mapping[int, int] | None = None,
) -> Path:
    """2D scatter of the segments: the two features in original units, or the first two
    principal components of the scaled space (explained variance in the axis labels).

    ``sizes`` gives the full segment sizes when ``labels`` is already a sample."""
    if not sizes:
        sample = labels[subsample(len(labels))]
        sizes = {int(s): int((sample == s).sum()) for s in np.unique(sample)}
    return _segment_scatter(
        path,
        X_raw,
        X_scaled,
        labels,
        names,
        2,
        f"Segments: {title}",
        lambda s: f"{segment_label(s)} (n={sizes.get(s, 0)})",
    )


def _plot_segments(
    ax: Any, coords: np.ndarray, labels: np.ndarray, markersize: float
) -> list[Artist]:
    """One series of points per segment, in the segment's colour (2D or 3D axes).

    Markers of a line, not a scatter collection: one stamped marker, half the cost.
    """
    lines: list[Artist] = []
    for segment in np.unique(labels):
        lines += ax.plot(
            *coords[labels == segment].T,
            linestyle="none",
            marker="o",
            markersize=markersize,
            markeredgewidth=0,
            alpha=0.75,
            color=segment_colour(segment),
        )
    return lines


# Upper ends of the share axis: few distinct axes, so trials reuse them.
SHARE_AXIS_TOPS = (0.25, 0.5, 0.75, 1.0)
# Silhouette plots: lower ends of the value axis, for the same reason.
SILHOUETTE_AXIS_LOWS = (-0.1, -0.25, -0.5, -1.0)


def _sizes_figure(top: float) -> Figure:
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    # Bars sit at fractions of the width, so one template serves any number of segments.
    ax.set_xlim(0, 1)
    ax.set_xticks([])
    ax.set_ylim(0, top)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel("share of customers")
    return fig


def segment_sizes(
    path: Path, labels: np.ndarray, title: str, sizes: Mapping[int, int] | None = None
) -> Path:
    """Bar chart of each segment's share of customers, with counts and shares written on the
    bars (``sizes`` wins over counting ``labels``, which may be a sample)."""
    if sizes:
        values, counts = np.array(sorted(sizes)), np.array([sizes[k] for k in sorted(sizes)])
    else:
        values, counts = np.unique(labels, return_counts=True)
    shares = counts / counts.sum()
    # Room above the highest bar for its label.
    top = next((t for t in SHARE_AXIS_TOPS if shares.max() * 1.15 <= t), 1.15)
    page = template(("segment_sizes", top), lambda: _sizes_figure(top), bottom=0.16)
    ax = page.axes
    points = page.figure.dpi_scale_trans
    above = ax.transData + ScaledTranslation(0, 2 / 72, points)
    below = ax.transData + ScaledTranslation(0, -4 / 72, points)
    many = len(values) > 6  # slanted names and shorter labels, or they would overlap
    width = 1 / len(values)
    artists: list[Artist] = []
    for i, (segment, count, share) in enumerate(zip(values, counts, shares, strict=True)):
        middle = (i + 0.5) * width
        colour = segment_colour(segment)
        artists += [
            ax.add_patch(Rectangle((middle - 0.4 * width, 0), 0.8 * width, share, color=colour)),
            ax.text(
                middle,
                share,
                f"{share:.0%}" if many else f"{count} ({share:.0%})",
                transform=above,
                ha="center",
                fontsize=8,
            ),
            ax.text(
                middle,
                0,
                segment_label(segment),
                transform=below,
                ha="right" if many else "center",
                va="top",
                rotation=30 if many else 0,
                rotation_mode="anchor",
                fontsize=10,
            ),
        ]
    return page.write([*artists, axes_title(ax, f"Segment sizes: {title}")], path)


def _silhouette_figure(low: float) -> Figure:
    fig = Figure(figsize=(7.6, 4.8))
    ax = fig.add_subplot()
    ax.set_xlim(low, 1.0)
    # Customers sit at fractions of the height, so one template serves any sample and number
    # of segments.
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.set_xlabel("silhouette value (scaled feature space)")
    ax.set_ylabel("customers, grouped by segment")
    return fig


def silhouette_plot(
    path: Path, sample_values: np.ndarray, sample_labels: np.ndarray, mean: float, title: str
) -> Path:
    """Per-customer silhouette values, grouped by segment, with the mean marked."""
    keep = subsample(len(sample_values))
    sample_values, sample_labels = sample_values[keep], sample_labels[keep]
    segments = np.unique(sample_labels)
    n = len(sample_values)
    # Gaps between segments share a tenth of the height, whatever the number of segments.
    gap = 0.1 * n / max(len(segments) - 1, 1)
    height = 1.1 * n + 2 * gap
    low = next((x for x in SILHOUETTE_AXIS_LOWS if sample_values.min() >= x), -1.0)
    page = template(("silhouette", low), lambda: _silhouette_figure(low), right=0.78)
    ax = page.axes
    artists: list[Artist] = []
    y = gap
    for segment in segments:
        vals = np.sort(sample_values[sample_labels == segment])
        artists.append(
            ax.fill_betweenx(
                (y + np.arange(len(vals))) / height,
                0,
                vals,
                color=segment_colour(segment),
                alpha=0.85,
                linewidth=0,
            )
        )
        y += len(vals) + gap
    artists.append(ax.axvline(mean, color=MEAN_COLOUR, linestyle="--"))
    artists += side_legend(
        ax,
        [(segment_colour(s), segment_label(s), None) for s in segments]
        + [(MEAN_COLOUR, f"mean {mean:.3f}", "--")],
    )
    return page.write([*artists, axes_title(ax, f"Silhouette: {title}")], path)


def cluster_scatter_3d(
    path: Path,
    X_raw: np.ndarray,
    X_scaled: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    title: str,
) -> Path:
    """3D scatter of the segments: the three features in original units, or the first three
    principal components of the scaled space when there are more."""
    return _segment_scatter(
        path, X_raw, X_scaled, labels, names, 3, f"Segments in 3D: {title}", segment_label
    )


# Profile heatmaps have room for this many rows; more segments make a taller figure.
PROFILE_ROWS = 8
# Margins in inches, the same for any number of features: the row labels (segment and size,
# and the persona name of at most PERSONA_CHARS on a second line) are never cut, and a wide
# table gets no blank margin. Fractions of the width cut a persona name with 2 features.
PROFILE_LEFT_INCHES = 2.5
PROFILE_RIGHT_INCHES = 0.9  # the colour bar's ticks and label
PROFILE_CELL_INCHES = 1.3
PERSONA_CHARS = 36


def _profile_width(columns: Sequence[str]) -> float:
    return PROFILE_LEFT_INCHES + PROFILE_CELL_INCHES * max(len(columns), 2) + PROFILE_RIGHT_INCHES


def _profile_figure(columns: Sequence[str], rows: int, limit: float) -> Figure:
    fig = Figure(figsize=(_profile_width(columns), 0.4 * rows + 2.2))
    ax = fig.add_subplot()
    ax.set_xlim(-0.5, len(columns) - 0.5)
    # Rows sit at fractions of the height (top down), so one template serves up to ``rows``.
    ax.set_ylim(1, 0)
    # Slanted: long column names such as "Annual Income (k$)" would overlap side by side.
    ax.set_xticks(range(len(columns)), list(columns), fontsize=8, rotation=20, ha="right")
    ax.set_yticks([])
    scale = ScalarMappable(Normalize(-limit, limit), cmap=PROFILE_CMAP)
    colourbar = fig.colorbar(scale, ax=ax, fraction=0.04, pad=0.02)
    colourbar.set_label("z-score of the segment mean vs population", fontsize=8)
    ax.set_xlabel("feature (cells: segment mean in original units)")
    return fig


def profile_heatmap(
    path: Path,
    profile: pd.DataFrame,
    columns: Sequence[str],
    title: str,
    names: dict[int, str] | None = None,
) -> Path:
    """Each segment's mean per feature (``columns``) as a z-score against the population
    (colour), with the mean in original units written in the cell."""
    columns = [str(c) for c in columns]
    z = profile[[f"z:{c}" for c in columns]].to_numpy(dtype=float)
    means = profile[[f"mean:{c}" for c in columns]].to_numpy(dtype=float)
    segments = [int(s) for s in profile["segment"]]
    # Whole z-scores: few distinct colour bars, so trials reuse them.
    limit = max(1.0, float(np.ceil(np.nanmax(np.abs(z)))) if z.size else 1.0)
    rows = max(PROFILE_ROWS, len(segments))
    width = _profile_width(columns)
    page = template(
        ("segment_profile", tuple(columns), rows, limit),
        lambda: _profile_figure(columns, rows, limit),
        left=PROFILE_LEFT_INCHES / width,
        bottom=0.22,
        right=1 - PROFILE_RIGHT_INCHES / width,
    )
    ax = page.axes
    artists: list[Artist] = [
        ax.imshow(
            z,
            cmap=PROFILE_CMAP,
            vmin=-limit,
            vmax=limit,
            aspect="auto",
            extent=(-0.5, len(columns) - 0.5, 1, 0),
        )
    ]
    middles = (np.arange(len(segments)) + 0.5) / len(segments)
    for i, y in enumerate(middles):
        for j in range(len(columns)):
            artists.append(
                ax.text(
                    j,
                    y,
                    f"{means[i, j]:.3g}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if abs(z[i, j]) > 0.6 * limit else "black",
                )
            )
    # Row labels where y tick labels would be (their text changes with the trial).
    left_of = ax.transData + ScaledTranslation(-4 / 72, 0, page.figure.dpi_scale_trans)
    for y, segment, size in zip(middles, segments, profile["size"], strict=True):
        persona = (
            f"\n{shorten(names[segment], PERSONA_CHARS)}" if names and segment in names else ""
        )
        artists.append(
            ax.text(
                -0.5,
                y,
                f"{segment_label(segment)} (n={int(size)}){persona}",
                transform=left_of,
                ha="right",
                va="center",
                fontsize=8,
                color=segment_text_colour(segment),
            )
        )
    # Centred on the figure: over the cells of two features it was cut at the right edge.
    heading = axes_title(ax, f"Segment profiles: {title}", over_figure=True)
    return page.write([*artists, heading], path)


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with an ellipsis if it was longer."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


def write_trial_plots(
    out_dir: Path,
    X_raw: np.ndarray,
    X_scaled: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    silhouette_values: np.ndarray | None,
    silhouette_labels: np.ndarray | None,
    silhouette: float,
    title: str,
    profile: pd.DataFrame | None = None,
    personas: dict[int, str] | None = None,
    sizes: Mapping[int, int] | None = None,
) -> list[Path]:
    """Write the trial's PNGs into ``out_dir`` (with ``profile``, also its heatmap; ``sizes``:
    full segment sizes, when the arrays are a sample)."""
    paths = [
        cluster_scatter(
            out_dir / "cluster_scatter.png", X_raw, X_scaled, labels, names, title, sizes
        ),
        segment_sizes(out_dir / "segment_sizes.png", labels, title, sizes),
    ]
    if silhouette_values is not None and len(silhouette_values):
        paths.append(
            silhouette_plot(
                out_dir / "silhouette.png", silhouette_values, silhouette_labels, silhouette, title
            )
        )
    if X_raw.shape[1] >= 3:
        paths.append(
            cluster_scatter_3d(
                out_dir / "cluster_scatter_3d.png", X_raw, X_scaled, labels, names, title
            )
        )
    if profile is not None:
        paths.append(
            profile_heatmap(out_dir / "segment_profile.png", profile, names, title, personas)
        )
    return paths
