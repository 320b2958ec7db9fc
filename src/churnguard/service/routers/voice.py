"""GET /v1/voice: topics, sentiment and surge alerts of reviews and tickets, the same document as
``churnguard voice --json`` (docs/voice.md "Alerts")."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from churnguard.service.auth import require
from churnguard.service.errors import error_responses
from churnguard.service.state import ServiceState, service_of
from churnguard.service.voice_reports import voice_document

router = APIRouter(prefix="/v1/voice", tags=["voice"])


@router.get("", summary="Topics, sentiment and surge alerts of reviews and tickets",
            responses=error_responses("invalid_request", "no_texts", "codebook_stale",
                                      "missing_api_key", "invalid_api_key", "forbidden",
                                      "rate_limited"))
def get_voice(request: Request,
              as_of: dt.date | None = Query(None, description="The day after the window "
                                            "(default: the day after the last review or ticket)"),
              days: int | None = Query(None, ge=1, le=3660, description="Days of alerts, ending "
                                       "the day before as_of (default: [voice] alert_days)"),
              _role: str = Depends(require("read")),
              service: ServiceState = Depends(service_of)) -> dict[str, Any]:
    """Per topic its texts and negative share in the window; every alert (negative mentions of
    a topic on a day, or a week for small topics, against its same-weekday negative binomial
    baseline, Benjamini–Hochberg across topics) with its count, expected count, p- and q-value
    and the customers who wrote those texts with their newest risk tier. docs/voice.md explains
    every field."""
    return voice_document(request.app.state, service, as_of=as_of, days=days)
