"""Crashes anywhere in a cycle: a step that raises is recorded and stops the cycle; the next run
resumes the same cycle at that step and finishes it, with nothing done twice: no file ingested
twice, no campaign planned or delivered twice, no measurement taken twice. Real kills (os._exit
at a fault point, and kill -9 in the middle of the ingest transaction) as well as exceptions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import churnguard
from churnguard.ingest import FAULT_ENV, FAULT_EXIT_CODE
from churnguard.operate import cycle
from churnguard.project import Project

from operate.helpers import by_step, counts, run


class Boom(RuntimeError):
    pass


def _raise_at(point: str):
    fired = []

    def hook(at: str) -> None:
        if at == point and not fired:
            fired.append(at)
            raise Boom(f"injected at {at}")
    return hook


def _no_repeats(project: Project) -> None:
    """No effect of the cycle is in the store twice."""
    with project.open_store() as store:
        def one(sql: str) -> int:
            return store.con.execute(sql).fetchall()[0][0]
        assert one("SELECT count(*) FROM (SELECT event_id FROM events GROUP BY ALL "
                   "HAVING count(*) > 1)") == 0
        assert one("SELECT count(*) FROM (SELECT campaign_id FROM measurements GROUP BY ALL "
                   "HAVING count(*) > 1)") == 0
        assert one("SELECT count(*) FROM (SELECT user_id, as_of, model_version FROM scores "
                   "GROUP BY ALL HAVING count(*) > 1)") == 0
        assert one("SELECT count(*) FROM (SELECT content_hash FROM inbox_files GROUP BY ALL "
                   "HAVING count(*) > 1)") == 0


@pytest.mark.parametrize(("point", "steps"), [
    ("cycle:ingest:before-commit", ["ingest"]),
    ("cycle:ingest", ["ingest", "measure"]),
    ("cycle:score", ["ingest", "score"]),
    ("cycle:monitor", ["monitor"]),
    ("cycle:measure", ["ingest", "measure"]),
])
def test_a_failed_step_stops_the_cycle_and_the_next_run_resumes_it(
        project: Project, late_events: pd.DataFrame, point: str, steps: list[str]) -> None:
    before = counts(project)
    failed_step = point.split(":")[1]
    cycle.FAULT_HOOK = _raise_at(point)
    first = run(project, steps=steps)
    assert first.status == "failed"
    assert first.error == f"step {failed_step}: injected at {point}"
    statuses = {r.step: r.status for r in first.records}
    assert statuses[failed_step] == "failed"
    assert list(statuses)[-1] == failed_step  # the cycle stopped there
    assert by_step(first)[failed_step].error == f"Boom: injected at {point}"

    second = run(project, steps=["ingest"])  # the unfinished cycle wins over new arguments
    assert second.resumed and second.cycle_id == first.cycle_id and second.status == "done"
    assert [r.step for r in second.records] == steps
    assert all(r.status in ("done", "skipped") for r in second.records)
    after = counts(project)
    if "ingest" in steps:
        assert after["events"] == before["events"] + len(late_events)
        assert after["inbox_files"] == before["inbox_files"] + 1
    if "measure" in steps:  # each measurable campaign measured once (_no_repeats)
        assert after["measurements"] > before["measurements"]
    _no_repeats(project)


def test_a_step_killed_after_its_work_is_redone_without_repeating_it(project: Project) -> None:
    """The measurements of a measure step killed before its record are not taken again."""
    cycle.FAULT_HOOK = _raise_at("cycle:measure")
    first = run(project, steps=["measure"])
    assert first.status == "failed"
    with project.open_store() as store:
        taken = store.con.execute("SELECT count(*) FROM measurements").fetchall()[0][0]
    assert taken >= 1  # the work was done; only the record was lost
    second = run(project)
    assert second.resumed and by_step(second)["measure"].status == "skipped"
    assert "no campaign's window has passed" in by_step(second)["measure"].decision
    assert counts(project)["measurements"] == taken


def _cli(project: Project, *args: str, env: dict[str, str] | None = None,
         **kwargs: object) -> subprocess.Popen:
    src = str(Path(churnguard.__file__).resolve().parents[1])
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; from churnguard.cli import main; "
                               "sys.exit(main(sys.argv[1:]))",
         "run", "--project", str(project.root), *args],
        env={**os.environ, "PYTHONPATH": src, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_kill_9_in_the_middle_of_ingesting_a_file_then_rerun(
        project: Project, late_events: pd.DataFrame, tmp_path: Path) -> None:
    """A real SIGKILL while the ingest transaction holds the file's rows and its inbox record:
    neither survives, and the rerun ingests the file once."""
    before = counts(project)
    marker = tmp_path / "in-transaction"
    proc = _cli(project, "--steps", "ingest",
                env={FAULT_ENV: "cycle:ingest:before-commit:hang",
                     cycle.FAULT_MARKER_ENV: str(marker)})
    try:
        deadline = time.monotonic() + 300
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never reached the ingest transaction"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    assert counts(project) == before  # neither the rows nor the inbox record survived
    assert (project.root / "inbox" / "events" / "events-late.parquet").exists()

    record = run(project)
    assert record.resumed and record.status == "done"
    assert counts(project)["events"] == before["events"] + len(late_events)
    _no_repeats(project)


def test_a_process_that_dies_after_ingesting_does_not_ingest_again(
        project: Project, late_events: pd.DataFrame) -> None:
    before = counts(project)
    proc = _cli(project, "--steps", "ingest", env={FAULT_ENV: "cycle:ingest"})
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == FAULT_EXIT_CODE, err
    assert counts(project)["events"] == before["events"] + len(late_events)  # committed

    record = run(project, steps=["ingest"])
    assert record.resumed and by_step(record)["ingest"].status == "skipped"
    assert counts(project)["events"] == before["events"] + len(late_events)
    assert counts(project)["inbox_files"] == before["inbox_files"] + 1


@pytest.mark.slow  # each case plans a campaign (~20-40 s on two shared cores)
@pytest.mark.parametrize("fault", ["cycle:plan", "cycle:deliver", "deliver:after-post"])
def test_a_killed_plan_or_delivery_never_plans_or_delivers_twice(project: Project,
                                                                 fault: str) -> None:
    proc = _cli(project, "--steps", "plan,deliver", env={FAULT_ENV: fault})
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == FAULT_EXIT_CODE, err
    record = run(project)
    assert record.resumed and record.status == "done", record.error
    with project.open_store() as store:
        plans = store.con.execute("SELECT campaign_id FROM plans").fetchall()
        contacted = store.con.execute(
            "SELECT count(*) FROM plan_rows WHERE NOT is_control AND action <> 'none'"
        ).fetchall()[0][0]
        sent = store.con.execute("SELECT count(*), count(DISTINCT user_id) FROM deliveries "
                                 "WHERE status = 'sent'").fetchall()[0]
    assert plans == [(f"cycle-{record.cycle_id}",)]
    assert sent == (contacted, contacted)
    lines = (project.root / "outbox" / f"cycle-{record.cycle_id}.jsonl").read_text().splitlines()
    keys = [line.split('"idempotency_key": "')[1][:64] for line in lines]
    assert len(keys) == len(set(keys)) == contacted > 0
