"""Reading customer tables with Spark: a Parquet or CSV file, or a folder of them, with the
header variants of the dataset config mapped as the local reader maps them."""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from segmentation.data.reading import (
    PARQUET_SUFFIXES,
    column_names,
    csv_head,
    file_encoding,
    has_excel_sep_line,
    map_columns,
    read_head,
    refuse_file_not_utf8,
)
from segmentation.errors import InputError
from segmentation.spark.session import spark_errors

CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
# Cell texts the local reader treats as missing (segmentation.data.reading).
MISSING_TEXTS = ("", "nan", "NaN", "NA", "None")


def data_files(path: Path) -> list[Path]:
    """The readable files of ``path`` (itself, or the Parquet and CSV files under a folder,
    ``.csv.gz`` and ``.csv.bz2`` too, Spark's ``_SUCCESS`` and hidden files left out); one
    line when there are none."""
    if not path.exists():
        raise InputError(f"{path}: not found (expected a Parquet or CSV file, or a folder of them)")
    if path.is_file():
        files = [path]
    else:
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and not p.name.startswith(("_", ".")) and _data_name(p)
        )
    files = [p for p in files if p.stat().st_size > 0]
    if not files:
        raise InputError(f"{path}: no readable files (expected non-empty Parquet or CSV files)")
    return files


def _data_name(path: Path) -> bool:
    """Whether a file in a folder is named as customer data: Parquet, CSV, or CSV compressed
    as Spark decompresses it (``.csv.gz``, ``.csv.bz2``)."""
    *before, last = [s.lower() for s in path.suffixes[-2:]] or [""]
    if last in SPARK_COMPRESSED.values():
        return bool(before) and before[0] in CSV_SUFFIXES
    return last in PARQUET_SUFFIXES | CSV_SUFFIXES


# Python's codec name -> Spark's: Spark 4 reads CSV in these charsets only.
SPARK_CHARSETS = {"utf-8": "UTF-8", "iso8859-1": "ISO-8859-1", "ascii": "US-ASCII"}


def read_input(spark: Any, path: str | Path, encoding: str | None = None) -> Any:
    """A Spark DataFrame of the file or folder: Parquet keeps its types; CSV is read as text,
    its delimiter sniffed from the first file's header (tab, comma, semicolon, pipe), in
    ``encoding`` (the dataset's setting) or as the local reader decides it (UTF-16 after its
    byte-order mark, else UTF-8). A UTF-8 file with a byte that is not is refused as locally,
    before Spark, which would read the byte as U+FFFD without a word. Spark reads UTF-8 and
    latin-1 only: another encoding is refused in one line."""
    path = Path(path).expanduser().resolve()
    files = data_files(path)
    parquet = [p for p in files if p.suffix.lower() in PARQUET_SUFFIXES]
    with spark_errors(f"{path}: cannot be read"):
        if parquet:
            frame = spark.read.parquet(*map(str, parquet))
        else:
            heads, compressions = zip(*map(_head, files), strict=True)
            codec = file_encoding(heads[0], encoding)
            if codec not in SPARK_CHARSETS:
                raise InputError(
                    f"{path}: Spark reads CSV text as UTF-8 or latin-1 only, not {codec}; "
                    "save the file as CSV UTF-8, or use the local engine"
                )
            # The first file's header and delimiter stand for all (Spark takes one).
            first = csv_head(files[0], heads[0], codec)
            delimiter, header = first.delimiter, first.header
            excel = [first.excel_sep] + [has_excel_sep_line(h, codec) for h in heads[1:]]
            for file, sep_line in zip(files, excel, strict=True):
                if sep_line:  # Spark takes it for the file's header
                    raise InputError(
                        f"{file}: its first line is Excel's sep= line, which Spark cannot "
                        "skip; delete that line, or use the local engine"
                    )
            if codec == "utf-8":  # every byte: Spark would read the others as U+FFFD
                for file, compression in zip(files, compressions, strict=True):
                    refuse_file_not_utf8(file, compression, delimiter, column_names(header))
            frame = (
                spark.read.option("header", True)
                .option("encoding", SPARK_CHARSETS[codec])
                .option("sep", delimiter)
                .option("inferSchema", False)
                .option("ignoreLeadingWhiteSpace", True)
                .option("ignoreTrailingWhiteSpace", True)
                .csv([str(p) for p in files])
            )
            if frame.columns:
                frame = frame.filter(_any_value(frame.columns))
        clean = {c: str(c).strip().strip("\ufeff") for c in frame.columns}
        frame = frame.withColumnsRenamed({k: v for k, v in clean.items() if k != v})
    if not frame.columns:
        raise InputError(f"{path}: no columns found")
    return frame


def _any_value(columns: list[str]) -> Any:
    """A CSV row with a value in some cell: as the local reader, rows of blank or missing
    cells only (whitespace-only lines, a spreadsheet's bare delimiters) are not customers."""
    from pyspark.sql import functions as F

    cells = [F.trim(F.col("`" + c.replace("`", "``") + "`")) for c in columns]
    return functools.reduce(operator.or_, [c.isNotNull() & ~c.isin(*MISSING_TEXTS) for c in cells])


# Compressed CSV that Spark (Hadoop's codecs) reads, by the file name's suffix.
SPARK_COMPRESSED = {"gzip": ".gz", "bz2": ".bz2"}


def _head(path: Path) -> tuple[bytes, str | None]:
    """The file's first text (decompressed) and its compression, refused as the local reader
    refuses it; a compressed file Spark would not decompress (by its name) is refused too."""
    head, compression = read_head(path)
    if compression and path.suffix.lower() != SPARK_COMPRESSED.get(compression):
        raise InputError(
            f"{path}: {compression}-compressed; Spark reads compressed CSV named .gz or .bz2 "
            "only (rename or decompress it)"
        )
    return head, compression


def column_renames(
    columns: list[str], specs: Mapping[str, Mapping[str, Any]], path: str | Path
) -> dict[str, str]:
    """Header variant -> canonical name, as the local reader maps them; a missing required
    column is refused in one line naming what was tried and what was found."""
    _, renamed = map_columns(pd.DataFrame(columns=columns), specs, path)
    return dict(renamed)


def canonical_text(frame: Any, specs: Mapping[str, Any], renames: Mapping[str, str]) -> list:
    """Spark columns of the dataset's canonical columns found in ``frame``, as the local reader
    sees cells: stripped text, the usual missing markers as null (aliased canonical names)."""
    from pyspark.sql import functions as F

    source = {renames.get(c, c): c for c in frame.columns}
    out = []
    for name in specs:
        if name not in source:
            continue
        quoted = "`" + source[name].replace("`", "``") + "`"
        text = F.trim(F.col(quoted).cast("string"))
        out.append(F.when(text.isin(*MISSING_TEXTS), None).otherwise(text).alias(name))
    return out
