"""Streaming scoring's column work done once and in Arrow gives what the per-column pandas
route gave: cells stripped in the record batch, numbers parsed once for the row checks and the
dataset's typing, CSV text written by Arrow's writer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from omegaconf import OmegaConf

from segmentation.config import compose
from segmentation.data.reading import (
    as_numbers,
    read_table,
    row_problems,
    text_batch,
    text_column,
)
from segmentation.data.retail_marketing import generate, prepare
from segmentation.errors import InputError
from segmentation.serving.predict import _csv_bytes, float_text, reuse_arrow_memory

# Spaces, a tab, a vertical tab, no-break and em spaces, Python's separator controls.
PADDED = [" 12 ", "\t7", "x\x0b", "\u00a0PhD\u2003", "\x1c3\x1f", "a b", "", " nan", "NA ", "None"]


def test_text_batch_gives_text_column_of_each_column():
    batch = pa.record_batch(
        {
            "padded": pa.array(PADDED, type=pa.string()),
            "nulls": pa.array([None, " 1", "NaN", "2 ", None, "", "x", "y", "z", " "]),
            "count": pa.array(range(10), type=pa.int64()),
        }
    )
    out, done = text_batch(batch)
    assert done == {0, 1}  # the integers are left to text_column
    assert out.schema.field(0).type == pa.large_string()
    frame = out.to_pandas()
    for name in ("padded", "nulls"):
        expected = text_column(batch.column(name).to_pandas())
        assert frame[name].dtype == expected.dtype == "str"
        assert [None if pd.isna(v) else v for v in frame[name]] == [
            None if pd.isna(v) else v for v in expected
        ]
    assert frame["padded"].tolist()[:6] == ["12", "7", "x", "PhD", "3", "a b"]
    assert frame["padded"].isna().tolist() == [False] * 6 + [True] * 4
    assert frame["count"].tolist() == list(range(10))


def test_csv_cells_are_stripped_and_short_rows_padded_as_before(tmp_path):
    path = tmp_path / "padded.csv"
    path.write_text(
        "id, name ,n\n"
        "1,\u00a0Ann ,\t3\n"
        "2, nan\n"  # short: padded, then stripped
        '3," Bo, Jr ", 4 \n'
        "4,NA,None\n"
    )
    frame, _ = read_table(path)
    assert list(frame.columns) == ["id", "name", "n"]
    assert frame.index.tolist() == [0, 1, 2, 3]
    rows = [[None if pd.isna(v) else v for v in row] for row in frame.itertuples(index=False)]
    assert rows == [["1", "Ann", "3"], ["2", None, None], ["3", "Bo, Jr", "4"], ["4", None, None]]
    assert all(frame[c].dtype == "str" for c in frame.columns)


@pytest.fixture(scope="module")
def retail_rows() -> tuple[pd.DataFrame, object]:
    """Generated retail rows as text (the file's cells), with planted problems."""
    cfg = compose(["experiments=retail_rfm"]).dataset
    frame = generate(600, seed=5)
    text = pd.DataFrame({c: frame[c].astype(str) for c in frame.columns}, dtype="str")
    text = text.mask(frame.isna())
    text.loc[3, "Income"] = "abc"
    text.loc[4, "Recency"] = "-2"
    text.loc[5, "Kidhome"] = " 1e0 "
    text.loc[6, "Income"] = "666666"  # removed by cleaning (implausible)
    return text, cfg


def test_numbers_from_the_row_checks_type_rows_as_the_text_did(retail_rows):
    text, cfg = retail_rows
    columns = OmegaConf.to_container(cfg.columns, resolve=True)
    numbers: dict[str, pd.Series] = {}
    reasons = row_problems(text, columns, numbers)
    assert reasons.equals(row_problems(text, columns))  # the same reasons with or without
    assert reasons[3] == "'Income' is not a number: 'abc'"
    assert reasons[4] == "'Recency' below 0: -2"
    numeric = [c for c, spec in columns.items() if spec.get("kind", "numeric") == "numeric"]
    assert sorted(numbers) == sorted(c for c in numeric if c in text.columns)
    for column, parsed in numbers.items():
        np.testing.assert_array_equal(parsed.to_numpy(), as_numbers(text[column]).to_numpy())
    assert numbers["Kidhome"][5] == 1.0
    ok = (reasons == "") & text["Income"].notna()
    from_text = prepare(text.loc[ok], cfg, "rows.csv")
    from_numbers = prepare(text.assign(**numbers).loc[ok], cfg, "rows.csv")
    pd.testing.assert_frame_equal(from_numbers.frame, from_text.frame)
    assert from_numbers.cleaning == from_text.cleaning
    assert len(from_text.frame) == int(ok.sum()) - 1  # the implausible Income dropped


def test_float_text_is_pandas_str_of_each_float():
    values = pd.Series(
        [0.1, 1.0, -0.0, np.nan, np.inf, -np.inf, 1e16, 1e-05, 1e15, 0.30000000000000004, 5e-324]
    )
    expected = values.astype("str")
    got = float_text(values).to_pylist()
    assert got == [None if pd.isna(v) else v for v in expected]
    assert got[:3] == ["0.1", "1.0", "-0.0"]


def test_float_text_matches_pandas_at_every_magnitude():
    # Across and beyond both exponent ranges (repr's 1e-4..1e16, Arrow's 1e-6..1e10), whole
    # and rounded values, signs, and the edges of the range Arrow's cast is used in.
    rng = np.random.default_rng(3)
    values = np.sign(rng.normal(size=20_000)) * 10 ** rng.uniform(-12, 20, 20_000)
    values[::3] = np.round(values[::3], 2)
    values[::7] = np.round(values[::7])
    edges = [
        1e-4,
        np.nextafter(1e-4, 0),
        1e10,
        np.nextafter(1e10, 0),
        2.0**53,
        1.7976931348623157e308,
    ]
    series = pd.Series(np.concatenate([values, edges, np.negative(edges)]))
    got = float_text(series).to_pylist()
    assert got == list(series.astype("str"))


@pytest.mark.parametrize("quoted", [False, True])
def test_csv_bytes_are_to_csv_of_the_rows(quoted):
    frame = pd.DataFrame(
        {
            "name": pd.array(["Ann", None, "Bo", ""], dtype="str"),
            "segment": np.array([0, 3, 1, 2], dtype="int64"),
            "confidence": [0.5, np.nan, 1.0, 0.123456789],
            "persona": pd.array(["Budget", "Wine lovers", "x", "y"], dtype="str"),
        }
    )
    if quoted:
        frame.loc[2, "name"] = 'Bo, "Jr"'
    got = _csv_bytes(frame)
    assert got == frame.to_csv(index=False, header=False, lineterminator="\n").encode()
    assert got.splitlines()[1] == b",3,,Wine lovers"


def test_scoring_reuses_arrow_memory_from_jemalloc():
    before = pa.default_memory_pool()
    try:
        reuse_arrow_memory()
        expected = "jemalloc" if _has_jemalloc() else before.backend_name
        assert pa.default_memory_pool().backend_name == expected
    finally:
        pa.set_memory_pool(before)


def _has_jemalloc() -> bool:
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return False
    return True


def test_rows_keep_their_file_lines_past_blank_lines_and_quoted_line_ends(tmp_path):
    """Each row is indexed by its file line - 2 across batches: values spanning lines (an
    address typed in a spreadsheet cell, CRLF or LF), blank and whitespace-only lines and rows
    of bare delimiters before it; the last three are no customers and are left out."""
    from segmentation.data.mall import generate as generate_mall
    from segmentation.data.reading import open_table

    rows = generate_mall(8000, seed=4).astype(str)
    records, expected = [",".join([*rows.columns, "Note"])], {}
    line = 2  # the next record's file line
    for i, row in enumerate(rows.itertuples(index=False)):
        note = '"12 Main St\nFlat 2"' if i % 7 == 0 else '"a\r\nb\nc"' if i % 29 == 1 else "x"
        empty = [""] * (i % 11 == 5) + ["  \t "] * (i % 13 == 7) + [",,,,,"] * (i % 17 == 3)
        records += [*empty, ",".join([*row, note])]  # blank, whitespace-only, bare delimiters
        expected[line + len(empty)] = row.CustomerID
        line += len(empty) + 1 + note.count("\n")
    path = tmp_path / "lines.csv"
    path.write_text("\n".join(records) + "\n\n", encoding="utf-8", newline="")
    table = open_table(path, chunk_rows=300)
    chunks = list(table.chunks())
    assert len(chunks) > 3  # the line ends are carried from batch to batch
    frame = pd.concat(chunks)
    found = dict(zip((frame.index + 2).tolist(), frame["CustomerID"], strict=True))
    assert found == expected
    # The physical line holds the row's id (the line a text editor shows).
    text = path.read_text(encoding="utf-8").split("\n")
    assert all(text[line - 1].startswith(f"{cid},") for line, cid in list(found.items())[::97])


def test_blank_lines_before_the_header_and_a_long_row_name_their_file_lines(tmp_path):
    """Blank lines before the header are skipped, not taken for the header, and rows keep
    their file lines past them; a row with a field too many is refused at the line a text
    editor shows, past values spanning lines in earlier batches (gzip-compressed too)."""
    import gzip

    from segmentation.data.mall import generate as generate_mall
    from segmentation.data.reading import open_table

    rows = generate_mall(900, seed=5).astype(str)
    records = ["", " \t", ",".join([*rows.columns, "Note"])]
    for i, row in enumerate(rows.itertuples(index=False)):
        records.append(",".join([*row, '"12 Main St\r\nFlat 2"' if i % 3 == 0 else "x"]))
    path = tmp_path / "lines.csv"
    path.write_text("\n".join(records) + "\n", encoding="utf-8", newline="")
    frame = pd.concat(open_table(path, chunk_rows=100).chunks())
    assert list(frame.columns) == [*rows.columns, "Note"] and len(frame) == len(rows)
    text = path.read_text(encoding="utf-8").split("\n")
    assert all(
        text[index + 1].startswith(f"{cid},")
        for index, cid in zip(frame.index, frame["CustomerID"], strict=True)
    )

    long_line = len(text)  # the row appended below starts on the last (empty) line
    path.write_text(
        "\n".join(records) + "\n" + ",".join(["1"] * (len(rows.columns) + 2)) + "\n",
        encoding="utf-8",
        newline="",
    )
    packed = tmp_path / "lines.csv.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    for source in (path, packed):
        message = f"expected {len(rows.columns) + 1} fields in line {long_line}, saw"
        with pytest.raises(InputError, match=message):
            list(open_table(source, chunk_rows=100).chunks())


@pytest.mark.parametrize("end", ["\n", "\r\n", "", "\n\n  \n"])
def test_a_header_alone_holds_no_rows_whatever_its_line_end(tmp_path, end):
    """A file of its header only (an export of no customers) has no rows, with a line end or
    without one (Arrow cannot read the latter: it was 'cannot parse as a delimited file'); a
    training run refuses it in one line."""
    from segmentation.data import load_file

    header = "CustomerID,Gender,Age,Annual Income (k$),Spending Score (1-100)"
    path = tmp_path / "header.csv"
    path.write_bytes((header + end).encode())
    frame, _ = read_table(path)
    assert list(frame.columns) == header.split(",") and frame.empty
    with pytest.raises(InputError, match=r"^\S+header.csv: no customer rows after the header"):
        load_file(path, compose().dataset)


# Text in a number column -> the number it is read as (None: refused as not a number).
WRITTEN = {
    "58138": 58138.0,
    " $84,835.00 ": 84835.0,
    "$58,138": 58138.0,
    "-$1,234.00": -1234.0,
    "$1,234,567.89": 1234567.89,
    "58,138.50": 58138.5,
    "1,234,567": 1234567.0,
    "58.138,00 €": 58138.0,
    "€ 1.234,50": 1234.5,
    "15,50 €": 15.5,
    "1.234.567": 1234567.0,
    "1.234": 1.234,  # a plain decimal point, as always
    "TRUE": 1.0,
    "false": 0.0,
    "58,138": None,  # 58138 or 58.138: the form does not say
    "15,5": None,
    "55,000 EUR": None,
    "n/a?": None,
    "$": None,
    "1,2,3": None,
}


def test_numbers_as_spreadsheets_write_them_are_read_where_the_form_is_certain():
    """A currency-formatted cell saved as CSV ($84,835.00, 58.138,00 €), grouped figures and
    true/false flags are numbers; a form that could mean two numbers is still refused."""
    values = pd.Series(list(WRITTEN), dtype="str")
    read = as_numbers(values)
    got = [None if pd.isna(v) else float(v) for v in read]
    assert dict(zip(WRITTEN, got, strict=True)) == WRITTEN
    # Plain numbers never reach these forms: pyarrow's cast reads the column.
    assert as_numbers(pd.Series(["1", "2.5"], dtype="str")).tolist() == [1.0, 2.5]
