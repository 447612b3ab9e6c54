"""Batch scoring: raw customer rows in the dataset's own format in, segments and personas out.

Rows go through the same reading, header aliases, typing and cleaning as the training data
(``segmentation.data``); a row that fails is written to ``<output>.rejected.csv`` with its
reason instead of being dropped silently.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf

from segmentation.data import dataset_module
from segmentation.data.reading import (
    CHUNK_ROWS,
    PARQUET_SUFFIXES,
    Table,
    map_columns,
    open_table,
    row_problems,
)
from segmentation.errors import InputError
from segmentation.promotion.aliases import ModelRef
from segmentation.tracking.local_registry import load_local
from segmentation.tracking.segmenter import ScoringModel

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
    dataset: DictConfig, rows: pd.DataFrame, lines: pd.Series, path: Path
) -> tuple[pd.DataFrame, pd.Index, list[str]]:
    """The ``dataset`` group's own typing and cleaning, exactly as in training, on rows that
    passed.

    Returns the cleaned rows, the file line of each and the rules that removed rows. Cleaning
    may drop rows and keep only the dataset's columns, so the id column carries the line number
    through it (the rules never read ids) and gets its values back afterwards.
    """
    if rows.empty:
        return rows, pd.Index([], dtype=int), []
    id_column = dataset.get("id_column")
    carrier = str(id_column) if id_column and id_column in rows.columns else _TRACK
    tracked = rows.assign(**{carrier: lines.astype(str)})
    loaded = dataset_module(dataset).prepare(tracked, dataset, str(path))
    frame = loaded.frame
    rules = [c["rule"] for c in loaded.cleaning if c.get("rows_out", 0) < c.get("rows_in", 0)]
    if carrier not in frame.columns:
        raise InputError(
            f"{path}: dataset '{dataset.name}' cleaning drops column '{carrier}', so scored "
            "rows cannot be matched to file lines (give the file its id column)"
        )
    kept = pd.Index(frame[carrier].astype(int))
    if carrier == id_column:
        frame[carrier] = rows.set_axis(lines)[carrier].loc[kept].to_numpy()
    return frame, kept, rules


def load_model(model: ModelRef) -> ScoringModel:
    """Load a registered segment model, refusing an unknown one in a line: from a local
    SQLite store's files when they are as expected (no MLflow start-up), else through MLflow."""
    return load_local(model.tracking_uri, model.uri) or load_with_mlflow(model)


def load_with_mlflow(model: ModelRef) -> ScoringModel:
    """The model ``model`` loaded by MLflow (any store, any model URI)."""
    pyfunc = load_pyfunc_model(model)
    names = pyfunc.metadata.get_input_schema().input_names()
    return ScoringModel(pyfunc.unwrap_python_model(), names)


def load_pyfunc_model(model: ModelRef) -> Any:
    """The pyfunc model ``model``, refusing an unknown one in a line."""
    # MLflow, its SQL store and the pyfunc loader: imported only on this route.
    import mlflow

    from segmentation.tracking.model import load_pyfunc
    from segmentation.tracking.store import connect

    connect(model.tracking_uri)  # an unreachable store refused in a line
    try:
        return load_pyfunc(model.uri, model.tracking_uri)
    except (mlflow.exceptions.MlflowException, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"model {model.uri}: cannot be loaded ({first}); promote one with `make promote`"
        ) from None


@dataclass
class Scored:
    """A file scored: its rows with ``segment``, ``persona`` and ``confidence``, the rows
    rejected (file line and reason), the rows as the model took them and the file line of
    each scored row."""

    model_uri: str
    model: ScoringModel
    scored: pd.DataFrame
    rejected: pd.DataFrame
    model_rows: pd.DataFrame
    lines: np.ndarray


def _open(
    dataset: DictConfig, input_path: Path, model_ref: ModelRef, chunk_rows: int
) -> tuple[Table, dict[str, Any], str, ScoringModel, list[str]]:
    """Open the file, refuse a missing required column (from its header), load the model and
    refuse a file without a column the model needs: all before any row is read."""
    table = open_table(input_path, chunk_rows, dataset.get("encoding"))
    columns = OmegaConf.to_container(dataset.columns, resolve=True)
    mapped, _ = map_columns(table.empty_frame(), columns, input_path)
    uri, model = model_ref.uri, load_model(model_ref)
    needed = model.input_names
    absent = [c for c in needed if c not in mapped.columns]
    if absent:
        raise InputError(
            f"{input_path}: column(s) {absent} needed by model {uri} not found; "
            f"columns found: {table.columns}"
        )
    return table, columns, uri, model, needed


