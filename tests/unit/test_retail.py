"""Retail marketing dataset: cleaning counts and engineered values on the real file, the
synthetic generator, and a small retail sweep end to end."""

from __future__ import annotations

import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

from segmentation.config import compose
from segmentation.data import data_profile, load_dataset
from segmentation.data import retail_marketing as retail
from segmentation.errors import InputError
from segmentation.features import retail_marketing as retail_features
from segmentation.features.engineering import make_engineer
from segmentation.tracking.model import build_pipeline
from segmentation.tracking.segmenter import RowsRefused, Segmenter
from tests.conftest import real_file

FILE = "marketing_campaign.csv"


def _cfg(*overrides: str, data_dir=None):
    path = data_dir or real_file(FILE).parent
    return compose(["dataset=retail_marketing", f"paths.data_dir={path}", *overrides])


@pytest.fixture(scope="module")
def loaded():
    return load_dataset(_cfg().dataset)


def _rule(data, name: str) -> dict:
    return next(entry for entry in data.cleaning if entry["rule"] == name)


def test_cleaning_counts_each_rule_on_the_real_file(loaded):
    assert loaded.source == "real"
    assert loaded.rows_raw == 2240
    steps = [(e["rule"], e["rows_in"], e["rows_out"]) for e in loaded.cleaning]
    assert steps == [
        ("constant_columns", 2240, 2240),
        ("implausible", 2240, 2236),
        ("missing_income", 2236, 2236),
        ("missing_values", 2236, 2236),
        ("duplicates", 2236, 2236),
        ("marital_groups", 2236, 2236),
    ]
    assert _rule(loaded, "constant_columns")["dropped"] == {"Z_CostContact": 3, "Z_Revenue": 11}
    implausible = _rule(loaded, "implausible")
    assert (implausible["income_above_max"], implausible["year_birth_below_min"]) == (1, 3)
    income = _rule(loaded, "missing_income")
    assert income["rows"] == 24 and income["action"] == "median"
    assert _rule(loaded, "duplicates")["duplicates"] == 182
    assert _rule(loaded, "marital_groups")["folded"] == {"Alone": 3, "Absurd": 2, "YOLO": 2}
    frame = loaded.frame
    assert loaded.rows_clean == 2236
    assert "Z_CostContact" not in frame and "Z_Revenue" not in frame
    assert frame["Income"].notna().all() and frame["Income"].max() < 200000
    assert frame["Year_Birth"].min() >= 1901
    assert set(frame["Marital_Status"]) == {
        "Married", "Together", "Single", "Divorced", "Widow", "Other"
    }  # fmt: skip
    assert loaded.detected["delimiter"] == "tab"
    assert loaded.detected["dates"] == {
        "forms": ["dd-mm-yyyy"], "order": "dayfirst", "decided_by": "data"
    }  # fmt: skip


@pytest.mark.parametrize(
    ("override", "rows"),
    [
        ("dataset.cleaning.missing_income=drop", 2212),
        ("dataset.cleaning.implausible.action=keep", 2240),
        ("dataset.cleaning.duplicates=drop", 2236 - 182),
    ],
)
def test_cleaning_choices_from_config(override, rows):
    assert load_dataset(_cfg(override).dataset).rows_clean == rows


def test_engineered_values_of_a_known_customer(loaded):
    cfg = _cfg()
    engineer = make_engineer(cfg.dataset, loaded).fit(loaded.frame)
    assert engineer.reference_year_ == 2014
    assert engineer.reference_date_ == pd.Timestamp("2014-06-29")
    row = engineer.transform(loaded.frame)[loaded.frame["ID"] == "5524"].iloc[0]
    assert row["MntTotal"] == 1617 and row["Monetary"] == 1617
    assert row["Children"] == 0 and row["IsParent"] == 0
    assert row["Age"] == 57
    assert row["Frequency"] == row["TotalPurchases"] == 8 + 10 + 4
    assert row["Customer_Days"] == (pd.Timestamp("2014-06-29") - pd.Timestamp("2012-09-04")).days
    assert row["Education_Level"] == 2  # Graduation
    shares = row[[c for c in row.index if c.startswith("Share_")]]
    assert shares.sum() == pytest.approx(1.0)
    assert row["Share_Wines"] == pytest.approx(635 / 1617)
    # A raw row alone is ambiguous (04-09-2012): the order learned at fit decides, and the
    # reference date stays frozen, whatever the day the model scores.
    raw = pd.read_csv(real_file(FILE), sep="\t", nrows=1)
    one = engineer.transform(raw).iloc[0]
    assert one["Customer_Days"] == row["Customer_Days"] and one["Age"] == 57


