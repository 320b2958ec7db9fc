"""Issue 16, item 4: an event from a wrong clock no longer moves "now" for every customer.

The API accepted years up to 2199 and files up to 9999; the newest event is the data's clock, so
one such event made every customer lapsed. Events dated later than the time of the ingest plus
``ingest.max_future_minutes`` (10 by default) are now bad rows (rejected, skipped or quarantined
with a reason); ``ingest.future_events = "allow"`` turns the check off, and is the default of a
simulated shop (``simulation.truth`` set), whose calendar may run past today.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from churnguard.config import NEW_PROJECT_TOML, IngestConfig, load_config
from churnguard.ingest import IngestError, ingest_files, list_quarantine
from churnguard.store import Store

from security.conftest import store_rows
from service.helpers import READ, WRITE, headers


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def events_file(tmp_path: Path, *stamps: str) -> Path:
    path = tmp_path / "events.csv"
    path.write_text("user_id,ts,type\n" + "".join(f"u{i},{ts},order\n" for i, ts in
                                                  enumerate(stamps)), encoding="utf-8")
    return path


def newest(store: Store) -> dt.datetime | None:
    return store.con.execute("SELECT max(ts) FROM events").fetchone()[0]


@pytest.mark.parametrize("stamp", ["2199-01-01T00:00:00Z", "9999-12-31T23:59:59+08:00",
                                   "2199-06-01 12:00Z"])
def test_an_event_from_a_wrong_clock_is_a_bad_row(store: Store, tmp_path: Path,
                                                  stamp: str) -> None:
    ingest_files(store, kind="events", files=[events_file(tmp_path, "2024-01-01T00:00:00Z")])
    before, clock = store_rows(store), newest(store)
    path = events_file(tmp_path, "2024-02-01T00:00:00Z", stamp)
    with pytest.raises(IngestError) as info:
        ingest_files(store, kind="events", files=[path])
    assert store_rows(store) == before
    (problem,) = info.value.problems
    assert (problem.row, problem.column) == (2, "ts")
    assert "is in the future" in problem.reason and "ingest.max_future_minutes" in problem.reason
    # Quarantined: the good row loads, the data clock does not follow the bad one.
    ingest_files(store, kind="events", files=[path], on_error="quarantine")
    assert newest(store) == dt.datetime(2024, 2, 1) > clock
    assert [r["column_name"] for r in list_quarantine(store)] == ["ts"]


def test_a_clock_a_little_ahead_is_allowed_within_the_setting(store: Store,
                                                              tmp_path: Path) -> None:
    ahead = (now() + dt.timedelta(minutes=3)).isoformat() + "Z"
    path = events_file(tmp_path, ahead)
    with pytest.raises(IngestError, match="is in the future"):
        ingest_files(store, kind="events", files=[path], config=IngestConfig(max_future_minutes=1))
    assert ingest_files(store, kind="events", files=[path]).rows_added == 1


def test_the_check_can_be_turned_off(store: Store, tmp_path: Path) -> None:
    path = events_file(tmp_path, "2199-01-01T00:00:00Z")
    report = ingest_files(store, kind="events", files=[path],
                          config=IngestConfig(future_events="allow"))
    assert report.rows_added == 1


def test_a_simulated_shop_keeps_its_own_calendar(tmp_path: Path) -> None:
    """The demo's two simulated years end 2027-01-01, after today: its project allows them,
    unless the project says otherwise; a shop's project does not."""
    path = tmp_path / "churnguard.toml"
    path.write_text("[simulation]\ntruth = 'data/truth/churn.parquet'\n", encoding="utf-8")
    assert load_config(path).ingest.future_events == "allow"
    path.write_text("[ingest]\nfuture_events = 'reject'\n[simulation]\ntruth = 'x'\n",
                    encoding="utf-8")
    assert load_config(path).ingest.future_events == "reject"
    path.write_text("", encoding="utf-8")
    assert load_config(path).ingest.future_events == "reject"
    path.write_text(NEW_PROJECT_TOML, encoding="utf-8")
    assert load_config(path).ingest.future_events == "reject"
    # What `churnguard demo` does: a new project, then the simulation's truth recorded in it.
    from churnguard.demo import _point_at_truth
    from churnguard.project import Project, init_project

    project, _ = init_project(tmp_path / "demo")
    _point_at_truth(project, tmp_path / "demo" / "data" / "truth" / "churn.parquet")
    assert Project.load(project.root).config.ingest.future_events == "allow"


def test_the_api_refuses_an_event_from_2199(api: TestClient) -> None:
    good = {"user_id": "u1", "ts": "2026-01-01T00:00:00Z", "type": "order"}
    bad = {"user_id": "u2", "ts": "2199-12-31T00:00:00Z", "type": "order"}
    response = api.post("/v1/events", headers=headers(WRITE), json={"events": [good, bad]})
    assert response.status_code == 422
    assert response.json()["error"]["details"] == [
        {"location": ["body", "events", 1, "ts"],
         "reason": "is in the future; events later than the time of the request plus "
                   "ingest.max_future_minutes are refused"}]
    assert api.get("/v1/users/u1", headers=headers(READ)).status_code == 404
    assert api.post("/v1/events", headers=headers(WRITE),
                    json={"events": [good]}).status_code == 200
