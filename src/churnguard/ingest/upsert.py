"""Writing keyed kinds (users, items, campaigns, labels): the last row per key wins, identical rows
are duplicates, changed rows updates; extra columns go to the attributes table."""

from __future__ import annotations

import duckdb

from churnguard.ingest.columns import _Plan
from churnguard.ingest.read import _ROW, _drop
from churnguard.ingest.results import _Totals
from churnguard.ingest.stage import _ERR
from churnguard.schema import Contract, quote_ident, quote_literal


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
        attr_long = f"{stage}_attrs"
        attr_changed = (
            _changed_attributes(con, contract, cur, attrs, attr_long) if attrs else "false"
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {cur}_status AS SELECT c.*, "
            f"CASE WHEN t.{quote_ident(key[0])} IS NULL THEN 'added' "
            f"WHEN {changed_main} OR {attr_changed} THEN 'updated' ELSE 'duplicate' END AS __cg_status "
            f"FROM {cur} c LEFT JOIN {contract.table} t ON {on}"
        )
        added, updated, same = con.execute(
            f"SELECT count(*) FILTER (__cg_status = 'added'), count(*) FILTER (__cg_status = 'updated'), "
            f"count(*) FILTER (__cg_status = 'duplicate') FROM {cur}_status"
        ).fetchone()
        _write_rows(con, contract, f"{cur}_status", present, batch_id, added=added, updated=updated)
        if attrs:
            _write_attributes(con, contract, attr_long, batch_id)
    finally:
        for name in (f"{cur}_status", f"{stage}_attrs", cur):
            _drop(con, name)
    totals.added += added
    totals.updated += updated
    totals.duplicate += same + (good - added - updated - same)


def _changed_attributes(
    con: duckdb.DuckDBPyConnection, contract: Contract, cur: str, attrs: list[str], attr_long: str
) -> str:
    """Write the attribute values that differ from the stored ones to ``attr_long`` (entity, name,
    value) and return the SQL condition, on a current row ``c``, that it has any."""
    entity = contract.key[0]
    unions = " UNION ALL ".join(
        f"SELECT {quote_ident(entity)} AS entity, {quote_literal(a)} AS name, "
        f"{quote_ident('attr:' + a)} AS value FROM {cur}"
        for a in attrs
    )
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {attr_long} AS "
        f"SELECT n.entity, n.name, n.value FROM ({unions}) n "
        f"LEFT JOIN {contract.attributes_table} a "
        f"ON a.{quote_ident(entity)} = n.entity AND a.name = n.name "
        "WHERE n.value IS DISTINCT FROM a.value"
    )
    return f"EXISTS (SELECT 1 FROM {attr_long} x WHERE x.entity = c.{quote_ident(entity)})"


def _write_rows(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    status: str,
    present: list[str],
    batch_id: str,
    *,
    added: int,
    updated: int,
) -> None:
    """Insert the added rows and update the changed ones (only the columns the file has)."""
    key, table = contract.key, contract.table
    col_list = ", ".join(quote_ident(c) for c in [*key, *present])
    if added:
        con.execute(
            f"INSERT INTO {table} ({col_list}, batch_id) SELECT {col_list}, ? "
            f"FROM {status} WHERE __cg_status = 'added'",
            [batch_id],
        )
    if updated:
        sets = ", ".join(f"{quote_ident(c)} = u.{quote_ident(c)}" for c in present)
        sets = f"{sets + ', ' if sets else ''}batch_id = ?"
        match = " AND ".join(f"{table}.{quote_ident(k)} = u.{quote_ident(k)}" for k in key)
        con.execute(
            f"UPDATE {table} SET {sets} FROM (SELECT * FROM {status} "
            f"WHERE __cg_status = 'updated') u WHERE {match}",
            [batch_id],
        )


def _write_attributes(
    con: duckdb.DuckDBPyConnection, contract: Contract, attr_long: str, batch_id: str
) -> None:
    """Replace the changed attributes; a value now empty removes the attribute."""
    entity, attr_table = contract.key[0], contract.attributes_table
    con.execute(
        f"DELETE FROM {attr_table} WHERE ({quote_ident(entity)}, name) IN "
        f"(SELECT (entity, name) FROM {attr_long})"
    )
    con.execute(
        f"INSERT INTO {attr_table} ({quote_ident(entity)}, name, value, batch_id) "
        f"SELECT entity, name, value, ? FROM {attr_long} WHERE value IS NOT NULL",
        [batch_id],
    )
