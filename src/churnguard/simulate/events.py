"""The event log: what the day loop records, and the vectorised pass that turns it into events.

The day loop records only what the dynamics decide (visits with their order flag, orders with
their experience, tickets opening and resolving). Browsing detail (views, searches, cart adds and
removes, logins), reviews and returns do not feed back into the hidden state, so they are drawn
afterwards in one vectorised pass over all records; this keeps the day loop small.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churnguard.simulate.catalog import CATEGORIES, Catalog, draw_items
from churnguard.simulate.population import BARGAIN, Population
from churnguard.simulate.process import SLOW_DELIVERY, TICKET_SLOTS, OrderExperience, State
from churnguard.simulate.scenarios import SURGE_BASELINE_DAYS, Surge
from churnguard.simulate.text import (
    DELIVERY,
    PRICE,
    QUALITY,
    SERVICE,
    TOPICS,
    complaint_topics,
    pick_templates,
    template_table,
    with_contact,
)

EVENT_TYPES: tuple[str, ...] = (
    "visit", "login", "view", "search", "cart_add", "cart_remove", "order", "return", "review",
    "support_ticket", "ticket_resolved", "coupon_redeem",
)
(VISIT, LOGIN, VIEW, SEARCH, CART_ADD, CART_REMOVE, ORDER, RETURN, REVIEW, TICKET, RESOLVED,
 COUPON) = range(len(EVENT_TYPES))
# Tickets arrive by e-mail, chat or phone; support answers by e-mail, outreach by phone.
EVENT_CHANNELS: tuple[str, ...] = ("web", "app", "email", "chat", "phone")
PII_SHARE = 0.05
# Thread numbers: open day * _THREAD_SLOTS + slot; slots from TICKET_SLOTS on are a surge's.
_THREAD_SLOTS = 16
DAY = 86_400
MICROS = 1_000_000


@dataclass
class DayLog:
    """Per-day records appended by the day loop (lists of arrays, concatenated at the end)."""

    _visit: list[tuple] = field(default_factory=list)
    _order: list[tuple] = field(default_factory=list)
    _opened: list[tuple] = field(default_factory=list)
    _resolved: list[tuple] = field(default_factory=list)

    def visits(self, *, day: int, users: np.ndarray, ordered: np.ndarray) -> None:
        self._visit.append((np.full(users.size, day, np.int32), users, ordered))

    def orders(self, *, day: int, users: np.ndarray, item: np.ndarray, category: np.ndarray,
               quantity: np.ndarray, amount: np.ndarray, experience: OrderExperience,
               coupon: np.ndarray) -> None:
        self._order.append((np.full(users.size, day, np.int32), users, item, category, quantity,
                            amount, experience.delay, experience.late, experience.defective,
                            coupon))

    def opened(self, *, day: int, users: np.ndarray, topic: np.ndarray,
               slots: np.ndarray) -> None:
        self._opened.append((np.full(users.size, day, np.int32), users, topic, slots))

    def resolved(self, *, day: int, users: np.ndarray, via_outreach: bool, slots: np.ndarray,
                 open_day: np.ndarray, topic: np.ndarray) -> None:
        """Tickets resolved on ``day``: each one's slot, the day it opened (together with the
        customer they name the ticket: its thread id) and its topic (what the reply answers)."""
        self._resolved.append((np.full(users.size, day, np.int32), users,
                               np.full(users.size, via_outreach), slots, open_day, topic))

    def resolved_in(self, *, day: int, state: State, mask: np.ndarray, via_outreach: bool
                    ) -> None:
        """Log the tickets of the (slot, customer) ``mask`` as resolved on ``day``."""
        slot, who = np.nonzero(mask)
        self.resolved(day=day, users=who, via_outreach=via_outreach, slots=slot,
                      open_day=state.t_open[slot, who], topic=state.t_topic[slot, who])


def _cat(parts: list[tuple], dtypes: tuple[type, ...]) -> list[np.ndarray]:
    """Concatenate per-day records field by field; typed empty arrays when nothing happened."""
    if not parts:
        return [np.zeros(0, dtype=t) for t in dtypes]
    return [np.concatenate([p[j] for p in parts]).astype(t, copy=False)
            for j, t in enumerate(dtypes)]


@dataclass
class _Columns:
    """Event columns being assembled; -1 / NaN mark missing values."""

    user: list = field(default_factory=list)
    sec: list = field(default_factory=list)
    kind: list = field(default_factory=list)
    item: list = field(default_factory=list)
    amount: list = field(default_factory=list)
    quantity: list = field(default_factory=list)
    text: list = field(default_factory=list)
    rating: list = field(default_factory=list)
    channel: list = field(default_factory=list)
    session: list = field(default_factory=list)
    thread: list = field(default_factory=list)  # ticket threads (see thread_ref), -1 none
    surge: list = field(default_factory=list)  # added by an injected surge

    def add(self, *, user, sec, kind, item=None, amount=None, quantity=None, text=None,
            rating=None, channel, session=None, thread=None, surge=False) -> None:
        m = user.shape[0]

        def fill(v, default, dtype):
            return np.full(m, default, dtype) if v is None else np.asarray(v, dtype)

        self.user.append(user.astype(np.int64))
        self.sec.append(sec.astype(np.int64))
        self.kind.append(np.full(m, kind, np.int8))
        self.item.append(fill(item, -1, np.int64))
        self.amount.append(fill(amount, np.nan, np.float64))
        self.quantity.append(fill(quantity, -1, np.int32))
        self.text.append(fill(text, -1, np.int64))
        self.rating.append(fill(rating, -1, np.int8))
        self.channel.append(fill(channel, 0, np.int8))
        self.session.append(fill(session, -1, np.int64))
        self.thread.append(fill(thread, -1, np.int64))
        self.surge.append(np.full(m, surge, bool))


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For per-parent counts, return (parent index, rank within parent) of each child."""
    parent = np.repeat(np.arange(counts.shape[0]), counts)
    starts = np.cumsum(counts) - counts
    return parent, np.arange(parent.shape[0]) - starts[parent]


