"""The report's small pieces of HTML: escaping, notes, tables, figures, cards, badges.

Everything that comes from data goes through :func:`esc`; a missing value reads "—".

>>> note("<b>")
'<p class="note">&lt;b&gt;</p>'
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable

from churnguard.report import charts
from churnguard.report.data import MISSING
from churnguard.report.formatting import finite, num, pct


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def metric(value: object, kind: str) -> str:
    if kind == "pct":
        return pct(value)
    if kind == "lift":
        x = finite(value)
        return "—" if x is None else f"{x:.2f}×"
    return num(value)


def with_ci(estimate: str, interval: object, fmt) -> str:
    """``estimate`` followed by its interval on a second line, when there is one."""
    if estimate == "—" or not isinstance(interval, list | tuple) or len(interval) != 2:
        return estimate
    low, high = (fmt(v) for v in interval)
    return f'{estimate}<br><span class="ci">{low} to {high}</span>'


def when(moment: object) -> str:
    try:
        return moment.strftime("%Y-%m-%d %H:%M %Z").strip()  # type: ignore[attr-defined]
    except AttributeError:
        return str(moment)


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def missing(key: str) -> str:
    """What the report lacks (a key of :data:`~churnguard.report.data.MISSING`) and the command
    that makes it, in place of the sections that need it.

    >>> missing("scores")[:72]
    '<p class="note missing">No scores yet: run <code>churnguard score</code>'
    """
    what, command, why = MISSING[key]
    return (f'<p class="note missing">{esc(what)}: run <code>{esc(command)}</code>; '
            f"{esc(why)}.</p>")


def table(headers: Iterable[str], rows: Iterable[str], *, cls: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    return (f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def figure(svg: str, caption: str) -> str:
    return f'<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def tier_order(tiers: Iterable[str]) -> list[str]:
    tiers = list(tiers)
    return [t for t in charts.TIER_COLOURS if t in tiers] + \
        [t for t in tiers if t not in charts.TIER_COLOURS]


def tier_badge(tier: object) -> str:
    return f'<span class="tier tier-{esc(tier)}">{esc(tier)}</span>'


def cards(cards: Iterable[tuple[str, str, str]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="label">{esc(label)}</div><div class="value">{esc(value)}'
        f'</div><div class="sub">{esc(sub)}</div></div>' for label, value, sub in cards) + "</div>"


def text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return str(value)


__all__ = ["cards", "esc", "figure", "metric", "note", "table", "text", "tier_badge", "tier_order",
           "when", "with_ci"]
