"""Customer files in the forms they really come in: every variant, written from the canonical
file, gives the identical cleaned frame, and the reader says what it detected.

The canonical files are written from the seeded generators as the real files are written (retail
tab-separated with Dt_Customer as dd-mm-yyyy, Mall comma-separated), with the real files'
oddities planted, so no behaviour test needs the real files. The tests named ``test_real_*``
read the real files (``real_file``: skipped locally when absent, failing in CI).
"""

from __future__ import annotations

import csv
import io
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from segmentation.config import compose
from segmentation.data import load_file, mall, retail_marketing
from segmentation.data.reading import HEAD_BYTES, read_table
from segmentation.errors import InputError
from tests.conftest import real_file

RETAIL, MALL = "marketing_campaign.csv", "Mall_Customers.csv"
RETAIL_ROWS, MALL_ROWS, SEED = 300, 200, 7


def _cfg(name: str, *overrides: str):
    return compose([f"dataset={name}", *overrides]).dataset


def retail_text(n_rows: int = RETAIL_ROWS, seed: int = SEED) -> pd.DataFrame:
    """Generated retail customers as the real file holds them: every value as text (as a user
    would edit it), Income in whole units, Dt_Customer as dd-mm-yyyy. Without missing values or
    Marital_Status oddities: each test plants exactly the properties it relies on."""
    frame = retail_marketing.generate(n_rows, seed)
    income = frame["Income"].fillna(frame["Income"].median())
    frame["Income"] = income.map("{:.0f}".format)
    odd = {"Alone": "Single", "Absurd": "Single", "YOLO": "Single"}
    frame["Marital_Status"] = frame["Marital_Status"].astype(str).replace(odd)
    return frame.astype(str)


def planted_retail() -> pd.DataFrame:
    """``retail_text`` with what the real file has: a day above 12 (its last enrolment date),
    missing incomes, Income 666666, a birth year 1893, Alone/Absurd/YOLO statuses and a customer
    identical to another but for the ID."""
    frame = retail_text()
    frame.loc[0, "Dt_Customer"] = "29-06-2014"
    frame.loc[[5, 6, 7], "Income"] = ""
    frame.loc[8, "Income"] = "666666"
    frame.loc[9, "Year_Birth"] = "1893"
    frame.loc[[10, 11, 12], "Marital_Status"] = ["Alone", "Absurd", "YOLO"]
    frame.loc[14, frame.columns[1:]] = frame.loc[13, frame.columns[1:]]
    return frame


def _save(frame: pd.DataFrame, path: Path, sep: str) -> Path:
    frame.to_csv(path, sep=sep, index=False, lineterminator="\n")
    return path


def _rows(path: Path, delimiter: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(path.read_text(encoding="utf-8")), delimiter=delimiter))


def _write(path: Path, rows: list[list[str]], **fmt) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n", **fmt).writerows(rows)
    return path


def _redate(rows: list[list[str]], form) -> list[list[str]]:
    col = rows[0].index("Dt_Customer")
    out = [rows[0]]
    for row in rows[1:]:
        row = list(row)
        row[col] = form(datetime.strptime(row[col], "%d-%m-%Y"))
        out.append(row)
    return out


@pytest.fixture(scope="module")
def retail_generated(tmp_path_factory):
    path = _save(planted_retail(), tmp_path_factory.mktemp("retail") / RETAIL, "\t")
    return path, load_file(path, _cfg("retail_marketing"))


@pytest.fixture(scope="module")
def mall_generated(tmp_path_factory):
    source = mall.generate(MALL_ROWS, SEED).astype(str)
    path = _save(source, tmp_path_factory.mktemp("mall") / MALL, ",")
    return path, load_file(path, _cfg("mall")), source


def _tab(rows: list[list[str]]) -> bytes:
    return "".join("\t".join(r) + "\n" for r in rows).encode()


def _bytes(d: Path, data: bytes) -> Path:
    (d / "v.csv").write_bytes(data)
    return d / "v.csv"


def _parquet(rows: list[list[str]], d: Path) -> Path:
    frame = pd.read_csv(io.StringIO(_tab(rows).decode()), sep="\t")
    frame.to_parquet(d / "v.parquet")
    return d / "v.parquet"


FLAGS = ["AcceptedCmp1", "AcceptedCmp2", "AcceptedCmp3", "AcceptedCmp4", "AcceptedCmp5"]
FLAGS += ["Complain", "Response"]


