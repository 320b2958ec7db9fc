"""Surge alerts of one shop: its negative mentions per topic and day, tested by
:func:`churnguard.voice.alerts.detect`, with the customers who wrote them (docs/voice.md "Alerts").

- :func:`voice_alerts`: the report over a window of days ending on the as-of day: per topic its
  texts and negative share, and every alert with its count against the expected, its p- and
  q-value and its authors with their newest risk tier (``churnguard score``).
- :func:`alert_audience`: one alert's at-risk authors (the tiers of ``[voice] audience_tiers``),
  a campaign's audience: a file with a ``user_id`` column, as ``churnguard uplift score
  --users`` reads.

Texts are reviews and tickets (:func:`~churnguard.voice.shop.voice_texts`): the topic from the
stored codebook, negative when the sentiment model gives P(negative) ≥ 0.5. Two codebook keys
with one name (``[voice.topic_names]``) are one topic; abstained texts count for none. Days are
UTC calendar days, as the store keeps time.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from churnguard.config import ProjectConfig
from churnguard.errors import ChurnguardError
from churnguard.store import Store
from churnguard.voice.alerts import detect
from churnguard.voice.shop import shop_codebook, voice_texts

__all__ = ["AUDIENCE_COLUMNS", "NoTextsError", "VoiceAlerts", "VoiceError", "alert_audience",
           "last_text_day", "voice_alerts", "voice_fingerprint"]

AUDIENCE_COLUMNS = ["user_id", "risk_tier", "p_churn", "scored_as_of", "texts", "alert_id"]
_ID = re.compile(r"^(?P<period>[dw])(?P<date>\d{8})-(?P<keys>[A-Za-z0-9_+]+)$")
# The newest score of each of the customers in the registered view.
_RISK = """
SELECT user_id, risk_tier, p_churn, as_of FROM scores WHERE user_id IN (SELECT user_id FROM {v})
QUALIFY row_number() OVER (PARTITION BY user_id ORDER BY as_of DESC, model_version DESC) = 1
"""


class VoiceError(ChurnguardError, ValueError):
    """A request the voice alerts cannot answer: an unknown alert, a window without texts."""

    code = "voice_error"


class NoTextsError(VoiceError):
    """The store has no review or ticket text to watch."""

    code = "no_texts"


@dataclass(frozen=True, kw_only=True)
class VoiceAlerts:
    """What :func:`voice_alerts` found: the window [``start``, ``as_of``) and its tests."""

    as_of: dt.date
    start: dt.date
    settings: dict
    topics: list[dict]
    alerts: list[dict]
    tests: int
    sentiment_sources: dict[str, int]
    scores_as_of: str | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The document of ``churnguard voice --json`` and ``GET /v1/voice``."""
        return {"as_of": self.as_of.isoformat(), "start": self.start.isoformat(),
                "settings": self.settings, "topics": self.topics, "alerts": self.alerts,
                "tests": self.tests, "sentiment_sources": self.sentiment_sources,
                "scores_as_of": self.scores_as_of, "notes": self.notes}

    def alert(self, alert_id: str) -> dict:
        for a in self.alerts:
            if a["alert_id"] == alert_id:
                return a
        raise VoiceError(f"no alert {alert_id} in {self.start} to {self.as_of}: "
                         "`churnguard voice` lists the alerts", code="alert_not_found")


def _day(ts: pd.Series) -> pd.Series:
    t = pd.to_datetime(ts)
    if t.dt.tz is not None:
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    return t.dt.normalize()


def last_text_day(store: Store) -> dt.date:
    row = store.con.execute(
        "SELECT max(ts) FROM events WHERE type IN ('review', 'support_ticket') "
        "AND text IS NOT NULL").fetchall()[0][0]
    if row is None:
        raise NoTextsError("no review or ticket texts in the store to watch")
    return pd.Timestamp(row).date()


