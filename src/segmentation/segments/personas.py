"""Personas (``conf/personas``): a name, the rule that named it, a one-line description and
recommendations per segment.

Names follow the marketing conventions where the feature set allows, else traits:

* ``rfm``: with recency and frequency (and monetary) columns, each segment's centre is scored
  1-5 against the customers' quintiles (recency reversed: recent is 5), and the first row of
  the configured RF(M) table whose ranges hold names it (Champions, Loyal, ... Lost).
* ``grid``: with two configured columns (Mall: income and spending), the cell of the segment's
  levels on the two names it (Target, Careful, Standard, Careless, Sensible).
* ``traits``: otherwise, a segment's strongest traits: on each feature its mean is "high",
  "low" or "average" by the z-score of that mean (``threshold`` standard deviations).

The recommendations are the convention row's, then those of every rule whose conditions hold.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from segmentation.config import PersonasConfig
from segmentation.reports import number
from segmentation.segments.profiles import profile_columns

# The persona of noise (segment -1): customers no segment claims.
NOISE_PERSONA = "Unassigned"

# A dataset without a personas file: the schema's defaults (generic names, no rules).
DEFAULTS: dict[str, Any] = {k: v for k, v in asdict(PersonasConfig()).items() if k != "name"}
PERSONA_COLUMNS = [
    "segment",
    "name",
    "naming",
    "rule",
    "description",
    "size",
    "share",
    "profile",
    "recommendations",
]


def persona_config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """The persona settings with defaults filled in (``None``: generic names, no rules)."""
    out = dict(DEFAULTS)
    if cfg:
        plain = (
            OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
            if isinstance(cfg, DictConfig)
            else cfg
        )
        out.update({k: v for k, v in plain.items() if v is not None})
    return out


def feature_info(cfg: Mapping[str, Any], column: str) -> dict[str, Any]:
    # Unset words (null in the schema) are derived below.
    info = {k: v for k, v in (cfg["features"].get(column) or {}).items() if v is not None}
    # An unconfigured column reads in lower case inside a name ("High income, low frequency").
    info.setdefault("label", column.replace("_", " ").lower())
    info.setdefault("unit", "")
    info.setdefault("high", f"High {info['label']}")
    info.setdefault("low", f"Low {info['label']}")
    info.setdefault("very_high", f"Very {info['high'][:1].lower()}{info['high'][1:]}")
    info.setdefault("very_low", f"Very {info['low'][:1].lower()}{info['low'][1:]}")
    return info


def levels(z: Mapping[str, float], threshold: float) -> dict[str, str]:
    """``high``, ``low`` or ``average`` per feature from the z-scores of a segment's means."""
    return {
        c: "high" if v >= threshold else "low" if v <= -threshold else "average"
        for c, v in z.items()
    }


def _name(traits: list[tuple[str, str]], cfg: Mapping[str, Any], order: list[str]) -> str:
    if not traits:
        return str(cfg["neutral_name"])
    traits = sorted(traits, key=lambda t: order.index(t[0]))
    words = [feature_info(cfg, c)[level] for c, level in traits]
    return _sentence(words)


def _sentence(words: Sequence[str]) -> str:
    """Words joined in sentence case: the first capitalised, the others lower-case first."""
    words = [words[0][:1].upper() + words[0][1:]] + [w[:1].lower() + w[1:] for w in words[1:]]
    return ", ".join(words)


def _traits(
    z: Mapping[str, float], cfg: Mapping[str, Any], n: int, strong: bool = False
) -> list[tuple[str, str]]:
    """The ``n`` strongest traits beyond the threshold (ties broken by feature order); with
    ``strong``, traits beyond ``cfg["strong"]`` read very high/very low."""
    lv = levels(z, float(cfg["threshold"]))
    order = _order(list(z), cfg)
    ranked = sorted(
        (c for c in z if lv[c] != "average"), key=lambda c: (-abs(z[c]), order.index(c))
    )
    out = []
    for c in ranked[:n]:
        very = strong and abs(z[c]) >= float(cfg["strong"])
        out.append((c, f"very_{lv[c]}" if very else lv[c]))
    return out


def _order(columns: list[str], cfg: Mapping[str, Any]) -> list[str]:
    configured = [c for c in cfg["features"] if c in columns]
    return configured + [c for c in columns if c not in configured]


