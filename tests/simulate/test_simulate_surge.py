"""Replies on resolved tickets, and the injected complaint surge (issue 20, item 6)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest

from churnguard.cli import main
from churnguard.simulate import Surge, simulate
from churnguard.text.language import chinese_majority

START = dt.date(2025, 1, 1)
SURGE = Surge(topic="delivery", start=dt.date(2025, 4, 1), size=3.0, days=20)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    base = tmp_path_factory.mktemp("surge")
    return {"plain": simulate(n_users=1200, days=150, seed=11, out_dir=base / "plain"),
            "surge": simulate(n_users=1200, days=150, seed=11, out_dir=base / "surge",
                              surge=SURGE)}


def test_resolved_tickets_carry_a_reply_in_the_customers_language(runs) -> None:
    r = runs["plain"]
    events = pd.read_parquet(r.paths["events"])
    users = pd.read_parquet(r.paths["users"]).set_index("user_id")["language"]
    truth = pd.read_parquet(r.paths["truth_tickets"])
    resolved = events[events["type"] == "ticket_resolved"]
    tickets = events[events["type"] == "support_ticket"]
    # every resolution closes exactly one ticket of its customer, by thread
    assert resolved["text"].notna().all() and resolved["session_id"].notna().all()
    assert not tickets.duplicated(["user_id", "session_id"]).any()
    pairs = resolved.merge(tickets, on=["user_id", "session_id"], suffixes=("", "_t"))
    assert len(pairs) == len(resolved) and (pairs["ts"] > pairs["ts_t"]).all()
    # in the customer's language, answering the ticket's topic, and varied
    zh = chinese_majority(resolved["text"].tolist())
    assert (zh == (users[resolved["user_id"]].to_numpy() == "zh")).all()
    done = truth[truth["status"] == "resolved"]
    assert len(done) == len(resolved) and (done["reply_topic"] == done["topic"]).all()
    assert set(truth["status"]) == {"open", "resolved"}
    assert resolved["text"].nunique() > 0.5 * len(resolved)


def test_a_surge_adds_its_complaints_and_nothing_else(runs) -> None:
    plain, surged = runs["plain"], runs["surge"]
    a = pd.read_parquet(plain.paths["events"])
    b = pd.read_parquet(surged.paths["events"])
    added = pd.read_parquet(surged.paths["truth_surge_events"])
    rest = b[~b["event_id"].isin(added["event_id"])].drop(columns="event_id")
    pd.testing.assert_frame_equal(rest.reset_index(drop=True),
                                  a.drop(columns="event_id").reset_index(drop=True))
    for name in ("users", "campaigns", "truth_churn", "truth_campaigns"):
        pd.testing.assert_frame_equal(pd.read_parquet(plain.paths[name]),
                                      pd.read_parquet(surged.paths[name]))
    about = json.loads(surged.paths["truth_surge"].read_text())
    assert (about["topic"], about["start"], about["end"]) == ("delivery", "2025-04-01",
                                                              "2025-04-21")
    texts = pd.read_parquet(surged.paths["truth_texts"])
    mine = texts[texts["event_id"].isin(added["event_id"])]
    assert len(mine) == about["events"]["review"] + about["events"]["support_ticket"] > 0
    assert set(mine["topic"]) == {"delivery"} and set(mine["sentiment"]) == {"negative"}
    ts = added["ts"].dt.date
    opened = added[added["type"] != "ticket_resolved"]
    assert opened["ts"].dt.date.between(SURGE.start, SURGE.end - dt.timedelta(days=1)).all()
    assert (ts >= SURGE.start).all()
    # the rise: negative delivery mentions per day during the surge against the baseline
    negative = texts[(texts["topic"] == "delivery") & (texts["sentiment"] == "negative")]
    day = negative["ts"].dt.date
    during = negative[day.between(SURGE.start, SURGE.end - dt.timedelta(days=1))]
    base = about["baseline_mentions_per_day"]
    assert base > 0
    assert 2.0 < len(during) / SURGE.days / base < 4.5  # size 3, Poisson noise


def test_a_surge_is_the_same_with_the_same_seed(runs, tmp_path: Path) -> None:
    again = simulate(n_users=1200, days=150, seed=11, out_dir=tmp_path, surge=SURGE)
    for name in ("events", "truth_surge_events"):
        assert again.paths[name].read_bytes() == runs["surge"].paths[name].read_bytes()
    assert again.paths["truth_surge"].read_text() == runs["surge"].paths["truth_surge"].read_text()


@pytest.mark.parametrize("surge, says", [
    (Surge(topic="weather", start=dt.date(2025, 3, 1)), "surge topic"),
    (Surge(topic="price", start=dt.date(2025, 1, 3)), "must fall from day 7"),
    (Surge(topic="price", start=dt.date(2025, 3, 1), size=0.5), "multiplier"),
])
def test_a_surge_that_does_not_fit_is_refused(surge: Surge, says: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=says):
        simulate(n_users=50, days=100, seed=1, out_dir=tmp_path, surge=surge)


def test_the_command_injects_a_surge(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "shop"
    assert main(["simulate", "--users", "200", "--days", "100", "--seed", "2", "--out", str(out),
                 "--surge-topic", "quality", "--surge-start", "2025-02-15", "--surge-size", "2.5",
                 "--surge-days", "5"]) == 0
    about = json.loads((out / "truth" / "surge.json").read_text())
    assert (about["topic"], about["size"], about["days"]) == ("quality", 2.5, 5)
    assert json.loads((out / "manifest.json").read_text())["surge"]["topic"] == "quality"
    assert main(["simulate", "--users", "20", "--days", "30", "--out", str(tmp_path / "x"),
                 "--surge-days", "3"]) == 2
    assert "apply with --surge-topic only" in capsys.readouterr().err