@dataclass(frozen=True, kw_only=True)
class _Orders:
    """The orders of the day log, one array per field."""

    day: np.ndarray
    user: np.ndarray
    item: np.ndarray
    cat: np.ndarray
    qty: np.ndarray
    amount: np.ndarray
    delay: np.ndarray
    late: np.ndarray
    defect: np.ndarray
    coupon: np.ndarray


class _Sessions:
    """The visits as sessions: when each starts and on which channel, so that the events of a
    session can be placed inside it."""

    def __init__(self, *, rng: np.random.Generator, population: Population, catalog: Catalog,
                 day: np.ndarray, user: np.ndarray, ordered: np.ndarray) -> None:
        self.rng, self.population, self.catalog = rng, population, catalog
        self.user, self.ordered = user, ordered
        n_v = user.shape[0]
        # Sessions: start near the preferred hour, never before the signup moment.
        hour = np.clip(population.preferred_hour[user] + rng.normal(0, 1.2, n_v), 0.0, 22.5)
        t0 = day.astype(np.int64) * DAY + (hour * 3600).astype(np.int64)
        signup_sec = population.traits.signup_day[user].astype(np.int64) * DAY \
            + population.signup_second[user]
        self.t0 = np.maximum(t0, signup_sec + 60)
        self.session = np.arange(n_v)
        self.chan = population.device[user]

    def at(self, pos: np.ndarray, parent: np.ndarray) -> np.ndarray:
        # 45 s per position plus < 40 s jitter keeps the order of events inside a session.
        return self.t0[parent] + pos * 45 + self.rng.integers(0, 40, parent.shape[0])

    def pref_items(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        cat = np.sum(self.population.pref_cum[users] < rng.random(users.shape[0])[:, None], axis=1)
        return draw_items(rng=rng, catalog=self.catalog, category=cat.astype(np.int16)), cat


def build_events(*, rng: np.random.Generator, log: DayLog, population: Population,
                 catalog: Catalog, start: dt.date, days: int,
                 delivery_reviews: bool = False, surge: SurgePlan | None = None) -> pa.Table:
    """Turn the day log into the events table, sorted by (ts, user_id), with unique event ids.

    ``delivery_reviews``: delivery-sensitive customers review slow deliveries badly (the drift
    scenario; see ``_reviews_and_returns``). ``surge``: inject a complaint surge (see
    :class:`SurgePlan`; its record is filled in).
    """
    v_day, v_user, v_ordered = _cat(log._visit, (np.int32, np.int64, bool))
    orders = _Orders(**dict(zip(_Orders.__dataclass_fields__, _cat(
        log._order, (np.int32, np.int64, np.int64, np.int16, np.int64, np.float64, np.int32,
                     bool, bool, np.float64)), strict=True)))
    opened = _cat(log._opened, (np.int32, np.int64, np.int8, np.int64))
    resolved = _cat(log._resolved, (np.int32, np.int64, bool, np.int64, np.int64, np.int8))
    texts, tindex = template_table()
    cols = _Columns()
    sessions = _Sessions(rng=rng, population=population, catalog=catalog, day=v_day, user=v_user,
                         ordered=v_ordered)
    _browsing(cols=cols, s=sessions, tindex=tindex)
    _carts_and_orders(cols=cols, s=sessions, orders=orders)
    _reviews_and_returns(rng=rng, cols=cols, population=population, orders=orders, tindex=tindex,
                         delivery_reviews=delivery_reviews)
    texts = _tickets(rng=rng, cols=cols, population=population, opened=opened, resolved=resolved,
                     texts=texts, tindex=tindex)
    if surge is not None:
        _surge(plan=surge, cols=cols, population=population, orders=orders, texts=texts,
               tindex=tindex, start=start, days=days)
    return _to_table(cols=cols, texts=texts, population=population, catalog=catalog,
                     start=start, days=days, surge=surge)


def _browsing(*, cols: _Columns, s: _Sessions, tindex: dict) -> None:
    """Each visit, and in its session a login, searches and product views."""
    rng, v_user, v_ordered, session, chan = s.rng, s.user, s.ordered, s.session, s.chan
    zh = s.population.language_zh
    n_v = v_user.shape[0]
    at, pref_items = s.at, s.pref_items
    cols.add(user=v_user, sec=at(np.zeros(n_v, np.int64), session), kind=VISIT, channel=chan,
             session=session)
    login = rng.random(n_v) < np.where(chan == 1, 0.7, 0.35)
    p = np.flatnonzero(login)
    cols.add(user=v_user[p], sec=at(np.ones(p.size, np.int64), p), kind=LOGIN, channel=chan[p],
             session=p)
    parent, rank = _expand(rng.binomial(2, 0.35, n_v))
    _, cat = pref_items(v_user[parent])
    query = pick_templates(rng=rng, index=tindex, kind="search", topic=cat,
                           positive=np.ones(parent.size, bool), zh=zh[v_user[parent]])
    cols.add(user=v_user[parent], sec=at(2 + rank, parent), kind=SEARCH, text=query,
             channel=chan[parent], session=parent)
    parent, rank = _expand(np.minimum(1 + rng.poisson(2.0 + 1.5 * v_ordered), 15))
    item, _ = pref_items(v_user[parent])
    cols.add(user=v_user[parent], sec=at(4 + rank, parent), kind=VIEW, item=item,
             channel=chan[parent], session=parent)


def _carts_and_orders(*, cols: _Columns, s: _Sessions, orders: _Orders) -> None:
    """Cart adds and removes, the orders in their sessions, and the coupons they redeemed."""
    rng, v_user, v_ordered, chan, at = s.rng, s.user, s.ordered, s.chan, s.at
    o_user, o_item, o_qty, o_amount = orders.user, orders.item, orders.qty, orders.amount
    n_v = v_user.shape[0]
    # Orders map one-to-one, in order, onto the visits flagged as ordered (both logged per day
    # in increasing customer order).
    o_session = np.flatnonzero(v_ordered)
    extra = rng.random(n_v) < np.where(v_ordered, 0.2, 0.3)
    parent, rank = _expand(extra.astype(np.int64))
    item, _ = s.pref_items(v_user[parent])
    cols.add(user=v_user[parent], sec=at(20 + rank, parent), kind=CART_ADD, item=item,
             quantity=np.ones(parent.size), channel=chan[parent], session=parent)
    removed = parent[rng.random(parent.size) < 0.45]
    cols.add(user=v_user[removed], sec=at(np.full(removed.size, 23), removed), kind=CART_REMOVE,
             item=item[np.searchsorted(parent, removed)], quantity=np.ones(removed.size),
             channel=chan[removed], session=removed)
    cols.add(user=o_user, sec=at(np.full(o_user.size, 21), o_session), kind=CART_ADD, item=o_item,
             quantity=o_qty, channel=chan[o_session], session=o_session)
    o_sec = at(np.full(o_user.size, 26), o_session)
    cols.add(user=o_user, sec=o_sec, kind=ORDER, item=o_item, amount=o_amount, quantity=o_qty,
             channel=chan[o_session], session=o_session)
    c = np.flatnonzero(orders.coupon > 0)
    cols.add(user=o_user[c], sec=o_sec[c] + 1, kind=COUPON, item=o_item[c],
             amount=np.round(orders.coupon[c] * o_amount[c], 2), channel=chan[o_session[c]],
             session=o_session[c])


def _reviews_and_returns(*, rng: np.random.Generator, cols: _Columns, population: Population,
                         orders: _Orders, tindex: dict, delivery_reviews: bool = False) -> None:
    """Reviews after the experience of an order, and returns.

    With ``delivery_reviews``, an order delivered slowly (SLOW_DELIVERY days or more) but neither
    late nor defective draws a complaint with probability 0.8 * d (d: the customer's delivery
    sensitivity): a review on delivery rated like a bad experience. It uses the same uniform as
    the review decision, so the random stream is the same as without it.
    """
    o_day, o_user, o_item, o_delay = orders.day, orders.user, orders.item, orders.delay
    o_late, o_defect = orders.late, orders.defect
    zh, device = population.language_zh, population.device
    # Reviews follow the experience: topic and sentiment, rating, language.
    bad = o_late | o_defect
    n_o = o_user.shape[0]
    u = rng.random(n_o)
    if delivery_reviews:
        p_gripe = np.where(bad | (o_delay < SLOW_DELIVERY), 0.0,
                           0.8 * population.traits.delivery_sensitivity[o_user])
        gripe = u < p_gripe
        reviewed = u < np.where(bad, 0.4, 0.15 + p_gripe)
    else:
        gripe = np.zeros(n_o, bool)
        reviewed = u < np.where(bad, 0.4, 0.15)
    r = np.flatnonzero(reviewed)
    good_topic = rng.choice([DELIVERY, QUALITY, PRICE, SERVICE], size=n_o, p=[0.3, 0.4, 0.2, 0.1])
    good_topic = np.where((population.traits.segment[o_user] == BARGAIN) & (rng.random(n_o) < 0.5),
                          PRICE, good_topic)
    topic = np.where(o_defect, QUALITY, np.where(o_late | gripe, DELIVERY, good_topic))
    rating_bad = rng.choice([1, 2, 3, 4], size=n_o, p=[0.4, 0.33, 0.19, 0.08])
    rating_good = rng.choice([2, 3, 4, 5], size=n_o, p=[0.03, 0.1, 0.35, 0.52])
    rating = np.where(bad | gripe, rating_bad, rating_good)
    text = pick_templates(rng=rng, index=tindex, kind="review", topic=topic[r],
                          positive=rating[r] >= 4, zh=zh[o_user[r]])
    r_sec = (o_day[r].astype(np.int64) + o_delay[r] + rng.integers(1, 5, r.size)) * DAY \
        + rng.integers(8 * 3600, 23 * 3600, r.size)
    cols.add(user=o_user[r], sec=r_sec, kind=REVIEW, item=o_item[r], text=text, rating=rating[r],
             channel=device[o_user[r]])

    # Returns: defective items mostly; otherwise the customer's return propensity.
    ret = rng.random(n_o) < np.where(o_defect, 0.7, population.return_propensity[o_user])
    r = np.flatnonzero(ret)
    ret_sec = (o_day[r].astype(np.int64) + o_delay[r] + rng.integers(2, 11, r.size)) * DAY \
        + rng.integers(8 * 3600, 23 * 3600, r.size)
    cols.add(user=o_user[r], sec=ret_sec, kind=RETURN, item=o_item[r], amount=orders.amount[r],
             quantity=orders.qty[r], channel=device[o_user[r]])


def _tickets(*, rng: np.random.Generator, cols: _Columns, population: Population,
             opened: list[np.ndarray], resolved: list[np.ndarray], texts: list[str],
             tindex: dict) -> list[str]:
    """Tickets and their resolution; a few texts carry contact details, which extend ``texts``
    (returned).

    A ticket and the resolution that closes it share a thread id in ``session_id`` (the data
    contract's link: ``docs/features.md``, unresolved tickets), and the resolution's text is the
    reply that resolved it, in the customer's language, about the ticket's topic. The reply's
    variant is a hash of the thread, not a draw: the random stream is the same as without
    replies.
    """
    t_day, t_user, t_topic, t_slot = opened
    r_day, r_user, r_outreach, r_slot, r_open, r_topic = resolved
    zh = population.language_zh
    text = pick_templates(rng=rng, index=tindex, kind="ticket", topic=t_topic.astype(np.int64),
                          positive=np.zeros(t_user.size, bool), zh=zh[t_user])
    pii = np.flatnonzero(rng.random(t_user.size) < PII_SHARE)
    texts_pii = with_contact(rng=rng, base=[texts[j] for j in text[pii].tolist()],
                             zh=zh[t_user[pii]])
    text[pii] = len(texts) + np.arange(pii.size)
    texts = texts + texts_pii
    cols.add(user=t_user, sec=t_day.astype(np.int64) * DAY + rng.integers(8 * 3600, 22 * 3600,
                                                                          t_user.size),
             kind=TICKET, text=text, channel=rng.integers(2, 5, t_user.size),
             thread=thread_ref(open_day=t_day, slot=t_slot))
    r_thread = thread_ref(open_day=r_open, slot=r_slot)
    cols.add(user=r_user, sec=r_day.astype(np.int64) * DAY + 23 * 3600
             + rng.integers(0, 3600, r_user.size), kind=RESOLVED,
             channel=np.where(r_outreach, 4, 2), thread=r_thread,
             text=pick_replies(index=tindex, topic=r_topic, zh=zh[r_user], user=r_user,
                               thread=r_thread))
    return texts


@dataclass(kw_only=True)
class SurgePlan:
    """A complaint surge to inject (:class:`~churnguard.simulate.scenarios.Surge`), its own
    random stream, and what it added (``record``: filled by :func:`build_events`)."""

    surge: Surge
    rng: np.random.Generator
    record: dict = field(default_factory=dict)


# Customers who ordered in this many days before a surge day write its complaints.
SURGE_AUTHOR_DAYS = 30


def _surge(*, plan: SurgePlan, cols: _Columns, population: Population, orders: _Orders,
           texts: list[str], tindex: dict, start: dt.date, days: int) -> None:
    """Extra complaints of the surge's topic: each surge day draws Poisson((size - 1) * b)
    negative reviews and tickets, b the mean daily count of each before the surge; tickets are
    resolved (with replies) as ordinary ones are, a quarter never."""
    rng, s = plan.rng, plan.surge
    topic = TOPICS.index(s.topic)
    kind = np.concatenate(cols.kind)
    day = np.concatenate(cols.sec) // DAY
    text = np.concatenate(cols.text)
    complaint = np.where(text >= 0, complaint_topics(texts)[np.maximum(text, 0)], -1) == topic
    first = (s.start - start).days
    base_from = max(0, first - SURGE_BASELINE_DAYS)
    before = complaint & (day >= base_from) & (day < first)
    base_reviews = float(np.sum(before & (kind == REVIEW))) / (first - base_from)
    base_tickets = float(np.sum(before & (kind == TICKET))) / (first - base_from)
    zh, device = population.language_zh, population.device
    per_day = []
    for d in range(first, min(first + s.days, days)):
        n_r = int(rng.poisson((s.size - 1.0) * base_reviews))
        n_t = int(rng.poisson((s.size - 1.0) * base_tickets))
        recent = np.flatnonzero((orders.day >= d - SURGE_AUTHOR_DAYS) & (orders.day < d))
        if recent.size == 0:
            n_r = n_t = 0
        r = recent[rng.integers(0, max(recent.size, 1), n_r)]
        user = orders.user[r]
        cols.add(user=user, sec=d * DAY + rng.integers(8 * 3600, 23 * 3600, n_r), kind=REVIEW,
                 item=orders.item[r], rating=rng.choice([1, 2, 3], size=n_r, p=[0.5, 0.35, 0.15]),
                 text=pick_templates(rng=rng, index=tindex, kind="review",
                                     topic=np.full(n_r, topic), positive=np.zeros(n_r, bool),
                                     zh=zh[user]),
                 channel=device[user], surge=True)
        # One surge ticket per customer a day: its thread (day, TICKET_SLOTS) is then unique.
        authors = np.unique(orders.user[recent])
        n_t = min(n_t, authors.size)
        user = authors[rng.permutation(authors.size)[:n_t]] if n_t else authors[:0]
        thread = thread_ref(open_day=np.full(n_t, d), slot=np.full(n_t, TICKET_SLOTS))
        cols.add(user=user, sec=d * DAY + rng.integers(8 * 3600, 22 * 3600, n_t), kind=TICKET,
                 text=pick_templates(rng=rng, index=tindex, kind="ticket",
                                     topic=np.full(n_t, topic), positive=np.zeros(n_t, bool),
                                     zh=zh[user]),
                 channel=rng.integers(2, 5, n_t), thread=thread, surge=True)
        after = 1 + np.minimum(rng.geometric(0.2, n_t), 29)
        kept = rng.random(n_t) >= 0.25
        cols.add(user=user[kept], sec=(d + after[kept]) * DAY + 23 * 3600
                 + rng.integers(0, 3600, int(kept.sum())), kind=RESOLVED, channel=np.full(
                     int(kept.sum()), 2), thread=thread[kept], surge=True,
                 text=pick_replies(index=tindex, topic=np.full(int(kept.sum()), topic),
                                   zh=zh[user[kept]], user=user[kept], thread=thread[kept]))
        per_day.append({"date": (start + dt.timedelta(days=d)).isoformat(),
                        "extra_reviews": n_r, "extra_tickets": n_t})
    plan.record.update(baseline_reviews_per_day=base_reviews,
                       baseline_tickets_per_day=base_tickets,
                       baseline_from=(start + dt.timedelta(days=base_from)).isoformat(),
                       days=per_day)


def thread_ref(*, open_day: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """A ticket's number among its customer's tickets: the day it opened and its slot (a slot
    holds one ticket at a time, so a customer's tickets never share both)."""
    return open_day.astype(np.int64) * _THREAD_SLOTS + slot.astype(np.int64)


def pick_replies(*, index: dict, topic: np.ndarray, zh: np.ndarray, user: np.ndarray,
                 thread: np.ndarray) -> np.ndarray:
    """One reply text index per resolution: the variant is a hash of (customer, thread)."""
    out = np.zeros(user.size, dtype=np.int64)
    for k, (u, t, tp, z) in enumerate(zip(user.tolist(), thread.tolist(), topic.tolist(),
                                          zh.tolist())):
        ids = index[("reply", int(tp), False, bool(z))]
        out[k] = ids[zlib.crc32(f"{u}|{t}".encode()) % ids.size]
    return out


def _to_table(*, cols: _Columns, texts: list[str], population: Population, catalog: Catalog,
              start: dt.date, days: int, surge: SurgePlan | None = None) -> pa.Table:
    c = {k: np.concatenate(getattr(cols, k)) for k in cols.__dataclass_fields__}
    keep = (c["sec"] >= 0) & (c["sec"] < days * DAY)
    c = {k: v[keep] for k, v in c.items()}
    # Sort by (ts, user); generation order breaks remaining ties so the result is deterministic.
    order = np.lexsort((np.arange(c["sec"].size), c["user"], c["sec"]))
    c = {k: v[order] for k, v in c.items()}
    n = c["sec"].size
    if surge is not None:
        surge.record["rows"] = np.flatnonzero(c["surge"])
    epoch = int(dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC).timestamp())
    ts = pa.array((epoch + c["sec"]) * MICROS, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    user_ids = pa.array([f"u{j:07d}" for j in range(population.traits.n)])
    has_item = c["item"] >= 0
    item_idx = np.where(has_item, c["item"], 0)

    def decode(indices: np.ndarray, dictionary: pa.Array, mask: np.ndarray | None = None):
        arr = pa.DictionaryArray.from_arrays(pa.array(indices, pa.int32(), mask=mask), dictionary)
        return arr.dictionary_decode()

    ids = pc.binary_join_element_wise(
        "e", pc.utf8_lpad(pc.cast(pa.array(np.arange(n)), pa.string()), width=9, padding="0"), "")
    sessions = pc.binary_join_element_wise(
        "s", pc.utf8_lpad(pc.cast(pa.array(c["session"]), pa.string()), width=8, padding="0"), "")
    # A ticket thread: "k", the customer's number, "-", the thread number (thread_ref).
    threads = pc.binary_join_element_wise(
        "k", pc.utf8_lpad(pc.cast(pa.array(c["user"]), pa.string()), width=7, padding="0"),
        "-", pc.cast(pa.array(c["thread"]), pa.string()), "")
    sessions = pc.if_else(pa.array(c["session"] >= 0), sessions,
                          pc.if_else(pa.array(c["thread"] >= 0), threads,
                                     pa.scalar(None, pa.string())))
    return pa.table({
        "event_id": ids,
        "user_id": decode(c["user"], user_ids),
        "ts": ts,
        "type": decode(c["kind"], pa.array(EVENT_TYPES)),
        "item_id": decode(item_idx, pa.array(catalog.item_id), ~has_item),
        "category": decode(catalog.category[item_idx].astype(np.int64), pa.array(CATEGORIES),
                           ~has_item),
        "amount": pa.array(c["amount"], pa.float64(), mask=np.isnan(c["amount"])),
        "quantity": pa.array(c["quantity"], pa.int32(), mask=c["quantity"] < 0),
        "text": decode(np.maximum(c["text"], 0), pa.array(texts, pa.string()), c["text"] < 0),
        "rating": pa.array(c["rating"], pa.int8(), mask=c["rating"] < 0),
        "channel": decode(c["channel"], pa.array(EVENT_CHANNELS)),
        "session_id": sessions,
    })
