"""`churnguard simulate` says when the simulated period reaches past today, because ingestion
refuses events from the future (docs/ingest.md) and a user would otherwise learn it only when
`churnguard ingest` rejects the file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from click.testing import CliRunner

from churnguard.cli import cli


def _simulate(out: Path, start: dt.date, days: int) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["simulate", "--users", "5", "--days", str(days),
                                      "--start", start.isoformat(), "--out", str(out)])
    return result.exit_code, result.stderr


def test_a_period_past_today_is_named_with_the_start_that_ends_today(tmp_path: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    code, said = _simulate(tmp_path / "future", today - dt.timedelta(days=10), 40)
    assert code == 0
    assert "after today" in said and "Events from the future" in said
    assert f"--start {today - dt.timedelta(days=40)}" in said


def test_a_period_that_ends_before_today_says_nothing(tmp_path: Path) -> None:
    today = dt.datetime.now(dt.UTC).date()
    code, said = _simulate(tmp_path / "past", today - dt.timedelta(days=60), 40)
    assert code == 0 and "after today" not in said
