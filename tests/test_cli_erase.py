"""``churnguard erase USER_ID``: the same erasure as ``DELETE /v1/users/{id}`` (both call
:func:`churnguard.customers.erase`): afterwards no table row and no file under the project holds
the id; an unknown id is bad input (exit code 2, like the API's 404)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from churnguard.cli import main
from churnguard.erasure import tables_mentioning
from churnguard.ingest import ingest_files
from churnguard.store import Store

WHO = "erase-me-7f3a9c"
OTHER = "u0000001"


def _holding(root: Path, needle: str) -> list[str]:
    patterns = [needle.encode(c) for c in ("utf-8", "utf-16-le", "utf-32-le")]
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and (needle in p.name
                                      or any(x in p.read_bytes() for x in patterns)))


def _seed(root: Path, inputs: Path) -> None:
    """The customer (and one other) in events, users, attributes, labels, campaigns,
    quarantine, a plan and its delivery, backtest predictions; a cache and an export."""
    inputs.mkdir()
    (inputs / "events.csv").write_text(
        "user_id,ts,type,amount\n"
        + "".join(f"{u},2026-02-{d:02d}T12:00:00Z,order,30\n" for u in (WHO, OTHER)
                  for d in (1, 8, 15)))
    (inputs / "users.csv").write_text(
        f"user_id,signup_ts,region\n{WHO},2025-03-01,eu-west\n{OTHER},2025-03-02,eu-west\n")
    (inputs / "labels.csv").write_text(f"user_id,as_of,churned\n{WHO},2025-12-01,false\n")
    (inputs / "campaigns.csv").write_text(
        "user_id,campaign_id,action,assigned_at,is_control\n"
        f"{WHO},hist-1,coupon_10,2025-11-01,false\n")
    (inputs / "bad.csv").write_text(f"user_id,ts,type\n{WHO},not-a-time,order\n")
    with Store.open(root / "churnguard.duckdb") as store:
        for kind in ("events", "users", "labels", "campaigns"):
            ingest_files(store, kind=kind, files=[inputs / f"{kind}.csv"])
        ingest_files(store, kind="events", files=[inputs / "bad.csv"], on_error="quarantine")
        store.con.execute("INSERT INTO plans VALUES ('camp-1', now(), now(), 50, 'delivered', "
                          "'{}', '{}')")
        store.con.execute("INSERT INTO plan_rows (campaign_id, user_id, action, is_control, "
                          "message_en) VALUES ('camp-1', ?, 'coupon_10', false, 'Hi')", [WHO])
        store.con.execute("INSERT INTO deliveries VALUES ('camp-1', ?, 'k1', 'crm', 'sent', 1, "
                          "200, NULL, now())", [WHO])
        store.con.execute("INSERT INTO backtest_predictions VALUES ('run-1', 'gbdt', ?, true, "
                          "0.4)", [WHO])
    cache = root / ".churnguard-cache" / "sequences" / "20260225-x"
    cache.mkdir(parents=True)
    np.save(cache / "users.npy", np.array([OTHER, WHO]))
    (root / "exports").mkdir()
    (root / "exports" / "scores.csv").write_text(f"user_id,p\n{WHO},0.4\n")
    (root / "exports" / "other.csv").write_text(f"user_id,p\n{OTHER},0.4\n")


def test_erase_leaves_no_row_and_no_file_with_the_id(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "shop"
    assert main(["init", str(root)]) == 0
    _seed(root, tmp_path / "inputs")
    with Store.open(root / "churnguard.duckdb", read_only=True) as store:
        before = tables_mentioning(store, [WHO])
    assert {"events", "users", "user_attributes", "labels", "campaigns", "quarantine",
            "plan_rows", "deliveries", "backtest_predictions"} <= set(before)
    capsys.readouterr()

    assert main(["erase", WHO, "--project", str(root)]) == 0
    out, _ = capsys.readouterr()
    assert WHO not in out  # like the API's answer: the output names no one

    with Store.open(root / "churnguard.duckdb", read_only=True) as store:
        assert tables_mentioning(store, [WHO]) == {}
        assert tables_mentioning(store, [OTHER]) != {}
        audit = store.con.execute("SELECT erasure_id, rows_deleted FROM erasures").fetchall()
    assert len(audit) == 1
    assert json.loads(audit[0][1]) == {"events": 3, "users": 1, "user_attributes": 1,
                                       "labels": 1, "campaigns": 1, "scores": 0,
                                       "backtest_predictions": 1, "plan_rows": 1,
                                       "deliveries": 1, "quarantine": 1}
    assert audit[0][0] in out
    assert _holding(root, WHO) == []
    assert (root / "exports" / "other.csv").exists()

    # The same erasure again: nobody is left to erase, which is bad input (the API's 404).
    assert main(["erase", WHO, "--project", str(root)]) == 2
    out, err = capsys.readouterr()
    assert "no such customer" in out + err
    with Store.open(root / "churnguard.duckdb", read_only=True) as store:
        assert len(store.con.execute("SELECT * FROM erasures").fetchall()) == 1


def test_erase_of_an_unknown_id_changes_nothing(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "shop"
    assert main(["init", str(root)]) == 0
    assert main(["erase", "nobody-here", "--project", str(root)]) == 2
    with Store.open(root / "churnguard.duckdb", read_only=True) as store:
        assert store.con.execute("SELECT count(*) FROM erasures").fetchall() == [(0,)]
