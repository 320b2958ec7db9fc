"""POST /v1/events: a batch of events, validated and stored exactly as file ingestion does."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends

from churnguard import customers
from churnguard.ingest import ingest_files
from churnguard.service.auth import require
from churnguard.service.errors import ApiError, error_responses
from churnguard.service.schemas import EventBatchIn, EventBatchOut
from churnguard.service.state import ServiceState, service_of

router = APIRouter(prefix="/v1/events", tags=["events"])

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
            # A batch that breaks the contract raises IngestError: errors.py answers it.
            report = ingest_files(store, kind="events", files=[path], fmt="jsonl",
                                  on_error="reject", config=service.project.config.ingest)
            users: list[str] = []
            if report.rows_added:
                users, newest = customers.in_batch(store, report.batch_id)
                if service.data_clock is not None and users:
                    service.data_clock.saw(newest)
        service.risk.book.mark(users)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return EventBatchOut(batch_id=report.batch_id if report.rows_added else None,
                         received=len(batch.events), added=report.rows_added,
                         duplicate=report.rows_duplicate)
