"""Plots are written as valid PNGs of sane size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from matplotlib.colors import to_rgb
from sklearn.datasets import make_blobs

from segmentation.evaluation.choosing_k import elbow, k_curves
from segmentation.plots import PALETTE
from segmentation.plots.drawing import contrast_with_white, segment_text_colour
from segmentation.plots.eda import write_eda_plots
from segmentation.plots.study import write_k_plots, write_optuna_plots
from segmentation.plots.trial import write_trial_plots
from segmentation.segments.profiles import segment_profile, write_profile

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, path
    assert 5_000 < len(data) < 2_000_000, (path, len(data))
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert 300 <= width <= 3000 and 200 <= height <= 3000, (path, width, height)


def test_trial_plots_with_3d_and_profile(tmp_path):
    X, labels = make_blobs(400, n_features=3, centers=3, random_state=0)
    X_raw = X * 10 + 50
    labels[:5] = -1  # noise keeps its own grey row
    names = ["Age", "Annual Income (k$)", "Spending Score (1-100)"]
    profile = segment_profile(X_raw, labels, names, centers=np.zeros((3, 3)))
    paths = write_trial_plots(
        tmp_path,
        X_raw,
        X,
        labels,
        names,
        np.linspace(-0.1, 0.9, 400),
        labels,
        0.5,
        "test",
        profile=profile,
        personas={0: "Young, high spending", 1: "<b>bold</b>"},
    )
    written = {p.name for p in paths}
    assert {
        "cluster_scatter.png",
        "cluster_scatter_3d.png",
        "segment_profile.png",
        "segment_sizes.png",
        "silhouette.png",
    } <= written
    for path in paths:
        assert_png(path)
    csv, js = write_profile(profile, tmp_path / "segments")
    table = pd.read_csv(csv)
    assert table["size"].sum() == 400
    assert {"mean:Age", "median:Age", "center:Age", "z:Age"} <= set(table.columns)
    assert abs(table["share"].sum() - 1) < 1e-9
    assert '"segments"' in js.read_text()


def test_eda_and_choosing_k(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "Gender": rng.choice(["Female", "Male"], 200),
            "Education": rng.choice(["Basic", "Graduation", "PhD"], 200),
            "Age": rng.integers(18, 70, 200),
            "Spending Score (1-100)": rng.integers(1, 100, 200),
            "MntTotal": rng.integers(0, 2000, 200),
        }
    )
    X_raw = frame[["Age", "Spending Score (1-100)", "MntTotal"]].to_numpy(float)
    paths = write_eda_plots(
        tmp_path, frame, X_raw, ["Age", "Spending Score (1-100)", "MntTotal"], "test"
    )
    names = {p.name for p in paths}
    assert {
        "histograms.png",
        "category_counts.png",
        "correlation.png",
        "pairwise_features.png",
        "box_spending_score__1_100_by_gender.png",
        "box_mnttotal_by_education.png",
    } <= names
    for path in paths:
        assert_png(path)
        # Nothing runs off an edge (the histograms' column names and the colour bar's
        # labels of the correlations once did).
        pixels = np.asarray(Image.open(path).convert("L"))
        edges = [pixels[:2], pixels[-2:], pixels[:, :2], pixels[:, -2:]]
        assert all((edge == 255).all() for edge in edges), path.name
    X, _ = make_blobs(
        300, centers=[[0, 0], [10, 0], [0, 10], [10, 10]], cluster_std=0.8, random_state=2
    )
    curves = k_curves(X, range(2, 9), seed=0)
    assert curves["elbow_k"] == 4
    assert int(np.argmin(curves["gmm_bic"])) + 2 == 4
    for path in write_k_plots(tmp_path / "k", curves, "blobs"):
        assert_png(path)
    assert elbow([2, 3, 4, 5, 6], [100, 40, 10, 8, 7]) == 4


def test_optuna_plots_skip_importances_with_one_trial(tmp_path):
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("k", 2, 5), n_trials=1)
    paths, skipped = write_optuna_plots(tmp_path, study)
    assert "param_importances" in skipped and "2 completed" in skipped["param_importances"]
    assert {p.name for p in paths} == {"optuna_history.png"}
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_int("k", 2, 5), n_trials=4)
    paths, skipped = write_optuna_plots(tmp_path, study)
    assert not skipped
    for path in paths:
        assert_png(path)


def test_template_png_holds_the_canvas_pixels(tmp_path):
    from matplotlib.figure import Figure
    from PIL import Image

    from segmentation.plots.templates import FigureTemplate

    fig = Figure(figsize=(3.1, 1.7))  # odd sizes: rows are not aligned
    fig.add_subplot().plot([0, 1], [1, 0], color="#D55E00")
    fig.text(0.1, 0.9, "Segment 0 (n=39)")
    page = FigureTemplate(fig, left=0.1, right=0.95, bottom=0.15, top=0.9)
    with Image.open(page.write([], tmp_path / "a.png")) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        decoded = np.asarray(image)
    assert np.array_equal(decoded, np.asarray(page.canvas.buffer_rgba())[..., :3])
    assert (decoded != 255).any(), "the line and the text are drawn"


def test_study_plots_draw_ours_and_optunas(tmp_path):
    """The study's plots, from picklable inputs (the artifact pool draws them); the Optuna plots
    that need more trials are skipped with the reason."""
    from segmentation.plots.study import draw_study_plots

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("algorithm", "kmeans")
        k = trial.suggest_int("kmeans.n_clusters", 2, 6)
        trial.set_user_attr("n_clusters", k)
        return k / 10 + trial.suggest_float("x", 0, 0.1)

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    for n_trials, skips in ((1, {"param_importances", "slice"}), (5, set())):
        study.optimize(objective, n_trials=n_trials - len(study.trials))
        out = tmp_path / str(n_trials)
        skipped = draw_study_plots(out, study.trials, ["maximize"], "t")
        drawn = {"optimisation_history", "silhouette_vs_k", "optuna_history", "param_importances"}
        expected = {f"{name}.png" for name in drawn | {"slice"} if name not in skips}
        assert {p.name for p in out.iterdir()} == expected
        assert set(skipped) == skips
        assert all("needs at least 2 completed trials" in why for why in skipped.values())
        for path in out.iterdir():
            assert_png(path)


def _trial_pngs(out: Path, X: np.ndarray, labels: np.ndarray, names: list[str]) -> dict:
    from PIL import Image

    from segmentation.evaluation.metrics import silhouette_values

    values = silhouette_values(X, labels)
    profile = segment_profile(X, labels, names)
    paths = write_trial_plots(
        out, X, X, labels, names, values, labels, float(values.mean()), "t", profile=profile
    )
    return {p.name: np.asarray(Image.open(p)) for p in paths}


def test_reused_templates_draw_the_same_pixels_as_fresh_ones(tmp_path):
    """A trial drawn on templates another trial used first looks exactly as drawn alone:
    nothing of the earlier trial is left behind, and the fixed part is the same."""
    from segmentation.plots.templates import clear_templates

    X, _ = make_blobs(300, n_features=3, centers=4, random_state=1)
    names = ["Age", "Annual Income (k$)", "Spending Score (1-100)"]
    first = np.repeat([0, 1, 2], 100)  # same segment count, other members, other values
    second = np.repeat([2, 0, 1], 100)
    second[:3] = -1
    clear_templates()
    _trial_pngs(tmp_path / "a", X, first, names)
    reused = _trial_pngs(tmp_path / "b", X, second, names)
    clear_templates()
    fresh = _trial_pngs(tmp_path / "c", X, second, names)
    assert (
        set(reused)
        == set(fresh)
        == {
            "cluster_scatter.png",
            "cluster_scatter_3d.png",
            "segment_profile.png",
            "segment_sizes.png",
            "silhouette.png",
        }
    )
    for name, pixels in fresh.items():
        assert pixels.shape == reused[name].shape, name
        assert np.array_equal(pixels, reused[name]), name


def test_a_template_is_as_before_after_each_write(tmp_path):
    from matplotlib.figure import Figure

    from segmentation.plots.templates import FigureTemplate, axes_title, side_legend

    fig = Figure()
    ax = fig.add_subplot()
    ax.set_xlim(0, 1)
    page = FigureTemplate(fig)
    before = (len(fig.get_children()), len(ax.get_children()))
    for i in range(2):
        artists = [
            *ax.plot([0, 2], [0, 1]),  # outside the limits: they must not move
            ax.text(0.5, 0.5, "x"),
            axes_title(ax, "t"),
            *side_legend(ax, [("#000000", "a", None), ("#D55E00", "mean", "--")]),
        ]
        assert_png(page.write(artists, tmp_path / f"{i}.png"))
        assert (len(fig.get_children()), len(ax.get_children())) == before
        assert ax.get_xlim() == (0, 1)


def test_segment_text_colours_read_on_white():
    # Row labels of the profile heatmap are text in the segment's colour.
    for segment in range(len(PALETTE)):
        text = np.array(to_rgb(segment_text_colour(segment)))
        assert contrast_with_white(text) >= 4.5, segment
        if contrast_with_white(np.array(to_rgb(PALETTE[segment]))) >= 4.5:
            assert segment_text_colour(segment) == PALETTE[segment].lower()  # kept as it is
    assert contrast_with_white(np.array(to_rgb(PALETTE[6]))) < 2  # the yellow needed it


def test_profile_row_labels_and_title_are_not_cut(tmp_path):
    """Long persona names fit at the left of the heatmap whatever the number of features (with
    2 features they ran off the figure's edge), and the title fits at the right (it was
    centred over the cells, and ran off the right edge)."""
    from PIL import Image

    from segmentation.plots.trial import profile_heatmap

    for n_features in (2, 6):
        X, labels = make_blobs(300, n_features=n_features, centers=5, random_state=0)
        names = [f"feature {i}" for i in range(n_features)]
        profile = segment_profile(X, labels, names, centers=np.zeros((5, n_features)))
        personas = {s: "Very high income, very low spending, young families" for s in range(5)}
        title = "gmm, 10 segments, silhouette 0.555"
        path = profile_heatmap(tmp_path / f"{n_features}.png", profile, names, title, personas)
        pixels = np.asarray(Image.open(path).convert("L"))
        assert (pixels[:, :3] == 255).all(), f"{n_features} features: a label reaches the edge"
        assert (pixels[:, -3:] == 255).all(), f"{n_features} features: the title reaches the edge"
