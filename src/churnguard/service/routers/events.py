"""POST /v1/events: a batch of events, validated and stored exactly as file ingestion does."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends

from churnguard.ingest import IngestError, Problem, ingest_files
from churnguard.schema import CONTRACTS, ColumnType
from churnguard.service.auth import require
from churnguard.service.errors import ApiError, ErrorDetail, error_responses
from churnguard.service.schemas import EventBatchIn, EventBatchOut
from churnguard.service.state import ServiceState, service_of

router = APIRouter(prefix="/v1/events", tags=["events"])

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
    if "has no UTC offset" in reason:
        return ("has no UTC offset while other events of the batch have one; send every "
                "timestamp with an offset, or set ingest.timezone")
    if column is not None and column in _EVENTS.names:
        expected = _EXPECTED.get(_EVENTS.column(column).type)
        if expected:
            return expected
    return "is not valid"


def _details(exc: IngestError) -> list[ErrorDetail]:
    details = []
    for problem in exc.problems:
        location: list[str | int] = ["body", "events"]
        if problem.row is not None:
            location.append(problem.row - 1)
        if problem.column is not None and problem.column in _EVENTS.names:
            location.append(problem.column)
        details.append(ErrorDetail(location=location, reason=_safe_reason(problem)))
    return details


@router.post("", response_model=EventBatchOut, summary="Store a batch of events",
             responses=error_responses("invalid_request", "invalid_events", "missing_api_key",
                                       "forbidden", "body_too_large", "batch_too_large",
                                       "rate_limited"))
def post_events(batch: EventBatchIn, _role: str = Depends(require("write")),
                service: ServiceState = Depends(service_of)) -> EventBatchOut:
    """Validate the batch like `churnguard ingest events` (UTC, text scrubbing, pseudonyms,
    content-hash ids) and store it, all or nothing. Idempotent by ``event_id`` (or, without one,
    by the event's content): sending a batch again adds nothing."""
    if len(batch.events) > service.settings.max_batch_events:
        raise ApiError("batch_too_large", f"a batch holds at most "
                       f"{service.settings.max_batch_events} events; split it")
    folder = Path(tempfile.mkdtemp(prefix="churnguard-api-"))
    try:
        path = folder / "events.jsonl"
        with path.open("w", encoding="utf-8") as fh:
            for event in batch.events:
                record = event.model_dump(exclude_none=True)
                record["ts"] = event.ts.isoformat()
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        with service.pool.reading() as store, service.pool.write_lock:
            try:
                report = ingest_files(store, kind="events", files=[path], fmt="jsonl",
                                      on_error="reject", config=service.project.config.ingest)
            except IngestError as exc:
                raise ApiError("invalid_events", "some events break the events contract, so "
                               "none were stored; see details", details=_details(exc)) from None
            users: list[str] = []
            if report.rows_added:
                rows = store.con.execute(
                    "SELECT DISTINCT user_id, max(ts) OVER () FROM events WHERE batch_id = ?",
                    [report.batch_id]).fetchall()
                users = [u for u, _ in rows]
                if service.data_clock is not None and rows:
                    service.data_clock.saw(rows[0][1])
        service.risk.book.mark(users)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return EventBatchOut(batch_id=report.batch_id if report.rows_added else None,
                         received=len(batch.events), added=report.rows_added,
                         duplicate=report.rows_duplicate)
