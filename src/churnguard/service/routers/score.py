"""POST /v1/score: risk as of now for up to 10,000 customers per call."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from churnguard.service.auth import require
from churnguard.service.errors import ApiError, error_responses
from churnguard.service.schemas import ScoreIn, ScoreOut, ScoreRowOut
from churnguard.service.state import ServiceState, service_of

router = APIRouter(prefix="/v1/score", tags=["score"])


@router.post("", response_model=ScoreOut, summary="Risk of many customers as of now",
             responses=error_responses("invalid_request", "batch_too_large", "body_too_large",
                                       "no_model", "missing_api_key", "invalid_api_key",
                                       "forbidden", "rate_limited"))
def score(body: ScoreIn, _role: str = Depends(require("read")),
          service: ServiceState = Depends(service_of)) -> ScoreOut:
    """One row per distinct id asked about, in the order asked: ``active`` (scored),
    ``lapsed`` (already churned by the definition), ``unscorable`` (their data cannot be
    featurised: the reason says what to fix; the others are scored) or ``unknown`` (not in the
    store)."""
    if len(body.user_ids) > service.settings.max_score_ids:
        raise ApiError("batch_too_large", f"score at most {service.settings.max_score_ids} "
                       "customers per call; split the list")
    asked = list(dict.fromkeys(body.user_ids))
    stored = {u: service.stored_id(u) for u in asked}
    with service.pool.reading() as store:
        try:
            risks = service.risk.risks(store, list(dict.fromkeys(stored.values())))
            champion = service.risk.champion(store)
        except LookupError:
            raise ApiError("no_model", "no champion model yet; train one (churnguard train) "
                           "or promote one") from None
    if champion is None:
        raise ApiError("no_model", "no champion model yet; train one (churnguard train) "
                       "or promote one")
    rows = []
    for user_id in asked:
        risk = risks.get(stored[user_id])
        if risk is None:
            rows.append(ScoreRowOut(user_id=user_id, status="unknown", p_churn=None,
                                    risk_tier=None, reasons=[]))
        else:
            rows.append(ScoreRowOut(user_id=user_id, status=risk.status, p_churn=risk.p_churn,
                                    risk_tier=risk.risk_tier,
                                    reasons=list(risk.reasons.get(body.lang, ()))))
    return ScoreOut(model_version=champion.version, scores=rows)
