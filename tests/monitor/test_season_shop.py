"""The seasonal check on a simulated shop: the festival week that the week-to-week check flags
every year is no news when the same week moved alike a year earlier (docs/monitor.md, "The
season"). Slow: 20,000 customers over almost three years (about a minute and a half)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from churnguard.config import IngestConfig, MonitorConfig
from churnguard.ingest import ingest_files
from churnguard.monitor import run_monitor
from churnguard.simulate import simulate
from churnguard.store import Store

#: A week of the festival season (late November) in the shop's third year; its reference is the
#: week before, and the same weeks of 2026 have 2025's events (from 2025-01-01) before them.
FESTIVAL_WEEK = dt.datetime(2027, 12, 2)


@pytest.mark.slow
def test_the_festival_alarms_week_to_week_and_is_no_news_against_last_year(
        tmp_path: Path) -> None:
    """Measured: 2027-12-02 against 2027-11-25 with every input the store supports (no
    champion, 67 checks, 12,365 customers): the plain check alarms on 14 inputs (recencies and
    30-day counts), the seasonal one on none."""
    sim = simulate(n_users=20_000, days=1_066, seed=0, out_dir=tmp_path / "sim",
                   start=dt.date(2025, 1, 1))
    with Store.open(tmp_path / "shop.duckdb") as store:
        for kind in ("users", "items", "events", "campaigns"):
            ingest_files(store, kind=kind, files=[sim.paths[kind]],
                         config=IngestConfig(future_events="allow"))
        plain = run_monitor(store, as_of=FESTIVAL_WEEK, config=MonitorConfig(season="off"))
        seasonal = run_monitor(store, as_of=FESTIVAL_WEEK, config=MonitorConfig())
    assert plain.reference.season is None
    assert seasonal.reference.season is not None
    assert f"{seasonal.reference.season.batch_cutoff:%Y-%m-%d}" == "2026-12-02"
    assert len(plain.alarms) >= 5
    assert len(seasonal.alarms) <= 1
    # The recency of the last order is what the festival moves most: the plain check flags it.
    assert "days_since_last_order" in plain.alarms
