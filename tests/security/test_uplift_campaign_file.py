"""Issue 16, item 13: uplift from a shop's own campaign file.

A shop ingests its own randomised campaign (``churnguard ingest campaigns``). Two things stopped
it from learning the campaign's effect:

* with ``uplift score --as-of`` after the campaign's window, the window did not count as
  observed (only the newest event moved the horizon), although the data covers it;
* an action missing from the [intervene] catalogue was refused. Learning an effect needs no
  cost: every action of a randomised campaign is learned, with a note naming the uncatalogued
  ones, and only ``plan`` (which needs costs) leaves them out of the allocation, saying so.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnguard.campaigns import observed_until
from churnguard.cli import main
from churnguard.config import ProjectConfig
from churnguard.intervene.uplift import UpliftError, uplift_dataset
from churnguard.simulate import simulate
from churnguard.store import Store

CATALOGUE = [a.name for a in ProjectConfig().intervene.actions]
OWN_ACTION = "sms_voucher"  # the shop's own action: not in the default catalogue
WINDOW = 30


def _stderr(capsys: pytest.CaptureFixture[str]) -> str:
    """What the command wrote to stderr, on one line (rich wraps long lines)."""
    return " ".join(capsys.readouterr().err.split())


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dt.datetime]:
    """A project with a simulated shop's items, users and events (not its campaigns), a recency
    champion, and the shop's own campaign file ingested: every customer assigned 20 days before
    the newest event, half held out as control, the rest given coupon_10 or sms_voucher. Its
    30-day window ends 10 days after the newest event. Returns the project and that event."""
    root = tmp_path_factory.mktemp("own_campaign")
    sim = simulate(n_users=300, days=400, seed=8, out_dir=root / "data")
    assert main(["init", str(root / "project")]) == 0
    project = root / "project"
    for kind in ("items", "users", "events"):
        assert main(["ingest", kind, str(sim.paths[kind]), "--project", str(project)]) == 0
    assert main(["train", "--models", "recency", "--project", str(project)]) == 0
    with Store.open(project / "churnguard.duckdb", read_only=True) as store:
        newest = store.con.execute("SELECT max(ts) FROM events").fetchone()[0]
        users = [u for (u,) in store.con.execute(
            "SELECT DISTINCT user_id FROM events ORDER BY user_id").fetchall()]
    rng = np.random.default_rng(4)
    arm = rng.permutation(np.arange(len(users)) % 4)  # 0, 1: control; 2: coupon_10; 3: own
    assigned = (newest - dt.timedelta(days=20)).replace(microsecond=0)
    own = pd.DataFrame({
        "user_id": users,
        "campaign_id": "shop-spring",
        "action": np.where(arm < 2, "none", np.where(arm == 2, "coupon_10", OWN_ACTION)),
        "assigned_at": assigned.isoformat(),
        "is_control": np.where(arm < 2, "true", "false"),
        "cost": np.where(arm < 2, 0.0, 1.0),
    })
    path = root / "shop_campaign.csv"
    own.to_csv(path, index=False)
    assert main(["ingest", "campaigns", str(path), "--project", str(project)]) == 0
    return project, newest


def _day(value: dt.datetime) -> str:
    return f"{value:%Y-%m-%d}"


def test_as_of_after_the_window_counts_it_as_observed(shop: tuple[Path, dt.datetime],
                                                      tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    project, newest = shop
    out = tmp_path / "uplift.csv"
    base = ["uplift", "score", "--window", f"{WINDOW}d", "--learner", "t_learner",
            "--out", str(out), "--project", str(project)]
    # The window (ending 10 days after the newest event) is not over at the data's own clock,
    # nor at an --as-of before its end: refused, saying why.
    assert main(base) == 2
    assert "fully observed 30-day outcome window" in _stderr(capsys)
    assert main([*base, "--as-of", _day(newest + dt.timedelta(days=5))]) == 2
    capsys.readouterr()
    # After its end (the events were ingested after it too): observed, learned, scored.
    assert main([*base, "--as-of", _day(newest + dt.timedelta(days=15))]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["user_id", *CATALOGUE, OWN_ACTION]
    assert len(frame) == 300 and frame[[*CATALOGUE, OWN_ACTION]].abs().max().max() < 1
    # The two actions the campaign gave were learned (an action without history is exactly
    # 0); the catalogue's others have none.
    assert (frame["coupon_10"] != 0).all() and (frame[OWN_ACTION] != 0).all()
    assert (frame["cs_outreach"] == 0).all()
    assert f"not in the [intervene] actions of churnguard.toml: {OWN_ACTION}" in _stderr(capsys)


def test_uplift_evaluate_learns_an_action_missing_from_the_catalogue(
        shop: tuple[Path, dt.datetime], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    project, newest = shop
    doc = tmp_path / "uplift.json"
    # A campaign of the shop's own action only (and its control group), whose window is over.
    rows = pd.DataFrame({"user_id": [f"u{k:07d}" for k in range(1, 301)],
                         "campaign_id": "own-only",
                         "action": [OWN_ACTION if k % 2 else "none" for k in range(1, 301)],
                         "assigned_at": (newest - dt.timedelta(days=60)).isoformat(),
                         "is_control": ["false" if k % 2 else "true" for k in range(1, 301)]})
    copy = tmp_path / "project"
    copy.mkdir()
    (copy / "churnguard.toml").write_bytes((project / "churnguard.toml").read_bytes())
    (copy / "churnguard.duckdb").write_bytes((project / "churnguard.duckdb").read_bytes())
    with Store.open(copy / "churnguard.duckdb") as store:
        store.con.execute("DELETE FROM campaigns")
    path = tmp_path / "own_only.csv"
    rows.to_csv(path, index=False)
    assert main(["ingest", "campaigns", str(path), "--project", str(copy)]) == 0
    capsys.readouterr()
    assert main(["uplift", "evaluate", "--window", f"{WINDOW}d", "--folds", "2",
                 "--json", str(doc), "--project", str(copy)]) == 0
    result = json.loads(doc.read_text())
    assert result["n_campaigns"] == 1 and result["n_rows"] == 300
    chosen = next(row for row in result["learners"] if row["name"] == result["chosen"])
    assert set(chosen["per_action"]) == {OWN_ACTION}
    assert f"not in the [intervene] actions of churnguard.toml: {OWN_ACTION}" in _stderr(capsys)


def test_plan_allocates_only_catalogue_actions_and_says_so(shop: tuple[Path, dt.datetime],
                                                           tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]
                                                           ) -> None:
    project, newest = shop
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("churnguard.toml", "churnguard.duckdb"):
        (copy / name).write_bytes((project / name).read_bytes())
    config = copy / "churnguard.toml"
    text = config.read_text(encoding="utf-8")
    assert "window_days = 90" in text
    config.write_text(text.replace("window_days = 90", f"window_days = {WINDOW}", 1),
                      encoding="utf-8")
    out = tmp_path / "plan.csv"
    capsys.readouterr()
    assert main(["plan", "--budget", "100", "--campaign-id", "next", "--out", str(out),
                 "--as-of", _day(newest + dt.timedelta(days=15)), "--project", str(copy)]) == 0
    said = _stderr(capsys)
    rows = pd.read_csv(out)
    assert set(rows["action"]) <= set(CATALOGUE) and OWN_ACTION not in set(rows["action"])
    with Store.open(copy / "churnguard.duckdb", read_only=True) as store:
        summary = json.loads(store.con.execute(
            "SELECT summary FROM plans WHERE campaign_id = 'next'").fetchone()[0])
    # The campaign was learned from (not prior effects), its own action left out, by name.
    assert "randomised campaigns" in summary["uplift_source"]
    assert any(OWN_ACTION in note and "left out of the allocation" in note
               for note in summary["notes"])
    assert f"left out of the allocation (their cost is unknown): {OWN_ACTION}" in said


def _copy(project: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("churnguard.toml", "churnguard.duckdb"):
        (copy / name).write_bytes((project / name).read_bytes())
    return copy


def test_one_unscorable_campaign_customer_is_left_out_of_uplift_and_plan(
        shop: tuple[Path, dt.datetime], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 16 item 2 for uplift: an amount the features cannot sum (a store loaded before
    ingestion bounded amounts) stops neither learning from the campaign nor scoring the rest."""
    project, newest = shop
    copy = _copy(project, tmp_path)
    with Store.open(copy / "churnguard.duckdb") as store:
        victim = store.con.execute(
            "SELECT min(user_id) FROM campaigns WHERE action = 'coupon_10'").fetchone()[0]
        first = store.con.execute("SELECT min(ts) FROM events").fetchone()[0]
        store.con.execute("INSERT INTO events (event_id, user_id, ts, type, amount, batch_id) "
                          "VALUES ('absurd', ?, ?, 'order', 1e40, 'old')", [victim, first])
    out = tmp_path / "uplift.csv"
    when = _day(newest + dt.timedelta(days=15))
    capsys.readouterr()
    assert main(["uplift", "score", "--window", f"{WINDOW}d", "--learner", "t_learner",
                 "--as-of", when, "--out", str(out), "--project", str(copy)]) == 0
    said = _stderr(capsys)
    frame = pd.read_csv(out)
    assert len(frame) == 299 and victim not in set(frame["user_id"])
    assert f"left out customer {victim}: an event's amount is beyond 1e+15" in said
    assert "1 customers' campaign rows were left out of the learning" in said
    assert main(["plan", "--budget", "50", "--campaign-id", "p", "--as-of", when,
                 "--project", str(copy)]) == 0
    assert f"left out customer {victim}" in _stderr(capsys)


