"""Durations and dates as the command line writes them: ``90d``, ``12w``, ``2026-01-31``.

>>> parse_days("90d"), parse_days("12w"), parse_days("30")
(90, 84, 30)
>>> parse_date("2026-01-31")
datetime.date(2026, 1, 31)
"""

from __future__ import annotations

import datetime as dt
import re

_DURATION = re.compile(r"^\s*(\d+)\s*([dw]?)\s*$", re.IGNORECASE)


def parse_days(text: str) -> int:
    """A whole number of days from ``N``, ``Nd`` or ``Nw``; ``ValueError`` says what is accepted."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"{text!r} is not a duration; write days as '90d' (or '90') or weeks as '12w'")
    number, unit = int(match.group(1)), match.group(2).lower()
    days = number * 7 if unit == "w" else number
    if days <= 0:
        raise ValueError(f"{text!r}: a duration must be at least one day")
    return days


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(text).strip())
    except ValueError:
        raise ValueError(f"{text!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-01-31") from None