def _typed_parquet(rows: list[list[str]], d: Path) -> Path:
    """A Parquet file as a typed export writes it: the dates a timestamp, the 0/1 flags
    booleans."""
    frame = pd.read_csv(io.StringIO(_tab(rows).decode()), sep="\t")
    frame["Dt_Customer"] = pd.to_datetime(frame["Dt_Customer"], format="%d-%m-%Y")
    frame[FLAGS] = frame[FLAGS].astype(bool)
    frame.to_parquet(d / "v.parquet")
    return d / "v.parquet"


def _income_as_money(rows: list[list[str]]) -> list[list[str]]:
    """Income as a currency-formatted cell is saved: $58,138.00 and 58.138,00 € alternately."""
    at = rows[0].index("Income")
    european = str.maketrans(",.", ".,")
    out = [rows[0]]
    for i, row in enumerate(rows[1:]):
        row = list(row)
        if row[at]:
            money = f"{float(row[at]):,.2f}"
            row[at] = f" ${money} " if i % 2 else money.translate(european) + " €"
        out.append(row)
    return out


def _flags_as_words(rows: list[list[str]]) -> list[list[str]]:
    flags = [rows[0].index(c) for c in FLAGS]
    words = {"0": "False", "1": "TRUE"}
    return [rows[0], *[[words[v] if i in flags else v for i, v in enumerate(r)] for r in rows[1:]]]


def _snake(header: str) -> str:
    """MntWines -> mnt_wines, Year_Birth -> YEAR BIRTH: case, spacing, underscores vary."""
    if "_" in header:
        return header.replace("_", " ").upper()
    return "".join(
        f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(header)
    )


def _dates(forms: list[str], order: str | None) -> dict:
    return {"dates": {"forms": forms, "order": order, "decided_by": "data" if order else None}}


DAY_FIRST = _dates(["dd-mm-yyyy"], "dayfirst")
# Variant: (write the canonical rows in its form, what the reader must detect).
RETAIL_VARIANTS = {
    "comma": (
        lambda rows, d: _write(d / "v.csv", rows, delimiter=","),
        {"format": "csv", "delimiter": "comma", "bom": False, "crlf": False, **DAY_FIRST},
    ),
    "semicolon": (
        lambda rows, d: _write(d / "v.csv", rows, delimiter=";"),
        {"delimiter": "semicolon", **DAY_FIRST},
    ),
    "quoted": (
        lambda rows, d: _write(d / "v.csv", rows, delimiter=",", quoting=csv.QUOTE_ALL),
        {"delimiter": "comma", **DAY_FIRST},
    ),
    "bom": (
        lambda rows, d: _bytes(d, b"\xef\xbb\xbf" + _tab(rows)),
        {"delimiter": "tab", "bom": True, "crlf": False},
    ),
    "excel_sep": (  # written for Excel: its first line names the delimiter
        lambda rows, d: _bytes(
            d, b"\xef\xbb\xbfsep=;\r\n" + _tab(rows).replace(b"\t", b";").replace(b"\n", b"\r\n")
        ),
        {"delimiter": "semicolon", "bom": True, "crlf": True, "excel_sep_line": True},
    ),
    "excel_sep_resaved": (  # the sep= line as a spreadsheet saves it again: a row of cells
        lambda rows, d: _bytes(d, b"sep=,,,,,,\n" + _tab(rows).replace(b"\t", b",")),
        {"delimiter": "comma", "excel_sep_line": True},
    ),
    "crlf": (
        lambda rows, d: _bytes(d, _tab(rows).replace(b"\n", b"\r\n")),
        {"delimiter": "tab", "bom": False, "crlf": True},
    ),
    "parquet": (lambda rows, d: _parquet(rows, d), {"format": "parquet", **DAY_FIRST}),
    "parquet_typed": (
        lambda rows, d: _typed_parquet(rows, d),
        {"format": "parquet", **_dates(["yyyy-mm-dd"], None)},
    ),
    "money": (  # an Excel sheet with Income in its currency format, saved as CSV
        lambda rows, d: _write(d / "v.csv", _income_as_money(rows), delimiter=","),
        {"delimiter": "comma"},
    ),
    "flags_as_words": (  # pandas writes a boolean column as True/False
        lambda rows, d: _write(d / "v.csv", _flags_as_words(rows), delimiter="\t"),
        {"delimiter": "tab"},
    ),
    "headers": (
        lambda rows, d: _write(
            d / "v.csv", [[_snake(h) for h in rows[0]], *rows[1:]], delimiter="\t"
        ),
        {"delimiter": "tab"},  # and every header renamed back: checked in the test
    ),
    "date_slash": (
        lambda rows, d: _write(
            d / "v.csv", _redate(rows, lambda t: t.strftime("%d/%m/%Y")), delimiter="\t"
        ),
        DAY_FIRST,
    ),
    "date_month_name": (
        lambda rows, d: _write(
            d / "v.csv", _redate(rows, lambda t: f"{t.day}-{t.strftime('%b-%y')}"), delimiter="\t"
        ),
        _dates(["d-Mon-yy"], None),
    ),
    "date_month_first": (
        lambda rows, d: _write(
            d / "v.csv", _redate(rows, lambda t: f"{t.month}/{t.day}/{t.year}"), delimiter=","
        ),
        {"delimiter": "comma", **_dates(["mm-dd-yyyy"], "monthfirst")},
    ),
    "date_time": (
        lambda rows, d: _write(
            d / "v.csv", _redate(rows, lambda t: t.strftime("%Y-%m-%d 00:00:00")), delimiter="\t"
        ),
        _dates(["yyyy-mm-dd"], None),
    ),
    "date_iso_t": (
        lambda rows, d: _write(
            d / "v.csv",
            _redate(rows, lambda t: t.strftime("%Y-%m-%dT13:45:10.5+02:00")),
            delimiter="\t",
        ),
        _dates(["yyyy-mm-dd"], None),
    ),
    "date_excel_time": (
        lambda rows, d: _write(
            d / "v.csv",
            _redate(rows, lambda t: f"{t.month}/{t.day}/{t.year} 12:00:00 AM"),
            delimiter=",",
        ),
        {"delimiter": "comma", **_dates(["mm-dd-yyyy"], "monthfirst")},
    ),
    "date_iso": (
        lambda rows, d: _write(
            d / "v.csv", _redate(rows, lambda t: t.strftime("%Y-%m-%d")), delimiter=";"
        ),
        {"delimiter": "semicolon", **_dates(["yyyy-mm-dd"], None)},
    ),
}


