"""How numbers are written, the same in the HTML report and on the dashboard's pages.

Pure functions of one value; a missing value, text that is not a number, NaN and infinities all
show as a dash.

>>> num(1234.5678), pct(0.1234), count(12345.6), money(-3.5), signed(2), pp(0.031)
('1,234.568', '12.3%', '12,346', '-3.50', '+2.00', '+3.1 pp')
>>> num(None), pct(float("nan")), count("n/a")
('—', '—', '—')

A predicted probability goes through :func:`probability`, never :func:`pct`: it never reads as
certain (100%) or impossible (0%).
"""

from __future__ import annotations

import math

__all__ = ["count", "finite", "formatted", "money", "num", "pct", "pp", "probability", "signed"]


def finite(value: object) -> float | None:
    """``value`` as a number, or None when it is missing, not a number, NaN or infinite."""
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def formatted(value: object, spec: str) -> str:
    """``value`` written with the format ``spec``; "—" when it is not a finite number.

    >>> formatted(1234.5, ",.1f"), formatted(None, ",.1f"), formatted(float("nan"), ".0%")
    ('1,234.5', '—', '—')
    """
    x = finite(value)
    return "—" if x is None else format(x, spec)


def num(value: object, digits: int = 3) -> str:
    return formatted(value, f",.{digits}f")


def pct(value: object, digits: int = 1) -> str:
    return formatted(value, f".{digits}%")


def probability(value: object, digits: int = 1) -> str:
    """A predicted probability as a percentage that never reads as certain: a value that would
    print as 100% shows as ">99.9%" (">99%" with ``digits=0``), one that would print as 0% as
    "<0.1%" ("<1%"). A calibrated model's top step can be exactly 1.0 (isotonic calibration), yet
    no customer is certain to leave. Only what is shown changes; stored numbers stay as they are.

    >>> probability(0.8734), probability(1.0), probability(0.99996), probability(0.0)
    ('87.3%', '>99.9%', '>99.9%', '<0.1%')
    >>> probability(1.0, 0), probability(0.004, 0), probability(0.5, 0), probability(None)
    ('>99%', '<1%', '50%', '—')
    """
    x = finite(value)
    if x is None:
        return "—"
    step = 10.0 ** -digits  # the smallest step shown, in percent
    shown = round(100 * x, digits)
    if shown >= 100:
        return f">{100 - step:.{digits}f}%"
    if shown <= 0:
        return f"<{step:.{digits}f}%"
    return f"{x:.{digits}%}"


def count(value: object) -> str:
    x = finite(value)
    return "—" if x is None else f"{round(x):,}"


def money(value: object) -> str:
    return num(value, 2)


def signed(value: object, digits: int = 2) -> str:
    return formatted(value, f"+,.{digits}f")


def pp(value: object, digits: int = 1) -> str:
    """A difference of two rates, in percentage points, with its sign."""
    x = finite(value)
    return "—" if x is None else f"{100 * x:+.{digits}f} pp"
