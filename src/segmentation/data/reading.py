"""Reading customer files as they really come: CSV or Parquet, any common delimiter, BOM,
CRLF, quoted fields, header variants. Every problem is one line naming file, column and rows."""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import itertools
import mmap
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from segmentation.config import dataset_columns, presets_of_dataset
from segmentation.errors import InputError
from segmentation.locations import refuse_no_file

PARQUET_SUFFIXES = {".parquet", ".pq"}
DELIMITERS = ("\t", ",", ";", "|")
_DELIMITER_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}


def normalise_header(name: str) -> str:
    """Fold case, spacing and punctuation: ``Annual Income (k$)`` -> ``annualincomek``."""
    return re.sub(r"[^0-9a-z]", "", str(name).lower())


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (read in blocks: files may be larger than memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sniff_delimiter(header_line: str) -> str:
    """Pick the delimiter that splits the header line (outside quotes) into most fields."""
    best, best_fields = ",", 1
    for delim in DELIMITERS:
        fields = len(next(csv.reader([header_line], delimiter=delim)))
        if fields > best_fields:
            best, best_fields = delim, fields
    return best


def read_table(
    path: str | Path, encoding: str | None = None
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read a CSV (delimiter detected; ``encoding`` as :func:`open_table` takes it) or Parquet
    file with every value as text.

    Returns the frame and a description of what was detected (format, delimiter, BOM,
    encoding).
    """
    table = open_table(path, encoding=encoding)
    chunks = list(table.chunks())
    frame = pd.concat(chunks) if chunks else table.empty_frame()
    return frame, table.detected


# Rows a chunk of a streamed file holds (about 10-30 MB of retail rows as text).
CHUNK_ROWS = 100_000
HEAD_BYTES = 1 << 16


class Table:
    """A customer file opened for reading in chunks of rows, every value as stripped text
    (``str`` dtype, missing as NaN), each chunk indexed by its row's place in the file:
    line = index + 2 (a Parquet row's line is its position + 2). CSV rows with no value at all
    (blank lines, bare delimiters) are left out, and blank lines before the header skipped.

    Open it with :func:`open_table`, which refuses a missing, empty or unreadable file.
    """

    def __init__(
        self,
        path: Path,
        detected: dict[str, Any],
        columns: list[str],
        chunk_rows: int,
        csv_options: dict[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.detected = detected
        self.columns = columns
        self.chunk_rows = chunk_rows
        self.csv_options = csv_options or {}
        self.size = path.stat().st_size
        self._fh: Any = None
        self._parquet: Any = None

    def empty_frame(self) -> pd.DataFrame:
        """The file's columns without rows."""
        return pd.DataFrame({c: pd.Series([], dtype="str") for c in self.columns})

    def done_bytes(self) -> int:
        """Bytes of the file read so far (for a progress bar)."""
        if self._fh is not None and not self._fh.closed:
            return min(self._fh.tell(), self.size)
        return self.size if self._fh is not None else 0

    def chunks(self) -> Iterator[pd.DataFrame]:
        """The rows, chunk by chunk (about ``chunk_rows`` each)."""
        if self.detected["format"] == "parquet":
            yield from self._parquet_chunks()
        else:
            yield from self._csv_chunks()

    def _file_line(self, record: int) -> int:
        """The file line on which CSV record ``record`` (counted from the file's first line,
        as the parser counts them) starts: later by the line ends inside the quoted values
        before it. The file is read again, on the error path only."""
        if not self.csv_options["quoted"] or record < 2:
            return record
        with pa.input_stream(str(self.path), compression=self.csv_options["compression"]) as source:
            text = io.TextIOWrapper(
                source, encoding=self.csv_options["encoding"], errors="replace", newline=""
            )
            rows = csv.reader(text, delimiter=self.csv_options["delimiter"])
            try:
                for _ in itertools.islice(rows, record - 1):
                    pass
            except csv.Error:  # a field past the csv module's size limit: the count as it is
                return record
            return rows.line_num + 1

    def _parquet_chunks(self) -> Iterator[pd.DataFrame]:
        start = 0
        with open(self.path, "rb") as fh:
            self._fh = fh
            parquet = pq.ParquetFile(fh)
            try:
                for batch in parquet.iter_batches(batch_size=self.chunk_rows):
                    batch, done = text_batch(batch)
                    frame = batch.to_pandas()
                    frame.index = pd.RangeIndex(start, start + len(frame))
                    start += len(frame)
                    yield _text_frame(frame, done).set_axis(self.columns, axis=1)
            except (pa.ArrowException, OSError) as exc:
                raise InputError(f"{self.path}: not a readable Parquet file ({exc})") from None

    def _csv_chunks(self) -> Iterator[pd.DataFrame]:
        if self.csv_options["header_only"]:
            return
        delimiter, names = self.csv_options["delimiter"], self.csv_options["header"]
        short: dict[int, list[str]] = {}  # rows with fewer fields, by record number: padded
        breaks: dict[int, int] = {}  # line ends inside a short row's quoted values
        problem: list[tuple[int, int, int]] = []  # a row with more fields: its record number

        def invalid(row: Any) -> str:
            if row.actual_columns < row.expected_columns and row.number is not None:
                fields = next(csv.reader([row.text], delimiter=delimiter), [])
                short[int(row.number)] = fields + [""] * (row.expected_columns - len(fields))
                breaks[int(row.number)] = row.text.count("\n")
                return "skip"
            problem.append((row.number or 0, row.expected_columns, row.actual_columns))
            return "error"

        # Records are counted from the file's first line (blank lines before the header too):
        # the first row after the header is record ``skip + 2``.
        skip = self.csv_options["skip_rows"]
        start, before = skip, 0
        undecodable: list[BaseException] = []  # a bad row pyarrow could not hand to ``invalid``
        with open(self.path, "rb") as fh:
            self._fh = fh  # the progress is the compressed file's: read through it
            compression = self.csv_options["compression"]
            try:
                with _handler_errors(invalid, undecodable):
                    reader = pcsv.open_csv(
                        pa.CompressedInputStream(fh, compression) if compression else fh,
                        read_options=pcsv.ReadOptions(
                            use_threads=False,
                            block_size=self.csv_options["block_size"],
                            encoding=self.csv_options["encoding"],
                            skip_rows=skip,
                        ),
                        # Blank lines are records too (dropped below as empty rows), so that
                        # every later record keeps its file line.
                        parse_options=pcsv.ParseOptions(
                            delimiter=delimiter,
                            newlines_in_values=True,
                            ignore_empty_lines=False,
                            invalid_row_handler=invalid,
                        ),
                        convert_options=pcsv.ConvertOptions(
                            column_types=dict.fromkeys(names, pa.large_string()),
                            strings_can_be_null=False,
                            quoted_strings_can_be_null=False,
                        ),
                    )
                for batch in _batches(reader, invalid, undecodable):
                    # Line ends inside quoted values: a file without quotes has none.
                    newlines = (
                        _line_ends(batch)
                        if self.csv_options["quoted"]
                        else np.zeros(batch.num_rows, dtype="int64")
                    )
                    # Every column is text: stripped in the batch, before pandas sees it.
                    frame = text_batch(batch)[0].to_pandas()
                    frame.columns = self.columns
                    frame, start, before = _place(
                        frame, start, short, self.columns, newlines, breaks, before
                    )
                    yield _without_empty_rows(frame)
                if short:  # short rows after the last full one
                    frame, _, _ = _place(
                        self.empty_frame(), start, short, self.columns, np.zeros(0), breaks, before
                    )
                    yield _without_empty_rows(frame)
            except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
                if ("invalid UTF8" in str(exc) or undecodable) and self.csv_options[
                    "encoding"
                ] == "utf-8":
                    refuse_first_not_utf8(self.path, compression, delimiter, self.columns)
                first = str(exc).strip().splitlines()[0]
                if problem:
                    record, expected, saw = problem[0]
                    line = self._file_line(record)
                    first = f"expected {expected} fields in line {line}, saw {saw}"
                raise InputError(
                    f"{self.path}: cannot parse as a delimited file ({first})"
                ) from None


@contextmanager
def _handler_errors(handler: Callable[..., Any], seen: list[BaseException]) -> Iterator[None]:
    """Note, instead of printing, the errors raised around the CSV reader's invalid-row
    ``handler``: pyarrow decodes a bad row's text before calling it, and a row that is also
    not UTF-8 fails there ("Exception ignored ... UnicodeDecodeError"); the reader then stops
    with a field-count error and the file is refused for its bytes instead."""
    previous = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        if unraisable.object is handler:
            seen.append(unraisable.exc_value)
        else:
            previous(unraisable)

    sys.unraisablehook = hook
    try:
        yield
    finally:
        sys.unraisablehook = previous


def _batches(
    reader: pcsv.CSVStreamingReader, handler: Callable[..., Any], seen: list[BaseException]
) -> Iterator[pa.RecordBatch]:
    """``reader``'s batches, each read under :func:`_handler_errors` (not across the yields)."""
    while True:
        with _handler_errors(handler, seen):
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
        yield batch


def _place(
    frame: pd.DataFrame,
    start: int,
    short: dict[int, list[str]],
    columns: list[str],
    newlines: np.ndarray,
    breaks: dict[int, int],
    before: int,
) -> tuple[pd.DataFrame, int, int]:
    """Index a parsed batch (stripped text) by file line - 2, putting back the rows with
    fewer fields (by record number, padded, stripped) that the parser set aside, in their
    places. The parser reports a short row before the batch that holds it, and maybe rows of
    the next batch.

    Records are counted from ``start`` (blank lines included); a record's line moves down by
    the line ends inside quoted values of the records before it: ``before`` of earlier
    batches, ``newlines`` per row of this batch, ``breaks`` per short row. Returns the frame,
    the next record and the line ends so far."""
    if short:
        positions, padded, position = [], [], start
        while len(positions) < len(frame) or position + 2 in short:
            if position + 2 in short:
                padded.append(position)
            else:
                positions.append(position)
            position += 1
        frame.index = pd.Index(positions, dtype="int64")
        extra = pd.DataFrame(
            [short.pop(p + 2) for p in padded], index=padded, columns=columns, dtype="str"
        )
        frame = pd.concat([frame, _text_frame(extra)]).sort_index()
        ends = pd.concat(
            [
                pd.Series(newlines, index=positions, dtype="int64"),
                pd.Series([breaks.pop(p + 2, 0) for p in padded], index=padded, dtype="int64"),
            ]
        ).sort_index()
        counts = ends.to_numpy()
        start = position
    else:
        frame.index = pd.RangeIndex(start, start + len(frame))
        counts = newlines
        start += len(frame)
    if before or counts.any():
        frame.index = frame.index + (before + np.cumsum(counts) - counts)
        before += int(counts.sum())
    return frame, start, before


def _line_ends(batch: pa.RecordBatch) -> np.ndarray:
    """Per row of a parsed batch, the line ends inside its (quoted) values."""
    counts = None
    for column in batch.columns:
        found = pc.count_substring(column, "\n")
        counts = found if counts is None else pc.add(counts, found)
    if counts is None:
        return np.zeros(batch.num_rows, dtype="int64")
    return counts.to_numpy(zero_copy_only=False).astype("int64")


def _without_empty_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame without rows whose every cell is empty: blank lines, whitespace-only lines
    and a spreadsheet's rows of bare delimiters are not customers (pandas skips the first
    two as well)."""
    if frame.empty or not frame.columns.size:
        return frame
    candidates = frame.iloc[:, 0].isna()
    if not candidates.any():
        return frame
    empty = frame.loc[candidates].isna().all(axis=1)
    return frame.drop(index=empty.index[empty]) if empty.any() else frame


def open_table(
    path: str | Path, chunk_rows: int = CHUNK_ROWS, encoding: str | None = None
) -> Table:
    """Open a CSV (delimiter, byte-order mark and line ends detected) or Parquet customer
    file for reading in chunks; a missing, empty or unreadable file is refused in one line.

    A CSV is read as ``encoding`` (a Python codec name, e.g. ``cp1252``) when given, else as
    its byte-order mark says (UTF-8 or UTF-16), else as UTF-8: a file that is not UTF-8 is
    refused naming the first line and column that is not."""
    path = Path(path)
    refuse_no_file(path)
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (expected a header line and customer rows)")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            names = [str(n) for n in pq.read_schema(path).names]
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
        return Table(path, {"format": "parquet"}, names, chunk_rows)
    head, compression = read_head(path)
    encoding = file_encoding(head, encoding)
    found = csv_head(path, head, encoding)
    # Bytes per row, from the rows in the head (the last one may be cut): the block that
    # holds about chunk_rows rows.
    per_row = len(head) / max(len(found.lines) - 1, 1)
    detected = {
        "format": "csv",
        "delimiter": _DELIMITER_NAMES.get(found.delimiter, found.delimiter),
        "bom": head.startswith(_BOMS),
        "crlf": "\r\n" in found.text[:10000],
        "encoding": encoding,
    }
    if compression:
        detected["compression"] = compression
    if found.excel_sep:
        detected["excel_sep_line"] = True
    options = {
        "encoding": encoding,
        "compression": compression,
        # A compressed file cannot be searched for quotes without reading it: counted.
        "quoted": bool(compression) or _holds_quote(path),
        "delimiter": found.delimiter,
        "header": found.header,
        "skip_rows": found.skip_rows,
        # The header alone without a line end: no rows (Arrow cannot read such a file).
        "header_only": len(head) < HEAD_BYTES and len(found.lines) == 1,
        "block_size": int(min(max(per_row * chunk_rows, HEAD_BYTES), 1 << 30)),
    }
    return Table(path, detected, column_names(found.header), chunk_rows, options)


class CsvHead(NamedTuple):
    """What a CSV's head says of the file."""

    text: str  # the head's text
    lines: list[str]  # its non-blank lines from the header on
    delimiter: str
    header: list[str]  # the header's fields
    skip_rows: int  # the lines before the header: blank ones, Excel's sep= line
    excel_sep: bool  # whether an Excel sep= line named the delimiter


# The first line of a file written for Excel, naming its delimiter: sep=; (or "sep=;"; after a
# spreadsheet took it for a row and saved it again, sep=;;;; with the row's empty cells).
_EXCEL_SEP = re.compile(r'"?sep=([^"\r\n])"?\1*', re.IGNORECASE)


def csv_head(path: Path, head: bytes, encoding: str) -> CsvHead:
    """A CSV's head read as ``encoding``. The header is the first non-blank line after an
    Excel ``sep=`` line, if any; the delimiter is the one that line names, else the one that
    splits the header into most fields. A head without a header is refused as empty, a UTF-8
    head with a byte that is not as :func:`refuse_not_utf8` refuses it."""
    text, rows = _head_rows(head, encoding)
    skip, sep = _preamble(rows)
    lines = [line for line in rows[skip:] if line.strip()]
    if not lines:
        raise InputError(f"{path}: file is empty (expected a header line and customer rows)")
    delimiter = sep[1] if sep else sniff_delimiter(lines[0])
    header = next(csv.reader([lines[0]], delimiter=delimiter))
    if encoding == "utf-8":
        refuse_not_utf8(path, head, delimiter, column_names(header), final=False)
    return CsvHead(text, lines, delimiter, header, skip, bool(sep))


def has_excel_sep_line(head: bytes, encoding: str) -> bool:
    """Whether a CSV's head (decoded as ``encoding``) starts with Excel's sep= line."""
    return _preamble(_head_rows(head, encoding)[1])[1] is not None


def _head_rows(head: bytes, encoding: str) -> tuple[str, list[str]]:
    """A CSV's head as text (without a byte-order mark) and its lines."""
    text = head.decode(encoding, errors="replace").lstrip("\ufeff")
    return text, re.split(r"\r\n|\r|\n", text)


def _preamble(rows: list[str]) -> tuple[int, re.Match[str] | None]:
    """The lines before the header (blank ones, Excel's sep= line) and that line's match."""
    skip = _blank(rows, 0)
    sep = _EXCEL_SEP.fullmatch(rows[skip]) if skip < len(rows) else None
    return (_blank(rows, skip + 1) if sep else skip), sep


def _blank(rows: list[str], start: int) -> int:
    """The first of ``rows`` from ``start`` on with a value (``len(rows)``: none has)."""
    return next((i for i in range(start, len(rows)) if rows[i].strip()), len(rows))


def _holds_quote(path: Path) -> bool:
    """Whether the file holds a double quote anywhere (a value may then span lines): one
    ``memchr`` over the mapped file."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return data.find(b'"') >= 0


# Byte-order marks: UTF-8's (skipped by the reader) and UTF-16's (Excel's "Unicode Text").
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def file_encoding(head: bytes, encoding: str | None = None) -> str:
    """The codec a CSV is read with (Python's name for it): ``encoding`` (the dataset's
    ``encoding`` setting) when given, else UTF-16 after its byte-order mark, else UTF-8."""
    if encoding:
        try:
            return codecs.lookup(encoding).name
        except LookupError:
            raise InputError(
                f"dataset.encoding={encoding!r}: unknown encoding (expected a Python codec "
                "name such as utf-8, cp1252 or latin-1)"
            ) from None
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    return "utf-8"


def refuse_not_utf8(
    path: Path,
    data: bytes,
    delimiter: str,
    columns: list[str],
    final: bool = True,
    first_line: int = 1,
) -> None:
    """Refuse ``data`` (the file's bytes from line ``first_line`` on) where it is not UTF-8:
    one line naming the file line, the column and the bytes, and what to do. With ``final``
    false the data may end inside a character (the head of a file)."""
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=final)
        return
    except UnicodeDecodeError as exc:
        start = exc.start
    line_start = data.rfind(b"\n", 0, start) + 1
    before = data[line_start:start].decode("utf-8", errors="replace")
    field = len(next(csv.reader([before], delimiter=delimiter), [""])) - 1
    column = columns[field] if 0 <= field < len(columns) else f"field {field + 1}"
    line = first_line + data.count(b"\n", 0, start)
    raise InputError(
        f"{path}: line {line}, column '{column}': not "
        f"UTF-8 text ({data[start : start + 4]!r}); give the file's encoding as "
        "dataset.encoding (cp1252 for a Windows Excel CSV) or save it as CSV UTF-8"
    )


def refuse_first_not_utf8(
    path: Path, compression: str | None, delimiter: str, columns: list[str]
) -> None:
    """Refuse the first line of the file (decompressed) that is not UTF-8, as
    :func:`refuse_not_utf8` does: read line by line, as a character never spans a line end."""
    with pa.input_stream(str(path), compression=compression) as source:
        for number, line in enumerate(io.BufferedReader(source), start=1):
            refuse_not_utf8(path, line, delimiter, columns, True, number)


def refuse_file_not_utf8(
    path: Path, compression: str | None, delimiter: str, columns: list[str]
) -> None:
    """Read the whole file (decompressed) and refuse it, as :func:`refuse_first_not_utf8`,
    where it is not UTF-8: for Spark, which reads such bytes as U+FFFD without a word."""
    with pa.input_stream(str(path), compression=compression) as source:
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while block := source.read(1 << 24):
                decoder.decode(block)
            decoder.decode(b"", final=True)
            return
        except UnicodeDecodeError:
            pass
    refuse_first_not_utf8(path, compression, delimiter, columns)


# What a file's first bytes say it is when it is no text: compressed text (read through
# Arrow's decompression), or something to refuse with what to do instead.
COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\x28\xb5\x2f\xfd": "zstd"}
NOT_CSV = {
    b"PK\x03\x04": "a ZIP archive or Excel workbook (.xlsx): save the sheet as CSV UTF-8, or "
    "unzip it",
    b"\xd0\xcf\x11\xe0": "an Excel 97-2003 workbook (.xls): save the sheet as CSV UTF-8",
    b"PAR1": "a Parquet file: give it a name ending in .parquet",
    b"\xfd7zXZ\x00": "xz-compressed: decompress it first",
}


def read_head(path: Path) -> tuple[bytes, str | None]:
    """The first bytes of a customer file's text (decompressed) and its compression; a file
    that is no CSV text (a workbook, an archive) is refused in one line saying what it is."""
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
        kind = next((what for magic, what in NOT_CSV.items() if head.startswith(magic)), None)
        if kind:
            raise InputError(f"{path}: {kind} (expected a CSV or Parquet customer file)")
        compression = next((c for magic, c in COMPRESSED.items() if head.startswith(magic)), None)
        if compression is None:
            return head, None
        fh.seek(0)
        try:
            return pa.CompressedInputStream(fh, compression).read(HEAD_BYTES), compression
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{path}: not a readable {compression} file ({exc})") from None


def column_names(header: list[str]) -> list[str]:
    """Header names as pandas names them (an empty one ``Unnamed: i``, a repeated one
    ``name.1``), stripped of spaces and a byte-order mark."""
    out: list[str] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        name = name.strip().strip("\ufeff").strip() or f"Unnamed: {i}"
        if name in seen:
            seen[name] += 1
            name = f"{name}.{seen[name]}"
        seen.setdefault(name, 0)
        out.append(name)
    return out


# Cells that mean "no value" once stripped.
MISSING_TEXT = ("", "nan", "NaN", "NA", "None")


_MISSING_ARRAY = pa.array(MISSING_TEXT, type=pa.large_string())


def text_batch(batch: pa.RecordBatch) -> tuple[pa.RecordBatch, set[int]]:
    """The batch with each text column as :func:`text_column` gives it (stripped, one of
    ``MISSING_TEXT`` as missing, as ``large_string``: pandas' ``str`` without a cast), and
    the positions of those columns; other columns are left to :func:`text_column`."""
    arrays, schema, done = [], batch.schema, set()
    for i, column in enumerate(batch.columns):
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            # pandas' str.strip on its Arrow-backed strings is this kernel.
            text = pc.utf8_trim_whitespace(column.cast(pa.large_string()))
            column = pc.if_else(pc.is_in(text, value_set=_MISSING_ARRAY), None, text)
            schema = schema.set(i, schema.field(i).with_type(pa.large_string()))
            done.add(i)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=schema), done


def _text_frame(frame: pd.DataFrame, done: set[int] | frozenset[int] = frozenset()) -> pd.DataFrame:
    """Every cell as stripped text (pandas' ``str`` dtype), missing as NaN; column by column,
    in pyarrow's string kernels (the columns at positions ``done`` already are)."""
    if len(done) == frame.shape[1]:
        return frame
    columns = {
        i: frame.iloc[:, i] if i in done else text_column(frame.iloc[:, i])
        for i in range(frame.shape[1])
    }
    return pd.DataFrame(columns, index=frame.index).set_axis(frame.columns, axis=1)


def text_column(values: pd.Series) -> pd.Series:
    """One column as stripped text, missing (or one of ``MISSING_TEXT``) as NaN: the text
    ``str(value).strip()`` gives for each value."""
    if isinstance(values.dtype, pd.StringDtype) or values.dtype == object:
        text = values.astype("str")
    elif pd.api.types.is_integer_dtype(values) or pd.api.types.is_float_dtype(values):
        text = values.astype("str")  # numpy's shortest repr, as str() writes a Python number
    else:  # dates, booleans, categories...: each value's own str()
        text = values.astype(object).astype("str")
    text = text.str.strip()
    return text.where(~text.isin(MISSING_TEXT))


_SYMBOL = r"[$£€]"
# The forms of :func:`written_numbers`, after a currency symbol is taken off: those that are
# certain alone, and those that are certain after a symbol.
_US = r"[+-]?\d{1,3}(?:,\d{3})+\.\d+|[+-]?\d{1,3}(?:,\d{3}){2,}"
_US_AFTER_SYMBOL = r"[+-]?\d{1,3}(?:,\d{3})+|[+-]?\d+(?:\.\d+)?"
_EU = r"[+-]?\d{1,3}(?:\.\d{3})+,\d+|[+-]?\d{1,3}(?:\.\d{3}){2,}"
_EU_AFTER_SYMBOL = r"[+-]?\d+,\d{1,2}"


def as_numbers(values: pd.Series) -> pd.Series:
    """``pd.to_numeric(values, errors="coerce")`` as floats: text that is not a number gives
    NaN. Text columns are parsed by pyarrow's cast (C++); a column holding anything pyarrow
    does not parse falls back to pandas, so both give the same numbers, and then to the
    forms of :func:`written_numbers`."""
    if not pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        try:
            array = pa.array(values, from_pandas=True)
            if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
                numbers = pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False)
                return pd.Series(numbers, index=values.index, name=values.name)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            pass
    numbers = pd.to_numeric(values, errors="coerce").astype(float)
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return numbers
    rest = values.notna() & numbers.isna()
    if not rest.any():
        return numbers
    return numbers.fillna(written_numbers(as_text(values[rest])))


def written_numbers(text: pd.Series) -> pd.Series:
    """Numbers as spreadsheets write them where a number is no plain number (NaN for other
    text): a flag's true/false as 1/0 (a Parquet or Spark boolean, pandas' True/False), and
    money or grouped figures where the form leaves no doubt: $58,138.00, $58,138, 58.138,00 €,
    15,50 €, 58,138.50, 1,234,567 (without a symbol, 58,138 may be either and stays refused;
    with one, a comma before three digits groups, before one or two it is the decimal mark)."""
    trimmed = pc.utf8_trim_whitespace(pa.array(text, type=pa.large_string(), from_pandas=True))
    lower = pc.utf8_lower(trimmed)
    flags = pc.if_else(
        pc.equal(lower, "true"), 1.0, pc.if_else(pc.equal(lower, "false"), 0.0, None)
    )
    bare = pc.replace_substring_regex(
        trimmed, pattern=rf"^([+-]?)\s*{_SYMBOL}\s*|\s*{_SYMBOL}$", replacement=r"\1"
    )
    symbol = pc.not_equal(bare, trimmed)

    def matches(pattern: str) -> Any:
        return pc.match_substring_regex(bare, pattern=f"^(?:{pattern})$")

    us = pc.or_(matches(_US), pc.and_(matches(_US_AFTER_SYMBOL), symbol))
    eu = pc.or_(matches(_EU), pc.and_(matches(_EU_AFTER_SYMBOL), symbol))
    numbers = pc.coalesce(
        pc.cast(pc.if_else(us, pc.replace_substring(bare, ",", ""), None), pa.float64()),
        pc.cast(
            pc.if_else(
                eu, pc.replace_substring(pc.replace_substring(bare, ".", ""), ",", "."), None
            ),
            pa.float64(),
        ),
    )
    out = pc.coalesce(flags, numbers).to_numpy(zero_copy_only=False)
    return pd.Series(out, index=text.index, name=text.name, dtype=float)


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
            + _other_dataset(set(by_norm))
        )
    out = frame.rename(columns=renames)
    changed = {src: dst for src, dst in renames.items() if src != dst}
    return out, changed


def _other_dataset(headers: set[str]) -> str:
    """What to choose instead when the file holds another dataset's required columns (the
    retail file given to a Mall preset), or nothing."""
    for name, specs in dataset_columns().items():
        if all(
            any(normalise_header(n) in headers for n in [canonical, *(spec.get("aliases") or [])])
            for canonical, spec in specs.items()
            if spec.get("required", True)
        ):
            presets = ", ".join(presets_of_dataset(name))
            return f"; these are dataset {name}'s columns; presets for it: {presets} " + (
                "(EXPERIMENT=<preset>)"
            )
    return ""


def _rows(index: pd.Index) -> str:
    """File line numbers of frame rows (line 1 is the header)."""
    return ", ".join(str(int(i) + 2) for i in index[:5])


def to_numeric_column(frame: pd.DataFrame, column: str, spec: Mapping[str, Any], path) -> pd.Series:
    """Convert one column to numbers, refusing text, an all-empty column and values below min."""
    values = frame[column]
    if values.isna().all():
        raise InputError(f"{path}: column '{column}' is entirely empty (expected numbers)")
    numbers = as_numbers(values)
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
    return numbers


def typed_frame(
    frame: pd.DataFrame, columns: Mapping[str, Mapping[str, Any]], path: str | Path
) -> pd.DataFrame:
    """Convert the canonical columns to their kinds (numeric, category, id, date kept as text)."""
    out = frame.copy(deep=False)  # columns are replaced, never changed in place
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
            text = as_text(out[column])
            if kind == "id":
                # An older export zero-pads ids (0001): the same customer, the same id.
                digits = text.str.isdigit().fillna(False).astype(bool)
                stripped = text.str.lstrip("0")
                text = text.mask(digits, stripped.where(stripped != "", "0"))
            out[column] = text.astype(object).where(text.notna(), None)
    return out


def row_problems(
    frame: pd.DataFrame,
    columns: Mapping[str, Mapping[str, Any]],
    numbers: dict[str, pd.Series] | None = None,
) -> pd.Series:
    """The reason each row fails the dataset's column rules ("" when it passes).

    Same rules as :func:`typed_frame` and the dataset's missing-value cleaning, applied per
    row instead of refusing the whole file: batch scoring and the logged model give a row the
    same reason. ``numbers``, when given, receives each numeric column as parsed
    (:func:`as_numbers`), for the caller to type the rows without parsing them again.
    """
    reasons = pd.Series([""] * len(frame), index=frame.index, dtype=object)

    def add(
        mask: pd.Series, text: str, shown: pd.Series | None = None, fmt: Callable = repr
    ) -> None:
        """Add ``text`` to the masked rows' reasons, followed by their value in ``shown``
        (formatted only for the rows that fail)."""
        if not mask.any():  # the masked assignments cost milliseconds even when empty
            return
        current = reasons[mask]
        extra = text if shown is None else (text + shown[mask].map(fmt)).to_numpy()
        reasons[mask] = current.where(current == "", current + "; ") + extra

    for column, spec in columns.items():
        if column not in frame.columns:
            continue
        kind = spec.get("kind", "numeric")
        values = frame[column]
        if kind != "id":
            add(values.isna(), f"'{column}' is missing")
        if kind != "numeric":
            continue
        parsed = as_numbers(values)
        if numbers is not None:
            numbers[column] = parsed
        bad = values.notna() & parsed.isna()
        add(bad, f"'{column}' is not a number: ", values)
        low = spec.get("min")
        if low is not None:
            add(parsed < low, f"'{column}' below {low:g}: ", parsed, "{:g}".format)
    return reasons


def as_text(values: pd.Series) -> pd.Series:
    """``str(value)`` of each value (missing kept missing), as pandas' ``str`` dtype: the
    vectorised ``values.map(str, na_action="ignore")``."""
    if isinstance(values.dtype, pd.StringDtype) or values.dtype == object:
        return values.astype("str")
    return values.astype(object).astype("str")


def spelled_as(values: pd.Series, spellings: Mapping[str, str]) -> pd.Series:
    """``values`` with each one that is a key of ``spellings`` (variant -> spelling: ``{"m":
    "Male", "master": "Master"}``) but for case and surrounding spaces written as that spelling
    (an export's " MASTER" is "Master"), as text; ``values`` themselves when none needs it."""
    by_key = {
        str(variant).strip().lower(): str(spelling) for variant, spelling in spellings.items()
    }
    # Each distinct value once: a category column holds a handful among a million rows.
    codes, uniques = pd.factorize(values)
    spelled = [by_key.get(str(u).strip().lower(), u) for u in uniques]
    if spelled == list(uniques):
        return values
    known = pd.array([str(u) for u in spelled], dtype="str")
    return pd.Series(known.take(codes, allow_fill=True), index=values.index, name=values.name)


def as_spellings(spellings: Iterable[str]) -> dict[str, str]:
    """Each spelling as its own variant, for :func:`spelled_as`."""
    return {str(s): str(s) for s in spellings}


def category_text(values: pd.Series, spellings: Mapping[str, str]) -> pd.Series:
    """A category column (text and None, as :func:`typed_frame` gives it) with the config's
    spellings (:func:`spelled_as`); as it is when none needs one."""
    text = spelled_as(values, spellings)
    return values if text is values else text.astype(object).where(text.notna(), None)


def content_hash(frame: pd.DataFrame) -> str:
    """A short hash of the frame's columns and values (for tags and reproducibility)."""
    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


# Date forms seen in exports of the same file: 2012-09-04, 04-09-2012, 04/09/2012, 9/4/2012
# (month first), 4-Sep-12, each with or without a time of day. Each value is parsed by the
# explicit rule of its form: never a guessing parser, which silently swaps day and month.
DATE_ORDERS = ("dayfirst", "monthfirst")
_ISO = r"(?P<y>\d{4})[-/.](?P<m>\d{1,2})[-/.](?P<d>\d{1,2})"
_NUMERIC = r"(?P<a>\d{1,2})[-/.](?P<b>\d{1,2})[-/.](?P<y>\d{4}|\d{2})"
_NAMED = r"(?P<d>\d{1,2})[- ](?P<mon>[A-Za-z]{3,9})[- ](?P<y>\d{4}|\d{2})"
# A time of day after any of them, as timestamps are written (a database's or a Parquet
# timestamp's 2012-09-04 00:00:00, ISO's T13:45:10Z, Excel's 9/4/2012 12:00:00 AM): the day
# is the date written; the time is not used.
_TIME = (
    r"(?:[ T](?:[01]?\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:[.,]\d+)?)?(?: ?[AaPp][Mm])?"
    r"(?: ?Z|[+-]\d{2}:?\d{2})?)?"
)
_MONTHS = {
    name: i + 1
    for i, name in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    )
}


def _year(text: pd.Series) -> pd.Series:
    year = text.astype(int)
    # Two-digit years follow strptime's %y: 00-68 -> 2000s, 69-99 -> 1900s.
    short = text.str.len() == 2
    return year.where(~short, year + np.where(year < 69, 2000, 1900))


def _assemble(year: pd.Series, month: pd.Series, day: pd.Series) -> pd.Series:
    parts = pd.DataFrame({"year": year, "month": month, "day": day}).astype(float)
    return pd.to_datetime(parts, errors="coerce")


class _DateProblem(Exception):
    """A date column problem; ``values`` are the offending texts (their lines are added)."""

    def __init__(self, message: str, values: list[str]):
        super().__init__(message)
        self.values = values


def parse_dates(
    values: pd.Series,
    column: str,
    path: str | Path,
    date_format: str | None = None,
    fallback_order: str | None = None,
) -> tuple[pd.Series, dict[str, Any]]:
    """Parse a date column written in any of the common forms, refusing a silent misparse.

    Day/month order of numeric dates (04-09-2012) is decided from the whole column: a first
    field above 12 means day first, a second field above 12 month first. ``date_format`` (a
    strptime format, or ``dayfirst``/``monthfirst``) decides instead; ``fallback_order``
    settles a column that does not decide (used when scoring a few rows with the order learned
    at fit). Returns the dates (``datetime64[ns]``, NaT where missing) and what was detected.
    """
    text = values.astype("string").str.strip()
    text = text.where(text != "", pd.NA)
    # Customers share few distinct dates: parse each distinct text once (a million rows in
    # well under a second), then spread the result back.
    codes, uniques = pd.factorize(text)
    unique_text = pd.Series(uniques, dtype="string")
    try:
        parsed, detected = _parse_unique(unique_text, date_format, fallback_order)
    except _DateProblem as problem:
        lines = _rows(text.index[text.isin(problem.values).to_numpy()])
        raise InputError(
            f"{path}: column '{column}' {problem} (line(s) {lines}); set dataset.date_format "
            "(dayfirst, monthfirst or a strptime format such as '%d-%m-%Y')"
        ) from None
    out = pd.Series(parsed.to_numpy()[codes], index=values.index, dtype="datetime64[ns]")
    out[codes < 0] = pd.NaT
    return out, detected


def _parse_unique(
    text: pd.Series, date_format: str | None, fallback_order: str | None
) -> tuple[pd.Series, dict[str, Any]]:
    """Parse distinct, non-missing date texts (see ``parse_dates``)."""
    if date_format and date_format not in DATE_ORDERS:
        parsed = pd.to_datetime(text, format=date_format, errors="coerce")
        _refuse_unparsed(text, parsed.isna(), f"date_format '{date_format}'")
        return parsed.astype("datetime64[ns]"), {"date_format": date_format, "decided_by": "config"}
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    forms: list[str] = []
    order: str | None = None
    decided_by: str | None = None
    iso = text.str.extract(f"^{_ISO}{_TIME}$")
    is_iso = iso["y"].notna()
    if is_iso.any():
        forms.append("yyyy-mm-dd")
        rows = iso[is_iso]
        out[is_iso] = _assemble(rows["y"].astype(int), rows["m"].astype(int), rows["d"].astype(int))
    named = text.str.extract(f"^{_NAMED}{_TIME}$")
    is_named = ~is_iso & named["d"].notna()
    if is_named.any():
        forms.append("d-Mon-yy")
        rows = named[is_named]
        month = rows["mon"].str[:3].str.lower().map(_MONTHS)
        out[is_named] = _assemble(_year(rows["y"]), month, rows["d"].astype(int))
    numeric = text.str.extract(f"^{_NUMERIC}{_TIME}$")
    is_numeric = ~is_iso & ~is_named & numeric["a"].notna()
    if is_numeric.any():
        rows = numeric[is_numeric]
        first, second = rows["a"].astype(int), rows["b"].astype(int)
        day_first, month_first = bool((first > 12).any()), bool((second > 12).any())
        shown = text[is_numeric]
        if day_first and month_first:
            a, b = shown[first > 12].iloc[0], shown[second > 12].iloc[0]
            raise _DateProblem(f"mixes day-first and month-first dates ({a!r}, {b!r})", [a, b])
        if day_first or month_first:
            order, decided_by = ("dayfirst" if day_first else "monthfirst"), "data"
            if date_format in DATE_ORDERS and date_format != order:
                example = shown[(first > 12) if day_first else (second > 12)].iloc[0]
                raise _DateProblem(
                    f"has {order} dates such as {example!r}, not {date_format}", [example]
                )
        elif date_format in DATE_ORDERS:
            order, decided_by = date_format, "config"
        elif fallback_order in DATE_ORDERS:
            order, decided_by = fallback_order, "fitted"
        else:
            raise _DateProblem(
                f"has ambiguous dates: day and month are 12 or below in every value, e.g. "
                f"{shown.iloc[0]!r}",
                list(shown.head(3)),
            )
        day, month = (first, second) if order == "dayfirst" else (second, first)
        forms.append("dd-mm-yyyy" if order == "dayfirst" else "mm-dd-yyyy")
        out[is_numeric] = _assemble(_year(rows["y"]), month, day)
    _refuse_unparsed(text, out.isna(), "a date such as 2012-09-04")
    return out, {"forms": forms, "order": order, "decided_by": decided_by}


def _refuse_unparsed(text: pd.Series, bad: pd.Series, expected: str) -> None:
    if bad.any():
        examples = list(text[bad].head(3))
        shown = ", ".join(repr(v) for v in examples)
        raise _DateProblem(
            f"has values that are not dates: {shown} (expected {expected})", examples
        )
