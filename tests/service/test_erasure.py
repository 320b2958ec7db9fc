"""DELETE /v1/users/{id}: afterwards no table row and no file under the project holds the id."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from churnguard.erasure import tables_mentioning
from churnguard.ingest import ingest_files
from churnguard.project import Project
from churnguard.scoring import score_customers
from churnguard.store import Store
from service.helpers import ADMIN, READ, WRITE, ClientFactory, error, headers

WHO = "erase-me-7f3a9c"


def _holds(path: Path, needle: str) -> bool:
    """Parquet is read as data (its compressed pages hide an id's bytes), anything else as
    UTF-8/16/32 bytes."""
    if needle in path.name:
        return True
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        return any(needle in str(v) for column in table.columns for v in column.to_pylist())
    data = path.read_bytes()
    return any(needle.encode(c) in data for c in ("utf-8", "utf-16-le", "utf-32-le"))


def _holding(root: Path, needle: str) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.is_file() and _holds(p, needle))


def _parquet_export(path: Path, user_ids: list[str]) -> None:
    """Scores as a BI tool exports them, among 60 other customers: zstd pages, no statistics."""
    ids = [f"u9{i:06d}" for i in range(60)] + user_ids
    pq.write_table(pa.table({"user_id": ids, "p_churn": [0.4] * len(ids)}), path,
                   compression="zstd", write_statistics=False)


def _seed_every_table(project: Project, inputs: Path) -> None:
    """The customer in users, attributes, labels, campaigns, quarantine, scores, backtest
    predictions, a plan and its delivery (their events come through the API)."""
    inputs.mkdir()
    (inputs / "users.csv").write_text(f"user_id,signup_ts,region\n{WHO},2025-03-01,eu-west\n")
    (inputs / "labels.csv").write_text(f"user_id,as_of,churned\n{WHO},2025-12-01,false\n")
    (inputs / "campaigns.csv").write_text(
        "user_id,campaign_id,action,assigned_at,is_control\n"
        f"{WHO},hist-1,coupon_10,2025-11-01,false\n")
    (inputs / "bad.csv").write_text(f"user_id,ts,type\n{WHO},not-a-time,order\n")
    with project.open_store() as store:
        for kind in ("users", "labels", "campaigns"):
            ingest_files(store, kind=kind, files=[inputs / f"{kind}.csv"])
        ingest_files(store, kind="events", files=[inputs / "bad.csv"], on_error="quarantine")
        result = score_customers(store, definition=project.config.churn,
                                 tiers=project.config.scoring)
        assert WHO in set(result.scores["user_id"])
        store.con.execute("INSERT INTO plans VALUES ('camp-1', now(), now(), 50, 'delivered', "
                          "'{}', '{}')")
        store.con.execute("INSERT INTO plan_rows (campaign_id, user_id, action, is_control, "
                          "message_en) VALUES ('camp-1', ?, 'coupon_10', false, 'Hi')", [WHO])
        store.con.execute("INSERT INTO deliveries VALUES ('camp-1', ?, 'k1', 'crm', 'sent', 1, "
                          "200, NULL, now())", [WHO])
        store.con.execute("INSERT INTO backtest_predictions VALUES ('run-1', 'gbdt', ?, true, "
                          "0.4)", [WHO])


def test_erasure_leaves_no_row_and_no_file_with_the_id(make_client: ClientFactory,
                                                       project_dir: Path,
                                                       tmp_path: Path) -> None:
    project = Project.load(project_dir)
    client = make_client(warm_on_start=False)
    events = [{"user_id": WHO, "ts": f"2026-02-{d:02d}T12:00:00Z", "type": t, "amount": 30.0,
               "text": f"review by {WHO}" if t == "review" else None}
              for d in (1, 8, 15, 22) for t in ("visit", "order", "review")]
    events = [{k: v for k, v in e.items() if v is not None} for e in events]
    assert client.post("/v1/events", headers=headers(WRITE),
                       json={"events": events}).json()["added"] == 12
    client.__exit__(None, None, None)  # release the store to seed the other tables

    _seed_every_table(project, tmp_path / "inputs")
    cache = project_dir / ".churnguard-cache" / "sequences" / "20260225-x"
    cache.mkdir(parents=True)
    np.save(cache / "users.npy", np.array(["u0000001", WHO]))
    (project_dir / "exports").mkdir()
    (project_dir / "exports" / "scores.csv").write_text(f"user_id,p\n{WHO},0.4\n")
    (project_dir / "exports" / "other.csv").write_text("user_id,p\nu0000001,0.4\n")
    _parquet_export(project_dir / "exports" / "scores.parquet", ["u0000001", WHO])
    _parquet_export(project_dir / "exports" / "other.parquet", ["u0000001"])
    (project_dir / "exports" / "contacts.json").write_text(json.dumps(
        [{"user_id": "u0000001", "action": "coupon_10"}, {"user_id": WHO, "action": "none"}]))
    # A byte scan cannot see the id in the Parquet export; only reading it as data does.
    assert WHO.encode() not in (project_dir / "exports" / "scores.parquet").read_bytes()
    assert _holding(project_dir / "exports", WHO) == ["contacts.json", "scores.csv",
                                                      "scores.parquet"]
    with Store.open(project.store_path) as store:
        # an agent's decision on one of their tickets (the assistant's log names the customer)
        store.con.execute("INSERT INTO assist_log VALUES ('a1', '2026-01-01', ?, 't1', 'en', "
                          "'rejected', NULL, NULL, 0.9, false, NULL)", [WHO])
        before = tables_mentioning(store, [WHO])
    assert {"events", "users", "user_attributes", "labels", "campaigns", "quarantine", "scores",
            "plan_rows", "deliveries", "backtest_predictions", "assist_log"} <= set(before)

    client = make_client(warm_on_start=False)
    assert client.get(f"/v1/users/{WHO}/risk", headers=headers(READ)).status_code == 200
    erased = client.delete(f"/v1/users/{WHO}", headers=headers(ADMIN))
    assert erased.status_code == 200
    body = erased.json()
    assert body["rows_deleted"] == {"events": 12, "users": 1, "user_attributes": 1, "labels": 1,
                                    "campaigns": 1, "scores": 1, "backtest_predictions": 1,
                                    "plan_rows": 1, "deliveries": 1, "quarantine": 1,
                                    "assist_log": 1}
    # The cache's file is deleted; the three exports lose the customer's rows, nothing else
    # (issue 16, item 1: an erasure never deletes a file it did not write for the customer).
    assert body["files_deleted"] == 1
    assert body["files_rewritten"] == ["exports/contacts.json", "exports/scores.csv",
                                       "exports/scores.parquet"]
    assert body["files_to_review"] == []
    assert WHO not in erased.text

    # The service goes on, without the customer.
    assert error(client.get(f"/v1/users/{WHO}/risk", headers=headers(READ))) == \
        (404, "user_not_found")
    assert error(client.get(f"/v1/users/{WHO}", headers=headers(READ))) == \
        (404, "user_not_found")
    assert client.get("/v1/users/u0000001/risk", headers=headers(READ)).status_code == 200
    assert error(client.delete(f"/v1/users/{WHO}", headers=headers(ADMIN))) == \
        (404, "user_not_found")
    client.__exit__(None, None, None)

    with Store.open(project.store_path, read_only=True) as store:
        assert tables_mentioning(store, [WHO]) == {}
        audit = store.con.execute("SELECT erasure_id, rows_deleted FROM erasures").fetchall()
    assert [(a, json.loads(r)) for a, r in audit] == [(body["erasure_id"], body["rows_deleted"])]
    assert _holding(project_dir, WHO) == []
    assert (project_dir / "exports" / "other.csv").exists()
    assert (project_dir / "exports" / "other.parquet").exists()


def test_erasure_after_a_real_plan_and_delivery(make_client: ClientFactory, project_dir: Path
                                                ) -> None:
    """Score, plan (the planner's own rows: plan_rows, campaigns) and deliver to a file in the
    project, then erase one contacted customer: no row and no file keeps their id."""
    from churnguard.intervene.deliver import deliver_plan
    from churnguard.intervene.plan import make_plan, save_plan

    project = Project.load(project_dir)
    with project.open_store() as store:
        # `plan` reads scores without storing them; `score` stores them.
        score_customers(store, definition=project.config.churn, tiers=project.config.scoring)
        plan = make_plan(store, config=project.config, budget=1e6, campaign_id="real-1")
        save_plan(store, plan, config=project.config)
        contacted = plan.rows.loc[~plan.rows["is_control"], "user_id"]
        assert len(contacted) > 0
        who = str(contacted.iloc[0])
        report = deliver_plan(store, campaign_id="real-1", out=project_dir / "sent.jsonl")
        assert report.sent == len(contacted)
        assert {"plan_rows", "campaigns", "deliveries", "scores"} <= set(
            tables_mentioning(store, [who]))
    assert "sent.jsonl" in _holding(project_dir, who)

    client = make_client(warm_on_start=False)
    assert client.delete(f"/v1/users/{who}", headers=headers(ADMIN)).status_code == 200
    client.__exit__(None, None, None)
    with Store.open(project.store_path, read_only=True) as store:
        assert tables_mentioning(store, [who]) == {}
    assert _holding(project_dir, who) == []
