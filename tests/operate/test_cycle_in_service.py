"""A cycle run by the service (ServiceState.run_cycle, what its scheduler calls: `churnguard run`
in a child process that borrows the store) leaves the risk answers standing until their
replacements are computed in the background: voiding them made every request compute its
answer on the spot meanwhile, which at 20,000 customers queued requests for seconds
(benchmarks/RESULTS.md, "cycle")."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from churnguard.project import Project
from churnguard.registry import CHAMPION, alias_version
from churnguard.service import create_app

from service.helpers import READ, headers, settings


@pytest.mark.slow
def test_after_a_cycle_in_the_service_the_answers_stand_until_the_refresh(
        project: Project, late_events: pd.DataFrame) -> None:
    config = project.root / "churnguard.toml"
    # No challenger due (a champion a year young, no drift check that could make one due),
    # so the cycle changes the events and not the champion.
    # A plan is due, so the answers' recommended action must come from the cycle's plan.
    config.write_text(config.read_text().split("\n[operate]\n")[0]
                      + "\n[operate]\nretrain_every_days = 365\nplan_budget = 40.0\n")
    app = create_app(Project.load(project.root), settings(), lend=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        state = app.state.service
        assert state.risk.wait_explained(120)
        with state.pool.reading() as store:
            champion = alias_version(store, CHAMPION)
            (events_before,) = store.con.execute("SELECT count(*) FROM events").fetchall()[0]
            # Customers the cycle's events do not touch (those it touches are scored afresh
            # on their next request, as after any command's ingest).
            users = [u for (u,) in store.con.execute(
                "SELECT user_id FROM scores WHERE user_id NOT IN (SELECT unnest(?)) "
                "ORDER BY p_churn DESC LIMIT 5",
                [sorted(set(late_events["user_id"]))]).fetchall()]
        before = {u: state.risk.cached(u) for u in users}
        assert all(s == "hit" for s, _ in before.values())
        # An answer before the cycle: the service reads the recommended actions of then.
        assert client.get(f"/v1/users/{users[0]}/risk", headers=headers(READ)).status_code == 200
        assert state.recommendations.loaded
        # Hold the background refresh, to look at the answers between the cycle and it.
        go, refreshing = threading.Event(), threading.Event()
        rebuild = state.risk.rebuild

        def held() -> bool:
            refreshing.set()
            assert go.wait(300)
            return rebuild()

        state.risk.rebuild = held
        try:
            record = state.run_cycle()
            assert record is not None and record.status == "done"
            assert record.trigger == "schedule"
            with state.pool.reading() as store:
                assert alias_version(store, CHAMPION) == champion
                (events_after,) = store.con.execute("SELECT count(*) FROM events").fetchall()[0]
            assert events_after > events_before
            assert refreshing.wait(60), "the cycle did not ask for a refresh"
            for user in users:  # the answers of before the cycle, from memory, at once
                assert state.risk.cached(user) == before[user]
                answer = client.get(f"/v1/users/{user}/risk", headers=headers(READ)).json()
                assert answer["p_churn"] == before[user][1].p_churn
            with state.pool.reading() as store:
                (contacted,) = store.con.execute(
                    "SELECT user_id FROM plan_rows WHERE campaign_id = ? AND NOT is_control "
                    "AND action <> 'none' ORDER BY user_id LIMIT 1",
                    [f"cycle-{record.cycle_id}"]).fetchall()[0]
            action = client.get(f"/v1/users/{contacted}/risk",
                                headers=headers(READ)).json()["recommended_action"]
            assert action["campaign_id"] == f"cycle-{record.cycle_id}"
        finally:
            go.set()
        deadline = time.monotonic() + 300
        old_as_of = before[users[0]][1].as_of
        while state.risk.book.table_as_of in (None, old_as_of):
            assert time.monotonic() < deadline, "the refresh never installed new answers"
            time.sleep(0.05)
        assert state.risk.book.table_as_of > old_as_of  # the cycle's events moved the clock
        assert state.risk.book.table_version == champion
