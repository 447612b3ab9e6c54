"""Exploratory plots of a sweep's data (parent run): distributions, categories, spending by
group, correlations and the feature set pairwise."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from segmentation.plots import PALETTE, subsample
from segmentation.plots.drawing import save

# (value, group) box plots drawn when both columns exist: spending by gender (Mall),
# total spend by education (retail). A dataset config may set its own under `eda.box`.
DEFAULT_BOX = [("Spending Score (1-100)", "Gender"), ("MntTotal", "Education")]
# Categorical columns with more levels than this are not counted (they are ids or free text).
MAX_LEVELS = 20
MAX_PANELS = 24


def eda_frame(raw: pd.DataFrame, engineered: pd.DataFrame, id_column: str | None) -> pd.DataFrame:
    """The raw columns plus engineered ones the raw data lacks (e.g. retail ``MntTotal``)."""
    # Engineered dummies (e.g. Gender_Male) repeat a categorical column already counted.
    extra = [c for c in engineered.columns if c not in raw.columns and engineered[c].nunique() > 2]
    frame = pd.concat(
        [raw.reset_index(drop=True), engineered[extra].reset_index(drop=True)], axis=1
    )
    return frame.drop(columns=[id_column], errors="ignore") if id_column else frame


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    return [
        c
        for c in frame.columns
        if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
    ]


def categorical_columns(frame: pd.DataFrame) -> list[str]:
    return [
        c
        for c in frame.columns
        if not pd.api.types.is_numeric_dtype(frame[c]) and 1 < frame[c].nunique() <= MAX_LEVELS
    ]


def _grid(n: int, cols: int, width: float = 3.2, height: float = 2.6) -> tuple[Figure, list]:
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(width * cols, height * rows + 0.6))
    axes = [fig.add_subplot(rows, cols, i + 1) for i in range(n)]
    return fig, axes


def histograms(frame: pd.DataFrame, columns: Sequence[str], title: str) -> Figure:
    """One histogram per numeric column."""
    columns = list(columns)[:MAX_PANELS]
    fig, axes = _grid(len(columns), min(3, len(columns)))
    for ax, column in zip(axes, columns, strict=True):
        values = frame[column].dropna().to_numpy(dtype=float)
        ax.hist(values, bins=min(30, max(5, len(np.unique(values)))), color=PALETTE[0])
        ax.set_xlabel(str(column), fontsize=8)
        ax.set_ylabel("customers", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title)
    fig.subplots_adjust(hspace=0.55, wspace=0.35)
    return fig


def category_counts(frame: pd.DataFrame, columns: Sequence[str], title: str) -> Figure:
    """Customers per category of each categorical column."""
    fig, axes = _grid(len(columns), min(2, len(columns)), width=4.4, height=3.2)
    for ax, column in zip(axes, columns, strict=True):
        counts = frame[column].astype(str).value_counts()
        bars = ax.bar(range(len(counts)), counts.to_numpy(), color=PALETTE[2])
        ax.set_xticks(
            range(len(counts)),
            [str(v) for v in counts.index],
            fontsize=7,
            rotation=30 if len(counts) > 3 else 0,
            ha="right" if len(counts) > 3 else "center",
        )
        for bar, count in zip(bars, counts.to_numpy(), strict=True):
            ax.annotate(
                str(int(count)),
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=7,
            )
        ax.set_xlabel(str(column), fontsize=8)
        ax.set_ylabel("customers", fontsize=8)
        ax.margins(y=0.15)
    fig.suptitle(title)
    fig.subplots_adjust(hspace=0.6, wspace=0.3)
    return fig


def box_by_group(frame: pd.DataFrame, value: str, group: str, title: str) -> Figure:
    """Distribution of ``value`` per level of ``group``."""
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot()
    levels = sorted(frame[group].dropna().astype(str).unique())
    data = [
        frame.loc[frame[group].astype(str) == lv, value].dropna().to_numpy(float) for lv in levels
    ]
    parts = ax.boxplot(data, patch_artist=True)
    ax.set_xticks(range(1, len(levels) + 1), levels, fontsize=8)
    for i, patch in enumerate(parts["boxes"]):
        patch.set_facecolor(PALETTE[i % len(PALETTE)])
        patch.set_alpha(0.7)
    ax.set_xlabel(str(group))
    ax.set_ylabel(str(value))
    ax.set_title(title)
    return fig


def correlation_heatmap(frame: pd.DataFrame, columns: Sequence[str], title: str) -> Figure:
    """Pearson correlations of the numeric columns, values written when they fit."""
    corr = frame[list(columns)].astype(float).corr().to_numpy()
    n = len(columns)
    size = max(5.0, 0.45 * n + 3.0)
    fig = Figure(figsize=(size + 1.0, size))
    ax = fig.add_subplot()
    image = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
    if n <= 14:
        for i in range(n):
            for j in range(n):
                ax.text(
                    j,
                    i,
                    f"{corr[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if abs(corr[i, j]) > 0.6 else "black",
                )
    ax.set_xticks(range(n), [str(c) for c in columns], rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(n), [str(c) for c in columns], fontsize=7)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02).set_label("Pearson correlation")
    ax.set_title(title)
    return fig


def pairwise_scatter(X_raw: np.ndarray, names: Sequence[str], title: str) -> Figure:
    """Every pair of the feature set (original units); histograms on the diagonal."""
    names = list(names)[:6]
    n = len(names)
    idx = subsample(len(X_raw))
    X = X_raw[idx][:, :n]
    fig = Figure(figsize=(2.3 * n + 0.8, 2.3 * n + 0.6))
    for i in range(n):
        for j in range(n):
            ax = fig.add_subplot(n, n, i * n + j + 1)
            if i == j:
                ax.hist(X[:, i], bins=20, color=PALETTE[0])
            else:
                ax.plot(
                    X[:, j],
                    X[:, i],
                    linestyle="none",
                    marker="o",
                    markersize=2,
                    markeredgewidth=0,
                    alpha=0.5,
                    color=PALETTE[0],
                )
            # Tick labels on the outer panels only, as in a scatter matrix: a column shares
            # its x feature, a row its y feature (the diagonal counts customers). Inner ones
            # added about 300 texts.
            ax.tick_params(labelsize=6, labelbottom=i == n - 1, labelleft=j == 0 and i != j)
            ax.locator_params(nbins=4)  # each tick is an artist to build: half as many
            if i == n - 1:
                ax.set_xlabel(str(names[j]), fontsize=7)
            if j == 0:
                ax.set_ylabel(
                    str(names[i]) if i else f"{names[i]}\n(diagonal: customers)", fontsize=7
                )
    fig.suptitle(title)
    fig.subplots_adjust(hspace=0.3, wspace=0.3)
    return fig


def write_eda_plots(
    out_dir: Path,
    frame: pd.DataFrame,
    X_raw: np.ndarray,
    features: Sequence[str],
    title: str,
    box: Sequence[Sequence[str]] | None = None,
    categories: Sequence[str] | None = None,
) -> list[Path]:
    """Write the EDA PNGs of a dataset into ``out_dir``."""
    numeric = numeric_columns(frame)
    cats = [c for c in (categories or categorical_columns(frame)) if c in frame.columns]
    # (file name, figure builder, margins): drawn one at a time, so one figure is alive at once.
    plots: list[tuple[str, Callable[[], Figure], dict[str, Any]]] = []
    if numeric:
        plots.append(
            (
                "histograms.png",
                lambda: histograms(frame, numeric, f"Distributions: {title}"),
                # In inches: a fraction of one row's height cut the column names off.
                {"left": 0.08, "inches": {"bottom": 0.5, "top": 0.4}},
            )
        )
    if cats:
        plots.append(
            (
                "category_counts.png",
                lambda: category_counts(frame, cats, f"Customers per category: {title}"),
                {"left": 0.1, "bottom": 0.18, "top": 0.88},
            )
        )
    for value, group in box if box is not None else DEFAULT_BOX:
        if value in frame.columns and group in frame.columns:
            plots.append(
                (
                    f"box_{_slug(value)}_by_{_slug(group)}.png",
                    partial(box_by_group, frame, value, group, f"{value} by {group}: {title}"),
                    {},
                )
            )
    if len(numeric) >= 2:
        plots.append(
            (
                "correlation.png",
                lambda: correlation_heatmap(frame, numeric, f"Correlations: {title}"),
                # The colour bar's ticks and label need an inch: at 0.95 they were cut off.
                {"left": 0.25, "bottom": 0.25, "inches": {"right": 1.0}},
            )
        )
    if len(features) >= 2:
        plots.append(
            (
                "pairwise_features.png",
                lambda: pairwise_scatter(X_raw, features, f"Feature set pairwise: {title}"),
                {"left": 0.1, "bottom": 0.1, "top": 0.93},
            )
        )
    return [save(build(), out_dir / name, **margins) for name, build, margins in plots]


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in str(text)).strip("_").lower()[:40]


def box_pairs(dataset_cfg: Mapping | None) -> list[tuple[str, str]] | None:
    """``eda.box`` of a dataset config as (value, group) pairs, or ``None`` for the defaults."""
    eda = (dataset_cfg or {}).get("eda") or {}
    pairs = eda.get("box")
    return None if pairs is None else [(str(v), str(g)) for v, g in pairs]