def test_synthetic_generator_is_seeded_fast_and_cleanable():
    a, b = retail.generate(3000, 7), retail.generate(3000, 7)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(retail.generate(3000, 8))
    assert len(a.columns) == 29
    big = retail.generate(100_000, 1)
    assert len(big) == 100_000 and big["ID"].is_unique
    data = retail.prepare(a, _cfg(data_dir="/nonexistent").dataset, "synthetic")
    assert _rule(data, "missing_income")["rows"] == int(a["Income"].isna().sum()) > 0
    oddities = a["Marital_Status"].astype(str).value_counts()
    expected = {k: int(n) for k, n in oddities.items() if k in ("Alone", "Absurd", "YOLO")}
    assert _rule(data, "marital_groups")["folded"] == expected


def test_categories_are_read_whatever_the_exports_case():
    """An export that writes "MASTER" or " married " means Master and Married: the cleaning
    writes the config's spelling (oddities folded, levels checked) and the model's engineering
    reads raw rows (a REST request) alike; it read "married" as no partner, without a word."""
    cfg = _cfg(data_dir="/nonexistent").dataset
    rows = retail.generate(400, 3)
    shouted = rows.assign(
        Education=rows["Education"].str.upper(),
        Marital_Status=" " + rows["Marital_Status"].str.lower() + " ",
    )
    plain, odd = retail.prepare(rows, cfg, "plain"), retail.prepare(shouted, cfg, "odd")
    for column in ("Education", "Marital_Status"):
        known = plain.frame[column].isin(["Married", "Together", "Single", "Other", "Master"])
        pd.testing.assert_series_equal(odd.frame[column][known], plain.frame[column][known])
    assert _rule(odd, "marital_groups")["folded"] == _rule(plain, "marital_groups")["folded"]
    engineer = make_engineer(cfg, plain).fit(plain.frame)
    features = ["Education_Level", "HasPartner"]
    expected = engineer.transform(plain.frame)[features]
    assert expected["HasPartner"].sum() > 0
    pd.testing.assert_frame_equal(engineer.transform(odd.frame)[features], expected)
    raw = shouted.loc[plain.frame.index]  # the rows the cleaning kept, as sent
    pd.testing.assert_frame_equal(engineer.transform(raw)[features], expected)


def test_unknown_categories_are_refused_with_where_to_add_them():
    """An Education or Marital_Status the config does not know is refused, with its lines and
    the setting that takes it; an export's "Cohabiting" counted as no partner without a word.
    Folded through marital_groups, it is the status it is folded into."""
    rows = retail.generate(50, 4)
    cfg = _cfg(data_dir="/nonexistent").dataset
    for column, planted, message in (
        (
            "Education", {3: "Doctorate"},
            "'Doctorate' at line(s) 5; expected one of ['Basic', '2n Cycle', 'Graduation', "
            "'Master', 'PhD'] (add them to dataset.education_levels)",
        ),
        (
            "Marital_Status", {1: "Cohabiting", 6: "Widowed"},
            "'Cohabiting', 'Widowed' at line(s) 3, 8; expected one of ['Married', 'Together', "
            "'Single', 'Divorced', 'Widow', 'Alone', 'Absurd', 'YOLO', 'Other'] (fold them into "
            "a status with dataset.cleaning.marital_groups, e.g. "
            "'+dataset.cleaning.marital_groups.Cohabiting=Together')",
        ),
    ):  # fmt: skip
        odd = rows.assign(**{column: rows[column].astype(object)})
        odd.loc[list(planted), column] = list(planted.values())
        with pytest.raises(InputError) as refused:
            retail.prepare(odd, cfg, "f.csv")
        assert str(refused.value) == f"f.csv: column '{column}' has unknown values {message}"
    cfg = _cfg(
        "+dataset.cleaning.marital_groups.Cohabiting=Together",
        "+dataset.cleaning.marital_groups.Widowed=Widow",
        data_dir="/nonexistent",
    ).dataset
    data = retail.prepare(odd, cfg, "f.csv")  # the Marital_Status file of the last case
    assert _rule(data, "marital_groups")["folded"]["Cohabiting"] == 1
    assert data.frame.loc[[1, 6], "Marital_Status"].tolist() == ["Together", "Widow"]


