"""POST /v1/events: a batch of events, validated and stored exactly as file ingestion does; while
the store is lent to a command (a scheduled cycle), validated and journaled (202), then stored
when the store comes back (service/journal.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from churnguard.service.auth import require
from churnguard.service.errors import ApiError, error_responses
from churnguard.service.journal import Queued, ingest_records
from churnguard.service.schemas import EventBatchIn, EventBatchOut, EventBatchQueuedOut
from churnguard.service.state import ServiceState, service_of
from churnguard.store import StoreBusyError

router = APIRouter(prefix="/v1/events", tags=["events"])

QUEUED = {202: {"model": EventBatchQueuedOut,
                "description": "queued: the store is lent to a command (a scheduled cycle); the "
                               "batch is validated, on disk, and stored when the store is back"}}


@router.post("", response_model=EventBatchOut, summary="Store a batch of events",
             responses=QUEUED | error_responses(
                 "invalid_request", "invalid_events", "missing_api_key", "forbidden",
                 "body_too_large", "batch_too_large", "rate_limited"))
def post_events(batch: EventBatchIn, _role: str = Depends(require("write")),
                service: ServiceState = Depends(service_of)) -> Any:
    """Validate the batch like `churnguard ingest events` (UTC, text scrubbing, pseudonyms,
    content-hash ids) and store it, all or nothing: 200 with what was added. Idempotent by
    ``event_id`` (or, without one, by the event's content): sending a batch again adds nothing.

    While the store is lent to a command (a scheduled cycle runs as one), the batch is
    validated the same way and written to the service's journal on disk: **202** ``queued``.
    The journal is stored when the store comes back (or when the service starts again), in
    order and exactly once; a batch that breaks the contract is refused (422) either way."""
    if len(batch.events) > service.settings.max_batch_events:
        raise ApiError("batch_too_large", f"a batch holds at most "
                       f"{service.settings.max_batch_events} events; split it")
    records = []
    for event in batch.events:
        record = event.model_dump(exclude_none=True)
        record["ts"] = event.ts.isoformat()
        records.append(record)
    # A batch that breaks the contract raises IngestError: errors.py answers it (422).
    queued = service.journal.accept(records)
    if queued is None:
        try:
            return _store_now(service, records)
        except StoreBusyError:
            if service.pool.lent_to is None:
                raise  # held by another process, not lent: 503 as before
            # Lent while this request waited for the store: journal it.
            queued = service.journal.accept(records, force=True)
    return _queued(queued)


def _store_now(service: ServiceState, records: list[dict[str, Any]]) -> EventBatchOut:
    # wait_s=0: a store lent to a command raises at once (the batch goes to the journal).
    with service.pool.reading(wait_s=0) as store, service.pool.write_lock:
        report = ingest_records(store, records, service.project.config.ingest)
        service.events_stored(store, report)
    return EventBatchOut(batch_id=report.batch_id if report.rows_added else None,
                         received=len(records), added=report.rows_added,
                         duplicate=report.rows_duplicate)


def _queued(queued: Queued) -> JSONResponse:
    why = ("the store is lent to a command (a scheduled cycle)" if queued.lent_since else
           "earlier journaled batches are being stored")
    body = EventBatchQueuedOut(
        journal_id=queued.journal_id, received=queued.received,
        store_lent_since=queued.lent_since,
        message=f"queued: {why}; the batch is validated and on disk, and is stored when the "
                "store is back, exactly once (sending it again adds nothing)")
    return JSONResponse(status_code=202, content=body.model_dump(mode="json"))
