"""Erasing a customer: every row that names them, every file under the project that holds their
id, and the freed pages of the store file that would still hold it.

Three steps, in this order:

1. :func:`erase_customer_rows` deletes, in one transaction, the customer's rows from every table
   keyed by user id and the quarantined records that mention the id, and appends an audit record
   to ``erasures`` that holds no personal data: a random erasure id, the time, and how many rows
   each table lost;
2. :func:`sweep_customer_files` deletes the caches (``.churnguard-cache/``: the behaviour model's
   event sequences, rebuilt on next use, and stale anyway once events change) and rewrites the
   exports under the project folder (CSV, TSV, Parquet, JSON, JSON Lines with a ``user_id``
   column) without the customer's rows, matching the id as a whole value. It never deletes a
   file it did not write: any other file that holds the id as a whole word (a report, notes) is
   listed for the operator and left alone. Keep raw exports outside the project folder;
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

import csv
import datetime as dt
import hashlib
import hmac
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnguard.config import IngestConfig
from churnguard.errors import ChurnguardError
from churnguard.files import replace_atomically
from churnguard.store import LOCK_POLL_S, STORE_FILENAME, Store, StoreBusyError

# Tables with a user_id column, erased by equality on it.
USER_TABLES = ("events", "users", "user_attributes", "campaigns", "labels", "scores",
               "backtest_predictions", "plan_rows", "deliveries", "assist_log")

_SKIP_FILES = ("churnguard.toml", ".churnguard-pending-compaction")
CACHE_DIRS = (".churnguard-cache",)  # derived data, deleted whole by an erasure
# Model files churnguard writes (encoder weights, checkpoints, training logs): they hold no ids,
# and a byte search of weights finds short ids by chance.
OWN_MODEL_DIRS = ("pretrained",)
# The column (or JSON field) that names the customer in every table churnguard writes.
ID_COLUMN = "user_id"


@dataclass(frozen=True, kw_only=True)
class ErasureReport:
    erasure_id: str
    erased_at: dt.datetime
    rows_deleted: dict[str, int]
    files_deleted: int = 0
    files_rewritten: tuple[str, ...] = ()
    files_to_review: tuple[str, ...] = ()
    # False: another process held the store, so the rewrite that drops the freed pages is pending
    compacted: bool = True

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


@dataclass(frozen=True, kw_only=True)
class FileSweep:
    """What erasing a customer did to the files under a project folder (paths relative to it).

    ``deleted``: the cache files (derived data, rebuilt on next use). ``rewritten``: exports that
    held the customer's rows, written again without them. ``to_review``: files that hold the id
    as a whole word but are not tables churnguard can edit (a report, notes, a file named after
    the customer): left as they were, for the operator to deal with.
    """

    deleted: int = 0
    rewritten: tuple[str, ...] = ()
    to_review: tuple[str, ...] = ()


def _rows_kept(values: Sequence[Any], ids: set[str]) -> list[bool]:
    return [not (isinstance(v, str) and v.strip() in ids) for v in values]


def _holds_word(data: bytes, ids: Sequence[str]) -> bool:
    """Whether the bytes hold an id as a whole word (not inside a longer id or number), in
    UTF-8 or the UTF-16/32 of numpy string arrays and some exports."""
    for codec in ("utf-8", "utf-16-le", "utf-32-le"):
        for needle in ids:
            pattern = re.escape(needle.encode(codec))
            if codec == "utf-8":
                pattern = rb"(?<![\w.@-])" + pattern + rb"(?![\w.@-])"
            if re.search(pattern, data):
                return True
    return False


def _rewrite_csv(path: Path, ids: set[str]) -> bool | None:
    """Drop the rows whose ``user_id`` is one of ``ids``; None: no user_id column."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh, delimiter=delimiter))
    if not rows or ID_COLUMN not in rows[0]:
        return None
    at = rows[0].index(ID_COLUMN)
    kept = [rows[0], *(r for r in rows[1:] if not (len(r) > at and r[at].strip() in ids))]
    if len(kept) == len(rows):
        return False

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            csv.writer(fh, delimiter=delimiter, lineterminator="\n").writerows(kept)

    replace_atomically(path, write)
    return True


