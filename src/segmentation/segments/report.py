"""The sweep report: one self-contained HTML page (plots embedded as base64 PNG, no external
URL) for a sweep's best model. Every text that comes from data is escaped."""

from __future__ import annotations

import base64
import json
from html import escape
from pathlib import Path
from typing import Any

from segmentation.plots import segment_colour

STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:4px 8px;
font-size:0.9em;vertical-align:top;text-align:left}th{background:#f2f2f2}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}.swatch{display:inline-block;width:0.9em;
height:0.9em;margin-right:0.4em;vertical-align:middle}.muted{color:#666}
"""


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
        f"<figcaption class=muted>{_e(caption)}</figcaption></figure>"
    )


def _table(header: list[str], rows: list[list[Any]], raw_cols: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{cell if i in raw_cols else _e(cell)}</td>" for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def render_report(parent: Any, best: Any, parent_dir: Path, best_dir: Path) -> str:
    """HTML of a sweep from its runs (MLflow entities) and their downloaded artifacts."""
    p, m, t = parent.data.params, parent.data.metrics, parent.data.tags
    title = f"Customer segments: {p.get('dataset', '?')} / {p.get('feature_set', '?')}"
    out = [
        f"<!DOCTYPE html><html><head><meta charset=utf-8><title>{_e(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{_e(title)}</h1>"
    ]
    # Data and cleaning.
    cleaning = _json(parent_dir / "data" / "cleaning_report.json") or {}
    out.append("<h2>Data</h2>")
    out.append(
        _table(
            ["", ""],
            [
                ["source", p.get("data_source", "?")],
                ["file", p.get("data_path", "?")],
                ["rows read", int(m.get("rows_raw", 0))],
                ["rows used", int(m.get("rows_clean", 0))],
                ["features", p.get("features", "?")],
                ["scaling", p.get("scaler", "?")],
            ],
        )
    )
    steps = cleaning.get("cleaning") or []
    if steps:
        out.append("<h3>Cleaning</h3>")
        out.append(
            _table(
                ["rule", "rows in", "rows out", "why"],
                [[s.get("rule"), s.get("rows_in"), s.get("rows_out"), s.get("why")] for s in steps],
            )
        )
    # How k was chosen.
    out.append("<h2>How the number of segments was chosen</h2>")
    curves = _json(parent_dir / "choosing_k" / "k_curves.json")
    best_k = int(best.data.metrics.get("n_clusters", 0)) if best else 0
    text = (
        f"An Optuna study of {_e(p.get('n_trials', '?'))} trials over "
        f"{_e(p.get('algorithms', '?'))} maximised the silhouette in the scaled feature space "
        f"under constraints (segments between {_e(p.get('constraints.k_min', '?'))} and "
        f"{_e(p.get('constraints.k_max', '?'))}, noise and smallest-segment limits). "
        f"The best trial ({_e(t.get('best_algorithm', '?'))}) has {best_k} segments and "
        f"silhouette {m.get('best_silhouette', float('nan')):.3f}."
    )
    if curves:
        text += (
            f" Quick fits for reference: the KMeans elbow is at k={curves['elbow_k']}; "
            "see the elbow, silhouette and BIC curves below."
        )
    out.append(f"<p>{text}</p>")
    for name, caption in [
        ("elbow", "Elbow of KMeans inertia"),
        ("silhouette_vs_k_fits", "Silhouette against k"),
        ("gmm_bic", "GMM BIC against k"),
    ]:
        if (parent_dir / "choosing_k" / f"{name}.png").is_file():
            out.append(_img(parent_dir / "choosing_k" / f"{name}.png", caption))
    # Segments and personas.
    personas = _json(parent_dir / "segments" / "personas.json") or []
    out.append("<h2>Segments and personas</h2>")
    rows = []
    for row in personas:
        swatch = (
            f'<span class=swatch style="background:{segment_colour(int(row["segment"]))}"></span>'
        )
        recs = "<ul>" + "".join(f"<li>{_e(r)}</li>" for r in row["recommendations"]) + "</ul>"
        rows.append(
            [
                swatch + _e(row["segment"]),
                _e(row["name"]),
                row["size"],
                f"{row['share']:.1%}",
                _e(row["description"]),
                recs,
            ]
        )
    out.append(
        _table(
            ["segment", "persona", "customers", "share", "profile", "recommendations"],
            rows,
            raw_cols={0, 1, 5},
        )
    )
    profile = _json(parent_dir / "segments" / "segment_profile.json")
    if profile:
        features = profile["features"]
        header = ["segment", "customers"] + [
            f"{f} ({s})" for f in features for s in ("mean", "median", "centre")
        ]
        body = []
        for seg in profile["segments"]:
            cells: list[Any] = [seg["segment"], seg["size"]]
            for f in features:
                st = seg["features"][f]
                cells += [f"{st[s]:.4g}" if s in st else "" for s in ("mean", "median", "center")]
            body.append(cells)
        out.append("<h3>Segment profiles (original units)</h3>" + _table(header, body))
    for name, caption in [
        ("segment_profile", "Segment profiles (z-scores, means in cells)"),
        ("cluster_scatter", "Segments"),
        ("cluster_scatter_3d", "Segments in 3D"),
        ("segment_sizes", "Segment sizes"),
        ("silhouette", "Silhouette"),
    ]:
        if (best_dir / "plots" / f"{name}.png").is_file():
            out.append(_img(best_dir / "plots" / f"{name}.png", caption))
    # Stability and explanations.
    ari = m.get("best_stability_ari", m.get("stability_ari"))
    out.append("<h2>Can the segments be trusted?</h2>")
    if ari is not None:
        verdict = "stable" if ari >= 0.8 else "moderately stable" if ari >= 0.6 else "unstable"
        out.append(
            f"<p>Stability: mean adjusted Rand index of bootstrap refits against the full "
            f"fit <b>stability_ari = {ari:.3f}</b> ({verdict}; 1 means identical "
            "segments, 0 chance agreement).</p>"
        )
    per_segment = _json(parent_dir / "segments" / "stability.json") or {}
    names = {int(r["segment"]): r["name"] for r in personas}
    if per_segment:
        out.append(
            "<p>Per segment: the mean Jaccard similarity of the segment with its best match in "
            "each bootstrap refit (as R's clusterboot; above 0.75 a segment reproduces, below "
            "0.5 it dissolves).</p>"
        )
        out.append(
            _table(
                ["segment", "persona", "Jaccard stability"],
                [
                    [s, _e(names.get(int(s), "")), f"{v:.3f}"]
                    for s, v in sorted(per_segment.items(), key=lambda kv: int(kv[0]))
                ],
                raw_cols={1},
            )
        )
    explained = _json(parent_dir / "explanations" / "explanations.json")
    if explained:
        rules = explained["rules"]
        out.append("<h2>Why a customer is in a segment</h2>")
        out.append(
            f"<p>A decision tree of depth {_e(rules.get('max_depth'))} on the features "
            f"reproduces {rules['fidelity']:.1%} of the segment assignments (its fidelity); "
            "its rule for each segment, and the features that set each segment apart "
            "(z: the segment mean's distance from the population mean in standard deviations; "
            "lift: their ratio).</p>"
        )
        body = []
        for seg, rule in sorted(rules["segments"].items(), key=lambda kv: int(kv[0])):
            top = explained["features"].get(str(seg)) or explained["features"].get(seg) or []
            traits = "; ".join(
                f"{f['feature']} {f['segment_mean']:.4g} vs {f['population_mean']:.4g} "
                f"(z {f['z']:+.2f})"
                for f in top
            )
            body.append(
                [
                    seg,
                    _e(names.get(int(seg), "")),
                    _e(rule["rule"]),
                    f"{rule['precision']:.0%}",
                    f"{rule['coverage']:.0%}",
                    _e(traits),
                ]
            )
        out.append(
            _table(
                ["segment", "persona", "rule", "precision", "coverage", "distinguishing features"],
                body,
                raw_cols={1, 2, 5},
            )
        )
    # EDA and the study.
    out.append("<h2>The data</h2>")
    for path in sorted((parent_dir / "eda").glob("*.png")):
        out.append(_img(path, path.stem.replace("_", " ")))
    out.append("<h2>The study</h2>")
    for path in sorted((parent_dir / "study").glob("*.png")):
        out.append(_img(path, path.stem.replace("_", " ")))
    skipped = _json(parent_dir / "study" / "skipped.json") or {}
    for name, reason in skipped.items():
        out.append(f"<p class=muted>{_e(name)} not drawn: {_e(reason)}</p>")
    # Provenance.
    out.append("<h2>Which run and model</h2>")
    out.append(
        _table(
            ["", ""],
            [
                ["sweep run", parent.info.run_id],
                ["best trial", t.get("best_trial", "?")],
                ["best trial run", t.get("best_run_id", "?")],
                ["model URI", t.get("best_model_uri", "?")],
                ["registered version", t.get("registered_version", "not registered")],
            ],
        )
    )
    out.append("</body></html>")
    return "\n".join(out)
