"""The schedule: cron expressions and their next fire times (UTC), the scheduler with a clock
the test moves, and a scheduled cycle run by the service in a child process (`churnguard run`,
operate/process.py) while the risk endpoint answers."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings as hypothesis_settings
from hypothesis import strategies as st

from churnguard.operate import Cron, CronError, Scheduler
from churnguard.operate.process import CycleBusyError
from churnguard.project import Project
from churnguard.service import create_app

from service.helpers import READ, WRITE, headers, settings

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


def _scheduled(project: Project, when: str = "0 6 * * mon") -> Project:
    config = project.root / "churnguard.toml"
    config.write_text(config.read_text().split("\n[operate]\n")[0]
                      + f'\n[operate]\nschedule = "{when}"\n')
    return Project.load(project.root)


def _wait(check, what: str, timeout: float = 600) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s"
        time.sleep(0.05)


def test_a_scheduled_cycle_runs_in_a_child_process_while_risk_answers(
        project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _scheduled(project)
    marker = tmp_path / "inside"
    # The child pauses inside the ingest transaction (it holds the store and uncommitted rows)
    # until the test deletes the marker.
    monkeypatch.setenv("CHURNGUARD_FAULT", "cycle:ingest:before-commit:wait")
    monkeypatch.setenv("CHURNGUARD_FAULT_MARKER", str(marker))
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
        time.sleep(0.5)
        assert not marker.exists() and state.cycles.runs == 0  # not due: nothing runs

        clock.now = D(2026, 1, 5, 6, 0, 1)
        _wait(lambda: marker.exists() or state.cycles.runs > 0,
              "the due cycle's process reaching its ingest")
        assert marker.exists(), state.cycles.last_error
        try:
            child = int(marker.read_text())
            assert child != os.getpid() and state.cycle_process.pid == child
            # Its own process, at a lower CPU priority, holding the store lent by the service.
            assert os.getpriority(os.PRIO_PROCESS, child) == min(
                19, os.getpriority(os.PRIO_PROCESS, 0) + project.config.operate.cycle_nice)
            assert state.pool.lent_to is not None and state.pool.lent_to.pid == child
            for user in users:  # answered from memory while the cycle is mid-ingest
                answer = client.get(f"/v1/users/{user}/risk", headers=headers(READ))
                assert answer.status_code == 200 and 0 <= answer.json()["p_churn"] <= 1
                assert "X-Churnguard-Store-Lent-Since" in answer.headers
            posted = client.post("/v1/events", headers=headers(WRITE), json={"events": [
                {"user_id": users[0], "ts": "2026-01-01T00:00:00Z", "type": "visit",
                 "event_id": "during-the-cycle"}]})
            assert posted.status_code == 202, posted.text
            # One cycle at a time: a second start is refused while this one runs.
            with pytest.raises(CycleBusyError):
                state.run_cycle()
            assert state.cycles.runs == 0
        finally:
            marker.unlink(missing_ok=True)
        _wait(lambda: state.cycles.runs == 1, "the cycle finishing")
        assert state.cycles.last_error is None
        assert state.cycles.next_fire == D(2026, 1, 12, 6, 0)
        assert state.cycle_process.last is not None and state.cycle_process.last.exit_code == 0
        _wait(lambda: not state.journal.pending, "the journaled event stored")
        with state.pool.reading() as store:
            cycles = store.con.execute("SELECT trigger, status FROM cycles").fetchall()
            (events_after,) = store.con.execute("SELECT count(*) FROM events").fetchall()[0]
            steps = dict(store.con.execute("SELECT step, status FROM cycle_steps").fetchall())
            (posted_rows,) = store.con.execute(
                "SELECT count(*) FROM events WHERE event_id = 'during-the-cycle'").fetchall()[0]
        assert cycles == [("schedule", "done")]
        assert events_after > events_before
        assert steps["ingest"] == "done" and steps["score"] == "done"
        assert posted_rows == 1
        answer = client.get(f"/v1/users/{users[0]}/risk", headers=headers(READ))
        assert answer.status_code == 200
        assert "X-Churnguard-Store-Lent-Since" not in answer.headers


@pytest.mark.slow
def test_a_killed_cycle_process_leaves_its_cycle_for_the_next_fire_to_resume(
        project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = _scheduled(project, "@daily")
    marker = tmp_path / "scoring"
    # The child stops after the score step's work, before its record: kill -9 there.
    monkeypatch.setenv("CHURNGUARD_FAULT", "cycle:score:hang")
    monkeypatch.setenv("CHURNGUARD_FAULT_MARKER", str(marker))
    clock = Clock(D(2026, 1, 1, 12, 0))
    app = create_app(project, settings(warm_on_start=False), cycle_clock=clock,
                     cycle_poll_s=0.02)
    with TestClient(app, raise_server_exceptions=False) as client:
        state = app.state.service
        clock.now = D(2026, 1, 2, 0, 0, 1)
        _wait(lambda: marker.exists() or state.cycles.runs > 0,
              "the cycle's process reaching the score step")
        assert marker.exists(), state.cycles.last_error
        os.kill(int(marker.read_text()), signal.SIGKILL)
        _wait(lambda: state.cycles.runs == 1, "the scheduler seeing its cycle end")
        assert "killed by signal 9" in state.cycles.last_error
        assert "resumes it" in state.cycles.last_error
        # The service has the store back and keeps answering, writes included.
        _wait(lambda: state.pool.lent_to is None, "the store back")
        posted = client.post("/v1/events", headers=headers(WRITE), json={"events": [
            {"user_id": "after-the-kill", "ts": "2026-01-01T00:00:00Z", "type": "visit"}]})
        assert posted.status_code == 200, posted.text
        with state.pool.reading() as store:
            (status,) = store.con.execute("SELECT status FROM cycles").fetchall()[0]
            (files,) = store.con.execute("SELECT count(*) FROM inbox_files").fetchall()[0]
            (events,) = store.con.execute("SELECT count(*) FROM events").fetchall()[0]
        assert status == "running" and files == 1  # unfinished; its ingest is done

        monkeypatch.delenv("CHURNGUARD_FAULT")
        clock.now = D(2026, 1, 3, 0, 0, 1)  # the next fire resumes it
        _wait(lambda: state.cycles.runs == 2, "the next scheduled cycle")
        assert state.cycles.last_error is None
        assert state.cycle_process.last.record["resumed"] is True
        with state.pool.reading() as store:
            cycles = store.con.execute("SELECT trigger, status FROM cycles").fetchall()
            steps = dict(store.con.execute("SELECT step, status FROM cycle_steps").fetchall())
            (files_after,) = store.con.execute("SELECT count(*) FROM inbox_files").fetchall()[0]
            (events_after,) = store.con.execute("SELECT count(*) FROM events").fetchall()[0]
        assert cycles == [("schedule", "done")]
        assert steps["ingest"] == "done" and steps["score"] == "done"
        assert (files_after, events_after) == (files, events)  # nothing ingested twice


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


