"""Errors as JSON ``{"error": {"code": ..., "message": ...}}`` with stable codes.

A message never quotes what the client sent: request values may be personal data, and an error
body ends up in logs. FastAPI's default 422 body echoes the input, so it is replaced here, as are
the 404 and 405 answers and any unexpected exception (500, with no detail).
"""

from __future__ import annotations

import logging
import traceback
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from churnguard.errors import ChurnguardError
from churnguard.ingest import IngestError, Problem
from churnguard.schema import CONTRACTS, ColumnType

log = logging.getLogger("churnguard.service")

# Status for each stable error code (docs/service.md lists them).
CODES: dict[str, int] = {
    "invalid_request": 422,
    "invalid_events": 422,
    "missing_api_key": 401,
    "invalid_api_key": 401,
    "forbidden": 403,
    "not_found": 404,
    "user_not_found": 404,
    "ticket_not_found": 404,
    "model_not_found": 404,
    "campaign_not_found": 404,
    "campaign_exists": 409,
    "campaign_not_measurable": 409,
    "cannot_plan": 409,
    "cannot_monitor": 409,
    "no_texts": 409,
    "codebook_stale": 409,
    "method_not_allowed": 405,
    "no_previous_model": 409,
    "body_too_large": 413,
    "batch_too_large": 413,
    "unsupported_media_type": 415,
    "rate_limited": 429,
    "internal_error": 500,
    "no_model": 503,
    "not_ready": 503,
}


class ErrorDetail(BaseModel):
    """Where a request went wrong, never what it held: a path into the body and a reason."""

    location: list[str | int]
    reason: str


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] | None = None


