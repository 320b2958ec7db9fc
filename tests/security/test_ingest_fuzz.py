"""Issue 16, "done when": random malformed rows and files thrown at ingestion (CSV, Parquet, JSON
lines, and POST /v1/events) never crash it.

For every input, ingestion either loads it or raises :class:`IngestError` (the API: answers 200 or
a 4xx, never a 5xx); a rejected input leaves the store exactly as it was; every error names the
file (the API: the field), and every problem about a row names its column. Hypothesis runs
derandomized, so a failure is reproduced by the next run.
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churnguard.config import IngestConfig
from churnguard.ingest import IngestError, ingest_files
from churnguard.store import Store

from security.conftest import store_rows
from service.helpers import WRITE, headers

FUZZ = settings(derandomize=True, max_examples=40, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
COLUMNS = ("user_id", "ts", "type", "event_id", "item_id", "amount", "quantity", "text",
           "rating", "channel", "session_id")

# Values that are sometimes right and often wrong: each column gets any of them.
_weird_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)),
                      max_size=40)
_numbers = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e40", "-1e300", "￥1,234.50", "1,5", "-0", "12", "3.5", "ten", "0x10"]),
)
_timestamps = st.one_of(
    st.sampled_from(["2024-01-31", "2024-01-31T10:00:00+08:00", "2024-13-45", "9999-12-31",
                     "0001-01-01", "2024-01-31 10:00", "yesterday", "2024-02-30T25:00:00Z"]),
    st.datetimes().map(lambda d: d.isoformat()),
)
_values = st.one_of(st.none(), st.just(""), _weird_text, _numbers, _timestamps,
                    st.sampled_from(["order", "return", "x" * 300, "a\x1b[31m", "u\x00"]))
# Mostly plausible rows, so that many load and the loaded ones are checked against the contract.
_plausible = {"user_id": st.sampled_from(["u1", "u2"]), "ts": st.just("2024-01-31T10:00:00Z"),
              "type": st.sampled_from(["order", "return", "view"])}
def _mostly(plausible: st.SearchStrategy) -> st.SearchStrategy:
    """Three times in four the plausible value, else any value."""
    return st.integers(0, 3).flatmap(lambda i: plausible if i else _values)


_by_column = {"amount": _numbers, "quantity": _numbers, "text": _weird_text,
              "rating": _mostly(st.sampled_from(["1", "5"]))}
_rows = st.lists(
    st.fixed_dictionaries({c: _mostly(v) for c, v in _plausible.items()},
                          optional={c: _by_column.get(c, _values) for c in COLUMNS if c not in _plausible}),
    min_size=1, max_size=6)


def _seeded_store(folder: Path) -> Store:
    store = Store.in_memory()
    seed = folder / "seed.csv"
    seed.write_text("user_id,ts,type\ns1,2024-01-01,order\n", encoding="utf-8")
    ingest_files(store, kind="events", files=[seed])
    return store


def _write(folder: Path, fmt: str, rows: list[dict]) -> Path:
    names = list(dict.fromkeys(["user_id", "ts", "type", *(k for r in rows for k in r)]))
    path = folder / f"events.{fmt}"
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(names)
        writer.writerows([[r.get(n) or "" for n in names] for r in rows])
        path.write_text(buffer.getvalue(), encoding="utf-8")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                        encoding="utf-8")
    else:
        pq.write_table(pa.table({n: pa.array([r.get(n) for r in rows], pa.string())
                                 for n in names}), path)
    return path


def _within_the_contract(store: Store) -> None:
    """Every stored event keeps the documented bounds (docs/ingest.md, the defaults)."""
    bad = store.con.execute(
        "SELECT count(*) FROM events WHERE abs(amount) > ? OR abs(quantity) > ? "
        "OR (least(amount, quantity) < 0 AND type <> 'return') "
        "OR greatest(length(user_id), length(event_id), length(item_id), length(session_id)) > 256 "
        "OR length(type) > 64 OR regexp_matches(concat(user_id, type, event_id, item_id, "
        "session_id), '[\\x00-\\x1F\\x7F-\\x9F]') "
        "OR ts > now()::TIMESTAMP + INTERVAL 10 MINUTE",
        [1e10, 1e6]).fetchone()[0]
    assert bad == 0


def _check(store: Store, path: Path, **kwargs: object) -> None:
    """Ingest ``path``: it loads, or it fails with IngestError, naming the file, and changes
    nothing; what loads keeps the contract."""
    before = store_rows(store)
    try:
        ingest_files(store, kind="events", files=[path], config=IngestConfig(), **kwargs)
        _within_the_contract(store)
    except IngestError as err:
        assert store_rows(store) == before
        assert str(path) in str(err)
        for problem in err.problems:
            assert problem.file == str(path)
            if problem.row is not None and problem.reason != "not valid JSON":
                assert problem.column, problem


@FUZZ
@given(rows=_rows, fmt=st.sampled_from(["csv", "jsonl", "parquet"]),
       on_error=st.sampled_from(["reject", "quarantine"]))
def test_random_rows_never_crash_ingestion(rows: list[dict], fmt: str, on_error: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = _seeded_store(folder)
        try:
            _check(store, _write(folder, fmt, rows), on_error=on_error)
        finally:
            store.close()


@FUZZ
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".jsonl", ".parquet",
                                                            ".csv.gz"]),
       prefix=st.sampled_from([b"", b"user_id,ts,type\n", b"\xff\xfe", b"PAR1", b'{"user_id":']))
def test_random_bytes_never_crash_ingestion(data: bytes, suffix: str, prefix: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        store = _seeded_store(folder)
        path = folder / f"input{suffix}"
        path.write_bytes(prefix + data)
        try:
            _check(store, path)
        finally:
            store.close()


_json_values = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False), _weird_text, _timestamps,
    st.sampled_from(["x" * 300, "or\u001bder", "u\u0000"]))
_api_events = st.lists(
    st.fixed_dictionaries(
        {"user_id": st.one_of(_weird_text, st.just("u1")), "ts": _timestamps,
         "type": st.one_of(_weird_text, st.just("order"))},
        optional={c: _json_values for c in ("event_id", "item_id", "amount", "quantity",
                                            "text", "rating", "channel", "session_id")}),
    min_size=1, max_size=4)


def _events_stored(api: TestClient) -> int:
    with api.app.state.service.pool.reading() as store:
        return store.con.execute("SELECT count(*) FROM events").fetchone()[0]


@FUZZ
@given(events=_api_events)
def test_random_events_through_the_api_get_200_or_a_4xx(api: TestClient, events: list) -> None:
    before = _events_stored(api)
    response = api.post("/v1/events", headers=headers(WRITE), json={"events": events})
    assert response.status_code in (200, 413, 422), response.text
    if response.status_code == 200:
        assert _events_stored(api) == before + response.json()["added"]
        with api.app.state.service.pool.reading() as store:
            _within_the_contract(store)
        return
    assert _events_stored(api) == before
    for detail in response.json()["error"].get("details", []):
        assert detail["location"][:2] == ["body", "events"], detail
        assert detail["reason"]


def test_the_fuzzers_can_fail(tmp_path: Path) -> None:
    """The checks above are not vacuous: an input that changes the store and then raises fails
    them (the store is compared, not assumed)."""
    store = _seeded_store(tmp_path)
    path = tmp_path / "e.csv"
    path.write_text("user_id,ts,type,amount\nu1,2024-01-01,order,1\n", encoding="utf-8")
    ingest_files(store, kind="events", files=[path])
    before = store_rows(store)
    store.con.execute("DELETE FROM events WHERE user_id = 'u1'")
    assert store_rows(store) != before
    store.con.execute("UPDATE events SET amount = 1e40")
    with pytest.raises(AssertionError):
        _within_the_contract(store)
    store.close()
