"""GET /v1/cycles: the record of the operating cycles (``churnguard cycles --json``), newest
first, each step with its status, decision, evidence and figures, and the schedule."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query

from churnguard.service.auth import require
from churnguard.service.errors import error_responses
from churnguard.service.operations import MAX_CYCLES, cycles_out
from churnguard.service.schemas import CyclesOut
from churnguard.service.state import ServiceState, service_of

router = APIRouter(prefix="/v1/cycles", tags=["operate"])


@router.get("", response_model=CyclesOut, summary="The newest operating cycles, step by step",
            responses=error_responses("invalid_request", "missing_api_key", "invalid_api_key",
                                      "forbidden", "rate_limited"))
def get_cycles(limit: int = Query(10, ge=1, le=MAX_CYCLES, description="How many cycles, "
                                  "newest first"),
               _role: str = Depends(require("read")),
               service: ServiceState = Depends(service_of)) -> CyclesOut:
    """What each cycle of `churnguard run` or of the service's schedule did: every step's
    status (a failed step with its error), its decision in one sentence, the evidence and the
    figures; and when the next scheduled cycle runs. docs/operate.md explains the cycle."""
    with service.pool.reading() as store:
        return cycles_out(service, store, limit=limit)
