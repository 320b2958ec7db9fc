"""The log of what agents did with the recommended replies, and how much the assistant is used.

An agent accepts the recommended reply as it is, edits it before sending, or rejects it. Each
decision is one row of ``assist_log`` (migration 13). For an accepted reply the text logged is
the template filled from the store at that moment, never text from the caller, so the log shows
what the assistant really recommended; an edited reply logs the agent's text.

>>> from churnguard.store import Store
>>> store = Store.in_memory()
>>> usage_summary(store).decisions
0
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from churnguard.assistant.assist import TicketNotOpenError, assist, suggestion_for
from churnguard.config import Action, AssistantConfig
from churnguard.errors import ChurnguardError
from churnguard.store import Store

__all__ = ["DECISIONS", "DecisionError", "LoggedDecision", "Usage", "record_decision",
           "usage_summary"]

DECISIONS = ("accepted", "edited", "rejected")
MAX_TEXT = 4000


class DecisionError(ChurnguardError, ValueError):
    """A decision that cannot be logged as given (messages never repeat what was given)."""

    code = "invalid_decision"


@dataclass(frozen=True, kw_only=True)
class LoggedDecision:
    assist_id: str
    logged_at: dt.datetime
    ticket_id: str
    decision: str
    template_id: str | None
    lang: str
    sent_text: str | None


def record_decision(store: Store, stored: str, ticket_id: str, *, decision: str,
                    template_id: str | None, text: str | None, agent: str | None,
                    config: AssistantConfig, actions: Sequence[Action],
                    now: dt.datetime | None = None) -> LoggedDecision:
    """Log the agent's ``decision`` on the recommendation for an open ticket.

    ``accepted`` needs the ``template_id`` that was recommended and no text; ``edited`` needs
    the text sent; ``rejected`` takes neither text nor anything sent. The ticket's similarity
    and abstention are worked out again, so the row says how sure the assistant was.
    """
    if decision not in DECISIONS:
        raise DecisionError(f"decision must be one of {', '.join(DECISIONS)}")
    if decision == "edited" and not (text or "").strip():
        raise DecisionError("an edited reply needs the text that was sent")
    if decision != "edited" and text is not None:
        raise DecisionError(f"a {decision} reply takes no text (the log keeps the template's)")
    if text is not None and len(text) > MAX_TEXT:
        raise DecisionError(f"the text is longer than {MAX_TEXT} characters")
    if decision == "accepted" and template_id is None:
        raise DecisionError("an accepted reply needs the template_id that was recommended")
    help_ = assist(store, stored, ticket_id, config=config, actions=actions)
    lang, sent = help_.lang, text
    if template_id is not None:
        lang, filled = suggestion_for(store, stored, ticket_id, template_id, actions=actions)
        if filled is None:
            raise DecisionError("the template cannot be filled for this ticket from the store, "
                                "so it was not offered")
        if decision == "accepted":
            sent = filled.text
    row = LoggedDecision(assist_id=uuid.uuid4().hex, logged_at=(
        now or dt.datetime.now(dt.UTC)).replace(tzinfo=None), ticket_id=ticket_id,
        decision=decision, template_id=template_id, lang=lang, sent_text=sent)
    store.con.execute(
        "INSERT INTO assist_log VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [row.assist_id, row.logged_at, stored, ticket_id, lang, decision, template_id, sent,
         help_.top_similarity, help_.abstained, agent])
    return row


@dataclass(frozen=True, kw_only=True)
class Usage:
    decisions: int
    by_decision: dict[str, int]
    acceptance_rate: float | None  # accepted / decisions
    edit_rate: float | None
    rejection_rate: float | None
    abstained: int  # decisions on tickets where the assistant abstained
    by_lang: dict[str, dict[str, int]]
    by_template: dict[str, dict[str, int]]
    first_at: dt.datetime | None
    last_at: dt.datetime | None


def usage_summary(store: Store, *, since: dt.datetime | None = None) -> Usage:
    """Counts of the logged decisions (from ``since`` on, UTC), overall, per language and per
    template, with the acceptance, edit and rejection rates."""
    rows = store.con.execute(
        "SELECT decision, lang, coalesce(template_id, '(none)'), abstained, logged_at "
        "FROM assist_log WHERE $since IS NULL OR logged_at >= $since",
        {"since": None if since is None else since.replace(tzinfo=None)}).fetchall()
    n = len(rows)
    by_decision = {d: sum(r[0] == d for r in rows) for d in DECISIONS}
    by_lang: dict[str, dict[str, int]] = {}
    by_template: dict[str, dict[str, int]] = {}
    for decision, lang, template, _, _ in rows:
        for table, key in ((by_lang, lang), (by_template, template)):
            counts = table.setdefault(key, dict.fromkeys(DECISIONS, 0))
            counts[decision] += 1

    def rate(d: str) -> float | None:
        return by_decision[d] / n if n else None

    return Usage(decisions=n, by_decision=by_decision, acceptance_rate=rate("accepted"),
                 edit_rate=rate("edited"), rejection_rate=rate("rejected"),
                 abstained=sum(bool(r[3]) for r in rows),
                 by_lang=dict(sorted(by_lang.items())),
                 by_template=dict(sorted(by_template.items())),
                 first_at=min((r[4] for r in rows), default=None),
                 last_at=max((r[4] for r in rows), default=None))
