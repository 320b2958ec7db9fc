"""The monitoring reports the service keeps: ``GET /v1/monitor`` and the dashboard's monitor page
read them through :func:`monitor_document`.

A report takes seconds (features of the reference and the batch, two scoring passes), so the
newest few are kept, each while its inputs hold: the cutoff asked for, the events (their count
and newest time), the stored scoring runs, the champion and the settings. A report holds
aggregates only, so keeping it keeps no customer's data.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from churnguard.monitor import events_mark, run_monitor, scores_mark
from churnguard.registry import CHAMPION, alias_version, champion_definition
from churnguard.service.state import ServiceState
from churnguard.store import Store

__all__ = ["KEPT", "ReportCache", "monitor_document", "report_cache"]

KEPT = 8


class ReportCache:
    """The newest :data:`KEPT` reports by their key (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reports: OrderedDict[Hashable, dict[str, Any]] = OrderedDict()

    def get(self, key: Hashable) -> dict[str, Any] | None:
        with self._lock:
            found = self._reports.get(key)
            if found is not None:
                self._reports.move_to_end(key)
            return found

    def put(self, key: Hashable, document: dict[str, Any]) -> None:
        with self._lock:
            self._reports[key] = document
            while len(self._reports) > KEPT:
                self._reports.popitem(last=False)


_made = threading.Lock()


def report_cache(state: Any) -> ReportCache:
    """The application's cache (``app.state``; one per app, made on first use)."""
    with _made:
        if not hasattr(state, "monitor_reports"):
            state.monitor_reports = ReportCache()
        return state.monitor_reports


def monitor_document(service: ServiceState, store: Store, cache: ReportCache,
                     as_of: dt.date | None) -> dict[str, Any]:
    """The report at ``as_of`` (default: the scoring cutoff) as JSON-ready data, from the cache
    while its inputs hold. Shared by the route and the dashboard's monitor page."""
    config = service.project.config
    key = (as_of, events_mark(store), scores_mark(store), alias_version(store, CHAMPION),
           config.monitor, config.churn)
    found = cache.get(key)
    if found is None:
        when = None if as_of is None else dt.datetime.combine(as_of, dt.time())
        report = run_monitor(store, as_of=when, config=config.monitor,
                             definition=champion_definition(store, config.churn))
        found = report.to_dict()
        cache.put(key, found)
    return found
