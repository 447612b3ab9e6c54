"""The sweep report: one self-contained HTML page (plots embedded as base64 PNG, no external
URL) for a sweep's best model, rendered from ``segmentation/reports/templates/sweep.html``.
Every text that comes from data is escaped by the template engine."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from segmentation.plots import segment_colour
from segmentation.reports import number, render


def _img(path: Path, caption: str) -> dict[str, str]:
    return {"caption": caption, "data": base64.b64encode(path.read_bytes()).decode("ascii")}


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _images(folder: Path, names: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [_img(folder / f"{n}.png", c) for n, c in names if (folder / f"{n}.png").is_file()]


def _value(segments_dir: Path) -> dict[str, Any] | None:
    payload = _json(segments_dir / "value.json")
    if not payload:
        return None
    rows = payload["segments"]
    has_spend = any(r.get("total_spend") is not None for r in rows)
    has_response = any(r.get("response_rate") is not None for r in rows)
    spend_label = payload.get("spend_label") or "spend"
    priority = (
        f"Priority: rank of {payload.get('priority', 'customers x mean spend')} "
        "(1 = first; noise is not ranked)."
    )
    if payload.get("note"):
        # The dataset says itself what stands for spend and response.
        note = f"{payload['note']} {priority}"
    else:
        note = f"Spend: {spend_label} ({payload.get('spend')}). " if has_spend else ""
        note += (
            f"Response: the share who responded to the last campaign "
            f"({payload.get('response')}), with its 95% Wilson interval. "
            if has_response
            else "No campaign-response column in this data: the response columns are left out. "
        )
        note += priority
    return {
        "rows": rows,
        "has_spend": has_spend,
        "has_response": has_response,
        "spend_label": spend_label,
        "note": note,
    }


def _attributes(segments_dir: Path, names: dict[int, str]) -> dict[str, Any] | None:
    payload = _json(segments_dir / "attributes.json")
    if not payload:
        return None
    segments = [int(s) for s in payload["segments"]]

    def cell(row: dict[str, Any], value: float) -> str:
        return number(value, percent=bool(row.get("percent")))

    groups = []
    for group in payload["groups"]:
        rows = []
        for row in group["attributes"]:
            label = str(row.get("label") or row["attribute"])
            unit = str(row.get("unit") or "")
            joint = " " if unit.startswith("(") else ", "
            label = label[:1].upper() + label[1:] + (f"{joint}{unit}" if unit else "")
            rows.append(
                {
                    "label": label,
                    "all": cell(row, row["all"]),
                    "cells": [cell(row, row["segments"][str(s)]) for s in segments],
                }
            )
        groups.append({"group": group["group"], "attributes": rows})
    return {
        "segments": [{"segment": s, "name": names.get(s, "")} for s in segments],
        "groups": groups,
    }


def _profile(segments_dir: Path) -> dict[str, Any] | None:
    profile = _json(segments_dir / "segment_profile.json")
    if not profile:
        return None
    features = profile["features"]
    header = [f"{f} ({s})" for f in features for s in ("mean", "median", "centre")]
    rows = []
    for seg in profile["segments"]:
        cells: list[Any] = [seg["segment"], f"{seg['size']:,}"]
        for f in features:
            st = seg["features"][f]
            cells += [number(st[s]) if s in st else "" for s in ("mean", "median", "center")]
        rows.append(cells)
    return {"header": header, "rows": rows}


def _explained(parent_dir: Path, names: dict[int, str]) -> dict[str, Any] | None:
    explained = _json(parent_dir / "explanations" / "explanations.json")
    if not explained:
        return None
    rules = explained["rules"]
    rows = []
    for seg, rule in sorted(rules["segments"].items(), key=lambda kv: int(kv[0])):
        top = explained["features"].get(str(seg)) or explained["features"].get(seg) or []
        traits = "; ".join(
            f"{f['feature']} {number(f['segment_mean'])} vs {number(f['population_mean'])} "
            f"(z {f['z']:+.2f})"
            for f in top
        )
        rows.append(
            {
                "segment": seg,
                "name": names.get(int(seg), ""),
                "rule": rule["rule"],
                "precision": rule["precision"],
                "coverage": rule["coverage"],
                "traits": traits,
            }
        )
    return {"max_depth": rules.get("max_depth"), "fidelity": rules["fidelity"], "rows": rows}


def render_report(parent: Any, best: Any, parent_dir: Path, best_dir: Path) -> str:
    """HTML of a sweep from its runs (MLflow entities) and their downloaded artifacts."""
    p, m, t = parent.data.params, parent.data.metrics, parent.data.tags
    segments_dir = parent_dir / "segments"
    personas = _json(segments_dir / "personas.json") or []
    names = {int(r["segment"]): r["name"] for r in personas}
    curves = _json(parent_dir / "choosing_k" / "k_curves.json")
    ari = m.get("best_stability_ari", m.get("stability_ari"))
    per_segment = _json(segments_dir / "stability.json") or {}
    context = {
        "title": f"Customer segments: {p.get('dataset', '?')} / {p.get('feature_set', '?')}",
        "data_rows": [
            ("source", p.get("data_source", "?")),
            ("file", p.get("data_path", "?")),
            ("rows read", f"{int(m.get('rows_raw', 0)):,}"),
            ("rows used", f"{int(m.get('rows_clean', 0)):,}"),
            ("features", ", ".join(str(p.get("features", "?")).split(","))),
            ("scaling", p.get("scaler", "?")),
        ],
        "cleaning": (_json(parent_dir / "data" / "cleaning_report.json") or {}).get("cleaning")
        or [],
        "study": {
            "n_trials": p.get("n_trials", "?"),
            "algorithms": p.get("algorithms", "?"),
            "k_min": p.get("constraints.k_min", "?"),
            "k_max": p.get("constraints.k_max", "?"),
            "best_algorithm": t.get("best_algorithm", "?"),
            "best_k": int(best.data.metrics.get("n_clusters", 0)) if best else 0,
            "silhouette": m.get("best_silhouette", float("nan")),
            "elbow_k": curves["elbow_k"] if curves else None,
        },
        "choosing_k": _images(
            parent_dir / "choosing_k",
            [
                ("elbow", "Elbow of KMeans inertia"),
                ("silhouette_vs_k_fits", "Silhouette against k"),
                ("gmm_bic", "GMM BIC against k"),
            ],
        ),
        "personas": [
            {
                **row,
                "colour": segment_colour(int(row["segment"])),
                "naming": row.get("naming", "traits"),
                "rule": row.get("rule", ""),
            }
            for row in personas
        ],
        "value": _value(segments_dir),
        "attributes": _attributes(segments_dir, names),
        "profile": _profile(segments_dir),
        "segment_plots": _images(
            best_dir / "plots",
            [
                ("segment_profile", "Segment profiles (z-scores, means in cells)"),
                ("cluster_scatter", "Segments"),
                ("cluster_scatter_3d", "Segments in 3D"),
                ("segment_sizes", "Segment sizes"),
                ("silhouette", "Silhouette"),
            ],
        ),
        "stability": {
            "ari": ari,
            "verdict": None
            if ari is None
            else "stable"
            if ari >= 0.8
            else "moderately stable"
            if ari >= 0.6
            else "unstable",
            "per_segment": [
                (s, names.get(int(s), ""), v)
                for s, v in sorted(per_segment.items(), key=lambda kv: int(kv[0]))
            ],
        },
        "explained": _explained(parent_dir, names),
        "eda": [
            _img(path, path.stem.replace("_", " "))
            for path in sorted((parent_dir / "eda").glob("*.png"))
        ],
        "study_plots": [
            _img(path, path.stem.replace("_", " "))
            for path in sorted((parent_dir / "study").glob("*.png"))
        ],
        "skipped": list((_json(parent_dir / "study" / "skipped.json") or {}).items()),
        "provenance": [
            ("sweep run", parent.info.run_id),
            ("best trial", t.get("best_trial", "?")),
            ("best trial run", t.get("best_run_id", "?")),
            ("model URI", t.get("best_model_uri", "?")),
            ("registered version", t.get("registered_version", "not registered")),
        ],
    }
    return render("sweep.html", **context)
