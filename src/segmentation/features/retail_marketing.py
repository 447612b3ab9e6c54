"""Retail marketing features (``conf/dataset/retail_marketing.yaml``'s ``engineer``): numeric
features engineered from raw rows, the first step of every pipeline of this dataset, so that it
travels inside the logged model and scores raw rows as training saw them."""

from __future__ import annotations

from typing import Any

import pandas as pd
from omegaconf import DictConfig
from sklearn.base import BaseEstimator, TransformerMixin

from segmentation.data import LoadedData
from segmentation.data.reading import (
    DATE_ORDERS,
    as_numbers,
    as_spellings,
    parse_dates,
    spelled_as,
)
from segmentation.data.retail_marketing import (
    CAMPAIGNS,
    CHANNELS,
    DATE,
    DEFAULT_LEVELS,
    DEFAULT_PARTNER,
    PASSTHROUGH,
    SPEND,
    marital_statuses,
)
from segmentation.errors import InputError


class RetailFeatures(TransformerMixin, BaseEstimator):
    """Engineer numeric features from raw marketing campaign rows.

    Age and Customer_Days are measured at the latest Dt_Customer seen at fit (frozen, never
    today's date), and missing Income is filled with the median seen at fit, so the logged
    model scores raw rows the same way tomorrow as today.

    Parameters
    ----------
    education_levels : dict of str to int, optional
        Ordered level of each Education value (unknown values give NaN).
    date_order : str, optional
        ``dayfirst`` or ``monthfirst``: the training file's day/month order, used for
        Dt_Customer text when a scored batch does not decide it.
    partner_statuses : sequence of str, optional
        Marital_Status values meaning the customer lives with a partner.
    no_partner_statuses : sequence of str, optional
        Marital_Status values meaning the customer does not; when given, any other value
        (an export's ``Cohabiting``) gives a missing HasPartner, which scoring refuses, instead
        of counting as no partner.

    reference_date : str, optional
        Dt_Customer to measure Age and Customer_Days at, when it was learnt beforehand (the
        whole table's latest, computed by an engine that prepares it in batches); else the
        latest seen at fit.
    income_median : float, optional
        Likewise for the median Income.

    Attributes
    ----------
    reference_date_ : pandas.Timestamp
        Latest Dt_Customer at fit (or ``reference_date``).
    reference_year_ : int
        Its year: Age = reference_year_ - Year_Birth.
    income_median_ : float
        Median Income at fit (or ``income_median``).
    """

    def __init__(
        self,
        education_levels: dict[str, int] | None = None,
        date_order: str | None = None,
        partner_statuses: tuple[str, ...] | None = None,
        no_partner_statuses: tuple[str, ...] | None = None,
        reference_date: str | None = None,
        income_median: float | None = None,
    ):
        self.education_levels = education_levels
        self.date_order = date_order
        self.partner_statuses = partner_statuses
        self.no_partner_statuses = no_partner_statuses
        self.reference_date = reference_date
        self.income_median = income_median

    def fit(self, X: pd.DataFrame, y: object = None) -> RetailFeatures:
        dates, info = self._dates(X, self.date_order)
        if dates.isna().all():
            raise InputError(f"model input: column '{DATE}' has no dates to learn from")
        self.date_order_ = info.get("order") or self.date_order
        self.reference_date_ = pd.Timestamp(
            dates.max() if self.reference_date is None else self.reference_date
        )
        self.reference_year_ = int(self.reference_date_.year)
        self.income_median_ = float(
            as_numbers(X["Income"]).median() if self.income_median is None else self.income_median
        )
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        dates, _ = self._dates(X, self.date_order_)
        num = {c: as_numbers(X[c]) for c in PASSTHROUGH}
        levels = self.education_levels or DEFAULT_LEVELS
        partner = set(self.partner_statuses or DEFAULT_PARTNER)
        # A model pickled before the parameter existed counts every other status as no partner.
        no_partner = getattr(self, "no_partner_statuses", None)
        known = partner | set(no_partner or ())
        out = pd.DataFrame(index=X.index)
        out["Age"] = self.reference_year_ - as_numbers(X["Year_Birth"])
        out["Income"] = as_numbers(X["Income"]).fillna(self.income_median_)
        # Whatever the case of the export's spelling ("MASTER", "married"), as at cleaning.
        education = spelled_as(X["Education"], as_spellings(levels))
        # A lookup by index: Series.map of a text column calls Python for every value.
        out["Education_Level"] = pd.Series(levels, dtype=float).reindex(education).to_numpy()
        out["Kidhome"], out["Teenhome"] = num["Kidhome"], num["Teenhome"]
        out["Children"] = num["Kidhome"] + num["Teenhome"]
        out["IsParent"] = (out["Children"] > 0).astype(float)
        status = spelled_as(X["Marital_Status"], as_spellings(known))
        out["HasPartner"] = status.isin(partner).astype(float)
        if no_partner is not None:
            out["HasPartner"] = out["HasPartner"].where(status.isin(known))
        out["Customer_Days"] = (self.reference_date_ - dates).dt.days.astype(float)
        out["Recency"] = num["Recency"]
        for column in SPEND:
            out[column] = num[column]
        out["MntTotal"] = out[list(SPEND)].sum(axis=1, min_count=len(SPEND))
        # A customer who spent nothing has no mix: equal shares keep the row usable.
        total = out["MntTotal"].where(out["MntTotal"] > 0)
        for column, share in SPEND.items():
            out[share] = (out[column] / total).fillna(1 / len(SPEND))
        for column in ["NumDealsPurchases", *CHANNELS, "NumWebVisitsMonth"]:
            out[column] = num[column]
        out["TotalPurchases"] = out[CHANNELS].sum(axis=1, min_count=len(CHANNELS))
        for column in CAMPAIGNS:
            out[column] = num[column]
        out["TotalAcceptedCmp"] = out[CAMPAIGNS].sum(axis=1, min_count=len(CAMPAIGNS))
        out["Complain"], out["Response"] = num["Complain"], num["Response"]
        out["Frequency"] = out["TotalPurchases"]
        out["Monetary"] = out["MntTotal"]
        return out.astype(float)

    def _dates(self, X: pd.DataFrame, order: str | None) -> tuple[pd.Series, dict[str, Any]]:
        if not isinstance(X, pd.DataFrame):
            raise InputError("retail features need a table with named columns")
        needed = ["Year_Birth", "Income", "Education", "Marital_Status", DATE, *PASSTHROUGH]
        missing = [c for c in needed if c not in X.columns]
        if missing:
            raise InputError(f"model input: column(s) {missing} missing; found {list(X.columns)}")
        if pd.api.types.is_datetime64_any_dtype(X[DATE]):
            return X[DATE].astype("datetime64[ns]"), {}
        return parse_dates(X[DATE], DATE, "model input", None, order)


def engineer(cfg: DictConfig | None = None, data: LoadedData | None = None) -> RetailFeatures:
    """The feature engineering step of this dataset's pipelines (settings from the config)."""
    if cfg is None:
        return RetailFeatures()
    known, partner = marital_statuses(cfg.cleaning)
    return RetailFeatures(
        education_levels=dict(cfg.education_levels),
        date_order=_date_order(cfg.date_format, data),
        partner_statuses=tuple(partner),
        no_partner_statuses=tuple(s for s in known if s not in partner),
    )


def _date_order(date_format: str | None, data: LoadedData | None) -> str | None:
    """The day/month order of the training file: detected, configured, or read off a format."""
    detected = (data.detected.get("dates") or {}).get("order") if data is not None else None
    if detected or not date_format:
        return detected
    if date_format in DATE_ORDERS:
        return date_format
    day, month = date_format.find("%d"), date_format.find("%m")
    if day < 0 or month < 0:
        return None
    return "dayfirst" if day < month else "monthfirst"
