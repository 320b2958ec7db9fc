"""One customer: whether the store knows them, their timeline, and their erasure.

The faces ask these questions of one customer, each in one place: ``GET /v1/users/{id}`` and the
dashboard's customer page read :func:`timeline`; ``DELETE /v1/users/{id}`` and ``churnguard erase``
call :func:`erase`. Ids come in as the shop writes them; :func:`stored_id` gives the form the store
holds (an HMAC when the project pseudonymises).

>>> from churnguard.store import Store, StoreBusyError
>>> store = Store.in_memory()
>>> exists(store, "u1")
False
>>> _ = store.con.execute("INSERT INTO events (event_id, user_id, ts, type, amount, batch_id) "
...                       "VALUES ('e1', 'u1', '2025-01-05', 'order', 20.0, 'b'), "
...                       "('e2', 'u1', '2025-01-09', 'visit', NULL, 'b')")
>>> exists(store, "u1"), resolve(store, " u1 ")
(True, 'u1')
>>> seen = timeline(store, "u1", events=1)
>>> (seen.events_total, seen.orders, seen.spend, [e.type for e in seen.events])
(2, 1, 20.0, ['visit'])
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from churnguard.config import IngestConfig
from churnguard.erasure import (
    USER_TABLES,
    ErasureReport,
    compact_store,
    clear_pending,
    customer_ids,
    erase_customer_rows,
    mark_pending,
    pending_compactions,
    stored_user_id,
    sweep_customer_files,
)
from churnguard.errors import ChurnguardError
from churnguard.store import Store, StoreBusyError

stored_id = stored_user_id
# A user attribute makes segments when it has at most this many distinct values.
MAX_SEGMENT_VALUES = 12
# How long an erasure waits for another process that holds the store file before it leaves the
# rewrite pending (the rows and files are gone already; only freed pages still hold the bytes).
COMPACT_WAIT_S = 30.0


class UnknownCustomerError(ChurnguardError, LookupError):
    """No row in the store names the customer (the message never quotes the id: it may be
    personal data, and error messages end up in logs)."""

    code = "user_not_found"


def exists(store: Store, stored: str) -> bool:
    """Whether the store knows the customer: an event or a users row (``stored``: the id as the
    store holds it)."""
    (found,) = store.con.execute(
        "SELECT EXISTS (SELECT 1 FROM events WHERE user_id = $u) OR "
        "EXISTS (SELECT 1 FROM users WHERE user_id = $u)", {"u": stored}).fetchall()[0]
    return bool(found)


def resolve(store: Store, user_id: str, config: IngestConfig | None = None) -> str | None:
    """The id as the store holds it: the shop's id (hashed when ``config`` pseudonymises), or an
    id already in stored form (links that show stored ids); None when the store does not know
    the customer."""
    candidates = [stored_id(user_id, config)]
    if config is not None and config.pseudonymise:
        candidates.append(user_id.strip())
    return next((c for c in dict.fromkeys(candidates) if exists(store, c)), None)


def known_count(store: Store) -> int:
    """How many customers the store knows (a users row or an event)."""
    (n,) = store.con.execute(
        "SELECT count(*) FROM (SELECT user_id FROM users UNION SELECT DISTINCT user_id "
        "FROM events)").fetchall()[0]
    return int(n)


def in_batch(store: Store, batch_id: str) -> tuple[list[str], dt.datetime | None]:
    """The customers whose events an ingestion batch added, and its newest event's time."""
    rows = store.con.execute(
        "SELECT DISTINCT user_id, max(ts) OVER () FROM events WHERE batch_id = ?",
        [batch_id]).fetchall()
    return [u for u, _ in rows], (rows[0][1] if rows else None)


def segments(store: Store) -> dict[str, list[str]]:
    """User attributes with few distinct values (at most :data:`MAX_SEGMENT_VALUES`), and their
    values: the segments the report and the dashboard split customers by."""
    rows = store.con.execute(
        f"""
        WITH few AS (SELECT name FROM user_attributes GROUP BY name
                     HAVING count(DISTINCT value) <= {MAX_SEGMENT_VALUES})
        SELECT DISTINCT name, value FROM user_attributes JOIN few USING (name)
        WHERE value IS NOT NULL ORDER BY name, value
        """).fetchall()
    # The rows come ordered by name, so each attribute's values are one run.
    return {str(name): [str(value) for _, value in run]
            for name, run in itertools.groupby(rows, key=lambda row: row[0])}