class ErrorOut(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    """An error answer: ``code`` is one of :data:`CODES`; ``message`` must not quote input."""

    def __init__(self, code: str, message: str, *, details: list[ErrorDetail] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details, self.headers = code, message, details, headers
        self.status = CODES[code]


def error_response(code: str, message: str, *, details: list[ErrorDetail] | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorOut(error=ErrorBody(code=code, message=message, details=details))
    return JSONResponse(body.model_dump(exclude_none=True), status_code=CODES[code],
                        headers=headers)


def error_responses(*codes: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error codes a route can answer."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        status = CODES[code]
        entry = out.setdefault(status, {"model": ErrorOut, "description": ""})
        entry["description"] = ", ".join(filter(None, [entry["description"], code]))
    return out


def _location(loc: tuple[Any, ...], known: set[str]) -> list[str | int]:
    """The path of a validation error, with names the client made up (extra keys) left out."""
    out: list[str | int] = []
    for part in loc:
        if isinstance(part, int) or part in known:
            out.append(part)
        else:
            out.append("(field)")
            break
    return out


def _reason(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field; the schema lists the allowed ones"
    if kind == "missing":
        return "required"
    if kind in ("json_invalid", "json_type"):
        return "the body is not valid JSON"
    message = str(err.get("msg", "invalid value"))
    given = err.get("input")
    # pydantic's messages name the expected type or bound, not the input; make sure of it.
    if isinstance(given, str | int | float) and str(given) and str(given) in message:
        return "invalid value"
    return message


def _validation_handler(known: set[str]):
    async def handle(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [ErrorDetail(location=_location(tuple(e.get("loc", ())), known),
                               reason=_reason(e)) for e in exc.errors()[:20]]
        return error_response("invalid_request",
                              "the request does not match the schema; see details", details=details)
    return handle


_EVENTS = CONTRACTS["events"]
# Ingestion's reasons quote the bad value; the API says what kind of value was expected instead.
_EXPECTED = {
    ColumnType.TIMESTAMP: "is not a timestamp; use ISO-8601, e.g. 2024-01-31T14:05:00Z",
    ColumnType.NUMBER: "is not a finite number",
    ColumnType.RATING: "is not a rating; ratings are whole numbers from 1 to 5",
    ColumnType.BOOLEAN: "is not a yes/no value",
}


def _safe_reason(problem: Problem) -> str:
    reason = problem.reason
    column = problem.column
    if reason.startswith("is empty"):
        return f"is empty; every event needs a {column}"
    # Ingestion's bounds (docs/ingest.md): said without the value the client sent.
    for marker, said in _BOUND_REASONS:
        if marker in reason:
            return said
    if "has no UTC offset" in reason:
        return ("has no UTC offset while other events of the batch have one; send every "
                "timestamp with an offset, or set ingest.timezone")
    if column is not None and column in _EVENTS.names:
        expected = _EXPECTED.get(_EVENTS.column(column).type)
        if expected:
            return expected
    return "is not valid"


_BOUND_REASONS = (
    (" is out of range; ", "is out of range; amounts are bounded by ingest.max_amount and "
                           "quantities by ingest.max_quantity"),
    (" is negative; ", "is negative; only a return (its refund) may have a negative amount or "
                       "quantity"),
    (" characters long; ", "is too long; ids are at most 256 characters and event types 64"),
    ("holds a control character", "holds a control character; ids and event types must be "
                                  "printable text"),
    (" is in the future: ", "is in the future; events later than the time of the request "
                           "plus ingest.max_future_minutes are refused"),
)


def _event_details(exc: IngestError) -> list[ErrorDetail]:
    details = []
    for problem in exc.problems:
        location: list[str | int] = ["body", "events"]
        if problem.row is not None:
            location.append(problem.row - 1)
        if problem.column is not None and problem.column in _EVENTS.names:
            location.append(problem.column)
        details.append(ErrorDetail(location=location, reason=_safe_reason(problem)))
    return details


# The API's answer to a domain error that reaches it, by the error's stable code: the API's code
# and, where the library's message may quote what the client sent, the API's own message. The
# planner reads scores, labels and backtests, and POST /v1/campaigns/plan is the one route that
# lets their errors through, so they mean the plan cannot be made. Other domain errors are 500s.
STORE_BUSY_RETRY_S = 5
DOMAIN_ANSWERS: dict[str, tuple[str, str | None]] = {
    "user_not_found": ("user_not_found", None),
    "ticket_not_found": ("ticket_not_found", None),
    "invalid_decision": ("invalid_request", None),
    "unknown_template": ("invalid_request", None),
    "cannot_plan": ("cannot_plan", None),
    "cannot_score": ("cannot_plan", None),
    "cannot_label": ("cannot_plan", None),
    "cannot_backtest": ("cannot_plan", None),
    "campaign_not_measurable": ("campaign_not_measurable", None),
    "cannot_monitor": ("cannot_monitor", None),
    "no_texts": ("no_texts", None),
    "codebook_stale": ("codebook_stale", None),
    "model_not_found": ("model_not_found", "no such model version; GET /v1/models lists them"),
    "store_busy": ("not_ready", "another process holds the store; try again shortly"),
    "invalid_input": ("invalid_events",
                      "some events break the events contract, so none were stored; see details"),
}


async def _domain_error_handler(request: Request, exc: ChurnguardError) -> JSONResponse:
    answer = DOMAIN_ANSWERS.get(exc.code)
    if answer is None:
        return await _unexpected_handler(request, exc)
    code, message = answer
    details = _event_details(exc) if isinstance(exc, IngestError) else None
    # A busy store (lent to a command, docs/service.md) is back soon: say when to retry.
    headers = {"Retry-After": str(STORE_BUSY_RETRY_S)} if exc.code == "store_busy" else None
    # The library's messages name the store's state, never the request's values.
    return error_response(code, message or str(exc), details=details, headers=headers)


async def _api_error_handler(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc.code, exc.message, details=exc.details, headers=exc.headers)


async def _http_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 400:
        # FastAPI's answer to a body it cannot decode (not UTF-8, not JSON): a schema violation.
        return error_response("invalid_request", "the body is not valid JSON")
    if exc.status_code == 404:
        return error_response("not_found", "no such resource")
    if exc.status_code == 405:
        return error_response("method_not_allowed", "this method is not allowed here",
                              headers=dict(exc.headers or {}))
    if exc.status_code == 413:
        return error_response("body_too_large", "the request body is too large")
    if exc.status_code == 415:
        return error_response("unsupported_media_type", "send application/json")
    if exc.status_code == 401:
        return error_response("missing_api_key", "send an API key in the X-API-Key header")
    log.warning("unexpected HTTP status %s", exc.status_code)
    return error_response("internal_error", "the request failed")


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    # The route's template, never the raw path: a path holds a customer's id, and logs are kept.
    route = getattr(request.scope.get("route"), "path", "an unknown route")
    # The frames say where it failed; the exception's message is left out, as it may quote data.
    log.error("unhandled error on %s %s: %s\n%s", request.method, route, type(exc).__name__,
              "".join(traceback.format_tb(exc.__traceback__)).rstrip())
    return error_response("internal_error", "the request failed; the server log has the details")


def install_error_handlers(app: FastAPI, known_fields: set[str]) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler(known_fields))
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_exception_handler(ChurnguardError, _domain_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
