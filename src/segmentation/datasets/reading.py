"""Reading customer files as they really come: CSV or Parquet, any common delimiter, BOM,
CRLF, quoted fields, header variants. Every problem is one line naming file, column and rows."""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from segmentation.errors import InputError

PARQUET_SUFFIXES = {".parquet", ".pq"}
DELIMITERS = ("\t", ",", ";", "|")
_DELIMITER_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}


def normalise_header(name: str) -> str:
    """Fold case, spacing and punctuation: ``Annual Income (k$)`` -> ``annualincomek``."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def sniff_delimiter(header_line: str) -> str:
    """Pick the delimiter that splits the header line (outside quotes) into most fields."""
    best, best_fields = ",", 1
    for delim in DELIMITERS:
        fields = len(next(csv.reader([header_line], delimiter=delim)))
        if fields > best_fields:
            best, best_fields = delim, fields
    return best


def read_table(path: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a CSV (delimiter detected) or Parquet file with every value as text.

    Returns the frame and a description of what was detected (format, delimiter, BOM).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found (expected a CSV or Parquet customer file)")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (expected a header line and customer rows)")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            frame = pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises several types for a broken file
            raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
        frame = frame.astype(object).where(frame.notna(), None)
        return _text_frame(frame), {"format": "parquet"}
    raw = path.read_bytes()
    bom = raw.startswith(b"\xef\xbb\xbf")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputError(f"{path}: file is empty (expected a header line and customer rows)")
    delimiter = sniff_delimiter(lines[0])
    try:
        frame = pd.read_csv(
            path,
            sep=delimiter,
            dtype=str,
            encoding="utf-8-sig" if not text.startswith("\ufeff") or bom else "latin-1",
            keep_default_na=False,
            skipinitialspace=True,
            skip_blank_lines=True,
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0]
        raise InputError(f"{path}: cannot parse as a delimited file ({first})") from None
    frame.columns = [str(c).strip().strip("\ufeff") for c in frame.columns]
    detected = {
        "format": "csv",
        "delimiter": _DELIMITER_NAMES.get(delimiter, delimiter),
        "bom": bom,
        "crlf": "\r\n" in text[:10000],
    }
    return _text_frame(frame), detected


def _text_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Every cell as stripped text, missing as NaN."""
    out = frame.astype(object).map(lambda v: None if v is None else str(v).strip())
    out = out.replace({"": None, "nan": None, "NaN": None, "NA": None, "None": None})
    return out


def map_columns(
    frame: pd.DataFrame, columns: Mapping[str, Mapping[str, Any]], path: str | Path
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Rename header variants to the canonical column names given by the dataset config.

    ``columns`` maps each canonical name to its spec (``aliases``, ``required``). Returns the
    renamed frame (canonical columns first, others kept) and the renames made.
    """
    by_norm: dict[str, str] = {}
    for col in frame.columns:
        by_norm.setdefault(normalise_header(col), col)
    renames: dict[str, str] = {}
    missing: list[str] = []
    for canonical, spec in columns.items():
        tried = [canonical, *list(spec.get("aliases", []) or [])]
        found = next((by_norm[n] for n in map(normalise_header, tried) if n in by_norm), None)
        if found is None:
            if spec.get("required", True):
                missing.append(f"'{canonical}' (tried: {', '.join(tried)})")
            continue
        renames[found] = canonical
    if missing:
        found_cols = ", ".join(f"'{c}'" for c in frame.columns)
        raise InputError(
            f"{path}: required column {'; '.join(missing)} not found; columns found: {found_cols}"
        )
    out = frame.rename(columns=renames)
    changed = {src: dst for src, dst in renames.items() if src != dst}
    return out, changed


def _rows(index: pd.Index) -> str:
    """File line numbers of frame rows (line 1 is the header)."""
    return ", ".join(str(int(i) + 2) for i in index[:5])


def to_numeric_column(frame: pd.DataFrame, column: str, spec: Mapping[str, Any], path) -> pd.Series:
    """Convert one column to numbers, refusing text, an all-empty column and values below min."""
    values = frame[column]
    if values.isna().all():
        raise InputError(f"{path}: column '{column}' is entirely empty (expected numbers)")
    numbers = pd.to_numeric(values, errors="coerce")
    bad = values.notna() & numbers.isna()
    if bad.any():
        examples = ", ".join(repr(v) for v in values[bad].head(3))
        raise InputError(
            f"{path}: column '{column}' has text where numbers are expected: {examples} "
            f"at line(s) {_rows(values[bad].index)}"
        )
    low = spec.get("min")
    if low is not None:
        below = numbers < low
        if below.any():
            examples = ", ".join(f"{v:g}" for v in numbers[below].head(3))
            raise InputError(
                f"{path}: column '{column}' has values below {low:g} (negative amounts or ages "
                f"are not valid): {examples} at line(s) {_rows(numbers[below].index)}"
            )
    return numbers.astype(float)


def typed_frame(
    frame: pd.DataFrame, columns: Mapping[str, Mapping[str, Any]], path: str | Path
) -> pd.DataFrame:
    """Convert the canonical columns to their kinds (numeric, category, id, date kept as text)."""
    out = frame.copy()
    for column, spec in columns.items():
        if column not in out.columns:
            continue
        kind = spec.get("kind", "numeric")
        if kind == "numeric":
            out[column] = to_numeric_column(out, column, spec, path)
        elif kind in ("category", "id"):
            if out[column].isna().all():
                raise InputError(
                    f"{path}: column '{column}' is entirely empty (expected {kind} values)"
                )
            out[column] = out[column].map(str, na_action="ignore").astype(object)
    return out


def content_hash(frame: pd.DataFrame) -> str:
    """A short hash of the frame's columns and values (for tags and reproducibility)."""
    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]
