"""The agents' assistant (issue 20, item 5): for an open support ticket, the most similar
resolved tickets with the replies that resolved them (retrieval within the ticket's language,
:mod:`~churnguard.assistant.retrieval`), a recommended reply in that language from reviewed
templates whose slots are filled only from the store (:mod:`~churnguard.assistant.templates`,
:mod:`~churnguard.assistant.facts`), an abstention when nothing is similar enough
(:mod:`~churnguard.assistant.assist`), and the log of what agents accepted, edited or rejected
(:mod:`~churnguard.assistant.decisions`). docs/assistant.md describes it.
"""

from churnguard.assistant.assist import (
    Assistance,
    Suggestion,
    TicketNotOpenError,
    UnknownTemplateError,
    assist,
    ticket_topic,
)
from churnguard.assistant.decisions import (
    DECISIONS,
    DecisionError,
    LoggedDecision,
    Usage,
    record_decision,
    usage_summary,
)
from churnguard.assistant.retrieval import Match, route_of, ticket_index
from churnguard.assistant.tickets import OpenTicket, ResolvedTicket, open_tickets, resolved_tickets

__all__ = ["DECISIONS", "Assistance", "DecisionError", "LoggedDecision", "Match", "OpenTicket",
           "ResolvedTicket", "Suggestion", "TicketNotOpenError", "UnknownTemplateError", "Usage",
           "assist", "open_tickets", "record_decision", "resolved_tickets", "route_of",
           "ticket_index", "ticket_topic", "usage_summary"]
