"""Errors as JSON ``{"error": {"code": ..., "message": ...}}`` with stable codes.

A message never quotes what the client sent: request values may be personal data, and an error
body ends up in logs. FastAPI's default 422 body echoes the input, so it is replaced here, as are
the 404 and 405 answers and any unexpected exception (500, with no detail).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

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
    "model_not_found": 404,
    "campaign_not_found": 404,
    "campaign_exists": 409,
    "campaign_not_measurable": 409,
    "cannot_plan": 409,
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
    log.error("unhandled error on %s %s", request.method, request.url.path,
              exc_info=(type(exc), exc, exc.__traceback__))
    return error_response("internal_error", "the request failed; the server log has the details")


def install_error_handlers(app: FastAPI, known_fields: set[str]) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler(known_fields))
    app.add_exception_handler(ApiError, _api_error_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(Exception, _unexpected_handler)
