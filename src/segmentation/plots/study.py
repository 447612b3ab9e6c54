"""Plots of a whole study: optimisation history, silhouette against k per algorithm, the
choosing-k curves and Optuna's own plots."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import optuna
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from segmentation.plots import PALETTE
from segmentation.plots.drawing import save, write_png


def _completed(trials: Sequence[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """Trials with a score that met every constraint."""
    return [
        t
        for t in trials
        if t.state == optuna.trial.TrialState.COMPLETE and not t.user_attrs.get("reason")
    ]


def _rejected(trials: Sequence[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """Trials that broke a constraint, were degenerate or failed to fit."""
    done = {t.number for t in _completed(trials)}
    return [t for t in trials if t.state.is_finished() and t.number not in done]


def optimisation_history(trials: Sequence[optuna.trial.FrozenTrial], title: str) -> Figure:
    """Silhouette of each trial and the best so far; rejected trials marked at the bottom."""
    fig = Figure(figsize=(7.0, 4.5))
    ax = fig.add_subplot()
    done = sorted(_completed(trials), key=lambda t: t.number)
    if done:
        numbers = [t.number for t in done]
        values = [t.values[0] for t in done]
        ax.scatter(numbers, values, s=18, color=PALETTE[0], label="trial silhouette")
        ax.step(
            numbers,
            np.maximum.accumulate(values),
            where="post",
            color=PALETTE[5],
            label="best so far",
        )
    rejected = [t.number for t in _rejected(trials)]
    if rejected:
        bottom = min([t.values[0] for t in done], default=0.0) - 0.05
        ax.scatter(
            rejected,
            [bottom] * len(rejected),
            marker="x",
            s=18,
            color="#777777",
            label="rejected (constraint or fit error)",
        )
    ax.set_xlabel("trial number")
    ax.set_ylabel("silhouette (scaled feature space)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def silhouette_vs_k(trials: Sequence[optuna.trial.FrozenTrial], title: str) -> Figure:
    """Best silhouette per number of segments, one line per algorithm."""
    fig = Figure(figsize=(7.0, 4.5))
    ax = fig.add_subplot()
    best: dict[str, dict[int, float]] = {}
    for t in _completed(trials):
        algorithm = t.user_attrs.get("algorithm", "?")
        k = int(t.user_attrs.get("n_clusters", 0))
        per_k = best.setdefault(algorithm, {})
        per_k[k] = max(per_k.get(k, -1.0), t.values[0])
    for i, (algorithm, per_k) in enumerate(sorted(best.items())):
        ks = sorted(per_k)
        ax.plot(
            ks, [per_k[k] for k in ks], marker="o", color=PALETTE[i % len(PALETTE)], label=algorithm
        )
    ax.set_xlabel("number of segments (k)")
    ax.set_ylabel("best silhouette (scaled feature space)")
    ax.set_title(title)
    if best:
        ax.legend(fontsize=8)
    ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


def write_study_plots(
    out_dir: Path, trials: Sequence[optuna.trial.FrozenTrial], title: str
) -> list[Path]:
    return [
        save(
            optimisation_history(trials, f"Optimisation history: {title}"),
            out_dir / "optimisation_history.png",
        ),
        save(
            silhouette_vs_k(trials, f"Silhouette against k: {title}"),
            out_dir / "silhouette_vs_k.png",
        ),
    ]


# Optuna's plots of a study (see :func:`write_optuna_plots`).
OPTUNA_PLOTS = ("optuna_history", "param_importances", "slice")


def draw_study_plots(
    out_dir: Path, trials: Sequence[optuna.trial.FrozenTrial], directions: list[str], title: str
) -> dict[str, str]:
    """Every plot of a study into ``out_dir``: ours and Optuna's (drawn from an in-memory copy
    of the finished trials, so an artifact process can draw them from picklable inputs).
    Returns the Optuna plots skipped, with the reason."""
    write_study_plots(out_dir, trials, title)
    study = optuna.create_study(directions=directions)
    study.add_trials([t for t in trials if t.state.is_finished()])
    names = OPTUNA_PLOTS + (("pareto_front",) if len(directions) > 1 else ())
    return write_optuna_plots(out_dir, study, names)[1]


def circle(
    ax: Axes,
    x: float,
    y: float,
    colour: str,
    label: str | None = None,
    size: int = 140,
    on_top: bool = True,
) -> None:
    """Circle the chosen k on a curve (hollow marker in ``colour``)."""
    extra: dict = {"label": label} if label else {}
    if on_top:
        extra["zorder"] = 3
    ax.scatter([x], [y], s=size, facecolors="none", edgecolors=colour, linewidths=2, **extra)


def k_figure() -> tuple[Figure, Axes]:
    """A figure for a curve against k."""
    fig = Figure(figsize=(6.4, 4.2))
    return fig, fig.add_subplot()


def label_k_axes(
    ax: Axes, xlabel: str, ylabel: str, title: str, legend_title: str | None = None
) -> None:
    """Labels, title and legend of a curve against k, with whole-number ticks on k."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    legend = {"title": legend_title, "title_fontsize": 8} if legend_title else {}
    ax.legend(fontsize=8, **legend)
    ax.xaxis.get_major_locator().set_params(integer=True)


