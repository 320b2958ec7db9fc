"""The service's handle on the project store: one DuckDB database, a cursor per request.

DuckDB lets one process hold a database file for writing; the service opens it once and hands
each request its own cursor (a connection to the same database: reads run side by side and see
committed data). Writes are serialised by :attr:`StorePool.write_lock`.

A gate lets :meth:`StorePool.exclusive` close the database while no request holds a cursor, so the
file can be rewritten (compaction after an erasure) and opened again.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

from churnguard.store import Store, StoreBusyError

log = logging.getLogger("churnguard.service")
# After a rewrite of the store file (an erasure), how long to wait for another process that
# opened it meanwhile (a backup, `churnguard status`) before leaving the reopen to the next request.
REOPEN_WAIT_S = 10.0


class _Gate:
    """Many shared holders or one exclusive holder; a waiting exclusive holder goes first."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._exclusive or self._waiting:
                self._cond.wait()
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
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.write_lock = threading.RLock()
        self._gate = _Gate()
        self._lock = threading.Lock()
        self._idle: list[Store] = []
        self._main: Store | None = Store.open(self.path)
        self._closed_for_good = False

    def _checkout(self) -> Store:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._main is None:
                if self._closed_for_good:
                    raise RuntimeError("the store is closed")
                # The reopen after a rewrite found the file held by another process: try again
                # (StoreBusyError, a 503, while it still holds it).
                self._main = Store.open(self.path)
            cursor = self._main.con.cursor()
        cursor.execute("SET TimeZone = 'UTC'")
        return Store(cursor, self.path)

    def _checkin(self, store: Store) -> None:
        with self._lock:
            self._idle.append(store)

    @contextlib.contextmanager
    def reading(self) -> Iterator[Store]:
        """A store handle for one request (reads, and writes under :attr:`write_lock`)."""
        with self._gate.shared():
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
    def writing(self) -> Iterator[Store]:
        """A store handle for one request that writes: other writers wait."""
        with self.reading() as store, self.write_lock:
            yield store

    def closed(self) -> contextlib.AbstractContextManager[Path]:
        """The store file with nobody holding it open (:meth:`exclusive`)."""
        return self.exclusive()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[Path]:
        """Close the database while nobody uses it; yields its path; opens it again after."""
        with self._gate.exclusive(), self.write_lock:
            self._close_all()
            try:
                yield self.path
            finally:
                try:
                    self._main = Store.open(self.path, wait_s=REOPEN_WAIT_S)
                except StoreBusyError:
                    log.warning("another process holds the store; the service reopens it on "
                                "the next request")

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
