"""What the store holds that a reply may name: the order behind a ticket, the offer the newest
plan chose for the customer and whether its delivery succeeded, and the customer's risk.

Every value is read, none is made up: a fact the store lacks is ``None``, and a template that
needs it is not offered (:mod:`churnguard.assistant.templates`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from churnguard.assistant.templates import LANGS, offer_phrase
from churnguard.config import Action
from churnguard.store import Store

__all__ = ["Risk", "latest_risk", "slot_values"]

_ORDER = ("SELECT event_id, ts FROM events WHERE user_id = $u AND type = 'order' AND ts <= $t "
          "ORDER BY ts DESC, event_id DESC LIMIT 1")
# The customer's row in the newest plan that names them, with its delivery.
_PLAN = ("SELECT r.action, r.is_control, d.status, d.updated_at FROM plan_rows r "
         "JOIN plans p USING (campaign_id) LEFT JOIN deliveries d "
         "ON d.campaign_id = r.campaign_id AND d.user_id = r.user_id "
         "WHERE r.user_id = $u ORDER BY p.created_at DESC, r.campaign_id DESC LIMIT 1")
_RISK = ("SELECT risk_tier, p_churn, as_of FROM scores WHERE user_id = $u "
         "ORDER BY as_of DESC, model_version DESC LIMIT 1")


@dataclass(frozen=True, kw_only=True)
class Risk:
    tier: str | None
    p_churn: float | None
    as_of: dt.datetime | None


def latest_risk(store: Store, stored: str) -> Risk:
    """The customer's newest stored score (``churnguard score``); all None when never scored."""
    rows = store.con.execute(_RISK, {"u": stored}).fetchall()
    if not rows:
        return Risk(tier=None, p_churn=None, as_of=None)
    tier, p, as_of = rows[0]
    return Risk(tier=tier, p_churn=None if p is None else float(p), as_of=as_of)


def slot_values(store: Store, stored: str, *, ticket_at: dt.datetime,
                actions: Sequence[Action]) -> dict[str, dict[str, str | None]]:
    """Per language, the value of every slot (None: the store has none).

    ``order_id`` and ``order_date``: the customer's latest order at or before the ticket.
    ``offer``: the coupon of the customer's row in the newest plan that names them (not a
    control row; the action catalogue ``actions`` gives its discount); ``offer_sent_date``: the
    day its delivery succeeded (status ``delivered``).
    """
    order = store.con.execute(_ORDER, {"u": stored, "t": ticket_at}).fetchall()
    plan = store.con.execute(_PLAN, {"u": stored}).fetchall()
    order_id = order[0][0] if order else None
    order_date = order[0][1].date().isoformat() if order else None
    kinds = {a.name: a for a in actions}
    offer: dict[str, str | None] = dict.fromkeys(LANGS)
    sent = None
    if plan:
        action, is_control, status, updated_at = plan[0]
        found = kinds.get(action)
        if found is not None and not is_control:
            offer = {lang: offer_phrase(found.kind, found.discount, lang) for lang in LANGS}
            if status == "delivered" and updated_at is not None:
                sent = updated_at.date().isoformat()
    return {lang: {"order_id": order_id, "order_date": order_date, "offer": offer[lang],
                   "offer_sent_date": sent if offer[lang] else None} for lang in LANGS}