def recommendations(
    level_by_column: Mapping[str, str],
    cfg: Mapping[str, Any],
    leading: Sequence[str] = (),
    named: Sequence[str] = (),
) -> list[str]:
    """``leading`` (a convention row's), then the recommendations of every rule whose
    conditions all hold, those on the ``named`` columns (the traits in the name) first; the
    default ones when there are none."""
    by_label = {feature_info(cfg, c)["label"]: lv for c, lv in level_by_column.items()}
    by_label.update(level_by_column)  # a rule may also name the column itself
    rank = {feature_info(cfg, c)["label"]: i for i, c in enumerate(named)}
    rank.update({c: i for i, c in enumerate(named)})
    matching = [
        rule
        for rule in cfg["rules"]
        if (when := rule.get("when") or {})
        and all(by_label.get(str(k)) == str(v) for k, v in when.items())
    ]
    # Rules on the name's strongest trait first, then the next; the others in config order.
    matching.sort(key=lambda rule: min(rank.get(str(k), len(named)) for k in rule["when"]))
    out: list[str] = list(dict.fromkeys(leading))
    for rule in matching:
        out.extend(r for r in rule.get("recommend", []) if r not in out)
    return out or list(cfg["default"])


def quintile_score(value: float, cuts: Sequence[float], reverse: bool = False) -> int:
    """1-5: how many of the customers' quintile cut points ``value`` exceeds, plus one
    (``reverse``: 6 minus that, so that a low recency, a recent purchase, scores 5)."""
    score = 1 + sum(value > c for c in cuts)
    return 6 - score if reverse else score


def _first(columns: Sequence[str], candidates: Any) -> str | None:
    names = [candidates] if isinstance(candidates, str) else list(candidates or [])
    return next((c for c in names if c in columns), None)


def rfm_columns(columns: Sequence[str], cfg: Mapping[str, Any]) -> dict[str, str] | None:
    """recency/frequency(/monetary) -> the profile's column, when the RFM rule applies."""
    rfm = (cfg.get("naming") or {}).get("rfm")
    if not rfm or not rfm.get("table"):
        return None
    found = {k: _first(columns, rfm.get(k)) for k in ("recency", "frequency", "monetary")}
    if found["recency"] is None or found["frequency"] is None:
        return None
    return {k: v for k, v in found.items() if v is not None}


def rfm_scores(
    centre: Mapping[str, float], quintiles: Mapping[str, Sequence[float]], cols: Mapping[str, str]
) -> dict[str, int]:
    """R, F, (M) and FM scores of a centre; FM is the mean of F and M, rounded half up."""
    out = {"R": quintile_score(centre[cols["recency"]], quintiles[cols["recency"]], True)}
    out["F"] = quintile_score(centre[cols["frequency"]], quintiles[cols["frequency"]])
    if "monetary" in cols:
        out["M"] = quintile_score(centre[cols["monetary"]], quintiles[cols["monetary"]])
        out["FM"] = math.floor((out["F"] + out["M"]) / 2 + 0.5)
    else:
        out["FM"] = out["F"]
    return out