def _score(
    dataset: DictConfig,
    model: ScoringModel,
    raw: pd.DataFrame,
    columns: dict[str, Any],
    needed: list[str],
    input_path: Path,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Score rows of the file (indexed by their position in it): the scored rows, the rows
    rejected (file line and reason first), the rows as the model took them and the scored
    rows' file lines."""
    mapped, _ = map_columns(raw, columns, input_path)
    lines = pd.Series(raw.index + 2, index=raw.index)  # line 1 is the header
    # A value the training data's cleaning filled (a missing Income) gets the figure training
    # used, kept in the model, as the model itself does on every other route.
    impute = model.segmenter.inputs.get("impute") or {}
    mapped = mapped.assign(
        **{c: mapped[c].fillna(str(v)) for c, v in impute.items() if c in mapped.columns}
    )
    numbers: dict[str, pd.Series] = {}
    reasons = row_problems(mapped, columns, numbers)
    ok = reasons == ""
    every = bool(ok.all())
    # The dataset's own typing and cleaning, exactly as in training, on the rows that passed,
    # their numbers as the row checks parsed them (the typing gives the same numbers again).
    typed = mapped.assign(**numbers)
    prepared, kept, rules = clean_rows(
        dataset, typed if every else typed.loc[ok], lines if every else lines[ok], input_path
    )
    dropped = ok & ~lines.isin(kept)
    reasons[dropped] = f"removed by the dataset's cleaning rule(s): {', '.join(rules) or '?'}"
    bad = reasons != ""
    rejected = raw.loc[bad].copy()
    rejected.insert(0, LINE, lines[bad].astype("int64"))
    rejected.insert(1, REASON, reasons[bad].astype(object))
    model_rows = prepared[needed].reset_index(drop=True)
    # The model's own predict: the rows are checked above, as MLflow's per-value input check
    # (every cell of a column of any type) would check them again.
    scored = (
        model.segmenter.segment(model_rows)
        if len(prepared)
        else pd.DataFrame({"segment": [], "persona": [], "confidence": []})
    )
    if kept.is_monotonic_increasing:  # the cleaning keeps the rows' order: a mask takes them
        out = raw.loc[ok & ~dropped] if len(kept) < len(raw) else raw
        out_lines = out.index.to_numpy() + 2
        out = out.reset_index(drop=True)
    else:
        out = raw.set_index(lines).loc[kept].reset_index(drop=True)
        out_lines = kept.to_numpy()
    out["segment"] = scored["segment"].to_numpy().astype("int64")
    out["persona"] = pd.array(scored["persona"].to_numpy(), dtype="str")
    out["confidence"] = scored["confidence"].to_numpy().astype("float64")
    return out, rejected, model_rows, out_lines


def score_rows(dataset: DictConfig, model_ref: ModelRef, input_path: str | Path) -> Scored:
    """Read ``input_path`` as training reads the ``dataset`` group's file, and score the rows
    that pass with the model, all in memory (see :func:`score_file` for files of any size)."""
    input_path = Path(input_path)
    table, columns, uri, model, needed = _open(dataset, input_path, model_ref, CHUNK_ROWS)
    chunks = list(table.chunks())
    raw = pd.concat(chunks) if chunks else table.empty_frame()
    out, rejected, model_rows, lines = _score(dataset, model, raw, columns, needed, input_path)
    return Scored(uri, model, out, rejected, model_rows, lines)


def score_file(
    dataset: DictConfig,
    model_ref: ModelRef,
    input_path: str | Path,
    output_path: str | Path,
    chunk_rows: int = CHUNK_ROWS,
) -> PredictResult:
    """Score ``input_path`` into ``output_path`` chunk by chunk (memory does not grow with the
    file): the input's columns, ``segment``, ``persona`` and ``confidence``, as Parquet when
    the output ends in ``.parquet`` or ``.pq``, else CSV; rejected rows (file line, reason,
    the row) into ``<output>.rejected.csv``. Both files appear only once every row is done:
    a file refused half-way leaves what was there before."""
    input_path, output_path = Path(input_path), Path(output_path)
    check_output_file(input_path, output_path)
    reuse_arrow_memory()
    table, columns, uri, model, needed = _open(dataset, input_path, model_ref, chunk_rows)
    rejected_path = rejected_list(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    counts: dict[int, int] = {}
    scored_rows = 0
    reasons: list[pd.DataFrame] = []
    header = table.empty_frame()
    with (
        ChunkWriter(output_path) as out_writer,
        ChunkWriter(rejected_path, parquet=False) as rejected_writer,
        _progress(table) as progress,
    ):
        for raw in table.chunks():
            out, rejected, _, _ = _score(dataset, model, raw, columns, needed, input_path)
            out_writer.write(out)
            scored_rows += len(out)
            for segment, n in out["segment"].value_counts().items():
                counts[int(segment)] = counts.get(int(segment), 0) + int(n)
            if len(rejected):
                rejected_writer.write(rejected)
                reasons.append(rejected[[LINE, REASON]])
            progress(table.done_bytes())
        if not out_writer.rows_written:  # no row scored: the columns alone
            out_writer.write(
                header.assign(
                    segment=pd.Series([], dtype="int64"),
                    persona=pd.Series([], dtype="str"),
                    confidence=pd.Series([], dtype="float64"),
                )
            )
        out_writer.commit()
        if reasons:
            rejected_writer.commit()
        else:
            rejected_path.unlink(missing_ok=True)  # a stale list from an earlier run would mislead
    rejected_all = (
        pd.concat(reasons, ignore_index=True)
        if reasons
        else pd.DataFrame({LINE: pd.Series([], dtype="int64"), REASON: pd.Series([], dtype=object)})
    )
    return PredictResult(
        model_uri=uri,
        output=output_path,
        scored=scored_rows,
        rejected=rejected_all,
        rejected_path=rejected_path if reasons else None,
        segments=dict(sorted(counts.items())),
    )


# Output names that promise a format scoring does not write (compressed, a workbook).
NOT_WRITTEN = {".gz", ".bz2", ".zip", ".xz", ".zst", ".xlsx", ".xls"}


def rejected_list(output: Path) -> Path:
    """Where the rejected rows of ``output`` go: ``<output>.rejected.csv``."""
    return output.with_name(output.name + ".rejected.csv")


def check_output_file(input_path: Path, output_path: Path) -> None:
    """Refuse, before anything is read or written, an output (or its rejected list) that would
    replace the file being scored (a customer export stays as it was), that is a folder, or
    that cannot be made because a file stands where its folder would be."""
    for path in (output_path, rejected_list(output_path)):
        if same_file(path, input_path):
            raise InputError(
                f"{path}: is the input file; scoring never writes over its input "
                "(give another OUTPUT)"
            )
        if path.is_dir():
            raise InputError(
                f"{path}: is a folder (expected an output file, e.g. segments.csv or "
                "segments.parquet)"
            )
    if output_path.suffix.lower() in NOT_WRITTEN:
        raise InputError(
            f"{output_path}: scores are written as plain CSV or Parquet, not as its name says "
            "(expected a name ending in .csv, .parquet or .pq)"
        )
    refuse_file_in_the_way(output_path)


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file or folder: the same once links are resolved, or two
    hard links to it."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def refuse_file_in_the_way(path: Path) -> None:
    """Refuse ``path`` when its nearest existing ancestor is a file (its folder cannot be
    made)."""
    for parent in path.resolve().parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{path}: cannot be written: {parent} is a file, not a folder")
            return


def reuse_arrow_memory() -> None:
    """Make pyarrow's jemalloc pool the process's default where the build has it. Scoring
    allocates and frees every chunk's buffers in turn: jemalloc keeps freed pages for the
    next chunk, where the default pool of the Linux wheels (mimalloc) hands them back to the
    system and the next chunk faults them in again (system time)."""
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a build without jemalloc keeps its default
        return
    pa.set_memory_pool(pool)


# Files above this size get a progress bar (on a terminal).
PROGRESS_ABOVE_BYTES = 50_000_000


@contextmanager
def _progress(table: Table) -> Iterator[Callable[[int], None]]:
    """A progress bar over the file's bytes on stderr, for a long file on a terminal."""
    if table.size < PROGRESS_ABOVE_BYTES or not sys.stderr.isatty():
        yield lambda done: None
        return
    from tqdm import tqdm  # only long files on a terminal draw one

    with tqdm(
        total=table.size, unit="B", unit_scale=True, desc=f"scoring {table.path.name}"
    ) as bar:
        yield lambda done: bar.update(max(done - bar.n, 0))


class ChunkWriter:
    """Writes a frame chunk by chunk into a temporary file beside ``path``, moved onto
    ``path`` by :meth:`commit` (removed when the block ends without it). Parquet for a
    ``.parquet``/``.pq`` path (unless ``parquet=False``), else CSV as ``DataFrame.to_csv``
    writes it."""

    def __init__(self, path: Path, parquet: bool | None = None) -> None:
        self.path = path
        self.parquet = path.suffix.lower() in PARQUET_SUFFIXES if parquet is None else parquet
        self.partial = path.with_name(f".{path.name}.partial")
        self.rows_written = 0
        self._fh: Any = None
        self._parquet: Any = None
        self._schema: Any = None

    def __enter__(self) -> ChunkWriter:
        return self

    def write(self, frame: pd.DataFrame) -> None:
        if self._fh is None:
            self._fh = open(self.partial, "wb")  # noqa: SIM115 - closed by commit or __exit__
            if not self.parquet:
                self._fh.write(frame.head(0).to_csv(index=False).encode())
        if self.parquet:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._schema = table.schema
                self._parquet = pq.ParquetWriter(self._fh, self._schema)
            self._parquet.write_table(table.cast(self._schema))
        else:
            self._fh.write(_csv_bytes(frame))
        self.rows_written += len(frame)

    def commit(self) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if self._fh is not None:
            self._fh.close()
            self.partial.replace(self.path)

    def __exit__(self, *exc: object) -> None:
        if self._parquet is not None and self._fh is not None and not self._fh.closed:
            self._parquet.close()
        if self._fh is not None and not self._fh.closed:
            self._fh.close()
        self.partial.unlink(missing_ok=True)


# A text scalar of the type the CSV fields are built in.
_text = functools.partial(pa.scalar, type=pa.large_string())
# A field with one of these is quoted (``DataFrame.to_csv``'s minimal quoting).
_NEEDS_QUOTES = (",", '"', "\r", "\n")


def float_text(values: pd.Series) -> pa.Array:
    """A float64 column as ``values.astype("str")`` gives it (Python's shortest ``repr`` of
    each value, missing kept missing), cast by Arrow without a Python call per value.

    Arrow's cast writes the same shortest digits as ``repr`` and, for 1e-4 <= |v| < 1e10, in
    the same positional form, but whole numbers without ``.0``; the values outside that range
    (where either writes an exponent) take ``repr``.
    """
    numbers = values.to_numpy(dtype="float64", na_value=np.nan)
    text = pc.cast(pa.array(numbers, from_pandas=True), pa.large_string())
    size = np.abs(numbers)
    positional = (size < 1e10) & ((size >= 1e-4) | (numbers == 0))
    whole = positional & (numbers == np.trunc(numbers))
    if whole.any():
        suffixed = pc.binary_join_element_wise(text, _text(".0"), _text(""))
        text = pc.if_else(pa.array(whole), suffixed, text)
    other = ~positional & ~np.isnan(numbers)
    if other.any():
        spelled = pa.array([repr(v) for v in numbers[other].tolist()], type=pa.large_string())
        text = pc.replace_with_mask(text, pa.array(other), spelled)
    return text


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    """The rows as ``DataFrame.to_csv`` writes them (no header), built column by column in
    pyarrow: floats as pandas formats them, missing values empty, a field quoted only when it
    holds a comma, a quote or a line end."""
    if frame.empty:
        return b""
    fields, quoting = [], False
    for name in frame.columns:
        values = frame[name]
        if values.dtype == np.float64:
            array = float_text(values)
        else:
            if pd.api.types.is_float_dtype(values):
                values = values.astype("str")
            array = pa.array(values, from_pandas=True)
            if isinstance(array, pa.ChunkedArray):
                array = array.combine_chunks()
            array = array.cast(pa.large_string())
        # One scan of the column's bytes finds the (usual) column with nothing to quote.
        data = array.buffers()[2]
        data = data.to_pybytes() if data is not None else b""
        if any(mark.encode() in data for mark in _NEEDS_QUOTES):
            needs = functools.reduce(
                pc.or_, (pc.match_substring(array, mark) for mark in _NEEDS_QUOTES)
            )
            quoted = pc.binary_join_element_wise(
                _text('"'), pc.replace_substring(array, '"', '""'), _text('"'), _text("")
            )
            array = pc.if_else(needs, quoted, array)
            quoting = True
        fields.append(array)
    if not quoting:
        # Nothing to quote: Arrow's CSV writer joins the fields (nulls empty) in one pass.
        table = pa.Table.from_arrays(fields, names=[str(i) for i in range(len(fields))])
        sink = pa.BufferOutputStream()
        options = pcsv.WriteOptions(
            include_header=False, quoting_style="none", batch_size=max(len(frame), 1)
        )
        pcsv.write_csv(table, sink, options)
        return sink.getvalue().to_pybytes()
    options = pc.JoinOptions(null_handling="replace", null_replacement="")
    rows = pc.binary_join_element_wise(*fields, _text(","), options=options)
    lines = pc.binary_join_element_wise(rows, _text(""), _text("\n"))
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
    start, end = offsets[lines.offset], offsets[lines.offset + len(lines)]
    return lines.buffers()[2].to_pybytes()[start:end]


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
