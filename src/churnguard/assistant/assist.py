"""Help for an agent answering an open ticket: similar resolved tickets with the replies that
resolved them, a recommended reply from the reviewed templates, or an abstention.

The similar tickets are ranked by a similarity that blends each resolved ticket's text and the
reply that resolved it (``[assistant] reply_weight``,
:meth:`~churnguard.assistant.retrieval.TicketIndex.similarities`); the abstention compares the
cosine of the nearest resolved ticket *text* with the threshold, as it did before the blend.

The recommendation's topic is the ticket's own (by the review-topic keywords of
:mod:`churnguard.explain.topics`), else the one most of the similar resolved tickets share; its
slots come from the store (:func:`~churnguard.assistant.facts.slot_values`). When the most
similar resolved ticket is less similar than the route's threshold (chosen from the store's
resolved tickets, :meth:`~churnguard.assistant.retrieval.TicketIndex.threshold`, unless
:class:`~churnguard.config.AssistantConfig` fixes it), the assistant abstains: no similar
tickets and no recommendation, only the templates any topic allows.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from churnguard.assistant.facts import Risk, latest_risk, slot_values
from churnguard.assistant.retrieval import Match, route_of, ticket_index
from churnguard.assistant.templates import TEMPLATES, Template, offered
from churnguard.assistant.tickets import open_tickets
from churnguard.config import Action, AssistantConfig
from churnguard.errors import ChurnguardError
from churnguard.explain.topics import TOPIC_KEYWORDS
from churnguard.store import Store

__all__ = ["Assistance", "Suggestion", "TicketNotOpenError", "UnknownTemplateError", "assist",
           "suggestion_for", "ticket_topic"]


class TicketNotOpenError(ChurnguardError, LookupError):
    """The ticket is not one of the customer's open tickets (unknown, someone else's, or
    already resolved)."""

    code = "ticket_not_found"


@dataclass(frozen=True, kw_only=True)
class Suggestion:
    template_id: str
    topic: str
    text: str


@dataclass(frozen=True, kw_only=True)
class Assistance:
    ticket_id: str
    opened_at: dt.datetime
    text: str | None
    lang: str  # the ticket's language, and the reply's
    topic: str | None  # of the recommendation (None: no topic found)
    risk: Risk
    at_risk: bool
    threshold: float
    top_similarity: float | None  # the cosine of the nearest resolved ticket text (abstain rule)
    abstained: bool
    similar: list[Match]  # empty when abstained
    recommendation: Suggestion | None
    alternatives: list[Suggestion]


def ticket_topic(text: str | None) -> str | None:
    """The first review topic with a keyword in the text (``explain.topics``), else None.

    >>> ticket_topic("My parcel is late"), ticket_topic("包裹一直卡在转运中心")
    ('delivery', 'delivery')
    >>> ticket_topic("hello") is None
    True
    """
    low = (text or "").lower()
    words = set("".join(c if c.isalnum() or c == "'" else " " for c in low).split())
    for topic, keys in TOPIC_KEYWORDS.items():
        if any(k in low if " " in k else k in words for k in keys["en"]):
            return topic
        if any(k in low for k in keys["zh"]):
            return topic
    return None


def _topic(text: str | None, similar: Sequence[Match]) -> str | None:
    own = ticket_topic(text)
    if own is not None:
        return own
    votes = Counter(t for t in (ticket_topic(m.ticket.text) for m in similar) if t)
    return votes.most_common(1)[0][0] if votes else None


def _suggestions(templates: list[Template], lang: str, values: dict) -> list[Suggestion]:
    return [Suggestion(template_id=t.id, topic=t.topic, text=t.fill(lang, values) or "")
            for t in templates]


def _open_ticket(store: Store, stored: str, ticket_id: str):
    found = next((t for t in open_tickets(store, stored) if t.ticket_id == ticket_id), None)
    if found is None:
        raise TicketNotOpenError("no such open ticket for this customer")
    return found


def assist(store: Store, stored: str, ticket_id: str, *, config: AssistantConfig,
           actions: Sequence[Action]) -> Assistance:
    """Help with the customer's open ticket ``ticket_id`` (``stored``: the id as the store
    holds it); :class:`TicketNotOpenError` when it is not one of their open tickets."""
    ticket = _open_ticket(store, stored, ticket_id)
    lang = route_of(ticket.text)
    index = ticket_index(store, {"en": config.encoder_en, "zh": config.encoder_zh})
    fixed = config.min_similarity_zh if lang == "zh" else config.min_similarity_en
    threshold = fixed if fixed is not None else index.threshold(lang, config.answer_share)
    found = index.lookup(ticket.text or "", k=config.k, exclude=frozenset({ticket_id}),
                         reply_weight=config.reply_weight)
    similar, top = found.matches, found.best_text_similarity
    abstained = top is None or top < threshold
    risk = latest_risk(store, stored)
    values = slot_values(store, stored, ticket_at=ticket.opened_at, actions=actions)[lang]
    topic = None if abstained else _topic(ticket.text, similar)
    suggestions = _suggestions(offered(topic, lang, values), lang, values)
    return Assistance(
        ticket_id=ticket_id, opened_at=ticket.opened_at, text=ticket.text, lang=lang,
        topic=topic, risk=risk, at_risk=risk.tier in config.at_risk_tiers, threshold=threshold,
        top_similarity=top, abstained=abstained, similar=[] if abstained else similar,
        recommendation=suggestions[0] if suggestions and topic is not None else None,
        alternatives=suggestions[1:] if topic is not None else suggestions)


def suggestion_for(store: Store, stored: str, ticket_id: str, template_id: str, *,
                   actions: Sequence[Action]) -> tuple[str, Suggestion | None]:
    """The ticket's language and the template filled for it from the store now (None when a
    slot has no value: the template could not have been offered). Raises
    :class:`TicketNotOpenError` and, for an unknown template, :class:`UnknownTemplateError`."""
    ticket = _open_ticket(store, stored, ticket_id)
    lang = route_of(ticket.text)
    template = TEMPLATES.get(template_id)
    if template is None:
        raise UnknownTemplateError("unknown reply template; GET the assistance for the ids")
    values = slot_values(store, stored, ticket_at=ticket.opened_at, actions=actions)[lang]
    text = template.fill(lang, values)
    return lang, None if text is None else Suggestion(template_id=template.id,
                                                     topic=template.topic, text=text)


class UnknownTemplateError(ChurnguardError, ValueError):
    """A template id that is not in the reviewed templates."""

    code = "unknown_template"