# -- timeline ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class TimelineEvent:
    """One event as a timeline shows it (its free text left out)."""

    event_id: str
    ts: dt.datetime
    type: str
    item_id: str | None
    category: str | None
    title: str | None  # the item's title, when the items table has it
    amount: float | None
    quantity: float | None
    rating: int | None
    channel: str | None


@dataclass(frozen=True, kw_only=True)
class ScoreRow:
    as_of: dt.datetime
    model_version: str
    p_churn: float
    risk_tier: str
    reasons: tuple[str, ...]
    lang: str | None


@dataclass(frozen=True, kw_only=True)
class Contact:
    """A campaign the customer was assigned to (the campaigns table), with its delivery."""

    campaign_id: str
    action: str
    is_control: bool
    assigned_at: dt.datetime
    channel: str | None
    delivery_status: str | None


@dataclass(frozen=True, kw_only=True)
class PlannedContact:
    """The customer's row in a stored plan, with the plan's time and the delivery's status."""

    campaign_id: str
    created_at: dt.datetime
    action: str
    is_control: bool
    channel: str | None
    items: str | None  # JSON list of recommended items
    message_en: str | None
    message_zh: str | None
    uplift: float | None
    expected_cost: float | None
    delivery_status: str | None


@dataclass(frozen=True, kw_only=True)
class Timeline:
    signup_ts: dt.datetime | None
    events_total: int
    orders: int
    spend: float
    last_order: dt.datetime | None
    events: list[TimelineEvent]  # newest first, at most the number asked for
    scores: list[ScoreRow]  # oldest first
    contacts: list[Contact]  # oldest first
    planned: list[PlannedContact]  # oldest plan first

    @property
    def newest_plan(self) -> PlannedContact | None:
        if not self.planned:
            return None
        newest = max(p.created_at for p in self.planned)
        return next(p for p in self.planned if p.created_at == newest)


_EVENTS = ("SELECT e.event_id, e.ts, e.type, e.item_id, e.category, "
           "(SELECT i.title FROM items i WHERE i.item_id = e.item_id) AS title, e.amount, "
           "e.quantity, e.rating, e.channel FROM events e WHERE e.user_id = ? "
           "ORDER BY e.ts DESC, e.event_id LIMIT ?")
_SCORES = ("SELECT as_of, model_version, p_churn, risk_tier, reason_1, reason_2, reason_3, lang "
           "FROM scores WHERE user_id = ? ORDER BY as_of, model_version")
_CONTACTS = ("SELECT c.campaign_id, c.action, c.is_control, c.assigned_at, c.channel, d.status "
             "FROM campaigns c LEFT JOIN deliveries d ON d.campaign_id = c.campaign_id "
             "AND d.user_id = c.user_id WHERE c.user_id = ? ORDER BY c.assigned_at, "
             "c.campaign_id")
_PLANNED = ("SELECT r.campaign_id, p.created_at, r.action, r.is_control, r.channel, r.items, "
            "r.message_en, r.message_zh, r.uplift, r.expected_cost, d.status "
            "FROM plan_rows r JOIN plans p USING (campaign_id) LEFT JOIN deliveries d "
            "ON d.campaign_id = r.campaign_id AND d.user_id = r.user_id "
            "WHERE r.user_id = ? ORDER BY p.created_at, r.campaign_id")
_SUMMARY = ("SELECT count(*), count(*) FILTER (type = 'order'), "
            "coalesce(sum(amount) FILTER (type = 'order'), 0), max(ts) FILTER (type = 'order'), "
            "(SELECT signup_ts FROM users WHERE user_id = $u) FROM events WHERE user_id = $u")


def timeline(store: Store, stored: str, *, events: int) -> Timeline:
    """Everything the store holds about one customer (``stored``: the id as the store holds it),
    with the newest ``events`` events (free text left out)."""
    con = store.con
    total, orders, spend, last_order, signup = con.execute(_SUMMARY, {"u": stored}).fetchall()[0]
    event_fields = ("event_id", "ts", "type", "item_id", "category", "title", "amount",
                    "quantity", "rating", "channel")
    return Timeline(
        signup_ts=signup, events_total=int(total), orders=int(orders), spend=float(spend),
        last_order=last_order,
        events=[TimelineEvent(**dict(zip(event_fields, row, strict=True)))
                for row in con.execute(_EVENTS, [stored, events]).fetchall()],
        scores=[ScoreRow(as_of=a, model_version=v, p_churn=p, risk_tier=t,
                         reasons=tuple(r for r in (r1, r2, r3) if r), lang=lang)
                for a, v, p, t, r1, r2, r3, lang in con.execute(_SCORES, [stored]).fetchall()],
        contacts=[Contact(campaign_id=c, action=a, is_control=k, assigned_at=at, channel=ch,
                          delivery_status=st)
                  for c, a, k, at, ch, st in con.execute(_CONTACTS, [stored]).fetchall()],
        planned=[PlannedContact(**dict(zip(PlannedContact.__dataclass_fields__, row,
                                           strict=True)))
                 for row in con.execute(_PLANNED, [stored]).fetchall()],
    )


