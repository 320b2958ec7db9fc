"""Writing events: append the rows not stored yet (by event_id), first occurrence in the file,
with a one-pass path for a clean file into an empty table."""

from __future__ import annotations

import duckdb

from churnguard.ingest.columns import _Plan
from churnguard.ingest.read import _ROW, _Source, _drop, _read_error
from churnguard.ingest.results import _Totals
from churnguard.ingest.stage import (
    _ERR,
    _event_hash_sql,
    _events_stored,
    _repeats_among,
)
from churnguard.schema import CONTRACTS, EVENT_HASH_COLUMNS, quote_ident

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
