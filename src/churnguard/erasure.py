"""Erasing a customer: every row that names them, every file under the project that holds their
id, and the freed pages of the store file that would still hold it.

Three steps, in this order:

1. :func:`erase_customer_rows` deletes, in one transaction, the customer's rows from every table
   keyed by user id and the quarantined records that mention the id, and appends an audit record
   to ``erasures`` that holds no personal data: a random erasure id, the time, and how many rows
   each table lost;
2. :func:`erase_customer_files` deletes the caches (``.churnguard-cache/``: the behaviour model's
   event sequences, rebuilt on next use, and stale anyway once events change) and every other file
   under the project folder (the store and its configuration excepted) whose name or content
   holds the id: exports, reports. Raw exports kept inside the project folder are deleted too, so
   keep them outside it;
3. :func:`compact_store` rewrites the store file. DuckDB marks deleted rows and leaves their
   bytes in the file's blocks (a checkpoint does not zero freed blocks), so only a fresh copy
   of the database no longer holds the id. The store must be closed while it runs.

With pseudonymisation on, the tables hold HMACs of the shop's ids (:func:`stored_user_id`);
quarantined records keep the raw input, so both forms are looked for (:func:`customer_ids`, worked
out once per erasure). :func:`churnguard.customers.erase` runs the three steps; the REST API and the
CLI call it, not these.

>>> from churnguard.store import Store
>>> store = Store.in_memory()
>>> _ = store.con.execute(
...     "INSERT INTO events (event_id, user_id, ts, type, batch_id) VALUES "
...     "('e1', 'u1', '2025-01-05', 'order', 'b'), ('e2', 'u2', '2025-01-06', 'order', 'b')")
>>> report = erase_customer_rows(store, customer_ids("u1"))
>>> report.rows_deleted["events"], store.con.execute("SELECT count(*) FROM events").fetchall()
(1, [(1,)])
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import hmac
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from churnguard.config import IngestConfig
from churnguard.errors import ChurnguardError
from churnguard.store import STORE_FILENAME, Store

# Tables with a user_id column, erased by equality on it.
USER_TABLES = ("events", "users", "user_attributes", "campaigns", "labels", "scores",
               "backtest_predictions", "plan_rows", "deliveries")

_SKIP_FILES = ("churnguard.toml",)
CACHE_DIRS = (".churnguard-cache",)  # derived data, deleted whole by an erasure
_CHUNK = 1 << 20


@dataclass(frozen=True, kw_only=True)
class ErasureReport:
    erasure_id: str
    erased_at: dt.datetime
    rows_deleted: dict[str, int]
    files_deleted: int = 0

    @property
    def total_rows(self) -> int:
        return sum(self.rows_deleted.values())


class ErasureError(ChurnguardError, RuntimeError):
    """The customer could not be erased (the message says why; nothing was changed)."""

    code = "erasure_failed"
    bad_input = False


def stored_user_id(user_id: str, config: IngestConfig | None = None) -> str:
    """The id as ingestion stores it: trimmed, and HMAC-SHA256'd (first 32 hex digits) when
    ``config.pseudonymise`` is on, exactly as ``ingest._hmac_sql`` does in SQL.

    >>> stored_user_id("  u1 ")
    'u1'
    """
    value = user_id.strip()
    if config is None or not config.pseudonymise:
        return value
    key = os.environ.get(config.pseudonym_key_env, "")
    if not key:
        raise ErasureError(f"ingest.pseudonymise is on but {config.pseudonym_key_env} is not set")
    return hmac.new(key.encode("utf-8"), value.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def customer_ids(user_id: str, config: IngestConfig | None = None) -> list[str]:
    """The forms of a customer's id to erase: the stored one first, then the shop's own.

    >>> customer_ids(" u1 ")
    ['u1']
    """
    stored = stored_user_id(user_id, config)
    return list(dict.fromkeys([stored, user_id.strip()]))


def erase_customer_rows(store: Store, ids: Sequence[str]) -> ErasureReport:
    """Delete every row that names the customer (``ids``: :func:`customer_ids`) and record the
    erasure (counts only)."""
    needles = list(ids)
    if not needles or not needles[0]:
        raise ErasureError("the user id is empty")
    stored = needles[0]
    counts: dict[str, int] = {}
    erasure_id = uuid.uuid4().hex
    erased_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    with store.transaction() as con:
        for table in USER_TABLES:
            (n,) = con.execute(f"DELETE FROM {table} WHERE user_id = ?", [stored]).fetchall()[0]
            counts[table] = int(n)
        # Quarantined rows keep the raw input as JSON text: a record holding the id as a whole
        # JSON string, or a reason quoting it, mentions the customer.
        conditions, params = [], []
        for needle in needles:
            conditions.append("contains(record, ?) OR contains(reason, ?)")
            params += [json.dumps(needle, ensure_ascii=False), f"'{needle}'"]
        (n,) = con.execute(f"DELETE FROM quarantine WHERE {' OR '.join(conditions)}",
                           params).fetchall()[0]
        counts["quarantine"] = int(n)
        con.execute("INSERT INTO erasures VALUES (?, ?, ?)",
                    [erasure_id, erased_at, json.dumps(counts, sort_keys=True)])
    return ErasureReport(erasure_id=erasure_id, erased_at=erased_at, rows_deleted=counts)


def _store_files(root: Path) -> set[Path]:
    base = root / STORE_FILENAME
    return {base, base.with_name(base.name + ".wal")}


def _parquet_holds(path: Path, needles: Sequence[str]) -> bool:
    con = duckdb.connect()
    try:
        columns = [name for name, type_, *_ in con.execute(
            "DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
            if type_ == "VARCHAR"]
        if not columns:
            return False
        condition = " OR ".join(f'"{c.replace(chr(34), chr(34) * 2)}" IN (SELECT unnest(?))'
                                for c in columns)
        (hit,) = con.execute(
            f"SELECT count(*) > 0 FROM (SELECT 1 FROM read_parquet(?) WHERE {condition} LIMIT 1)",
            [str(path), *([list(needles)] * len(columns))]).fetchall()[0]
        return bool(hit)
    except duckdb.Error:
        return _bytes_hold(path, needles)  # not readable as Parquet: look at the bytes
    finally:
        con.close()


def _bytes_hold(path: Path, needles: Sequence[str]) -> bool:
    # UTF-8 text, and the UTF-16/32 of numpy string arrays and some exports.
    patterns = [n.encode(codec) for n in needles for codec in ("utf-8", "utf-16-le", "utf-32-le")]
    overlap = max(len(p) for p in patterns) - 1
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            tail = b""
            while chunk := fh.read(_CHUNK):
                window = tail + chunk
                if any(p in window for p in patterns):
                    return True
                tail = window[-overlap:] if overlap else b""
    except (OSError, EOFError):  # a corrupt .gz: fall back to its raw bytes
        if opener is gzip.open:
            return any(p in path.read_bytes() for p in patterns)
        raise
    return False


def file_holds(path: Path, needles: Sequence[str]) -> bool:
    """Whether the file's name or content holds any of ``needles`` (Parquet is read as data,
    since its compressed pages hide the bytes)."""
    if any(n in path.name for n in needles):
        return True
    if path.suffix.lower() in (".parquet", ".pq"):
        return _parquet_holds(path, needles)
    return _bytes_hold(path, needles)


def files_holding(root: Path, needles: Sequence[str]) -> list[Path]:
    """Files under ``root`` (the store and churnguard.toml excepted) that hold the id."""
    skip = _store_files(root) | {root / name for name in _SKIP_FILES}
    found = []
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            if path in skip or not path.is_file() or path.is_symlink():
                continue
            if file_holds(path, needles):
                found.append(path)
    return sorted(found)


def erase_customer_files(root: Path, ids: Sequence[str]) -> int:
    """Delete the caches and the files under the project folder that hold the customer's id
    (``ids``: :func:`customer_ids`); returns how many files were deleted."""
    deleted = 0
    for name in CACHE_DIRS:
        cache = root / name
        if cache.is_dir():
            deleted += sum(1 for p in cache.rglob("*") if p.is_file())
            shutil.rmtree(cache)
    paths = files_holding(root, list(ids))
    for path in paths:
        path.unlink(missing_ok=True)
    return deleted + len(paths)


def compact_store(path: Path) -> None:
    """Rewrite the (closed) store at ``path`` into a fresh file and swap it in atomically.

    Deleted rows leave their bytes in the blocks DuckDB freed; a copy holds live rows only.
    """
    path = Path(path)
    fresh = path.with_name(f".{path.name}.compact")
    fresh.unlink(missing_ok=True)
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{_sql_path(path)}' AS old")
        con.execute("CHECKPOINT old")  # replays any WAL into the old file first
        con.execute(f"ATTACH '{_sql_path(fresh)}' AS fresh")
        con.execute("COPY FROM DATABASE old TO fresh")
        con.execute("DETACH old")
        con.execute("DETACH fresh")
    except BaseException:
        con.close()
        fresh.unlink(missing_ok=True)
        raise
    con.close()
    os.replace(fresh, path)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def erasure_count(store: Store) -> int:
    """How many erasures the store has recorded (anything derived before one may name an erased
    customer)."""
    (n,) = store.con.execute("SELECT count(*) FROM erasures").fetchall()[0]
    return int(n)


def tables_mentioning(store: Store, needles: Iterable[str]) -> dict[str, int]:
    """Rows per table whose text columns contain any needle (a check after an erasure)."""
    needles = list(needles)
    found: dict[str, int] = {}
    columns = store.con.execute(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'main' AND data_type IN ('VARCHAR', 'VARCHAR[]', 'BLOB')"
    ).fetchall()
    by_table: dict[str, list[str]] = {}
    for table, column in columns:
        by_table.setdefault(table, []).append(column)
    for table, cols in by_table.items():
        checks = " OR ".join(f'contains(CAST("{c}" AS VARCHAR), ?)' for c in cols
                             for _ in needles)
        params = [n for _c in cols for n in needles]
        (n,) = store.con.execute(f'SELECT count(*) FROM "{table}" WHERE {checks}',
                                 params).fetchall()[0]
        if n:
            found[table] = int(n)
    return found


__all__ = ["CACHE_DIRS", "USER_TABLES", "ErasureError", "ErasureReport", "compact_store",
           "customer_ids", "erase_customer_files", "erase_customer_rows", "erasure_count",
           "file_holds", "files_holding", "stored_user_id", "tables_mentioning"]
