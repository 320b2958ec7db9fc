"""Scoring customers at any instant ("now"), so that events stored a moment ago count.

Two paths share one scoring step (:func:`score_snapshot`):

* :func:`score_population_at` scores everyone in the population at an instant with the same
  set-based queries as batch scoring, in several languages at once: what a service keeps in
  memory and answers most requests from;
* :class:`CustomerScratch` scores a few named customers (the first answer after a new event)
  from their own events, read from the store and computed on in NumPy: the population rule, the
  features (:mod:`churnguard.features.frame`), the order histories and the reason context
  (:mod:`churnguard.explain.context`). No SQL is planned per answer; the feature query alone
  cost DuckDB ~70 ms to plan for one customer (benchmarks/RESULTS.md, "realtime").

Both give the same numbers for the same customer and instant: tests/features/
test_feature_frame.py requires every feature column and the reason context equal to the SQL's,
and tests/service/test_realtime.py the probability, tier and reasons equal to batch scoring's.

A customer known to the store but with no activity event in the lookback window before the
instant is ``lapsed``: by the churn definition they have already churned, so they get no
probability (the model never learned from such rows) and one sentence saying so. A customer whose
own data the features cannot take (an amount beyond what they sum exactly, from a store loaded
before ingestion bounded amounts: :func:`churnguard.scoring.unscorable_customers`) is
``unscorable``: no probability, and a sentence saying what to fix; the others asked about with
them are scored as usual.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pyarrow as pa

from churnguard.config import AMOUNT_CEILING, ChurnDefinition, ScoringConfig
from churnguard.explain import reason_context, reasons_in
from churnguard.explain.context import context_of_events
from churnguard.explain.queries import latest_review_topics, review_topics
from churnguard.features.build import attribute_columns
from churnguard.features.frame import DAY_US, EventArrays, attribute_values, cutoff_us, \
    features_of_events
from churnguard.models.base import ChurnModel
from churnguard.registry import get_model_version
from churnguard.scoring import champion, risk_tiers
from churnguard.sequences.cache import SequenceCache
from churnguard.snapshots import Snapshot, build_snapshot
from churnguard.store import Store

LANGS = ("en", "zh")
ACTIVE, LAPSED, UNSCORABLE = "active", "lapsed", "unscorable"

_REFERENCE_TABLES = ("users", "user_attributes", "items")


@dataclass(frozen=True, kw_only=True, slots=True)
class CustomerRisk:
    """One customer's churn risk at ``as_of``.

    ``status`` is ``active`` (in the population: scored), ``lapsed`` (no activity event in the
    lookback window: already churned by the definition, ``p_churn`` and ``risk_tier`` are None)
    or ``unscorable`` (their data cannot be featurised; None too, and the reason says what to fix).
    ``reasons`` maps a language to up to three sentences.
    """

    user_id: str
    as_of: dt.datetime
    model_version: str
    status: str
    p_churn: float | None
    risk_tier: str | None
    reasons: dict[str, tuple[str, ...]] = field(default_factory=dict)


def lapsed_sentence(definition: ChurnDefinition, lang: str) -> str:
    """What a lapsed customer's answer says instead of reasons.

    >>> lapsed_sentence(ChurnDefinition(), "en")
    'No order in the last 365 days: by the churn definition this customer has already churned'
    """
    activity = "/".join(definition.activity)
    days = definition.lookback_days
    if lang == "zh":
        return f"过去{days}天内没有{activity}：按流失定义，该客户已经流失"
    return (f"No {activity} in the last {days} days: by the churn definition this customer has "
            "already churned")


def unscorable_sentence(lang: str) -> str:
    """What an unscorable customer's answer says instead of reasons.

    >>> unscorable_sentence("en").startswith("This customer's data cannot be scored")
    True
    """
    if lang == "zh":
        return ("该客户的数据无法评分：有一笔事件的金额超出特征能精确求和的范围；"
                "请更正或删除该事件（churnguard erase 会删除该客户的全部数据）")
    return ("This customer's data cannot be scored: an event's amount is beyond what the "
            "features can sum exactly; correct or delete the event (churnguard erase removes "
            "the customer)")


def _unscorable(user_id: str, *, as_of: dt.datetime, version: str,
                langs: Sequence[str]) -> CustomerRisk:
    return CustomerRisk(user_id=user_id, as_of=as_of, model_version=version, status=UNSCORABLE,
                        p_churn=None, risk_tier=None,
                        reasons={lang: (unscorable_sentence(lang),) for lang in langs})


def probabilities(model: ChurnModel, version: str, snapshot: Snapshot, *,
                  tiers: ScoringConfig, as_of: dt.datetime) -> list[CustomerRisk]:
    """Probability and tier of every row of ``snapshot``, without reasons (``reasons`` empty).

    Cheap next to the reasons: these need the model's per-customer contributions (TreeSHAP for
    the GBDT, about 10 ms a customer), :func:`explain_rows` computes them."""
    if len(snapshot) == 0:
        return []
    return _risks(np.asarray(model.predict_proba(snapshot), dtype=float), version, snapshot,
                  tiers=tiers, as_of=as_of)


def _risks(p: np.ndarray, version: str, snapshot: Snapshot, *, tiers: ScoringConfig,
           as_of: dt.datetime) -> list[CustomerRisk]:
    tier = risk_tiers(p, tiers)
    users = snapshot.index.get_level_values(0).astype(str)
    return [CustomerRisk(user_id=str(u), as_of=as_of, model_version=version, status=ACTIVE,
                         p_churn=float(p[i]), risk_tier=str(tier[i]))
            for i, u in enumerate(users)]


def explain_rows(model: ChurnModel, snapshot: Snapshot, context: pd.DataFrame | None, *,
                 langs: Sequence[str] = LANGS) -> dict[str, dict[str, tuple[str, ...]]]:
    """Up to three reason sentences per row of ``snapshot`` in each of ``langs``, keyed by user.

    ``context``: :func:`churnguard.explain.reason_context` of (at least) these rows."""
    if len(snapshot) == 0:
        return {}
    try:
        contributions = model.explain(snapshot)
    except NotImplementedError:
        contributions = None
    values = None if contributions is None else model.explanation_values(snapshot)
    return _sentences(snapshot, contributions, values, context, langs)


def _sentences(snapshot: Snapshot, contributions: pd.DataFrame | None,
               values: pd.DataFrame | None, context: pd.DataFrame | None,
               langs: Sequence[str]) -> dict[str, dict[str, tuple[str, ...]]]:
    """The reason sentences of each row from the model's contributions and values (None: the
    model gives none, so every row has no reasons)."""
    users = snapshot.index.get_level_values(0).astype(str)
    if contributions is None or values is None:
        return {str(u): {lang: () for lang in langs} for u in users}
    sentences: dict[str, list[tuple[str, ...]]] = {}
    said = reasons_in(contributions, values, langs=langs, context=context)
    for lang in langs:
        why = said[lang]
        columns = [why[f"reason_{k}"].to_numpy(dtype=object) for k in (1, 2, 3)]
        sentences[lang] = [tuple(s for s in row if s) for row in zip(*columns, strict=True)]
    return {str(u): {lang: sentences[lang][i] for lang in langs} for i, u in enumerate(users)}


def score_snapshot(store: Store, model: ChurnModel, version: str, snapshot: Snapshot, *,
                   tiers: ScoringConfig, as_of: dt.datetime,
                   langs: Sequence[str] = LANGS) -> list[CustomerRisk]:
    """Probability, tier and reasons (in each of ``langs``) for every row of ``snapshot``.

    ``store`` must hold the events the snapshot was built from (the reasons quote dates from it).
    The model computes its inputs once for all three (:meth:`~churnguard.models.base.ChurnModel.
    predict_explained`).
    """
    if len(snapshot) == 0:
        return []
    context = reason_context(store, snapshot.index.to_frame(index=False))
    return _score(model, version, snapshot, context, tiers=tiers, as_of=as_of, langs=langs)


def _score(model: ChurnModel, version: str, snapshot: Snapshot, context: pd.DataFrame, *,
           tiers: ScoringConfig, as_of: dt.datetime, langs: Sequence[str]) -> list[CustomerRisk]:
    """:func:`score_snapshot` given the reason context of the snapshot's rows."""
    p, contributions, values = model.predict_explained(snapshot)
    risks = _risks(np.asarray(p, dtype=float), version, snapshot, tiers=tiers, as_of=as_of)
    said = _sentences(snapshot, contributions, values, context, langs)
    return [replace(r, reasons=said[r.user_id]) for r in risks]


