"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, PlainTextResponse

from churnguard.erasure import pending_compactions
from churnguard.registry import CHAMPION, alias_version
from churnguard.service.auth import require
from churnguard.service.errors import error_responses
from churnguard.service.metrics import CONTENT_TYPE
from churnguard.service.schemas import HealthOut, ReadyOut
from churnguard.service.state import ServiceState, service_of

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut, summary="The process is up")
def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get("/readyz", response_model=ReadyOut, summary="Ready to answer: store reachable, "
            "a champion model present, and the last scoring of the population did not fail",
            responses={503: {"model": ReadyOut}})
def readyz(service: ServiceState = Depends(service_of)) -> JSONResponse:
    champion = None
    if service.pool.lent_to is not None:
        # A command borrows the store for a while: risk answers come from memory meanwhile, so
        # the service stays ready (a balancer must not pull it for a CLI command).
        store_ok, champion = True, service.risk.champion_version
    else:
        store_ok = service.pool.ping()
        if store_ok:
            try:
                with service.pool.reading() as store:
                    champion = alias_version(store, CHAMPION)
            except Exception:  # noqa: BLE001 - any failure means not ready
                store_ok = False
    failed = service.risk.population_error
    ready = store_ok and champion is not None and failed is None
    population = "failed" if failed else ("scored" if service.risk.book.ready else "pending")
    body = ReadyOut(status="ready" if ready else "not_ready", store=store_ok, champion=champion,
                    population=population, scores_as_of=service.risk.book.table_as_of,
                    pending_erasures=len(pending_compactions(service.project.root)),
                    reasons_ready=service.risk.book.reasons_progress,
                    left_out=service.risk.population_left_out)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", response_model=None,
            responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format 0.0.4"},
                       **error_responses("missing_api_key", "invalid_api_key", "forbidden",
                                         "rate_limited")})
def metrics(_role: str = Depends(require("read")),
            service: ServiceState = Depends(service_of)) -> PlainTextResponse:
    book = service.risk.book
    service.metrics.gauges["churnguard_population_scores_ready"] = 1.0 if book.ready else 0.0
    return PlainTextResponse(service.metrics.render(), media_type=CONTENT_TYPE)
