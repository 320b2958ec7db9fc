"""`churnguard run` and `churnguard cycles`: the record, JSON, and exit codes."""

from __future__ import annotations

import json

import pytest

from churnguard.cli import main
from churnguard.operate import cycle
from churnguard.project import Project


def test_run_then_cycles(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    root = str(project.root)
    assert main(["run", "--steps", "monitor,ingest,score", "--json", "--project", root]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["status"] == "done"
    assert [(s["step"], s["status"]) for s in record["steps"]] == [  # in cycle order
        ("ingest", "done"), ("score", "done"), ("monitor", "done")]
    assert main(["run", "--steps", "ingest", "--project", root]) == 0
    out = capsys.readouterr()
    assert "[1/1] ingest: skipped: no new file" in out.err
    assert main(["cycles", "--json", "--limit", "5", "--project", root]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [c["cycle_id"] for c in listed][1] == record["cycle_id"]
    assert listed[1]["steps"][0]["figures"]["ingested"][0]["file"] == \
        "events/events-late.parquet"
    assert main(["cycles", "--project", root]) == 0
    text = capsys.readouterr().out
    assert f"Cycle {record['cycle_id']} (cli): done" in text
    assert "monitor    done     no drift alarm" in text or "monitor    done     drift alarm" in text


def test_a_failed_step_exits_non_zero_and_the_rerun_resumes(
        project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    def boom(point: str) -> None:
        if point == "cycle:ingest":
            raise OSError("disk full")

    cycle.FAULT_HOOK = boom
    root = str(project.root)
    assert main(["run", "--steps", "ingest", "--project", root]) == 1
    err = capsys.readouterr().err
    assert "stopped at step ingest: disk full" in err and "run `churnguard run` again" in err
    cycle.FAULT_HOOK = None
    assert main(["run", "--project", root, "--steps", "ingest"]) == 0
    out = capsys.readouterr()
    assert "resuming cycle" in out.err and "(resumed)" in out.out


@pytest.mark.parametrize(("args", "message"), [
    (["--steps", "ingest,retrain"], "unknown step 'retrain'; the steps are ingest, score"),
    (["--now", "next monday"], "write YYYY-MM-DD or YYYY-MM-DDTHH:MM"),
    (["--steps", ","], "--steps: name at least one step"),
])
def test_bad_arguments_exit_2(project: Project, capsys: pytest.CaptureFixture[str],
                              args: list[str], message: str) -> None:
    assert main(["run", *args, "--project", str(project.root)]) == 2
    assert message in capsys.readouterr().err


def test_the_report_lists_the_cycles(project: Project, tmp_path) -> None:
    root = str(project.root)
    assert main(["run", "--steps", "ingest", "--project", root]) == 0
    out = tmp_path / "report.html"
    assert main(["report", "--out", str(out), "--project", root]) == 0
    page = out.read_text()
    section = page[page.index('<section id="cycles">'):]
    with project.open_store() as store:
        (cycle_id,) = store.con.execute("SELECT cycle_id FROM cycles").fetchall()[0]
    assert f"<td>{cycle_id}</td>" in section
    assert "<strong>ingest</strong> done: ingested 1 file(s)" in section
