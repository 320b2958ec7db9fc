"""GET /v1/models/decisions: the champion/challenger gate's decisions with their evidence
(``churnguard models decisions --json``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from churnguard.service.auth import require
from churnguard.service.errors import error_responses
from churnguard.service.operations import decisions_out
from churnguard.service.schemas import GateDecisionsOut
from churnguard.service.state import ServiceState, service_of

router = APIRouter(prefix="/v1/models/decisions", tags=["models"])


@router.get("", response_model=GateDecisionsOut, summary="The gate's decisions and their "
            "evidence", responses=error_responses("missing_api_key", "invalid_api_key",
                                                  "forbidden", "rate_limited"))
def get_decisions(_role: str = Depends(require("read")),
                  service: ServiceState = Depends(service_of)) -> GateDecisionsOut:
    """Every decision, oldest first: promoted, kept, no-evidence or rolled-back, with the
    out-of-time cohort, each model's ROC-AUC, ΔAUC and its one-sided lower bound, the ECEs,
    the thresholds used and the reason. docs/operate.md ("The gate") explains the rule."""
    with service.pool.reading() as store:
        return decisions_out(store)
