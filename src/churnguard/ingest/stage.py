"""Staging: the SELECT that types each row of a file against its contract and gives it its first
error (NULL for a good row), and the temp table or view that holds the result."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import duckdb
import numpy as np

from churnguard.config import IngestConfig
from churnguard.ingest.columns import _Plan
from churnguard.ingest.pseudonymise import _contact_sql, _hmac_sql, _pseudonym_key, _scrub_sql
from churnguard.ingest.read import _JSON, _ROW, _Source, _read_error
from churnguard.schema import (
    EVENT_HASH_COLUMNS,
    NEGATIVE_AMOUNT_TYPES,
    ColumnType,
    Contract,
    NumberBound,
    column_sql,
    quote_ident,
    quote_literal,
)


# Columns a stage adds: the column of a row's first error, and the error (NULL: a good row).
_ERR_COL = "__cg_err_col"
_ERR = "__cg_err"


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
    now: dt.datetime,
) -> str:
    """A SELECT of the file's typed rows, each with its first error (NULL for a good row).

    ``now`` is the time of the ingest (naive UTC): events later than it plus
    ``config.max_future_minutes`` are bad."""
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
            bound=(_bound(column.name, config, values.get("type"))
                   if column.type is ColumnType.NUMBER else None),
            decimal_comma=config.decimal_comma,
        )
        value = sql.value
        if column.name == "user_id" and pseudonym is not None:
            value = _hmac_sql(f"({value})", pseudonym)
        if column.type is ColumnType.FREE_TEXT and contract.kind == "events" and config.scrub_text:
            value = _scrub_sql(f"({value})")
        values[column.name] = value
        if sql.error != "NULL":
            errors.append((column.name, sql.error))

    if contract.kind == "events" and config.future_events == "reject":
        errors.append(("ts", _future_error(values["ts"], now, config.max_future_minutes)))
    # Inner query: typed values and one error column per checked column; outer: the first error.
    inner = [f"{_ROW}"]
    inner += [f"{v} AS {quote_ident(name)}" for name, v in values.items()]
    inner += _attribute_values(plan, config, errors)
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


def _future_error(ts: str, now: dt.datetime, minutes: int) -> str:
    """Why an event is bad when it is dated after the ingest time plus ``minutes`` (else NULL)."""
    latest = (now + dt.timedelta(minutes=minutes)).replace(microsecond=0)
    said = (f" (UTC) is in the future: later than the time of this ingest, {now:%Y-%m-%d %H:%M} "
            f"UTC, plus ingest.max_future_minutes ({minutes}); check the clock of the system "
            "that wrote it")
    quote = quote_literal(chr(39))
    return (f"CASE WHEN ({ts}) > TIMESTAMP '{latest:%Y-%m-%d %H:%M:%S}' THEN "
            f"{quote} || strftime(({ts}), '%Y-%m-%d %H:%M:%S') || {quote_literal(chr(39) + said)} END")


def _attribute_values(plan: _Plan, config: IngestConfig, errors: list[tuple[str, str]]) -> list[str]:
    """The attribute columns of the inner SELECT (users, items), and their errors: contact details
    (e-mail addresses, phone and identity numbers) are not features and must not sit in the store
    in clear. A column declared in ingest.pseudonymised_attributes is stored as HMACs; in any
    other column such a value makes the row bad."""
    declared = set(config.pseudonymised_attributes)
    key = _pseudonym_key(config) if declared & set(plan.attributes) else None
    columns = []
    for name, src in plan.attributes.items():
        text = f"NULLIF(trim(CAST({quote_ident(src)} AS VARCHAR)), '')"
        if key is not None and name in declared:
            value = _hmac_sql(text, key)
        else:
            value = text
            errors.append((name, (
                f"CASE WHEN {_contact_sql(text)} THEN "
                f"{quote_literal(_CONTACT_REASON)} END")))
        columns.append(f"{value} AS {quote_ident('attr:' + name)}")
    return columns


_CONTACT_REASON = (
    "holds an e-mail address or a phone or identity number; contact details are not kept as "
    "attributes: leave the column out, or list it in ingest.pseudonymised_attributes in "
    "churnguard.toml to keep a pseudonym (HMAC) of it"
)


def _bound(name: str, config: IngestConfig, event_type: str | None) -> NumberBound:
    """The range of number column ``name``: amounts, prices and costs within ``max_amount``,
    quantities within ``max_quantity``; negative only for an event's amount or quantity when its
    type (the SQL ``event_type``) is a return, whose refund it is."""
    if name == "quantity":
        maximum, setting = config.max_quantity, "ingest.max_quantity"
    else:
        maximum, setting = config.max_amount, "ingest.max_amount"
    if event_type is None or name not in ("amount", "quantity"):
        return NumberBound(maximum=maximum, setting=setting)
    types = ", ".join(quote_literal(t) for t in NEGATIVE_AMOUNT_TYPES)
    return NumberBound(
        maximum=maximum, setting=setting,
        negative_when=f"coalesce(({event_type}) IN ({types}), false)",
        negative_rule=f"only a return (its refund) may have a negative {name}",
    )


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