def _risk(store: Store, users: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame({"user_id": pd.Series(sorted(set(users)), dtype=object)})
    with store.registered(frame, "voice_authors") as view:
        return store.con.execute(_RISK.format(v=view)).df().set_index("user_id")


def _topics(store: Store, config: ProjectConfig) -> dict[str, dict]:
    """Topic name → its codebook keys and keyphrases, in codebook order."""
    book, _ = shop_codebook(store, config)
    out: dict[str, dict] = {}
    for key, phrases in zip(book.keys, book.keyphrases, strict=True):
        name = book.label(key, config.voice.topic_names)
        entry = out.setdefault(name, {"topic": name, "keys": [], "keyphrases": []})
        entry["keys"].append(key)
        entry["keyphrases"] += [p for p in phrases if p not in entry["keyphrases"]]
    return out


def _counts(texts: pd.DataFrame, names: list[str], first: pd.Timestamp,
            last: pd.Timestamp) -> pd.DataFrame:
    neg = texts[(texts["sentiment"] == "negative") & texts["topic_name"].notna()]
    grid = pd.crosstab(neg["day"], neg["topic_name"])
    return grid.reindex(index=pd.date_range(first, last, freq="D"), columns=names,
                        fill_value=0).fillna(0).astype(int)


def _alert_id(period: str, start: pd.Timestamp, keys: list[str]) -> str:
    return f"{period[0]}{start:%Y%m%d}-{'+'.join(keys)}"


def _customers(texts: pd.DataFrame, risk: pd.DataFrame, tiers: tuple[str, ...]) -> list[dict]:
    per = texts.groupby("user_id").size()
    rows = []
    for user, n in per.items():
        known = user in risk.index
        tier = risk.at[user, "risk_tier"] if known else None
        rows.append({"user_id": str(user), "texts": int(n), "risk_tier": tier,
                     "p_churn": float(risk.at[user, "p_churn"]) if known else None,
                     "at_risk": tier in tiers})
    return sorted(rows, key=lambda r: (not r["at_risk"], -(r["p_churn"] or 0.0), r["user_id"]))


def _alerts(tests: pd.DataFrame, texts: pd.DataFrame, topics: dict[str, dict], store: Store,
            tiers: tuple[str, ...]) -> list[dict]:
    neg = texts[texts["sentiment"] == "negative"]
    fired = tests[tests["alert"]].sort_values(["start", "q_value", "topic"])
    spans = [neg[(neg["topic_name"] == a.topic) & (neg["day"] >= a.start) & (neg["day"] <= a.end)]
             for a in fired.itertuples()]
    risk = _risk(store, [u for s in spans for u in s["user_id"]])
    out = []
    for a, span in zip(fired.itertuples(), spans, strict=True):
        t = topics[a.topic]
        customers = _customers(span, risk, tiers)
        out.append({
            "alert_id": _alert_id(a.period, a.start, t["keys"]), "topic": a.topic,
            "keys": t["keys"], "keyphrases": t["keyphrases"], "period": a.period,
            "start": a.start.date().isoformat(), "end": a.end.date().isoformat(),
            "count": int(a.count), "expected": round(float(a.expected), 3),
            "ratio": round(float(a.count / a.expected), 3),
            "dispersion": round(float(a.dispersion), 5), "p_value": float(a.p_value),
            "q_value": float(a.q_value), "authors": len(customers),
            "at_risk": sum(c["at_risk"] for c in customers), "customers": customers})
    return out


def _topic_rows(texts: pd.DataFrame, tests: pd.DataFrame, topics: dict[str, dict],
                start: pd.Timestamp) -> list[dict]:
    window = texts[texts["day"] >= start]
    rows = []
    for name, t in topics.items():
        mine = window[window["topic_name"] == name]
        last = tests[tests["topic"] == name].tail(1)
        negatives = int((mine["sentiment"] == "negative").sum())
        rows.append({"topic": name, "keys": t["keys"], "keyphrases": t["keyphrases"],
                     "texts": len(mine), "negative": negatives,
                     "negative_share": round(negatives / len(mine), 4) if len(mine) else None,
                     "tested": None if last.empty else str(last["period"].iloc[0]),
                     "baseline_per_day": None if last.empty else round(
                         float(last["baseline_per_day"].iloc[0]), 3),
                     "alerts": int(tests[(tests["topic"] == name) & tests["alert"]].shape[0])})
    return rows


def voice_alerts(store: Store, config: ProjectConfig, *, as_of: dt.date | None = None,
                 days: int | None = None) -> VoiceAlerts:
    """Alerts on the days [``as_of`` − ``days``, ``as_of``) (defaults: the day after the last
    review or ticket, ``[voice] alert_days``), each tested against its baseline weeks before."""
    v = config.voice
    days = v.alert_days if days is None else days
    if days < 1:
        raise VoiceError(f"days must be at least 1, got {days}", code="invalid_days")
    as_of = as_of or last_text_day(store) + dt.timedelta(days=1)
    start = pd.Timestamp(as_of) - pd.Timedelta(days=days)
    first = start - pd.Timedelta(days=7 * v.baseline_weeks + 6)  # a weekly test's baseline too
    texts = voice_texts(store, config, start=first.to_pydatetime(),
                        end=pd.Timestamp(as_of).to_pydatetime())
    texts = texts.assign(day=_day(texts["ts"]))
    topics = _topics(store, config)
    counts = _counts(texts, list(topics), first, pd.Timestamp(as_of) - pd.Timedelta(days=1))
    tests = detect(counts, weeks=v.baseline_weeks, fdr=v.alert_fdr, weekly_below=v.weekly_below,
                   start=start)
    notes = []
    if texts.empty or texts["day"].min() > first:
        notes.append(f"texts start after {first.date()}: the first days of the window have a "
                     "short baseline and are not tested")
    scored = store.con.execute("SELECT max(as_of) FROM scores").fetchall()[0][0]
    if scored is None:
        notes.append("no scores yet: authors have no risk tier (run `churnguard score`)")
    return VoiceAlerts(
        as_of=as_of, start=start.date(),
        settings={"alert_fdr": v.alert_fdr, "baseline_weeks": v.baseline_weeks,
                  "weekly_below": v.weekly_below, "audience_tiers": list(v.audience_tiers)},
        topics=_topic_rows(texts, tests, topics, start),
        alerts=_alerts(tests, texts, topics, store, v.audience_tiers), tests=len(tests),
        sentiment_sources={str(k): int(n) for k, n in
                           texts["sentiment_source"].value_counts().sort_index().items()},
        scores_as_of=None if scored is None else pd.Timestamp(scored).isoformat(), notes=notes)


def alert_audience(store: Store, config: ProjectConfig, alert_id: str) -> pd.DataFrame:
    """The at-risk authors of alert ``alert_id`` (:data:`AUDIENCE_COLUMNS`), found again by
    testing the alert's last day: a day's test reads only that day and the weeks before it."""
    m = _ID.match(alert_id)
    if m is None:
        raise VoiceError(f"{alert_id!r} is not an alert id (like d20250501-en03 or "
                         "w20250505-zh02+zh07): `churnguard voice` lists them",
                         code="invalid_alert_id")
    day = dt.datetime.strptime(m["date"], "%Y%m%d").date()
    last = day + dt.timedelta(days=6 if m["period"] == "w" else 0)
    found = voice_alerts(store, config, as_of=last + dt.timedelta(days=1), days=1)
    alert = found.alert(alert_id)
    rows = [c for c in alert["customers"] if c["at_risk"]]
    risk = _risk(store, [c["user_id"] for c in rows])
    frame = pd.DataFrame(rows, columns=["user_id", "risk_tier", "p_churn", "texts"])
    frame["scored_as_of"] = [risk.at[u, "as_of"] for u in frame["user_id"]] if rows else []
    frame["alert_id"] = alert_id
    return frame[AUDIENCE_COLUMNS].astype({"texts": np.int64})


def voice_fingerprint(store: Store) -> tuple:
    """What a stored report depends on: the texts, the codebooks and the scores (a service
    keeps a report while this is unchanged)."""
    return tuple(store.con.execute(
        "SELECT (SELECT count(*) FROM events WHERE type IN ('review', 'support_ticket')), "
        "(SELECT max(batch_id) FROM events), (SELECT count(*) FROM topic_codebooks), "
        "(SELECT max(scored_at) FROM scores), (SELECT count(*) FROM scores)").fetchall()[0])
