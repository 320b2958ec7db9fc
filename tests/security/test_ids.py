"""Issue 16, item 11 (ingestion): one id limit everywhere, and no control characters in ids or
event types.

The REST API reads and erases a customer through ``/v1/users/{id}`` (at most 256 characters), so
an id ingested from a file must fit the same limit: user_id, item_id, event_id, campaign_id and
session_id are at most 256 characters, event types at most 64 (the API's limits). Escape
sequences and other control characters were stored and returned as they came; they are refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from churnguard.ingest import IngestError, ingest_files
from churnguard.store import Store

from security.conftest import store_rows
from service.helpers import READ, WRITE, headers

ID_MAX_CHARS = 256  # the documented limit (docs/ingest.md, docs/service.md)
LONG = "x" * (ID_MAX_CHARS + 1)


def rejected(store: Store, path: Path, kind: str) -> IngestError:
    before = store_rows(store)
    with pytest.raises(IngestError) as info:
        ingest_files(store, kind=kind, files=[path])
    assert store_rows(store) == before
    return info.value


@pytest.mark.parametrize(("kind", "header", "row", "column"), [
    ("events", "user_id,ts,type", f"{LONG},2024-01-01,order", "user_id"),
    ("events", "user_id,ts,type", f"{'y' * 1_000_000},2024-01-01,order", "user_id"),
    ("events", "user_id,ts,type,item_id", f"u1,2024-01-01,order,{LONG}", "item_id"),
    ("events", "user_id,ts,type,event_id", f"u1,2024-01-01,order,{LONG}", "event_id"),
    ("events", "user_id,ts,type,session_id", f"u1,2024-01-01,order,{LONG}", "session_id"),
    ("events", "user_id,ts,type", f"u1,2024-01-01,{'t' * 65}", "type"),
    ("users", "user_id", LONG, "user_id"),
    ("items", "item_id", LONG, "item_id"),
    ("campaigns", "user_id,campaign_id,action,assigned_at,is_control",
     f"u1,{LONG},coupon,2024-01-01,false", "campaign_id"),
])
def test_an_id_longer_than_the_api_can_reach_is_a_bad_row(
        store: Store, tmp_path: Path, kind: str, header: str, row: str, column: str) -> None:
    path = tmp_path / f"{kind}.csv"
    path.write_text(f"{header}\n{row}\n", encoding="utf-8")
    error = rejected(store, path, kind)
    (problem,) = error.problems
    assert (problem.file, problem.row, problem.line, problem.column) == (str(path), 1, 2, column)
    assert "characters long" in problem.reason
    assert "x" * 60 not in str(error)  # the message does not echo the id


def test_an_id_of_exactly_the_limit_is_stored(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(f"user_id,ts,type\n{'z' * ID_MAX_CHARS},2024-01-01,order\n", encoding="utf-8")
    assert ingest_files(store, kind="events", files=[path]).rows_added == 1


@pytest.mark.parametrize(("column", "value"), [
    ("type", "or\x1b[31mder"),
    ("type", "order\x00"),
    ("type", "order\x9b"),
    ("user_id", "u\x1b]8;;http://x\x07"),
    ("item_id", "i\x7f1"),
])
def test_control_characters_in_ids_and_event_types_are_refused(
        store: Store, tmp_path: Path, column: str, value: str) -> None:
    row = {"user_id": "u1", "ts": "2024-01-01", "type": "order", "item_id": "i1"} | {column: value}
    path = tmp_path / "events.jsonl"
    import json

    path.write_text(json.dumps({"user_id": "u0", "ts": "2024-01-01", "type": "view"}) + "\n"
                    + json.dumps(row) + "\n", encoding="utf-8")
    error = rejected(store, path, "events")
    assert [(p.row, p.column) for p in error.problems] == [(2, column)]
    assert "control character" in error.problems[0].reason


def test_the_api_refuses_an_escape_sequence_in_an_event_type(api: TestClient) -> None:
    event = {"user_id": "u1", "ts": "2026-01-01T00:00:00Z", "type": "or\u001b[31mder"}
    response = api.post("/v1/events", headers=headers(WRITE), json={"events": [event]})
    assert response.status_code == 422
    assert response.json()["error"]["details"] == [
        {"location": ["body", "events", 0, "type"],
         "reason": "holds a control character; ids and event types must be printable text"}]
    assert api.get("/v1/users/u1", headers=headers(READ)).status_code == 404


def test_every_stored_id_can_be_read_back_through_the_api(api: TestClient, tmp_path: Path) -> None:
    """The longest id ingestion keeps is one the API serves."""
    user = "u" * ID_MAX_CHARS
    event = {"user_id": user, "ts": "2026-01-01T00:00:00Z", "type": "order"}
    assert api.post("/v1/events", headers=headers(WRITE), json={"events": [event]}).status_code == 200
    assert api.get(f"/v1/users/{user}", headers=headers(READ)).json()["events_total"] == 1


def test_the_api_does_not_echo_an_id_it_could_never_store(api: TestClient) -> None:
    response = api.post("/v1/score", headers=headers(READ),
                        json={"user_ids": ["u1", "q" * 200_000]})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["location"] == ["body", "user_ids", 1]
    assert "q" * 300 not in response.text
