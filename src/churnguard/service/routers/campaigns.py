"""Campaigns: plan one under a budget, read a plan, read its results against the control group.

``POST /v1/campaigns/plan`` (role ``write``) runs the same planner as ``churnguard plan`` and
stores the plan as a campaign; ``GET /v1/campaigns/{id}`` returns its summary and counts;
``GET /v1/campaigns/{id}/results`` measures it against its control group once the outcome window
has passed (409 ``campaign_not_measurable`` before that, with the reason).
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Path

from churnguard.campaigns import campaign_exists, plan_exists, stored_plan
from churnguard.service.auth import require
from churnguard.service.errors import ApiError, error_responses
from churnguard.service.schemas import (
    ActionSummaryOut,
    CampaignOut,
    CampaignResultsOut,
    GroupResultOut,
    PlanIn,
)
from churnguard.service.state import ServiceState, service_of
from churnguard.store import Store

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])

_AUTH = ("missing_api_key", "invalid_api_key", "forbidden", "rate_limited")
_ID = Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")


def _campaign(store: Store, campaign_id: str) -> CampaignOut:
    plan = stored_plan(store, campaign_id)
    if plan is None:
        raise ApiError("campaign_not_found", "no planned campaign has this id")
    s = plan.summary
    # The store holds naive UTC; the API says so (RFC 3339 date-times carry an offset).
    return CampaignOut(
        campaign_id=plan.campaign_id, status=plan.status,
        created_at=plan.created_at.replace(tzinfo=dt.UTC),
        as_of=plan.as_of.replace(tzinfo=dt.UTC), budget=plan.budget,
        treated=s["treated"], control=s["control"], expected_cost=s["expected_cost"],
        expected_saves=s["expected_saves"],
        expected_incremental_margin=s["expected_incremental_margin"],
        per_action={a: ActionSummaryOut(**v) for a, v in s["per_action"].items()},
        uplift_source=s["uplift_source"])


@router.post("/plan", response_model=CampaignOut, status_code=201,
             summary="Plan a retention campaign under a budget (stored as a campaign)",
             responses=error_responses("campaign_exists", "cannot_plan", "invalid_request",
                                       *_AUTH))
def plan_campaign(body: PlanIn, _role: str = Depends(require("write")),
                  service: ServiceState = Depends(service_of)) -> CampaignOut:
    from churnguard.intervene.plan import make_plan, save_plan

    config = service.project.config
    with service.pool.reading() as store, service.pool.write_lock:
        if body.campaign_id is not None and plan_exists(store, body.campaign_id):
            raise ApiError("campaign_exists", "a campaign with this id exists already")
        # A plan that cannot be made raises a domain error: errors.py answers cannot_plan.
        plan = make_plan(store, config=config, budget=body.budget, campaign_id=body.campaign_id)
        save_plan(store, plan, config=config)
        out = _campaign(store, plan.campaign_id)
        service.recommendations.refresh(store)  # risk answers never wait for this read
    return out


@router.get("/{campaign_id}", response_model=CampaignOut, summary="A planned campaign",
            responses=error_responses("campaign_not_found", *_AUTH))
def get_campaign(campaign_id: str = _ID, _role: str = Depends(require("read")),
                 service: ServiceState = Depends(service_of)) -> CampaignOut:
    with service.pool.reading() as store:
        return _campaign(store, campaign_id)


@router.get("/{campaign_id}/results", response_model=CampaignResultsOut,
            summary="The campaign against its control group (95% confidence intervals)",
            responses=error_responses("campaign_not_found", "campaign_not_measurable", *_AUTH))
def campaign_results(campaign_id: str = _ID, _role: str = Depends(require("read")),
                     service: ServiceState = Depends(service_of)) -> CampaignResultsOut:
    from churnguard.intervene.measure import measure_campaign

    iv = service.project.config.intervene
    with service.pool.reading() as store:
        if not campaign_exists(store, campaign_id):
            raise ApiError("campaign_not_found", "no campaign has this id")
        m = measure_campaign(store, campaign_id=campaign_id, outcome_type=iv.outcome_type,
                             window_days=iv.window_days)
    groups = [GroupResultOut(
        action=g.action, tier=g.tier, n_treated=g.n_treated, n_control=g.n_control,
        retention_treated=g.retention_treated, retention_control=g.retention_control,
        incremental_retention=g.incremental_retention,
        incremental_retention_ci=list(g.incremental_retention_ci)
        if g.incremental_retention_ci else None,
        incremental_net_revenue=g.incremental_net_revenue,
        incremental_net_revenue_ci=list(g.incremental_net_revenue_ci)
        if g.incremental_net_revenue_ci else None,
        note=g.note, incremental_retention_adjusted=g.incremental_retention_adjusted,
        incremental_retention_adjusted_ci=list(g.incremental_retention_adjusted_ci)
        if g.incremental_retention_adjusted_ci else None) for g in m.groups]
    return CampaignResultsOut(campaign_id=campaign_id, outcome_type=iv.outcome_type,
                              window_days=iv.window_days, groups=groups, notes=list(m.notes))
