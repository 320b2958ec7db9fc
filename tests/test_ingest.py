"""Ingestion: contracts enforced with precise errors, idempotent, atomic, private by option."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnguard.config import IngestConfig
from churnguard.ingest import faults
from churnguard.ingest import (
    FAULT_AFTER_INSERT,
    FAULT_ENV,
    FAULT_EXIT_CODE,
    IngestError,
    Problem,
    ingest_files,
    list_quarantine,
    parse_mapping,
)
from churnguard.ingest.faults import FAULT_POINTS
from churnguard.store import DATA_TABLES, Store

EVENTS_HEADER = "user_id,ts,type,amount,rating,text"


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(textwrap.dedent(text).lstrip("\n").encode(encoding))
    return path


def snapshot(store: Store) -> dict[str, list[tuple]]:
    """Every row of every data table, sorted: compare before/after to prove 'unchanged'."""
    return {
        t: sorted(store.con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in DATA_TABLES
    }


def events(store: Store, cols: str = "user_id, ts, type") -> list[tuple]:
    return store.con.execute(f"SELECT {cols} FROM events ORDER BY ts, user_id").fetchall()


@pytest.fixture
def seeded(store: Store, tmp_path: Path) -> Store:
    """A store that already holds two events, so 'unchanged' is not the same as 'empty'."""
    seed = write(tmp_path / "seed.csv", "user_id,ts,type\ns1,2024-01-01,order\ns2,2024-01-02,view\n")
    ingest_files(store, kind="events", files=[seed])
    return store


def reject(store: Store, **kwargs) -> IngestError:
    """Ingest under reject mode, expecting failure, and prove the store did not change."""
    before = snapshot(store)
    with pytest.raises(IngestError) as info:
        ingest_files(store, **kwargs)
    assert snapshot(store) == before
    return info.value


# -- arguments ---------------------------------------------------------------------------------------
def test_unknown_kind_format_on_error_name_the_allowed_values(store: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "e.csv", "user_id,ts,type\nu1,2024-01-01,order\n")
    with pytest.raises(IngestError, match="unknown kind 'orders'; use one of: events, users"):
        ingest_files(store, kind="orders", files=[f])
    with pytest.raises(IngestError, match="unknown format 'xls'; use one of: auto, csv"):
        ingest_files(store, kind="events", files=[f], fmt="xls")
    with pytest.raises(IngestError, match="unknown on_error 'ignore'; use one of: reject, skip"):
        ingest_files(store, kind="events", files=[f], on_error="ignore")


def test_parse_mapping() -> None:
    assert parse_mapping(["user_id=customer", " ts = day "]) == {"user_id": "customer", "ts": "day"}
    with pytest.raises(IngestError, match="expected CONTRACT_COLUMN=FILE_COLUMN"):
        parse_mapping(["user_id"])
    with pytest.raises(IngestError, match="expected CONTRACT_COLUMN=FILE_COLUMN"):
        parse_mapping(["=customer"])
    with pytest.raises(IngestError, match="already mapped"):
        parse_mapping(["user_id=a", "user_id=b"])


def test_problem_renders_file_row_line_column_reason() -> None:
    p = Problem("events.csv", 3, "ts", "cannot parse '2024-13-45' as a timestamp", 4)
    assert str(p) == "events.csv: row 3 (line 4), column 'ts': cannot parse '2024-13-45' as a timestamp"
    assert str(Problem("e.jsonl", None, None, "bad", 7)) == "e.jsonl: line 7: bad"


# -- structural errors ---------------------------------------------------------------------------------
def test_missing_required_column_lists_found_columns_and_suggests_map(
    seeded: Store, tmp_path: Path
) -> None:
    f = write(tmp_path / "events.csv", "user_id,when,type\nu1,2024-01-01,order\n")
    err = reject(seeded, kind="events", files=[f])
    msg = str(err)
    assert f"{f}: missing required column 'ts' for events" in msg
    assert "columns found: 'user_id', 'when', 'type'" in msg
    assert "--map ts=<file column>" in msg
    assert err.problems == [Problem(str(f), None, "ts", "missing column")]


def test_unknown_mapping_source(seeded: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "events.csv", "user_id,when,type\nu1,2024-01-01,order\n")
    err = reject(seeded, kind="events", files=[f], mapping={"ts": "date"})
    assert "--map ts=date: the file has no column 'date'" in str(err)
    assert "its columns are 'user_id', 'when', 'type'" in str(err)
    assert str(f) in str(err)


def test_mapping_to_a_column_not_in_the_contract(seeded: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "events.csv", "user_id,ts,type\nu1,2024-01-01,order\n")
    err = reject(seeded, kind="events", files=[f], mapping={"price": "ts"})
    assert "'price' is not a column of events" in str(err)


def test_empty_file_is_an_error(seeded: Store, tmp_path: Path) -> None:
    f = tmp_path / "events.csv"
    f.write_bytes(b"")
    err = reject(seeded, kind="events", files=[f])
    assert str(err) == f"{f}: the file is empty (0 bytes); expected at least a header"


def test_header_only_is_not_an_error_and_changes_nothing(seeded: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "events.csv", "user_id,ts,type\n")
    before = snapshot(seeded)
    report = ingest_files(seeded, kind="events", files=[f])
    assert snapshot(seeded) == before  # not even a batch record
    assert (report.rows_read, report.rows_added, report.rows_bad) == (0, 0, 0)
    assert f"{f} has a header but no data rows; nothing to load" in report.notes
    assert "no data rows were read; the store is unchanged" in report.notes


def test_explicit_wrong_delimiter_hints_at_the_real_one(seeded: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "events.csv", "user_id;ts;type\nu1;2024-01-01;order\n")
    err = reject(seeded, kind="events", files=[f], delimiter=",")
    msg = str(err)
    assert "missing required columns 'user_id', 'ts', 'type'" in msg  # the header is one column
    assert "columns found: 'user_id;ts;type'" in msg
    assert "The header looks ';'-separated, not ',': pass delimiter ';'" in msg


def test_semicolon_file_is_sniffed(store: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "events.csv", "user_id;ts;type;amount\nu1;2024-01-01;order;3.5\n")
    report = ingest_files(store, kind="events", files=[f])
    assert report.rows_added == 1
    assert events(store, "user_id, type, amount") == [("u1", "order", 3.5)]


def test_non_utf8_bytes_name_the_line_and_suggest_latin1(seeded: Store, tmp_path: Path) -> None:
    f = write(
        tmp_path / "events.csv",
        "user_id,ts,type,text\nu1,2024-01-01,order,ok\nu2,2024-01-02,review,très bien\n",
        encoding="latin-1",
    )
    err = reject(seeded, kind="events", files=[f])
    assert str(err).startswith(f"{f}: line 3 is not valid UTF-8 text (byte 0xe8")
    assert "encoding='latin-1'" in str(err)
    report = ingest_files(seeded, kind="events", files=[f], encoding="latin-1")
    assert report.rows_added == 2
    assert seeded.con.execute("SELECT text FROM events WHERE user_id = 'u2'").fetchone() == (
        "très bien",
    )


@pytest.mark.parametrize("fixture", ["seeded", "store"])
def test_truncated_parquet_names_the_file(
    fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Into an empty table ("store") the file is written while it is read; that must undo too.
    target: Store = request.getfixturevalue(fixture)
    good = tmp_path / "good.parquet"
    table = pa.table({"user_id": ["u1"] * 1000, "ts": ["2024-01-01"] * 1000, "type": ["view"] * 1000})
    pq.write_table(table, good)
    bad = tmp_path / "events.parquet"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    err = reject(target, kind="events", files=[bad])
    assert str(err).startswith(f"{bad}: cannot read it as Parquet (truncated or corrupt?)")


def test_bad_row_into_an_empty_store_leaves_it_empty(store: Store, tmp_path: Path) -> None:
    # Into an empty table a file is written while it is validated; a bad row must undo that.
    f = write(tmp_path / "events.csv",
              f"{EVENTS_HEADER}\nu0,2024-01-01,view,,,\nu1,2024-01-01,order,abc,,\n")
    err = reject(store, kind="events", files=[f])
    assert f"{f}: row 2 (line 3), column 'amount'" in str(err)
    assert store.con.execute("SELECT count(*) FROM events").fetchone() == (0,)


def test_jsonl_line_that_is_not_json(seeded: Store, tmp_path: Path) -> None:
    f = write(
        tmp_path / "events.jsonl",
        '{"user_id": "u1", "ts": "2024-01-01", "type": "view"}\n'
        "\n"
        '{"user_id": "u2", "ts": "2024-01-02", "type": "view"}\n'
        "{not json\n",
    )
    err = reject(seeded, kind="events", files=[f])
    assert f"{f}: row 3 (line 4): not valid JSON" in str(err)
    report = ingest_files(seeded, kind="events", files=[f], on_error="quarantine")
    assert (report.rows_read, report.rows_added, report.rows_bad) == (3, 2, 1)
    (q,) = list_quarantine(seeded, batch_id=report.batch_id)
    assert (q["row_number"], q["column_name"], q["reason"]) == (3, None, "not valid JSON")
    assert json.loads(q["record"]) == "{not json"


# -- row errors --------------------------------------------------------------------------------------
BAD_ROWS = [
    # (csv body line, column, reason fragment)
    ("u1,2024-13-45,order,,,", "ts", "cannot parse '2024-13-45' as a timestamp; use ISO-8601"),
    ("u1,2024-01-01,order,abc,,", "amount", "'abc' is not a number"),
    ("u1,2024-01-01,order,inf,,", "amount", "'inf' is not a finite number"),
    ("u1,2024-01-01,order,NaN,,", "amount", "'NaN' is not a finite number"),
    ("u1,2024-01-01,review,,6,", "rating", "'6' is not a rating; ratings are whole numbers from 1 to 5"),
    ("u1,2024-01-01,review,,4.5,", "rating", "'4.5' is not a rating"),
    ("  ,2024-01-01,order,,,", "user_id", "is empty; every row needs a user_id"),
    ("u1,2024-01-01, ,,,", "type", "is empty; every row needs a type"),
    ("u1,,order,,,", "ts", "is empty; every row needs a ts"),
]


@pytest.mark.parametrize(("line", "column", "reason"), BAD_ROWS)
def test_bad_value_rejected_with_file_row_line_column(
    seeded: Store, tmp_path: Path, line: str, column: str, reason: str
) -> None:
    f = write(
        tmp_path / "events.csv",
        f"{EVENTS_HEADER}\nu0,2024-01-01,view,,,\nu9,2024-01-01,order,2.5,,\n{line}\n",
    )
    err = reject(seeded, kind="events", files=[f])
    assert f"{f}: row 3 (line 4), column '{column}': {reason}" in str(err)
    assert "1 bad row, so nothing was loaded" in str(err)
    (p,) = err.problems
    assert (p.file, p.row, p.line, p.column) == (str(f), 3, 4, column)


@pytest.mark.parametrize(("line", "column", "reason"), BAD_ROWS)
def test_bad_value_skipped_or_quarantined(
    store: Store, tmp_path: Path, line: str, column: str, reason: str
) -> None:
    f = write(
        tmp_path / "events.csv",
        f"{EVENTS_HEADER}\nu0,2024-01-01,view,,,\n{line}\nu9,2024-01-01,order,2.5,,\n",
    )
    report = ingest_files(store, kind="events", files=[f], on_error="skip")
    assert (report.rows_read, report.rows_added, report.rows_bad) == (3, 2, 1)
    assert report.problems[0].row == 2 and report.problems[0].column == column
    assert events(store, "user_id") == [("u0",), ("u9",)]
    assert list_quarantine(store) == []

    report = ingest_files(store, kind="events", files=[f], on_error="quarantine")
    assert (report.rows_added, report.rows_duplicate, report.rows_bad) == (0, 2, 1)
    (q,) = list_quarantine(store)
    assert (q["batch_id"], q["kind"], q["file"], q["row_number"], q["column_name"]) == (
        report.batch_id, "events", str(f), 2, column,
    )  # fmt: skip
    assert reason in q["reason"]
    record = json.loads(q["record"])
    assert list(record) == ["user_id", "ts", "type", "amount", "rating", "text"]
    assert ",".join(v or "" for v in record.values()) == line  # raw, as in the file


def test_many_bad_rows_show_first_five_and_the_total(seeded: Store, tmp_path: Path) -> None:
    body = "".join(f"u{i},not-a-date-{i},view\n" for i in range(12))
    f = write(tmp_path / "events.csv", "user_id,ts,type\nok,2024-01-01,view\n" + body)
    err = reject(seeded, kind="events", files=[f])
    msg = str(err)
    assert "12 bad rows, so nothing was loaded" in msg
    assert [p.row for p in err.problems] == [2, 3, 4, 5, 6]
    assert f"{f}: row 6 (line 7), column 'ts': cannot parse 'not-a-date-4'" in msg
    assert "row 7 " not in msg
    assert "... and 7 more" in msg
    assert "--on-error skip" in msg


def test_line_numbers_follow_quoted_newlines(seeded: Store, tmp_path: Path) -> None:
    f = write(
        tmp_path / "events.csv",
        'user_id,ts,type,text\nu1,2024-01-01,review,"two\nlines"\nu2,bad,view,\n',
    )
    err = reject(seeded, kind="events", files=[f])
    assert f"{f}: row 2 (line 4), column 'ts'" in str(err)


def test_row_numbers_hold_in_a_large_file(store: Store, tmp_path: Path) -> None:
    """Row numbering must follow file order even when DuckDB reads the file in parallel."""
    n = 300_000
    bad = {1234, 150_001, n}
    lines = [
        f"u{i},{'oops' if i in bad else '2024-01-01 00:00:00'},view,{i}\n" for i in range(1, n + 1)
    ]
    f = tmp_path / "big.csv"
    f.write_text("user_id,ts,type,amount\n" + "".join(lines))
    report = ingest_files(store, kind="events", files=[f], on_error="quarantine")
    assert report.rows_bad == 3
    rows = [(q["row_number"], json.loads(q["record"])["user_id"]) for q in list_quarantine(store)]
    assert rows == [(r, f"u{r}") for r in sorted(bad)]
    assert [(p.row, p.line) for p in report.problems] == [(r, r + 1) for r in sorted(bad)]


def test_parquet_row_numbers(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "events.parquet"
    pq.write_table(
        pa.table({"user_id": ["a", "b", "", "d"], "ts": ["2024-01-01"] * 4, "type": ["view"] * 4}),
        f,
        row_group_size=2,
    )
    err = reject(store, kind="events", files=[f])
    assert f"{f}: row 3, column 'user_id': is empty" in str(err)


def test_boolean_values(store: Store, tmp_path: Path) -> None:
    f = write(
        tmp_path / "campaigns.csv",
        """
        user_id,campaign_id,action,assigned_at,is_control
        u1,c1,coupon,2024-01-01,true
        u2,c1,coupon,2024-01-01,No
        u3,c1,coupon,2024-01-01,1
        u4,c1,coupon,2024-01-01,maybe
        """,
    )
    err = reject(store, kind="campaigns", files=[f])
    assert (
        f"{f}: row 4 (line 5), column 'is_control': 'maybe' is not a yes/no value; "
        "use true/false, 1/0 or yes/no"
    ) in str(err)
    ingest_files(store, kind="campaigns", files=[f], on_error="skip")
    assert store.con.execute(
        "SELECT user_id, is_control FROM campaigns ORDER BY user_id"
    ).fetchall() == [("u1", True), ("u2", False), ("u3", True)]


# -- time zones ----------------------------------------------------------------------------------------
def test_timestamps_are_normalised_to_utc(store: Store, tmp_path: Path) -> None:
    f = write(
        tmp_path / "events.csv",
        """
        user_id,ts,type
        a,2024-03-01T12:00:00+02:00,view
        b,2024-03-01T12:00:00Z,view
        c,2024-03-01 12:00:00-0530,view
        d,2024-07-01T23:30:00.250+01:00,view
        """,
    )
    ingest_files(store, kind="events", files=[f])
    got = dict(store.con.execute("SELECT user_id, ts FROM events").fetchall())
    assert got == {
        "a": dt.datetime(2024, 3, 1, 10, 0),
        "b": dt.datetime(2024, 3, 1, 12, 0),
        "c": dt.datetime(2024, 3, 1, 17, 30),
        "d": dt.datetime(2024, 7, 1, 22, 30, 0, 250000),
    }


def test_naive_timestamps_are_in_the_configured_zone(store: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "events.csv", "user_id,ts,type\nw,2024-01-15 12:00,view\ns,2024-07-15,view\n")
    ingest_files(store, kind="events", files=[f], config=IngestConfig(timezone="Europe/Berlin"))
    got = dict(store.con.execute("SELECT user_id, ts FROM events").fetchall())
    assert got == {"w": dt.datetime(2024, 1, 15, 11, 0), "s": dt.datetime(2024, 7, 14, 22, 0)}


def test_mixed_naive_and_offset_timestamps(store: Store, tmp_path: Path) -> None:
    f = write(
        tmp_path / "events.csv",
        "user_id,ts,type\na,2024-03-01T12:00:00+02:00,view\nb,2024-03-01 12:00:00,view\n",
    )
    err = reject(store, kind="events", files=[f])
    assert (
        f"{f}: row 2 (line 3), column 'ts': '2024-03-01 12:00:00' has no UTC offset, but other "
        "rows of this file do"
    ) in str(err)
    assert "set ingest.timezone" in str(err)
    # Saying which zone the naive ones are in resolves it, even when that zone is UTC.
    ingest_files(store, kind="events", files=[f], config=IngestConfig(timezone="UTC"))
    got = dict(store.con.execute("SELECT user_id, ts FROM events").fetchall())
    assert got == {"a": dt.datetime(2024, 3, 1, 10, 0), "b": dt.datetime(2024, 3, 1, 12, 0)}


def test_parquet_native_timestamp_types(store: Store, tmp_path: Path) -> None:
    f = tmp_path / "events.parquet"
    utc_plus_2 = dt.timezone(dt.timedelta(hours=2))
    pq.write_table(
        pa.table(
            {
                "user_id": ["a", "b"],
                "ts": pa.array(
                    [dt.datetime(2024, 3, 1, 12, tzinfo=utc_plus_2)] * 2,
                    type=pa.timestamp("us", tz="+02:00"),
                ),
                "signup": pa.array([dt.date(2024, 1, 1), dt.date(2024, 1, 2)]),
                "type": ["view", "order"],
            }
        ),
        f,
    )
    ingest_files(store, kind="events", files=[f])
    assert events(store, "user_id, ts") == [
        ("a", dt.datetime(2024, 3, 1, 10, 0)),
        ("b", dt.datetime(2024, 3, 1, 10, 0)),
    ]
    users = tmp_path / "users.parquet"
    pq.write_table(
        pa.table({"user_id": ["a"], "signup_ts": pa.array([dt.date(2024, 1, 2)]),
                  "local": pa.array([dt.datetime(2024, 1, 2, 9)], type=pa.timestamp("ms"))}),
        users,
    )  # fmt: skip
    ingest_files(store, kind="users", files=[users], config=IngestConfig(timezone="Asia/Tokyo"))
    assert store.con.execute("SELECT signup_ts FROM users").fetchone() == (
        dt.datetime(2024, 1, 1, 15, 0),
    )


# -- formats -------------------------------------------------------------------------------------------
def test_parquet_csv_jsonl_and_gzip_all_load_the_same(tmp_path: Path) -> None:
    rows = [
        {"user_id": "u1", "ts": "2024-01-01T10:00:00Z", "type": "order", "amount": 9.99},
        {"user_id": "u2", "ts": "2024-01-02T11:00:00Z", "type": "view", "amount": None},
    ]
    csv_text = "user_id,ts,type,amount\n" + "".join(
        f"{r['user_id']},{r['ts']},{r['type']},{'' if r['amount'] is None else r['amount']}\n"
        for r in rows
    )
    files = {
        "csv": write(tmp_path / "e.csv", csv_text),
        "gz": tmp_path / "e.csv.gz",
        "jsonl": write(tmp_path / "e.jsonl", "".join(json.dumps(r) + "\n" for r in rows)),
        "json-array": write(tmp_path / "e.json", json.dumps(rows)),
        "parquet": tmp_path / "e.parquet",
    }
    files["gz"].write_bytes(gzip.compress(csv_text.encode()))
    pq.write_table(pa.Table.from_pylist(rows), files["parquet"])
    results = {}
    for name, f in files.items():
        with Store.open(tmp_path / f"{name}.duckdb") as s:
            report = ingest_files(s, kind="events", files=[f])
            assert report.rows_added == 2, name
            results[name] = s.con.execute(
                "SELECT event_id, user_id, ts, type, amount FROM events ORDER BY user_id"
            ).fetchall()
    assert all(r == results["csv"] for r in results.values()), results


def test_unknown_extension_asks_for_format(store: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "events.dat", "user_id,ts,type\nu1,2024-01-01,view\n")
    with pytest.raises(IngestError, match="cannot tell the format from the file name; pass --format"):
        ingest_files(store, kind="events", files=[f])
    assert ingest_files(store, kind="events", files=[f], fmt="csv").rows_added == 1


# -- events: mapping, default type, extras, duplicates, idempotency ------------------------------------
def test_orders_export_with_map_and_default_type(store: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "orders.csv", "customer,date,total\nc1,2024-02-01,19.90\nc2,2024-02-03,5\n")
    report = ingest_files(
        store,
        kind="events",
        files=[f],
        mapping={"user_id": "customer", "ts": "date", "amount": "total"},
        default_type="order",
    )
    assert report.rows_added == 2 and report.ignored_columns == ()
    assert events(store, "user_id, ts, type, amount") == [
        ("c1", dt.datetime(2024, 2, 1), "order", 19.9),
        ("c2", dt.datetime(2024, 2, 3), "order", 5.0),
    ]


def test_events_extra_columns_are_ignored_and_reported(store: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "events.csv", "user_id,ts,type,browser\nu1,2024-01-01,View,firefox\n")
    report = ingest_files(store, kind="events", files=[f])
    assert report.ignored_columns == (f"{f}: browser",)
    assert f"{f}: ignored column(s) not in the events contract: 'browser'" in report.notes
    assert events(store, "type") == [("view",)]  # types are trimmed and lower-cased


def test_duplicate_rows_inside_one_file_load_once(store: Store, tmp_path: Path) -> None:
    f = write(
        tmp_path / "events.csv",
        """
        user_id,ts,type,amount
        u1,2024-01-01,order,5
        u1,2024-01-01,order,5
        u1,2024-01-01T00:00:00Z,order,5.0
        u1,2024-01-01,order,6
        """,
    )
    report = ingest_files(store, kind="events", files=[f], config=IngestConfig(timezone="UTC"))
    # Rows 1-3 are the same event once normalised (same instant, same amount).
    assert (report.rows_read, report.rows_added, report.rows_duplicate) == (4, 2, 2)
    assert store.con.execute("SELECT count(*) FROM events").fetchone() == (2,)


def test_given_event_ids_dedupe_first_occurrence_wins(store: Store, tmp_path: Path) -> None:
    f = write(
        tmp_path / "events.csv",
        "event_id,user_id,ts,type\ne1,u1,2024-01-01,view\ne1,u2,2024-01-02,view\n,u3,2024-01-03,view\n",
    )
    report = ingest_files(store, kind="events", files=[f])
    assert (report.rows_added, report.rows_duplicate) == (2, 1)
    ids = dict(store.con.execute("SELECT user_id, event_id FROM events").fetchall())
    assert ids["u1"] == "e1" and "u2" not in ids and len(ids["u3"]) == 32  # content hash


def test_content_hash_is_md5_of_normalised_columns(store: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "events.csv", "user_id,ts,type,amount,rating\nu1,2024-01-01T00:00:01Z,order,2.5,4\n")
    ingest_files(store, kind="events", files=[f])
    epoch_us = str(int(dt.datetime(2024, 1, 1, 0, 0, 1, tzinfo=dt.UTC).timestamp()) * 1_000_000)
    parts = ["u1", epoch_us, "order", "", "", "2.5", "", "", "4", "", ""]
    expected = hashlib.md5("\x1f".join(parts).encode()).hexdigest()
    assert store.con.execute("SELECT event_id FROM events").fetchone() == (expected,)


def test_same_file_twice_and_overlapping_files_add_nothing(store: Store, tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", "user_id,ts,type\nu1,2024-01-01,view\nu2,2024-01-02,view\n")
    b = write(tmp_path / "b.csv", "user_id,ts,type\nu2,2024-01-02,view\nu3,2024-01-03,view\n")
    first = ingest_files(store, kind="events", files=[a])
    assert first.rows_added == 2
    after_first = snapshot(store)["events"]
    again = ingest_files(store, kind="events", files=[a])
    assert (again.rows_added, again.rows_duplicate) == (0, 2)
    assert snapshot(store)["events"] == after_first
    both = ingest_files(store, kind="events", files=[a, b])
    assert (both.rows_read, both.rows_added, both.rows_duplicate) == (4, 1, 3)
    assert events(store, "user_id") == [("u1",), ("u2",), ("u3",)]
    # Overlap within one call (b's u2 against a's u2, both new) is caught too.
    with Store.open(tmp_path / "fresh.duckdb") as fresh:
        report = ingest_files(fresh, kind="events", files=[a, b])
        assert (report.rows_added, report.rows_duplicate) == (3, 1)
    batches = store.con.execute("SELECT rows_read, rows_added FROM ingest_batches ORDER BY started_at").fetchall()
    assert batches == [(2, 2), (2, 0), (4, 1)]


def test_every_row_carries_its_batch_id(store: Store, tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", "user_id,ts,type\nu1,2024-01-01,view\n")
    b = write(tmp_path / "b.csv", "user_id,ts,type\nu2,2024-01-01,view\n")
    r1 = ingest_files(store, kind="events", files=[a])
    r2 = ingest_files(store, kind="events", files=[b])
    assert r1.batch_id != r2.batch_id
    assert dict(store.con.execute("SELECT user_id, batch_id FROM events").fetchall()) == {
        "u1": r1.batch_id,
        "u2": r2.batch_id,
    }
    row = store.con.execute(
        "SELECT kind, files, on_error, rows_read, rows_added, started_at <= finished_at "
        "FROM ingest_batches WHERE batch_id = ?",
        [r2.batch_id],
    ).fetchone()
    assert row == ("events", [str(b)], "reject", 1, 1, True)


def test_progress_reports_stages(store: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "e.csv", "user_id,ts,type\nu1,2024-01-01,view\n")
    seen: list[str] = []
    ingest_files(store, kind="events", files=[f], progress=seen.append)
    # A clean file into an empty table is validated while it is written, in one pass.
    assert seen == [f"reading {f}", f"validating {f}", f"writing {f} as it is validated",
                    "committing"]
    # Into a table that holds events, it is validated first, then written.
    g = write(tmp_path / "g.csv", "user_id,ts,type\nu2,2024-01-01,view\n")
    seen.clear()
    ingest_files(store, kind="events", files=[g], progress=seen.append)
    assert seen == [f"reading {g}", f"validating {g}", f"writing 1 rows from {g}", "committing"]


# -- atomicity ---------------------------------------------------------------------------------------------
def test_crash_before_commit_leaves_the_store_unchanged(seeded: Store, tmp_path: Path) -> None:
    path = seeded.path
    before = snapshot(seeded)
    seeded.close()
    f = write(tmp_path / "events.csv", "user_id,ts,type\nu1,2024-01-01,view\nu2,2024-01-02,view\n")
    script = (
        "from churnguard.store import Store\n"
        "from churnguard.ingest import ingest_files\n"
        f"s = Store.open({str(path)!r})\n"
        f"ingest_files(s, kind='events', files=[{str(f)!r}])\n"
        "print('not reached')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, FAULT_ENV: FAULT_AFTER_INSERT},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == FAULT_EXIT_CODE, proc.stderr
    assert "not reached" not in proc.stdout
    with Store.open(path) as reopened:
        assert snapshot(reopened) == before
        # And the store still works: the same load now succeeds.
        assert ingest_files(reopened, kind="events", files=[f]).rows_added == 2


# Per kind: what a store may hold already, and the rows of the load that is killed (new rows, a
# changed row for the keyed kinds, a repeat for events); BAD is one bad row of that kind.
CRASH_FILES: dict[str, dict[str, str]] = {
    "events": {"held": "user_id,ts,type,amount\ns1,2024-01-01,order,\ns2,2024-01-02,view,\n",
               "load": "user_id,ts,type,amount\nu1,2024-02-01,order,10\nu2,2024-02-02,view,\n"
                       "s1,2024-01-01,order,\n",
               "bad": "u3,not-a-time,order,5\n"},
    "users": {"held": "user_id,signup_ts,region\ns1,2024-01-01,eu\ns2,2024-01-02,us\n",
              "load": "user_id,signup_ts,region\nu1,2024-02-01,eu\ns1,2024-01-01,apac\n",
              "bad": "u3,not-a-time,eu\n"},
    "items": {"held": "item_id,category,price,title,colour\ni1,shoes,10,Red shoe,red\n",
              "load": "item_id,category,price,title,colour\ni2,hats,5,Hat,blue\n"
                      "i1,shoes,12,Red shoe,red\n",
              "bad": "i3,hats,not-a-number,Hat,green\n"},
    "campaigns": {"held": "user_id,campaign_id,action,assigned_at,is_control\n"
                          "s1,c1,coupon_10,2024-01-01,false\n",
                  "load": "user_id,campaign_id,action,assigned_at,is_control\n"
                          "u1,c1,coupon_10,2024-01-02,true\ns1,c1,coupon_10,2024-01-01,true\n",
                  "bad": "u2,c1,coupon_10,not-a-time,false\n"},
    "labels": {"held": "user_id,as_of,churned\ns1,2024-01-01,false\n",
               "load": "user_id,as_of,churned\nu1,2024-01-01,true\ns1,2024-01-01,true\n",
               "bad": "u2,2024-01-01,maybe\n"},
}
# What the store holds when the load is killed, and whether the file has a bad row (quarantined):
# "empty" takes the one-pass write-while-validating path for events (and, with a bad row, its
# undo and the usual path); "holding" the append of new events and the keyed upserts' updates.
CRASH_MODES = (("empty", False), ("empty", True), ("holding", True))
_CRASH_SCRIPT = """
import json, sys
from churnguard.store import Store
from churnguard.ingest import ingest_files
path, kind, file, on_error = json.loads(sys.argv[1])
with Store.open(path) as store:
    ingest_files(store, kind=kind, files=[file], on_error=on_error)
