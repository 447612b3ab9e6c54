"""Audiences: the champion's segments of a customer file as upload files for ad platforms and
CRMs (``make audiences``), with seeded holdout groups and the lift each holdout can detect.

One CSV per segment holds the customer id and the identifier columns the input has. Email,
phone and names are normalised and SHA-256 hashed as the platforms' customer-list formats ask:

- email: surrounding whitespace trimmed, lower-cased (Google Customer Match, Meta);
- phone: E.164, the country calling code and number as digits. Google Customer Match hashes
  it with its leading ``+`` (``phone_sha256``), Meta's custom audiences as digits only
  (``phone_meta_sha256``): both are written. ``+`` or ``00`` marks a number with its country
  code; any other number gets ``audiences.phone_country_code`` (its trunk ``0`` dropped);
- first and last name: trimmed, lower-cased;
- zip and country stay in clear text (Google wants them unhashed; country upper-cased).

A value that cannot be normalised (no ``@``, a phone without a country code) is left empty
and counted. A manifest (JSON, with its per-segment table as CSV) records the counts, the
files, the model version and the input's SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import DictConfig, OmegaConf
from scipy.optimize import brentq
from scipy.stats import norm

from segmentation.data.reading import file_sha256, normalise_header
from segmentation.errors import InputError
from segmentation.promotion.aliases import ModelRef
from segmentation.segments.personas import NOISE_PERSONA
from segmentation.serving.predict import LINE, REASON, Scored, score_rows

MANIFEST = "audiences-manifest.json"
MANIFEST_TABLE = "audiences-manifest.csv"
REJECTED = "rejected.csv"
HASHED = ("email", "first_name", "last_name")
CLEAR = ("zip", "country")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# Separators people write phone numbers with.
_PHONE_SEPARATORS = re.compile(r"[\s\-./()]")
# E.164: at most 15 digits with the country code; the shortest real numbers have about 8.
E164_MIN_DIGITS, E164_MAX_DIGITS = 8, 15


def sha256(text: str) -> str:
    """Lower-case hex SHA-256 of the UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalise_email(value: Any) -> str | None:
    """Trimmed, lower-cased email address; ``None`` if empty or not an address."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    text = str(value).strip().lower()
    return text if _EMAIL.match(text) else None


def normalise_phone(value: Any, country_code: str | None = None) -> str | None:
    """The number in E.164 (``+`` then country code and number, digits only); ``None`` if
    empty, not a number, or written without a country code when ``country_code`` is unset.

    ``+44 20 7946 0958``, ``0044 20 7946 0958`` and, with ``country_code="44"``,
    ``020 7946 0958`` all give ``+442079460958``.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    text = _PHONE_SEPARATORS.sub("", str(value).strip())
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("00"):
        digits = text[2:]
    elif country_code:
        digits = str(country_code) + text.lstrip("0")
    else:
        return None
    if not digits.isdigit() or digits.startswith("0"):
        return None
    if not E164_MIN_DIGITS <= len(digits) <= E164_MAX_DIGITS:
        return None
    return "+" + digits


def normalise_text(value: Any) -> str | None:
    """Trimmed and lower-cased (names); ``None`` if empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    text = str(value).strip().lower()
    return text or None


def find_identifiers(columns: list[str], aliases: dict[str, list[str]]) -> dict[str, str]:
    """Identifier kind -> the input column holding it, matched by header variants as the
    dataset's own columns are (case, spaces and punctuation ignored)."""
    by_norm: dict[str, str] = {}
    for column in columns:
        by_norm.setdefault(normalise_header(column), column)
    found = {}
    for kind, names in aliases.items():
        tried = map(normalise_header, [kind, *names])
        hit = next((by_norm[n] for n in tried if n in by_norm), None)
        if hit is not None:
            found[kind] = hit
    return found


