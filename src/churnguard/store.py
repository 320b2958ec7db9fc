"""The embedded DuckDB store: one file per project, schema versioned by migrations.

All timestamps are stored as naive ``TIMESTAMP`` values that mean UTC; ingestion converts every
input to UTC before it reaches a table. Every table that ingestion writes carries the id of the
ingest batch that added (or last changed) the row.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     with Store.open(pathlib.Path(d) / "churnguard.duckdb") as store:
...         store.schema_version()
3
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb

from churnguard.errors import ChurnguardError

STORE_FILENAME = "churnguard.duckdb"


@dataclass(frozen=True, kw_only=True)
class Migration:
    version: int
    description: str
    sql: str


# Append-only: a released migration is never edited, a change is a new migration.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        version=1,
        description="ingest batches, events, users, items, campaigns, labels, quarantine",
        sql="""
        CREATE TABLE ingest_batches (
            batch_id       VARCHAR PRIMARY KEY,
            kind           VARCHAR NOT NULL,
            files          VARCHAR[] NOT NULL,
            on_error       VARCHAR NOT NULL,
            rows_read      BIGINT NOT NULL,
            rows_added     BIGINT NOT NULL,
            rows_updated   BIGINT NOT NULL,
            rows_duplicate BIGINT NOT NULL,
            rows_bad       BIGINT NOT NULL,
            started_at     TIMESTAMP NOT NULL,
            finished_at    TIMESTAMP NOT NULL
        );
        CREATE TABLE events (
            event_id   VARCHAR NOT NULL,
            user_id    VARCHAR NOT NULL,
            ts         TIMESTAMP NOT NULL,
            type       VARCHAR NOT NULL,
            item_id    VARCHAR,
            category   VARCHAR,
            amount     DOUBLE,
            quantity   DOUBLE,
            text       VARCHAR,
            rating     TINYINT,
            channel    VARCHAR,
            session_id VARCHAR,
            batch_id   VARCHAR NOT NULL
        );
        CREATE TABLE users (
            user_id   VARCHAR PRIMARY KEY,
            signup_ts TIMESTAMP,
            batch_id  VARCHAR NOT NULL
        );
        CREATE TABLE user_attributes (
            user_id  VARCHAR NOT NULL,
            name     VARCHAR NOT NULL,
            value    VARCHAR,
            batch_id VARCHAR NOT NULL,
            PRIMARY KEY (user_id, name)
        );
        CREATE TABLE items (
            item_id  VARCHAR PRIMARY KEY,
            category VARCHAR,
            price    DOUBLE,
            title    VARCHAR,
            batch_id VARCHAR NOT NULL
        );
        CREATE TABLE item_attributes (
            item_id  VARCHAR NOT NULL,
            name     VARCHAR NOT NULL,
            value    VARCHAR,
            batch_id VARCHAR NOT NULL,
            PRIMARY KEY (item_id, name)
        );
        CREATE TABLE campaigns (
            campaign_id VARCHAR NOT NULL,
            user_id     VARCHAR NOT NULL,
            action      VARCHAR NOT NULL,
            assigned_at TIMESTAMP NOT NULL,
            is_control  BOOLEAN NOT NULL,
            cost        DOUBLE,
            channel     VARCHAR,
            batch_id    VARCHAR NOT NULL,
            PRIMARY KEY (campaign_id, user_id)
        );
        CREATE TABLE labels (
            user_id  VARCHAR NOT NULL,
            as_of    TIMESTAMP NOT NULL,
            churned  BOOLEAN NOT NULL,
            batch_id VARCHAR NOT NULL,
            PRIMARY KEY (user_id, as_of)
        );
        CREATE TABLE quarantine (
            batch_id       VARCHAR NOT NULL,
            kind           VARCHAR NOT NULL,
            file           VARCHAR NOT NULL,
            row_number     BIGINT,
            column_name    VARCHAR,
            reason         VARCHAR NOT NULL,
            record         VARCHAR,
            quarantined_at TIMESTAMP NOT NULL
        );
        """,
    ),
)

MIGRATIONS += (
    Migration(
        version=2,
        description="model registry, aliases with history, scores, backtest runs",
        sql="""
        CREATE TABLE models (
            version     VARCHAR PRIMARY KEY,
            name        VARCHAR NOT NULL,
            created_at  TIMESTAMP NOT NULL,
            config      VARCHAR NOT NULL,
            data_window VARCHAR NOT NULL,
            metrics     VARCHAR NOT NULL,
            features    VARCHAR NOT NULL,
            artifact    BLOB NOT NULL
        );
        CREATE TABLE model_aliases (
            alias      VARCHAR PRIMARY KEY,
            version    VARCHAR NOT NULL,
            updated_at TIMESTAMP NOT NULL
        );
        CREATE TABLE model_alias_history (
            alias            VARCHAR NOT NULL,
            version          VARCHAR NOT NULL,
            previous_version VARCHAR,
            changed_at       TIMESTAMP NOT NULL,
            reason           VARCHAR NOT NULL
        );
        CREATE TABLE scores (
            user_id       VARCHAR NOT NULL,
            as_of         TIMESTAMP NOT NULL,
            model_version VARCHAR NOT NULL,
            p_churn       DOUBLE NOT NULL,
            risk_tier     VARCHAR NOT NULL,
            reason_1      VARCHAR,
            reason_2      VARCHAR,
            reason_3      VARCHAR,
            lang          VARCHAR NOT NULL,
            scored_at     TIMESTAMP NOT NULL,
            PRIMARY KEY (user_id, as_of, model_version)
        );
        CREATE TABLE backtests (
            run_id     VARCHAR PRIMARY KEY,
            created_at TIMESTAMP NOT NULL,
            result     VARCHAR NOT NULL
        );
        CREATE TABLE backtest_predictions (
            run_id  VARCHAR NOT NULL,
            model   VARCHAR NOT NULL,
            user_id VARCHAR NOT NULL,
            y_true  BOOLEAN NOT NULL,
            p_churn DOUBLE NOT NULL
        );
        """,
    ),
)

MIGRATIONS += (
    Migration(
        version=3,
        description="campaign plans, delivery log, measurements, erasure audit",
        sql="""
        CREATE TABLE plans (
            campaign_id VARCHAR PRIMARY KEY,
            created_at  TIMESTAMP NOT NULL,
            as_of       TIMESTAMP NOT NULL,
            budget      DOUBLE NOT NULL,
            status      VARCHAR NOT NULL,
            config      VARCHAR NOT NULL,
            summary     VARCHAR NOT NULL
        );
        CREATE TABLE plan_rows (
            campaign_id     VARCHAR NOT NULL,
            user_id         VARCHAR NOT NULL,
            action          VARCHAR NOT NULL,
            is_control      BOOLEAN NOT NULL,
            risk_tier       VARCHAR,
            p_churn         DOUBLE,
            uplift          DOUBLE,
            value           DOUBLE,
            expected_cost   DOUBLE,
            expected_margin DOUBLE,
            channel         VARCHAR,
            items           VARCHAR,
            message_en      VARCHAR,
            message_zh      VARCHAR,
            PRIMARY KEY (campaign_id, user_id)
        );
        CREATE TABLE deliveries (
            campaign_id      VARCHAR NOT NULL,
            user_id          VARCHAR NOT NULL,
            idempotency_key  VARCHAR NOT NULL,
            target           VARCHAR NOT NULL,
            status           VARCHAR NOT NULL,
            attempts         INTEGER NOT NULL,
            last_status_code INTEGER,
            last_error       VARCHAR,
            updated_at       TIMESTAMP NOT NULL,
            PRIMARY KEY (campaign_id, user_id)
        );
        CREATE TABLE measurements (
            campaign_id VARCHAR NOT NULL,
            measured_at TIMESTAMP NOT NULL,
            result      VARCHAR NOT NULL
        );
        CREATE TABLE erasures (
            erasure_id   VARCHAR PRIMARY KEY,
            erased_at    TIMESTAMP NOT NULL,
            rows_deleted VARCHAR NOT NULL
        );
        """,
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


class Store:
    """A DuckDB database file holding one project's data.

    Open with :meth:`Store.open`; use as a context manager so the file is closed. Writes that touch
    several tables go through :meth:`transaction`, which commits all or nothing.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, path: Path | None) -> None:
        self.con = con
        self.path = path

    @classmethod
    def open(cls, path: str | Path, *, read_only: bool = False, threads: int | None = None) -> Store:
        """Open (creating if needed) the store at ``path`` and bring its schema up to date."""
        path = Path(path)
        if read_only and not path.exists():
            raise StoreError(f"{path}: no store here; run `churnguard init` first")
        try:
            con = duckdb.connect(str(path), read_only=read_only)
        except duckdb.Error as exc:
            raise StoreError(f"{path}: cannot open the store: {exc}") from exc
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
        self.con.close()

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