def _retail_round_trip(variant: str, source: Path, canonical, tmp_path: Path) -> None:
    write, expected = RETAIL_VARIANTS[variant]
    rows = _rows(source, "\t")
    loaded = load_file(write(rows, tmp_path), _cfg("retail_marketing"))
    pd.testing.assert_frame_equal(loaded.frame, canonical.frame)
    assert loaded.cleaning == canonical.cleaning
    assert {key: loaded.detected.get(key) for key in expected} == expected
    if variant == "headers":
        assert loaded.detected["renamed"] == {_snake(h): h for h in rows[0]}
    else:
        assert "renamed" not in loaded.detected


def test_generated_retail_file_has_the_real_files_oddities(retail_generated):
    """The planted oddities reach the cleaning report, so the variants below compare cleaning
    that had work to do."""
    _, loaded = retail_generated
    rule = {entry["rule"]: entry for entry in loaded.cleaning}
    assert rule["constant_columns"]["dropped"] == {"Z_CostContact": 3, "Z_Revenue": 11}
    implausible = rule["implausible"]
    assert (implausible["income_above_max"], implausible["year_birth_below_min"]) == (1, 1)
    assert implausible["ids"] == ["9", "10"]  # ids of rows 8 and 9
    assert rule["missing_income"]["rows"] == 3
    assert rule["duplicates"]["duplicates"] == 1
    assert rule["marital_groups"]["folded"] == {"Alone": 1, "Absurd": 1, "YOLO": 1}
    assert loaded.rows_raw == RETAIL_ROWS and loaded.rows_clean == RETAIL_ROWS - 2
    assert loaded.frame["Dt_Customer"].iloc[0] == "2014-06-29"
    assert loaded.detected == {
        "format": "csv", "delimiter": "tab", "bom": False, "crlf": False, "encoding": "utf-8",
        **DAY_FIRST,
    }  # fmt: skip


@pytest.mark.parametrize("variant", sorted(RETAIL_VARIANTS))
def test_retail_variants_give_the_identical_cleaned_frame(variant, retail_generated, tmp_path):
    path, canonical = retail_generated
    _retail_round_trip(variant, path, canonical, tmp_path)