def test_the_models_engineering_reads_statuses_as_the_cleaning_does():
    """Raw rows reach the logged model (a REST request) without the cleaning: a status the
    cleaning folds is the status it is folded into, and one the config does not know gives a
    missing HasPartner, which the model refuses. An export's "Cohabiting" counted as no partner
    there without a word, and a fold of it into Together was not applied."""
    cfg = _cfg(data_dir="/nonexistent").dataset
    data = retail.prepare(retail.generate(60, 4), cfg, "f.csv")
    statuses = ["Married", " together", "Single", "Divorced", "Widow", "Alone", "YOLO", "Other"]
    sample = data.frame.head(9).assign(Marital_Status=[*statuses, "Cohabiting"])
    engineer = make_engineer(cfg, data).fit(data.frame)
    has_partner = engineer.transform(sample)["HasPartner"]
    assert has_partner.head(8).tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    assert pd.isna(has_partner.iloc[8])
    pipeline = build_pipeline(
        engineer, ["Income", "HasPartner"], StandardScaler(), KMeans(2, random_state=0)
    )
    pipeline.fit(data.frame)
    segmenter = Segmenter(pipeline)
    assert len(segmenter.segment(sample.head(8))) == 8
    with pytest.raises(RowsRefused, match=r"feature\(s\) \['HasPartner'\] at row\(s\) \[8\]"):
        segmenter.segment(sample)
    folded = _cfg("+dataset.cleaning.marital_groups.Cohabiting=Together", data_dir="/nonexistent")
    engineer = make_engineer(folded.dataset, data).fit(data.frame)
    assert engineer.transform(sample)["HasPartner"].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 1]
    # Without the config (a bare RetailFeatures, or a model pickled before): as before.
    bare = retail_features.RetailFeatures().fit(data.frame)
    assert bare.transform(sample)["HasPartner"].iloc[8] == 0


def test_missing_file_falls_back_to_synthetic(tmp_path):
    data = load_dataset(_cfg(data_dir=tmp_path).dataset)
    assert data.source == "synthetic" and data.rows_raw == 2240
    assert "SYNTHETIC" in data.describe()


def test_data_profile(loaded):
    profile = data_profile(loaded)
    assert (profile["rows_raw"], profile["rows_clean"]) == (2240, 2236)
    income = profile["columns"]["Income"]
    assert income["dtype"] == "float64" and income["missing"] == 0
    assert (income["min"], income["max"]) == (1730.0, 162397.0)
    dates = profile["columns"]["Dt_Customer"]
    assert (dates["min"], dates["max"]) == ("2012-07-30", "2014-06-29")


def test_table_figures_of_batches_give_the_whole_tables_figures():
    """What an engine that prepares batches (Spark) aggregates: per batch, the rules run once,
    giving the cleaned rows and their dates and incomes as given; the table's max and median
    are then the figures the whole table gives at once; each cleaned batch finished with them
    is the whole table's cleaned rows, and batches prepared with_figures fill and engineer
    with them."""
    cfg = _cfg(data_dir="/nonexistent").dataset
    raw = retail.generate(3000, 5).astype(object)
    raw = raw.where(raw.notna(), None)
    whole = retail.prepare(raw, cfg, "t")
    (median,) = [c["value"] for c in whole.cleaning if c["rule"] == "missing_income"]
    expected = retail_features.RetailFeatures().fit(whole.frame)

    batches = [raw.iloc[i : i + 700] for i in range(0, len(raw), 700)]
    staged = [retail.prepare_batch(b, cfg, "t") for b in batches]
    rows = pd.concat([values for _, values in staged])
    assert len(rows) == len(whole.frame)
    assert rows["income_median"].isna().sum() == raw["Income"].isna().sum() > 0
    figures = {
        "reference_date": rows["reference_date"].max(),
        "income_median": float(rows["income_median"].median()),
    }
    assert figures == {
        "reference_date": str(expected.reference_date_.date()),
        "income_median": median,
    }
    finished = pd.concat(
        [retail.finish_batch(clean, cfg, figures) for clean, _ in staged], ignore_index=True
    )
    pd.testing.assert_frame_equal(finished, whole.frame)
    # A batch's own median differs; with the table's figures every batch fills alike.
    batch_cfg = retail.with_figures(cfg, figures)
    assert batch_cfg.cleaning.missing_income == median != cfg.cleaning.missing_income
    first = retail.prepare(batches[0], batch_cfg, "t")
    gaps = batches[0]["Income"].isna().to_numpy()
    filled = first.frame.set_index("ID").loc[batches[0]["ID"][gaps].astype(str), "Income"]
    assert (filled == median).all() and len(filled) == gaps.sum() > 0
    given = retail_features.RetailFeatures(**figures).fit(first.frame)
    assert given.reference_date_ == expected.reference_date_
    assert given.income_median_ == median
    pd.testing.assert_frame_equal(
        given.transform(first.frame),
        expected.transform(whole.frame.set_index("ID").loc[first.frame["ID"]].reset_index()),
        check_index_type=False,
    )


def test_missing_income_takes_a_number_and_refuses_other_text():
    cfg = _cfg("dataset.cleaning.missing_income=50000.0", data_dir="/nonexistent").dataset
    raw = retail.generate(400, 3)
    data = retail.prepare(raw, cfg, "t")
    assert _rule(data, "missing_income")["value"] == 50000.0
    bad = _cfg("dataset.cleaning.missing_income=mean", data_dir="/nonexistent").dataset
    with pytest.raises(InputError, match="expected median, drop or a number"):
        retail.prepare(raw, bad, "t")
