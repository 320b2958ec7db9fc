"""Ingestion: read files → validate against the contracts → normalise → dedupe → write, atomically.

All work on rows is set-based SQL run by DuckDB; Python only plans the queries and, on the error
path alone, re-reads a file to turn a row number into a line number for the message.

One call is one transaction over all its files: either every good row of every file is written
together with one ``ingest_batches`` record, or (on an error, or a crash) nothing is.

Decisions worth knowing:

* Timestamps are stored as naive UTC. A value with an offset ('Z', '+01:00', ' Europe/Berlin') is
  converted; a value without one (including a bare date) is read in ``IngestConfig.timezone``.
  A text column that mixes both kinds within one file is ambiguous (was the export half local?):
  the naive rows are then bad, unless the user set ``ingest.timezone`` in the configuration,
  which says how to read them.
* A file with a header and no data rows is not an error: nothing changes and the report says so.
  A call that reads no rows at all records no batch. A 0-byte file is an error.
* Events without an event_id get ``md5`` of their normalised contract columns (see
  :func:`_event_hash_sql`): a standard hash, so ids stay the same across DuckDB versions.
* Keyed kinds (users, items, campaigns, labels) are upserts: the last row for a key wins (later
  files over earlier ones, later rows over earlier rows); columns the file does not have keep their
  stored values. A row identical to what is stored is a duplicate, not an update.

>>> from churnguard.store import Store
>>> parse_mapping(["user_id=customer", "ts=order_date"])
{'user_id': 'customer', 'ts': 'order_date'}
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import gzip
import hashlib
import io
import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from churnguard.config import IngestConfig
from churnguard.errors import ChurnguardError
from churnguard.schema import (
    CONTRACTS,
    EVENT_HASH_COLUMNS,
    FORMATS,
    KINDS,
    ON_ERROR,
    ColumnType,
    Contract,
    column_sql,
    quote_ident,
    quote_literal,
)
from churnguard.store import Store

FAULT_ENV = "CHURNGUARD_FAULT"
FAULT_AFTER_INSERT = "ingest:after-insert"
FAULT_EXIT_CODE = 70

MAX_PROBLEMS_SHOWN = 5
_ROW = "__cg_row"
_JSON = "__cg_json"
_ERR_COL = "__cg_err_col"
_ERR = "__cg_err"

_EXTENSIONS = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
}  # fmt: skip
_COMPRESSION_SUFFIXES = (".gz", ".zst")

# E-mail addresses, then phone numbers. Phones must look like phones: an international '+'
# number, a 3-3-4 grouped number, or a national number starting with 0 in groups; so ratings,
# prices, dates and 'order 12345' are left alone. RE2 syntax (no look-arounds).
_EMAIL_RE = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_PHONE_RES = (
    r"\+[0-9]{1,3}([ .-]?\(?[0-9]{1,4}\)?){2,5}[0-9]",
    r"\(?\b[0-9]{3}\)?[ .-][0-9]{3}[ .-][0-9]{4}\b",
    r"\b0[0-9]{2,4}[ /.-]?[0-9]{3,4}[ .-]?[0-9]{3,5}\b",
)


# -- results and errors ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where (file, 1-based data row, column) and why.

    ``line`` is the physical line of the row in a text file (CSV, JSONL) when known.
    """

    file: str
    row: int | None
    column: str | None
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}" + (f" (line {self.line})" if self.line else ""))
        elif self.line is not None:
            where.append(f"line {self.line}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return ": ".join([where[0], ", ".join(where[1:])] if len(where) > 1 else where) + (
            f": {self.reason}"
        )


class IngestError(ChurnguardError):
    """Bad input. ``str(exc)`` is the whole message for the user; ``problems`` the details."""

    code = "invalid_input"

    def __init__(self, message: str, problems: Sequence[Problem] = ()) -> None:
        super().__init__(message)
        self.problems: list[Problem] = list(problems)


def _problem_error(problem: Problem) -> IngestError:
    return IngestError(str(problem), [problem])


@dataclass(frozen=True)
class IngestReport:
    batch_id: str
    kind: str
    files: tuple[str, ...]
    rows_read: int
    rows_added: int
    rows_updated: int
    # Already in the store, or repeated within the input.
    rows_duplicate: int
    # Bad rows that were skipped or quarantined.
    rows_bad: int
    on_error: str
    problems: tuple[Problem, ...] = ()
    # Columns of the input that were not stored (events, campaigns, labels), per file.
    ignored_columns: tuple[str, ...] = ()
    # Extra columns kept as attributes (users, items).
    attribute_columns: tuple[str, ...] = ()
    # Plain sentences worth showing, e.g. that a file held no data rows.
    notes: tuple[str, ...] = ()

    @property
    def changed(self) -> bool:
        return bool(self.rows_added or self.rows_updated or (self.rows_bad and self.on_error == "quarantine"))

    def summary(self) -> str:
        lines = [
            f"{self.kind}: read {self.rows_read} rows from {len(self.files)} file(s): "
            f"{self.rows_added} added, {self.rows_updated} updated, "
            f"{self.rows_duplicate} duplicate, {self.rows_bad} bad ({self.on_error})"
        ]
        lines += [f"  {p}" for p in self.problems]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


# -- public helpers --------------------------------------------------------------------------------
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


# -- planning one file -----------------------------------------------------------------------------
@dataclass
class _Source:
    """A file made readable as a temp view with a 1-based row number column."""

    display: str
    path: Path
    fmt: str
    view: str
    columns: dict[str, str]  # the file's column name -> DuckDB type
    tables: list[str] = field(default_factory=list)  # temp objects to drop afterwards
    csv_dialect: tuple[str, str, str] | None = None  # delimiter, quote, escape (error path)


