"""One place that renders the HTML pages (the sweep report, the drift page, the migration
report) from the Jinja2 templates in ``templates/``, and formats numbers for people.

Autoescape is on for every template: text from data (column names, persona names, file paths)
is escaped by the template engine, never by hand. Markup a page builds itself (an embedded
image) is passed through ``markupsafe.Markup`` by the caller.
"""

from __future__ import annotations

import math
from functools import cache
from typing import Any

import jinja2


def number(value: Any, unit: str = "", percent: bool = False) -> str:
    """A number as a person reads it: thousands separators, decimals by magnitude, never
    scientific notation (``1180.4`` -> ``1,180``; ``12.345`` -> ``12.3``; ``0.4567`` -> ``0.46``);
    ``percent`` reads a fraction as a percentage. ``-`` for missing values."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, str):
        return value
    v = float(value)
    if percent:
        text = f"{v:.0%}" if abs(v) >= 0.095 or v == 0 else f"{v:.1%}"
    elif abs(v) >= 100:
        text = f"{v:,.0f}"
    elif abs(v) >= 10:
        text = f"{v:,.1f}"
    else:
        text = f"{v:,.2f}"
    if "." in text and not percent:
        text = text.rstrip("0").rstrip(".")
    return f"{text} {unit}" if unit else text


def _pct(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{float(value):.{digits}%}"


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


@cache
def environment() -> jinja2.Environment:
    """The templates of this package, autoescaped, failing on an undefined name."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("segmentation.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = number
    env.filters["pct"] = _pct
    env.filters["fmt"] = _fmt
    return env


def render(template: str, **context: Any) -> str:
    """The page ``templates/<template>`` rendered with ``context``."""
    return environment().get_template(template).render(**context)
