"""Plots of one trial's segmentation: cluster scatter, segment sizes, silhouette."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from segmentation.plots import save, segment_colour, segment_label, subsample


def cluster_scatter(
    X_raw: np.ndarray, X_scaled: np.ndarray, labels: np.ndarray, names: Sequence[str], title: str
) -> Figure:
    """2D scatter of the segments: the two features in original units, or the first two
    principal components of the scaled space (explained variance in the axis labels)."""
    idx = subsample(len(labels))
    fig = Figure(figsize=(6.4, 4.8))
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
    sub = labels[idx]
    for segment in np.unique(sub):
        mask = sub == segment
        ax.scatter(
            xy[mask, 0], xy[mask, 1], s=14, alpha=0.75, color=segment_colour(segment),
            label=f"{segment_label(segment)} (n={int((labels == segment).sum())})",
            edgecolors="none",
        )
    ax.set_title(title)
    ax.legend(fontsize=8, loc="best", frameon=True)
    return fig


def segment_sizes(labels: np.ndarray, title: str) -> Figure:
    """Bar chart of customers per segment, with counts and shares."""
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
            ha="center", va="bottom", fontsize=8,
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
    fig = Figure(figsize=(6.4, 4.8))
    ax = fig.add_subplot()
    y = 0
    for segment in np.unique(sample_labels):
        vals = np.sort(sample_values[sample_labels == segment])
        ax.fill_betweenx(
            np.arange(y, y + len(vals)), 0, vals, color=segment_colour(segment), alpha=0.85,
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
) -> list[Path]:
    """Write the trial's PNGs into ``out_dir``."""
    paths = [
        save(cluster_scatter(X_raw, X_scaled, labels, names, f"Segments: {title}"),
             out_dir / "cluster_scatter.png"),
        save(segment_sizes(labels, f"Segment sizes: {title}"), out_dir / "segment_sizes.png"),
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
    return paths
