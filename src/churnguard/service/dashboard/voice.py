"""The voice page: topics of reviews and tickets with their negative share, and the surge alerts
with the customers who wrote those texts, each a link to their page. The same report as
``GET /v1/voice`` (and from the same cache, :mod:`churnguard.service.voice_reports`);
docs/voice.md explains the method.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from churnguard.service.dashboard.i18n import t
from churnguard.service.dashboard.layout import (
    PageContext, cards, count, day, e, note, num, page, pct, section, table, tier_badge)

__all__ = ["render", "render_failure"]


def _p(value: float) -> str:
    """A p- or q-value: three decimals, or two significant digits below 0.001.

    >>> _p(0.04321), _p(0.0000123)
    ('0.043', '1.2e-05')
    """
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def _topics(lang: str, topics: list[dict[str, Any]]) -> str:
    rows = [f'<tr data-topic="{e("+".join(x["keys"]))}"><th scope="row">{e(x["topic"])}</th>'
            f'<td><code>{e(" + ".join(x["keys"]))}</code></td>'
            f'<td class="num">{count(x["texts"])}</td><td class="num">{count(x["negative"])}</td>'
            f'<td class="num">{pct(x["negative_share"])}</td>'
            f'<td>{e(t(lang, "voice_tested_" + x["tested"]) if x["tested"] else None)}</td>'
            f'<td class="num">{num(x["baseline_per_day"], 2)}</td>'
            f'<td class="num">{x["alerts"]}</td></tr>' for x in topics]
    headers = [e(t(lang, h)) for h in (
        "col_topic", "col_keys", "col_texts", "col_negative", "col_negative_share",
        "col_tested", "col_baseline_day", "col_alerts")]
    return table(headers, rows, cls="voice-topics", empty=e(t(lang, "voice_no_topics")))


def _customers(ctx: PageContext, customers: list[dict[str, Any]]) -> str:
    rows = [f'<tr class="{"at-risk" if c["at_risk"] else ""}">'
            f'<td><a href="{e(ctx.url("/customers/" + quote(c["user_id"], safe="")))}">'
            f'{e(c["user_id"])}</a></td><td>{tier_badge(c["risk_tier"], ctx.lang)}</td>'
            f'<td class="num">{pct(c["p_churn"])}</td><td class="num">{c["texts"]}</td></tr>'
            for c in customers]
    headers = [e(t(ctx.lang, h)) for h in ("col_customer", "col_tier", "col_p_churn",
                                            "col_texts")]
    return table(headers, rows, cls="voice-customers")


def _alert(ctx: PageContext, a: dict[str, Any]) -> str:
    lang = ctx.lang
    when = day(a["start"]) if a["period"] == "day" else t(
        lang, "voice_week", start=day(a["start"]), end=day(a["end"]))
    head = t(lang, "voice_alert_head", topic=a["topic"], when=when, count=a["count"],
             expected=f'{a["expected"]:.1f}', p=_p(a["p_value"]), q=_p(a["q_value"]))
    sub = t(lang, "voice_alert_sub", authors=a["authors"], at_risk=a["at_risk"],
            id=a["alert_id"])
    return (f'<div class="voice-alert" id="alert-{e(a["alert_id"])}">'
            f'<h3>{e(head)}</h3><p class="muted">{e(sub)}</p>'
            + _customers(ctx, a["customers"]) + "</div>")


def render(ctx: PageContext, document: dict[str, Any]) -> str:
    """The page of one report (``VoiceAlerts.to_dict()``)."""
    lang = ctx.lang
    s = document["settings"]
    headline = cards([
        (e(t(lang, "voice_window")), e(f'{day(document["start"])} – {day(document["as_of"])}'),
         e(t(lang, "voice_window_sub"))),
        (e(t(lang, "voice_alerts")), f'<span id="alert-count">{len(document["alerts"])}</span>',
         e(t(lang, "voice_alerts_sub", n=count(document["tests"])))),
        (e(t(lang, "voice_sources")), e(", ".join(
            f"{k} {count(n)}" for k, n in document["sentiment_sources"].items())),
         e(t(lang, "voice_sources_sub"))),
    ])
    method = t(lang, "voice_method", weeks=s["baseline_weeks"], fdr=s["alert_fdr"],
               small=s["weekly_below"])
    alerts = "".join(_alert(ctx, a) for a in document["alerts"]) or note(
        e(t(lang, "voice_no_alerts")))
    notes = "".join(note(e(n)) for n in document["notes"])
    body = "\n" + "\n".join([
        headline + f'<p class="muted">{e(method)}</p>' + notes,
        section(t(lang, "section_voice_alerts"), alerts),
        section(t(lang, "section_voice_topics"), _topics(lang, document["topics"]))]) + "\n"
    return page(ctx, title=t(lang, "voice_title"), active="voice", body=body,
                lead=e(t(lang, "voice_lead")))


def render_failure(ctx: PageContext, message: str) -> str:
    """The page when no report can be made (no review or ticket texts yet)."""
    lang = ctx.lang
    return page(ctx, title=t(lang, "voice_title"), active="voice",
                body=note(e(t(lang, "voice_failed", message=message))))
