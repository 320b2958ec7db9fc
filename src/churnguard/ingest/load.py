"""The entry points: :func:`ingest_files` (one transaction over all files of one kind),
:func:`parse_mapping` and :func:`list_quarantine`."""

from __future__ import annotations

import codecs
import datetime as dt
import os
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from churnguard.config import IngestConfig
from churnguard.ingest.append import _append_events, _append_if_clean
from churnguard.ingest.columns import _plan_columns
from churnguard.ingest.faults import FAULT_AFTER_INSERT, FAULT_ENV, FAULT_EXIT_CODE
from churnguard.ingest.problems import _first_problems, _quarantine, _rejection
from churnguard.ingest.pseudonymise import _pseudonym_key
from churnguard.ingest.read import _Source, _drop, _open_source
from churnguard.ingest.results import IngestError, IngestReport, Problem, _Totals
from churnguard.ingest.stage import _events_stored, _stage, _stage_select
from churnguard.ingest.upsert import _upsert
from churnguard.schema import CONTRACTS, FORMATS, KINDS, ON_ERROR, Contract
from churnguard.store import Store

MAX_PROBLEMS_SHOWN = 5


def parse_mapping(pairs: Sequence[str]) -> dict[str, str]:
    """Turn ``["dst=src", ...]`` (contract column = the file's column) into a dict.

    >>> parse_mapping(["amount=total"])
    {'amount': 'total'}
    """
    mapping: dict[str, str] = {}
    for pair in pairs:
        dst, sep, src = pair.partition("=")
        dst, src = dst.strip(), src.strip()
        if not sep or not dst or not src:
            raise IngestError(
                f"--map {pair!r}: expected CONTRACT_COLUMN=FILE_COLUMN, e.g. --map user_id=customer_no"
            )
        if dst in mapping:
            raise IngestError(f"--map {pair!r}: {dst!r} is already mapped to {mapping[dst]!r}")
        mapping[dst] = src
    return mapping


def list_quarantine(store: Store, *, batch_id: str | None = None, limit: int = 50) -> list[dict]:
    """Quarantined rows, oldest batch first and in file order, as plain dicts."""
    where = "WHERE batch_id = ?" if batch_id is not None else ""
    params: list[object] = [batch_id] if batch_id is not None else []
    cursor = store.con.execute(
        "SELECT batch_id, kind, file, row_number, column_name, reason, record, quarantined_at "
        f"FROM quarantine {where} ORDER BY quarantined_at, batch_id, file, row_number LIMIT ?",
        [*params, int(limit)],
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@dataclass(frozen=True, kw_only=True)
class _Options:
    """How to read and validate each file of one call (checked already)."""

    contract: Contract
    mapping: dict[str, str]
    default_type: str | None
    fmt: str
    on_error: str
    delimiter: str | None
    encoding: str
    config: IngestConfig
    pseudonym: bytes | None
    say: Callable[[str], None]
    started_at: dt.datetime  # naive UTC: the reference of "in the future"


@dataclass
class _Batch:
    """What one call has done so far, over its files."""

    batch_id: str
    totals: _Totals = field(default_factory=_Totals)
    problems: list[Problem] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    attribute_columns: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Files with bad rows under on_error='reject': (file, bad rows, first problems).
    rejected: list[tuple[str, int, list[Problem]]] = field(default_factory=list)


def ingest_files(
    store: Store,
    *,
    kind: str,
    files: Sequence[str | Path],
    mapping: Mapping[str, str] | None = None,
    default_type: str | None = None,
    fmt: str = "auto",
    on_error: str = "reject",
    config: IngestConfig = IngestConfig(),
    delimiter: str | None = None,
    encoding: str = "utf-8",
    progress: Callable[[str], None] | None = None,
    before_commit: Callable[[duckdb.DuckDBPyConnection, str | None], None] | None = None,
) -> IngestReport:
    """Validate and load ``files`` of one ``kind`` into the store, all or nothing.

    Raises :class:`IngestError` for bad input; under ``on_error='reject'`` any bad row is bad
    input. See the module docstring for the rules. ``before_commit(con, batch_id)`` runs inside
    the call's transaction once everything is written (``batch_id`` None when no row was read),
    so a caller's own record of the load (the operating cycle's inbox) commits with it or not
    at all.
    """
    contract, mapping, default_type = _checked_arguments(
        kind, fmt, on_error, files, mapping, default_type
    )
    encoding = _normalise_encoding(encoding)
    _check_timezone(store, config.naive_timezone)
    started_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    options = _Options(
        contract=contract, mapping=mapping, default_type=default_type, fmt=fmt,
        on_error=on_error, delimiter=delimiter, encoding=encoding, config=config,
        pseudonym=_pseudonym_key(config) if config.pseudonymise else None,
        say=progress or (lambda message: None), started_at=started_at,
    )  # fmt: skip
    batch = _Batch(
        batch_id=dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:12]
    )
    file_names = tuple(str(f) for f in files)

    with store.transaction() as con:
        for index, file in enumerate(files):
            _load_file(con, options, batch, index, file)
        if batch.rejected:
            raise _rejection(batch.rejected)
        if batch.totals.read:
            _record_batch(con, kind, file_names, on_error, batch, started_at)
        else:
            batch.notes.append("no data rows were read; the store is unchanged")
        if before_commit is not None:
            before_commit(con, batch.batch_id if batch.totals.read else None)
        if os.environ.get(FAULT_ENV) == FAULT_AFTER_INSERT:
            # Fault injection for the atomicity test: die after writing, before the commit.
            os._exit(FAULT_EXIT_CODE)
        options.say("committing")

    totals = batch.totals
    return IngestReport(
        batch_id=batch.batch_id,
        kind=kind,
        files=file_names,
        rows_read=totals.read,
        rows_added=totals.added,
        rows_updated=totals.updated,
        rows_duplicate=totals.duplicate,
        rows_bad=totals.bad,
        on_error=on_error,
        problems=tuple(batch.problems[:MAX_PROBLEMS_SHOWN]),
        ignored_columns=tuple(batch.ignored),
        attribute_columns=tuple(batch.attribute_columns),
        notes=tuple(batch.notes),
    )


