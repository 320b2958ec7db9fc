"""With pseudonymisation on, the service hashes ids exactly as ingestion does."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnguard.config import IngestConfig
from churnguard.erasure import stored_user_id
from churnguard.ingest import ingest_files
from churnguard.store import Store


def test_stored_user_id_matches_ingestion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNGUARD_PSEUDONYM_KEY", "a-secret-key-for-tests")
    config = IngestConfig(pseudonymise=True)
    events = tmp_path / "events.csv"
    events.write_text("user_id,ts,type\n  shop-customer-77 ,2025-01-01,order\n"
                      "客户-8,2025-01-02,visit\n")
    with Store.open(tmp_path / "churnguard.duckdb") as store:
        ingest_files(store, kind="events", files=[events], config=config)
        stored = {u for (u,) in store.con.execute("SELECT user_id FROM events").fetchall()}
    assert stored == {stored_user_id("shop-customer-77", config),
                      stored_user_id("客户-8", config)}
    assert stored_user_id("x") == "x"  # without pseudonymisation the id is kept (trimmed)
