"""GET /v1/monitor: the monitoring report (drift with calibrated alarms, the label-free estimate,
realized metrics of matured cohorts), the same document as ``churnguard monitor --json``; kept
per cutoff while its inputs hold (:mod:`churnguard.service.monitor_reports`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from churnguard.service.auth import require
from churnguard.service.errors import error_responses
from churnguard.service.monitor_reports import monitor_document, report_cache
from churnguard.service.state import ServiceState, service_of

router = APIRouter(prefix="/v1/monitor", tags=["monitor"])


@router.get("", summary="Drift, the label-free estimate and realized metrics",
            responses=error_responses("invalid_request", "cannot_monitor", "missing_api_key",
                                      "invalid_api_key", "forbidden", "rate_limited"))
def get_monitor(request: Request,
                as_of: dt.date | None = Query(None, description="The batch's cutoff (default: "
                                              "just after the last event)"),
                _role: str = Depends(require("read")),
                service: ServiceState = Depends(service_of)) -> dict[str, Any]:
    """Every input of the champion and its scores, the population at ``as_of`` against the
    champion's training window: the statistic, its bootstrap p-value at this batch size, the
    Benjamini–Hochberg q-value and the alarm; the label-free estimate with its limit; the
    realized ROC-AUC, calibration and lift of matured scoring runs (treated customers left out).
    docs/monitor.md explains every field."""
    with service.pool.reading() as store:
        return monitor_document(service, store, report_cache(request.app.state), as_of)