print("not reached")
"""


def _kind_rows(store: Store, kind: str) -> list[tuple]:
    """The rows of the kind's table without their batch id (a rerun writes another one)."""
    table = "events" if kind == "events" else kind
    columns = [c for (c,) in store.con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
        "AND column_name <> 'batch_id' ORDER BY ordinal_position", [table]).fetchall()]
    return sorted(store.con.execute(
        f"SELECT {', '.join(columns)} FROM {table}").fetchall(), key=repr)


def _counts(report) -> tuple[int, ...]:
    return (report.rows_read, report.rows_added, report.rows_updated, report.rows_duplicate,
            report.rows_bad)


def _crash_cases() -> list:
    return [pytest.param(point, kind, held, bad,
                         id=f"{point}-{kind}-{held}{'-quarantine' if bad else ''}")
            for point, kinds in FAULT_POINTS.items() for kind in kinds
            for held, bad in CRASH_MODES]


def test_every_fault_point_constant_is_declared() -> None:
    """A fault point named in faults.py but left out of FAULT_POINTS would never be crash-tested."""
    named = {value for name, value in vars(faults).items()
             if name.startswith("FAULT_") and isinstance(value, str) and ":" in value}
    assert named == set(FAULT_POINTS)
    assert all(set(kinds) <= set(CRASH_FILES) for kinds in FAULT_POINTS.values())