def test_ambiguous_dates_need_date_format(tmp_path):
    frame = retail_text()
    # Planted: day and month are 12 or below in every date (the month is kept, the day folded
    # into 1-12), so the column does not decide the order.
    frame["Dt_Customer"] = [f"{(int(d[:2]) - 1) % 12 + 1:02d}{d[2:]}" for d in frame["Dt_Customer"]]
    frame.loc[0, "Dt_Customer"] = "04-09-2012"  # 4 September or 9 April
    written = _save(frame, tmp_path / "v.csv", "\t")
    with pytest.raises(InputError, match=r"column 'Dt_Customer' has ambiguous dates.*date_format"):
        load_file(written, _cfg("retail_marketing"))
    loaded = load_file(written, _cfg("retail_marketing", "dataset.date_format=dayfirst"))
    assert loaded.detected["dates"]["decided_by"] == "config"
    strict = load_file(written, _cfg("retail_marketing", "dataset.date_format=%d-%m-%Y"))
    pd.testing.assert_frame_equal(strict.frame, loaded.frame)
    month_first = load_file(written, _cfg("retail_marketing", "dataset.date_format=monthfirst"))
    assert loaded.frame["Dt_Customer"].iloc[0] == "2012-09-04"
    assert month_first.frame["Dt_Customer"].iloc[0] == "2012-04-09"


MALL_VARIANTS = {
    "genre": lambda rows: [["CustomerID", "Genre", *rows[0][2:]],
                           *[[r[0].zfill(4), *r[1:]] for r in rows[1:]]],
    "snake": lambda rows: [["customer_id", "gender", "age", "annual_income", "spending_score"],
                           *rows[1:]],
}  # fmt: skip
MALL_RENAMED = {
    "genre": {"Genre": "Gender"},
    "snake": {
        "customer_id": "CustomerID", "gender": "Gender", "age": "Age",
        "annual_income": "Annual Income (k$)", "spending_score": "Spending Score (1-100)",
    },
}  # fmt: skip


def _mall_round_trip(variant: str, delimiter: str, source: Path, canonical, tmp_path: Path):
    rows = MALL_VARIANTS[variant](_rows(source, ","))
    loaded = load_file(_write(tmp_path / "m.csv", rows, delimiter=delimiter), _cfg("mall"))
    pd.testing.assert_frame_equal(loaded.frame, canonical.frame)
    assert loaded.detected["renamed"] == MALL_RENAMED[variant]
    return loaded


@pytest.mark.parametrize(("variant", "delimiter"), [("genre", ","), ("snake", ";")])
def test_mall_header_variants(variant, delimiter, mall_generated, tmp_path):
    path, canonical, source = mall_generated
    loaded = _mall_round_trip(variant, delimiter, path, canonical, tmp_path)
    assert loaded.frame["CustomerID"].tolist() == source["CustomerID"].tolist()
    assert loaded.frame["Gender"].tolist() == source["Gender"].tolist()


