"""Batch scoring: raw customer rows in the dataset's own format in, segments and personas out.

Rows go through the same reading, header aliases, typing and cleaning as the training data
(``segmentation.data``); a row that fails is written to ``<output>.rejected.csv`` with its
reason instead of being dropped silently.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from segmentation.data import dataset_module
from segmentation.data.reading import map_columns, read_table, row_problems
from segmentation.errors import InputError
from segmentation.promotion.promote import champion_uri
from segmentation.tracking.store import connect

LINE = "line"
REASON = "reason"
# Carries each row's file line through the dataset's cleaning when the file has no id column.
_TRACK = "__segmentation_line__"
SHOWN_REJECTIONS = 20


@dataclass
class PredictResult:
    """What a batch scoring wrote."""

    model_uri: str
    output: Path
    scored: int
    rejected: pd.DataFrame
    rejected_path: Path | None
    segments: dict[int, int] = field(default_factory=dict)


def clean_rows(
    cfg: DictConfig, rows: pd.DataFrame, lines: pd.Series, path: Path
) -> tuple[pd.DataFrame, pd.Index, list[str]]:
    """The dataset's own typing and cleaning, exactly as in training, on rows that passed.

    Returns the cleaned rows, the file line of each and the rules that removed rows. Cleaning
    may drop rows and keep only the dataset's columns, so the id column carries the line number
    through it (the rules never read ids) and gets its values back afterwards.
    """
    if rows.empty:
        return rows, pd.Index([], dtype=int), []
    id_column = cfg.dataset.get("id_column")
    carrier = str(id_column) if id_column and id_column in rows.columns else _TRACK
    tracked = rows.copy()
    tracked[carrier] = lines.astype(str)
    loaded = dataset_module(cfg.dataset).prepare(tracked, cfg.dataset, str(path))
    frame = loaded.frame
    rules = [c["rule"] for c in loaded.cleaning if c.get("rows_out", 0) < c.get("rows_in", 0)]
    if carrier not in frame.columns:
        raise InputError(
            f"{path}: dataset '{cfg.dataset.name}' cleaning drops column '{carrier}', so scored "
            "rows cannot be matched to file lines (give the file its id column)"
        )
    kept = pd.Index(frame[carrier].astype(int))
    frame = frame.copy()
    if carrier == id_column:
        frame[carrier] = rows.set_axis(lines)[carrier].loc[kept].to_numpy()
    return frame, kept, rules


def load_model(cfg: DictConfig, model_uri: str | None) -> tuple[str, Any]:
    """Load a pyfunc model (default: the config's champion), refusing an unknown one in a line."""
    uri = model_uri or champion_uri(cfg)
    connect(str(cfg.paths.tracking_uri))
    try:
        return uri, mlflow.pyfunc.load_model(uri)
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"model {uri}: cannot be loaded ({first}); promote one with `make promote`"
        ) from None


@dataclass
class Scored:
    """A file scored: its rows with ``segment``, ``persona`` and ``confidence``, the rows
    rejected (file line and reason), and the rows as the model took them."""

    model_uri: str
    model: Any
    scored: pd.DataFrame
    rejected: pd.DataFrame
    model_rows: pd.DataFrame


def score_rows(cfg: DictConfig, input_path: str | Path, model_uri: str | None = None) -> Scored:
    """Read ``input_path`` as training reads a file, and score the rows that pass with the
    model (default: the config's champion)."""
    input_path = Path(input_path)
    columns = OmegaConf.to_container(cfg.dataset.columns, resolve=True)
    raw, _ = read_table(input_path)
    mapped, _ = map_columns(raw, columns, input_path)  # a missing required column stops here
    uri, model = load_model(cfg, model_uri)
    needed = model.metadata.get_input_schema().input_names()
    absent = [c for c in needed if c not in mapped.columns]
    if absent:
        raise InputError(
            f"{input_path}: column(s) {absent} needed by model {uri} not found; "
            f"columns found: {list(raw.columns)}"
        )
    lines = pd.Series(raw.index + 2, index=raw.index)  # line 1 is the header
    # A value the training data's cleaning filled (a missing Income) gets the figure training
    # used, kept in the model, as the model itself does on every other route.
    impute = model.unwrap_python_model().inputs.get("impute") or {}
    mapped = mapped.assign(
        **{c: mapped[c].fillna(str(v)) for c, v in impute.items() if c in mapped.columns}
    )
    reasons = row_problems(mapped, columns)
    ok = reasons == ""
    # The dataset's own typing and cleaning, exactly as in training, on the rows that passed.
    prepared, kept, rules = clean_rows(cfg, mapped.loc[ok], lines[ok], input_path)
    dropped = ok & ~lines.isin(kept)
    reasons[dropped] = f"removed by the dataset's cleaning rule(s): {', '.join(rules) or '?'}"
    bad = reasons != ""
    rejected = raw.loc[bad].copy()
    rejected.insert(0, LINE, lines[bad])
    rejected.insert(1, REASON, reasons[bad])
    scored = pd.DataFrame(columns=["segment", "persona", "confidence"])
    model_rows = prepared[needed].reset_index(drop=True)
    if len(prepared):
        scored = model.predict(model_rows)
    by_line = raw.set_index(lines)
    out = by_line.loc[kept].reset_index(drop=True)
    out["segment"] = scored["segment"].to_numpy()
    out["persona"] = scored["persona"].to_numpy()
    out["confidence"] = scored["confidence"].to_numpy()
    return Scored(uri, model, out, rejected, model_rows)


def score_file(
    cfg: DictConfig, input_path: str | Path, output_path: str | Path, model_uri: str | None = None
) -> PredictResult:
    """Score ``input_path`` into ``output_path``: the input's columns, ``segment``, ``persona``
    and ``confidence``; rejected rows into ``<output>.rejected.csv``."""
    output_path = Path(output_path)
    result = score_rows(cfg, input_path, model_uri)
    out, rejected, uri = result.scored, result.rejected, result.model_uri
    output_path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(output_path, index=False)
    rejected_path = output_path.with_name(output_path.name + ".rejected.csv")
    if len(rejected):
        rejected.to_csv(rejected_path, index=False)
    else:
        rejected_path.unlink(missing_ok=True)  # a stale list from an earlier run would mislead
    counts = out["segment"].value_counts().sort_index()
    return PredictResult(
        model_uri=uri,
        output=output_path,
        scored=len(out),
        rejected=rejected,
        rejected_path=rejected_path if len(rejected) else None,
        segments={int(k): int(v) for k, v in counts.items()},
    )


def report(result: PredictResult) -> None:
    """Print the summary to stdout and each rejected row (first few) to stderr."""
    for row in result.rejected.head(SHOWN_REJECTIONS).itertuples(index=False):
        print(f"rejected line {getattr(row, LINE)}: {getattr(row, REASON)}", file=sys.stderr)
    more = len(result.rejected) - SHOWN_REJECTIONS
    if more > 0:
        print(f"... and {more} more rejected row(s)", file=sys.stderr)
    listed = f"; list in {result.rejected_path}" if result.rejected_path else ""
    print(
        f"Scored {result.scored} row(s) with {result.model_uri} into {result.output}; "
        f"rejected {len(result.rejected)}{listed}. Segments: {result.segments}",
        flush=True,
    )