def _rewrite_parquet(path: Path, ids: set[str]) -> bool | None:
    table = pq.read_table(path)
    if ID_COLUMN not in table.column_names:
        return None
    mask = _rows_kept(table.column(ID_COLUMN).to_pylist(), ids)
    if all(mask):
        return False
    replace_atomically(path, lambda tmp: pq.write_table(table.filter(pa.array(mask)), tmp))
    return True


def _without(document: Any, ids: set[str]) -> tuple[Any, int]:
    """The JSON document without the records (objects) whose user_id is one of ``ids``, and
    how many went."""
    if isinstance(document, list):
        kept, dropped = [], 0
        for item in document:
            if isinstance(item, dict) and str(item.get(ID_COLUMN, "")).strip() in ids:
                dropped += 1
                continue
            item, n = _without(item, ids)
            kept.append(item)
            dropped += n
        return kept, dropped
    if isinstance(document, dict):
        pairs = [(k, _without(v, ids)) for k, v in document.items()]
        return {k: v for k, (v, _) in pairs}, sum(n for _, (_, n) in pairs)
    return document, 0


def _rewrite_json(path: Path, ids: set[str]) -> bool | None:
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        kept = [line for line in lines if not _names(line, ids)]
        if len(kept) == len(lines):
            return None
        replace_atomically(path, lambda tmp: tmp.write_text("".join(kept), encoding="utf-8"))
        return True
    document, dropped = _without(json.loads(path.read_text(encoding="utf-8")), ids)
    if not dropped:
        return None
    replace_atomically(path, lambda tmp: tmp.write_text(
        json.dumps(document, ensure_ascii=False), encoding="utf-8"))
    return True


def _names(line: str, ids: set[str]) -> bool:
    """Whether a JSON line is a record of one of ``ids``."""
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and str(record.get(ID_COLUMN, "")).strip() in ids


def _rewriter(suffix: str) -> Callable[[Path, set[str]], bool | None] | None:
    """The function that rewrites an export of this suffix without a customer's rows."""
    if suffix in (".csv", ".tsv"):
        return _rewrite_csv
    if suffix in (".parquet", ".pq"):
        return _rewrite_parquet
    if suffix in (".json", ".jsonl", ".ndjson"):
        return _rewrite_json
    return None


def _sweep_one(path: Path, ids: Sequence[str]) -> str | None:
    """"rewritten", "review" or None (the file does not name the customer)."""
    rewrite = _rewriter(path.suffix.lower())
    if rewrite is not None:
        try:
            done = rewrite(path, set(ids))
        except (OSError, ValueError, UnicodeError, pa.ArrowException, csv.Error):
            done = None  # not readable as the table its name says: treated as any file
        if done:
            return "rewritten"
    if any(re.search(rf"(?<![\w.@-]){re.escape(n)}(?![\w.@-])", path.name) for n in ids):
        return "review"
    if path.suffix.lower() in (".parquet", ".pq"):  # compressed pages hide the bytes: read data
        return "review" if _parquet_names(path, ids) else None
    if path.suffix.lower() in (".json", ".jsonl", ".ndjson"):  # text values, not numbers
        names = _json_names(path, set(ids))
        if names is not None:
            return "review" if names else None
    return "review" if _holds_word(path.read_bytes(), ids) else None


def _json_names(path: Path, ids: set[str]) -> bool | None:
    """Whether a JSON (Lines) file holds one of ``ids`` as a text value or key; None when it is
    not JSON."""
    try:
        text = path.read_text(encoding="utf-8")
        documents = ([json.loads(line) for line in text.splitlines() if line.strip()]
                     if path.suffix.lower() != ".json" else [json.loads(text)])
    except (OSError, ValueError):
        return None
    return any(value.strip() in ids for d in documents for value in _texts(d))


def _texts(document: Any) -> Iterable[str]:
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for key, value in document.items():
            yield str(key)
            yield from _texts(value)
    elif isinstance(document, list):
        for value in document:
            yield from _texts(value)