def test_an_excel_sep_line_names_the_delimiter_and_lines_keep_their_numbers(tmp_path):
    """A file written for Excel starts with sep=<delimiter>: the header is the next line, and
    a bad value is reported at its own file line (the sep= line and a blank line before)."""
    path = tmp_path / "m.csv"
    path.write_text(
        "sep=,\n\nCustomerID,Gender,Age,Annual Income (k$),Spending Score (1-100)\n"
        "1,Male,19,15,39\n2,Male,21,15,81\n3,Female,-20,16,6\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError, match=r"'Age' has values below 0 .*: -20 at line\(s\) 6$"):
        load_file(path, _cfg("mall"))
    frame, detected = read_table(path)
    assert frame.index.tolist() == [2, 3, 4]  # lines 4 to 6: index + 2
    assert frame["Age"].tolist() == ["19", "21", "-20"] and detected["excel_sep_line"]


def test_mall_parquet_and_crlf(mall_generated, tmp_path):
    path, canonical, _ = mall_generated
    pd.read_csv(path).to_parquet(tmp_path / "m.parquet")
    pd.testing.assert_frame_equal(
        load_file(tmp_path / "m.parquet", _cfg("mall")).frame, canonical.frame
    )
    (tmp_path / "m.csv").write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    loaded = load_file(tmp_path / "m.csv", _cfg("mall"))
    pd.testing.assert_frame_equal(loaded.frame, canonical.frame)
    assert loaded.detected["bom"] and loaded.detected["crlf"]


# "Zoë", "–" and "€": cp1252 has all three (the last two not in latin-1), as one byte each.
NAME = "Zoë – Müller €"


def test_mall_file_in_excel_encodings(mall_generated, tmp_path):
    """Excel's exports: "CSV" on Windows (cp1252) is read with ``dataset.encoding=cp1252``,
    "Unicode Text" (UTF-16 after its byte-order mark, tab-separated) as it is; without the
    setting a file that is not UTF-8 is refused in one line naming line, column and bytes."""
    path, canonical, _ = mall_generated
    text = pd.read_csv(path, dtype=str).assign(Name=NAME)
    windows = tmp_path / "windows.csv"
    text.to_csv(windows, index=False, encoding="cp1252", lineterminator="\r\n")
    with pytest.raises(InputError) as refused:
        load_file(windows, _cfg("mall"))
    assert str(refused.value) == (
        f"{windows}: line 2, column 'Name': not UTF-8 text (b'\\xeb \\x96 '); give the file's "
        "encoding as dataset.encoding (cp1252 for a Windows Excel CSV) or save it as CSV UTF-8"
    )
    loaded = load_file(windows, _cfg("mall", "dataset.encoding=Windows-1252"))
    pd.testing.assert_frame_equal(loaded.frame.drop(columns="Name"), canonical.frame)
    assert loaded.frame["Name"].eq(NAME).all()
    assert loaded.detected["encoding"] == "cp1252"  # Python's name for it

    unicode_text = tmp_path / "unicode.csv"
    text.to_csv(unicode_text, index=False, sep="\t", encoding="utf-16")
    loaded = load_file(unicode_text, _cfg("mall"))
    pd.testing.assert_frame_equal(loaded.frame.drop(columns="Name"), canonical.frame)
    assert loaded.frame["Name"].eq(NAME).all()
    assert loaded.detected["encoding"] == "utf-16" and loaded.detected["bom"]

    with pytest.raises(InputError, match=r"^dataset.encoding='klingon': unknown encoding"):
        load_file(windows, _cfg("mall", "dataset.encoding=klingon"))


def test_a_file_that_stops_being_utf8_is_refused_at_its_line(tmp_path):
    """A byte that is not UTF-8 past the head the reader checks first (64 KB): the line and
    column are still named, and nothing of the file is returned."""
    rows = mall.generate(6000, SEED).assign(Name="Zoe")
    lines = rows.to_csv(index=False, lineterminator="\n").encode().split(b"\n")
    lines[5000] = lines[5000].replace(b"Zoe", b"Zo\xeb")  # line 5001: line 1 is the header
    path = tmp_path / "late.csv"
    path.write_bytes(b"\n".join(lines))
    assert path.read_bytes().index(b"\xeb") > HEAD_BYTES
    with pytest.raises(InputError, match=r"late.csv: line 5001, column 'Name': not UTF-8 text"):
        read_table(path)


def test_a_whole_file_is_searched_for_bytes_that_are_not_utf8(tmp_path):
    """What Spark's reading checks before Spark reads (it would read such a byte as U+FFFD):
    every byte, decompressed; refused at the line and column the local reader names."""
    import gzip

    from segmentation.data.reading import refuse_file_not_utf8

    rows = mall.generate(6000, SEED).assign(Name="Zoë").to_csv(index=False).encode()
    columns = [*mall.generate(1, SEED).columns, "Name"]
    (tmp_path / "good.csv").write_bytes(rows)
    refuse_file_not_utf8(tmp_path / "good.csv", None, ",", columns)
    lines = rows.split(b"\n")
    lines[5000] = lines[5000].replace("Zoë".encode(), b"Zo\xeb")
    for name, data, compression in (
        ("late.csv", b"\n".join(lines), None),
        ("late.csv.gz", gzip.compress(b"\n".join(lines)), "gzip"),
        ("cut.csv", rows + "ë".encode()[:1], None),  # a character cut at the file's end
    ):
        (tmp_path / name).write_bytes(data)
        line = 6002 if name == "cut.csv" else 5001
        with pytest.raises(InputError, match=rf"{name}: line {line}, column '.*': not UTF-8"):
            refuse_file_not_utf8(tmp_path / name, compression, ",", columns)


@pytest.mark.parametrize(
    ("row", "column"),
    [(b"5000,Female,30,40,50,Zo\xeb,7", "Name"), (b"5000,Zo\xeb", "Gender")],
    ids=["a field too many", "fields missing"],
)
def test_a_row_of_the_wrong_width_that_is_not_utf8_is_refused_for_its_bytes(tmp_path, row, column):
    """Past the head, pyarrow cannot hand a row of the wrong width that is also not UTF-8 to
    the reader's handler (it decodes the row first): the file is refused for its bytes, at
    their line, and nothing is printed ("Exception ignored ...") around it."""
    rows = mall.generate(6000, SEED).assign(Name="Zoe")
    lines = rows.to_csv(index=False, lineterminator="\n").encode().split(b"\n")
    lines[5000] = row  # line 5001
    path = tmp_path / "late.csv"
    path.write_bytes(b"\n".join(lines))
    hook = sys.unraisablehook
    with pytest.raises(
        InputError, match=rf"late.csv: line 5001, column '{column}': not UTF-8 text"
    ):
        read_table(path)
    assert sys.unraisablehook is hook


def test_compressed_files_read_as_their_text_and_workbooks_are_refused(mall_generated, tmp_path):
    """gzip and bzip2 files (by their first bytes, whatever their name) read as the text they
    hold, also where a byte that is not UTF-8 lies past the head; a workbook or an archive is
    refused in one line saying what it is and what to do."""
    import bz2
    import gzip

    path, canonical, _ = mall_generated
    text = path.read_bytes()
    for name, pack in (
        ("m.csv.gz", gzip.compress),
        ("m.csv.bz2", bz2.compress),
        ("m.csv", gzip.compress),
    ):
        packed = tmp_path / name
        packed.write_bytes(pack(text))
        loaded = load_file(packed, _cfg("mall"))
        pd.testing.assert_frame_equal(loaded.frame, canonical.frame)
        assert loaded.detected["compression"] == ("bz2" if name.endswith("bz2") else "gzip")
    rows = mall.generate(6000, SEED).assign(Name="Zoe").to_csv(index=False).encode()
    lines = rows.split(b"\n")
    lines[5000] = lines[5000].replace(b"Zoe", b"Zo\xeb")
    (tmp_path / "late.csv.gz").write_bytes(gzip.compress(b"\n".join(lines)))
    with pytest.raises(InputError, match=r"late.csv.gz: line 5001, column 'Name': not UTF-8"):
        load_file(tmp_path / "late.csv.gz", _cfg("mall"))
    for magic, said in (
        (b"PK\x03\x04", "a ZIP archive or Excel workbook (.xlsx): save the sheet as CSV UTF-8"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel 97-2003 workbook (.xls)"),
        (b"\xfd7zXZ\x00", "xz-compressed: decompress it first"),
    ):
        (tmp_path / "book.csv").write_bytes(magic + bytes(200))
        with pytest.raises(InputError) as refused:
            load_file(tmp_path / "book.csv", _cfg("mall"))
        assert str(refused.value).startswith(f"{tmp_path / 'book.csv'}: {said}")


def test_spark_folder_input_takes_csv_compressed_as_spark_reads_it(tmp_path):
    """A folder's .csv.gz and .csv.bz2 parts are customer files on Spark, as a single such
    file is; other compressed names, Spark's markers and hidden files are not."""
    from segmentation.spark.reading import data_files

    for name in (
        "a.csv",
        "b.CSV.GZ",
        "c.tsv.bz2",
        "d.parquet",
        "e.parquet.gz",
        "f.gz",
        "g.csv.zst",
    ):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "_SUCCESS").write_bytes(b"x")
    (tmp_path / ".h.csv.gz").write_bytes(b"x")
    assert [p.name for p in data_files(tmp_path)] == ["a.csv", "b.CSV.GZ", "c.tsv.bz2", "d.parquet"]


# The real files (real_file: skipped locally when absent, failing in CI).


def test_real_retail_file_month_first_round_trip(tmp_path):
    path = real_file(RETAIL)
    canonical = load_file(path, _cfg("retail_marketing"))
    _retail_round_trip("date_month_first", path, canonical, tmp_path)


def test_real_mall_file_genre_round_trip(tmp_path):
    path = real_file(MALL)
    canonical = load_file(path, _cfg("mall"))
    loaded = _mall_round_trip("genre", ",", path, canonical, tmp_path)
    assert (loaded.frame["Gender"] == "Female").sum() == 112
    assert (loaded.frame["Gender"] == "Male").sum() == 88
