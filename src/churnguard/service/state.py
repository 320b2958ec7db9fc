"""What the routers share: the project, settings, store pool, risk answers, limiter, metrics."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from churnguard import customers
from churnguard.customers import stored_id
from churnguard.ingest import IngestReport
from churnguard.lending import Lender
from churnguard.operate import CycleError, CycleRecord, Scheduler, list_cycles
from churnguard.operate.process import ChildOutcome, CycleProcess
from churnguard.project import Project, lock_wait_s
from churnguard.service.auth import TokenBucket
from churnguard.service.journal import EventJournal
from churnguard.service.metrics import Metrics
from churnguard.service.recommendations import Recommendations
from churnguard.service.risk import MARK_AT_MOST, RiskService
from churnguard.service.settings import ServiceSettings
from churnguard.service.store_pool import Lend, StorePool
from churnguard.store import Store, StoreBusyError

log = logging.getLogger("churnguard.service")


def wall_now() -> dt.datetime:
    """The current UTC time, naive (the store's convention), to the second."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


class DataClock:
    """'Now' for a store of past data: one second after the newest stored event.

    Kept in memory (the service is the store's only writer while it runs, but for commands it
    lends the store to: it is reset when they give it back) and moved on by the events the
    service stores."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dt.datetime | None = None

    def __call__(self, store: Store) -> dt.datetime:
        with self._lock:
            if self._latest is None:
                (latest,) = store.con.execute("SELECT max(ts) FROM events").fetchall()[0]
                self._latest = latest or wall_now()
            return self._latest.replace(microsecond=0) + dt.timedelta(seconds=1)

    def saw(self, ts: dt.datetime | None) -> None:
        with self._lock:
            if ts is not None and self._latest is not None and ts > self._latest:
                self._latest = ts

    def reset(self) -> None:
        with self._lock:
            self._latest = None


@dataclass(kw_only=True)
class ServiceState:
    project: Project
    settings: ServiceSettings
    pool: StorePool
    risk: RiskService
    limiter: TokenBucket
    auth_failures: TokenBucket  # failed authentications per client address
    metrics: Metrics
    data_clock: DataClock | None
    recommendations: Recommendations
    journal: EventJournal  # events posted while the store is lent (service/journal.py)
    cycle_process: CycleProcess  # runs a cycle as `churnguard run` in a child process
    cycles: Scheduler | None = None  # runs [operate] schedule's cycles (started by the app)
    lender: Lender | None = None  # lends the store to commands (started with the app)

    def stored_id(self, user_id: str) -> str:
        """The id as the store holds it (pseudonymised when the project says so)."""
        return stored_id(user_id, self.project.config.ingest)

    def forget_customer(self, stored: str) -> None:
        """Drop what the service keeps in memory about an erased customer."""
        self.risk.forget(stored)
        self.recommendations.forget(stored)
        if self.data_clock is not None:
            self.data_clock.reset()

    def run_cycle(self, fire: dt.datetime | None = None) -> CycleRecord | None:
        """One operating cycle in a child process: ``churnguard run`` at a lower CPU priority
        (``[operate] cycle_nice``; churnguard.operate.process), waited for in the calling
        thread (the scheduler's, never the event loop). It borrows the store like any command
        (one writer): meanwhile risk is answered from memory and posted events go to the
        journal; when it gives the store back, :meth:`store_returned` refreshes what memory
        holds and the journal is stored.

        Returns the cycle's record as the store holds it; raises :class:`CycleError` when the
        cycle failed or its process died (its cycle is left unfinished: the next run resumes
        it), and :class:`~churnguard.operate.process.CycleBusyError` while one runs."""
        if self.lender is None:
            # Its process could not borrow the store: it would wait, then fail.
            raise CycleError("this service does not lend its store, so a cycle's process "
                             "cannot open it; start the app with lend=True (`churnguard serve` "
                             "does)")
        outcome = self.cycle_process.run(trigger="schedule")
        record = self._record_of(outcome)
        if outcome.ok:
            log.info("cycle: %s", outcome.describe())
            return record
        log.error("cycle: %s", outcome.describe())
        raise CycleError(outcome.describe())

    def _record_of(self, outcome: ChildOutcome) -> CycleRecord | None:
        """The record of the cycle the child ran (by the id it printed), else the newest: a
        killed child printed none, and the cycle it left unfinished is the newest."""
        wanted = outcome.record.get("cycle_id") if outcome.record else None
        # The store comes back as soon as the child's lease closes (at its exit at the latest).
        try:
            with self.pool.reading(wait_s=60) as store:
                found = list_cycles(store, limit=20)
        except StoreBusyError:  # lent on to a command: the outcome is logged without it
            log.warning("cycle: its record could not be read back (the store is lent to %s)",
                        self.pool.lent_to and self.pool.lent_to.describe())
            return None
        return next((c for c in found if c.cycle_id == wanted), found[0] if found else None)

    def events_stored(self, store: Store, report: IngestReport) -> None:
        """Events were stored (a post, or the journal): their customers' next risk answers are
        computed afresh, and "now" follows the newest. A large batch (the journal of a long
        lend) rescores everyone in the background instead, the answers standing meanwhile: so
        many answers computed on the spot at once would queue every request behind them."""
        if not report.rows_added:
            return
        users, newest = customers.in_batch(store, report.batch_id)
        if self.data_clock is not None and users:
            self.data_clock.saw(newest)
        if len(users) <= MARK_AT_MOST:
            self.risk.book.mark(users)
        else:
            self.risk.events_changed()

    def store_returned(self, lend: Lend, store: Store) -> None:
        """A command gave the store back: drop what memory may hold about data it changed, and
        store the events journaled meanwhile."""
        self.journal.wake()
        if not lend.changed:
            return
        if self.data_clock is not None:
            self.data_clock.reset()
        # Read here, on the reopened store before any request can use it (risk is still
        # answered from memory meanwhile): emptied, every risk request would read them itself.
        self.recommendations.refresh(store)
        self.risk.store_returned(lend, store)

    def start_lending(self) -> None:
        """Let commands on this project borrow the store (:mod:`churnguard.lending`)."""
        self.lender = Lender(root=self.project.root, store_path=self.pool.path,
                             lend=self.pool.lent)
        if not self.lender.start():
            self.lender = None

    def close(self) -> None:
        # Order matters: a running cycle's process is stopped (its cycle resumes on the next
        # run) and the schedule ends, the journal's drain, the background scorer and requests
        # waiting for a lent store give up, lending stops (a borrowing command keeps the file
        # until it closes it), then the store closes. Journaled events not stored yet stay on
        # disk for the next start.
        self.cycle_process.stop()
        if self.cycles is not None:
            self.cycles.stop()
        self.risk.stop_soon()
        self.pool.stopping()
        self.journal.stop()
        if self.lender is not None:
            self.lender.stop()
        self.risk.stop()
        self.pool.close()


def build_state(project: Project, settings: ServiceSettings,
                now: Callable[[], dt.datetime] | None) -> ServiceState:
    data_clock = DataClock() if (now is None and settings.clock == "data") else None
    if now is not None:
        def clock(store: Store) -> dt.datetime:
            return now()
    elif data_clock is not None:
        clock = data_clock
    else:
        def clock(store: Store) -> dt.datetime:
            return wall_now()
    # A command that holds the store (an ingest) is waited for, as commands wait for each other.
    pool = StorePool(project.store_path, wait_s=lock_wait_s())
    state = ServiceState(
        project=project, settings=settings, pool=pool,
        risk=RiskService(pool=pool, config=project.config, clock=clock),
        limiter=TokenBucket(rate=settings.rate_per_second, burst=settings.rate_burst),
        auth_failures=TokenBucket(rate=settings.auth_failures_per_minute / 60.0,
                                  burst=settings.auth_failures_burst),
        metrics=Metrics(), data_clock=data_clock, recommendations=Recommendations(),
        journal=EventJournal(root=project.root, pool=pool, config=project.config.ingest,
                             on_stored=lambda store, report: state.events_stored(store, report)),
        cycle_process=CycleProcess(project.root, nice=project.config.operate.cycle_nice))
    pool.on_returned(state.store_returned)
    return state


async def service_of(request: Request) -> ServiceState:
    """Dependency: the service state of the app handling ``request``."""
    return request.app.state.service
