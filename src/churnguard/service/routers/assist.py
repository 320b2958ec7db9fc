"""The agents' assistant: help with a customer's open ticket, the agent's decision, usage."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from churnguard import assistant, customers
from churnguard.service.auth import require
from churnguard.service.errors import error_responses
from churnguard.service.schemas import (
    ID_MAX,
    AssistDecisionIn,
    AssistDecisionOut,
    AssistOut,
    AssistUsageOut,
    SimilarTicketOut,
    SuggestionOut,
)
from churnguard.service.state import ServiceState, service_of

router = APIRouter(prefix="/v1", tags=["assistant"])

UserId = Annotated[str, Path(min_length=1, max_length=ID_MAX, description="the shop's user id")]
TicketId = Annotated[str, Path(min_length=1, max_length=ID_MAX,
                               description="the event_id of the support_ticket")]
_AUTH = ("missing_api_key", "invalid_api_key", "forbidden", "rate_limited")


def assist_out(user_id: str, help_: assistant.Assistance) -> AssistOut:
    """The answer's body (the dashboard's panel shows the same)."""
    def suggestion(s: assistant.Suggestion) -> SuggestionOut:
        return SuggestionOut(template_id=s.template_id, topic=s.topic, text=s.text)

    return AssistOut(
        user_id=user_id, ticket_id=help_.ticket_id, opened_at=help_.opened_at, text=help_.text,
        lang=help_.lang, topic=help_.topic, risk_tier=help_.risk.tier,
        p_churn=help_.risk.p_churn, at_risk=help_.at_risk, threshold=help_.threshold,
        top_similarity=help_.top_similarity, abstained=help_.abstained,
        similar=[SimilarTicketOut(ticket_id=m.ticket.ticket_id, opened_at=m.ticket.opened_at,
                                  text=m.ticket.text, resolved_at=m.ticket.resolved_at,
                                  reply=m.ticket.reply, similarity=m.similarity,
                                  text_similarity=m.text_similarity)
                 for m in help_.similar],
        recommendation=None if help_.recommendation is None
        else suggestion(help_.recommendation),
        alternatives=[suggestion(s) for s in help_.alternatives])


def _known(service: ServiceState, store, user_id: str) -> str:  # noqa: ANN001
    stored = service.stored_id(user_id)
    if not customers.exists(store, stored):
        raise customers.UnknownCustomerError("no such customer in the store")
    return stored


@router.get("/users/{user_id}/tickets/{ticket_id}/assist", response_model=AssistOut,
            summary="Help with an open support ticket",
            responses=error_responses("invalid_request", "user_not_found", "ticket_not_found",
                                      *_AUTH))
def get_assist(user_id: UserId, ticket_id: TicketId, _role: str = Depends(require("read")),
               service: ServiceState = Depends(service_of)) -> AssistOut:
    """For one of the customer's open tickets: the most similar resolved tickets (in the
    ticket's language) with the reply that resolved each, a recommended reply from the reviewed
    templates with slots filled only from the store, and ``abstained`` when nothing resolved is
    similar enough (then no similar tickets and no recommendation). The customer's newest
    stored risk says whether they are at risk (docs/assistant.md)."""
    config = service.project.config
    with service.pool.reading() as store:
        stored = _known(service, store, user_id)
        help_ = assistant.assist(store, stored, ticket_id, config=config.assistant,
                                 actions=config.intervene.actions)
    return assist_out(user_id, help_)


@router.post("/users/{user_id}/tickets/{ticket_id}/assist", response_model=AssistDecisionOut,
             status_code=201, summary="Log what the agent did with the recommended reply",
             responses=error_responses("invalid_request", "user_not_found", "ticket_not_found",
                                       *_AUTH))
def post_decision(user_id: UserId, ticket_id: TicketId, body: AssistDecisionIn,
                  _role: str = Depends(require("write")),
                  service: ServiceState = Depends(service_of)) -> AssistDecisionOut:
    """Accepted, edited or rejected: one row of the assistant's log (``GET /v1/assist/usage``
    sums them). An accepted reply is logged as the template filled from the store now."""
    config = service.project.config
    with service.pool.reading() as store, service.pool.write_lock:
        stored = _known(service, store, user_id)
        row = assistant.record_decision(
            store, stored, ticket_id, decision=body.decision, template_id=body.template_id,
            text=body.text, agent=body.agent, config=config.assistant,
            actions=config.intervene.actions)
    return AssistDecisionOut(**dataclasses.asdict(row))


@router.get("/assist/usage", response_model=AssistUsageOut,
            summary="How agents used the assistant's recommendations",
            responses=error_responses("invalid_request", *_AUTH))
def get_usage(since: Annotated[dt.datetime | None, Query(
                  description="count decisions from this time on (UTC if no offset)")] = None,
              _role: str = Depends(require("read")),
              service: ServiceState = Depends(service_of)) -> AssistUsageOut:
    """Decisions logged (accepted, edited, rejected) overall, per language and per template,
    with the acceptance, edit and rejection rates."""
    if since is not None and since.tzinfo is not None:
        since = since.astimezone(dt.UTC).replace(tzinfo=None)
    with service.pool.reading() as store:
        usage = assistant.usage_summary(store, since=since)
    return AssistUsageOut(**dataclasses.asdict(usage))


__all__ = ["assist_out", "router"]