@pytest.mark.parametrize(("point", "kind", "held", "bad"), _crash_cases())
def test_a_kill_at_any_fault_point_leaves_the_store_unchanged_and_a_rerun_loads_once(
        point: str, kind: str, held: str, bad: bool, tmp_path: Path) -> None:
    """A real process killed at ``point`` while it loads ``kind``: the store is as before, and the
    same load run again gives what it gives on an untouched copy, once."""
    files = CRASH_FILES[kind]
    path = tmp_path / "churnguard.duckdb"
    with Store.open(path) as store:
        # Something else is stored, so that "unchanged" is not the same as "empty".
        other = "users" if kind == "events" else "events"
        ingest_files(store, kind=other, files=[write(tmp_path / "other.csv",
                                                     CRASH_FILES[other]["held"])])
        if held == "holding":
            ingest_files(store, kind=kind, files=[write(tmp_path / "held.csv", files["held"])])
        before = snapshot(store)
    load = write(tmp_path / f"{kind}.csv", files["load"] + (files["bad"] if bad else ""))
    on_error = "quarantine" if bad else "reject"
    untouched = tmp_path / "untouched.duckdb"
    shutil.copyfile(path, untouched)

    proc = subprocess.run(
        [sys.executable, "-c", _CRASH_SCRIPT, json.dumps([str(path), kind, str(load), on_error])],
        env={**os.environ, FAULT_ENV: point}, capture_output=True, text=True, timeout=120)
    assert proc.returncode == FAULT_EXIT_CODE, f"{point} was not reached: {proc.stderr}"
    assert "not reached" not in proc.stdout

    with Store.open(untouched) as reference:
        expected = ingest_files(reference, kind=kind, files=[load], on_error=on_error)
        expected_rows = _kind_rows(reference, kind)
    assert expected.rows_added > 0 and expected.rows_bad == int(bad)
    with Store.open(path) as reopened:
        assert snapshot(reopened) == before
        rerun = ingest_files(reopened, kind=kind, files=[load], on_error=on_error)
        assert _counts(rerun) == _counts(expected)
        assert _kind_rows(reopened, kind) == expected_rows
        again = ingest_files(reopened, kind=kind, files=[load], on_error=on_error)
        assert (again.rows_added, again.rows_updated) == (0, 0)
        assert _kind_rows(reopened, kind) == expected_rows
        (batches,) = reopened.con.execute(
            "SELECT count(*) FROM ingest_batches WHERE kind = ?", [kind]).fetchall()[0]
        assert batches == (held == "holding") + 2


