"""The data contracts: which columns each kind of input has, their types and allowed values.

This module is the one place that says what a valid row is. For each column type it also builds
the DuckDB SQL that turns a raw value into the stored value and, for a bad value, a sentence that
says what is wrong; ingestion runs those expressions set-based over whole files.

>>> CONTRACTS["events"].required
('user_id', 'ts', 'type')
>>> CONTRACTS["campaigns"].key
('campaign_id', 'user_id')
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

KINDS = ("events", "users", "items", "campaigns", "labels")
FORMATS = ("auto", "csv", "parquet", "jsonl")
ON_ERROR = ("reject", "skip", "quarantine")

# Event types that later stages give a meaning to; any other non-empty type is accepted too.
KNOWN_EVENT_TYPES = (
    "view", "search", "cart_add", "cart_remove", "order", "return", "review",
    "support_ticket", "ticket_resolved", "coupon_redeem", "login", "visit",
)  # fmt: skip

BOOLEAN_TRUE = ("true", "1", "yes")
BOOLEAN_FALSE = ("false", "0", "no")

# One id limit everywhere (files, the REST API's bodies and paths): an id longer than this could be
# stored but never read or erased through the API. Event types share the API's limit.
ID_MAX_CHARS = 256
EVENT_TYPE_MAX_CHARS = 64
# Control characters (C0, DEL, C1: escape sequences, NUL, line breaks) are refused in ids and event
# types, which are shown in terminals, logs and pages as they are stored. RE2 syntax.
CONTROL_CHARACTER_RE = r"[\x00-\x1F\x7F-\x9F]"
# The event types whose amount and quantity may be negative: a return's refund (docs/ingest.md).
NEGATIVE_AMOUNT_TYPES = ("return",)

TIMESTAMP_HINT = "use ISO-8601, e.g. 2024-01-31, 2024-01-31 14:05:00 or 2024-01-31T14:05:00+01:00"


class ColumnType(StrEnum):
    ID = "id"  # text, trimmed; a required id must not be empty
    TEXT = "text"  # text, trimmed; empty means missing
    FREE_TEXT = "free_text"  # text kept as written (reviews, tickets); empty means missing
    EVENT_TYPE = "event_type"  # text, trimmed and lower-cased
    TIMESTAMP = "timestamp"  # stored as naive UTC
    NUMBER = "number"  # finite double
    RATING = "rating"  # whole number 1..5
    BOOLEAN = "boolean"  # true/false, 1/0, yes/no


@dataclass(frozen=True, kw_only=True)
class Column:
    name: str
    type: ColumnType
    required: bool = False


@dataclass(frozen=True, kw_only=True)
class Contract:
    """What one kind of input file holds and where it is stored."""

    kind: str
    table: str
    columns: tuple[Column, ...]
    # Rows with the same key are one entity: a repeat is a duplicate or an update. Events have no
    # key; they are identified by event_id (given, else a content hash) and only ever appended.
    key: tuple[str, ...] = ()
    # Users and items keep unknown extra columns as attributes in this long table.
    attributes_table: str | None = None

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def _columns(spec: str) -> tuple[Column, ...]:
    """Columns from ``"name type [required], ..."``, read like the column list of a CREATE TABLE
    (types are :class:`ColumnType` values).

    >>> [(c.name, c.type.name, c.required) for c in _columns("user_id id required, amount number")]
    [('user_id', 'ID', True), ('amount', 'NUMBER', False)]
    """
    columns = []
    for item in spec.split(","):
        name, type_, *flags = item.split()
        if flags not in ([], ["required"]):
            raise ValueError(f"column spec {item.strip()!r}: expected 'name type [required]'")
        columns.append(Column(name=name, type=ColumnType(type_), required=flags == ["required"]))
    return tuple(columns)


def _contract(kind: str, columns: str, *, key: tuple[str, ...] = (),
              attributes_table: str | None = None) -> Contract:
    # Each kind is stored in the table of its name.
    return Contract(kind=kind, table=kind, columns=_columns(columns), key=key,
                    attributes_table=attributes_table)


CONTRACTS: dict[str, Contract] = {c.kind: c for c in (
    _contract("events",
              "user_id id required, ts timestamp required, type event_type required, event_id id, "
              "item_id id, category text, amount number, quantity number, text free_text, "
              "rating rating, channel text, session_id id"),
    _contract("users", "user_id id required, signup_ts timestamp",
              key=("user_id",), attributes_table="user_attributes"),
    _contract("items", "item_id id required, category text, price number, title free_text",
              key=("item_id",), attributes_table="item_attributes"),
    _contract("campaigns",
              "user_id id required, campaign_id id required, action text required, "
              "assigned_at timestamp required, is_control boolean required, cost number, "
              "channel text",
              key=("campaign_id", "user_id")),
    _contract("labels", "user_id id required, as_of timestamp required, churned boolean required",
              key=("user_id", "as_of")),
)}

# The columns of events that make up its content hash, in a fixed order (never reorder: the hash
# is the identity of events loaded without an event_id).
EVENT_HASH_COLUMNS = (
    "user_id", "ts", "type", "item_id", "category", "amount", "quantity", "text", "rating",
    "channel", "session_id",
)  # fmt: skip


# -- SQL for one column ----------------------------------------------------------------------------
def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_STRING_TYPES = ("VARCHAR", "JSON")
_NATIVE_TIMESTAMP_TYPES = ("TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATE")
T = ColumnType


def _shown(text_sql: str) -> str:
    """The raw value quoted for an error message, cut short when long."""
    return (
        f"'''' || CASE WHEN length({text_sql}) > 60 THEN left({text_sql}, 57) || '...' "
        f"ELSE {text_sql} END || ''''"
    )


def _has_offset(text_sql: str) -> str:
    # An offset or zone follows the time part: 'Z', '+01:00', '-0800', ' UTC', ' Europe/Berlin'.
    # The date part is skipped so the '-' of '2024-01-31' does not count.
    return f"regexp_matches(substr({text_sql}, 11), '[zZ]$|[+-][0-9]|[A-Za-z]{{2,}}')"


@dataclass(frozen=True)
class ColumnSql:
    """SQL for one contract column over one source column.

    ``value`` is the stored value (NULL when missing or bad); ``error`` is NULL for a good value and
    otherwise a sentence saying what is wrong; ``naive`` (timestamps read from text only) is true
    for a value that carries no UTC offset, so a file mixing both kinds can be found.
    """

    value: str
    error: str
    naive: str | None = None


def column_sql(
    column: Column,
    source: str | None,
    source_type: str | None,
    *,
    timezone: str = "UTC",
    naive_is_error: str | None = None,
    default: str | None = None,
    bound: NumberBound | None = None,
    decimal_comma: bool = False,
) -> ColumnSql:
    """Build the SQL that validates and normalises ``column`` read from ``source``.

    ``source`` is a quoted column reference (None when the file lacks the column); ``source_type``
    its DuckDB type. Naive timestamps are taken to be in ``timezone``; when ``naive_is_error`` is
    given, a naive timestamp is bad and that is the reason. ``default`` (a SQL literal) fills a
    missing value. ``bound`` limits a number; ``decimal_comma`` reads numbers written as text
    with a decimal comma (``1.234,50``), see :func:`number_text_sql`.
    """
    if source is None:
        value = default or "NULL"
        if column.required and default is None:
            # Ingestion reports a missing required column before it builds any SQL.
            raise ValueError(f"required column {column.name!r} has no source")
        return ColumnSql(value=f"CAST({value} AS {_stored_type(column.type)})", error="NULL")

    base_type = (source_type or "VARCHAR").upper()
    is_text = base_type in _STRING_TYPES
    text = f"NULLIF(trim(CAST({source} AS VARCHAR)), '')"
    # Text must be trimmed before it can be judged empty; a typed Parquet column is empty when NULL.
    absent = f"{text} IS NULL" if is_text else f"{source} IS NULL"
    shown = _shown(text)
    naive = None
    t = column.type

    if t in (T.ID, T.TEXT, T.EVENT_TYPE, T.FREE_TEXT):
        if t is T.FREE_TEXT:
            value = f"CASE WHEN {text} IS NULL THEN NULL ELSE CAST({source} AS VARCHAR) END"
        elif t is T.EVENT_TYPE:
            value = f"lower({text})"
        else:
            value = text
        if default is not None:
            value = f"coalesce({value}, {default})"
            absent = "false"
        bad = _identifier_error(t, text) if t in (T.ID, T.EVENT_TYPE) else "NULL"
    elif t is T.TIMESTAMP:
        value, bad, naive = _timestamp_sql(source, base_type, text, timezone, naive_is_error)
    elif t is T.NUMBER:
        number = (f"TRY_CAST({number_text_sql(text, decimal_comma=decimal_comma)} AS DOUBLE)"
                  if is_text else f"TRY_CAST({source} AS DOUBLE)")
        ok = f"isfinite({number})"
        bad = (
            f"CASE WHEN {absent} THEN NULL "
            f"WHEN {number} IS NULL THEN {shown} || ' is not a number' "
            f"WHEN NOT isfinite({number}) THEN {shown} || ' is not a finite number' "
        )
        if bound is not None:
            top, negative_ok = bound.maximum, bound.negative_when
            ok = f"({ok} AND abs({number}) <= {top!r} AND ({number} >= 0 OR {negative_ok}))"
            too_big = (f" is out of range; {column.name} must lie within ±{top:g} "
                       f"({bound.setting} in churnguard.toml)")
            bad += (
                f"WHEN abs({number}) > {top!r} THEN {shown} || {quote_literal(too_big)} "
                f"WHEN {number} < 0 AND NOT ({negative_ok}) THEN {shown} || "
                f"{quote_literal(f' is negative; {bound.negative_rule}')} "
            )
        bad += "END"
        value = f"CASE WHEN {ok} THEN {number} END"
    elif t is T.RATING:
        number = f"TRY_CAST({text} AS DOUBLE)" if is_text else f"TRY_CAST({source} AS DOUBLE)"
        ok = f"({number} BETWEEN 1 AND 5 AND {number} = floor({number}))"
        bad = (
            f"CASE WHEN {absent} THEN NULL WHEN NOT coalesce({ok}, false) THEN "
            f"{shown} || ' is not a rating; ratings are whole numbers from 1 to 5' END"
        )
        value = f"CASE WHEN {ok} THEN CAST({number} AS TINYINT) END"
    elif t is T.BOOLEAN:
        if base_type == "BOOLEAN":
            value = source
        elif not is_text:
            value = f"CASE WHEN {source} = 1 THEN true WHEN {source} = 0 THEN false END"
        else:
            low = f"lower({text})"
            trues = ", ".join(quote_literal(v) for v in BOOLEAN_TRUE)
            falses = ", ".join(quote_literal(v) for v in BOOLEAN_FALSE)
            value = f"CASE WHEN {low} IN ({trues}) THEN true WHEN {low} IN ({falses}) THEN false END"
        bad = (
            f"CASE WHEN NOT ({absent}) AND ({value}) IS NULL THEN {shown} || "
            f"' is not a yes/no value; use true/false, 1/0 or yes/no' END"
        )
    else:  # pragma: no cover - every ColumnType is handled above
        raise AssertionError(t)

    if column.required:
        empty_reason = quote_literal(f"is empty; every row needs a {column.name}")
        bad = f"CASE WHEN {absent} THEN {empty_reason} ELSE {bad} END"
    return ColumnSql(value=value, error=bad, naive=naive)


@dataclass(frozen=True, kw_only=True)
class NumberBound:
    """The range of a number column: at most ``maximum`` in size (the churnguard.toml
    ``setting`` that says so) and negative only where the SQL condition ``negative_when`` holds
    (``negative_rule`` says when, for the message)."""

    maximum: float
    setting: str
    negative_when: str = "false"
    negative_rule: str = "it must not be negative"


def _identifier_error(t: ColumnType, text: str) -> str:
    """Why an id or event type is bad (NULL when it is fine): too long, or a control character."""
    limit, what = (ID_MAX_CHARS, "ids") if t is T.ID else (EVENT_TYPE_MAX_CHARS, "event types")
    return (
        f"CASE WHEN length({text}) > {limit} THEN 'is ' || length({text}) || "
        f"{quote_literal(f' characters long; {what} are at most {limit} characters')} "
        f"WHEN regexp_matches({text}, {quote_literal(CONTROL_CHARACTER_RE)}) THEN "
        f"{quote_literal(f'holds a control character; {what} must be printable text')} END"
    )


# Currency signs a shop's export may write around an amount; the codes are those of the signs.
_CURRENCY = r"(?:[$€£¥￥₩₹₽]|元|RMB|CNY|USD|EUR|GBP|JPY)"


def number_text_sql(text: str, *, decimal_comma: bool = False) -> str:
    """SQL that turns a number written for people (``￥1,234.50``, ``-$12``, ``1 234,50 €``) into
    one DuckDB can cast: a currency sign or code before or after it goes, and so do thousands
    separators, but only where they group digits by three (``1,5`` stays unreadable rather than
    becoming 15). With ``decimal_comma`` the comma is the decimal mark and ``.`` or a space
    groups thousands (European exports); a ``.`` that does not group thousands is then bad.

    >>> import duckdb
    >>> def read(value, **kw):
    ...     sql = number_text_sql(quote_literal(value), **kw)
    ...     return duckdb.connect().execute(f"SELECT TRY_CAST({sql} AS DOUBLE)").fetchone()[0]
    >>> read("￥1,234.50"), read("-$12"), read("1,5"), read("1e3")
    (1234.5, -12.0, None, 1000.0)
    >>> read("1.234,50 €", decimal_comma=True), read("3.5", decimal_comma=True)
    (1234.5, None)
    """
    spaces = r"[\s\x{00A0}\x{202F}]*"
    bare = (
        f"regexp_replace(regexp_replace({text}, {quote_literal('^([+-]?)' + spaces + _CURRENCY + spaces)}, "
        f"'\\1'), {quote_literal(spaces + _CURRENCY + '$')}, '')"
    )
    if decimal_comma:
        grouped = r"[+-]?[0-9]{1,3}([. \x{00A0}\x{202F}][0-9]{3})*(,[0-9]+)?"
        return (
            f"CASE WHEN regexp_full_match({bare}, {quote_literal(grouped)}) THEN "
            f"replace(regexp_replace({bare}, '[. \\x{{00A0}}\\x{{202F}}]', '', 'g'), ',', '.') "
            f"WHEN contains({bare}, '.') OR contains({bare}, ',') THEN NULL ELSE {bare} END"
        )
    grouped = r"[+-]?[0-9]{1,3}([, \x{00A0}\x{202F}][0-9]{3})+(\.[0-9]*)?"
    return (
        f"CASE WHEN regexp_full_match({bare}, {quote_literal(grouped)}) THEN "
        f"regexp_replace({bare}, '[, \\x{{00A0}}\\x{{202F}}]', '', 'g') ELSE {bare} END"
    )


def _timestamp_sql(
    source: str, base_type: str, text: str, timezone: str, naive_is_error: str | None
) -> tuple[str, str, str | None]:
    def from_local(naive_sql: str) -> str:
        if timezone.upper() == "UTC":
            return naive_sql
        return f"timezone('UTC', timezone({quote_literal(timezone)}, {naive_sql}))"

    if base_type in _NATIVE_TIMESTAMP_TYPES:
        return from_local(f"CAST({source} AS TIMESTAMP)"), "NULL", None
    if base_type.startswith("TIMESTAMP WITH TIME ZONE") or base_type == "TIMESTAMPTZ":
        return f"timezone('UTC', {source})", "NULL", None

    has_offset = _has_offset(text)
    naive = f"({text} IS NOT NULL AND NOT {has_offset})"
    value = (
        f"CASE WHEN {text} IS NULL THEN NULL "
        f"WHEN {has_offset} THEN timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ)) "
        f"ELSE {from_local(f'TRY_CAST({text} AS TIMESTAMP)')} END"
    )
    bad = (
        f"CASE WHEN {text} IS NOT NULL AND ({value}) IS NULL THEN "
        f"'cannot parse ' || {_shown(text)} || ' as a timestamp; {TIMESTAMP_HINT}' "
    )
    if naive_is_error is not None:
        bad += f"WHEN {naive} THEN {_shown(text)} || ' ' || {quote_literal(naive_is_error)} "
    bad += "END"
    return value, bad, naive


def _stored_type(t: ColumnType) -> str:
    return {
        T.TIMESTAMP: "TIMESTAMP",
        T.NUMBER: "DOUBLE",
        T.RATING: "TINYINT",
        T.BOOLEAN: "BOOLEAN",
    }.get(t, "VARCHAR")