def _lapsed(user_id: str, *, as_of: dt.datetime, version: str, definition: ChurnDefinition,
            langs: Sequence[str]) -> CustomerRisk:
    return CustomerRisk(user_id=user_id, as_of=as_of, model_version=version, status=LAPSED,
                        p_churn=None, risk_tier=None,
                        reasons={lang: (lapsed_sentence(definition, lang),) for lang in langs})


@dataclass(frozen=True, kw_only=True)
class PopulationScores:
    """Everyone in the population at ``as_of`` (``scored``) and every customer the store knows."""

    as_of: dt.datetime
    model_version: str
    scored: dict[str, CustomerRisk]
    known: frozenset[str]

    def get(self, user_id: str, *, definition: ChurnDefinition,
            langs: Sequence[str] = LANGS) -> CustomerRisk | None:
        """The customer's risk; a known customer outside the population is lapsed; None: unknown."""
        risk = self.scored.get(user_id)
        if risk is None and user_id in self.known:
            return _lapsed(user_id, as_of=self.as_of, version=self.model_version,
                           definition=definition, langs=langs)
        return risk


def known_customers(store: Store) -> frozenset[str]:
    """Every user id with an event or a users row."""
    rows = store.con.execute(
        "SELECT DISTINCT user_id FROM events UNION SELECT user_id FROM users").fetchnumpy()
    return frozenset(str(u) for u in rows["user_id"])


