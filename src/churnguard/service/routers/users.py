"""One customer: real-time risk, timeline, erasure."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.concurrency import run_in_threadpool

from churnguard.erasure import (
    USER_TABLES,
    compact_store,
    erase_customer_files,
    erase_customer_rows,
)
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
async def get_risk(user_id: UserId, lang: Lang = "en", _role: str = Depends(require("read")),
                   service: ServiceState = Depends(service_of)) -> UserRiskOut:
    """The calibrated probability of churning within the horizon, the risk tier and up to
    three reasons, computed as of now: events stored a moment ago count. ``lapsed`` customers
    (no activity in the lookback window) have already churned by the definition and get no
    probability. The recommended action comes from the newest campaign plan, if any."""
    stored = service.stored_id(user_id)
    state, risk = service.risk.cached(stored)
    if state == "miss" or not service.recommendations.loaded:
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
    limit = limit or service.settings.timeline_events
    with service.pool.reading() as store:
        con = store.con
        (total,) = con.execute("SELECT count(*) FROM events WHERE user_id = ?",
                               [stored]).fetchall()[0]
        signup = con.execute("SELECT signup_ts FROM users WHERE user_id = ?",
                             [stored]).fetchall()
        if not total and not signup:
            raise ApiError("user_not_found", "no such customer in the store")
        events = con.execute(
            "SELECT event_id, ts, type, item_id, category, amount, quantity, rating, channel "
            "FROM events WHERE user_id = ? ORDER BY ts DESC, event_id LIMIT ?",
            [stored, limit]).fetchall()
        scores = con.execute(
            "SELECT as_of, model_version, p_churn, risk_tier, reason_1, reason_2, reason_3 "
            "FROM scores WHERE user_id = ? ORDER BY as_of, model_version", [stored]).fetchall()
        history = con.execute(
            "SELECT campaign_id, action, is_control, assigned_at, channel FROM campaigns "
            "WHERE user_id = ? ORDER BY assigned_at, campaign_id", [stored]).fetchall()
        planned = con.execute(
            "SELECT r.campaign_id, r.action, r.is_control, p.created_at, r.channel, d.status "
            "FROM plan_rows r JOIN plans p USING (campaign_id) "
            "LEFT JOIN deliveries d ON d.campaign_id = r.campaign_id AND d.user_id = r.user_id "
            "WHERE r.user_id = ? ORDER BY p.created_at, r.campaign_id", [stored]).fetchall()
    names = ("event_id", "ts", "type", "item_id", "category", "amount", "quantity", "rating",
             "channel")
    return TimelineOut(
        user_id=user_id,
        signup_ts=signup[0][0] if signup else None,
        events_total=total,
        events=[TimelineEventOut(**dict(zip(names, row, strict=True))) for row in events],
        scores=[ScoreHistoryOut(as_of=a, model_version=v, p_churn=p, risk_tier=t,
                                reasons=[r for r in (r1, r2, r3) if r])
                for a, v, p, t, r1, r2, r3 in scores],
        campaigns=[CampaignReceivedOut(campaign_id=c, action=a, is_control=k, at=at, channel=ch,
                                       source="history", delivery_status=None)
                   for c, a, k, at, ch in history]
        + [CampaignReceivedOut(campaign_id=c, action=a, is_control=k, at=at, channel=ch,
                               source="plan", delivery_status=st)
           for c, a, k, at, ch, st in planned],
    )


@router.delete("/{user_id}", response_model=ErasureOut, summary="Erase every trace of a customer",
               responses=error_responses("invalid_request", "user_not_found", *_AUTH))
def erase_user(user_id: UserId, _role: str = Depends(require("admin")),
               service: ServiceState = Depends(service_of)) -> ErasureOut:
    """Delete the customer's rows from every table (events, attributes, labels, campaigns,
    scores, backtest predictions, plans, deliveries, quarantined records), every file under the
    project folder that holds the id (caches, exports), and rewrite the store file so no freed
    page keeps it. The audit record in ``erasures`` holds only the counts and a random id.
    The service pauses other requests while the store file is rewritten."""
    config = service.project.config.ingest
    stored = service.stored_id(user_id)
    with service.pool.reading() as store, service.pool.write_lock:
        known = store.con.execute(
            "SELECT " + " + ".join(f"(SELECT count(*) FROM {t} WHERE user_id = ?)"
                                   for t in USER_TABLES),
            [stored] * len(USER_TABLES)).fetchall()[0][0]
        report = erase_customer_rows(store, user_id, config=config) if known else None
    if report is None:
        raise ApiError("user_not_found", "no such customer in the store")
    service.risk.forget(stored)
    service.recommendations.forget(stored)
    if service.data_clock is not None:
        service.data_clock.reset()
    files = erase_customer_files(service.project.root, user_id, config=config)
    with service.pool.exclusive() as path:
        compact_store(path)
    return ErasureOut(erasure_id=report.erasure_id, erased_at=report.erased_at,
                      rows_deleted=report.rows_deleted, files_deleted=files)


__all__ = ["risk_or_error", "router"]
