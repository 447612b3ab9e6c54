"""Bad input is refused with one line, before any MLflow run or Optuna study exists.

The files are written from the seeded retail generator as the real file is written (see
``tests.test_datasets.retail_text``), with the property each test relies on planted; the test
named ``test_real_*`` reads the real file (``real_file``: skipped locally when absent, failing in
CI)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from omegaconf import OmegaConf

from segmentation.config import compose
from segmentation.data import load_dataset, mall
from segmentation.data.reading import map_columns
from segmentation.errors import InputError
from segmentation.study.sweep import run_sweep
from tests.conftest import make_cfg, real_file
from tests.unit.test_datasets import retail_text

FILE = "marketing_campaign.csv"
ROWS = 300


@pytest.fixture(scope="module")
def canonical() -> pd.DataFrame:
    """Generated retail customers as text, as a user would edit the real file; planted: its
    latest enrolment date (2014-06-29), which the negative-age refusal names."""
    frame = retail_text(ROWS)
    frame.loc[0, "Dt_Customer"] = "29-06-2014"
    return frame


def _write(frame: pd.DataFrame, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    frame.to_csv(folder / FILE, sep="\t", index=False)
    return folder


def _refused(store: Path, data_dir: Path, pattern: str, *overrides: str) -> str:
    cfg = make_cfg(store, "experiments=retail_rfm", *overrides, data_dir=data_dir)
    with pytest.raises(InputError, match=pattern) as info:
        run_sweep(cfg)
    message = str(info.value)
    assert "\n" not in message
    # Nothing written: no tracking database, no artifacts, no study journal.
    assert list(store.iterdir()) == []
    return message


def _edit(frame: pd.DataFrame, column: str, rows: list[int], value: str) -> pd.DataFrame:
    out = frame.copy()
    out.loc[rows, column] = value
    return out


def test_missing_file_without_fallback(store, tmp_path):
    message = _refused(
        store, tmp_path / "nowhere", "file not found", "dataset.synthetic_fallback=false"
    )
    assert FILE in message


def test_empty_file(store, tmp_path):
    (tmp_path / FILE).write_bytes(b"")
    _refused(store, tmp_path, r"marketing_campaign.csv: file is empty")


def test_required_column_missing(store, tmp_path, canonical):
    message = _refused(
        store, _write(canonical.drop(columns=["MntWines"]), tmp_path),
        r"required column 'MntWines' \(tried: MntWines, wines, amount_wines\) not found",
    )  # fmt: skip
    assert "columns found: 'ID', 'Year_Birth'" in message
    assert "columns; presets for it" not in message  # a retail file, one column short


def test_another_datasets_file_is_refused_naming_its_presets(store, tmp_path, canonical):
    """The Mall file where a retail preset reads, and the retail header under a Mall preset
    (``make predict`` without EXPERIMENT=): the refusal says which presets read it."""
    mall.generate(50, 1).to_csv(tmp_path / FILE, sep="\t", index=False)
    message = _refused(store, tmp_path, r"required column 'Year_Birth' .* not found")
    assert message.endswith(
        "; these are dataset mall's columns; presets for it: mall_age_spending, mall_all, "
        "mall_income_spending (EXPERIMENT=<preset>)"
    )
    mall_columns = OmegaConf.to_container(compose().dataset.columns)
    with pytest.raises(InputError, match=r"required column 'Age'") as refused:
        map_columns(canonical.head(0), mall_columns, "customers.csv")
    assert str(refused.value).endswith(
        "; these are dataset retail_marketing's columns; presets for it: "
        "retail_demographic_spend, retail_rfm, retail_spend_mix (EXPERIMENT=<preset>)"
    )


# Bad values, one refusal each: (column, rows to edit (None: all), new value) and the message.
VALUE_REFUSALS = {
    "text_in_numeric_column": (
        [("Income", [3], "n/a?"), ("Income", [10], "55,000 EUR")],
        r"column 'Income' has text where numbers are expected: 'n/a\?', '55,000 EUR' "
        r"at line\(s\) 5, 12",
    ),
    "column_entirely_empty": ([("Recency", None, "")], r"column 'Recency' is entirely empty"),
    "negative_amounts": (
        [("MntMeatProducts", [0], "-546")],
        r"column 'MntMeatProducts' has values below 0 .*: -546 at line\(s\) 2",
    ),
    "negative_ages": (
        [("Year_Birth", [1], "2031")],
        r"'Year_Birth' has birth years after the latest Dt_Customer year 2014 \(negative ages\): "
        r"2031 at line\(s\) 3",
    ),
}


@pytest.mark.parametrize(
    ("edits", "pattern"), list(VALUE_REFUSALS.values()), ids=list(VALUE_REFUSALS)
)
def test_bad_values_refused(store, tmp_path, canonical, edits, pattern):
    bad = canonical
    for column, rows, value in edits:
        bad = _edit(bad, column, list(canonical.index) if rows is None else rows, value)
    _refused(store, _write(bad, tmp_path), pattern)


def test_ambiguous_dates(store, tmp_path, canonical):
    # Planted: every day folded into 1-12 (month kept), so no date decides the day/month order.
    days = canonical["Dt_Customer"].str[:2].astype(int)
    early = canonical.assign(
        Dt_Customer=((days - 1) % 12 + 1).map("{:02d}".format) + canonical["Dt_Customer"].str[2:]
    )
    _refused(store, _write(early, tmp_path), r"'Dt_Customer' has ambiguous dates.*date_format")


def test_fewer_rows_than_the_k_range_needs(store, tmp_path, canonical):
    _refused(
        store, _write(canonical.head(11), tmp_path),
        r"11 usable rows, fewer than the 12 that the k range up to 6 needs",
    )  # fmt: skip


def _rule(data, name: str) -> dict:
    return next(entry for entry in data.cleaning if entry["rule"] == name)


def test_cleaning_handles_what_it_can(store, tmp_path, canonical):
    """Missing incomes are imputed with the median and reported, not refused (no sweep needed)."""
    planted = [2, 30, 31, 150, 299]
    frame = _edit(canonical, "Income", planted, "")
    cfg = make_cfg(store, "experiments=retail_rfm", data_dir=_write(frame, tmp_path))
    data = load_dataset(cfg.dataset)
    rule = _rule(data, "missing_income")
    median = pd.to_numeric(canonical["Income"].drop(index=planted)).median()
    assert (rule["rows"], rule["action"], rule["value"]) == (5, "median", median)
    assert (rule["rows_in"], rule["rows_out"], data.rows_clean) == (ROWS, ROWS, ROWS)
    assert (data.frame.loc[planted, "Income"] == median).all()
    assert _rule(data, "missing_values")["columns"] == {}


def test_missing_values_are_counted_per_column_before_the_drop(store, tmp_path, canonical):
    """Regression: the per-column counts were taken after the incomplete rows were dropped, so
    ``columns`` was always empty."""
    frame = _edit(canonical, "Recency", [4, 40, 140], "")
    frame = _edit(frame, "MntWines", [7, 70], "")
    cfg = make_cfg(store, "experiments=retail_rfm", data_dir=_write(frame, tmp_path))
    data = load_dataset(cfg.dataset)
    rule = _rule(data, "missing_values")
    assert (rule["rows_in"], rule["rows_out"]) == (ROWS, ROWS - 5)
    assert rule["columns"] == {"Recency": 3, "MntWines": 2}
    dropped = {str(canonical.loc[i, "ID"]) for i in (4, 40, 140, 7, 70)}
    assert dropped.isdisjoint(data.frame["ID"]) and data.rows_clean == ROWS - 5


def test_real_file_missing_incomes_imputed(store):
    """The real file (real_file): its 24 missing incomes are imputed, none refused."""
    cfg = make_cfg(store, "experiments=retail_rfm", data_dir=real_file(FILE).parent)
    data = load_dataset(cfg.dataset)
    rule = _rule(data, "missing_income")
    assert (rule["rows"], rule["action"]) == (24, "median")
    assert data.frame["Income"].notna().all()