def customers_touched_since(store: Store, since: dt.datetime) -> frozenset[str]:
    """Every user id with events or a users row from an ingest batch that started at or after
    ``since`` (naive UTC): whose risk a later ingest may have changed."""
    rows = store.con.execute(
        "WITH batches AS (SELECT batch_id FROM ingest_batches WHERE started_at >= ?) "
        "SELECT DISTINCT user_id FROM events WHERE batch_id IN (SELECT batch_id FROM batches) "
        "UNION SELECT user_id FROM users WHERE batch_id IN (SELECT batch_id FROM batches)",
        [since]).fetchnumpy()
    return frozenset(str(u) for u in rows["user_id"])


def score_population_at(store: Store, *, definition: ChurnDefinition, tiers: ScoringConfig,
                        as_of: dt.datetime, langs: Sequence[str] = LANGS,
                        version: str | None = None,
                        model: ChurnModel | None = None) -> PopulationScores:
    """Score the population at the instant ``as_of`` (naive UTC) with the champion (or
    ``version``); nothing is written to the store."""
    if model is None or version is None:
        version, model = champion(store, version)
    features = get_model_version(store, version).features
    snapshot = build_snapshot(store, definition=definition, cutoffs=[as_of], features=features,
                              with_labels=False)
    scored = score_snapshot(store, model, version, snapshot, tiers=tiers, as_of=as_of,
                            langs=langs)
    return PopulationScores(as_of=as_of, model_version=version,
                            scored={r.user_id: r for r in scored}, known=known_customers(store))


class _FilledOnUse(SequenceCache):
    """The copy's sequence cache: the events go into the copy when a model first reads them."""

    def __init__(self, store: Store, *, fill: Callable[[], None]) -> None:
        super().__init__(store)
        self._fill = fill

    def key(self, *args: object, **kwargs: object) -> str:  # the methods that read events
        self._fill()
        return super().key(*args, **kwargs)

    def events_store(self) -> Store:
        self._fill()
        return super().events_store()

    def at(self, *args: object, **kwargs: object) -> object:
        self._fill()
        return super().at(*args, **kwargs)

    def __getstate__(self) -> dict:
        return {**super().__getstate__(), "_fill": None}


