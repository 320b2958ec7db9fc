"""Events posted while the store is lent: kept in a durable journal, stored when it comes back.

While a command borrows the store (a scheduled cycle's ``churnguard run`` holds it for minutes,
:mod:`churnguard.lending`), the service cannot write. ``POST /v1/events`` then validates the
batch exactly as ingestion would (on an empty in-memory store, rolled back), appends it as one
JSON line to :data:`JOURNAL_NAME` in the project folder, flushes it to disk (``fsync``) and only
then answers **202** ``queued``. When the store comes back, a background thread stores the
journaled batches with the same ingestion as a direct post, then drops them from the journal.

Nothing is lost and nothing is stored twice:

* a batch is acknowledged only once its line is on disk; a line a crash cut short was never
  acknowledged and is cut off when the service starts;
* the service stores what the journal holds when it starts (after a ``kill -9`` between the
  202 and the store);
* ingestion is idempotent by ``event_id`` (or by the event's content), so a crash between the
  store's commit and the journal's truncation stores nothing twice when the batch is applied
  again;
* while the journal holds batches, new ones queue behind them (answered 202), so nothing
  overtakes it.

A batch that ingestion refuses when it is applied (it was validated when accepted, so only a
change of the ingest settings between the two can cause this) is moved to :data:`REJECTED_NAME`
with the reason and logged as an error, never dropped silently.

>>> JOURNAL_NAME
'.churnguard-events.journal'
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churnguard.config import IngestConfig
from churnguard.ingest import IngestError, IngestReport, ingest_files
from churnguard.service.store_pool import StorePool
from churnguard.store import Store, StoreBusyError

log = logging.getLogger("churnguard.service")

JOURNAL_NAME = ".churnguard-events.journal"
REJECTED_NAME = ".churnguard-events.rejected"
# The drain looks this often whether the store is back (it is also woken when a lend ends).
DRAIN_POLL_S = 1.0
# After a failed drain, wait this long before the next try.
RETRY_S = 5.0


class _Rollback(Exception):
    """Raised inside a validation's transaction so that nothing of it is kept."""


@dataclass(frozen=True, kw_only=True)
class Queued:
    """A batch the journal accepted: its id, how many events, and since when the store is lent
    (None: it is back, and earlier batches are still being stored)."""

    journal_id: str
    received: int
    lent_since: dt.datetime | None


def write_jsonl(records: Sequence[dict[str, Any]], path: Path) -> Path:
    """``records`` as JSON lines at ``path`` (what ingestion reads)."""
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