def elbow_plot(curves: dict, title: str) -> Figure:
    fig, ax = k_figure()
    ks, inertia = curves["k"], curves["kmeans_inertia"]
    ax.plot(ks, inertia, marker="o", color=PALETTE[0], label="KMeans inertia")
    ax.plot(
        [ks[0], ks[-1]],
        [inertia[0], inertia[-1]],
        linestyle=":",
        color="#777777",
        label="chord (first to last k)",
    )
    k = curves["elbow_k"]
    circle(ax, k, inertia[ks.index(k)], PALETTE[5], label=f"elbow: k={k}")
    label_k_axes(
        ax, "number of segments (k)", "inertia (sum of squared distances, scaled units)", title
    )
    return fig


def silhouette_k_plot(curves: dict, title: str) -> Figure:
    fig, ax = k_figure()
    for i, (key, label) in enumerate([("kmeans_silhouette", "KMeans"), ("gmm_silhouette", "GMM")]):
        values = curves[key]
        ax.plot(curves["k"], values, marker="o", color=PALETTE[i], label=label)
        if np.isfinite(values).any():
            best = int(np.nanargmax(values))
            circle(ax, curves["k"][best], values[best], PALETTE[i], size=120, on_top=False)
    label_k_axes(
        ax,
        "number of segments (k)",
        "silhouette (scaled feature space)",
        title,
        legend_title="circled: best k",
    )
    return fig


def bic_plot(curves: dict, title: str) -> Figure:
    fig, ax = k_figure()
    bic = curves["gmm_bic"]
    ax.plot(curves["k"], bic, marker="o", color=PALETTE[1], label="GMM BIC (full covariance)")
    best = int(np.argmin(bic))
    circle(ax, curves["k"][best], bic[best], PALETTE[5], label=f"lowest BIC: k={curves['k'][best]}")
    label_k_axes(ax, "number of components (k)", "BIC (lower is better)", title)
    return fig


def write_k_plots(out_dir: Path, curves: dict, title: str) -> list[Path]:
    """Elbow, silhouette against k and BIC against k."""
    if len(curves["k"]) < 2:
        return []
    return [
        save(elbow_plot(curves, f"Elbow: {title}"), out_dir / "elbow.png", left=0.14),
        save(
            silhouette_k_plot(curves, f"Silhouette against k (quick fits): {title}"),
            out_dir / "silhouette_vs_k_fits.png",
        ),
        save(bic_plot(curves, f"GMM BIC against k: {title}"), out_dir / "gmm_bic.png", left=0.14),
    ]


def write_optuna_plots(
    out_dir: Path, study: optuna.Study, names: Sequence[str] = OPTUNA_PLOTS
) -> tuple[list[Path], dict[str, str]]:
    """Optuna's own plots (history, parameter importances, slice; or those in ``names``);
    returns the files written and, per plot skipped, the reason."""
    # Imported where Optuna's plots are drawn only (pyplot and Optuna's plotting are slow to
    # import).
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    out_dir.mkdir(parents=True, exist_ok=True)
    completed = _completed(study.get_trials(deepcopy=False))
    # With two objectives (silhouette, stability) the history, importances and slices are of
    # the silhouette; the Pareto front shows both.
    target = (
        {"target": lambda t: t.values[0], "target_name": "silhouette"}
        if len(study.directions) > 1
        else {}
    )
    plots = {
        "optuna_history": lambda s: ovm.plot_optimization_history(s, **target),
        # Importances look for what gives low target values: the silhouette, negated.
        "param_importances": lambda s: ovm.plot_param_importances(
            s, **({"target": lambda t: -t.values[0], "target_name": "silhouette"} if target else {})
        ),
        "slice": lambda s: ovm.plot_slice(s, **target),
        "pareto_front": lambda s: ovm.plot_pareto_front(
            s, target_names=["silhouette", "stability_ari"]
        ),
    }
    paths: list[Path] = []
    skipped: dict[str, str] = {}
    for name in names:
        plot = plots[name]
        if not completed:
            skipped[name] = "no completed trial"
            continue
        # One trial has no spread: importances fail and the slice axes collapse.
        if name in ("param_importances", "slice") and len(completed) < 2:
            skipped[name] = f"needs at least 2 completed trials, has {len(completed)}"
            continue
        try:
            # These functions are marked experimental; the warning says nothing to a user here.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                # A parameter with one value so far: matplotlib widens the axis itself.
                warnings.filterwarnings(
                    "ignore", "Attempting to set identical low and high xlims", UserWarning
                )
                # Importances on few trials per parameter value say so; the plot says enough.
                warnings.filterwarnings("ignore", category=UserWarning, module="optuna")
                result = plot(study)
        except Exception as exc:  # e.g. importances when no parameter varies
            skipped[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            continue
        axes = np.atleast_1d(result)
        fig = axes.flat[0].figure
        try:
            fig.set_size_inches(max(7.0, 3.0 * len(axes.flat)), 4.5)
            # Importances put parameter names on the y axis: leave them room.
            fig.subplots_adjust(left=0.28 if name == "param_importances" else 0.08, bottom=0.15)
            path = out_dir / f"{name}.png"
            write_png(fig, path)
            paths.append(path)
        finally:
            plt.close(fig)
    return paths, skipped