def _checked_arguments(
    kind: str,
    fmt: str,
    on_error: str,
    files: Sequence[str | Path],
    mapping: Mapping[str, str] | None,
    default_type: str | None,
) -> tuple[Contract, dict[str, str], str | None]:
    """The contract, the mapping and the default type, once the arguments make sense together."""
    _check_choice("kind", kind, KINDS)
    _check_choice("format", fmt, FORMATS)
    _check_choice("on_error", on_error, ON_ERROR)
    if not files:
        raise IngestError("no input files given")
    contract = CONTRACTS[kind]
    mapping = dict(mapping or {})
    if default_type is not None:
        if kind != "events":
            raise IngestError(f"--default-type only applies to events, not {kind}")
        default_type = default_type.strip().lower()
        if not default_type:
            raise IngestError("--default-type must not be empty, e.g. --default-type order")
    if contract.attributes_table is None:
        unknown = sorted(set(mapping) - set(contract.names))
        if unknown:
            raise IngestError(
                f"--map {unknown[0]}=...: {unknown[0]!r} is not a column of {kind}; "
                f"its columns are {', '.join(contract.names)}"
            )
    return contract, mapping, default_type


def _load_file(
    con: duckdb.DuckDBPyConnection, options: _Options, batch: _Batch, index: int, file: str | Path
) -> None:
    """Read, validate and write one file inside the call's transaction; its temp objects go."""
    display = str(file)
    options.say(f"reading {display}")
    source = _open_source(con, Path(file), display, index, options.fmt, options.delimiter,
                          options.encoding)
    try:
        batch.notes += source.notes
        _load_source(con, options, batch, index, source)
    finally:
        for table in reversed(source.tables):
            _drop(con, table)
        for folder in source.folders:
            shutil.rmtree(folder, ignore_errors=True)


def _load_source(
    con: duckdb.DuckDBPyConnection, options: _Options, batch: _Batch, index: int, source: _Source
) -> None:
    contract, display, totals = options.contract, source.display, batch.totals
    plan = _plan_columns(contract, source, options.mapping, options.default_type, options.delimiter)
    batch.ignored += [f"{display}: {c}" for c in plan.ignored]
    batch.attribute_columns += [a for a in plan.attributes if a not in batch.attribute_columns]
    batch.notes += plan.notes
    options.say(f"validating {display}")
    select = _stage_select(con, contract, source, plan, options.config, options.pseudonym,
                           options.default_type, options.started_at)
    if contract.kind == "events" and not batch.rejected and not _events_stored(con):
        options.say(f"writing {display} as it is validated")
        added = _append_if_clean(con, source, plan, select, batch.batch_id)
        if added is not None:
            totals.read += added
            totals.added += added
            return
    stage, n_rows, n_bad, repeats = _stage(con, contract, source, plan, select, index)
    source.tables.append(stage)
    totals.read += n_rows
    if n_rows == 0:
        batch.notes.append(f"{display} has a header but no data rows; nothing to load")
        return
    if n_bad:
        file_problems = _first_problems(con, stage, source, MAX_PROBLEMS_SHOWN)
        if options.on_error == "reject":
            batch.rejected.append((display, n_bad, file_problems))
            return  # keep validating the other files, then fail with all of it
        batch.problems += file_problems
        totals.bad += n_bad
    if batch.rejected:
        return
    options.say(f"writing {n_rows - n_bad} rows from {display}")
    if contract.key:
        _upsert(con, contract, stage, plan, batch.batch_id, totals)
    else:
        _append_events(con, stage, batch.batch_id, totals, n_rows - n_bad, clean=n_bad == 0,
                       repeats=repeats)
    if n_bad and options.on_error == "quarantine":
        _quarantine(con, contract.kind, stage, source, batch.batch_id,
                    user_id_column=plan.sources.get("user_id"), pseudonym=options.pseudonym,
                    scrub=options.config.scrub_text)


def _record_batch(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    file_names: tuple[str, ...],
    on_error: str,
    batch: _Batch,
    started_at: dt.datetime,
) -> None:
    totals = batch.totals
    finished_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute(
        "INSERT INTO ingest_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            batch.batch_id, kind, list(file_names), on_error, totals.read, totals.added,
            totals.updated, totals.duplicate, totals.bad, started_at, finished_at,
        ],
    )  # fmt: skip


def _check_choice(what: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise IngestError(f"unknown {what} {value!r}; use one of: {', '.join(allowed)}")


def _normalise_encoding(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
    except LookupError as exc:
        raise IngestError(f"unknown encoding {encoding!r}; e.g. utf-8, gb18030 (Chinese Excel), "
                          "utf-16 (Excel's Unicode text) or cp1252 (Western Excel)") from exc
    # DuckDB's names for the encodings its CSV reader knows; Python's for the rest, which are
    # transcoded first (ingest/encodings.py).
    return {"utf-8": "utf-8", "iso8859-1": "latin-1"}.get(name, name)


def _check_timezone(store: Store, timezone: str) -> None:
    try:
        store.con.execute("SELECT timezone(?, TIMESTAMP '2000-01-01')", [timezone]).fetchone()
    except duckdb.Error as exc:
        raise IngestError(
            f"ingest.timezone {timezone!r} is not a time zone DuckDB knows; use an IANA name "
            "such as 'UTC' or 'Europe/Berlin'"
        ) from exc