@dataclass
class _Plan:
    """How the contract columns are read from one source."""

    sources: dict[str, str]  # contract column -> file column
    attributes: dict[str, str]  # attribute name -> file column (users, items)
    ignored: list[str]
    notes: list[str]


@dataclass
class _Totals:
    read: int = 0
    added: int = 0
    updated: int = 0
    duplicate: int = 0
    bad: int = 0


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
) -> IngestReport:
    """Validate and load ``files`` of one ``kind`` into the store, all or nothing.

    Raises :class:`IngestError` for bad input; under ``on_error='reject'`` any bad row is bad
    input. See the module docstring for the rules.
    """
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
    encoding = _normalise_encoding(encoding)
    _check_timezone(store, config.naive_timezone)
    pseudonym = _pseudonym_key(config) if config.pseudonymise else None
    say = progress or (lambda message: None)

    batch_id = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:12]
    started_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    totals = _Totals()
    problems: list[Problem] = []
    ignored: list[str] = []
    attribute_columns: list[str] = []
    notes: list[str] = []
    file_names = tuple(str(f) for f in files)
    rejected: list[tuple[str, int, list[Problem]]] = []

    with store.transaction() as con:
        for index, file in enumerate(files):
            display = str(file)
            say(f"reading {display}")
            source = _open_source(con, Path(file), display, index, fmt, delimiter, encoding)
            try:
                plan = _plan_columns(contract, source, mapping, default_type, delimiter)
                ignored += [f"{display}: {c}" for c in plan.ignored]
                attribute_columns += [a for a in plan.attributes if a not in attribute_columns]
                notes += plan.notes
                say(f"validating {display}")
                select = _stage_select(
                    con, contract, source, plan, config, pseudonym, default_type
                )
                if kind == "events" and not rejected and not _events_stored(con):
                    say(f"writing {display} as it is validated")
                    added = _append_if_clean(con, source, plan, select, batch_id)
                    if added is not None:
                        totals.read += added
                        totals.added += added
                        continue
                stage, n_rows, n_bad, repeats = _stage(con, contract, source, plan, select, index)
                source.tables.append(stage)
                totals.read += n_rows
                if n_rows == 0:
                    notes.append(f"{display} has a header but no data rows; nothing to load")
                    continue
                if n_bad:
                    file_problems = _first_problems(con, stage, source, MAX_PROBLEMS_SHOWN)
                    if on_error == "reject":
                        rejected.append((display, n_bad, file_problems))
                        continue  # keep validating the other files, then fail with all of it
                    problems += file_problems
                    totals.bad += n_bad
                if rejected:
                    continue
                say(f"writing {n_rows - n_bad} rows from {display}")
                if contract.key:
                    _upsert(con, contract, stage, plan, batch_id, totals)
                else:
                    _append_events(con, stage, batch_id, totals, n_rows - n_bad, clean=n_bad == 0,
                                   repeats=repeats)
                if n_bad and on_error == "quarantine":
                    _quarantine(con, kind, stage, source, batch_id)
            finally:
                for table in reversed(source.tables):
                    _drop(con, table)
        if rejected:
            raise _rejection(rejected)

        if totals.read:
            finished_at = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            con.execute(
                "INSERT INTO ingest_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    batch_id, kind, list(file_names), on_error, totals.read, totals.added,
                    totals.updated, totals.duplicate, totals.bad, started_at, finished_at,
                ],
            )  # fmt: skip
        else:
            notes.append("no data rows were read; the store is unchanged")
        if os.environ.get(FAULT_ENV) == FAULT_AFTER_INSERT:
            # Fault injection for the atomicity test: die after writing, before the commit.
            os._exit(FAULT_EXIT_CODE)
        say("committing")

    return IngestReport(
        batch_id=batch_id,
        kind=kind,
        files=file_names,
        rows_read=totals.read,
        rows_added=totals.added,
        rows_updated=totals.updated,
        rows_duplicate=totals.duplicate,
        rows_bad=totals.bad,
        on_error=on_error,
        problems=tuple(problems[:MAX_PROBLEMS_SHOWN]),
        ignored_columns=tuple(ignored),
        attribute_columns=tuple(attribute_columns),
        notes=tuple(notes),
    )


