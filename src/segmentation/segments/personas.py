"""Personas (``conf/personas``): a name, a one-line description and recommendations per segment.

A segment is described relative to the whole population: on each feature its mean is "high",
"low" or "average" by the z-score of that mean (``threshold`` standard deviations). The name
lists its strongest traits; the recommendations come from the config's rule table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from segmentation.segments.profiles import profile_columns

# The persona of noise (segment -1): customers no segment claims.
NOISE_PERSONA = "Unassigned"

DEFAULTS: dict[str, Any] = {
    "threshold": 0.5,
    # Beyond this z-score a trait reads "very high"/"very low" when names would clash.
    "strong": 1.5,
    "max_traits": 2,
    "neutral_name": "Average customers",
    "features": {},
    "rules": [],
    "default": [],
    "unassigned": [],
}
PERSONA_COLUMNS = ["segment", "name", "description", "size", "share", "profile", "recommendations"]


def persona_config(cfg: Mapping[str, Any] | None) -> dict[str, Any]:
    """The persona settings with defaults filled in (``None``: generic names, no rules)."""
    out = dict(DEFAULTS)
    if cfg:
        plain = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
        out.update({k: v for k, v in plain.items() if v is not None})
    return out


def _feature_info(cfg: Mapping[str, Any], column: str) -> dict[str, str]:
    info = dict(cfg["features"].get(column) or {})
    info.setdefault("label", column)
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
    words = [_feature_info(cfg, c)[level] for c, level in traits]
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


def recommendations(level_by_column: Mapping[str, str], cfg: Mapping[str, Any]) -> list[str]:
    """Recommendations of every rule whose conditions all hold, else the default ones."""
    by_label = {_feature_info(cfg, c)["label"]: lv for c, lv in level_by_column.items()}
    by_label.update(level_by_column)  # a rule may also name the column itself
    out: list[str] = []
    for rule in cfg["rules"]:
        when = rule.get("when") or {}
        if when and all(by_label.get(str(k)) == str(v) for k, v in when.items()):
            out.extend(r for r in rule.get("recommend", []) if r not in out)
    return out or list(cfg["default"])


def build_personas(profile: pd.DataFrame, cfg: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The persona table of a segment profile (see :func:`segmentation.profiles.segment_profile`).

    Columns: segment, name, description, size, share, profile (feature -> mean, level and
    z-score) and recommendations. Names are unique: segments that would share a name get more
    traits, then their segment id. Noise (``-1``) is its own "Unassigned" row.
    """
    cfg = persona_config(cfg)
    columns = profile_columns(profile)
    order = _order(columns, cfg)
    population = dict(zip(columns, profile.attrs.get("population_mean") or [], strict=False))
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
            name, recs = NOISE_PERSONA, list(cfg["unassigned"])
        else:
            name = _name(_traits(z, cfg, int(cfg["max_traits"])), cfg, order)
            recs = recommendations(lv, cfg)
        rows.append(
            {
                "segment": segment,
                "name": name,
                "description": _describe(row, columns, cfg, population),
                "size": int(row["size"]),
                "share": float(row["share"]),
                "profile": stats,
                "recommendations": recs,
                "_z": z,
            }
        )
    _disambiguate(rows, cfg, order)
    for row in rows:
        row.pop("_z")
    return pd.DataFrame(rows, columns=PERSONA_COLUMNS)


def _disambiguate(rows: list[dict[str, Any]], cfg: Mapping[str, Any], order: list[str]) -> None:
    """Make names unique, deterministically: first "very" for strong traits, then more
    traits, then the segment id."""
    for extra in range(0, len(order) + 1):
        clashes = _clashing(rows)
        if not clashes:
            return
        for row in clashes:
            traits = _traits(row["_z"], cfg, int(cfg["max_traits"]) + extra, strong=True)
            row["name"] = _name(traits, cfg, order)
    for row in _clashing(rows):
        row["name"] = f"{row['name']} (segment {row['segment']})"


def _clashing(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, int] = {}
    for row in rows:
        seen[row["name"]] = seen.get(row["name"], 0) + 1
    return [r for r in rows if r["segment"] != -1 and seen[r["name"]] > 1]


def _describe(row: pd.Series, columns: list[str], cfg: Mapping[str, Any], population) -> str:
    parts = []
    for c in columns:
        info = _feature_info(cfg, c)
        unit = f" {info['unit']}" if info["unit"] else ""
        mean = float(row[f"mean:{c}"])
        versus = f" (population {population[c]:.3g})" if c in population else ""
        parts.append(f"{info['label']} {mean:.3g}{unit}{versus}")
    size = int(row["size"])
    return f"{size} customers ({float(row['share']):.0%}): " + "; ".join(parts) + "."


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
        "; ".join(f"{c}: {v['mean']:.4g} ({v['level']})" for c, v in p.items())
        for p in table["profile"]
    ]
    flat["recommendations"] = [" | ".join(r) for r in table["recommendations"]]
    flat.to_csv(csv_path, index=False, float_format="%.6g")
    json_path.write_text(
        json.dumps(table.to_dict(orient="records"), indent=1, default=float), encoding="utf-8"
    )
    return [csv_path, json_path]
