"""Issue 16, item 6: Chinese personal data is scrubbed, and contact details do not slip in as
attributes.

``ingest.scrub_text`` replaced e-mail addresses and Western phone numbers only: a mainland mobile
written without +86 (``13800138000``) and an 18-character resident identity number survived. User
and item attribute columns were stored as they came, whatever they held.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from churnguard.config import IngestConfig
from churnguard.erasure import stored_user_id
from churnguard.ingest import IngestError, ingest_files
from churnguard.store import Store

from security.conftest import store_rows


@pytest.mark.parametrize(("text", "scrubbed"), [
    ("请打电话13800138000", "请打电话[phone]"),
    ("手机 138 0013 8000 谢谢", "手机 [phone] 谢谢"),
    ("mobile 8613912345678", "mobile [phone]"),
    ("座机 010-12345678 或 0755 1234567", "座机 [phone] 或 [phone]"),
    ("身份证号11010519491231002X，收货地址", "身份证号[id]，收货地址"),
    ("id 440308199901011234 ok", "id [id] ok"),
    # Left alone: order numbers, prices, dates, ratings, a 10-digit tracking number.
    ("订单 12345，价格 199.00 元，2024-01-31，5 星", "订单 12345，价格 199.00 元，2024-01-31，5 星"),
    ("tracking 1234567890", "tracking 1234567890"),
])
def test_mainland_phones_and_id_numbers_are_scrubbed_from_text(
        store: Store, tmp_path: Path, text: str, scrubbed: str) -> None:
    path = tmp_path / "events.csv"
    path.write_text(f"user_id,ts,type,text\nu1,2024-01-01,review,{text}\n", encoding="utf-8")
    ingest_files(store, kind="events", files=[path])
    assert store.con.execute("SELECT text FROM events").fetchone() == (scrubbed,)


def test_an_attribute_holding_contact_details_is_refused(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "users.csv"
    path.write_text("user_id,region,mobile,email\n"
                    "u1,cn-east,,\n"
                    "u2,cn-east,13800138000,\n"
                    "u3,eu-west,,jane@example.com\n", encoding="utf-8")
    before = store_rows(store)
    with pytest.raises(IngestError) as info:
        ingest_files(store, kind="users", files=[path])
    assert store_rows(store) == before
    assert [(p.row, p.column) for p in info.value.problems] == [(2, "mobile"), (3, "email")]
    assert "ingest.pseudonymised_attributes" in info.value.problems[0].reason
    assert "13800138000" not in str(info.value)


def test_a_declared_contact_attribute_is_kept_as_a_pseudonym(
        store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNGUARD_TEST_KEY", "k")
    config = IngestConfig(pseudonymised_attributes=("mobile",), pseudonym_key_env="CHURNGUARD_TEST_KEY")
    path = tmp_path / "users.csv"
    path.write_text("user_id,region,mobile\nu1,cn-east,13800138000\n", encoding="utf-8")
    ingest_files(store, kind="users", files=[path], config=config)
    stored = dict(store.con.execute("SELECT name, value FROM user_attributes").fetchall())
    hmac_of = stored_user_id("13800138000", IngestConfig(pseudonymise=True,
                                                         pseudonym_key_env="CHURNGUARD_TEST_KEY"))
    assert stored == {"region": "cn-east", "mobile": hmac_of}