def _check_choice(what: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise IngestError(f"unknown {what} {value!r}; use one of: {', '.join(allowed)}")


def _normalise_encoding(encoding: str) -> str:
    try:
        name = codecs.lookup(encoding).name
    except LookupError as exc:
        raise IngestError(f"unknown encoding {encoding!r}; use utf-8, latin-1 or utf-16") from exc
    # DuckDB's names for the encodings its CSV reader knows.
    return {"utf-8": "utf-8", "iso8859-1": "latin-1", "utf-16": "utf-16"}.get(name, name)


def _check_timezone(store: Store, timezone: str) -> None:
    try:
        store.con.execute("SELECT timezone(?, TIMESTAMP '2000-01-01')", [timezone]).fetchone()
    except duckdb.Error as exc:
        raise IngestError(
            f"ingest.timezone {timezone!r} is not a time zone DuckDB knows; use an IANA name "
            "such as 'UTC' or 'Europe/Berlin'"
        ) from exc


def _pseudonym_key(config: IngestConfig) -> bytes:
    key = os.environ.get(config.pseudonym_key_env, "")
    if not key:
        raise IngestError(
            f"ingest.pseudonymise is on but the environment variable {config.pseudonym_key_env} "
            "is not set; set it to a secret key (the same one every time, or ids will not match "
            "across loads), e.g. export "
            f"{config.pseudonym_key_env}=$(python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return key.encode("utf-8")


def _drop(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop a temp table or view of ours (a failed DROP would abort the transaction)."""
    is_view = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE temporary AND view_name = ?", [name]
    ).fetchone()[0]
    con.execute(f"DROP {'VIEW' if is_view else 'TABLE'} IF EXISTS {name}")


# -- reading ---------------------------------------------------------------------------------------
def _detect_format(path: Path, fmt: str, display: str) -> str:
    if fmt != "auto":
        return fmt
    name = path.name.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    found = _EXTENSIONS.get(Path(name).suffix)
    if found is None:
        raise IngestError(
            f"{display}: cannot tell the format from the file name; pass --format csv, "
            "--format parquet or --format jsonl"
        )
    return found


def _open_source(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    display: str,
    index: int,
    fmt: str,
    delimiter: str | None,
    encoding: str,
) -> _Source:
    if not path.exists():
        raise IngestError(f"{display}: no such file")
    if not path.is_file():
        raise IngestError(f"{display}: not a file")
    if path.stat().st_size == 0:
        raise IngestError(f"{display}: the file is empty (0 bytes); expected at least a header")
    fmt = _detect_format(path, fmt, display)
    view = f"__cg_src_{index}"
    raw = f"__cg_raw_{index}"
    source = _Source(display=display, path=path, fmt=fmt, view=view, columns={}, tables=[view])
    if delimiter is not None:
        source.csv_dialect = (delimiter, '"', '"')
    literal = quote_literal(str(path))
    try:
        if fmt == "csv":
            options = ["all_varchar = true", "header = true", f"encoding = {quote_literal(encoding)}"]
            if delimiter is not None:
                options.append(f"delim = {quote_literal(delimiter)}")
            source.tables.append(raw)
            # read_csv has no file_row_number; row_number() OVER () runs as a streaming window
            # over the scan in file order (insertion order is preserved), which tests check.
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {raw} AS "
                f"SELECT row_number() OVER () AS {_ROW}, * FROM read_csv({literal}, {', '.join(options)})"
            )
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {view} AS "
                f"SELECT * FROM {raw}"
            )
        elif fmt == "parquet":
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT file_row_number + 1 AS {_ROW}, "
                f"* EXCLUDE (file_row_number) FROM read_parquet({literal}, file_row_number = true)"
            )
        else:
            if encoding != "utf-8":
                raise IngestError(f"{display}: JSON files must be UTF-8; do not pass an encoding")
            reader = "read_ndjson_objects"
            extra = ""
            if _first_byte(path) == b"[":
                reader, extra = "read_json_objects", ", format = 'array'"
            source.tables.append(raw)
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT row_number() OVER () AS {_ROW}, json AS {_JSON} "
                f"FROM {reader}({literal}, ignore_errors = true{extra})"
            )
            keys = [
                k
                for (k,) in con.execute(
                    f"SELECT k FROM (SELECT {_ROW} AS r, unnest(json_keys({_JSON})) AS k FROM {raw}) "
                    "GROUP BY k ORDER BY min(r), k"
                ).fetchall()
            ]
            fields = ", ".join(
                f"{_JSON} ->> {quote_literal('$.' + json.dumps(k))} AS {quote_ident(k)}"
                for k in keys
            )
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT {_ROW}, {_JSON}"
                f"{', ' + fields if fields else ''} FROM {raw}"
            )
        described = con.execute(f"DESCRIBE {view}").fetchall()
    except duckdb.Error as exc:
        raise _read_error(exc, path, display, fmt, encoding) from exc
    source.columns = {name: type_ for name, type_, *_ in described if name not in (_ROW, _JSON)}
    return source


def _first_byte(path: Path) -> bytes:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        return fh.read(4096).lstrip()[:1]


def _read_error(
    exc: duckdb.Error, path: Path, display: str, fmt: str, encoding: str
) -> IngestError:
    message = str(exc)
    if fmt == "csv" and "unicode" in message.lower():
        line, detail = _find_undecodable_line(path, encoding)
        where = f"line {line}" if line else "the file"
        return IngestError(
            f"{display}: {where} is not valid {encoding.upper()} text{detail}; if the file was "
            "saved in another encoding, pass it, e.g. encoding='latin-1' (--encoding latin-1)",
            [Problem(display, None, None, f"not valid {encoding} text", line)],
        )
    first_line = message.splitlines()[0] if message else type(exc).__name__
    if fmt == "parquet":
        reason = f"cannot read it as Parquet (truncated or corrupt?): {first_line}"
    elif fmt == "csv":
        reason = f"cannot read it as CSV: {first_line}"
        more = [ln.strip() for ln in message.splitlines()[1:3] if ln.strip()]
        if more:
            reason += " (" + "; ".join(more) + ")"
    else:
        reason = f"cannot read it as JSON lines: {first_line}"
    return IngestError(f"{display}: {reason}", [Problem(display, None, None, reason)])


def _open_binary(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")  # noqa: SIM115


def _find_undecodable_line(path: Path, encoding: str) -> tuple[int | None, str]:
    """Error path only: the first line that does not decode, and where in it."""
    with _open_binary(path) as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError as err:
                return number, f" (byte 0x{raw[err.start]:02x} at position {err.start + 1})"
    return None, ""


# -- column planning -------------------------------------------------------------------------------
def _plan_columns(
    contract: Contract,
    source: _Source,
    mapping: Mapping[str, str],
    default_type: str | None,
    delimiter: str | None,
) -> _Plan:
    found = list(source.columns)
    by_lower: dict[str, str] = {}
    for name in found:
        by_lower.setdefault(name.strip().lower(), name)
    sources: dict[str, str] = {}
    attributes: dict[str, str] = {}
    notes: list[str] = []

    for dst, src in mapping.items():
        actual = src if src in source.columns else by_lower.get(src.strip().lower())
        if actual is None:
            raise _problem_error(
                Problem(
                    source.display,
                    None,
                    src,
                    f"--map {dst}={src}: the file has no column {src!r}; "
                    f"its columns are {_list_names(found)}",
                )
            )
        if dst in contract.names:
            sources[dst] = actual
        else:
            attributes[dst] = actual
    mapped_from = set(sources.values()) | set(attributes.values())
    for column in contract.columns:
        if column.name in sources:
            continue
        actual = by_lower.get(column.name)
        if actual is not None and actual not in mapped_from:
            sources[column.name] = actual

    missing = [
        c
        for c in contract.required
        if c not in sources and not (c == "type" and default_type is not None)
    ]
    if missing:
        raise _missing_columns(contract, source, missing, found, delimiter)

    used = set(sources.values()) | set(attributes.values())
    extras = [name for name in found if name not in used]
    ignored: list[str] = []
    if contract.attributes_table is not None:
        for name in extras:
            if name.strip().lower() in contract.names:
                ignored.append(name)  # a contract column replaced by --map
            else:
                attributes[name.strip()] = name
    else:
        ignored = extras
    if ignored:
        notes.append(
            f"{source.display}: ignored column(s) not in the {contract.kind} contract: "
            f"{_list_names(ignored)}"
        )
    if default_type is not None and "type" in sources:
        notes.append(
            f"{source.display}: has a type column; --default-type {default_type} only fills "
            "rows whose type is empty"
        )
    return _Plan(sources=sources, attributes=attributes, ignored=ignored, notes=notes)


def _list_names(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names) if names else "(none)"


def _missing_columns(
    contract: Contract,
    source: _Source,
    missing: list[str],
    found: list[str],
    delimiter: str | None,
) -> IngestError:
    noun = "column" if len(missing) == 1 else "columns"
    message = (
        f"{source.display}: missing required {noun} {_list_names(missing)} for {contract.kind}; "
        f"columns found: {_list_names(found)}."
    )
    hint = None
    if source.fmt == "csv" and len(found) == 1:
        for candidate in (",", ";", "\t", "|"):
            if candidate != delimiter and candidate in found[0]:
                shown = "\\t" if candidate == "\t" else candidate
                given = "" if delimiter is None else f", not {delimiter!r}"
                hint = (
                    f" The header looks {shown!r}-separated{given}: pass delimiter {shown!r} "
                    "(or leave the delimiter out so it is detected)."
                )
                break
    if hint:
        message += hint
    else:
        example = missing[0]
        message += (
            f" If the file names it differently, map it: --map {example}=<file column>"
            + (" (or --default-type T for a file of one event type)" if "type" in missing else "")
            + "."
        )
    return IngestError(message, [Problem(source.display, None, m, "missing column") for m in missing])


# -- staging: typed values and the first error of each row ------------------------------------------
def _hmac_sql(value_sql: str, key: bytes) -> str:
    """HMAC-SHA256 (RFC 2104) of a text value, in SQL, first 32 hex digits.

    H((K' ^ opad) || H((K' ^ ipad) || m)) with K' the key padded to SHA-256's 64-byte block.
    """
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\0")
    ipad = bytes(b ^ 0x36 for b in key).hex()
    opad = bytes(b ^ 0x5C for b in key).hex()
    inner = f"unhex(sha256(unhex('{ipad}') || encode({value_sql})))"
    return f"CASE WHEN {value_sql} IS NULL THEN NULL ELSE left(sha256(unhex('{opad}') || {inner}), 32) END"


def _scrub_sql(value_sql: str) -> str:
    out = f"regexp_replace({value_sql}, {quote_literal(_EMAIL_RE)}, '[email]', 'g')"
    for pattern in _PHONE_RES:
        out = f"regexp_replace({out}, {quote_literal(pattern)}, '[phone]', 'g')"
    return out


def _event_hash_sql(values: Mapping[str, str]) -> str:
    """md5 over the normalised contract columns, in EVENT_HASH_COLUMNS order.

    Values are rendered in a fixed way (timestamps as epoch microseconds, numbers with printf
    '%.17g') joined by the unit separator; empty and missing are the same after normalisation.
    """
    parts = []
    for name in EVENT_HASH_COLUMNS:
        v = values[name]
        if name == "ts":
            parts.append(f"CAST(epoch_us({v}) AS VARCHAR)")
        elif name in ("amount", "quantity"):
            parts.append(f"coalesce(printf('%.17g', {v}), '')")
        elif name == "rating":
            parts.append(f"coalesce(CAST({v} AS VARCHAR), '')")
        else:
            parts.append(f"coalesce({v}, '')")
    return f"md5(concat_ws(chr(31), {', '.join(parts)}))"


def _stage_select(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    source: _Source,
    plan: _Plan,
    config: IngestConfig,
    pseudonym: bytes | None,
    default_type: str | None,
) -> str:
    """A SELECT of the file's typed rows, each with its first error (NULL for a good row)."""
    naive_is_error = _mixed_timezone_columns(con, contract, source, plan, config)
    values: dict[str, str] = {}
    errors: list[tuple[str, str]] = []
    if source.fmt == "jsonl":
        errors.append(
            (
                "",
                f"CASE WHEN {_JSON} IS NULL THEN 'not valid JSON' "
                f"WHEN json_type({_JSON}) <> 'OBJECT' THEN 'not a JSON object' END",
            )
        )
    for column in contract.columns:
        src = plan.sources.get(column.name)
        ref = quote_ident(src) if src is not None else None
        default = (
            quote_literal(default_type)
            if column.name == "type" and default_type is not None
            else None
        )
        sql = column_sql(
            column,
            ref,
            source.columns.get(src) if src is not None else None,
            timezone=config.naive_timezone,
            naive_is_error=naive_is_error.get(column.name),
            default=default,
        )
        value = sql.value
        if column.name == "user_id" and pseudonym is not None:
            value = _hmac_sql(f"({value})", pseudonym)
        if column.type is ColumnType.FREE_TEXT and contract.kind == "events" and config.scrub_text:
            value = _scrub_sql(f"({value})")
        values[column.name] = value
        if sql.error != "NULL":
            errors.append((column.name, sql.error))

    # Inner query: typed values and one error column per checked column; outer: the first error.
    inner = [f"{_ROW}"]
    inner += [f"{v} AS {quote_ident(name)}" for name, v in values.items()]
    inner += [
        f"NULLIF(trim(CAST({quote_ident(src)} AS VARCHAR)), '') AS {quote_ident('attr:' + name)}"
        for name, src in plan.attributes.items()
    ]
    inner += [f"{e} AS __cg_e{i}" for i, (_, e) in enumerate(errors)]
    outer = [f"* EXCLUDE ({', '.join(f'__cg_e{i}' for i in range(len(errors)))})" if errors else "*"]
    if errors:
        outer.append(
            "CASE "
            + " ".join(
                f"WHEN __cg_e{i} IS NOT NULL THEN {quote_literal(name) if name else 'NULL'}"
                for i, (name, _) in enumerate(errors)
            )
            + f" END AS {_ERR_COL}"
        )
        outer.append(f"coalesce({', '.join(f'__cg_e{i}' for i in range(len(errors)))}) AS {_ERR}")
    else:
        outer += [f"CAST(NULL AS VARCHAR) AS {_ERR_COL}", f"CAST(NULL AS VARCHAR) AS {_ERR}"]
    return f"SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM {source.view})"


def _stage(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    source: _Source,
    plan: _Plan,
    select: str,
    index: int,
) -> tuple[str, int, int, bool | None]:
    """The file's typed rows with their first error (``select``), as a temp table or view.

    Returns its name, the number of rows, the number of bad rows, and (events into an empty
    table) whether any good rows may share an event id (None: not looked at yet).
    """
    stage = f"__cg_stage_{index}"
    repeats: bool | None = None
    try:
        if contract.kind == "events":
            # Events are the big table: one counting pass, then the insert reads the file again
            # through a view. A clean file is never materialised; only one with bad rows is,
            # for the error report. Rows without an event_id get the content hash; when every
            # row has one, the view leaves the hash out (computing it costs ~1.5 s per 10M rows).
            given = "event_id" in plan.sources
            stored = _events_stored(con)
            if given and not stored:
                # Into an empty table the same pass can also tell whether ids repeat (see
                # _repeats_among), which saves reading the file once more.
                arrays = con.execute(
                    f"SELECT hash(event_id) AS h, {_ERR} IS NULL AS ok, event_id IS NULL AS no_id "
                    f"FROM ({select})").fetchnumpy()
                ok = np.asarray(arrays["ok"], dtype=bool)
                n_rows, n_bad = len(ok), int((~ok).sum())
                n_without_id = int((np.asarray(arrays["no_id"], dtype=bool) & ok).sum())
                if not n_without_id:
                    repeats = _repeats_among(np.asarray(arrays["h"])[ok])
            else:
                n_rows, n_bad, n_without_id = con.execute(
                    f"SELECT count(*), count({_ERR}), "
                    f"{'count(*) FILTER (event_id IS NULL)' if given else 'count(*)'} "
                    f"FROM ({select})"
                ).fetchone()
            if n_without_id:
                hashed = _event_hash_sql({name: quote_ident(name) for name in EVENT_HASH_COLUMNS})
                event_id = f"coalesce(event_id, {hashed})" if given else hashed
                select = f"SELECT * REPLACE ({event_id} AS event_id) FROM ({select})"
            kind = "TABLE" if n_bad else "VIEW"
            con.execute(f"CREATE OR REPLACE TEMP {kind} {stage} AS {select}")
        else:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {stage} AS {select}")
            n_rows, n_bad = con.execute(f"SELECT count(*), count({_ERR}) FROM {stage}").fetchone()
    except (duckdb.IOException, duckdb.InvalidInputException) as exc:
        # Parquet is read lazily, so a corrupt file can first fail here.
        if source.fmt != "parquet":
            raise
        raise _read_error(exc, source.path, source.display, source.fmt, "utf-8") from exc
    return stage, n_rows, n_bad, repeats


def _events_stored(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the events table holds any row (without counting them all)."""
    return bool(con.execute("SELECT count(*) FROM (SELECT 1 FROM events LIMIT 1)").fetchone()[0])


def _append_if_clean(
    con: duckdb.DuckDBPyConnection, source: _Source, plan: _Plan, select: str, batch_id: str
) -> int | None:
    """Load a file of events into the empty table in one pass, if the file turns out clean.

    The usual path reads a file twice: once to count bad rows and repeated ids, once to insert.
    Into an empty table the insert can go first: it writes the good rows, and the file was clean
    when it wrote them all (its row count is in the Parquet metadata, a cheap count elsewhere) and
    no two share an id. Then the rows stay and the file was read once; otherwise they are deleted
    again (the table held nothing else) and the caller takes the usual path, which reports the
    bad rows and keeps first occurrences. Returns the rows added, or None for "take the usual path".
    """
    try:
        (n_rows,) = con.execute(f"SELECT count(*) FROM {source.view}").fetchone()
        if n_rows == 0:
            return None
        hashed = _event_hash_sql({name: quote_ident(name) for name in EVENT_HASH_COLUMNS})
        event_id = (f"CASE WHEN event_id IS NULL THEN {hashed} ELSE event_id END"
                    if "event_id" in plan.sources else hashed)
        columns = ", ".join(quote_ident(c) for c in _EVENT_COLUMNS)
        # Row order in the table means nothing; letting DuckDB write out of order saves memory.
        con.execute("SET preserve_insertion_order = false")
        try:
            (added,) = con.execute(
                f"INSERT INTO events ({columns}, batch_id) SELECT {columns}, ? "
                f"FROM (SELECT * REPLACE ({event_id} AS event_id) FROM ({select})) "
                f"WHERE {_ERR} IS NULL",
                [batch_id],
            ).fetchone()
        finally:
            con.execute("RESET preserve_insertion_order")
    except (duckdb.IOException, duckdb.InvalidInputException) as exc:
        # Parquet is read lazily, so a corrupt file can first fail here.
        if source.fmt != "parquet":
            raise
        raise _read_error(exc, source.path, source.display, source.fmt, "utf-8") from exc
    if added == n_rows and not _repeats_among(
        con.execute("SELECT hash(event_id) AS h FROM events").fetchnumpy()["h"]
    ):
        return added
    con.execute("DELETE FROM events")
    return None


def _mixed_timezone_columns(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    source: _Source,
    plan: _Plan,
    config: IngestConfig,
) -> dict[str, str]:
    """Text timestamp columns whose file mixes naive and offset values, when that is an error."""
    if config.timezone is not None:
        return {}
    checks = []
    for column in contract.columns:
        src = plan.sources.get(column.name)
        if column.type is not ColumnType.TIMESTAMP or src is None:
            continue
        if source.columns[src].upper() not in ("VARCHAR", "JSON"):
            continue
        naive = column_sql(column, quote_ident(src), "VARCHAR").naive
        text = f"NULLIF(trim({quote_ident(src)}), '')"
        # Only values that parse count: an unparsable one is reported as such, not as 'mixed'.
        checks.append(
            (
                column.name,
                f"count(*) FILTER ({naive} AND TRY_CAST({text} AS TIMESTAMP) IS NOT NULL)",
                f"count(*) FILTER (NOT {naive} AND TRY_CAST({text} AS TIMESTAMPTZ) IS NOT NULL)",
            )
        )
    if not checks:
        return {}
    row = con.execute(
        "SELECT " + ", ".join(f"{a}, {b}" for _, a, b in checks) + f" FROM {source.view}"
    ).fetchone()
    mixed = {}
    for i, (name, _, _) in enumerate(checks):
        n_naive, n_offset = row[2 * i], row[2 * i + 1]
        if n_naive and n_offset:
            mixed[name] = (
                "has no UTC offset, but other rows of this file do, so its time zone is unknown; "
                "add the offset, or set ingest.timezone in churnguard.toml to the zone such "
                "times are in"
            )
    return mixed


# -- problems on the error path ------------------------------------------------------------------------
def _first_problems(
    con: duckdb.DuckDBPyConnection, stage: str, source: _Source, limit: int
) -> list[Problem]:
    rows = con.execute(
        f"SELECT {_ROW}, {_ERR_COL}, {_ERR} FROM {stage} WHERE {_ERR} IS NOT NULL "
        f"ORDER BY {_ROW} LIMIT {int(limit)}"
    ).fetchall()
    lines = _line_numbers(source, [r for r, _, _ in rows]) if source.fmt != "parquet" else {}
    problems = []
    for row, column, reason in rows:
        line, text = lines.get(row, (None, None))
        if reason == "not valid JSON" and text is not None:
            try:
                text.decode("utf-8")
            except UnicodeDecodeError:
                reason = "not valid UTF-8 text; JSON files must be UTF-8"
        problems.append(Problem(source.display, row, column, reason, line))
    return problems


def _line_numbers(source: _Source, rows: Sequence[int]) -> dict[int, tuple[int, bytes | None]]:
    """Error path only: the physical line where each data row starts, by re-reading the file.

    The numbering matches DuckDB's: blank lines are not rows; the CSV header is line 1.
    """
    wanted = set(rows)
    if not wanted:
        return {}
    last = max(wanted)
    found: dict[int, tuple[int, bytes | None]] = {}
    if source.fmt == "jsonl":
        with _open_binary(source.path) as fh:
            row = 0
            for number, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                row += 1
                if row in wanted:
                    found[row] = (number, raw.rstrip(b"\r\n"))
                if row >= last:
                    break
        return found
    delimiter, quote, _escape = source.csv_dialect or _sniff(source)
    with _open_binary(source.path) as fh:
        text = io.TextIOWrapper(fh, encoding="utf-8", errors="replace", newline="")
        reader = csv.reader(text, delimiter=delimiter, quotechar=quote or '"')
        next(reader, None)  # header
        row = 0
        start = reader.line_num + 1
        for record in reader:
            if record:
                row += 1
                if row in wanted:
                    found[row] = (start, None)
                if row >= last:
                    break
            start = reader.line_num + 1
    return found


def _sniff(source: _Source) -> tuple[str, str, str]:
    try:
        con = duckdb.connect()
        delimiter, quote, escape = con.execute(
            "SELECT Delimiter, Quote, Escape FROM sniff_csv(?)", [str(source.path)]
        ).fetchone()
        con.close()
    except duckdb.Error:
        return ",", '"', '"'
    quote = '"' if quote in ("", "(empty)") else quote
    return delimiter, quote, escape


def _rejection(rejected: list[tuple[str, int, list[Problem]]]) -> IngestError:
    total = sum(n for _, n, _ in rejected)
    parts = []
    all_problems: list[Problem] = []
    for display, n_bad, problems in rejected:
        parts.append(f"{display}: {n_bad} bad row{'s' if n_bad != 1 else ''}")
        parts += [f"  {p}" for p in problems]
        if n_bad > len(problems):
            parts.append(f"  ... and {n_bad - len(problems)} more")
        all_problems += problems
    head = (
        f"{total} bad row{'s' if total != 1 else ''}, so nothing was loaded (on_error=reject):"
    )
    tail = (
        "Fix the rows, or load the good ones with --on-error skip (drop the bad rows) or "
        "--on-error quarantine (keep them aside for review)."
    )
    return IngestError("\n".join([head, *parts, tail]), all_problems)


# -- writing -----------------------------------------------------------------------------------------
_EVENT_COLUMNS = CONTRACTS["events"].names


def _append_events(
    con: duckdb.DuckDBPyConnection,
    stage: str,
    batch_id: str,
    totals: _Totals,
    good: int,
    *,
    clean: bool = False,
    repeats: bool | None = None,
) -> None:
    """Append the new events: not already stored (by event_id), first occurrence in the file.

    ``clean``: the file has no bad rows, so the error columns need not be computed again.
    ``repeats``: whether good rows may share an id, when already known (None: find out).

    Into an empty table every good row is new, and only repeats within the file need finding.
    Otherwise the rows not yet stored are set aside first (one anti-join), so a file that was
    loaded before costs one pass and writes nothing, and repeats are looked for among the new
    rows only.
    """
    columns = ", ".join(quote_ident(c) for c in _EVENT_COLUMNS)
    good_rows = "TRUE" if clean else f"{_ERR} IS NULL"
    stored = _events_stored(con)
    source = stage
    if stored:
        source = f"{stage}_new"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {source} AS SELECT {_ROW}, {columns} FROM {stage} s "
            f"WHERE {good_rows} AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = s.event_id)"
        )
        good_rows = "TRUE"
    try:
        (fresh,) = con.execute(f"SELECT count(*) FROM {source} WHERE {good_rows}").fetchone() \
            if stored else (good,)
        if fresh == 0:
            added = 0
        else:
            added = _insert_first_occurrences(con, source, good_rows, columns, batch_id,
                                              repeats=None if stored else repeats)
    finally:
        if stored:
            _drop(con, source)
    totals.added += added
    totals.duplicate += good - added


def _repeats_among(hashes: np.ndarray) -> bool:
    """Whether any two of these 64-bit id hashes are equal (a repeated id, or a collision).

    Distinct hashes prove the ids distinct; sorting 8-byte hashes in numpy is 3x faster than
    DuckDB's distinct count over the id strings (0.4 s for 10M). An equal pair sends the caller
    down the exact path, which groups the ids themselves.

    >>> _repeats_among(np.array([3, 1, 2], dtype=np.uint64)), _repeats_among(np.array([1, 1]))
    (False, True)
    """
    hashes = np.sort(hashes)
    return bool((hashes[1:] == hashes[:-1]).any())


def _insert_first_occurrences(con: duckdb.DuckDBPyConnection, source: str, good_rows: str,
                              columns: str, batch_id: str, *, repeats: bool | None = None) -> int:
    if repeats is None:
        repeats = _repeats_among(con.execute(
            f"SELECT hash(event_id) AS h FROM {source} WHERE {good_rows}").fetchnumpy()["h"])
    exclude = ""
    if repeats:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {source}_repeats AS SELECT event_id, "
            f"min({_ROW}) AS first_row FROM {source} WHERE {good_rows} GROUP BY event_id "
            "HAVING count(*) > 1"
        )
        exclude = (f"AND NOT EXISTS (SELECT 1 FROM {source}_repeats d "
                   f"WHERE d.event_id = s.event_id AND d.first_row <> s.{_ROW})")
    # Row order in the table means nothing; letting DuckDB write out of order saves memory.
    con.execute("SET preserve_insertion_order = false")
    try:
        (added,) = con.execute(
            f"INSERT INTO events ({columns}, batch_id) "
            f"SELECT {columns}, ? FROM {source} s WHERE {good_rows} {exclude}",
            [batch_id],
        ).fetchone()
    finally:
        con.execute("RESET preserve_insertion_order")
        if exclude:
            con.execute(f"DROP TABLE IF EXISTS {source}_repeats")
    return added


def _upsert(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    stage: str,
    plan: _Plan,
    batch_id: str,
    totals: _Totals,
) -> None:
    """Keyed upsert: last row per key wins; identical rows are duplicates, changed rows updates."""
    key = contract.key
    present = [c for c in contract.names if c not in key and c in plan.sources]
    attrs = list(plan.attributes)
    table = contract.table
    on = " AND ".join(f"t.{quote_ident(k)} = c.{quote_ident(k)}" for k in key)
    key_list = ", ".join(quote_ident(k) for k in key)
    cur = f"{stage}_cur"
    good = con.execute(f"SELECT count(*) FROM {stage} WHERE {_ERR} IS NULL").fetchone()[0]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {cur} AS SELECT * FROM {stage} WHERE {_ERR} IS NULL "
        f"QUALIFY row_number() OVER (PARTITION BY {key_list} ORDER BY {_ROW} DESC) = 1"
    )
    try:
        changed_main = " OR ".join(
            f"t.{quote_ident(c)} IS DISTINCT FROM c.{quote_ident(c)}" for c in present
        ) or "false"
        attr_changed = "false"
        attr_long = f"{stage}_attrs"
        if attrs:
            entity = key[0]
            attr_table = contract.attributes_table
            unions = " UNION ALL ".join(
                f"SELECT {quote_ident(entity)} AS entity, {quote_literal(a)} AS name, "
                f"{quote_ident('attr:' + a)} AS value FROM {cur}"
                for a in attrs
            )
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {attr_long} AS "
                f"SELECT n.entity, n.name, n.value FROM ({unions}) n "
                f"LEFT JOIN {attr_table} a ON a.{quote_ident(entity)} = n.entity AND a.name = n.name "
                "WHERE n.value IS DISTINCT FROM a.value"
            )
            attr_changed = (
                f"EXISTS (SELECT 1 FROM {attr_long} x WHERE x.entity = c.{quote_ident(entity)})"
            )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {cur}_status AS SELECT c.*, "
            f"CASE WHEN t.{quote_ident(key[0])} IS NULL THEN 'added' "
            f"WHEN {changed_main} OR {attr_changed} THEN 'updated' ELSE 'duplicate' END AS __cg_status "
            f"FROM {cur} c LEFT JOIN {table} t ON {on}"
        )
        added, updated, same = con.execute(
            f"SELECT count(*) FILTER (__cg_status = 'added'), count(*) FILTER (__cg_status = 'updated'), "
            f"count(*) FILTER (__cg_status = 'duplicate') FROM {cur}_status"
        ).fetchone()
        cols = [*key, *present]
        col_list = ", ".join(quote_ident(c) for c in cols)
        if added:
            con.execute(
                f"INSERT INTO {table} ({col_list}, batch_id) SELECT {col_list}, ? "
                f"FROM {cur}_status WHERE __cg_status = 'added'",
                [batch_id],
            )
        if updated:
            sets = ", ".join(f"{quote_ident(c)} = u.{quote_ident(c)}" for c in present)
            sets = f"{sets + ', ' if sets else ''}batch_id = ?"
            match = " AND ".join(f"{table}.{quote_ident(k)} = u.{quote_ident(k)}" for k in key)
            con.execute(
                f"UPDATE {table} SET {sets} FROM (SELECT * FROM {cur}_status "
                f"WHERE __cg_status = 'updated') u WHERE {match}",
                [batch_id],
            )
        if attrs:
            entity = key[0]
            attr_table = contract.attributes_table
            con.execute(
                f"DELETE FROM {attr_table} WHERE ({quote_ident(entity)}, name) IN "
                f"(SELECT (entity, name) FROM {attr_long})"
            )
            con.execute(
                f"INSERT INTO {attr_table} ({quote_ident(entity)}, name, value, batch_id) "
                f"SELECT entity, name, value, ? FROM {attr_long} WHERE value IS NOT NULL",
                [batch_id],
            )
    finally:
        for name in (f"{cur}_status", f"{stage}_attrs", cur):
            _drop(con, name)
    totals.added += added
    totals.updated += updated
    totals.duplicate += same + (good - added - updated - same)


def _quarantine(
    con: duckdb.DuckDBPyConnection, kind: str, stage: str, source: _Source, batch_id: str
) -> None:
    """Store the bad rows with where and why, and the raw record as JSON text."""
    if source.fmt == "jsonl":
        record = f"CAST(r.{_JSON} AS VARCHAR)"
    else:
        fields = ", ".join(
            f"{quote_ident(name)} := r.{quote_ident(name)}" for name in source.columns
        )
        record = f"CAST(to_json(struct_pack({fields})) AS VARCHAR)"
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute(
        f"INSERT INTO quarantine SELECT ?, ?, ?, s.{_ROW}, s.{_ERR_COL}, s.{_ERR}, {record}, ? "
        f"FROM {stage} s JOIN {source.view} r ON r.{_ROW} = s.{_ROW} WHERE s.{_ERR} IS NOT NULL",
        [batch_id, kind, source.display, now],
    )
    if source.fmt == "jsonl":
        _fill_invalid_json_records(con, stage, source, batch_id)


def _fill_invalid_json_records(
    con: duckdb.DuckDBPyConnection, stage: str, source: _Source, batch_id: str
) -> None:
    """Error path: lines that are not JSON have no parsed record; keep their raw text instead."""
    rows = [
        r
        for (r,) in con.execute(
            f"SELECT {_ROW} FROM {stage} WHERE {_ERR} = 'not valid JSON' ORDER BY {_ROW}"
        ).fetchall()
    ]
    if not rows:
        return
    lines = _line_numbers(source, rows)
    updates = [
        (json.dumps(text.decode("utf-8", errors="replace")), row)
        for row, (_, text) in lines.items()
        if text is not None
    ]
    con.executemany(
        "UPDATE quarantine SET record = ? WHERE batch_id = ? AND file = ? AND row_number = ?",
        [(rec, batch_id, source.display, row) for rec, row in updates],
    )
