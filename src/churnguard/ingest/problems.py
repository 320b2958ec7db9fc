"""Bad rows: the first few as problems with file, row, line and column; the rejection message;
and quarantine, which keeps them aside with their raw record."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence

import duckdb

from churnguard.ingest.pseudonymise import _hmac_sql, _scrub_sql
from churnguard.ingest.read import _JSON, _ROW, _Source, _open_binary
from churnguard.ingest.results import IngestError, Problem
from churnguard.ingest.stage import _ERR, _ERR_COL
from churnguard.schema import quote_ident


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
    # A bad row may hold a field far beyond the csv module's default limit (128 KiB): DuckDB read
    # it, so the error path must too.
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, 1 << 30))
    try:
        _csv_line_numbers(source, delimiter, quote, wanted, last, found)
    finally:
        csv.field_size_limit(limit)
    return found


def _csv_line_numbers(source: _Source, delimiter: str, quote: str, wanted: set[int], last: int,
                      found: dict[int, tuple[int, bytes | None]]) -> None:
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


def _quarantine(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    stage: str,
    source: _Source,
    batch_id: str,
    *,
    user_id_column: str | None,
    pseudonym: bytes | None,
    scrub: bool,
) -> None:
    """Store the bad rows with where and why, and the record as JSON text, private as a stored
    row is: the field that holds the user id pseudonymised (``pseudonym``, the HMAC key, when
    ingest.pseudonymise is on), e-mail addresses and phone numbers scrubbed from every other text
    field and from the reason (``scrub``: ingest.scrub_text), since a bad row is bad precisely
    because something unexpected may sit in any of its fields."""
    fields = []
    for name, type_ in source.columns.items():
        ref = f"r.{quote_ident(name)}"
        if name == user_id_column and pseudonym is not None:
            # As a stored row has it: trimmed, then the HMAC (erasure finds it by that form).
            value = _hmac_sql(f"NULLIF(trim(CAST({ref} AS VARCHAR)), '')", pseudonym)
        elif scrub and type_.upper() in ("VARCHAR", "JSON"):
            value = _scrub_sql(f"CAST({ref} AS VARCHAR)")
        else:
            value = ref
        fields.append(f"{quote_ident(name)} := {value}")
    record = (f"CAST(to_json(struct_pack({', '.join(fields)})) AS VARCHAR)" if fields
              else "CAST(NULL AS VARCHAR)")
    if source.fmt == "jsonl":
        # A line that parsed but is not an object has no fields: keep it whole (scrubbed).
        raw = f"CAST(r.{_JSON} AS VARCHAR)"
        record = (f"CASE WHEN json_type(r.{_JSON}) = 'OBJECT' THEN {record} "
                  f"ELSE {_scrub_sql(raw) if scrub else raw} END")
    reason = _scrub_sql(f"s.{_ERR}") if scrub else f"s.{_ERR}"
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    con.execute(
        f"INSERT INTO quarantine SELECT ?, ?, ?, s.{_ROW}, s.{_ERR_COL}, {reason}, {record}, ? "
        f"FROM {stage} s JOIN {source.view} r ON r.{_ROW} = s.{_ROW} WHERE s.{_ERR} IS NOT NULL",
        [batch_id, kind, source.display, now],
    )
    if source.fmt == "jsonl":
        _fill_invalid_json_records(con, stage, source, batch_id, keep_raw=pseudonym is None,
                                   scrub=scrub)


def _fill_invalid_json_records(
    con: duckdb.DuckDBPyConnection, stage: str, source: _Source, batch_id: str, *,
    keep_raw: bool, scrub: bool
) -> None:
    """Error path: lines that are not JSON have no parsed record; keep their raw text instead
    (scrubbed), unless ids are pseudonymised: the user id in a line that cannot be parsed cannot
    be found to be replaced, so the record stays empty (file and row say where the line is)."""
    if not keep_raw:
        return
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
    record = _scrub_sql("CAST(? AS VARCHAR)") if scrub else "?"
    con.executemany(
        f"UPDATE quarantine SET record = {record} "
        "WHERE batch_id = ? AND file = ? AND row_number = ?",
        [(rec, batch_id, source.display, row) for rec, row in updates],
    )
