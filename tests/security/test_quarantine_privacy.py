"""Issue 16, item 5: quarantined rows are as private as stored rows.

A bad row kept aside by ``--on-error quarantine`` used to be stored raw: e-mail addresses and phone
numbers unscrubbed, and the shop's own customer id even with ``ingest.pseudonymise = true``. Now
the user id field holds the same HMAC a stored row holds, and e-mail addresses and phone numbers
are scrubbed from every text field of the record and from the reason. Erasure still finds the
quarantined row (by the stored form of the id).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churnguard.config import IngestConfig
from churnguard.erasure import customer_ids, erase_customer_rows, stored_user_id
from churnguard.ingest import ingest_files, list_quarantine
from churnguard.store import Store

KEY_ENV = "CHURNGUARD_TEST_PSEUDONYM_KEY"
PRIVATE = IngestConfig(pseudonymise=True, pseudonym_key_env=KEY_ENV)
SECRETS = ("shop-customer-4711", "jane.doe@example.com", "+44 20 7946 0958", "13800138000")


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "a-test-key")


def quarantined_text(store: Store) -> str:
    return json.dumps(store.con.execute("SELECT * FROM quarantine").fetchall(), default=str,
                      ensure_ascii=False)


def csv_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.csv"
    path.write_text(
        "customer,ts,type,amount,text\n"
        "shop-customer-4711,2024-01-01,order,12,fine\n"
        "shop-customer-4711,not-a-time,review,,write to jane.doe@example.com or +44 20 7946 0958\n"
        "shop-customer-4711,2024-01-02,order,jane.doe@example.com,\n"
        "shop-customer-4711,2024-01-03,support_ticket,x,call 13800138000\n",
        encoding="utf-8")
    return path


def jsonl_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    rows = [{"customer": "shop-customer-4711", "ts": "2024-01-01", "type": "order"},
            {"customer": "shop-customer-4711", "ts": "later", "type": "review",
             "text": "mail jane.doe@example.com, phone +44 20 7946 0958 or 13800138000"}]
    path.write_text("\n".join(json.dumps(r) for r in rows)
                    + '\n{"customer": "shop-customer-4711", "text": "jane.doe@example.com"\n',
                    encoding="utf-8")
    return path


def parquet_file(tmp_path: Path) -> Path:
    path = tmp_path / "events.parquet"
    pq.write_table(pa.table({
        "customer": ["shop-customer-4711"] * 2, "ts": ["2024-01-01", "nope"],
        "type": ["order", "review"],
        "text": [None, "jane.doe@example.com +44 20 7946 0958 13800138000"]}), path)
    return path


@pytest.mark.parametrize("make", [csv_file, jsonl_file, parquet_file])
def test_quarantine_holds_no_raw_id_and_no_contact_details(
        store: Store, tmp_path: Path, make) -> None:  # noqa: ANN001
    path = make(tmp_path)
    report = ingest_files(store, kind="events", files=[path], mapping={"user_id": "customer"},
                          on_error="quarantine", config=PRIVATE)
    assert report.rows_bad >= 1
    text = quarantined_text(store)
    for secret in SECRETS:
        assert secret not in text
    pseudonym = stored_user_id("shop-customer-4711", PRIVATE)
    stored = store.con.execute("SELECT DISTINCT user_id FROM events").fetchall()
    assert stored == [(pseudonym,)]
    records = [r["record"] for r in list_quarantine(store) if r["record"] is not None]
    assert records and all(json.loads(r)["customer"] == pseudonym for r in records)


def test_quarantine_scrubs_text_without_pseudonyms(store: Store, tmp_path: Path) -> None:
    ingest_files(store, kind="events", files=[csv_file(tmp_path)],
                 mapping={"user_id": "customer"}, on_error="quarantine")
    rows = list_quarantine(store)
    assert [r["column_name"] for r in rows] == ["ts", "amount", "amount"]
    text = quarantined_text(store)
    assert "jane.doe@example.com" not in text and "7946" not in text and "13800138000" not in text
    first = json.loads(rows[0]["record"])
    assert first["text"] == "write to [email] or [phone]"
    assert rows[1]["reason"] == "'[email]' is not a number"


def test_erasure_still_finds_a_pseudonymised_quarantined_row(store: Store, tmp_path: Path) -> None:
    ingest_files(store, kind="events", files=[csv_file(tmp_path)],
                 mapping={"user_id": "customer"}, on_error="quarantine", config=PRIVATE)
    report = erase_customer_rows(store, customer_ids("shop-customer-4711", PRIVATE))
    assert report.rows_deleted["quarantine"] == 3
    assert report.rows_deleted["events"] == 1
    assert store.con.execute("SELECT count(*) FROM quarantine").fetchone() == (0,)
