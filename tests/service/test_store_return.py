"""When a command gives the store back (a scheduled cycle's `churnguard run`, an ingest), a risk
answer the service knows in memory is given at once: it never waits for the store, whoever holds
it, nor for the background rescoring that follows.

Before, the return emptied the recommended actions, so every risk request went to a worker
thread and the store to read them again; with the background rescoring of 20,000 customers
holding the interpreter, requests queued for up to 21 s after a cycle (benchmarks/RESULTS.md,
"cycle_serve"). Here the store is held (as an erasure's file rewrite or the next borrower's
handover hold it) while known customers are asked for: the answers must come while it is held.
"""

from __future__ import annotations

import os
import threading
import time
from types import SimpleNamespace

import pytest

from churnguard.intervene.plan import make_plan, save_plan
from churnguard.lending import Borrower
from churnguard.service.journal import ingest_records
from churnguard.service.recommendations import Recommendations
from churnguard.store import Store

from service.helpers import READ, ClientFactory, headers

# A bound against a hang, not a measure of speed: with the store held, the old code never
# answered at all.
HANG_S = 60


def test_after_a_return_known_answers_come_while_the_store_is_held(
        make_client: ClientFactory) -> None:
    client = make_client()
    state = client.app.state.service
    with state.pool.reading() as store:
        users = [u for (u,) in store.con.execute(
            "SELECT DISTINCT user_id FROM events ORDER BY user_id").fetchall()]
    hits = [(risk.p_churn, u) for u in users
            for state_, risk in [state.risk.cached(u)] if state_ == "hit" and risk.p_churn]
    asked = [u for _, u in sorted(hits, reverse=True)[:30]]  # the riskiest: planned first
    other = next(u for u in users if u not in asked)
    before = {u: client.get(f"/v1/users/{u}/risk", headers=headers(READ)).json()
              for u in asked}
    # Hold the background rescoring the return asks for: the answers must not need it.
    go, refreshing = threading.Event(), threading.Event()
    rebuild = state.risk.rebuild

    def held_rebuild() -> bool:
        refreshing.set()
        assert go.wait(HANG_S * 5)
        return rebuild()

    state.risk.rebuild = held_rebuild
    holding, release = threading.Event(), threading.Event()

    def hold_the_store() -> None:
        with state.pool.exclusive():
            holding.set()
            assert release.wait(HANG_S * 5)

    holder = threading.Thread(target=hold_the_store, daemon=True)
    try:
        # A command borrows the store and writes one event of a customer not asked about.
        with state.pool.lent(Borrower(pid=os.getpid(), command="churnguard ingest events",
                                      read_only=False)):
            with Store.open(state.pool.path) as store:
                report = ingest_records(store, [{
                    "user_id": other, "ts": "2026-01-20T10:00:00Z", "type": "page_view",
                    "event_id": "store-return-test-1"}], state.project.config.ingest)
                assert report.rows_added == 1
                # ... and plans a campaign: the answers must carry its actions at once.
                plan = make_plan(store, config=state.project.config, budget=50.0)
                save_plan(store, plan, config=state.project.config)
                actions = dict(store.con.execute(
                    "SELECT user_id, action FROM plan_rows WHERE campaign_id = ? "
                    "AND NOT is_control AND action <> 'none'", [plan.campaign_id]).fetchall())
        assert refreshing.wait(HANG_S), "the return did not ask for a refresh"
        holder.start()
        assert holding.wait(HANG_S)
        answers: dict[str, object] = {}

        def ask() -> None:
            for user in asked:
                answers[user] = client.get(f"/v1/users/{user}/risk", headers=headers(READ))

        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        asking.join(HANG_S)
        assert not asking.is_alive(), \
            "a known customer's risk waited for the store after a command gave it back"
        assert any(u in actions for u in asked)
        for user in asked:
            got = answers[user]
            assert got.status_code == 200, got.text
            answer = got.json()
            action = answer.pop("recommended_action")
            assert answer == {k: v for k, v in before[user].items()
                              if k != "recommended_action"}  # the answer known before
            if user in actions:  # the returned store's plan, read before any request
                assert action["campaign_id"] == plan.campaign_id
                assert action["action"] == actions[user]
            else:
                assert action == before[user]["recommended_action"]
    finally:
        release.set()
        go.set()
        if holder.is_alive():
            holder.join(HANG_S)
    # Once the store is free again, the customer the command wrote about is scored afresh.
    deadline = time.monotonic() + HANG_S * 5
    while client.get(f"/v1/users/{other}/risk", headers=headers(READ)).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)


class _Plans:
    """A store whose plan query waits to be let go, then answers ``rows`` (or fails)."""

    def __init__(self, rows: list[tuple[object, ...]] | None) -> None:
        self.rows, self.release = rows, threading.Event()
        self.con = SimpleNamespace(execute=self._execute)

    def _execute(self, sql: str) -> SimpleNamespace:
        assert self.release.wait(30)
        if self.rows is None:
            raise RuntimeError("the store went away")
        return SimpleNamespace(fetchall=lambda: self.rows)


def _row(user: str, campaign: str) -> tuple[object, ...]:
    return (user, campaign, "coupon_10", "email", "hi", "你好", False)


def test_a_refresh_keeps_the_actions_held_until_the_new_ones_are_read() -> None:
    recommendations, first = Recommendations(), _Plans([_row("u1", "c1")])
    first.release.set()
    assert recommendations.refresh(first)
    second = _Plans([_row("u1", "c2")])
    reading = threading.Thread(target=recommendations.refresh, args=(second,))
    reading.start()
    try:
        # While the new plans are read, the held ones answer (never "not loaded").
        assert recommendations.loaded
        assert recommendations.get("u1").campaign_id == "c1"
    finally:
        second.release.set()
        reading.join(30)
    assert recommendations.get("u1").campaign_id == "c2"


def test_a_refresh_that_fails_empties_the_actions_so_requests_read_them(
        caplog: pytest.LogCaptureFixture) -> None:
    recommendations, first = Recommendations(), _Plans([_row("u1", "c1")])
    first.release.set()
    assert recommendations.refresh(first)
    broken = _Plans(None)
    broken.release.set()
    assert not recommendations.refresh(broken)
    assert not recommendations.loaded  # stale actions are not kept as if current
    assert "reading the recommended actions failed" in caplog.text