def rfm_row(scores: Mapping[str, int], table: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The first table row whose ``r`` and ``fm`` ranges (inclusive) hold the scores; if the
    table leaves a gap, the row nearest to them (table order breaks ties)."""

    def miss(row: Mapping[str, Any]) -> int:
        return sum(
            max(lo - scores[key], 0, scores[key] - hi)
            for key, (lo, hi) in (("R", row["r"]), ("FM", row["fm"]))
        )

    return min(table, key=lambda row: (miss(row), table.index(row)))


def _grid_cell(
    lv: Mapping[str, str], columns: Sequence[str], cfg: Mapping[str, Any]
) -> tuple[Mapping[str, Any], str, str] | None:
    grid = (cfg.get("naming") or {}).get("grid")
    if not grid or grid.get("x") not in columns or grid.get("y") not in columns:
        return None
    x, y = grid["x"], grid["y"]
    for cell in grid.get("cells") or []:
        if cell["x"] == lv[x] and cell["y"] == lv[y]:
            return cell, x, y
    return None


def _z_text(z: float) -> str:
    return f"z {z:+.2f}"


def name_segment(
    centre: Mapping[str, float],
    z: Mapping[str, float],
    columns: Sequence[str],
    quintiles: Mapping[str, Sequence[float]],
    cfg: Mapping[str, Any],
) -> dict[str, Any]:
    """Name, naming rule (``rfm``, ``grid`` or ``traits``), the rule as text, the columns the
    rule used and the convention row's recommendations of one segment."""
    lv = levels(z, float(cfg["threshold"]))
    cols = rfm_columns(columns, cfg)
    if cols is not None and all(c in quintiles for c in cols.values()):
        scores = rfm_scores(centre, quintiles, cols)
        row = rfm_row(scores, cfg["naming"]["rfm"]["table"])
        shown = " ".join(f"{k}{v}" for k, v in scores.items() if k != "FM")
        rule = (
            f"RFM {shown}, FM {scores['FM']} (centre against the customers' quintiles, "
            f"recency reversed): table row {row['name']} "
            f"(R {_range(row['r'])}, FM {_range(row['fm'])})"
        )
        return {
            "name": str(row["name"]),
            "naming": "rfm",
            "rule": rule,
            "used": list(cols.values()),
            "named": list(cols.values()),
            "recommend": list(row.get("recommend") or []),
        }
    grid = _grid_cell(lv, columns, cfg)
    if grid is not None:
        cell, x, y = grid
        words = [f"{feature_info(cfg, c)['label']} {lv[c]} ({_z_text(z[c])})" for c in (x, y)]
        return {
            "name": str(cell["name"]),
            "naming": "grid",
            "rule": f"{feature_info(cfg, x)['label']} x {feature_info(cfg, y)['label']} "
            f"grid: {', '.join(words)}",
            "used": [x, y],
            "named": [x, y],
            "recommend": list(cell.get("recommend") or []),
        }
    traits = _traits(z, cfg, int(cfg["max_traits"]))
    threshold = float(cfg["threshold"])
    if traits:
        text = ", ".join(
            f"{feature_info(cfg, c)['label']} {lv[c]} ({_z_text(z[c])})" for c, _ in traits
        )
    else:
        text = f"no feature beyond +/-{threshold:g} standard deviations of the population mean"
    return {
        "name": _name(traits, cfg, _order(list(z), cfg)),
        "naming": "traits",
        "rule": f"traits: {text}",
        "used": [],
        "named": [c for c, _ in traits],
        "recommend": [],
    }


def _range(bounds: Sequence[int]) -> str:
    lo, hi = int(bounds[0]), int(bounds[1])
    return str(lo) if lo == hi else f"{lo}-{hi}"


def build_personas(profile: pd.DataFrame, cfg: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The persona table of a segment profile (see :func:`segmentation.profiles.segment_profile`).

    Columns: segment, name, naming (``rfm``, ``grid``, ``traits``), rule (why that name),
    description, size, share, profile (feature -> mean, level and z-score) and recommendations.
    Names are unique: segments that would share a name get more traits, then their segment id.
    Noise (``-1``) is its own "Unassigned" row.
    """
    cfg = persona_config(cfg)
    columns = profile_columns(profile)
    order = _order(columns, cfg)
    population = dict(zip(columns, profile.attrs.get("population_mean") or [], strict=False))
    quintiles = profile.attrs.get("quintiles") or {}
    rows: list[dict[str, Any]] = []
    for _, row in profile.sort_values("segment").iterrows():
        segment = int(row["segment"])
        z = {c: float(row[f"z:{c}"]) for c in columns}
        lv = levels(z, float(cfg["threshold"]))
        stats = {
            c: {"mean": float(row[f"mean:{c}"]), "level": lv[c], "z": round(z[c], 3)}
            for c in columns
        }
        if segment == -1:
            named = {
                "name": NOISE_PERSONA,
                "naming": "noise",
                "rule": "noise: customers no segment claims",
                "used": [],
            }
            recs = list(cfg["unassigned"])
        else:
            centre = {c: _centre(row, c) for c in columns}
            named = name_segment(centre, z, columns, quintiles, cfg)
            recs = recommendations(lv, cfg, named["recommend"], named["named"])
        rows.append(
            {
                "segment": segment,
                "name": named["name"],
                "naming": named["naming"],
                "rule": named["rule"],
                "description": _describe(row, columns, cfg, population),
                "size": int(row["size"]),
                "share": float(row["share"]),
                "profile": stats,
                "recommendations": recs,
                "_z": z,
                "_used": named["used"],
            }
        )
    _disambiguate(rows, cfg, order)
    for row in rows:
        row.pop("_z")
        row.pop("_used")
    return pd.DataFrame(rows, columns=PERSONA_COLUMNS)


def _centre(row: pd.Series, column: str) -> float:
    """The fitted centre where the model has one (KMeans, GMM), else the segment mean."""
    value = row.get(f"center:{column}")
    return (
        float(value) if value is not None and not pd.isna(value) else float(row[f"mean:{column}"])
    )


def _disambiguate(rows: list[dict[str, Any]], cfg: Mapping[str, Any], order: list[str]) -> None:
    """Make names unique, deterministically: a convention name gets its strongest traits
    beyond the rule's own columns in brackets ("Standard (young)"); a trait name first "very"
    for strong traits, then more traits; then the segment id."""
    base = {id(r): r["name"] for r in rows}
    for extra in range(0, len(order) + 1):
        clashes = _clashing(rows)
        if not clashes:
            return
        for row in clashes:
            if row["naming"] in ("rfm", "grid"):
                others = {c: v for c, v in row["_z"].items() if c not in row["_used"]}
                traits = _traits(others or row["_z"], cfg, 1 + extra, strong=True)
                if traits:
                    words = _name(traits, cfg, order)
                    row["name"] = f"{base[id(row)]} ({words[:1].lower()}{words[1:]})"
            else:
                traits = _traits(row["_z"], cfg, int(cfg["max_traits"]) + extra, strong=True)
                row["name"] = _name(traits, cfg, order)
    for row in _clashing(rows):
        row["name"] = f"{row['name']} (segment {row['segment']})"


def _clashing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, int] = {}
    for row in rows:
        seen[row["name"]] = seen.get(row["name"], 0) + 1
    return [r for r in rows if r["segment"] != -1 and seen[r["name"]] > 1]


def feature_value(value: float, info: Mapping[str, Any]) -> str:
    """A feature's value for people, with its unit (shares as percentages)."""
    if info.get("percent"):
        return number(value, percent=True) + (f" {info['unit']}" if info["unit"] else "")
    return number(value, str(info["unit"]))


def _describe(row: pd.Series, columns: list[str], cfg: Mapping[str, Any], population) -> str:
    parts = []
    for c in columns:
        info = feature_info(cfg, c)
        mean = float(row[f"mean:{c}"])
        versus = (
            f" (all customers {feature_value(population[c], {**info, 'unit': ''})})"
            if c in population
            else ""
        )
        parts.append(f"{info['label']} {feature_value(mean, info)}{versus}")
    size = int(row["size"])
    text = f"{size:,} customers ({float(row['share']):.0%}): " + "; ".join(parts) + "."
    return text[:1].upper() + text[1:]


def segment_personas(labels: Any, personas: Mapping[int, str] | None) -> list[str]:
    """Persona name per segment id; ``Segment k`` where none is known, noise unassigned."""
    personas = personas or {}
    segments, rows = np.unique(np.asarray(labels, dtype=np.int64), return_inverse=True)
    names = np.array(
        [NOISE_PERSONA if s == -1 else personas.get(int(s), f"Segment {int(s)}") for s in segments],
        dtype=object,
    )
    return names[rows.reshape(-1)].tolist()


def persona_names(table: pd.DataFrame) -> dict[int, str]:
    """Segment id -> persona name, as the logged model wants it (noise excluded)."""
    return {int(s): str(n) for s, n in zip(table["segment"], table["name"], strict=True) if s != -1}


def write_personas(table: pd.DataFrame, out_dir: Path, stem: str = "personas") -> list[Path]:
    """The persona table as CSV (profile and recommendations as text) and JSON."""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, json_path = out_dir / f"{stem}.csv", out_dir / f"{stem}.json"
    flat = table.copy()
    flat["profile"] = [
        "; ".join(f"{c}: {number(v['mean'])} ({v['level']})" for c, v in p.items())
        for p in table["profile"]
    ]
    flat["recommendations"] = [" | ".join(r) for r in table["recommendations"]]
    flat.to_csv(csv_path, index=False, float_format="%.6g")
    json_path.write_text(
        json.dumps(table.to_dict(orient="records"), indent=1, default=float), encoding="utf-8"
    )
    return [csv_path, json_path]
