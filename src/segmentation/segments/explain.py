"""What sets each segment apart, in the data's own units.

:func:`distinguishing_features` ranks each segment's features by how far the segment's mean
is from the population's, in population standard deviations. :func:`surrogate_rules` fits a
shallow decision tree that predicts the segment from the features, and reads each segment's
rule off the tree, with its precision, its coverage and the tree's fidelity to the segments.
:func:`explanations_markdown` writes both as a markdown section per segment.

Only numeric (and boolean) columns of the frame are used; noise (segment ``-1``) is part of
the population but gets no explanation of its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeClassifier

from segmentation.errors import InputError


def distinguishing_features(
    frame: pd.DataFrame, labels: np.ndarray, top: int = 3
) -> dict[int, list[dict]]:
    """The features whose segment mean differs most from the population mean, per segment.

    Parameters
    ----------
    frame : DataFrame of shape (n_samples, n_columns)
        The customers in original units; numeric and boolean columns are used.
    labels : ndarray of shape (n_samples,)
        Segment of each row, ``-1`` for noise.
    top : int, default=3
        Features kept per segment.

    Returns
    -------
    dict of int to list of dict
        Per segment, up to ``top`` features sorted by ``|z|`` (largest first), each
        ``{"feature", "segment_mean", "population_mean", "z", "lift"}``: ``z`` the difference
        of the means in population standard deviations (0 for a constant feature), ``lift``
        the segment mean over the population mean (``None`` when that is 0).
    """
    values, labels = _numeric(frame, labels)
    population_mean = values.mean()
    population_std = values.std(ddof=0)
    result: dict[int, list[dict]] = {}
    for segment in _segments(labels):
        segment_mean = values[labels == segment].mean()
        rows = []
        for feature, mean, pop, std in zip(
            values.columns, segment_mean, population_mean, population_std, strict=True
        ):
            if np.isnan(mean) or np.isnan(pop):
                continue  # a column with no values in the segment says nothing about it
            rows.append(
                {
                    "feature": str(feature),
                    "segment_mean": float(mean),
                    "population_mean": float(pop),
                    "z": float((mean - pop) / std) if std > 0 else 0.0,
                    "lift": float(mean / pop) if pop != 0 else None,
                }
            )
        rows.sort(key=lambda row: -abs(row["z"]))
        result[segment] = rows[: int(top)]
    return result


def surrogate_rules(
    frame: pd.DataFrame, labels: np.ndarray, max_depth: int = 3, seed: int = 0
) -> dict[str, Any]:
    """A short rule per segment, read off a shallow decision tree predicting the segment.

    The tree's subtrees whose leaves all predict one segment are taken as one leaf. A
    segment's rule is the path to the leaf predicting it that holds most of its rows; the
    bounds of a feature along the path are merged into one condition, and each threshold is
    written with the fewest significant digits (at most 4) that split the data's values as
    the tree's threshold does. Precision and coverage are those of the rule as written.

    Parameters
    ----------
    frame : DataFrame of shape (n_samples, n_columns)
        The customers in original units; numeric and boolean columns are used, without
        missing values.
    labels : ndarray of shape (n_samples,)
        Segment of each row, ``-1`` for noise (a class of the tree, so rules avoid it).
    max_depth : int, default=3
        Depth of the tree: longer rules fit better and read worse.
    seed : int, default=0
        Seed of the tree (ties between equally good splits).

    Returns
    -------
    dict
        ``{"fidelity", "max_depth", "segments"}``: ``fidelity`` the share of rows whose segment
        the tree predicts; ``segments`` maps each segment to ``{"rule", "conditions",
        "precision", "coverage", "support", "predicted", "other_rules"}``: the rule's text
        (``"all rows"`` without conditions), its conditions ``{"feature", "lower", "upper"}``
        (``lower < feature <= upper``, ``None`` for no bound), the share of the rows it
        selects that are in the segment, the share of the segment's rows it selects, how many
        rows it selects, whether the tree predicts the segment at all (when not, the rule is
        the leaf with most of its rows, and its precision shows how poorly it isolates the
        segment), and the rules of the other leaves predicting it, by rows of the segment.
    """
    values, labels = _numeric(frame, labels)
    if values.isna().to_numpy().any():
        missing = [str(c) for c in values.columns if values[c].isna().any()]
        raise InputError(f"surrogate rules need values in every row; missing in {missing}")
    X = values.to_numpy()
    tree = DecisionTreeClassifier(max_depth=max_depth, random_state=seed).fit(X, labels)
    fidelity = float(np.mean(tree.predict(X) == labels))
    names = [str(c) for c in values.columns]
    sorted_values = [np.unique(X[:, j]) for j in range(X.shape[1])]
    leaves = []
    for predicted, path in _collapsed_leaves(tree):
        conditions = _merge(path, sorted_values)
        leaves.append((predicted, conditions, _select(X, conditions)))
    segments: dict[int, dict[str, Any]] = {}
    for segment in _segments(labels):
        own = labels == segment
        # The leaves predicting the segment first, then the one with most of its rows.
        ranked = sorted(
            leaves, key=lambda leaf: (leaf[0] == segment, int(np.sum(leaf[2] & own))), reverse=True
        )
        predicted, conditions, selected = ranked[0]
        predicts = predicted == segment
        support = int(selected.sum())
        segments[segment] = {
            "rule": _rule_text(conditions, names),
            "conditions": [
                {"feature": names[j], "lower": lower, "upper": upper}
                for j, lower, upper in conditions
            ],
            "precision": float(np.mean(own[selected])) if support else 0.0,
            "coverage": float(np.mean(selected[own])),
            "support": support,
            "predicted": bool(predicts),
            "other_rules": [_rule_text(other, names) for p, other, _ in ranked[1:] if p == segment],
        }
    return {"fidelity": fidelity, "max_depth": max_depth, "segments": segments}


def explanations_markdown(
    features: dict, rules: dict, personas: dict[int, str] | None = None
) -> str:
    """A markdown section per segment: its name, its rule and its distinguishing features.

    Parameters
    ----------
    features : dict
        From :func:`distinguishing_features`.
    rules : dict
        From :func:`surrogate_rules`.
    personas : dict of int to str, optional
        A name per segment, shown in its heading.

    Returns
    -------
    str
        Markdown text.
    """
    personas = personas or {}
    rule_of = rules.get("segments", {})
    lines = []
    if "fidelity" in rules:
        lines += [
            f"A decision tree of depth {rules.get('max_depth', '?')} on these features "
            f"predicts {rules['fidelity']:.1%} of the customers' segments.",
            "",
        ]
    for segment in sorted(set(features) | set(rule_of)):
        name = personas.get(segment)
        lines += [f"## Segment {segment}" + (f": {name}" if name else ""), ""]
        rule = rule_of.get(segment)
        if rule is None:
            lines += ["No rule.", ""]
        else:
            lead = "Rule" if rule.get("predicted", True) else "Closest rule (no leaf predicts it)"
            lines += [
                f"{lead}: {rule['rule']} (precision {rule['precision']:.1%}, "
                f"coverage {rule['coverage']:.1%})",
                "",
            ]
            if rule.get("other_rules"):
                lines += ["Also predicted where: " + "; or ".join(rule["other_rules"]), ""]
        rows = features.get(segment) or []
        if rows:
            lines += [
                "| Feature | Segment mean | Population mean | z | Lift |",
                "| --- | ---: | ---: | ---: | ---: |",
            ]
            for row in rows:
                lift = "n/a" if row["lift"] is None else f"{row['lift']:.2f}"
                feature = str(row["feature"]).replace("|", "\\|")
                lines.append(
                    f"| {feature} | {_number(row['segment_mean'])} | "
                    f"{_number(row['population_mean'])} | {row['z']:+.2f} | {lift} |"
                )
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _numeric(frame: pd.DataFrame, labels: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """The numeric and boolean columns as floats, and the labels as a 1-D integer array."""
    labels = np.asarray(labels)
    if labels.shape != (len(frame),):
        raise InputError(f"{labels.size} segment labels for {len(frame)} rows")
    columns = frame.select_dtypes(include=["number", "bool"]).columns
    if not len(columns):
        raise InputError(f"no numeric columns to explain segments with: {list(frame.columns)}")
    values = pd.DataFrame(
        {c: frame[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in columns},
        index=frame.index,
    )
    return values, labels.astype(np.int64)


def _segments(labels: np.ndarray) -> list[int]:
    return [int(s) for s in np.unique(labels) if s >= 0]


def _collapsed_leaves(tree: DecisionTreeClassifier) -> list[tuple[int, list]]:
    """(predicted segment, path) of each leaf once subtrees predicting one segment are one
    leaf; a path is a list of (feature, is_upper_bound, threshold), root first."""
    t = tree.tree_
    left, right = t.children_left, t.children_right
    # value holds class fractions or counts, by version: its argmax is the prediction either way.
    predicted = tree.classes_[np.argmax(t.value[:, 0, :], axis=1)]
    single: dict[int, int | None] = {}

    def one_segment(node: int) -> int | None:
        if left[node] == -1:
            single[node] = int(predicted[node])
        else:
            a, b = one_segment(left[node]), one_segment(right[node])
            single[node] = a if a is not None and a == b else None
        return single[node]

    one_segment(0)
    leaves: list[tuple[int, list]] = []

    def walk(node: int, path: list) -> None:
        if single[node] is not None:
            leaves.append((single[node], path))
            return
        feature, threshold = int(t.feature[node]), float(t.threshold[node])
        walk(left[node], [*path, (feature, True, threshold)])
        walk(right[node], [*path, (feature, False, threshold)])

    walk(0, [])
    return leaves


def _merge(path: list, sorted_values: list[np.ndarray]) -> list[tuple[int, Any, Any]]:
    """One (feature, lower, upper) condition per feature on the path, in order of first use,
    with the tightest bounds, rounded."""
    bounds: dict[int, list] = {}
    for feature, upper, threshold in path:
        lower_upper = bounds.setdefault(feature, [None, None])
        if upper:
            current = lower_upper[1]
            lower_upper[1] = threshold if current is None else min(current, threshold)
        else:
            current = lower_upper[0]
            lower_upper[0] = threshold if current is None else max(current, threshold)
    return [
        (
            feature,
            None if lower is None else _round(lower, sorted_values[feature]),
            None if upper is None else _round(upper, sorted_values[feature]),
        )
        for feature, (lower, upper) in bounds.items()
    ]


def _round(threshold: float, values: np.ndarray) -> float:
    """The threshold with the fewest significant digits (1-4) that puts the same values on
    each side (``<=`` it or above); 4 digits when none does."""
    below = values[values <= threshold]
    above = values[values > threshold]
    for digits in range(1, 5):
        rounded = float(f"{threshold:.{digits}g}")
        if (not below.size or rounded >= below[-1]) and (not above.size or rounded < above[0]):
            return rounded
    return rounded


def _select(X: np.ndarray, conditions: list[tuple[int, Any, Any]]) -> np.ndarray:
    selected = np.ones(len(X), dtype=bool)
    for feature, lower, upper in conditions:
        if lower is not None:
            selected &= X[:, feature] > lower
        if upper is not None:
            selected &= X[:, feature] <= upper
    return selected


def _rule_text(conditions: list[tuple[int, Any, Any]], names: list[str]) -> str:
    parts = []
    for feature, lower, upper in conditions:
        name = names[feature]
        if lower is not None and upper is not None:
            parts.append(f"{_number(lower)} < {name} <= {_number(upper)}")
        elif lower is not None:
            parts.append(f"{name} > {_number(lower)}")
        else:
            parts.append(f"{name} <= {_number(upper)}")
    return " and ".join(parts) if parts else "all rows"


def _number(value: float) -> str:
    """At most 4 significant digits, without an exponent (12340, 0.0001234, 70.5)."""
    return np.format_float_positional(float(f"{float(value):.4g}"), trim="-")
