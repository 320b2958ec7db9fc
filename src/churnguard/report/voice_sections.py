"""The report's voice section: surge alerts of negative mentions per topic (the
``churnguard voice --json`` document, :mod:`churnguard.voice.surges`), each with the at-risk
customers who wrote those texts, then the topics of the window.

>>> doc = {"as_of": "2025-05-01", "start": "2025-04-03", "tests": 120,
...        "settings": {"alert_fdr": 0.0025, "baseline_weeks": 8, "weekly_below": 5.0},
...        "sentiment_sources": {"learned": 900}, "notes": [],
...        "topics": [{"topic": "late / parcel", "keys": ["en01"], "texts": 90, "negative": 70,
...                    "negative_share": 0.78, "tested": "day", "baseline_per_day": 2.1,
...                    "alerts": 1}],
...        "alerts": [{"alert_id": "d20250420-en01", "topic": "late / parcel", "period": "day",
...                    "start": "2025-04-20", "end": "2025-04-20", "count": 19,
...                    "expected": 2.3, "p_value": 1e-9, "q_value": 2e-8, "authors": 19,
...                    "at_risk": 1, "customers": [{"user_id": "u7", "risk_tier": "high",
...                    "p_churn": 0.81, "texts": 1, "at_risk": True}]}]}
>>> html = voice_html(doc)
>>> "d20250420-en01" in html and "<td>u7</td>" in html and "late / parcel" in html
True
"""

from __future__ import annotations

from churnguard.report.data import ReportData
from churnguard.report.formatting import count, num, pct
from churnguard.report.markup import esc as _e
from churnguard.report.markup import note as _note
from churnguard.report.markup import table as _table

# At-risk customers listed per alert in the report (the CLI and the API list them all).
CUSTOMERS_SHOWN = 20


def _p(value: float) -> str:
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def _alert(a: dict) -> str:
    when = a["start"] if a["period"] == "day" else f"week {a['start']} to {a['end']}"
    risky = [c for c in a["customers"] if c["at_risk"]]
    rows = [f"<tr><td>{_e(c['user_id'])}</td><td>{_e(c['risk_tier'])}</td>"
            f'<td class="num">{pct(c["p_churn"])}</td><td class="num">{c["texts"]}</td></tr>'
            for c in risky[:CUSTOMERS_SHOWN]]
    more = (f" (the {CUSTOMERS_SHOWN} most at risk shown)" if len(risky) > CUSTOMERS_SHOWN
            else "")
    head = (f"<h3>{_e(a['topic'])}, {_e(when)}: {a['count']} negative mentions, "
            f"{a['expected']:.1f} expected (p {_p(a['p_value'])}, q {_p(a['q_value'])})</h3>"
            f"<p>Alert <code>{_e(a['alert_id'])}</code>: {a['authors']} customers wrote them, "
            f"{a['at_risk']} at risk{more}. <code>churnguard voice --audience "
            f"{_e(a['alert_id'])} --out FILE</code> writes them as a campaign's audience.</p>")
    return head + (_table(["customer", "risk tier", "P(churn)", "texts"], rows, cls="voice")
                   if rows else _note("None of its authors is at risk (or scored)."))


def _topics(topics: list[dict]) -> str:
    rows = [f"<tr><td>{_e(t['topic'])}</td><td>{_e(' + '.join(t['keys']))}</td>"
            f'<td class="num">{count(t["texts"])}</td><td class="num">{count(t["negative"])}</td>'
            f'<td class="num">{pct(t["negative_share"])}</td><td>{_e(t["tested"])}</td>'
            f'<td class="num">{num(t["baseline_per_day"], 2)}</td>'
            f'<td class="num">{t["alerts"]}</td></tr>' for t in topics]
    return _table(["topic", "keys", "texts", "negative", "negative share", "tested",
                   "baseline a day", "alerts"], rows, cls="voice-topics")


def voice_html(doc: dict) -> str:
    s = doc["settings"]
    intro = (f"<p>Days {_e(doc['start'])} to {_e(doc['as_of'])} (exclusive): "
             f"{count(doc['tests'])} tests, {len(doc['alerts'])} alerts. Negative mentions "
             f"per topic per day against the same weekday of the {s['baseline_weeks']} weeks "
             "before (negative binomial), Benjamini–Hochberg across the day's topics at "
             f"{s['alert_fdr']:g}; topics under {s['weekly_below']:g} negative mentions a day "
             "are tested per week. Sentiment sources: " + _e(", ".join(
                 f"{k} {n:,}" for k, n in doc["sentiment_sources"].items())) + ".</p>")
    notes = "".join(_note(n) for n in doc["notes"])
    alerts = "".join(_alert(a) for a in doc["alerts"]) or _note("No surge in the window.")
    return intro + notes + alerts + "<h3>Topics in the window</h3>" + _topics(doc["topics"])


def bodies(data: ReportData) -> dict[str, str]:
    """The HTML of the voice section, by section id."""
    return {"voice": voice_html(data.voice)} if data.voice else {}


__all__ = ["bodies", "voice_html"]
