"""The FastAPI application: routers per resource under /v1, auth, limits, errors, metrics."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from churnguard import __version__, customers, lending
from churnguard.operate import Cron, Scheduler
from churnguard.operate.schedule import utc_now
from churnguard.project import Project
from churnguard.service.asgi import ApiHeaders
from churnguard.service.auth import API_KEY_HEADER
from churnguard.service.dashboard import dashboard_router
from churnguard.service.errors import install_error_handlers
from churnguard.service.limits import BodySizeLimit
from churnguard.service.metrics import MetricsMiddleware
from churnguard.service.routers import (
    assist,
    campaigns,
    cycles,
    decisions,
    events,
    health,
    models,
    monitor,
    score,
    users,
    voice,
)
from churnguard.service.schemas import field_names
from churnguard.service.settings import ServiceSettings, SettingsError
from churnguard.service.state import ServiceState, build_state
from churnguard.store import StoreBusyError

log = logging.getLogger("churnguard.service")

DESCRIPTION = """\
Real-time churn risk, customer timelines, events, model versions and erasure for one churnguard
project. Every /v1 route needs an API key in the `X-API-Key` header; its role (read < write <
admin) decides what it may do. Errors are `{"error": {"code", "message"}}` with a stable code and
a message that never repeats what was sent."""


def create_app(project: Project | Path | str, settings: ServiceSettings | None = None, *,
               now: Callable[[], dt.datetime] | None = None,
               cycle_clock: Callable[[], dt.datetime] = utc_now,
               cycle_poll_s: float = 15.0, lend: bool = False) -> FastAPI:
    """The service over ``project`` (a :class:`Project` or its folder).

    ``settings`` default to :meth:`ServiceSettings.from_env`, which refuses unsafe settings.
    ``now`` replaces the clock (tests): a function returning naive UTC datetimes. The store is
    opened here; the population is scored when the app starts (its lifespan) and the store is
    closed when it stops. With ``[operate] schedule`` set, a background thread starts a cycle
    (``churnguard run`` in a child process, :meth:`ServiceState.run_cycle`) each time the cron
    expression fires by ``cycle_clock`` (UTC wall time; tests move their own), looking every
    ``cycle_poll_s`` seconds, and the app lends the store to it. ``lend``: listen for commands
    that borrow the store while the app runs (:mod:`churnguard.lending`; :func:`run` does).
    Events posted while the store is lent are journaled (``service/journal.py``); those a
    previous run left in the journal are stored when the app starts.
    """
    if not isinstance(project, Project):
        project = Project.load(Path(project).resolve())
    settings = settings if settings is not None else ServiceSettings.from_env()
    ingest = project.config.ingest
    if ingest.pseudonymise and not os.environ.get(ingest.pseudonym_key_env):
        # Every id in a request must be hashed as ingestion did; without the key none can be.
        raise SettingsError(f"cannot start the service: ingest.pseudonymise is on but "
                            f"{ingest.pseudonym_key_env} is not set; set it to the key the "
                            "store was loaded with")
    schedule = project.config.operate.schedule
    cron = Cron.parse(schedule) if schedule else None  # a bad expression stops the start
    if cron is not None and not lending.supported():
        raise SettingsError("cannot start the service with [operate] schedule here: scheduled "
                            "cycles run as `churnguard run` in a child process that borrows the "
                            "store over a Unix-domain socket, which this platform lacks; run "
                            "`churnguard run` from the system's scheduler while the service is "
                            "stopped instead")
    state = build_state(project, settings, now)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _finish_erasures(state)
        _store_journal(state)
        state.journal.start()
        state.risk.start(refresh_seconds=settings.refresh_seconds, warm=settings.warm_on_start)
        if settings.warm_on_start:
            # The first risk answers need not go to the store for the recommended actions.
            with state.pool.reading() as store:
                state.recommendations.refresh(store)
        # A scheduled cycle's process borrows the store: the service lends when it has a
        # schedule, lend or not.
        if lend or cron is not None:
            state.start_lending()
        if cron is not None:
            if state.lender is None:
                log.error("scheduled cycles are off: the service cannot lend the store to "
                          "their process (another service listens on this project folder)")
            else:
                state.cycles = Scheduler(cron, state.run_cycle, now=cycle_clock,
                                         poll_s=cycle_poll_s)
                state.cycles.start()
        try:
            yield
        finally:
            state.close()

    app = FastAPI(title="churnguard", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, openapi_url="/openapi.json",
                  # FastAPI's docs pages load their scripts from a CDN: none inside a company
                  # network, and no third party learns who reads the API.
                  docs_url=None, redoc_url=None)
    app.state.service = state
    install_error_handlers(app, field_names())
    for router in (events.router, users.router, score.router, decisions.router, models.router,
                   campaigns.router, monitor.router, cycles.router, health.router,
                   assist.router, voice.router):
        app.include_router(router)
    # The dashboard (pages at /, static files under /dashboard/static), after the API.
    app.include_router(dashboard_router())
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=[API_KEY_HEADER, "Content-Type"])
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(ApiHeaders)
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app


def _finish_erasures(state: ServiceState) -> None:
    """Rewrite the store for erasures whose rewrite could not run (another process held the
    file); if it still cannot, the service starts anyway and /readyz counts them."""
    try:
        done = customers.finish_pending(state.project.root, state.pool)
    except StoreBusyError:
        log.warning("erasures still wait for the store file to be rewritten")
        return
    if done:
        log.info("finished the store rewrite of %d erasure(s)", len(done))


def _store_journal(state: ServiceState) -> None:
    """Store the events a previous run of the service journaled and did not store (it was
    stopped, or killed, while the store was lent)."""
    if not state.journal.pending:
        return
    try:
        added = state.journal.drain()
    except StoreBusyError:
        log.warning("journaled events wait: another process holds the store")
        return
    log.info("stored the events journaled before this start: %d added", added)


def run(project_dir: Path | str, *, host: str = "127.0.0.1", port: int = 8000,
        settings: ServiceSettings | None = None, log_level: str = "info") -> None:
    """Serve the project over HTTP with uvicorn until interrupted (``churnguard serve``).

    Raises :class:`~churnguard.service.settings.SettingsError` for unsafe settings before
    anything listens.
    """
    import uvicorn

    app = create_app(project_dir, settings, lend=True)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False,
                server_header=False)