def identifier_frame(
    frame: pd.DataFrame, found: dict[str, str], country_code: str | None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """The upload columns of ``frame``'s identifiers (hashed where the platforms hash) and,
    per identifier, how many non-empty values could not be normalised (left empty)."""
    out = pd.DataFrame(index=frame.index)
    unusable: dict[str, int] = {}

    def normalised(kind: str, normalise) -> list[str | None]:
        values = frame[found[kind]]
        clean = [normalise(v) for v in values]
        given = values.notna() & (values.astype(str).str.strip() != "")
        unusable[kind] = int(sum(bool(g) and c is None for g, c in zip(given, clean, strict=True)))
        return clean

    def column(values: list[str | None]) -> pd.Series:
        return pd.Series(values, index=frame.index, dtype=object)

    for kind in found:
        if kind == "email":
            clean = normalised(kind, normalise_email)
            out["email_sha256"] = column([sha256(v) if v else None for v in clean])
        elif kind == "phone":
            clean = normalised(kind, lambda v: normalise_phone(v, country_code))
            out["phone_sha256"] = column([sha256(v) if v else None for v in clean])
            out["phone_meta_sha256"] = column([sha256(v[1:]) if v else None for v in clean])
        elif kind in ("first_name", "last_name"):
            clean = normalised(kind, normalise_text)
            out[f"{kind}_sha256"] = column([sha256(v) if v else None for v in clean])
        else:  # zip and country in clear text, trimmed (country codes upper-cased)
            clean = [None if pd.isna(v) else str(v).strip() or None for v in frame[found[kind]]]
            upper = kind == "country"
            out[kind] = column([v.upper() if v and upper else v for v in clean])
    return out, unusable


def holdout_size(n_rows: int, share: float) -> int:
    """Rows of a segment of ``n_rows`` held out: ``share`` of them, rounded half up."""
    return min(n_rows, int(math.floor(share * n_rows + 0.5)))


def draw_holdout(keys: pd.Series, share: float, seed: int, segment: int) -> np.ndarray:
    """Boolean mask of one segment's rows held out: a seeded draw of ``holdout_size`` rows,
    taken over the rows ordered by ``keys`` (customer ids), so the same customers and seed give
    the same split whatever the file order. Each segment has its own stream of the seed."""
    n = len(keys)
    mask = np.zeros(n, dtype=bool)
    size = holdout_size(n, share)
    if not size:
        return mask
    numeric = pd.to_numeric(keys, errors="coerce")
    order_by = numeric if numeric.notna().all() else keys.astype(str)
    order = np.argsort(order_by.to_numpy(), kind="stable")
    rng = np.random.default_rng([int(seed), int(segment) + 1])
    mask[order[rng.choice(n, size=size, replace=False)]] = True
    return mask


def detectable_effect(n_treated: int, n_holdout: int, alpha: float, power: float) -> float:
    """Cohen's h that a two-sided z-test of two proportions detects with ``power`` at level
    ``alpha`` between groups of these sizes (both tails counted, as statsmodels'
    ``NormalIndPower``); NaN when a group is empty."""
    if n_treated < 1 or n_holdout < 1:
        return float("nan")
    z = norm.isf(alpha / 2)
    scale = math.sqrt(n_treated * n_holdout / (n_treated + n_holdout))

    def shortfall(h: float) -> float:
        return norm.sf(z - h * scale) + norm.cdf(-z - h * scale) - power

    high = 1.0
    while shortfall(high) < 0:
        high *= 2
    return float(brentq(shortfall, 0.0, high, xtol=1e-12))


def detectable_rate(baseline: float, effect: float) -> float | None:
    """The response rate ``effect`` (Cohen's h) above ``baseline``; ``None`` if above 100%."""
    phi = 2 * math.asin(math.sqrt(baseline)) + effect
    return math.sin(phi / 2) ** 2 if phi <= math.pi else None


@dataclass
class SegmentAudience:
    """One segment's files and figures."""

    segment: int
    persona: str
    rows: int
    treated: int
    holdout: int
    file: str
    holdout_file: str | None
    baseline_response: float | None = None
    baseline_source: str | None = None
    detectable_effect_h: float | None = None
    detectable_response: float | None = None
    min_detectable_lift: float | None = None
    min_detectable_lift_relative: float | None = None
    below_minimum: list[str] = field(default_factory=list)


@dataclass
class AudienceExport:
    """What ``make audiences`` wrote."""

    output: Path
    manifest: dict[str, Any]
    segments: list[SegmentAudience]
    warnings: list[str]


def slug(text: str) -> str:
    """File-name form of a persona name: lower-case words joined by hyphens."""
    return re.sub(r"[^0-9a-z]+", "-", text.lower()).strip("-") or "segment"


def segment_stem(segment: int, persona: str) -> str:
    """``segment-<id>-<persona slug>`` (``segment-noise-...`` for the unassigned)."""
    return f"segment-{'noise' if segment == -1 else segment}-{slug(persona)}"


def model_version(client: MlflowClient, uri: str) -> dict[str, Any]:
    """The registered name, version and run of ``models:/name@alias`` or ``models:/name/n``."""
    info: dict[str, Any] = {"uri": uri, "name": None, "version": None, "run_id": None}
    match = re.fullmatch(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))", uri)
    if not match:
        return info
    name, alias, number = match.groups()
    try:
        version = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, number)
        )
    except MlflowException:
        return info
    return {**info, "name": name, "version": int(version.version), "run_id": version.run_id}