# -- erasure -------------------------------------------------------------------------------------
class StoreAccess(Protocol):
    """How :func:`erase` reaches the store: a handle that holds off other writers, and the file
    with nobody holding it open (to rewrite it)."""

    def writing(self) -> AbstractContextManager[Store]: ...

    def closed(self) -> AbstractContextManager[Path]: ...


@dataclass(frozen=True)
class StoreFile:
    """:class:`StoreAccess` for a process that has the store to itself (the CLI)."""

    path: Path
    wait_s: float = 0.0  # how long to wait for another process that holds the store

    @contextlib.contextmanager
    def writing(self) -> Iterator[Store]:
        with Store.open(self.path, wait_s=self.wait_s) as store:
            yield store

    @contextlib.contextmanager
    def closed(self) -> Iterator[Path]:
        yield self.path


def _rows_naming(store: Store, stored: str) -> int:
    (n,) = store.con.execute(
        "SELECT " + " + ".join(f"(SELECT count(*) FROM {t} WHERE user_id = ?)"
                               for t in USER_TABLES),
        [stored] * len(USER_TABLES)).fetchall()[0]
    return int(n)


def erase(user_id: str, *, root: Path, config: IngestConfig | None, access: StoreAccess,
          forget: Callable[[str], None] | None = None) -> ErasureReport:
    """Erase every trace of a customer (``user_id`` as the shop writes it): the rows of every table
    and the quarantined records that name them, the files under the project folder ``root`` that
    hold the id, and the freed pages of the store file (see :mod:`churnguard.erasure`).

    ``forget`` gets the stored id once the rows are gone, for the caller to drop what it keeps
    in memory. Raises :class:`UnknownCustomerError` when no table row names the customer (and
    changes nothing).
    """
    ids = customer_ids(user_id, config)
    with access.writing() as store:
        report = erase_customer_rows(store, ids) if _rows_naming(store, ids[0]) else None
    if report is None:
        raise UnknownCustomerError("no such customer in the store")
    if forget is not None:
        forget(ids[0])
    files = sweep_customer_files(root, ids)
    report = replace(report, files_deleted=files.deleted, files_rewritten=files.rewritten,
                     files_to_review=files.to_review)
    return replace(report, compacted=_compact(root, access, report.erasure_id))


def _compact(root: Path, access: StoreAccess, erasure_id: str) -> bool:
    """Rewrite the store file so that no freed page keeps the erased rows' bytes. When another
    process holds the file past :data:`COMPACT_WAIT_S`, the erasure is recorded as pending
    (:func:`finish_pending` completes it) and False is returned; the store is left as it was."""
    try:
        with access.closed() as path:
            compact_store(path, wait_s=COMPACT_WAIT_S)
    except StoreBusyError:
        mark_pending(root, erasure_id)
        return False
    clear_pending(root)  # one rewrite drops the freed pages of every earlier erasure too
    return True


def finish_pending(root: Path, access: StoreAccess) -> list[str]:
    """Run the store rewrite that earlier erasures could not (another process held the file);
    returns their erasure ids, [] when none was pending. Raises StoreBusyError when the file is
    still held."""
    pending = pending_compactions(root)
    if pending:
        with access.closed() as path:
            compact_store(path, wait_s=COMPACT_WAIT_S)
        clear_pending(root)
    return pending


__all__ = ["COMPACT_WAIT_S", "MAX_SEGMENT_VALUES", "Contact", "PlannedContact", "ScoreRow",
           "StoreAccess", "StoreFile", "Timeline", "TimelineEvent", "UnknownCustomerError", "erase",
           "exists", "finish_pending", "in_batch", "known_count", "resolve", "segments",
           "stored_id", "timeline"]