def test_measure_follows_the_same_horizon(shop: tuple[Path, dt.datetime], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    project, newest = shop
    base = ["measure", "shop-spring", "--window", f"{WINDOW}d", "--project", str(project)]
    # Measuring writes the result to the store: work on a copy.
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("churnguard.toml", "churnguard.duckdb"):
        (copy / name).write_bytes((project / name).read_bytes())
    base[-1] = str(copy)
    assert main(base) == 2
    assert "but the newest event in the store is at" in _stderr(capsys)
    out = tmp_path / "m.json"
    assert main([*base, "--as-of", _day(newest + dt.timedelta(days=15)),
                 "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert {g["action"] for g in doc["groups"]} >= {"coupon_10", OWN_ACTION}


def test_the_observed_horizon_is_as_of_but_never_past_the_data() -> None:
    """A window is observed when both as_of and the data cover it: the data's end is the newest
    event, or the start of the newest ingestion of events when that is later."""
    store = Store.in_memory()
    day = dt.datetime(2025, 3, 1)
    store.con.execute(
        "INSERT INTO events (event_id, user_id, ts, type, amount, batch_id) VALUES "
        "('e1', 'a', $d, 'order', 10, 'b'), ('e2', 'b', $d, 'order', 10, 'b')", {"d": day})
    store.con.execute(
        "INSERT INTO campaigns SELECT 'c', u, CASE WHEN u = 'a' THEN 'x' ELSE 'none' END, $at, "
        "u = 'b', 0, NULL, 'b' FROM (VALUES ('a'), ('b')) t(u)",
        {"at": day - dt.timedelta(days=10)})
    later = day + dt.timedelta(days=40)  # after the window's end (day + 20)
    assert observed_until(store) == day
    assert observed_until(store, later) == day  # no ingestion recorded: the newest event
    with pytest.raises(UpliftError, match="end of the data"):
        uplift_dataset(store, window_days=30, as_of=later)
    store.con.execute(
        "INSERT INTO ingest_batches (batch_id, kind, files, on_error, rows_read, rows_added, "
        "rows_updated, rows_duplicate, rows_bad, started_at, finished_at) "
        "VALUES ('b', 'events', ['f.csv'], 'reject', 2, 2, 0, 0, 0, $at, $at)",
        {"at": day + dt.timedelta(days=30)})
    assert observed_until(store, later) == day + dt.timedelta(days=30)
    assert observed_until(store, day + dt.timedelta(days=25)) == day + dt.timedelta(days=25)
    data = uplift_dataset(store, window_days=30, as_of=later)
    assert data.actions == ["x"] and sorted(data.user_id) == ["a", "b"]
    with pytest.raises(UpliftError, match="before as_of"):
        uplift_dataset(store, window_days=30, as_of=day + dt.timedelta(days=15))