def test_second_file_bad_rolls_back_the_first(seeded: Store, tmp_path: Path) -> None:
    good = write(tmp_path / "good.csv", "user_id,ts,type\nu1,2024-01-01,view\n")
    bad = write(tmp_path / "bad.csv", "user_id,ts,type\nu2,yesterday,view\n")
    err = reject(seeded, kind="events", files=[good, bad])
    assert f"{bad}: row 1 (line 2), column 'ts'" in str(err)
    unreadable = tmp_path / "broken.parquet"
    unreadable.write_bytes(b"PAR1 not really")
    err = reject(seeded, kind="events", files=[good, unreadable])
    assert str(unreadable) in str(err)


def test_reject_reports_bad_rows_of_every_file(seeded: Store, tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", "user_id,ts,type\nu1,nope,view\n")
    b = write(tmp_path / "b.csv", "user_id,ts,type\nu2,2024-01-01,view\n,2024-01-01,view\n")
    err = reject(seeded, kind="events", files=[a, b])
    assert [(p.file, p.row, p.column) for p in err.problems] == [
        (str(a), 1, "ts"),
        (str(b), 2, "user_id"),
    ]
    assert str(err).startswith("2 bad rows, so nothing was loaded")


# -- privacy -------------------------------------------------------------------------------------------------
def _hmac(key: str, user_id: str) -> str:
    return hmac.new(key.encode(), user_id.encode(), hashlib.sha256).hexdigest()[:32]


def test_pseudonymisation_is_hmac_sha256_on_every_table(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "s3cret-ключ"
    monkeypatch.setenv("CG_TEST_KEY", key)
    config = IngestConfig(pseudonymise=True, pseudonym_key_env="CG_TEST_KEY")
    ev = write(tmp_path / "e.csv", 'user_id,ts,type\nalice,2024-01-01,view\n"b\\ob é",2024-01-01,view\n')
    us = write(tmp_path / "u.csv", "user_id,plan\nalice,gold\n")
    ca = write(
        tmp_path / "c.csv", "user_id,campaign_id,action,assigned_at,is_control\nalice,c1,coupon,2024-01-01,no\n"
    )
    la = write(tmp_path / "l.csv", "user_id,as_of,churned\nalice,2024-01-01,yes\n")
    for kind, f in [("events", ev), ("users", us), ("campaigns", ca), ("labels", la)]:
        ingest_files(store, kind=kind, files=[f], config=config)
    alice = _hmac(key, "alice")
    assert sorted(u for (u,) in store.con.execute("SELECT user_id FROM events").fetchall()) == sorted(
        [alice, _hmac(key, "b\\ob é")]
    )
    for table in ("users", "user_attributes", "campaigns", "labels"):
        assert store.con.execute(f"SELECT user_id FROM {table}").fetchall() == [(alice,)], table
    long_key = "k" * 100  # longer than the SHA-256 block: hashed first, as RFC 2104 says
    monkeypatch.setenv("CG_TEST_KEY", long_key)
    with Store.open(tmp_path / "other.duckdb") as other:
        ingest_files(other, kind="users", files=[us], config=config)
        assert other.con.execute("SELECT user_id FROM users").fetchone() == (_hmac(long_key, "alice"),)


def test_pseudonymisation_without_key_says_which_variable(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CHURNGUARD_PSEUDONYM_KEY", raising=False)
    f = write(tmp_path / "e.csv", "user_id,ts,type\nalice,2024-01-01,view\n")
    err = reject(store, kind="events", files=[f], config=IngestConfig(pseudonymise=True))
    assert "the environment variable CHURNGUARD_PSEUDONYM_KEY is not set" in str(err)


def test_scrubbing_emails_and_phones_but_not_ordinary_numbers(store: Store, tmp_path: Path) -> None:
    texts = {
        "a": ("mail me: jane.doe+shop@example.co.uk please", "mail me: [email] please"),
        "b": ("call +49 30 1234 5678 or (555) 123-4567", "call [phone] or [phone]"),
        "c": ("ring 020 7946 0958 today", "ring [phone] today"),
        "d": ("order 12345 cost 1,299.00 rated 5/5 on 2024-01-15", None),
        "e": ("4 stars, 12.99 EUR, 3 items, ticket #884213", None),
    }
    rows = "".join(f'{u},2024-01-01,review,"{t}"\n' for u, (t, _) in texts.items())
    f = write(tmp_path / "e.csv", "user_id,ts,type,text\n" + rows)
    ingest_files(store, kind="events", files=[f])
    got = dict(store.con.execute("SELECT user_id, text FROM events").fetchall())
    assert got == {u: (want or raw) for u, (raw, want) in texts.items()}
    with Store.open(tmp_path / "raw.duckdb") as raw:
        ingest_files(raw, kind="events", files=[f], config=IngestConfig(scrub_text=False))
        assert dict(raw.con.execute("SELECT user_id, text FROM events").fetchall()) == {
            u: t for u, (t, _) in texts.items()
        }


# -- keyed kinds ---------------------------------------------------------------------------------------------
def test_users_attributes_kept_and_keyed_upserts(store: Store, tmp_path: Path) -> None:
    v1 = write(
        tmp_path / "users1.csv",
        "user_id,signup_ts,plan,Country\nu1,2023-01-01,gold,DE\nu2,2023-02-01,free,FR\n",
    )
    r1 = ingest_files(store, kind="users", files=[v1])
    assert (r1.rows_added, r1.rows_updated, r1.rows_duplicate) == (2, 0, 0)
    assert r1.attribute_columns == ("plan", "Country")
    v2 = write(
        tmp_path / "users2.csv",
        # u1 identical; u2 changed plan; u3 new; u3 repeated identically
        "user_id,signup_ts,plan,Country\nu1,2023-01-01,gold,DE\nu2,2023-02-01,pro,FR\n"
        "u3,2023-03-01,free,\nu3,2023-03-01,free,\n",
    )
    r2 = ingest_files(store, kind="users", files=[v2])
    assert (r2.rows_read, r2.rows_added, r2.rows_updated, r2.rows_duplicate) == (4, 1, 1, 2)
    assert store.con.execute("SELECT user_id, signup_ts, batch_id FROM users ORDER BY 1").fetchall() == [
        ("u1", dt.datetime(2023, 1, 1), r1.batch_id),
        ("u2", dt.datetime(2023, 2, 1), r2.batch_id),
        ("u3", dt.datetime(2023, 3, 1), r2.batch_id),
    ]
    assert store.con.execute(
        "SELECT user_id, name, value FROM user_attributes ORDER BY 1, 2"
    ).fetchall() == [
        ("u1", "Country", "DE"), ("u1", "plan", "gold"),
        ("u2", "Country", "FR"), ("u2", "plan", "pro"),
        ("u3", "plan", "free"),
    ]  # fmt: skip
    # A file with only some columns leaves the others as they are; last row for a key wins.
    v3 = write(tmp_path / "users3.csv", "user_id,plan\nu1,free\nu1,pro\n")
    r3 = ingest_files(store, kind="users", files=[v3])
    assert (r3.rows_updated, r3.rows_duplicate) == (1, 1)
    assert store.con.execute("SELECT signup_ts FROM users WHERE user_id = 'u1'").fetchone() == (
        dt.datetime(2023, 1, 1),
    )
    assert store.con.execute(
        "SELECT value FROM user_attributes WHERE user_id = 'u1' AND name = 'plan'"
    ).fetchone() == ("pro",)
    again = ingest_files(store, kind="users", files=[v3])
    assert (again.rows_added, again.rows_updated, again.rows_duplicate) == (0, 0, 2)


def test_items_with_attributes(store: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "items.csv", "item_id,category,price,title,brand\ni1,toys,9.5,Ball,Acme\n")
    report = ingest_files(store, kind="items", files=[f])
    assert report.rows_added == 1
    assert store.con.execute("SELECT item_id, category, price, title FROM items").fetchall() == [
        ("i1", "toys", 9.5, "Ball")
    ]
    assert store.con.execute("SELECT item_id, name, value FROM item_attributes").fetchall() == [
        ("i1", "brand", "Acme")
    ]


def test_campaigns_keyed_upsert(store: Store, tmp_path: Path) -> None:
    head = "user_id,campaign_id,action,assigned_at,is_control,cost\n"
    a = write(tmp_path / "a.csv", head + "u1,c1,coupon,2024-01-01,no,2\nu2,c1,coupon,2024-01-01,yes,0\n")
    b = write(tmp_path / "b.csv", head + "u1,c1,coupon,2024-01-01,no,2\nu2,c1,call,2024-01-01,yes,5\nu1,c2,coupon,2024-02-01,no,2\n")
    ingest_files(store, kind="campaigns", files=[a])
    report = ingest_files(store, kind="campaigns", files=[b])
    assert (report.rows_added, report.rows_updated, report.rows_duplicate) == (1, 1, 1)
    assert store.con.execute(
        "SELECT campaign_id, user_id, action, cost FROM campaigns ORDER BY 1, 2"
    ).fetchall() == [("c1", "u1", "coupon", 2.0), ("c1", "u2", "call", 5.0), ("c2", "u1", "coupon", 2.0)]


def test_labels_keyed_upsert(store: Store, tmp_path: Path) -> None:
    a = write(tmp_path / "a.csv", "user_id,as_of,churned\nu1,2024-01-01,1\nu1,2024-02-01,0\n")
    b = write(tmp_path / "b.csv", "user_id,as_of,churned\nu1,2024-01-01T00:00:00Z,0\nu1,2024-02-01T00:00Z,false\n")
    ingest_files(store, kind="labels", files=[a])
    report = ingest_files(store, kind="labels", files=[b])
    assert (report.rows_added, report.rows_updated, report.rows_duplicate) == (0, 1, 1)
    assert store.con.execute("SELECT as_of, churned FROM labels ORDER BY 1").fetchall() == [
        (dt.datetime(2024, 1, 1), False),
        (dt.datetime(2024, 2, 1), False),
    ]


def test_default_type_only_for_events(store: Store, tmp_path: Path) -> None:
    f = write(tmp_path / "u.csv", "user_id\nu1\n")
    with pytest.raises(IngestError, match="--default-type only applies to events, not users"):
        ingest_files(store, kind="users", files=[f], default_type="order")
