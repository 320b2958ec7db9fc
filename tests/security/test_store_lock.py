"""Issue 16, item 10: a command on a project that another process holds (a running `churnguard
serve`, a long ingest) says who holds it and what to do (exit code 2), and a command queued behind
a routine one waits for it (bounded by CHURNGUARD_LOCK_WAIT) instead of dying at once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from churnguard.cli import main
from churnguard.store import Store

# Holds the store's file open for writing (as `serve` does) until its stdin closes, or for
# HOLD seconds; "hold-the-store" in its command line lets the test find it in the message.
HOLDER = textwrap.dedent("""
    import sys, time
    from churnguard.store import Store
    path, seconds = sys.argv[1], float(sys.argv[2])
    with Store.open(path):
        print("holding", flush=True)
        time.sleep(seconds)
""")


def _hold(store: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store), str(seconds),
                               "hold-the-store"], stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    return holder


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    assert main(["init", str(root)]) == 0
    (tmp_path / "events.csv").write_text("user_id,ts,type\nu1,2026-01-05T10:00:00Z,order\n")
    return root


def test_a_held_project_names_the_holder_and_exits_2(project: Path, monkeypatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CHURNGUARD_LOCK_WAIT", "0.5")
    holder = _hold(project / "churnguard.duckdb", 120)
    try:
        capsys.readouterr()
        for command in (["status"], ["ingest", "events", str(project.parent / "events.csv")]):
            assert main([*command, "--project", str(project)]) == 2
            err = capsys.readouterr().err
            assert f"in use by process {holder.pid}" in err and "hold-the-store" in err
            assert "churnguard serve" in err and "CHURNGUARD_LOCK_WAIT" in err
            assert "Conflicting lock" not in err  # DuckDB's raw words are not the message
    finally:
        holder.kill()
        holder.wait()
    with Store.open(project / "churnguard.duckdb", read_only=True) as store:
        assert store.table_counts()["events"] == 0  # the refused ingest changed nothing


def test_a_second_command_waits_for_the_first(project: Path, monkeypatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CHURNGUARD_LOCK_WAIT", "120")
    holder = _hold(project / "churnguard.duckdb", 1.0)  # a short command ahead of ours
    try:
        code = main(["ingest", "events", str(project.parent / "events.csv"),
                     "--project", str(project)])
    finally:
        holder.wait(timeout=60)
    assert code == 0, capsys.readouterr().err
    assert holder.returncode == 0
    with Store.open(project / "churnguard.duckdb", read_only=True) as store:
        assert store.table_counts()["events"] == 1


@pytest.mark.parametrize("value", ["soon", "-1", "inf"])
def test_a_bad_wait_setting_is_bad_input(project: Path, monkeypatch, value: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CHURNGUARD_LOCK_WAIT", value)
    assert main(["status", "--project", str(project)]) == 2
    assert "CHURNGUARD_LOCK_WAIT" in capsys.readouterr().err
