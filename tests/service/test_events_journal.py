"""POST /v1/events while the store is lent (a scheduled cycle's process holds it): the batch is
validated, journaled on disk and answered 202; when the store comes back, every journaled event
is stored exactly once, also after a kill -9 of the service between the 202 and the store, and
after a crash between the store's commit and the journal's truncation."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from churnguard.lending import Borrower
from churnguard.project import Project
from churnguard.service.journal import JOURNAL_NAME, EventJournal
from churnguard.service.store_pool import StorePool
from churnguard.store import Store
from service.helpers import KEYS, READ, WRITE, ClientFactory, headers
from service.test_cli_while_serving import borrow_in_another_process
from service.test_serve import COMMANDS, STOP_TIMEOUT_S, serving

# Bounds against a hang, not measures of speed.
STORED_TIMEOUT_S = 120


def batch(user: str, n: int, *, ids: bool = True, day: int = 1) -> dict:
    return {"events": [
        {"user_id": user, "ts": f"2026-02-{day:02d}T10:{i:02d}:00Z", "type": "visit",
         **({"event_id": f"{user}-e{i}"} if ids else {})} for i in range(n)]}


def stored(root: Path, users: list[str]) -> dict[str, int]:
    """Events per customer, and how many distinct event ids, read from the store file."""
    with Store.open(root / "churnguard.duckdb", read_only=True) as store:
        rows = store.con.execute(
            "SELECT user_id, count(*), count(DISTINCT event_id) FROM events "
            "WHERE user_id IN (SELECT unnest(?)) GROUP BY user_id", [users]).fetchall()
    counts = {u: n for u, n, _ in rows}
    assert all(n == distinct for _, n, distinct in rows), rows  # never an event twice
    return counts


def journal_lines(root: Path) -> list[dict]:
    path = root / JOURNAL_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_until(check, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + STORED_TIMEOUT_S
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {STORED_TIMEOUT_S} s"
        time.sleep(0.05)


def test_events_posted_while_lent_are_journaled_then_stored_exactly_once(
        make_client: ClientFactory, project_dir: Path) -> None:
    client = make_client(warm_on_start=False)
    state = client.app.state.service
    users = ["journal-a", "journal-b"]
    lend = state.pool.lent(Borrower(pid=os.getpid(), command="a test", read_only=False))
    lend.__enter__()
    try:
        assert state.pool.lent_to is not None
        first = client.post("/v1/events", headers=headers(WRITE), json=batch("journal-a", 3))
        assert first.status_code == 202, first.text
        body = first.json()
        assert body["status"] == "queued" and body["received"] == 3
        assert body["store_lent_since"] is not None and "stored when the store" in body["message"]
        # The same batch again, and one without event ids (idempotent by content).
        assert client.post("/v1/events", headers=headers(WRITE),
                           json=batch("journal-a", 3)).status_code == 202
        assert client.post("/v1/events", headers=headers(WRITE),
                           json=batch("journal-b", 2, ids=False)).status_code == 202
        assert client.post("/v1/events", headers=headers(WRITE),
                           json=batch("journal-b", 2, ids=False)).status_code == 202
        # A batch that breaks the contract is refused now, as a direct post would be, and
        # nothing of it is journaled.
        bad = client.post("/v1/events", headers=headers(WRITE), json={"events": [
            {"user_id": "journal-bad", "ts": "2026-02-01T10:00:00Z", "type": "order",
             "amount": 1e11}]})  # over ingest.max_amount
        assert bad.status_code == 422, bad.text
        # On disk before the answer (the service may die any moment now), private to the user.
        lines = journal_lines(project_dir)
        assert [len(line["events"]) for line in lines] == [3, 3, 2, 2]
        assert (os.stat(project_dir / JOURNAL_NAME).st_mode & 0o777) == 0o600
        assert lines[0]["id"] == body["journal_id"]
        assert state.journal.pending
    finally:
        lend.__exit__(None, None, None)
    # The store is back: the journal is stored and emptied.
    wait_until(lambda: not state.journal.pending, "the journal stored")
    assert not (project_dir / JOURNAL_NAME).exists()
    timeline = client.get("/v1/users/journal-a", headers=headers(READ)).json()
    assert timeline["events_total"] == 3
    assert client.get("/v1/users/journal-b", headers=headers(READ)).json()["events_total"] == 2
    assert client.get("/v1/users/journal-bad", headers=headers(READ)).status_code == 404
    # Posts are stored directly again.
    after = client.post("/v1/events", headers=headers(WRITE), json=batch("journal-a", 4))
    assert after.status_code == 200 and after.json()["added"] == 1, after.text


def test_a_batch_that_comes_while_the_journal_is_stored_queues_behind_it(
        make_client: ClientFactory) -> None:
    client = make_client(warm_on_start=False)
    state = client.app.state.service
    state.journal.stop()  # no background drain: the test stores the journal itself
    with state.pool.lent(Borrower(pid=os.getpid(), command="a test", read_only=False)):
        assert client.post("/v1/events", headers=headers(WRITE),
                           json=batch("journal-c", 2)).status_code == 202
    # The store is back but the journal still holds a batch: a new one must not overtake it.
    behind = client.post("/v1/events", headers=headers(WRITE), json=batch("journal-c", 3))
    assert behind.status_code == 202 and behind.json()["store_lent_since"] is None
    assert state.journal.drain() == 3
    assert not state.journal.pending
    assert client.get("/v1/users/journal-c", headers=headers(READ)).json()["events_total"] == 3


def test_a_crash_between_the_store_and_the_journal_truncation_stores_nothing_twice(
        project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = Project.load(project_dir).config.ingest
    pool = StorePool(project_dir / "churnguard.duckdb")
    try:
        journal = EventJournal(root=project_dir, pool=pool, config=config,
                               on_stored=lambda store, report: None)
        with pool.lent(Borrower(pid=os.getpid(), command="a test", read_only=False)):
            journal.accept(batch("journal-d", 2)["events"])
            journal.accept(batch("journal-e", 2, ids=False)["events"])

        def crash(end: int) -> None:
            raise SystemExit("killed after the commit, before the truncation")

        monkeypatch.setattr(journal, "_drop_first", crash)
        with pytest.raises(SystemExit):
            journal.drain()
        monkeypatch.undo()
        assert len(journal_lines(project_dir)) == 2  # still there: applied again at start
        # A cut-short line a crash left at the end was never acknowledged: it is dropped.
        with (project_dir / JOURNAL_NAME).open("a") as fh:
            fh.write('{"id": "torn", "events": [{"user_id": "journal-torn"')
        again = EventJournal(root=project_dir, pool=pool, config=config,
                             on_stored=lambda store, report: None)
        assert again.pending
        assert again.drain() == 0  # everything was stored already
        assert not again.pending and not (project_dir / JOURNAL_NAME).exists()
    finally:
        pool.close()
    assert stored(project_dir, ["journal-d", "journal-e", "journal-torn"]) == {
        "journal-d": 2, "journal-e": 2}


@pytest.mark.slow
def test_events_journaled_by_a_service_killed_before_storing_them_are_stored_at_its_start(
        project_dir: Path) -> None:
    command = COMMANDS["churnguard serve"]
    users = [f"journal-k{i}" for i in range(5)]
    with serving(command, project_dir, keys=KEYS) as server:
        http = httpx.Client(base_url=server.url, timeout=120)
        borrower = borrow_in_another_process(project_dir, 600)
        try:
            for day, user in enumerate(users, start=1):
                answer = http.post("/v1/events", headers=headers(WRITE),
                                   json=batch(user, day, ids=day % 2 == 0, day=day))
                assert answer.status_code == 202, answer.text
            server.proc.send_signal(signal.SIGKILL)  # kill -9 between the 202s and the store
            server.proc.wait(timeout=STOP_TIMEOUT_S)
        finally:
            borrower.communicate("done\n", timeout=STOP_TIMEOUT_S)
            http.close()
    assert len(journal_lines(project_dir)) == len(users)
    assert stored(project_dir, users) == {}
    # The next start stores the journal before it answers.
    with serving(command, project_dir, keys=KEYS) as server:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            totals = {u: http.get(f"/v1/users/{u}", headers=headers(READ)).json()["events_total"]
                      for u in users}
    assert totals == {u: day for day, u in enumerate(users, start=1)}
    assert not (project_dir / JOURNAL_NAME).exists()
    assert stored(project_dir, users) == {u: day for day, u in enumerate(users, start=1)}
