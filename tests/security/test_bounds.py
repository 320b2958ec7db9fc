"""Issue 16, item 2: amounts, quantities, prices and costs are bounded, so one absurd value can no
longer break the DECIMAL(38, 6) sums of the features and stop the scoring of the whole shop.

Bounds (docs/ingest.md): an amount, price or cost at most ``ingest.max_amount`` in size (1e10 by
default), a quantity at most ``ingest.max_quantity`` (1e6); negative only for the amount and
quantity of a return (the refund). A row outside them is a bad row with file, row, column and
reason, and takes the usual --on-error path; POST /v1/events answers 422 naming the field.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from churnguard.config import IngestConfig
from churnguard.features import build_features
from churnguard.ingest import IngestError, Problem, ingest_files
from churnguard.store import Store

from security.conftest import store_rows
from service.helpers import READ, WRITE, headers

HEADER = "user_id,ts,type,amount,quantity\n"
GOOD = "u1,2024-01-01,order,10.5,1\n"


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def rejected(store: Store, path: Path, kind: str = "events", **kwargs: object) -> IngestError:
    before = store_rows(store)
    with pytest.raises(IngestError) as info:
        ingest_files(store, kind=kind, files=[path], **kwargs)
    assert store_rows(store) == before
    return info.value


@pytest.mark.parametrize(("row", "column", "reason"), [
    ("u2,2024-01-02,order,1e40,1", "amount", "'1e40' is out of range"),
    ("u2,2024-01-02,order,-1e300,1", "amount", "'-1e300' is out of range"),
    ("u2,2024-01-02,order,10000000001,1", "amount", "is out of range"),
    ("u2,2024-01-02,order,-5,1", "amount", "is negative; only a return"),
    ("u2,2024-01-02,order,5,-1", "quantity", "is negative; only a return"),
    ("u2,2024-01-02,order,5,2e6", "quantity", "'2e6' is out of range"),
])
def test_an_amount_or_quantity_out_of_bounds_is_a_bad_row(
        store: Store, tmp_path: Path, row: str, column: str, reason: str) -> None:
    path = write(tmp_path / "events.csv", HEADER + GOOD + row + "\n")
    error = rejected(store, path)
    (problem,) = error.problems
    assert (problem.file, problem.row, problem.line, problem.column) == (str(path), 2, 3, column)
    assert reason in problem.reason
    # skip and quarantine take the good row only.
    report = ingest_files(store, kind="events", files=[path], on_error="quarantine")
    assert (report.rows_added, report.rows_bad) == (1, 1)
    assert store.con.execute("SELECT column_name FROM quarantine").fetchall() == [(column,)]


def test_a_return_may_carry_its_refund_as_a_negative_amount(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", HEADER + "u1,2024-01-01,Return,-25.5,-1\n")
    assert ingest_files(store, kind="events", files=[path]).rows_added == 1
    assert store.con.execute("SELECT type, amount, quantity FROM events").fetchall() == [
        ("return", -25.5, -1.0)]


def test_the_bound_is_the_projects_setting(store: Store, tmp_path: Path) -> None:
    path = write(tmp_path / "events.csv", HEADER + "u1,2024-01-01,order,150,1\n")
    error = rejected(store, path, config=IngestConfig(max_amount=100))
    assert "ingest.max_amount" in error.problems[0].reason
    ingest_files(store, kind="events", files=[path], config=IngestConfig(max_amount=1000))
    with pytest.raises(ValueError, match="less than or equal"):
        IngestConfig(max_amount=1e20)  # beyond what the exact sums hold


@pytest.mark.parametrize(("kind", "text", "column"), [
    ("items", "item_id,price\ni1,5\ni2,1e40\n", "price"),
    ("items", "item_id,price\ni1,5\ni2,-3\n", "price"),
    ("campaigns", "user_id,campaign_id,action,assigned_at,is_control,cost\n"
                  "u1,c1,coupon,2024-01-01,false,1\nu2,c1,coupon,2024-01-01,false,-1e300\n", "cost"),
])
def test_prices_and_costs_are_bounded_and_never_negative(
        store: Store, tmp_path: Path, kind: str, text: str, column: str) -> None:
    error = rejected(store, write(tmp_path / f"{kind}.csv", text), kind=kind)
    assert [(p.row, p.column) for p in error.problems] == [(2, column)]


def test_a_parquet_double_out_of_bounds_is_a_bad_row(store: Store, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({"user_id": ["u1", "u2"], "ts": ["2024-01-01", "2024-01-02"],
                             "type": ["order", "order"], "amount": [3.0, 1e40]}), path)
    error = rejected(store, path)
    assert [(p.file, p.row, p.column) for p in error.problems] == [(str(path), 2, "amount")]


def test_features_can_be_built_after_any_accepted_amount(store: Store, tmp_path: Path) -> None:
    """The reason for the bound: the largest amount allowed, many times over, still sums exactly."""
    top = IngestConfig().max_amount
    rows = "".join(f"u1,2024-01-{d:02d},order,{top},1\n" for d in range(1, 29))
    ingest_files(store, kind="events", files=[write(tmp_path / "e.csv", HEADER + rows)])
    import datetime as dt

    import pandas as pd
    population = pd.DataFrame({"user_id": ["u1"], "cutoff": [dt.datetime(2024, 3, 1)]})
    features = build_features(store, population)
    assert features["order_amount_sum"].iloc[0] == pytest.approx(28 * top)


def test_the_api_refuses_an_amount_out_of_bounds(api: TestClient) -> None:
    event = {"user_id": "u1", "ts": "2026-01-01T00:00:00Z", "type": "order"}
    batch = {"events": [event | {"amount": 5}, event | {"amount": -1e300, "event_id": "e2"}]}
    response = api.post("/v1/events", headers=headers(WRITE), json=batch)
    assert response.status_code == 422
    body = response.json()["error"]
    assert body["code"] == "invalid_events"
    assert body["details"] == [{"location": ["body", "events", 1, "amount"],
                                "reason": "is out of range; amounts are bounded by "
                                          "ingest.max_amount and quantities by "
                                          "ingest.max_quantity"}]
    timeline = api.get("/v1/users/u1", headers=headers(READ))
    assert timeline.status_code == 404  # nothing was stored


def test_problem_reasons_name_the_setting(store: Store, tmp_path: Path) -> None:
    error = rejected(store, write(tmp_path / "e.csv", HEADER + "u1,2024-01-01,order,1e40,1\n"))
    assert str(error.problems[0]) == str(Problem(
        str(tmp_path / "e.csv"), 1, "amount",
        "'1e40' is out of range; amount must lie within ±1e+10 (ingest.max_amount in "
        "churnguard.toml)", 2))
