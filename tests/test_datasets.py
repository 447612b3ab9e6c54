"""Real files in the forms they really come in: every variant, written from the canonical file,
gives the identical cleaned frame, and the reader says what it detected."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from segmentation.config import compose
from segmentation.datasets import load_file
from segmentation.errors import InputError
from tests.conftest import real_file

RETAIL, MALL = "marketing_campaign.csv", "Mall_Customers.csv"


def _cfg(name: str, *overrides: str):
    return compose([f"dataset={name}", *overrides]).dataset


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
def retail_canonical():
    path = real_file(RETAIL)
    return path, load_file(path, _cfg("retail_marketing"))


@pytest.fixture(scope="module")
def mall_canonical():
    path = real_file(MALL)
    return path, load_file(path, _cfg("mall"))


RETAIL_VARIANTS = {
    "comma": lambda rows, d: _write(d / "v.csv", rows, delimiter=","),
    "semicolon": lambda rows, d: _write(d / "v.csv", rows, delimiter=";"),
    "quoted": lambda rows, d: _write(d / "v.csv", rows, delimiter=",", quoting=csv.QUOTE_ALL),
    "bom": lambda rows, d: _bytes(d, b"\xef\xbb\xbf" + _tab(rows)),
    "crlf": lambda rows, d: _bytes(d, _tab(rows).replace(b"\n", b"\r\n")),
    "parquet": lambda rows, d: _parquet(rows, d),
    "headers": lambda rows, d: _write(
        d / "v.csv", [[_snake(h) for h in rows[0]], *rows[1:]], delimiter="\t"
    ),
    "date_slash": lambda rows, d: _write(
        d / "v.csv", _redate(rows, lambda t: t.strftime("%d/%m/%Y")), delimiter="\t"
    ),
    "date_month_name": lambda rows, d: _write(
        d / "v.csv", _redate(rows, lambda t: f"{t.day}-{t.strftime('%b-%y')}"), delimiter="\t"
    ),
    "date_month_first": lambda rows, d: _write(
        d / "v.csv", _redate(rows, lambda t: f"{t.month}/{t.day}/{t.year}"), delimiter=","
    ),
    "date_iso": lambda rows, d: _write(
        d / "v.csv", _redate(rows, lambda t: t.strftime("%Y-%m-%d")), delimiter=";"
    ),
}


def _tab(rows: list[list[str]]) -> bytes:
    return "".join("\t".join(r) + "\n" for r in rows).encode()


def _bytes(d: Path, data: bytes) -> Path:
    (d / "v.csv").write_bytes(data)
    return d / "v.csv"


def _parquet(rows: list[list[str]], d: Path) -> Path:
    frame = pd.read_csv(io.StringIO(_tab(rows).decode()), sep="\t")
    frame.to_parquet(d / "v.parquet")
    return d / "v.parquet"


def _snake(header: str) -> str:
    """MntWines -> mnt_wines, Year_Birth -> YEAR BIRTH: case, spacing, underscores vary."""
    if "_" in header:
        return header.replace("_", " ").upper()
    return "".join(
        f"_{c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(header)
    )


@pytest.mark.parametrize("variant", sorted(RETAIL_VARIANTS))
def test_retail_variants_give_the_identical_cleaned_frame(variant, retail_canonical, tmp_path):
    path, canonical = retail_canonical
    written = RETAIL_VARIANTS[variant](_rows(path, "\t"), tmp_path)
    loaded = load_file(written, _cfg("retail_marketing"))
    pd.testing.assert_frame_equal(loaded.frame, canonical.frame)
    assert loaded.cleaning == canonical.cleaning
    if variant == "date_month_first":
        assert loaded.detected["dates"]["order"] == "monthfirst"
    if variant in ("bom", "crlf"):
        assert loaded.detected[variant] is True
    if variant == "semicolon":
        assert loaded.detected["delimiter"] == "semicolon"
    if variant == "headers":
        assert loaded.detected["renamed"]["mnt_wines"] == "MntWines"


def test_ambiguous_dates_need_date_format(retail_canonical, tmp_path):
    path, _ = retail_canonical
    rows = _rows(path, "\t")
    col = rows[0].index("Dt_Customer")
    # Only days 1-12: 04-09-2012 could be 4 September or 9 April.
    rows = [rows[0], *[r for r in rows[1:] if int(r[col][:2]) <= 12]]
    written = _write(tmp_path / "v.csv", rows, delimiter="\t")
    with pytest.raises(InputError, match=r"column 'Dt_Customer' has ambiguous dates.*date_format"):
        load_file(written, _cfg("retail_marketing"))
    loaded = load_file(written, _cfg("retail_marketing", "dataset.date_format=dayfirst"))
    assert loaded.detected["dates"]["decided_by"] == "config"
    strict = load_file(written, _cfg("retail_marketing", "dataset.date_format=%d-%m-%Y"))
    pd.testing.assert_frame_equal(strict.frame, loaded.frame)
    day_first = loaded.frame["Dt_Customer"].iloc[0]
    month_first = (
        load_file(written, _cfg("retail_marketing", "dataset.date_format=monthfirst"))
        .frame["Dt_Customer"]
        .iloc[0]
    )
    assert day_first != month_first


MALL_VARIANTS = {
    "genre": lambda rows: [["CustomerID", "Genre", *rows[0][2:]],
                           *[[r[0].zfill(4), *r[1:]] for r in rows[1:]]],
    "snake": lambda rows: [["customer_id", "gender", "age", "annual_income", "spending_score"],
                           *rows[1:]],
}  # fmt: skip


@pytest.mark.parametrize(("variant", "delimiter"), [("genre", ","), ("snake", ";")])
def test_mall_header_variants(variant, delimiter, mall_canonical, tmp_path):
    path, canonical = mall_canonical
    rows = MALL_VARIANTS[variant](_rows(path, ","))
    written = _write(tmp_path / "m.csv", rows, delimiter=delimiter)
    loaded = load_file(written, _cfg("mall"))
    pd.testing.assert_frame_equal(loaded.frame, canonical.frame)
    assert loaded.detected["renamed"]
    assert (loaded.frame["Gender"] == "Female").sum() == 112


def test_mall_parquet_and_crlf(mall_canonical, tmp_path):
    path, canonical = mall_canonical
    pd.read_csv(path).to_parquet(tmp_path / "m.parquet")
    pd.testing.assert_frame_equal(
        load_file(tmp_path / "m.parquet", _cfg("mall")).frame, canonical.frame
    )
    (tmp_path / "m.csv").write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    loaded = load_file(tmp_path / "m.csv", _cfg("mall"))
    pd.testing.assert_frame_equal(loaded.frame, canonical.frame)
    assert loaded.detected["bom"] and loaded.detected["crlf"]
