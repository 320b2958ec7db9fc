"""What the routers share: the project, settings, store pool, risk answers, limiter, metrics."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from churnguard.customers import stored_id
from churnguard.lending import Lender
from churnguard.operate import CycleRecord, Scheduler, run_cycle
from churnguard.project import Project, lock_wait_s
from churnguard.registry import CHAMPION, alias_version
from churnguard.service.auth import TokenBucket
from churnguard.service.metrics import Metrics
from churnguard.service.recommendations import Recommendations
from churnguard.service.risk import RiskService
from churnguard.service.settings import ServiceSettings
from churnguard.service.store_pool import Lend, StorePool
from churnguard.store import Store

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

    def run_cycle(self, fire: dt.datetime | None = None) -> CycleRecord:
        """One operating cycle through the pool (reads beside the requests, writes in turn
        with the other writers); afterwards the risk answers follow new events and a new
        champion."""
        before = self.risk.champion_version
        record = run_cycle(self.pool, project=self.project, trigger="schedule",
                           progress=lambda message: log.info("cycle: %s", message))
        # A cycle may have planned a campaign: the recommended actions are read again.
        self.recommendations.invalidate()
        if record.changed:
            if self.data_clock is not None:
                self.data_clock.reset()
            with self.pool.reading() as store:
                after = alias_version(store, CHAMPION)
            # The answers stand until their replacements are computed in the background:
            # voiding them would score every request on the spot meanwhile (seconds each
            # under load at 20,000 customers; benchmarks/RESULTS.md, "cycle").
            if after != before:
                self.risk.champion_replaced()
            else:
                self.risk.events_changed()
        if record.status != "done":
            log.error("cycle %s stopped at %s", record.cycle_id, record.error)
        return record

    def store_returned(self, lend: Lend, store: Store) -> None:
        """A command gave the store back: drop what memory may hold about data it changed."""
        if not lend.changed:
            return
        if self.data_clock is not None:
            self.data_clock.reset()
        self.recommendations.invalidate()
        self.risk.store_returned(lend, store)

    def start_lending(self) -> None:
        """Let commands on this project borrow the store (:mod:`churnguard.lending`)."""
        self.lender = Lender(root=self.project.root, store_path=self.pool.path,
                             lend=self.pool.lent)
        if not self.lender.start():
            self.lender = None

    def close(self) -> None:
        # Order matters: scheduled cycles stop, the background scorer and requests waiting
        # for a lent store give up, lending stops (a borrowing command keeps the file until it
        # closes it), then the store closes.
        if self.cycles is not None:
            self.cycles.stop()
        self.risk.stop_soon()
        self.pool.stopping()
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
        metrics=Metrics(), data_clock=data_clock, recommendations=Recommendations())
    pool.on_returned(state.store_returned)
    return state


async def service_of(request: Request) -> ServiceState:
    """Dependency: the service state of the app handling ``request``."""
    return request.app.state.service