class CustomerScratch:
    """A private in-memory copy for scoring a few customers at a time, without the feature SQL.

    It holds, from the source store when built, the small reference tables (users, user
    attributes, items: in a private DuckDB, and as lookups in memory: sign-ups, item categories,
    the ``attr_`` columns) and, for each :meth:`score` call, the complete event history of just
    the customers asked about. The population rule, the features (:mod:`churnguard.features.
    frame`), the order histories and the reason context (:mod:`churnguard.explain.context`) are
    computed from those events in NumPy: the SQL of the batch path costs DuckDB tens of
    milliseconds to plan per call whatever the data's size. A model that reads event sequences
    (``Snapshot.meta["sequences"]``) finds the events in the private store, put there when it
    first reads them. Not thread-safe: one caller at a time.
    """

    def __init__(self, source: Store) -> None:
        self.store = Store.in_memory()
        self.store.con.execute("SET threads = 1")
        for table in _REFERENCE_TABLES:
            self._copy(table, source.con.sql(f"SELECT * FROM {table}").to_arrow_table())
        self._reference()
        self._pending: pa.Table | None = None  # events loaded, not yet in the private store
        # Review topics by the reason query's SQL; the latest reviews' now, others when asked.
        # Kept by customer too, so that an erasure drops the customer's text (forget()).
        self._latest_reviews = latest_review_topics(source)
        self._known_topics = {text: topic for text, topic in self._latest_reviews.values()}
        self._topics: dict[str | None, str] = {}

    def _reference(self) -> None:
        # The attribute columns (and categories) of the copied attributes, as the feature
        # query of the whole store has them, and every user's values of them; computed once
        # here, not on every score.
        con = self.store.con
        self._attributes = attribute_columns(self.store)
        self._attribute_rows = attribute_values(self.store, self._attributes)
        self._signups = {str(u): ts for u, ts in
                         con.execute("SELECT user_id, signup_ts FROM users").fetchall()}
        self._items = {str(i): c for i, c in
                       con.execute("SELECT item_id, category FROM items").fetchall()}

    def close(self) -> None:
        self.store.close()

    def _copy(self, table: str, rows: pa.Table) -> None:
        if rows.num_rows == 0:
            return
        with self.store.registered(rows, f"copy_{table}") as view:
            self.store.con.execute(f"INSERT INTO {table} SELECT * FROM {view}")

    def forget(self, user_id: str) -> None:
        """Drop a customer's rows from the copy (after an erasure)."""
        for table in ("users", "user_attributes", "events"):
            self.store.con.execute(f"DELETE FROM {table} WHERE user_id = ?", [user_id])
        self._reference()  # their values may have been a category
        # no review text of theirs stays in memory (another customer's same text is asked again)
        erased = self._latest_reviews.pop(user_id, None)
        if erased is not None:
            self._known_topics.pop(erased[0], None)
        self._topics.clear()

    def _load_events(self, source: Store, user_ids: Sequence[str]) -> pa.Table:
        """The customers' events from ``source``; they go into the private store only when a
        model reads event sequences (:meth:`_fill`): the GBDT never does, and the insert cost
        ~4 ms an answer."""
        if len(user_ids) == 1:
            rows = source.con.sql("SELECT * FROM events WHERE user_id = ?",
                                  params=[user_ids[0]]).to_arrow_table()
        else:
            rows = source.con.sql(
                "SELECT * FROM events WHERE user_id IN (SELECT unnest(?::VARCHAR[]))",
                params=[list(user_ids)]).to_arrow_table()
        self._pending = rows
        return rows

    def _fill(self) -> None:
        """Put the events last loaded into the private store (once)."""
        if self._pending is not None:
            self.store.con.execute("DELETE FROM events")
            self._copy("events", self._pending)
            self._pending = None

    def _topic(self, text: str | None) -> str:
        """A review text's topic by the reason query's own SQL expression, kept per text."""
        if text in self._known_topics:
            return self._known_topics[text]
        if text not in self._topics:
            if len(self._topics) >= 10_000:
                self._topics.clear()
            self._topics[text] = review_topics(self.store, [text])[0]
        return self._topics[text]

    def snapshot(self, ev: EventArrays, user_ids: Sequence[str], *, definition: ChurnDefinition,
                 as_of: dt.datetime, features: Sequence[str]) -> Snapshot:
        """What :func:`~churnguard.snapshots.build_snapshot` (without labels) gives these
        customers at ``as_of``: those with an activity event in the lookback window before it,
        their features and their order histories, from ``ev`` (their complete histories)."""
        cut = cutoff_us(as_of)
        start = cut - int(definition.lookback_days) * DAY_US  # cutoff - INTERVAL (n) DAY
        activity = list(definition.activity)
        cutoff = pd.Timestamp(as_of).as_unit("us")
        members, orders = [], []
        for user_id in sorted(user_ids):
            rows = ev.before(ev.rows_of(user_id), cut)
            acts = rows[np.isin(ev.type[rows], activity)]
            if not (ev.ts[acts] >= start).any():
                continue
            members.append((user_id, cutoff))
            # Snapshot.orders: the activity events before the cutoff, by time then amount
            # (NULL amounts last, as the query's ORDER BY)
            acts = sorted(acts.tolist(), key=lambda i: (ev.ts[i], ev.amount_null[i],
                                                        ev.amount[i]))
            orders += [(user_id, ev.ts[i], ev.amount[i]) for i in acts]
        frame = features_of_events(
            ev, members, features=features, activity=activity,
            lookback_days=int(definition.lookback_days), signups=self._signups,
            item_category=self._items, attributes=self._attributes,
            attribute_rows=self._attribute_rows)
        histories = pd.DataFrame({
            "user_id": pd.Series([u for u, _, _ in orders], dtype=object).astype(str),
            "cutoff": pd.Series([cutoff] * len(orders), dtype="datetime64[us]"),
            "ts": np.array([t for _, t, _ in orders], dtype=np.int64).astype("datetime64[us]"),
            "amount": np.array([a for _, _, a in orders], dtype=float)})
        return Snapshot(features=frame, labels=None, orders=histories,
                        horizon_days=int(definition.horizon_days),
                        meta={"cutoffs": [cutoff.to_pydatetime()] if members else [],
                              "supplied_labels": 0, "skipped": {}, "definition": definition,
                              "sequences": _FilledOnUse(self.store, fill=self._fill)})

    def score(self, source: Store, user_ids: Iterable[str], *, definition: ChurnDefinition,
              tiers: ScoringConfig, as_of: dt.datetime, version: str, model: ChurnModel,
              features: Sequence[str], langs: Sequence[str] = LANGS) -> dict[str, CustomerRisk]:
        """Risk at ``as_of`` of each known customer among ``user_ids`` (unknown ones are left
        out), from their events in ``source`` now."""
        wanted = list(dict.fromkeys(str(u) for u in user_ids))
        if not wanted:
            return {}
        ev = EventArrays.of(self._load_events(source, wanted))
        known = {u for u in wanted if u in ev.by_user or u in self._signups}
        out: dict[str, CustomerRisk] = {}
        # One customer's unsummable amount must not stop the answers of the others (as
        # scoring.unscorable_customers: an amount, NaN included, beyond the ceiling).
        cut = cutoff_us(as_of)
        with np.errstate(invalid="ignore"):
            beyond = ~ev.amount_null & ~(np.abs(ev.amount) <= AMOUNT_CEILING) & (ev.ts < cut)
        bad = sorted({str(u) for u in ev.user_id[beyond].tolist()})
        for user_id in bad:
            out[user_id] = _unscorable(user_id, as_of=as_of, version=version, langs=langs)
        snapshot = self.snapshot(ev, [u for u in ev.by_user if u not in bad],
                                 definition=definition, as_of=as_of, features=features)
        if len(snapshot):
            context = context_of_events(ev, list(snapshot.index), topic_of=self._topic)
            for risk in _score(model, version, snapshot, context, tiers=tiers, as_of=as_of,
                               langs=langs):
                out[risk.user_id] = risk
        for user_id in wanted:
            if user_id in known and user_id not in out:
                out[user_id] = _lapsed(user_id, as_of=as_of, version=version,
                                       definition=definition, langs=langs)
        return out


def frame_of(risks: Iterable[CustomerRisk], lang: str = "en") -> pd.DataFrame:
    """The risks as a table (user_id, status, p_churn, risk_tier, reason_1..3)."""
    rows = []
    for r in risks:
        said = list(r.reasons.get(lang, ())) + ["", "", ""]
        rows.append({"user_id": r.user_id, "status": r.status, "p_churn": r.p_churn,
                     "risk_tier": r.risk_tier, "reason_1": said[0], "reason_2": said[1],
                     "reason_3": said[2]})
    return pd.DataFrame(rows, columns=["user_id", "status", "p_churn", "risk_tier", "reason_1",
                                       "reason_2", "reason_3"])


__all__ = ["ACTIVE", "LANGS", "LAPSED", "UNSCORABLE", "CustomerRisk", "CustomerScratch",
           "PopulationScores", "customers_touched_since", "explain_rows", "frame_of",
           "known_customers", "lapsed_sentence", "probabilities", "score_population_at",
           "score_snapshot", "unscorable_sentence"]
