"""The page shell and the small formatting helpers every page uses.

Everything that comes from the store goes through :func:`e` (HTML escaping) before it reaches a
page; numbers are written by the report's formatters (:mod:`churnguard.report.formatting`), which
this module hands on, so that every page and the report write them the same way. Data for charts and
scripts travels in ``<script type="application/json">`` blocks (:func:`json_block`), which the
browser never executes, so the pages need no inline script (the Content-Security-Policy forbids
it).

>>> e('<b onclick="x">')
'&lt;b onclick=&quot;x&quot;&gt;'
>>> pct(0.1234), count(12345.6), money(-3.5)
('12.3%', '12,346', '-3.50')
>>> href("/customers", "zh", tier="high", q="")
'/customers?tier=high&lang=zh'
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import escape
from urllib.parse import urlencode

from churnguard.report.formatting import count, formatted, money, pct, pp, probability, signed
from churnguard.service.dashboard.i18n import LANGS, t

__all__ = ["NAV", "PageContext", "bare_page", "cards", "chart", "count", "day", "e", "href",
           "json_block", "minute", "money", "note", "num", "page", "pct", "pp", "probability",
           "section", "signed", "table", "tier_badge"]

NAV = (("overview", "/"), ("customers", "/customers"), ("quality", "/model"),
       ("monitor", "/monitor"), ("voice", "/voice"), ("operations", "/operations"),
       ("campaigns", "/campaigns"))


def e(value: object) -> str:
    """``value`` as HTML text: escaped, and a dash for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return escape(str(value), quote=True)


def num(value: object, digits: int = 3) -> str:
    """Like the report's :func:`~churnguard.report.formatting.num`, but with no thousands separator.

    >>> num(1234.5678), num(None)
    ('1234.568', '—')
    """
    return formatted(value, f".{digits}f")


def day(value: object) -> str:
    if isinstance(value, dt.datetime | dt.date):
        return f"{value:%Y-%m-%d}"
    return "—" if value is None else str(value)[:10]


def minute(value: object) -> str:
    if isinstance(value, dt.datetime):
        return f"{value:%Y-%m-%d %H:%M}"
    return "—" if value is None else str(value)[:16].replace("T", " ")


def href(path: str, lang: str, **params: object) -> str:
    """A URL inside the dashboard keeping the language; empty parameters are left out."""
    query = {k: v for k, v in params.items() if v not in (None, "")}
    if lang != LANGS[0]:
        query["lang"] = lang
    return path + ("?" + urlencode(query) if query else "")


def json_block(element_id: str, data: object) -> str:
    """Data for the page's script, in a block the browser does not run.

    ``<``, ``>`` and ``&`` are written as JSON escapes, so no value can close the block."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{e(element_id)}">{text}</script>'


def chart(element_id: str, figure: Mapping[str, object], *, caption: str = "") -> str:
    """A Plotly chart: an empty box the script draws ``figure`` into, and its caption."""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return (f'<figure class="chart-box"><div class="chart" id="{e(element_id)}" '
            f'data-chart="{e(element_id)}-data"></div>{cap}</figure>'
            + json_block(f"{element_id}-data", figure))


def note(text: str) -> str:
    """A highlighted remark (``text`` is HTML: escape what came from the store)."""
    return f'<p class="note">{text}</p>'


def table(headers: Iterable[str], rows: Iterable[str], *, cls: str = "",
          empty: str = "") -> str:
    rows = list(rows)
    if not rows and empty:
        return note(empty)
    head = "".join(f"<th scope=\"col\">{h}</th>" for h in headers)
    return (f'<div class="scroll"><table class="{e(cls)}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def section(title: str, body: str) -> str:
    """A page section: its heading (plain text, escaped here) over ``body`` (HTML)."""
    return f"<section>\n<h2>{e(title)}</h2>\n{body}\n</section>"


def cards(items: Iterable[tuple[str, str, str]]) -> str:
    """Headline figures: (label, value, explanation), each already HTML."""
    return '<div class="cards">' + "".join(
        f'<div class="card"><div class="label">{label}</div><div class="value">{value}</div>'
        f'<div class="sub">{sub}</div></div>' for label, value, sub in items) + "</div>"


def tier_badge(tier: object, lang: str) -> str:
    name = str(tier) if tier is not None else ""
    if name not in ("high", "medium", "low"):
        return e(tier)
    return f'<span class="tier tier-{name}">{e(t(lang, "tier_" + name))}</span>'


@dataclass(frozen=True, kw_only=True)
class PageContext:
    """What every page needs to draw its frame."""

    lang: str
    path: str
    query: dict[str, str]
    assets: Mapping[str, str]
    signed_in: bool
    scripts: dict[str, object] = field(default_factory=dict)

    def url(self, path: str, **params: object) -> str:
        return href(path, self.lang, **params)

    def switch_language(self) -> str:
        other = "zh" if self.lang == "en" else "en"
        params = {k: v for k, v in self.query.items() if k != "lang"}
        return href(self.path, other, **params)


def _document(ctx: PageContext, *, title: str, scripts: Iterable[str], body_class: str,
              content: str) -> str:
    """The HTML document around ``content``: the head with the style sheet and the ``scripts``
    (asset names), and at the end the language and strings those scripts read."""
    html_lang = "zh-Hans" if ctx.lang == "zh" else "en"
    script_tags = "".join(f'<script src="{e(ctx.assets[name])}" defer></script>\n'
                          for name in scripts)
    body_attr = f' class="{e(body_class)}"' if body_class else ""
    return f"""<!DOCTYPE html>
