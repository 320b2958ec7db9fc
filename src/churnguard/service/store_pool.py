"""The service's handle on the project store: one DuckDB database, a cursor per request.

DuckDB lets one process hold a database file for writing; the service opens it once and hands
each request its own cursor (a connection to the same database: reads run side by side and see
committed data). Writes are serialised by :attr:`StorePool.write_lock`.

A gate lets :meth:`StorePool.exclusive` close the database while no request holds a cursor, so the
file can be rewritten (compaction after an erasure) and opened again. :meth:`StorePool.lent` does
the same while a command-line process borrows the file (:mod:`churnguard.lending`); requests that
need the store meanwhile wait up to :data:`LENT_WAIT_S` seconds, then get
:class:`~churnguard.store.StoreBusyError` (503 with Retry-After).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from churnguard.lending import Borrower
from churnguard.store import Store, StoreBusyError, StoreError

log = logging.getLogger("churnguard.service")
# After a rewrite of the store file (an erasure), how long to wait for another process that
# opened it meanwhile (a backup, `churnguard status`) before leaving the reopen to the next request.
REOPEN_WAIT_S = 10.0
# How long a request waits for a store lent to a command before answering 503: long enough for
# a short command (status, an ingest of a day's file) to finish, short enough not to pile up
# the worker threads.
LENT_WAIT_S = 10.0
_GATE_POLL_S = 0.25


@dataclass(frozen=True, kw_only=True)
class Lend:
    """A lend that ended: to whom, since when (naive UTC), whether the file changed meanwhile."""

    borrower: Borrower
    since: dt.datetime
    changed: bool


def _file_state(path: Path) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    wal = path.with_name(path.name + ".wal")
    # A rewrite (erase's compaction) swaps the inode; a write moves mtime and usually the size.
    return st.st_ino, st.st_mtime_ns, st.st_size + (wal.stat().st_size if wal.exists() else 0)


def _lent_busy() -> StoreBusyError:
    return StoreBusyError("the store is lent to a command-line process; try again shortly")


class _Gate:
    """Many shared holders or one exclusive holder; a waiting exclusive holder goes first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0
        self._stopping = False

    def stop_waiting(self) -> None:
        """Waiting shared holders give up (the service stops)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    @contextlib.contextmanager
    def shared(self, patience: Callable[[], float | None] = lambda: None) -> Iterator[None]:
        """``patience()``: how many seconds this holder may still wait, None for as long as it
        takes (asked again while waiting: the answer changes when the store is lent). Raises
        :class:`StoreBusyError` when it runs out or the service stops."""
        started = time.monotonic()
        with self._cond:
            while self._exclusive or self._waiting:
                if self._stopping:
                    raise StoreBusyError("the service is stopping")
                limit = patience()
                if limit is not None and time.monotonic() - started >= limit:
                    raise _lent_busy()
                self._cond.wait(_GATE_POLL_S)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            while self._exclusive or self._shared:
                self._cond.wait()
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()


class StorePool:
    def __init__(self, path: Path, *, wait_s: float = 0.0) -> None:
        self.path = Path(path)
        self.write_lock = threading.RLock()
        self._gate = _Gate()
        self._lock = threading.Lock()
        self._idle: list[Store] = []
        self._main: Store | None = Store.open(self.path, wait_s=wait_s)
        self._closed_for_good = False
        self._stopping = False
        # While lent: to whom and since when (naive UTC); None otherwise.
        self.lent_to: Borrower | None = None
        self.lent_since: dt.datetime | None = None
        self._returned: list[Callable[[Lend], None]] = []

    def _checkout(self) -> Store:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._main is None:
                if self._closed_for_good or self._stopping:
                    raise StoreError("the service is stopping")
                # The reopen after a rewrite found the file held by another process: try again
                # (StoreBusyError, a 503, while it still holds it).
                self._main = Store.open(self.path)
            cursor = self._main.con.cursor()
        cursor.execute("SET TimeZone = 'UTC'")
        return Store(cursor, self.path)

    def _checkin(self, store: Store) -> None:
        with self._lock:
            self._idle.append(store)

    def _patience(self, wait_s: float | None) -> Callable[[], float | None]:
        # Only a lend bounds the wait: an erasure's rewrite is the service's own work.
        return lambda: wait_s if self.lent_to is not None else None

    @contextlib.contextmanager
    def reading(self, *, wait_s: float | None = LENT_WAIT_S) -> Iterator[Store]:
        """A store handle for one request (reads, and writes under :attr:`write_lock`).

        While the store is lent, wait up to ``wait_s`` seconds (None: until it is back), then
        raise :class:`StoreBusyError`."""
        with self._gate.shared(self._patience(wait_s)):
            store = self._checkout()
            try:
                yield store
            except BaseException:
                # A failed statement can leave the cursor in an aborted transaction: drop it.
                with contextlib.suppress(Exception):
                    store.close()
                raise
            else:
                self._checkin(store)

    @contextlib.contextmanager
    def writing(self, *, wait_s: float | None = LENT_WAIT_S) -> Iterator[Store]:
        """A store handle for one request that writes: other writers wait."""
        with self.reading(wait_s=wait_s) as store, self.write_lock:
            yield store

    def closed(self) -> contextlib.AbstractContextManager[Path]:
        """The store file with nobody holding it open (:meth:`exclusive`)."""
        return self.exclusive()

    @contextlib.contextmanager
    def exclusive(self, reopened: Callable[[Store], None] | None = None) -> Iterator[Path]:
        """Close the database while nobody uses it; yields its path; opens it again after,
        and hands it to ``reopened`` before any request can use it."""
        with self._gate.exclusive(), self.write_lock:
            self._close_all()
            try:
                yield self.path
            finally:
                if not self._stopping:
                    self._reopen()
                    if reopened is not None and self._main is not None:
                        reopened(self._main)

    def _reopen(self) -> None:
        try:
            self._main = Store.open(self.path, wait_s=REOPEN_WAIT_S)
        except StoreBusyError:
            log.warning("another process holds the store; the service reopens it on "
                        "the next request")

    def on_returned(self, callback: Callable[[Lend, Store], None]) -> None:
        """Call ``callback(lend, store)`` after each lend, once the store is open again and
        before any request uses it (the service drops what it keeps in memory about data the
        borrower changed)."""
        self._returned.append(callback)

    @contextlib.contextmanager
    def lent(self, borrower: Borrower) -> Iterator[None]:
        """Close the store for ``borrower`` (a command-line process) once in-flight requests
        end; open it again when the block ends, and tell :meth:`on_returned`."""
        # Set before the handover: requests arriving while in-flight ones finish wait bounded
        # too, and risk answers come from memory from now on.
        since = self.lent_since = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        self.lent_to = borrower
        before = None

        def reopened(store: Store) -> None:
            # Whether the file changed: a write moves its mtime, a rewrite swaps its inode.
            ended = Lend(borrower=borrower, since=since,
                         changed=_file_state(self.path) != before)
            for callback in self._returned:
                try:
                    callback(ended, store)
                except Exception:  # noqa: BLE001 - requests read the store afresh anyway
                    log.exception("refreshing the service after a lend failed")

        try:
            with self.exclusive(reopened):
                before = _file_state(self.path)
                yield
        finally:
            self.lent_to = self.lent_since = None

    def stopping(self) -> None:
        """The service stops: requests waiting for a lent store give up, and the store is not
        opened again when a lend ends."""
        self._stopping = True
        self._gate.stop_waiting()

    def ping(self) -> bool:
        try:
            with self.reading() as store:
                store.con.execute("SELECT 1").fetchall()
            return True
        except Exception:  # noqa: BLE001 - readiness reports any failure as not ready
            return False

    def _close_all(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
            main, self._main = self._main, None
        for store in idle:
            with contextlib.suppress(Exception):
                store.close()
        if main is not None:
            main.close()

    def close(self) -> None:
        with self._gate.exclusive():
            self._closed_for_good = True
            self._close_all()