@contextlib.contextmanager
def _jsonl(records: Sequence[dict[str, Any]]) -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="churnguard-api-"))
    try:
        yield write_jsonl(records, folder / "events.jsonl")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def ingest_records(store: Store, records: Sequence[dict[str, Any]], config: IngestConfig,
                   *, before_commit: Callable[..., None] | None = None) -> IngestReport:
    """Store ``records`` (one all-or-nothing batch) as ``churnguard ingest events`` would."""
    with _jsonl(records) as path:
        return ingest_files(store, kind="events", files=[path], fmt="jsonl", on_error="reject",
                            config=config, before_commit=before_commit)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class EventJournal:
    """The journal of the project at ``root`` for the store ``pool``.

    ``on_stored(store, report)``: called after each batch of journaled events is stored (the
    service marks their customers for a fresh risk answer)."""

    def __init__(self, *, root: Path, pool: StorePool, config: IngestConfig,
                 on_stored: Callable[[Store, IngestReport], None]) -> None:
        self.path = Path(root) / JOURNAL_NAME
        self.rejected_path = Path(root) / REJECTED_NAME
        self.pool, self.config, self.on_stored = pool, config, on_stored
        self._lock = threading.Lock()  # appends, the scratch store, the journal's truncation
        self._drain_lock = threading.Lock()  # one drain at a time
        self._scratch: Store | None = None
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None
        self.stored_events = 0  # events the drains added to the store
        self.last_error: str | None = None
        self._cut_torn_tail()
        self._pending = self._size() > 0

    # -- accepting -------------------------------------------------------------------------------
    @property
    def pending(self) -> bool:
        """Whether batches wait in the journal."""
        return self._pending

    def accept(self, records: Sequence[dict[str, Any]], *, force: bool = False) -> Queued | None:
        """Journal the batch when the store is lent or earlier batches wait (always when
        ``force``); None when it should be stored now instead.

        Raises :class:`~churnguard.ingest.IngestError` for a batch ingestion would refuse
        (nothing is journaled), OSError when the journal cannot be written (nor is anything
        acknowledged)."""
        with self._lock:
            lent_since = self.pool.lent_since
            if not force and lent_since is None and not self._pending:
                return None
            self._validate(records)
            entry = {"id": uuid.uuid4().hex, "received_at": dt.datetime.now(dt.UTC).isoformat(),
                     "events": list(records)}
            self._append(json.dumps(entry, ensure_ascii=False) + "\n")
            self._pending = True
        self._wake.set()
        return Queued(journal_id=entry["id"], received=len(records), lent_since=lent_since)

    def _validate(self, records: Sequence[dict[str, Any]]) -> None:
        """Ingest into an empty in-memory store and roll back: the batch's contract checks
        (types, times, bounds, pseudonyms) need no data, so what passes here is stored later."""
        if self._scratch is None:
            self._scratch = Store.in_memory()

        def rollback(con: object, batch_id: str | None) -> None:
            raise _Rollback

        with contextlib.suppress(_Rollback):
            ingest_records(self._scratch, records, self.config, before_commit=rollback)

    def _append(self, line: str) -> None:
        created = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            size = os.fstat(fd).st_size
            try:
                data = line.encode("utf-8")
                written = 0
                while written < len(data):
                    written += os.write(fd, data[written:])
                os.fsync(fd)
            except OSError:
                # A line half written would glue itself to the next one: take it back.
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
        if created:
            _fsync_folder(self.path.parent)  # the new file's name is durable too

    # -- the journal file ------------------------------------------------------------------------
    def _size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def _cut_torn_tail(self) -> None:
        """A last line without its newline was cut short by a crash before it was acknowledged
        (the 202 follows the fsync): drop it."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):
            log.warning("%s: dropping an incomplete last line (%d bytes) a crash cut short; it "
                        "was never acknowledged", self.path, len(data) - end)
            os.truncate(self.path, end)

    def _read(self) -> tuple[list[dict[str, Any]], list[tuple[bytes, str]], int]:
        """(entries, unreadable lines with the reason, bytes read): complete lines only."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return [], [], 0
        end = data.rfind(b"\n") + 1
        entries, bad = [], []
        for line in data[:end].splitlines():
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                if not isinstance(entry, dict) or not isinstance(entry.get("events"), list):
                    raise ValueError("not a journal entry")
                entries.append(entry)
            except ValueError as exc:
                bad.append((line, f"unreadable journal line: {exc}"))
        return entries, bad, end

    def _drop_first(self, end: int) -> None:
        """Remove the first ``end`` bytes (what was stored); lines appended since stay."""
        data = self.path.read_bytes()
        rest = data[end:]
        if not rest:
            self.path.unlink()
        else:
            staged = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, rest)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(staged, self.path)
        _fsync_folder(self.path.parent)

    def _reject(self, lines: list[tuple[bytes, str]]) -> None:
        """Keep batches that cannot be stored beside the journal, with the reason."""
        fd = os.open(self.rejected_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "ab") as fh:
            for line, reason in lines:
                # The reason may quote the events (personal data): it goes to the file only.
                log.error("a journaled batch of events cannot be stored; kept in %s with the "
                          "reason", self.rejected_path)
                fh.write(json.dumps({"reason": reason, "entry": line.decode("utf-8", "replace")},
                                    ensure_ascii=False).encode("utf-8") + b"\n")
            fh.flush()
            os.fsync(fh.fileno())

    # -- storing ---------------------------------------------------------------------------------
    def drain(self) -> int:
        """Store every journaled batch now; the number of events added. Raises
        :class:`~churnguard.store.StoreBusyError` when the store is lent (again)."""
        with self._drain_lock:
            with self._lock:
                entries, bad, end = self._read()
            if end == 0:
                with self._lock:
                    self._pending = self._size() > 0
                return 0
            added = 0
            with self.pool.writing(wait_s=0) as store:
                added, refused = self._store(store, entries)
            with self._lock:
                if bad or refused:
                    self._reject(bad + refused)
                self._drop_first(end)
                self._pending = self._size() > 0
            self.stored_events += added
            log.info("stored %d journaled batch(es) of events: %d added", len(entries), added)
            return added

    def _store(self, store: Store, entries: list[dict[str, Any]]
               ) -> tuple[int, list[tuple[bytes, str]]]:
        """All entries in one ingestion (one batch, fast); if it refuses, entry by entry, and
        the refused ones are returned to be kept aside."""
        records = [event for entry in entries for event in entry["events"]]
        try:
            report = ingest_records(store, records, self.config)
        except IngestError as exc:
            if len(entries) == 1:
                line = json.dumps(entries[0], ensure_ascii=False).encode("utf-8")
                return 0, [(line, f"ingestion refused it: {exc}")]
            added, refused = 0, []
            for entry in entries:
                got, lost = self._store(store, [entry])
                added, refused = added + got, refused + lost
            return added, refused
        self.on_stored(store, report)
        return report.rows_added, []

    # -- the background drain ----------------------------------------------------------------------
    def wake(self) -> None:
        """Look now (the store came back)."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="churnguard-events-journal",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(DRAIN_POLL_S)
            self._wake.clear()
            if self._stop.is_set() or not self._pending or self.pool.lent_to is not None:
                continue
            try:
                self.drain()
                self.last_error = None
            except StoreBusyError:
                continue  # lent again, or the service stops: the next look tries again
            except Exception as exc:  # noqa: BLE001 - kept and retried; the batches stay on disk
                self.last_error = type(exc).__name__
                log.exception("storing the journaled events failed; they stay in %s and are "
                              "tried again", self.path)
                self._stop.wait(RETRY_S)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
        with self._lock:
            if self._scratch is not None:
                self._scratch.close()
                self._scratch = None


__all__ = ["JOURNAL_NAME", "REJECTED_NAME", "EventJournal", "Queued", "ingest_records",
           "write_jsonl"]
