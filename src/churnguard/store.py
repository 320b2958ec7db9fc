"""The embedded DuckDB store: one file per project, schema versioned by migrations.

All timestamps are stored as naive ``TIMESTAMP`` values that mean UTC; ingestion converts every
input to UTC before it reaches a table. Every table that ingestion writes carries the id of the
ingest batch that added (or last changed) the row.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     with Store.open(pathlib.Path(d) / "churnguard.duckdb") as store:
...         store.schema_version() == SCHEMA_VERSION
True
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from churnguard.errors import ChurnguardError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

STORE_FILENAME = "churnguard.duckdb"


@dataclass(frozen=True, kw_only=True)
class Migration:
    version: int
    description: str
    sql: str


def _migration_sql(name: str) -> str:
    return (resources.files("churnguard") / "migrations" / name).read_text(encoding="utf-8")


# Append-only: a released migration (its .sql file under churnguard/migrations/) is never edited,
# a change is a new migration.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        description="ingest batches, events, users, items, campaigns, labels, quarantine",
        sql=_migration_sql("0001_ingest.sql"),
    ),
    Migration(
        version=2,
        description="model registry, aliases with history, scores, backtest runs",
        sql=_migration_sql("0002_models_scores_backtests.sql"),
    ),
    Migration(
        version=3,
        description="campaign plans, delivery log, measurements, erasure audit",
        sql=_migration_sql("0003_plans_deliveries_measurements_erasures.sql"),
    ),
    Migration(
        version=4,
        description="model decisions of the champion/challenger gate, with their evidence",
        sql=_migration_sql("0004_model_decisions.sql"),
    ),
    Migration(
        version=5,
        description="operating cycles, their steps, the inbox's files",
        sql=_migration_sql("0005_cycles.sql"),
    ),
    Migration(
        version=10,
        description="the shop's fitted text encoders (Chinese character n-gram TF-IDF + SVD)",
        sql=_migration_sql("0010_text_encoders.sql"),
    ),
    Migration(
        version=11,
        description="how each planned row's action was chosen (model, explore or control)",
        sql=_migration_sql("0011_plan_assignment.sql"),
    ),
    Migration(
        version=12,
        description="the topic codebooks of the voice of the customer",
        sql=_migration_sql("0012_topic_codebooks.sql"),
    ),
    Migration(
        version=13,
        description="the agents' decisions on the assistant's recommended replies",
        sql=_migration_sql("0013_assist_log.sql"),
    ),
)

SCHEMA_VERSION = MIGRATIONS[-1].version

# Tables ingestion writes, in the order a summary lists them.
DATA_TABLES = (
    "events",
    "users",
    "user_attributes",
    "items",
    "item_attributes",
    "campaigns",
    "labels",
    "quarantine",
    "ingest_batches",
    "models",
    "scores",
    "backtests",
    "plans",
    "plan_rows",
    "deliveries",
    "measurements",
)


class StoreError(ChurnguardError, RuntimeError):
    """The store cannot be opened or is of a schema this version does not understand."""

    code = "store_unavailable"
    bad_input = False


class StoreBusyError(StoreError):
    """Another process holds the store's file (DuckDB allows one writing process): the message
    names the process and says what to do. Bad input in the sense that the user can fix it by
    stopping or waiting for that process."""

    code = "store_busy"
    bad_input = True


# DuckDB: 'Could not set lock on file "...": Conflicting lock is held in /usr/bin/python (PID 42)'
_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")
LOCK_POLL_S = 0.25


def _holder(message: str) -> str:
    """Who holds the lock, in words: the PID and, where /proc shows it, the command line."""
    match = _LOCK_HOLDER.search(message)
    if match is None:
        return "another process"
    pid = match.group("pid")
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        command = " ".join(a.decode("utf-8", "replace") for a in argv if a)
    except OSError:
        command = match.group("program")
    return f"process {pid} ({command})"


def _busy(path: Path, message: str, waited_s: float) -> StoreBusyError:
    waited = f" (waited {waited_s:.0f} s)" if waited_s >= 1 else ""
    return StoreBusyError(
        f"{path}: the store is in use by {_holder(message)}{waited}. DuckDB lets one process "
        "write a project at a time: if that is `churnguard serve` (commands borrow the store from "
        "it where Unix sockets exist, docs/service.md), use its REST API or stop it first; "
        "otherwise wait until it ends, or let this command wait longer with "
        "CHURNGUARD_LOCK_WAIT=SECONDS")


def _connect(path: Path, *, read_only: bool, wait_s: float,
             waited_s: float = 0.0) -> duckdb.DuckDBPyConnection:
    """Connect, waiting up to ``wait_s`` seconds while another process holds the file's lock
    (``waited_s``: how long the caller waited already, for the message)."""
    deadline = time.monotonic() + wait_s
    started = time.monotonic() - waited_s
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if "Conflicting lock" not in str(exc):
                raise StoreError(f"{path}: cannot open the store: {exc}") from exc
            if time.monotonic() >= deadline:
                raise _busy(path, str(exc), time.monotonic() - started) from None
            time.sleep(LOCK_POLL_S)
        except duckdb.Error as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from exc


class Store:
    """A DuckDB database file holding one project's data.

    Open with :meth:`Store.open`; use as a context manager so the file is closed. Writes that touch
    several tables go through :meth:`transaction`, which commits all or nothing.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path | None) -> None:
        self.con = con
        self.path = path
        self._on_close: list[Callable[[], None]] = []

    @classmethod
    def open(cls, path: str | Path, *, read_only: bool = False, threads: int | None = None,
             wait_s: float = 0.0, waited_s: float = 0.0) -> Store:
        """Open (creating if needed) the store at ``path`` and bring its schema up to date.

        While another process holds the file, wait up to ``wait_s`` seconds for it, then raise
        :class:`StoreBusyError` naming that process (and the time waited, ``waited_s`` of it
        before this call)."""
        path = Path(path)
        if read_only and not path.exists():
            raise StoreError(f"{path}: no store here; run `churnguard init` first")
        con = _connect(path, read_only=read_only, wait_s=wait_s, waited_s=waited_s)
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"SET threads = {threads or os.cpu_count() or 1}")
        # Plain FSST string compression costs ~10% of a bulk append's time for no gain in size
        # here: DuckDB's dictionary+FSST method still applies (10M events: 6.5 s vs 7.3 s, both
        # 180 MiB, benchmarks/bench_ingest.py).
        con.execute("SET disabled_compression_methods = 'fsst'")
        store = cls(con, path)
        if not read_only:
            store.migrate()
        else:
            store._check_version()
        return store

    @classmethod
    def in_memory(cls) -> Store:
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        store = cls(con, None)
        store.migrate()
        return store

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.con.close()
        finally:
            callbacks, self._on_close = self._on_close, []
            for callback in callbacks:
                callback()

    def on_close(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the connection is closed (a borrowed store goes back to the
        service that lent it, :mod:`churnguard.lending`)."""
        self._on_close.append(callback)

    # -- schema ---------------------------------------------------------------------------------
    def schema_version(self) -> int:
        exists = self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
        ).fetchall()[0][0]
        if not exists:
            return 0
        return self.con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchall()[0][0]

    def _check_version(self) -> int:
        version = self.schema_version()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: the store has schema version {version}, newer than this churnguard "
                f"understands ({SCHEMA_VERSION}); upgrade churnguard"
            )
        return version

    def migrate(self) -> list[int]:
        """Apply pending migrations, each in its own transaction; returns the versions applied."""
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, applied_at TIMESTAMP NOT NULL)"
        )
        current = self._check_version()
        applied = []
        for migration in MIGRATIONS:
            if migration.version <= current:
                continue
            with self.transaction():
                self.con.execute(migration.sql)
                self.con.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, now()::TIMESTAMP)",
                    [migration.version, migration.description],
                )
            applied.append(migration.version)
        return applied

    # -- transactions ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """All statements inside commit together, or none do (the exception propagates)."""
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self.con
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    # -- registered views -----------------------------------------------------------------------
    @contextlib.contextmanager
    def registered(self, rows: pa.Table | pd.DataFrame, prefix: str) -> Iterator[str]:
        """Register ``rows`` (a pyarrow table or pandas frame) on the connection as a view under a
        fresh name ``__cg_<prefix>_<random>``, yield that name, and unregister it on exit.

        The random part keeps two registrations with the same prefix (nested, or from two
        callers) apart.

        >>> import pyarrow as pa
        >>> store = Store.in_memory()
        >>> with store.registered(pa.table({"x": [1, 2, 3]}), "demo") as view:
        ...     store.con.execute(f"SELECT sum(x) FROM {view}").fetchall()
        [(6,)]
        >>> view.startswith("__cg_demo_")
        True
        """
        name = f"__cg_{prefix}_{uuid.uuid4().hex[:12]}"
        # DuckDB refuses register() while an earlier execute() on the connection has rows left
        # unread (e.g. after fetchone()); run that statement to its end first.
        self.con.complete()
        self.con.register(name, rows)
        try:
            yield name
        finally:
            self.con.unregister(name)

    # -- inspection -----------------------------------------------------------------------------
    def table_counts(self) -> dict[str, int]:
        return {
            table: self.con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            for table in DATA_TABLES
        }

    def event_summary(self) -> dict[str, object]:
        """Users, events per type and the time span covered by the events table."""
        # fetchall, not fetchone: DuckDB leaves a fetchone() result open, which blocks register().
        n_users, first, last = self.con.execute(
            "SELECT count(DISTINCT user_id), min(ts), max(ts) FROM events"
        ).fetchall()[0]
        by_type = dict(
            self.con.execute(
                "SELECT type, count(*) FROM events GROUP BY type ORDER BY count(*) DESC"
            ).fetchall()
        )
        return {"users_with_events": n_users, "first_ts": first, "last_ts": last, "by_type": by_type}
