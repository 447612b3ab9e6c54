"""Retail marketing customers (Kaggle "Customer Personality Analysis", marketing_campaign.csv).

29 columns: demographics (Year_Birth, Education, Marital_Status, Income, Kidhome, Teenhome),
enrolment date (Dt_Customer), spend per category (Mnt*), purchases per channel (Num*),
campaign responses (AcceptedCmp1-5, Response), Complain and two constant columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from segmentation.data import LoadedData
from segmentation.data.reading import (
    _rows,
    as_spellings,
    category_text,
    map_columns,
    parse_dates,
    typed_frame,
)
from segmentation.errors import InputError

DATE = "Dt_Customer"
SPEND = {
    "MntWines": "Share_Wines",
    "MntFruits": "Share_Fruits",
    "MntMeatProducts": "Share_Meat",
    "MntFishProducts": "Share_Fish",
    "MntSweetProducts": "Share_Sweets",
    "MntGoldProds": "Share_Gold",
}
CHANNELS = ["NumWebPurchases", "NumCatalogPurchases", "NumStorePurchases"]
CAMPAIGNS = [f"AcceptedCmp{i}" for i in range(1, 6)]
PASSTHROUGH = [
    "Kidhome", "Teenhome", "Recency", *SPEND, "NumDealsPurchases", *CHANNELS,
    "NumWebVisitsMonth", *CAMPAIGNS, "Complain", "Response",
]  # fmt: skip
DEFAULT_LEVELS = {"Basic": 0, "2n Cycle": 1, "Graduation": 2, "Master": 3, "PhD": 4}
DEFAULT_PARTNER = ("Married", "Together")


def marital_statuses(cleaning: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """The Marital_Status values the ``cleaning`` rules know (partner and no-partner statuses,
    then the ``marital_groups`` folds and what they fold into), and those meaning a partner:
    a folded status is the status it is folded into. The cleaning refuses any other value; the
    logged model, which reads raw rows without the folds, reads them alike."""
    groups = dict(cleaning["marital_groups"])
    partner = list(cleaning["partner_statuses"])
    known = list(
        dict.fromkeys([*partner, *cleaning["no_partner_statuses"], *groups, *groups.values()])
    )
    return known, [s for s in known if groups.get(s, s) in partner]


# Synthetic segments: (share, income mean, income sd, spend per income unit, kids rate,
# teens rate, campaign acceptance rate, spend-mix weights wines/fruits/meat/fish/sweets/gold).
_SEGMENTS = [
    (0.40, 33000, 9000, 0.0012, 0.8, 0.4, 0.03, (3, 1.5, 2, 1.5, 1.5, 2.5)),
    (0.30, 56000, 10000, 0.009, 0.3, 0.8, 0.07, (6, 0.8, 2.5, 0.8, 0.7, 1)),
    (0.20, 76000, 9000, 0.019, 0.05, 0.2, 0.15, (5, 1.2, 4, 1.5, 1.2, 0.8)),
    (0.10, 84000, 8000, 0.024, 0.02, 0.1, 0.45, (8, 0.5, 3, 0.6, 0.5, 0.6)),
]
_EDUCATION = (["Graduation", "PhD", "Master", "2n Cycle", "Basic"], [0.5, 0.22, 0.165, 0.09, 0.025])
_MARITAL = (
    ["Married", "Together", "Single", "Divorced", "Widow", "Alone", "Absurd", "YOLO"],
    [0.386, 0.259, 0.214, 0.104, 0.034, 0.0013, 0.0009, 0.0008],
)
_FIRST_DAY, _DAYS = np.datetime64("2012-07-30"), 700  # 2012-07-30 .. 2014-06-29


def generate(n_rows: int, seed: int) -> pd.DataFrame:
    """Seeded synthetic customers with the real file's 29 columns, vectorised (millions of rows).

    Four spend/income groups; Income missing in about 1% of rows and the real file's
    Marital_Status oddities appear, so cleaning has work to do.
    """
    rng = np.random.default_rng(seed)
    shares = np.array([s[0] for s in _SEGMENTS])
    group = rng.choice(len(_SEGMENTS), size=n_rows, p=shares / shares.sum())
    params = np.array([s[1:7] for s in _SEGMENTS], dtype=float)[group]
    income = np.clip(rng.normal(params[:, 0], params[:, 1]), 2000, 160000).round()
    kids = np.minimum(rng.poisson(params[:, 3]), 2)
    teens = np.minimum(rng.poisson(params[:, 4]), 2)
    total = income * params[:, 2] * rng.lognormal(0, 0.35, n_rows) / (1 + 0.3 * (kids + teens))
    weights = np.array([s[7] for s in _SEGMENTS], dtype=float)[group]
    # Lognormal noise around each group's weights: as varied as a Dirichlet, several times faster.
    mix = weights * rng.lognormal(0.0, 0.5, weights.shape)
    mix /= mix.sum(axis=1, keepdims=True)
    spend = np.maximum(np.round(mix * total[:, None]), 0).astype(np.int64)
    purchases = np.maximum(1, total / 60 + rng.normal(0, 2, n_rows))
    channel_mix = np.array([2.0, 1.0, 3.5]) * rng.lognormal(0.0, 0.5, (n_rows, 3))
    channel_mix /= channel_mix.sum(axis=1, keepdims=True)
    channels = np.floor(channel_mix * purchases[:, None]).astype(np.int64)
    accepted = rng.random((n_rows, 6)) < params[:, 5:6]
    days = rng.integers(0, _DAYS, n_rows)
    # Format each distinct day once: strftime on a million dates would dominate the run time.
    labels = pd.DatetimeIndex(_FIRST_DAY + np.arange(_DAYS)).strftime("%d-%m-%Y")
    frame = {
        "ID": np.arange(1, n_rows + 1),
        "Year_Birth": np.clip(rng.normal(1969, 12, n_rows).round(), 1940, 1996).astype(np.int64),
        "Education": _categorical(rng, *_EDUCATION, n_rows),
        "Marital_Status": _categorical(rng, *_MARITAL, n_rows),
        "Income": income,
        "Kidhome": kids,
        "Teenhome": teens,
        DATE: pd.Categorical.from_codes(days, labels),
        "Recency": rng.integers(0, 100, n_rows),
    }
    frame.update({name: spend[:, i] for i, name in enumerate(SPEND)})
    frame["NumDealsPurchases"] = np.minimum(rng.poisson(1 + kids + teens), 15)
    frame.update({name: channels[:, i] for i, name in enumerate(CHANNELS)})
    frame["NumWebVisitsMonth"] = np.clip(
        np.round(9 - income / 12000 + rng.normal(0, 1.5, n_rows)), 0, 20
    ).astype(np.int64)
    income[rng.random(n_rows) < 0.011] = np.nan
    frame["Income"] = income
    frame.update({name: accepted[:, i].astype(np.int64) for i, name in enumerate(CAMPAIGNS)})
    frame["Complain"] = (rng.random(n_rows) < 0.009).astype(np.int64)
    frame["Z_CostContact"] = np.full(n_rows, 3)
    frame["Z_Revenue"] = np.full(n_rows, 11)
    frame["Response"] = accepted[:, 5].astype(np.int64)
    return pd.DataFrame(frame)


def _categorical(rng: np.random.Generator, values: list[str], p: list[float], n: int):
    """Text drawn with probabilities ``p``, as a categorical (text arrays of a million rows are
    slow to build)."""
    weights = np.asarray(p) / np.sum(p)
    return pd.Categorical.from_codes(rng.choice(len(values), size=n, p=weights), values)


def prepare(raw: pd.DataFrame, cfg: DictConfig, path: str) -> LoadedData:
    """Map headers, type and validate every column, then apply the configured cleaning rules.

    The cleaned frame keeps the raw columns (the model's input), Dt_Customer as ISO text; each
    rule adds ``{"rule", "rows_in", "rows_out", "why", ...}`` to the cleaning report.
    """
    columns: dict[str, dict[str, Any]] = OmegaConf.to_container(cfg.columns, resolve=True)
    rules = OmegaConf.to_container(cfg.cleaning, resolve=True)
    rows_raw = len(raw)
    frame, renamed = map_columns(raw, columns, path)
    ignored = [c for c in frame.columns if c not in columns]
    frame = typed_frame(frame[[c for c in columns if c in frame.columns]], columns, path)
    date_column = str(cfg.date_column)
    dates, date_info = parse_dates(frame[date_column], date_column, path, cfg.date_format)
    if dates.isna().all():
        raise InputError(f"{path}: column '{date_column}' is entirely empty (expected dates)")
    _refuse_negative_ages(frame, dates, date_column, path)
    frame[date_column] = _iso_text(dates)
    levels = dict(cfg.education_levels)
    frame["Education"] = category_text(frame["Education"], as_spellings(levels))
    _check_categories(frame, "Education", levels, path, "add them to dataset.education_levels")
    groups = dict(rules["marital_groups"])
    statuses = dict.fromkeys(marital_statuses(rules)[0])
    frame["Marital_Status"] = category_text(frame["Marital_Status"], as_spellings(statuses))
    # An unknown status would silently count as no partner (HasPartner, the personas).
    _check_categories(
        frame, "Marital_Status", statuses, path,
        "fold them into a status with dataset.cleaning.marital_groups, e.g. "
        "'+dataset.cleaning.marital_groups.Cohabiting=Together'",
    )  # fmt: skip
    cleaning: list[dict[str, Any]] = []

    def record(rule: str, rows_in: int, why: str, **extra: Any) -> None:
        cleaning.append(
            {"rule": rule, "rows_in": rows_in, "rows_out": len(frame), "why": why, **extra}
        )

    # 1. Constant columns.
    constant = {}
    for column in rules["constant_columns"]:
        if column in frame.columns and frame[column].nunique(dropna=False) <= 1:
            constant[column] = _plain(frame[column].iloc[0]) if len(frame) else None
    frame = frame.drop(columns=list(constant))
    record("constant_columns", len(frame), "one value for every customer", dropped=constant)

    # 2. Implausible values.
    implausible = rules["implausible"]
    rows_in, frame_ids = len(frame), frame[str(cfg.id_column)]
    income_max, year_birth_min = implausible["income_max"], implausible["year_birth_min"]
    high_income = frame["Income"] > (np.inf if income_max is None else float(income_max))
    old = frame["Year_Birth"] < (-np.inf if year_birth_min is None else float(year_birth_min))
    action = implausible["action"]
    if action == "drop":
        frame = frame[~(high_income | old)]
    record(
        "implausible", rows_in,
        f"Income above {income_max} or Year_Birth before {year_birth_min}",
        action=action, income_above_max=int(high_income.sum()), year_birth_below_min=int(old.sum()),
        ids=[str(v) for v in frame_ids[high_income | old]],
    )  # fmt: skip

    # 3. Missing Income.
    rows_in, missing = len(frame), frame["Income"].isna()
    how = rules["missing_income"]
    if how == "drop":
        frame = frame[~missing]
        record("missing_income", rows_in, "Income missing", action="drop", rows=int(missing.sum()))
    elif how == "median" or _is_number(how):
        # A number is a median learnt beforehand: the whole table's, when it is prepared in
        # batches (Spark; see TABLE_FIGURES).
        median = float(frame["Income"].median() if how == "median" else how)
        frame = frame.assign(Income=frame["Income"].fillna(median))
        # column and value: the logged model fills a missing Income with the same figure.
        record(
            "missing_income", rows_in, "Income missing", action="median",
            rows=int(missing.sum()), column="Income", value=median,
        )  # fmt: skip
    else:
        raise InputError(
            f"dataset.cleaning.missing_income '{how}': expected median, drop or a number"
        )

    # 4. Other missing values cannot be filled sensibly: the row is dropped.
    rows_in = len(frame)
    needed = [c for c, spec in columns.items() if c in frame.columns and spec.get("kind") != "id"]
    absent = frame[needed].isna()
    incomplete = absent.any(axis=1)
    # Counted before the drop: afterwards no value is missing.
    per_column = {c: int(n) for c, n in absent.sum().items() if n}
    frame = frame[~incomplete]
    record("missing_values", rows_in, "a needed value is missing", columns=per_column)

    # 5. Customers identical in every column but the id (before folding, which would add one).
    rows_in = len(frame)
    id_column = str(cfg.id_column)
    others = [c for c in frame.columns if c != id_column]
    duplicated = frame.duplicated(subset=others)
    how = rules["duplicates"]
    if how == "drop":
        frame = frame[~duplicated]
    record(
        "duplicates", rows_in, f"identical in every column but {id_column}",
        action=how, duplicates=int(duplicated.sum()),
    )  # fmt: skip

    # 6. Marital_Status oddities folded into groups.
    folded = frame["Marital_Status"].isin(list(groups))
    counts = {str(k): int(v) for k, v in frame.loc[folded, "Marital_Status"].value_counts().items()}
    frame = frame.assign(Marital_Status=frame["Marital_Status"].replace(groups))
    record("marital_groups", len(frame), "status oddities folded", folded=counts, groups=groups)

    detected: dict[str, Any] = {"dates": date_info}
    if renamed:
        detected["renamed"] = renamed
    if ignored:
        detected["ignored_columns"] = ignored
    return LoadedData(
        frame=frame.reset_index(drop=True), name=str(cfg.name), source="real", path=path,
        rows_raw=rows_raw, detected=detected, cleaning=cleaning,
    )  # fmt: skip


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# Figures the cleaning and the engineering learn from the whole table: how each aggregates the
# values of prepare_batch, and their type. An engine that prepares the table batch by batch
# (Spark) runs the rules once per batch (prepare_batch: the cleaned rows and their figure
# values), aggregates the figures over every row, then finishes each cleaned batch with them
# (finish_batch) and sets them on the engineering step (RetailFeatures' parameters of the same
# names).
TABLE_FIGURES = {"reference_date": ("max", "string"), "income_median": ("median", "double")}
# What prepare_batch fills a missing Income with until the table's median is known: the
# column's rule refuses a negative Income, so the mark cannot be a customer's.
UNFILLED_INCOME = -1.0


def prepare_batch(
    raw: pd.DataFrame, cfg: DictConfig, path: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per batch of raw rows, the cleaning rules once: the cleaned rows (a missing Income, under
    ``missing_income: median``, marked ``UNFILLED_INCOME`` for :func:`finish_batch`) and, row
    for row, their values of each of ``TABLE_FIGURES`` (Dt_Customer as ISO text; Income as
    given, missing where it was missing)."""
    fills = cfg.cleaning.get("missing_income", "median") == "median"
    if fills:
        cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        cfg.cleaning.missing_income = UNFILLED_INCOME
    clean = prepare(raw, cfg, path).frame
    income = clean["Income"].astype(float)
    values = pd.DataFrame(
        {
            "reference_date": clean[str(cfg.get("date_column", DATE))].astype(object),
            "income_median": income.where(income != UNFILLED_INCOME) if fills else income,
        }
    )
    return clean, values


def finish_batch(clean: pd.DataFrame, cfg: DictConfig, figures: dict[str, Any]) -> pd.DataFrame:
    """Cleaned rows of :func:`prepare_batch` as ``prepare`` with the table's figures gives them
    (:func:`with_figures`): a missing Income filled with the table's median."""
    if cfg.cleaning.get("missing_income", "median") != "median":
        return clean
    income = pd.to_numeric(clean["Income"])
    return clean.assign(
        Income=income.where(income != UNFILLED_INCOME, float(figures["income_median"]))
    )


def with_figures(cfg: DictConfig, figures: dict[str, Any]) -> DictConfig:
    """The dataset config that prepares a batch with the whole table's figures: a missing
    Income filled with the table's median (not the batch's)."""
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    if out.cleaning.missing_income == "median":
        out.cleaning.missing_income = float(figures["income_median"])
    return out


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _iso_text(dates: pd.Series) -> pd.Series:
    """Dates as ``YYYY-MM-DD`` text (one format whatever the file used), formatted per day."""
    codes, days = pd.factorize(dates)
    text = np.asarray(pd.DatetimeIndex(days).strftime("%Y-%m-%d"), dtype=object)
    out = np.where(codes >= 0, text[np.maximum(codes, 0)] if len(text) else None, None)
    return pd.Series(out, index=dates.index, dtype=object)


def _refuse_negative_ages(frame: pd.DataFrame, dates: pd.Series, date_column: str, path) -> None:
    latest = int(dates.max().year)
    future = frame["Year_Birth"] > latest
    if future.any():
        shown = ", ".join(f"{v:g}" for v in frame.loc[future, "Year_Birth"].head(3))
        raise InputError(
            f"{path}: column 'Year_Birth' has birth years after the latest {date_column} year "
            f"{latest} (negative ages): {shown} at line(s) {_rows(frame.index[future])}"
        )


def _check_categories(frame: pd.DataFrame, column: str, known: dict, path, hint: str) -> None:
    unknown = frame[column].notna() & ~frame[column].isin(list(known))
    if unknown.any():
        shown = ", ".join(repr(v) for v in frame.loc[unknown, column].unique()[:3])
        raise InputError(
            f"{path}: column '{column}' has unknown values {shown} at line(s) "
            f"{_rows(frame.index[unknown])}; expected one of {list(known)} ({hint})"
        )
