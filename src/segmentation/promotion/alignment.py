"""Champion against challenger: the same segment ids for the same customers, and who moved.

A refitted model numbers its segments arbitrarily: its segment 0 may be the champion's
segment 3. :func:`align_segments` matches the challenger's segments to the champion's on the
customers both have labelled, so that a segment that survived keeps its id;
:func:`migration_report` then tells, on the aligned labels, how many customers changed
segment and from which persona to which.

Noise (id ``-1``, e.g. DBSCAN's outliers) is never matched: it always stays ``-1``.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from segmentation.errors import InputError
from segmentation.plots.drawing import write_png
from segmentation.reports import render

NOISE = -1

TRANSITION_COLUMNS = [
    "from_segment",
    "from_persona",
    "to_segment",
    "to_persona",
    "count",
    "share_of_from",
]


def _labels(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D int64 array of segment ids (``-1`` for noise), else InputError."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise InputError(f"{name} must be one segment id a customer, got shape {array.shape}")
    if array.dtype.kind in "iu":
        out = array.astype(np.int64)
    elif array.dtype.kind in "fb" or array.size == 0:
        # Float labels come from frames with missing values: accepted when whole numbers.
        floats = array.astype(np.float64)
        if not np.all(np.isfinite(floats)) or np.any(floats != np.round(floats)):
            raise InputError(f"{name} must hold whole segment ids, not missing or fractions")
        out = floats.astype(np.int64)
    else:
        raise InputError(f"{name} must hold integer segment ids, got dtype {array.dtype}")
    if out.size and out.min() < NOISE:
        raise InputError(f"{name} has segment id {int(out.min())}: ids are >= 0, or -1 for noise")
    return out


def _pair(champion: Any, challenger: Any) -> tuple[np.ndarray, np.ndarray]:
    """Both label arrays checked: same customers, at least one."""
    old = _labels(champion, "champion labels")
    new = _labels(challenger, "challenger labels")
    if len(old) != len(new):
        raise InputError(
            f"champion and challenger label {len(old)} and {len(new)} customers: "
            "they must label the same customers"
        )
    if len(old) == 0:
        raise InputError("no customers to compare champion and challenger on")
    return old, new


def align_segments(
    champion: np.ndarray, challenger: np.ndarray, *, reserved: Iterable[int] = ()
) -> dict[int, int]:
    """Map each challenger segment id to an id aligned with the champion's.

    ``champion`` and ``challenger`` are the segment ids the two models give the SAME
    customers, in the same order. The contingency table (challenger segment x champion
    segment: customers in both) is matched one to one by the Hungarian algorithm
    (``scipy.optimize.linear_sum_assignment``), maximising the customers kept together.

    - A matched challenger segment takes its champion segment's id. A pair sharing no
      customer is not a match (the assignment pairs every row it can, even with zero overlap).
    - Unmatched challenger segments (more segments than the champion, or no overlap) get new
      ids ``max(champion ids, reserved, -1) + 1``, ``+ 2``, ... in a deterministic order:
      larger segments first (customers in the challenger), then smaller old id first.
    - Noise (``-1``) is never matched and always maps to ``-1``; customers that are noise on
      either side count for no overlap.

    ``reserved`` are champion ids a new segment must not take although no customer here has
    them (e.g. the keys of the champion's personas, when these customers are a sample).

    Returns the mapping ``{challenger id: aligned id}`` for every challenger id present, plus
    ``-1: -1``; apply it with :func:`relabel`.
    """
    old, new = _pair(champion, challenger)
    old_ids = np.unique(old[old != NOISE])
    new_ids, new_sizes = np.unique(new[new != NOISE], return_counts=True)

    mapping: dict[int, int] = {NOISE: NOISE}
    both = (old != NOISE) & (new != NOISE)
    if len(old_ids) and len(new_ids):
        table = pd.crosstab(new[both], old[both]).reindex(
            index=new_ids, columns=old_ids, fill_value=0
        )
        rows, cols = linear_sum_assignment(table.to_numpy(), maximize=True)
        for row, col in zip(rows, cols, strict=True):
            if table.iat[row, col] > 0:
                mapping[int(new_ids[row])] = int(old_ids[col])

    taken = [int(i) for i in old_ids] + [int(i) for i in reserved]
    next_id = max(taken, default=NOISE) + 1
    unmatched = [
        (int(size), int(seg))
        for seg, size in zip(new_ids, new_sizes, strict=True)
        if int(seg) not in mapping
    ]
    for _, seg in sorted(unmatched, key=lambda item: (-item[0], item[1])):
        mapping[seg] = next_id
        next_id += 1
    return mapping


def relabel(labels: np.ndarray, mapping: Mapping[int, int]) -> np.ndarray:
    """``labels`` with each id replaced by ``mapping[id]`` (an int64 array, same length)."""
    values = _labels(labels, "labels")
    ids, inverse = np.unique(values, return_inverse=True)
    missing = [int(i) for i in ids if int(i) not in mapping]
    if missing:
        raise InputError(f"segment ids {missing} are not in the mapping")
    targets = np.array([int(mapping[int(i)]) for i in ids], dtype=np.int64)
    return targets[inverse.reshape(-1)] if len(values) else values


def _persona(personas: Mapping[Any, str], segment: int) -> str:
    """The persona name of ``segment``; keys may be ints or, read back from JSON, strings."""
    for key in (segment, str(segment)):
        if key in personas:
            return str(personas[key])
    return "noise" if segment == NOISE else f"segment {segment}"


def _known(personas: Mapping[Any, str], segment: int) -> bool:
    return segment in personas or str(segment) in personas


def migration_report(
    champion_labels: np.ndarray,
    challenger_labels: np.ndarray,
    champion_personas: Mapping[int, str],
    challenger_personas: Mapping[int, str],
) -> dict[str, Any]:
    """Who changed segment between the champion and the (already aligned) challenger.

    ``challenger_labels`` must be aligned (:func:`relabel` with :func:`align_segments`'s
    mapping), and ``challenger_personas`` keyed by the aligned ids, e.g.
    ``{mapping[k]: name for k, name in personas.items()}``. Persona keys may be ints or strings.

    Returns a JSON-serialisable dict:

    - ``n_customers``; ``adjusted_rand_index`` of the two partitions (noise as one more
      label); ``reassigned_share``: share of customers whose segment id changed.
    - ``transitions``: one entry per (from, to) pair with customers, staying included, ordered
      by from segment then count (largest first): ``from_segment``, ``from_persona``,
      ``to_segment``, ``to_persona``, ``count``, ``share_of_from`` (of the from segment).
    - ``sizes``: per segment id (either side): ``persona_before`` / ``persona_after`` (None
      where the segment does not exist on that side), ``count_before`` / ``count_after``,
      ``share_before`` / ``share_after``.
    """
    old, new = _pair(champion_labels, challenger_labels)
    n = len(old)
    pairs = pd.DataFrame({"from_segment": old, "to_segment": new})
    counts = pairs.value_counts().rename("count").reset_index()
    from_sizes = pd.Series(old).value_counts()
    counts["share_of_from"] = counts["count"] / counts["from_segment"].map(from_sizes)
    counts = counts.sort_values(
        ["from_segment", "count", "to_segment"], ascending=[True, False, True]
    )
    transitions = [
        {
            "from_segment": int(row["from_segment"]),
            "from_persona": _persona(champion_personas, int(row["from_segment"])),
            "to_segment": int(row["to_segment"]),
            "to_persona": _persona(challenger_personas, int(row["to_segment"])),
            "count": int(row["count"]),
            "share_of_from": float(row["share_of_from"]),
        }
        for row in counts.to_dict("records")
    ]

    to_sizes = pd.Series(new).value_counts()
    sizes = []
    for seg in sorted(set(from_sizes.index) | set(to_sizes.index)):
        seg = int(seg)
        before, after = int(from_sizes.get(seg, 0)), int(to_sizes.get(seg, 0))
        sizes.append(
            {
                "segment": seg,
                "persona_before": _persona(champion_personas, seg)
                if before or _known(champion_personas, seg)
                else None,
                "persona_after": _persona(challenger_personas, seg)
                if after or _known(challenger_personas, seg)
                else None,
                "count_before": before,
                "count_after": after,
                "share_before": before / n,
                "share_after": after / n,
            }
        )
    return {
        "n_customers": n,
        "adjusted_rand_index": float(adjusted_rand_score(old, new)),
        "reassigned_share": float(np.mean(old != new)),
        "transitions": transitions,
        "sizes": sizes,
    }


def transition_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """The report's transitions, one row a (from, to) pair, for a CSV."""
    return pd.DataFrame(list(report["transitions"]), columns=TRANSITION_COLUMNS)


def _name(segment: int | None, persona: str | None) -> str:
    return "-" if persona is None else f"{segment} {persona}"


def _text_table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    """Columns padded to their widest cell; ``right``-aligned columns for numbers."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def _headline(report: Mapping[str, Any]) -> str:
    return (
        f"{report['n_customers']} customers, adjusted Rand index "
        f"{report['adjusted_rand_index']:.3f}, reassigned {report['reassigned_share']:.1%}"
    )


def migration_table(report: Mapping[str, Any]) -> str:
    """A plain-text summary for the terminal: headline, transitions, sizes before/after."""
    transitions = [
        [
            _name(t["from_segment"], t["from_persona"]),
            "->",
            _name(t["to_segment"], t["to_persona"]),
            str(t["count"]),
            f"{t['share_of_from']:.1%}",
        ]
        for t in report["transitions"]
    ]
    sizes = [
        [
            str(s["segment"]),
            s["persona_before"] or "-",
            s["persona_after"] or "-",
            str(s["count_before"]),
            str(s["count_after"]),
            f"{s['share_before']:.1%}",
            f"{s['share_after']:.1%}",
        ]
        for s in report["sizes"]
    ]
    lines = [f"Segment migration: {_headline(report)}", "", "Transitions (champion -> challenger)"]
    lines += _text_table(["from", "", "to", "count", "of from"], transitions, {3, 4})
    lines += ["", "Sizes"]
    lines += _text_table(
        ["segment", "persona before", "persona after", "before", "after", "% before", "% after"],
        sizes,
        {0, 3, 4, 5, 6},
    )
    return "\n".join(lines)


def _md(text: Any) -> str:
    """A table cell: pipes escaped and lines joined, so a persona cannot break the table."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def migration_markdown(report: Mapping[str, Any]) -> str:
    """The report as Markdown (e.g. a registered model version's description)."""
    lines = [
        "### Segment migration from the champion",
        "",
        f"- Customers compared: {report['n_customers']}",
        f"- Adjusted Rand index: {report['adjusted_rand_index']:.3f}",
        f"- Customers reassigned: {report['reassigned_share']:.1%}",
        "",
        "| From | To | Customers | Share of from |",
        "|---|---|---:|---:|",
    ]
    lines += [
        f"| {_md(_name(t['from_segment'], t['from_persona']))} "
        f"| {_md(_name(t['to_segment'], t['to_persona']))} "
        f"| {t['count']} | {t['share_of_from']:.1%} |"
        for t in report["transitions"]
    ]
    lines += [
        "",
        "| Segment | Persona before | Persona after | Before | After |",
        "|---:|---|---|---:|---:|",
    ]
    lines += [
        f"| {s['segment']} | {_md(s['persona_before'] or '-')} | {_md(s['persona_after'] or '-')} "
        f"| {s['count_before']} ({s['share_before']:.1%}) "
        f"| {s['count_after']} ({s['share_after']:.1%}) |"
        for s in report["sizes"]
    ]
    return "\n".join(lines) + "\n"


def migration_html(report: Mapping[str, Any], heatmap: Path | None = None) -> str:
    """The report as a self-contained HTML page (``templates/migration.html``), with the
    heatmap PNG at ``heatmap`` embedded when given."""
    data = base64.b64encode(Path(heatmap).read_bytes()).decode("ascii") if heatmap else None
    return render("migration.html", title="Segment migration", r=report, heatmap=data)


def _tick(segment: int, persona: str, limit: int = 28) -> str:
    """An axis label; ``$`` escaped since matplotlib would read ``$...$`` as math."""
    text = f"{segment} {persona}"
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("$", r"\$")


def migration_heatmap(report: Mapping[str, Any], path: Path) -> Path:
    """Write the transition matrix as a PNG heatmap at ``path`` (folders created); return it.

    Rows are the champion's segments, columns the challenger's; each cell shows the customers
    moving from row to column and is coloured by their share of the row.
    """
    frame = transition_frame(report)
    counts = frame.pivot_table(
        index="from_segment", columns="to_segment", values="count", aggfunc="sum", fill_value=0
    )
    rows = dict(zip(frame["from_segment"], frame["from_persona"], strict=True))
    cols = dict(zip(frame["to_segment"], frame["to_persona"], strict=True))
    matrix = counts.to_numpy(dtype=float)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros_like(matrix), where=totals > 0)

    n_rows, n_cols = matrix.shape
    fig = Figure(
        figsize=(min(3.5 + 1.0 * n_cols, 22.0), min(1.8 + 0.45 * n_rows, 18.0)),
        layout="constrained",
    )
    ax = fig.subplots()
    image = ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for i in range(n_rows):
        for j in range(n_cols):
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    f"{int(matrix[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    # White on the dark cells, where black would not read.
                    color="white" if shares[i, j] > 0.6 else "black",
                )
    ax.set_xticks(range(n_cols), [_tick(int(s), cols[s]) for s in counts.columns])
    ax.set_yticks(range(n_rows), [_tick(int(s), rows[s]) for s in counts.index])
    ax.tick_params(axis="x", labelrotation=30)
    for label in ax.get_xticklabels():
        label.set_horizontalalignment("right")
    ax.set_xlabel("challenger segment")
    ax.set_ylabel("champion segment")
    ax.set_title(
        f"Segment migration: ARI {report['adjusted_rand_index']:.2f}, "
        f"{report['reassigned_share']:.1%} reassigned",
        fontsize=10,
    )
    fig.colorbar(image, ax=ax, label="share of champion segment")
    return write_png(fig, Path(path))
