"""Support tickets as the store holds them: which are resolved, by which reply, and the facts
about a customer that a reply may name.

A ``ticket_resolved`` event closes the ``support_ticket`` with the same ``session_id`` (its
thread); resolutions without a session id close the customer's oldest still-open tickets first,
the same rule as the ``tickets_unresolved`` feature (``docs/features.md``). The text of the
resolution is the reply that resolved the ticket.

>>> from churnguard.store import Store
>>> store = Store.in_memory()
>>> _ = store.con.execute(
...     "INSERT INTO events (event_id, user_id, ts, type, text, session_id, batch_id) VALUES "
...     "('t1', 'u1', '2026-01-02', 'support_ticket', 'Parcel late', 'k1', 'b'), "
...     "('r1', 'u1', '2026-01-04', 'ticket_resolved', 'Redelivered.', 'k1', 'b'), "
...     "('t2', 'u1', '2026-01-05', 'support_ticket', 'Broken', NULL, 'b')")
>>> [(r.ticket_id, r.reply) for r in resolved_tickets(store)]
[('t1', 'Redelivered.')]
>>> [t.ticket_id for t in open_tickets(store, "u1")]
['t2']
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from churnguard.store import Store

__all__ = ["OpenTicket", "ResolvedTicket", "fingerprint", "open_tickets", "resolved_tickets"]

# Every ticket with the resolution that closed it (NULL: still open). By thread id first; the
# k-th resolution without a session id closes the customer's k-th ticket not closed by id.
_PAIRS = """
WITH t AS (SELECT event_id, user_id, ts, text, session_id FROM events
           WHERE type = 'support_ticket' {where}),
r AS (SELECT event_id, user_id, ts, text, session_id FROM events
      WHERE type = 'ticket_resolved' {where}),
by_id AS (SELECT t.event_id AS ticket_id,
                 arg_min(r.event_id, (r.ts, r.event_id)) AS resolution_id
          FROM t JOIN r ON r.user_id = t.user_id AND r.session_id = t.session_id
          GROUP BY t.event_id),
rest AS (SELECT t.event_id AS ticket_id, t.user_id,
                row_number() OVER (PARTITION BY t.user_id ORDER BY t.ts, t.event_id) AS k
         FROM t WHERE t.event_id NOT IN (SELECT ticket_id FROM by_id)),
fifo AS (SELECT event_id AS resolution_id, user_id,
                row_number() OVER (PARTITION BY user_id ORDER BY ts, event_id) AS k
         FROM r WHERE session_id IS NULL),
pairs AS (SELECT ticket_id, resolution_id FROM by_id
          UNION ALL
          SELECT rest.ticket_id, fifo.resolution_id FROM rest
          LEFT JOIN fifo ON fifo.user_id = rest.user_id AND fifo.k = rest.k)
SELECT t.event_id, t.user_id, t.ts, t.text, r.event_id, r.ts, r.text
FROM t JOIN pairs p ON p.ticket_id = t.event_id
LEFT JOIN r ON r.event_id = p.resolution_id
"""


@dataclass(frozen=True, kw_only=True)
class ResolvedTicket:
    ticket_id: str
    user_id: str
    opened_at: dt.datetime
    text: str
    resolved_at: dt.datetime
    reply: str


@dataclass(frozen=True, kw_only=True)
class OpenTicket:
    ticket_id: str
    opened_at: dt.datetime
    text: str | None


def resolved_tickets(store: Store) -> list[ResolvedTicket]:
    """Every resolved ticket with a text whose resolution carries a reply, oldest first."""
    rows = store.con.execute(
        _PAIRS.format(where="") + " WHERE r.event_id IS NOT NULL "
        "AND nullif(trim(t.text), '') IS NOT NULL AND nullif(trim(r.text), '') IS NOT NULL "
        "ORDER BY t.ts, t.event_id").fetchall()
    return [ResolvedTicket(ticket_id=a, user_id=u, opened_at=ts, text=x, resolved_at=rts,
                           reply=reply) for a, u, ts, x, _, rts, reply in rows]


def open_tickets(store: Store, stored: str) -> list[OpenTicket]:
    """The customer's tickets no resolution has closed, newest first."""
    rows = store.con.execute(
        _PAIRS.format(where="AND user_id = $u") + " WHERE r.event_id IS NULL "
        "ORDER BY t.ts DESC, t.event_id", {"u": stored}).fetchall()
    return [OpenTicket(ticket_id=a, opened_at=ts, text=x) for a, _, ts, x, *_ in rows]


def fingerprint(store: Store) -> tuple:
    """Changes whenever a ticket or resolution is added or removed (the index cache's key)."""
    return tuple(store.con.execute(
        "SELECT count(*), max(ts), max(event_id), sum(hash(event_id)) FROM events "
        "WHERE type IN ('support_ticket', 'ticket_resolved')").fetchall()[0])
