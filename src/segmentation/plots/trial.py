"""Plots of one trial's segmentation: cluster scatter (2D and 3D), segment sizes, silhouette and
the segment profile heatmap."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from segmentation.plots import save, segment_colour, segment_label, subsample


def cluster_scatter(
    X_raw: np.ndarray,
    X_scaled: np.ndarray,
    labels: np.ndarray,
    names: Sequence[str],
    title: str,
    sizes: Mapping[int, int] | None = None,
) -> Figure:
    """2D scatter of the segments: the two features in original units, or the first two
    principal components of the scaled space (explained variance in the axis labels).

    ``sizes`` gives the full segment sizes when ``labels`` is already a sample."""
    idx = subsample(len(labels))
    sizes = sizes or {int(s): int((labels == s).sum()) for s in np.unique(labels)}
    fig = Figure(figsize=(8.4, 4.8))
    ax = fig.add_subplot()
    if X_raw.shape[1] == 2:
        xy = X_raw[idx]
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
    else:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, random_state=0).fit(X_scaled[idx])
        xy = pca.transform(X_scaled[idx])
        ratio = pca.explained_variance_ratio_
        ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of variance, scaled units)")
        ax.set_ylabel(f"PC2 ({ratio[1]:.0%} of variance, scaled units)")
    _plot_segments(
        ax,
        xy,
        labels[idx],
        4,
        lambda s: f"{segment_label(s)} (n={sizes.get(s, 0)})",
    )
    ax.set_title(title)
    # Beside the axes: it never hides points, and loc="best" costs 150 ms at 20,000 points.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def _plot_segments(
    ax: Any,
    coords: np.ndarray,
    labels: np.ndarray,
    markersize: float,
    label: Callable[[int], str],
) -> None:
    """One series of points per segment, in the segment's colour (2D or 3D axes).

    Markers of a line, not a scatter collection: one stamped marker, half the cost.
    """
    for segment in np.unique(labels):
        ax.plot(
            *coords[labels == segment].T,
            linestyle="none",
            marker="o",
            markersize=markersize,
            markeredgewidth=0,
            alpha=0.75,
            color=segment_colour(segment),
            label=label(int(segment)),
        )


def segment_sizes(labels: np.ndarray, title: str, sizes: Mapping[int, int] | None = None) -> Figure:
    """Bar chart of customers per segment, with counts and shares (``sizes`` wins over
    counting ``labels``, which may be a sample)."""
    if sizes:
        values, counts = np.array(sorted(sizes)), np.array([sizes[k] for k in sorted(sizes)])
    else:
        values, counts = np.unique(labels, return_counts=True)
    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.add_subplot()
    bars = ax.bar(
        [segment_label(v) for v in values], counts, color=[segment_colour(v) for v in values]
    )
    total = counts.sum()
    for bar, count in zip(bars, counts, strict=True):
        ax.annotate(
            f"{count} ({count / total:.0%})",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    ax.set_ylabel("customers")
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=30 if len(values) > 6 else 0)
    ax.margins(y=0.12)
    return fig


def silhouette_plot(
    sample_values: np.ndarray, sample_labels: np.ndarray, mean: float, title: str
) -> Figure:
    """Per-customer silhouette values, grouped by segment, with the mean marked."""
    keep = subsample(len(sample_values))
    sample_values, sample_labels = sample_values[keep], sample_labels[keep]
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot()
    y = 0
    for segment in np.unique(sample_labels):
        vals = np.sort(sample_values[sample_labels == segment])
        ax.fill_betweenx(
            np.arange(y, y + len(vals)),
            0,
            vals,
            color=segment_colour(segment),
            alpha=0.85,
            label=segment_label(segment),
        )
        y += len(vals) + 5
    ax.axvline(mean, color="#D55E00", linestyle="--", label=f"mean {mean:.3f}")
    ax.set_xlabel("silhouette value (scaled feature space)")
    ax.set_ylabel("customers, grouped by segment")
    ax.set_yticks([])
    ax.set_xlim(-0.3, 1.0) if len(sample_values) == 0 else ax.set_xlim(
        min(-0.1, float(sample_values.min())), 1.0
    )
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def cluster_scatter_3d(
    X_raw: np.ndarray, X_scaled: np.ndarray, labels: np.ndarray, names: Sequence[str], title: str
) -> Figure:
    """3D scatter of the segments: the three features in original units, or the first three
    principal components of the scaled space when there are more."""
    idx = subsample(len(labels))
    fig = Figure(figsize=(6.4, 5.2))
    ax = fig.add_subplot(projection="3d")
    if X_raw.shape[1] == 3:
        xyz = X_raw[idx]
        axis_names = list(names)
    else:
        from sklearn.decomposition import PCA

        pca = PCA(n_components=3, random_state=0).fit(X_scaled[idx])
        xyz = pca.transform(X_scaled[idx])
        axis_names = [
            f"PC{i + 1} ({r:.0%} of variance)" for i, r in enumerate(pca.explained_variance_ratio_)
        ]
    _plot_segments(ax, xyz, labels[idx], 3.2, segment_label)
    ax.set_xlabel(axis_names[0], fontsize=8)
    ax.set_ylabel(axis_names[1], fontsize=8)
    ax.set_zlabel(axis_names[2], fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title(title)
    ax.legend(fontsize=7, loc="upper left")
    return fig


def profile_heatmap(
    profile: pd.DataFrame, title: str, names: dict[int, str] | None = None
) -> Figure:
    """Each segment's mean per feature as a z-score against the population (colour), with the
    mean in original units written in the cell."""
    from segmentation.profiles import profile_columns

    columns = profile_columns(profile)
    z = profile[[f"z:{c}" for c in columns]].to_numpy(dtype=float)
    means = profile[[f"mean:{c}" for c in columns]].to_numpy(dtype=float)
    segments = [int(s) for s in profile["segment"]]
    fig = Figure(figsize=(max(6.4, 1.4 * len(columns) + 3.5), 0.55 * len(segments) + 2.2))
    ax = fig.add_subplot()
    limit = max(1.0, float(np.nanmax(np.abs(z))) if z.size else 1.0)
    image = ax.imshow(z, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            ax.text(
                j,
                i,
                f"{means[i, j]:.3g}",
                ha="center",
                va="center",
                fontsize=8,
                color="white" if abs(z[i, j]) > 0.6 * limit else "black",
            )
    # Slanted: long column names such as "Annual Income (k$)" would overlap side by side.
    ax.set_xticks(
        range(len(columns)), [str(c) for c in columns], fontsize=8, rotation=20, ha="right"
    )
    labels = [
        f"{segment_label(s)}" + (f": {names[s]}" if names and s in names else "") + f" (n={int(n)})"
        for s, n in zip(segments, profile["size"], strict=True)
    ]
    ax.set_yticks(range(len(segments)), labels, fontsize=8)
    for tick, s in zip(ax.get_yticklabels(), segments, strict=True):
        tick.set_color(segment_colour(s) if s != -1 else "#555555")
    colourbar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    colourbar.set_label("z-score of the segment mean vs population", fontsize=8)
    ax.set_xlabel("feature (cells: segment mean in original units)")
    ax.set_title(title)
    return fig


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
        save(
            cluster_scatter(X_raw, X_scaled, labels, names, f"Segments: {title}", sizes),
            out_dir / "cluster_scatter.png",
            right=0.72,
        ),
        save(
            segment_sizes(labels, f"Segment sizes: {title}", sizes), out_dir / "segment_sizes.png"
        ),
    ]
    if silhouette_values is not None and len(silhouette_values):
        paths.append(
            save(
                silhouette_plot(
                    silhouette_values, silhouette_labels, silhouette, f"Silhouette: {title}"
                ),
                out_dir / "silhouette.png",
            )
        )
    if X_raw.shape[1] >= 3:
        paths.append(
            save3d(
                cluster_scatter_3d(X_raw, X_scaled, labels, names, f"Segments in 3D: {title}"),
                out_dir / "cluster_scatter_3d.png",
            )
        )
    if profile is not None:
        fig = profile_heatmap(profile, f"Segment profiles: {title}", personas)
        paths.append(save(fig, out_dir / "segment_profile.png", left=0.36, bottom=0.22, right=0.86))
    return paths


def save3d(fig: Figure, path: Path) -> Path:
    """3D axes need room on every side for their tick labels."""
    return save(fig, path, left=0.02, right=0.98, bottom=0.04, top=0.93)
