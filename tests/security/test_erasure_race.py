"""Issue 16, item 3: an erasure that races another process for the store file.

When a process (a `churnguard status`, a backup tool) opens the store while the erasure rewrites
it, the erasure used to answer 500, every later request answered 500 "the store is closed" until
a restart, and the id's bytes stayed in the file (a retried DELETE answered 404). Now the
rewrite waits, then is recorded as pending (answer 202); the service stays up (503 while the
other process holds the file, 200 after); /readyz and `churnguard status` count the pending
erasure; and the rewrite runs later, after which no byte of the id is left in the file."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from churnguard import customers, erasure
from churnguard.cli import main
from churnguard.service import store_pool
from service.conftest import make_client, project_dir, template_project  # noqa: F401
from service.helpers import ADMIN, READ, WRITE, ClientFactory, error, headers

WHO = "race-me-5b1e77"
HOLDER = textwrap.dedent("""
    import sys
    from churnguard.store import Store
    with Store.open(sys.argv[1], read_only=True):
        print("holding", flush=True)
        sys.stdin.read()  # until the test closes our stdin
""")


def _hold(path: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


def _release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    assert holder.wait(timeout=60) == 0


def test_an_erasure_racing_another_process_completes_later(
        make_client: ClientFactory, project_dir: Path,  # noqa: F811
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(customers, "COMPACT_WAIT_S", 0.5)
    monkeypatch.setattr(store_pool, "REOPEN_WAIT_S", 0.5)
    store_file = project_dir / "churnguard.duckdb"
    client = make_client(warm_on_start=False)
    events = [{"user_id": WHO, "ts": f"2026-02-{d:02d}T12:00:00Z", "type": "order",
               "amount": 30.0} for d in (1, 8, 15)]
    assert client.post("/v1/events", headers=headers(WRITE),
                       json={"events": events}).json()["added"] == 3

    # Another process opens the store the moment the erasure has closed it to rewrite it.
    holders: list[subprocess.Popen[str]] = []
    real_compact = erasure.compact_store

    def racing_compact(path: Path, *, wait_s: float = 0.0) -> None:
        holders.append(_hold(path))
        real_compact(path, wait_s=wait_s)

    monkeypatch.setattr(customers, "compact_store", racing_compact)
    try:
        erased = client.delete(f"/v1/users/{WHO}", headers=headers(ADMIN))
        assert erased.status_code == 202 and erased.json()["compacted"] is False
        # The rows are gone at once; while the other process holds the file, the service says
        # so (503) instead of breaking.
        assert error(client.get("/v1/users/u0000001/risk", headers=headers(READ))) == \
            (503, "not_ready")
    finally:
        for holder in holders:
            _release(holder)
    assert client.get("/v1/users/u0000001/risk", headers=headers(READ)).status_code == 200
    assert error(client.get(f"/v1/users/{WHO}", headers=headers(READ))) == (404, "user_not_found")
    assert client.get("/readyz").json()["pending_erasures"] == 1
    client.__exit__(None, None, None)

    # `status` says an erasure waits; `erase --finish` rewrites the store; the bytes are gone.
    monkeypatch.setattr(customers, "compact_store", real_compact)
    assert main(["status", "--project", str(project_dir)]) == 0
    assert "1 erasure(s) wait for the store file to be rewritten" in capsys.readouterr().out
    assert main(["erase", "--finish", "--project", str(project_dir)]) == 0
    assert "Rewrote the store for 1 pending erasure(s)" in capsys.readouterr().out
    assert WHO.encode() not in store_file.read_bytes()
    assert erasure.pending_compactions(project_dir) == []


def test_the_service_finishes_a_pending_erasure_when_it_starts(
        make_client: ClientFactory, project_dir: Path) -> None:  # noqa: F811
    erasure.mark_pending(project_dir, "erasure-left-over")
    client = make_client(warm_on_start=False)
    assert client.get("/readyz").json()["pending_erasures"] == 0
    assert not (project_dir / erasure.PENDING_FILE).exists()
