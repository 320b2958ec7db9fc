"""Small stores built with plain SQL inserts (independent of ingestion)."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterable

import pytest

from churnguard.store import Store

EVENT_COLUMNS = ("event_id", "user_id", "ts", "type", "item_id", "category", "amount", "quantity",
                 "text", "rating", "channel", "session_id", "batch_id")

_ids = itertools.count()


def insert_events(store: Store, rows: Iterable[dict]) -> None:
    """Insert events given as dicts; event_id and batch_id default to fresh values."""
    values = []
    for row in rows:
        row = {"event_id": f"ev{next(_ids)}", "batch_id": "test", **row}
        values.append([row.get(c) for c in EVENT_COLUMNS])
    if values:
        store.con.executemany(
            f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})", values)


def day(n: float, base: dt.datetime = dt.datetime(2024, 12, 31)) -> dt.datetime:
    """Day ``n`` of the test calendar: day 1 is 2025-01-01 00:00."""
    return base + dt.timedelta(days=n)


@pytest.fixture
def store() -> Store:
    s = Store.in_memory()
    yield s
    s.close()


@pytest.fixture
def add_events(store: Store) -> Callable[..., None]:
    def add(*rows: dict) -> None:
        insert_events(store, rows)
    return add
