"""One customer: real-time risk, timeline, erasure."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse
from fastapi.concurrency import run_in_threadpool

from churnguard import customers
from churnguard.realtime import CustomerRisk
from churnguard.service.auth import require
from churnguard.service.errors import ApiError, error_responses
from churnguard.service.schemas import (
    ID_MAX,
    CampaignReceivedOut,
    ErasureOut,
    Lang,
    RecommendationOut,
    ScoreHistoryOut,
    TimelineEventOut,
    TimelineOut,
    UserRiskOut,
)
from churnguard.service.state import ServiceState, service_of
from churnguard.store import Store

router = APIRouter(prefix="/v1/users", tags=["users"])
# On a risk answer given from memory while a command borrows the store: since when (UTC).
LENT_HEADER = "X-Churnguard-Store-Lent-Since"

UserId = Annotated[str, Path(min_length=1, max_length=ID_MAX, description="the shop's user id")]
_AUTH = ("missing_api_key", "invalid_api_key", "forbidden", "rate_limited")


def risk_or_error(service: ServiceState, store: Store, stored_id: str) -> CustomerRisk:
    try:
        risk = service.risk.risk(store, stored_id)
    except LookupError:
        raise ApiError("no_model", "no champion model yet; train one (churnguard train) "
                       "or promote one") from None
    if risk is None:
        raise ApiError("user_not_found", "no such customer in the store")
    return risk


def _recommended(service: ServiceState, stored_id: str, lang: str) -> RecommendationOut | None:
    found = service.recommendations.get(stored_id)
    if found is None:
        return None
    return RecommendationOut(campaign_id=found.campaign_id, action=found.action,
                             channel=found.channel, message=found.messages.get(lang))


def _risk_out(user_id: str, risk: CustomerRisk, action: RecommendationOut | None,
              lang: str) -> UserRiskOut:
    return UserRiskOut(user_id=user_id, as_of=risk.as_of, model_version=risk.model_version,
                       status=risk.status, p_churn=risk.p_churn, risk_tier=risk.risk_tier,
                       reasons=list(risk.reasons.get(lang, ())), recommended_action=action)


def _risk_from_store(service: ServiceState, user_id: str, stored: str, lang: str) -> UserRiskOut:
    with service.pool.reading() as store:
        if not service.recommendations.loaded:
            service.recommendations.load(store)
        risk = risk_or_error(service, store, stored)
    return _risk_out(user_id, risk, _recommended(service, stored, lang), lang)


@router.get("/{user_id}/risk", response_model=UserRiskOut, summary="Churn risk as of now",
            responses=error_responses("invalid_request", "user_not_found", "no_model", *_AUTH))
async def get_risk(user_id: UserId, response: Response, lang: Lang = "en",
                   _role: str = Depends(require("read")),
                   service: ServiceState = Depends(service_of)) -> UserRiskOut:
    """The calibrated probability of churning within the horizon, the risk tier and up to
    three reasons, computed as of now: events stored a moment ago count. ``lapsed`` customers
    (no activity in the lookback window) have already churned by the definition and get no
    probability. The recommended action comes from the newest campaign plan, if any."""
    stored = service.stored_id(user_id)
    lent_since = service.pool.lent_since
    state, risk = service.risk.cached(stored, lent=lent_since is not None)
    if lent_since is not None and state != "miss":
        # A command borrows the store: answer from memory, and say that what the command
        # writes (its events, a new model) is not in this answer (docs/service.md).
        response.headers[LENT_HEADER] = lent_since.strftime("%Y-%m-%dT%H:%M:%SZ")
    elif state == "miss" or not service.recommendations.loaded:
        # Reading the store and scoring take a worker thread; a cached answer does not.
        return await run_in_threadpool(_risk_from_store, service, user_id, stored, lang)
    if risk is None:
        raise ApiError("user_not_found", "no such customer in the store")
    return _risk_out(user_id, risk, _recommended(service, stored, lang), lang)


@router.get("/{user_id}", response_model=TimelineOut, summary="A customer's timeline",
            responses=error_responses("invalid_request", "user_not_found", *_AUTH))
def get_timeline(user_id: UserId,
                 limit: Annotated[int, Query(ge=1, le=10_000)] | None = None,
                 _role: str = Depends(require("read")),
                 service: ServiceState = Depends(service_of)) -> TimelineOut:
    """Events (newest first, without free text), scores over time and campaigns received."""
    stored = service.stored_id(user_id)
    with service.pool.reading() as store:
        if not customers.exists(store, stored):
            raise customers.UnknownCustomerError("no such customer in the store")
        seen = customers.timeline(store, stored, events=limit or service.settings.timeline_events)
    return TimelineOut(
        user_id=user_id,
        signup_ts=seen.signup_ts,
        events_total=seen.events_total,
        events=[TimelineEventOut(event_id=x.event_id, ts=x.ts, type=x.type, item_id=x.item_id,
                                 category=x.category, amount=x.amount, quantity=x.quantity,
                                 rating=x.rating, channel=x.channel) for x in seen.events],
        scores=[ScoreHistoryOut(as_of=s.as_of, model_version=s.model_version, p_churn=s.p_churn,
                                risk_tier=s.risk_tier, reasons=list(s.reasons))
                for s in seen.scores],
        campaigns=[CampaignReceivedOut(campaign_id=c.campaign_id, action=c.action,
                                       is_control=c.is_control, at=c.assigned_at,
                                       channel=c.channel, source="history",
                                       delivery_status=None) for c in seen.contacts]
        + [CampaignReceivedOut(campaign_id=p.campaign_id, action=p.action,
                               is_control=p.is_control, at=p.created_at, channel=p.channel,
                               source="plan", delivery_status=p.delivery_status)
           for p in seen.planned],
    )


@router.delete("/{user_id}", response_model=ErasureOut, summary="Erase every trace of a customer",
               responses={202: {"model": ErasureOut, "description": "erased; the store file's "
                                "rewrite is pending (another process held it)"},
                          **error_responses("invalid_request", "user_not_found", *_AUTH)})
def erase_user(user_id: UserId, _role: str = Depends(require("admin")),
               service: ServiceState = Depends(service_of)) -> JSONResponse:
    """Delete the customer's rows from every table (events, attributes, labels, campaigns,
    scores, backtest predictions, plans, deliveries, quarantined records), every file under the
    project folder that holds the id (caches, exports), and rewrite the store file so no freed
    page keeps it. The audit record in ``erasures`` holds only the counts and a random id.
    The service pauses other requests while the store file is rewritten."""
    report = customers.erase(user_id, root=service.project.root,
                             config=service.project.config.ingest, access=service.pool,
                             forget=service.forget_customer)
    body = ErasureOut(erasure_id=report.erasure_id, erased_at=report.erased_at,
                      rows_deleted=report.rows_deleted, files_deleted=report.files_deleted,
                      files_rewritten=list(report.files_rewritten),
                      files_to_review=list(report.files_to_review), compacted=report.compacted)
    # 202: done but for the store rewrite, which runs as soon as the file is free.
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if report.compacted else 202)


__all__ = ["LENT_HEADER", "risk_or_error", "router"]