def _check_settings(
    settings: DictConfig,
) -> tuple[float, int, float, float, float, str | None]:
    """The ``audiences`` group's holdout and power settings, refused in one line each when out
    of range."""
    share = float(settings.holdout.share)
    if not 0.0 <= share < 1.0:
        raise InputError(
            f"HOLDOUT={share:g} (audiences.holdout.share): expected a share of each segment "
            "from 0 up to (not including) 1, e.g. 0.1"
        )
    seed = int(settings.holdout.seed)
    if seed < 0:
        raise InputError(f"audiences.holdout.seed={seed}: expected a non-negative integer")
    alpha, power = float(settings.power.alpha), float(settings.power.power)
    if not 0.0 < alpha < 1.0 or not alpha < power < 1.0:
        raise InputError(
            f"audiences.power.alpha={alpha:g}, power={power:g}: expected 0 < alpha < power < 1"
        )
    baseline = float(settings.power.default_baseline)
    if not 0.0 < baseline < 1.0:
        raise InputError(
            f"audiences.power.default_baseline={baseline:g}: expected a response rate "
            "between 0 and 1 (not 0 or 1)"
        )
    code = settings.get("phone_country_code")
    code = None if code in (None, "") else str(code).lstrip("+")
    if code is not None and not (code.isdigit() and 1 <= len(code) <= 3 and code[0] != "0"):
        raise InputError(
            f"audiences.phone_country_code={settings.phone_country_code}: expected a country "
            "calling code of 1-3 digits, e.g. 1 or 44"
        )
    return share, seed, alpha, power, baseline, code


def _check_output(output: Path) -> None:
    """Refuse a folder that holds anything but an earlier export's own files (a rerun
    replaces them); a file of someone else's in it would be lost."""
    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: exists and is not a folder (expected an output folder)")
    if not output.is_dir() or not any(output.iterdir()):
        return
    try:
        earlier = json.loads((output / MANIFEST).read_text(encoding="utf-8"))
        ours = {MANIFEST, MANIFEST_TABLE, REJECTED}
        for row in earlier["segments"]:
            ours |= {row["file"], row["holdout_file"]}
    except (OSError, ValueError, KeyError, TypeError):
        raise InputError(
            f"{output}: folder holds files that are not an earlier audiences export "
            f"(no readable {MANIFEST}); give an empty or new OUTPUT folder"
        ) from None
    other = sorted(p.name for p in output.iterdir() if p.name not in ours)
    if other:
        raise InputError(
            f"{output}: folder holds {other[0]!r}, not written by the earlier export it holds "
            "(a rerun replaces the folder); move it or give another OUTPUT folder"
        )


def _column(frame: pd.DataFrame, name: str | None) -> str | None:
    """The input column whose header is ``name`` up to case, spaces and punctuation."""
    if not name:
        return None
    return find_identifiers(list(frame.columns), {str(name): []}).get(str(name))


def once_each(scored: Scored, id_column: str | None) -> Scored:
    """The scored rows with each customer id once, its first row: a later row of the same id
    is rejected (a customer listed twice would be uploaded twice, in two segments, or both
    uploaded and held out, which spoils the holdout's comparison)."""
    if id_column is None:
        return scored
    frame = scored.scored
    ids = frame[id_column].astype(str).str.strip()
    again = ids.duplicated().to_numpy()
    if not again.any():
        return scored
    first = pd.Series(scored.lines, index=frame.index).groupby(ids).transform("first")
    extra = frame.loc[again, list(scored.rejected.columns.drop([LINE, REASON]))]
    extra.insert(0, LINE, scored.lines[again])
    reasons = [
        f"customer {id_column} {v} again (first on line {line}): each customer is listed once"
        for v, line in zip(ids[again], first[again], strict=True)
    ]
    extra.insert(1, REASON, pd.Series(reasons, index=extra.index, dtype=object))
    rejected = pd.concat([scored.rejected, extra]).sort_values(LINE, kind="stable")
    keep = ~again
    return replace(
        scored,
        scored=frame.loc[keep].reset_index(drop=True),
        rejected=rejected.reset_index(drop=True),
        model_rows=scored.model_rows.loc[keep].reset_index(drop=True),
        lines=scored.lines[keep],
    )