def _parquet_names(path: Path, ids: Sequence[str]) -> bool:
    """Whether any text column of a Parquet file holds one of ``ids`` as a whole value."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException):
        return _holds_word(path.read_bytes(), ids)
    wanted = pa.array(list(ids), pa.string())
    return any(pc.any(pc.is_in(column.cast(pa.string()), value_set=wanted)).as_py()
               for column in table.columns
               if pa.types.is_string(column.type) or pa.types.is_large_string(column.type))


def sweep_customer_files(root: Path, ids: Sequence[str]) -> FileSweep:
    """Remove a customer (``ids``: :func:`customer_ids`) from the files under the project
    folder: the caches are deleted whole; exports (CSV, TSV, Parquet, JSON, JSON Lines with a
    ``user_id`` column or field) are rewritten without the customer's rows, matched as whole
    values; any other file that holds the id as a whole word is listed for review, never
    deleted. The store, churnguard.toml and the model files in ``pretrained/`` are not read."""
    deleted = 0
    for name in CACHE_DIRS:
        cache = root / name
        if cache.is_dir():
            deleted += sum(1 for p in cache.rglob("*") if p.is_file())
            shutil.rmtree(cache)
    skip = _store_files(root) | {root / name for name in _SKIP_FILES}
    rewritten, review = [], []
    for dirpath, dirs, names in os.walk(root):
        if Path(dirpath) == root:
            dirs[:] = [d for d in dirs if d not in OWN_MODEL_DIRS]
        for name in sorted(names):
            path = Path(dirpath) / name
            if path in skip or not path.is_file() or path.is_symlink():
                continue
            outcome = _sweep_one(path, ids)
            if outcome is not None:
                (rewritten if outcome == "rewritten" else review).append(
                    path.relative_to(root).as_posix())
    return FileSweep(deleted=deleted, rewritten=tuple(sorted(rewritten)),
                     to_review=tuple(sorted(review)))


def compact_store(path: Path, *, wait_s: float = 0.0) -> None:
    """Rewrite the (closed) store at ``path`` into a fresh file and swap it in atomically.

    Deleted rows leave their bytes in the blocks DuckDB freed; a copy holds live rows only. While
    another process holds the file, try again for up to ``wait_s`` seconds, then raise
    :class:`~churnguard.store.StoreBusyError`; the old file is untouched by a failed attempt.
    """
    path = Path(path)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            _compact_once(path)
            return
        except duckdb.IOException as exc:
            if "Conflicting lock" not in str(exc) or time.monotonic() >= deadline:
                if "Conflicting lock" in str(exc):
                    raise StoreBusyError(f"{path}: another process holds the store, so it "
                                         "could not be rewritten yet") from None
                raise
            time.sleep(LOCK_POLL_S)


def _compact_once(path: Path) -> None:
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


# -- compactions that could not run yet --------------------------------------------------------
# An erasure is done when the id's bytes are gone from the store file. When another process held
# the file at that moment, the erasure ids are kept here (no personal data) until a later
# compaction succeeds: at the service's start, before the next erasure, or `churnguard erase
# --finish`.
PENDING_FILE = ".churnguard-pending-compaction"


def pending_compactions(root: Path) -> list[str]:
    """The erasure ids whose store compaction has not run yet."""
    marker = Path(root) / PENDING_FILE
    if not marker.exists():
        return []
    return [line for line in marker.read_text(encoding="utf-8").splitlines() if line.strip()]


def mark_pending(root: Path, erasure_id: str) -> None:
    ids = [*pending_compactions(root), erasure_id]
    replace_atomically(Path(root) / PENDING_FILE,
                       lambda tmp: tmp.write_text("\n".join(ids) + "\n", encoding="utf-8"))


def clear_pending(root: Path) -> None:
    (Path(root) / PENDING_FILE).unlink(missing_ok=True)


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
           "FileSweep", "PENDING_FILE", "clear_pending", "customer_ids", "mark_pending",
           "pending_compactions", "erase_customer_rows", "erasure_count",
           "stored_user_id", "sweep_customer_files", "tables_mentioning"]