<html lang="{html_lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{e(title)} · churnguard</title>
<link rel="stylesheet" href="{e(ctx.assets['dashboard.css'])}">
{script_tags}</head>
<body{body_attr}>
{content}
{json_block('page-data', {"lang": ctx.lang, "strings": ctx.scripts})}
</body>
</html>
"""


def page(ctx: PageContext, *, title: str, active: str, body: str, lead: str = "") -> str:
    """The whole HTML document: header with navigation and language switch, then ``body``."""
    lang = ctx.lang
    current = ' aria-current="page" class="active"'
    nav = "".join(
        f'<a href="{e(ctx.url(path))}"{current if key == active else ""}>'
        f"{e(t(lang, 'nav_' + key))}</a>" for key, path in NAV)
    other = "zh" if lang == "en" else "en"
    switch = (f'<a class="lang-switch" id="lang-switch" hreflang="{other}" '
              f'href="{e(ctx.switch_language())}">{e(t(lang, "switch_language"))}</a>')
    sign_out = (f'<form method="post" action="/logout" class="sign-out"><button type="submit">'
                f'{e(t(lang, "sign_out"))}</button></form>' if ctx.signed_in else "")
    search = (f'<form class="find" method="get" action="/customers" role="search">'
              f'<input type="search" name="q" placeholder="{e(t(lang, "find_placeholder"))}" '
              f'aria-label="{e(t(lang, "find_placeholder"))}">'
              + (f'<input type="hidden" name="lang" value="{e(lang)}">' if lang != "en" else "")
              + "</form>")
    lead_html = f'<p class="lead">{lead}</p>' if lead else ""
    content = f"""<header class="top">
<div class="brand"><a href="{e(ctx.url('/'))}">churnguard</a></div>
<nav aria-label="{e(t(lang, 'nav_label'))}">{nav}</nav>
<div class="tools">{search}{switch}{sign_out}</div>
</header>
<main>
<h1>{e(title)}</h1>
{lead_html}
{body}
</main>
<footer>{e(t(lang, 'footer'))}</footer>"""
    return _document(ctx, title=title, scripts=("plotly.min.js", "dashboard.js"), body_class="",
                     content=content)


def bare_page(ctx: PageContext, *, title: str, body: str) -> str:
    """A page without navigation (sign-in)."""
    other = "zh" if ctx.lang == "en" else "en"
    content = f"""<main class="narrow">
<p class="brand">churnguard <a class="lang-switch" id="lang-switch" hreflang="{other}"
href="{e(ctx.switch_language())}">{e(t(ctx.lang, 'switch_language'))}</a></p>
<h1>{e(title)}</h1>
{body}
</main>"""
    return _document(ctx, title=title, scripts=("dashboard.js",), body_class="bare",
                     content=content)