def baselines(
    scored: Scored, response_column: str | None, default: float
) -> dict[int, tuple[float, str]]:
    """Each segment's baseline response rate and where it came from: the model's training
    segments (``model``), else the input's response column (``input``), else ``default``."""
    reference = scored.model.segmenter.reference or {}
    trained = {
        int(row["segment"]): float(row["response_rate"])
        for row in reference.get("segments") or []
        if row.get("response_rate") is not None
    }
    frame = scored.scored
    column = _column(frame, response_column)
    answered = (
        pd.to_numeric(frame[column], errors="coerce")
        if column
        else pd.Series(np.nan, index=frame.index)
    )
    out = {}
    for segment in sorted(frame["segment"].unique()):
        segment = int(segment)
        mine = answered[frame["segment"] == segment].dropna()
        if segment in trained:
            out[segment] = (trained[segment], "model")
        elif len(mine):
            out[segment] = (float((mine > 0).mean()), "input")
        else:
            out[segment] = (default, "default")
    return out


def export_audiences(
    dataset: DictConfig,
    audiences: DictConfig,
    experiment_name: str,
    model_ref: ModelRef,
    input_path: str | Path,
    output: str | Path | None = None,
) -> AudienceExport:
    """Score ``input_path`` with the model (default: the champion) and write one upload file
    per segment, its holdout file when ``audiences.holdout.share`` > 0, the rejected rows and
    the manifest into ``output`` (default ``audiences.output_dir``). Everything is checked and
    computed before the first file is written; the folder is swapped in whole."""
    share, seed, alpha, power, default_baseline, country_code = _check_settings(audiences)
    output = Path(output or str(audiences.output_dir)).resolve()
    _check_output(output)
    input_path = Path(input_path)
    scored = score_rows(dataset, model_ref, input_path)
    if scored.scored.empty:
        first = scored.rejected[REASON].iloc[0] if len(scored.rejected) else "no rows"
        raise InputError(f"{input_path}: no row could be scored (line 2 on: {first})")
    id_column = _column(scored.scored, dataset.get("id_column"))
    scored = once_each(scored, id_column)
    frame = scored.scored
    aliases = OmegaConf.to_container(audiences.identifiers, resolve=True) or {}
    found = find_identifiers([c for c in frame.columns if c != id_column], aliases)
    if id_column is None and not found:
        raise InputError(
            f"{input_path}: no customer id ('{dataset.get('id_column')}') and no identifier "
            f"column ({', '.join(aliases)}) found: an audience file needs one; columns found: "
            f"{list(frame.columns)}"
        )
    ids = frame[[id_column]] if id_column else pd.DataFrame(index=frame.index)
    upload, unusable = identifier_frame(frame, found, country_code)
    upload = pd.concat([ids, upload], axis=1)
    keys = frame[id_column] if id_column else pd.Series(np.arange(len(frame)), index=frame.index)
    minimum = {str(k): int(v) for k, v in audiences.min_size.items()}
    base = baselines(scored, dataset.get("response_column"), default_baseline)

    files: dict[str, pd.DataFrame] = {}
    segments: list[SegmentAudience] = []
    warnings: list[str] = []
    for segment in sorted(int(s) for s in frame["segment"].unique()):
        mine = np.flatnonzero((frame["segment"] == segment).to_numpy())
        persona = str(frame["persona"].iloc[mine[0]]) if segment != -1 else NOISE_PERSONA
        held = draw_holdout(keys.iloc[mine].reset_index(drop=True), share, seed, segment)
        stem = segment_stem(segment, persona)
        rows = upload.iloc[mine].reset_index(drop=True)
        files[f"{stem}.csv"] = rows[~held]
        entry = SegmentAudience(
            segment=segment,
            persona=persona,
            rows=len(mine),
            treated=int((~held).sum()),
            holdout=int(held.sum()),
            file=f"{stem}.csv",
            holdout_file=f"{stem}.holdout.csv" if share > 0 else None,
        )
        if share > 0:
            files[f"{stem}.holdout.csv"] = rows[held]
            rate, source = base[segment]
            h = detectable_effect(entry.treated, entry.holdout, alpha, power)
            reachable = detectable_rate(rate, h) if math.isfinite(h) else None
            entry.baseline_response, entry.baseline_source = rate, source
            entry.detectable_effect_h = h if math.isfinite(h) else None
            entry.detectable_response = reachable
            if reachable is not None:
                entry.min_detectable_lift = reachable - rate
                entry.min_detectable_lift_relative = (reachable - rate) / rate
        entry.below_minimum = [p for p, n in minimum.items() if entry.treated < n]
        if entry.below_minimum:
            needs = ", ".join(f"{p} {minimum[p]}" for p in entry.below_minimum)
            warnings.append(
                f"segment {segment} ({persona}): {entry.treated} customer(s) to upload, below "
                f"the platform minimum ({needs} matched users): the list may not serve"
            )
        segments.append(entry)
    for kind, count in unusable.items():
        if count:
            hint = (
                " (no country code: set audiences.phone_country_code)"
                if kind == "phone" and country_code is None
                else ""
            )
            warnings.append(
                f"{kind}: {count} value(s) in column '{found[kind]}' could not be normalised"
                f"{hint}; left empty"
            )

    manifest = {
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "experiment": experiment_name,
        "input": {
            "path": str(input_path.resolve()),
            "sha256": file_sha256(input_path),
            "rows": len(frame) + len(scored.rejected),
            "scored": len(frame),
            "rejected": len(scored.rejected),
            "rejected_file": REJECTED if len(scored.rejected) else None,
        },
        "model": model_version(MlflowClient(model_ref.tracking_uri), scored.model_uri),
        "id_column": id_column,
        "identifiers": found,
        "columns": list(upload.columns),
        "unusable_values": unusable,
        "hashing": "SHA-256 hex of: email trimmed and lower-cased; phone in E.164 with '+' "
        "(phone_sha256, Google Customer Match) and without (phone_meta_sha256, Meta); first "
        "and last name trimmed and lower-cased. zip and country in clear text.",
        "min_size": minimum,
        "holdout": {"share": share, "seed": seed},
        "power": {
            "alpha": alpha,
            "power": power,
            "test": "two-sided z-test of two proportions (Cohen's h)",
            "baseline_sources": sorted({s.baseline_source for s in segments if s.baseline_source}),
            "default_baseline": default_baseline,
        },
        "segments": [vars(s) for s in segments],
        "warnings": warnings,
    }
    _write(output, files, manifest, scored.rejected, id_column)
    return AudienceExport(output, manifest, segments, warnings)


