"""The schedule: cron expressions and their next fire times (UTC), the scheduler with a clock
the test moves, and a scheduled cycle inside the service while the risk endpoint answers."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings as hypothesis_settings
from hypothesis import strategies as st

from churnguard.operate import Cron, CronError, Scheduler, cycle
from churnguard.project import Project
from churnguard.service import create_app

from service.helpers import READ, headers, settings

D = dt.datetime


@pytest.mark.parametrize(("expression", "after", "fires"), [
    ("0 6 * * mon", D(2026, 1, 1, 12, 0), D(2026, 1, 5, 6, 0)),  # Thursday → Monday
    ("0 6 * * mon", D(2026, 1, 5, 6, 0), D(2026, 1, 12, 6, 0)),  # strictly after
    ("*/15 9-17 * * 1-5", D(2026, 1, 2, 17, 50), D(2026, 1, 5, 9, 0)),  # Friday evening
    ("30 2 1 * *", D(2026, 1, 31, 23, 0), D(2026, 2, 1, 2, 30)),
    ("0 0 29 2 *", D(2026, 3, 1), D(2028, 2, 29)),  # the next leap day
    ("0 12 13 * 5", D(2026, 2, 9), D(2026, 2, 13, 12)),  # the 13th or a Friday...
    ("0 12 13 * 5", D(2026, 2, 13, 12), D(2026, 2, 20, 12)),  # ...so every Friday too
    ("0 12 13 * *", D(2026, 2, 13, 12), D(2026, 3, 13, 12)),  # weekday '*': the 13th only
    ("5,35 */6 * jan,jul sun", D(2026, 1, 1), D(2026, 1, 4, 0, 5)),
    ("0 0 * * 7", D(2026, 1, 1), D(2026, 1, 4)),  # 7 is Sunday
    ("@hourly", D(2026, 1, 1, 12, 59, 59), D(2026, 1, 1, 13, 0)),
    ("@weekly", D(2026, 1, 1), D(2026, 1, 4)),
    ("@monthly", D(2026, 12, 31, 23, 59), D(2027, 1, 1)),
])
def test_next_fire(expression: str, after: dt.datetime, fires: dt.datetime) -> None:
    assert Cron.parse(expression).next_after(after) == fires


def test_an_aware_time_is_read_in_utc() -> None:
    daily = Cron.parse("0 6 * * *")
    east, west = dt.timezone(dt.timedelta(hours=1)), dt.timezone(dt.timedelta(hours=-1))
    assert daily.next_after(D(2026, 1, 1, 6, 30, tzinfo=east)) == D(2026, 1, 1, 6, 0)  # 05:30 UTC
    assert daily.next_after(D(2026, 1, 1, 5, 30, tzinfo=west)) == D(2026, 1, 2, 6, 0)  # 06:30 UTC


@pytest.mark.parametrize(("expression", "message"), [
    ("61 * * * *", "minute: 61 is outside 0-59"),
    ("* * * *", "4 fields; write 5"),
    ("", "0 fields; write 5"),
    ("*/0 * * * *", "step '0' must be a whole number >= 1"),
    ("0 0 * * 8", "day of week: 8 is outside 0-7"),
    ("0 0 * foo *", "month: 'foo' is not a number or a name (jan, feb"),
    ("0 0 1,,2 * *", "an empty item"),
    ("0 0 31 2 *", "never fires"),
    ("0 0 30 feb *", "never fires"),
])
def test_a_bad_expression_says_what_is_wrong(expression: str, message: str) -> None:
    with pytest.raises(CronError) as raised:
        Cron.parse(expression).next_after(D(2026, 1, 1))
    assert message in str(raised.value)
    assert raised.value.bad_input


_FIELD = st.sampled_from(["*", "*/7", "0", "5-20/5", "1,2,30", "10-12"])


@hypothesis_settings(deadline=None, max_examples=40)  # the plain search is minutes of Python
@given(minute=_FIELD, hour=st.sampled_from(["*", "0", "6", "*/5", "9-17"]),
       day=st.sampled_from(["*", "1", "13", "1-7", "*/10"]),
       weekday=st.sampled_from(["*", "mon", "1-5", "0,6", "fri"]),
       start=st.datetimes(min_value=D(2025, 1, 1), max_value=D(2027, 1, 1)))
def test_next_fire_is_the_first_matching_minute(minute: str, hour: str, day: str,
                                                weekday: str, start: dt.datetime) -> None:
    """Against a plain search minute by minute (a day none of whose times match skipped)."""
    cron = Cron.parse(f"{minute} {hour} {day} * {weekday}")
    fire = cron.next_after(start)
    t = start.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    possible: dict[dt.datetime, bool] = {}
    while not cron.matches(t):
        midnight = t.replace(hour=0, minute=0)
        if midnight not in possible:
            possible[midnight] = any(cron.matches(midnight.replace(hour=h, minute=m))
                                     for h in cron.hours for m in cron.minutes)
        t = t + dt.timedelta(minutes=1) if possible[midnight] else midnight + dt.timedelta(days=1)
        assert t - start < dt.timedelta(days=400)
    assert fire == t


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def test_the_scheduler_runs_a_due_fire_once_and_moves_on() -> None:
    clock = Clock(D(2026, 1, 1, 12, 0))
    fired: list[dt.datetime] = []
    scheduler = Scheduler(Cron.parse("0 6 * * mon"), fired.append, now=clock)
    scheduler.next_fire = scheduler.cron.next_after(clock())
    assert not scheduler.tick() and fired == []
    clock.now = D(2026, 1, 5, 6, 0, 30)
    assert scheduler.tick() and fired == [D(2026, 1, 5, 6, 0)]
    assert not scheduler.tick()  # once per fire
    assert scheduler.next_fire == D(2026, 1, 12, 6, 0)
    # A service asleep through three fires runs one cycle, not three.
    clock.now = D(2026, 2, 3, 9, 0)
    assert scheduler.tick() and not scheduler.tick()
    assert fired[-1] == D(2026, 1, 12, 6, 0) and scheduler.next_fire == D(2026, 2, 9, 6, 0)


def test_a_failed_job_is_logged_and_the_schedule_goes_on() -> None:
    clock = Clock(D(2026, 1, 1))

    def job(fire: dt.datetime) -> None:
        raise RuntimeError("the store is gone")

    scheduler = Scheduler(Cron.parse("@daily"), job, now=clock)
    scheduler.next_fire = scheduler.cron.next_after(clock())
    clock.now = D(2026, 1, 2, 0, 1)
    assert scheduler.tick()
    assert scheduler.last_error == "RuntimeError: the store is gone"
    assert scheduler.next_fire == D(2026, 1, 3)


def test_a_scheduled_cycle_runs_in_the_service_while_risk_answers(project: Project) -> None:
    config = project.root / "churnguard.toml"
    config.write_text(config.read_text().split("\n[operate]\n")[0]
                      + '\n[operate]\nschedule = "0 6 * * mon"\n')
    project = Project.load(project.root)
    inside, release = threading.Event(), threading.Event()

    def hold(point: str) -> None:
        # Inside the ingest transaction: the cycle holds the write lock and uncommitted rows.
        if point == "cycle:ingest:before-commit":
            inside.set()
            assert release.wait(300)

    cycle.FAULT_HOOK = hold
    clock = Clock(D(2026, 1, 1, 12, 0))
    app = create_app(project, settings(), cycle_clock=clock, cycle_poll_s=0.02)
    with TestClient(app, raise_server_exceptions=False) as client:
        state = app.state.service
        assert state.risk.wait_explained(120)
        with state.pool.reading() as store:
            users = [u for (u,) in store.con.execute(
                "SELECT user_id FROM scores ORDER BY p_churn DESC LIMIT 3").fetchall()]
            (events_before,) = store.con.execute("SELECT count(*) FROM events").fetchall()[0]
        assert state.cycles is not None and state.cycles.next_fire == D(2026, 1, 5, 6, 0)
        assert not inside.wait(0.5) and state.cycles.runs == 0  # not due: nothing runs

        clock.now = D(2026, 1, 5, 6, 0, 1)
        assert inside.wait(300), "the due cycle did not start"
        try:
            for user in users:  # answered from the store while the cycle is mid-ingest
                state.risk.forget(user)  # no cached answer: this one reads the store
                answer = client.get(f"/v1/users/{user}/risk", headers=headers(READ))
                assert answer.status_code == 200 and 0 <= answer.json()["p_churn"] <= 1
            assert state.cycles.runs == 0
        finally:
            release.set()
        deadline = time.monotonic() + 600
        while state.cycles.runs == 0:
            assert time.monotonic() < deadline, "the cycle never finished"
            time.sleep(0.05)
        assert state.cycles.last_error is None
        assert state.cycles.next_fire == D(2026, 1, 12, 6, 0)
        with state.pool.reading() as store:
            cycles = store.con.execute("SELECT trigger, status FROM cycles").fetchall()
            (events_after,) = store.con.execute("SELECT count(*) FROM events").fetchall()[0]
            steps = dict(store.con.execute("SELECT step, status FROM cycle_steps").fetchall())
        assert cycles == [("schedule", "done")]
        assert events_after > events_before
        assert steps["ingest"] == "done" and steps["score"] == "done"
        answer = client.get(f"/v1/users/{users[0]}/risk", headers=headers(READ))
        assert answer.status_code == 200


def test_a_bad_schedule_stops_the_service_from_starting(project: Project) -> None:
    config = project.root / "churnguard.toml"
    config.write_text(config.read_text().split("\n[operate]\n")[0]
                      + '\n[operate]\nschedule = "0 6 * *"\n')
    with pytest.raises(CronError, match="4 fields"):
        create_app(Project.load(project.root), settings())


def test_no_schedule_no_thread(project: Project) -> None:
    app = create_app(project, settings())
    with TestClient(app):
        assert app.state.service.cycles is None