def _write(
    output: Path,
    files: dict[str, pd.DataFrame],
    manifest: dict[str, Any],
    rejected: pd.DataFrame,
    id_column: str | None,
) -> None:
    """Write everything into a fresh folder beside ``output``, then swap it in: an earlier
    export stays whole until the new one is complete."""
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        for name, rows in files.items():
            rows.to_csv(staging / name, index=False)
        if len(rejected):
            # Line, reason and id only: the rejected rows' identifiers stay out of the folder.
            keep = [c for c in (LINE, REASON, id_column) if c and c in rejected.columns]
            rejected[keep].to_csv(staging / REJECTED, index=False)
        table = pd.DataFrame(manifest["segments"]).drop(columns=["below_minimum"])
        table["below_minimum"] = [",".join(s["below_minimum"]) for s in manifest["segments"]]
        table.to_csv(staging / MANIFEST_TABLE, index=False)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        previous = None
        if output.exists():
            previous = output.with_name(f".{output.name}.previous")
            shutil.rmtree(previous, ignore_errors=True)
            output.rename(previous)
        staging.rename(output)
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def segment_table(export: AudienceExport) -> pd.DataFrame:
    """The per-segment table people read: sizes and, with holdouts, the detectable lift."""
    table = pd.DataFrame(
        {
            "segment": [s.segment for s in export.segments],
            "persona": [s.persona for s in export.segments],
            "upload": [s.treated for s in export.segments],
        }
    )
    if export.manifest["holdout"]["share"] > 0:
        table["holdout"] = [s.holdout for s in export.segments]
        table["baseline"] = [
            f"{_percent(s.baseline_response)} ({s.baseline_source})" for s in export.segments
        ]
        table["detectable"] = [_percent(s.detectable_response) for s in export.segments]
        table["min. lift"] = [
            "none possible"
            if s.min_detectable_lift is None
            else f"+{100 * s.min_detectable_lift:.1f} pts (+{s.min_detectable_lift_relative:.0%})"
            for s in export.segments
        ]
    return table


def _aligned(table: pd.DataFrame) -> str:
    """The table as text, persona names left-aligned."""
    width = int(table["persona"].str.len().max())
    left = {"persona": lambda name: f"{name:<{width}}"}
    return table.to_string(index=False, formatters=left, justify="left")


def report(export: AudienceExport) -> None:
    """The per-segment table on stdout, warnings on stderr."""
    manifest = export.manifest
    model = manifest["model"]
    version = f" (version {model['version']})" if model["version"] else ""
    print(
        f"Audiences of {manifest['input']['scored']} customer(s) scored by {model['uri']}"
        f"{version} into {export.output}; rejected {manifest['input']['rejected']}.",
        _aligned(segment_table(export)),
        f"Manifest: {export.output / MANIFEST}",
        sep="\n",
        flush=True,
    )
    for warning in export.warnings:
        print(f"warning: {warning}", file=sys.stderr, flush=True)
