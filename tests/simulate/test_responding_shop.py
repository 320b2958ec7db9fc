"""The responding shop (``simulate.continue_shop``): deterministic, the customers churnguard did not
contact live the future they would have had anyway, continuing in steps is continuing at once,
and the delivered campaign is read and checked as documented."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from churnguard.cli import cli
from churnguard.ingest import ingest_files
from churnguard.simulate import ACTIONS, continue_shop, simulate
from churnguard.simulate.state import read_state
from churnguard.store import Store

DAYS = 120
START = dt.date(2025, 1, 1)
STATE_DAY = START + dt.timedelta(days=DAYS)  # 2025-05-01
UNTIL = STATE_DAY + dt.timedelta(days=30)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("responding") / "shop"
    simulate(n_users=800, days=DAYS, seed=4, out_dir=out, keep_state=True)
    return out


def _campaign(n: int, *, seed: int, share: float = 0.5, day: dt.date = STATE_DAY,
              users: int = 800, lag: int = 3) -> pd.DataFrame:
    """A randomised campaign over n of the customers: half held out, the others a random action."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "campaign_id": "c1",
        "user_id": [f"u{j:07d}" for j in rng.choice(users, n, replace=False)],
        "action": rng.choice(ACTIONS, n),
        "is_control": rng.random(n) >= share,
        "assigned_at": pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=lag),
    })


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_the_same_state_and_campaign_give_identical_files(shop: Path, tmp_path: Path) -> None:
    campaign = _campaign(400, seed=1)
    a = continue_shop(shop, campaign, until=UNTIL, out_dir=tmp_path / "a")
    b = continue_shop(shop, campaign, until=UNTIL, out_dir=tmp_path / "b")
    files_a, files_b = _files(a.out_dir), _files(b.out_dir)
    assert files_a.keys() == files_b.keys()
    assert {"events.parquet", "truth/contacts.parquet", "truth/churn.parquet",
            "truth/redemptions.parquet", "manifest.json", "state/state.json"} <= files_a.keys()
    for name in files_a:
        assert files_a[name] == files_b[name], name
    assert a.n_events > 0 and a.n_contacts == int((~campaign["is_control"]).sum())


def test_keeping_the_state_leaves_the_simulated_files_as_they_were(shop: Path,
                                                                  tmp_path: Path) -> None:
    plain = simulate(n_users=800, days=DAYS, seed=4, out_dir=tmp_path / "plain")
    for name in ("events", "users", "campaigns", "truth_churn", "truth_campaigns"):
        assert plain.paths[name].read_bytes() == (shop / plain.paths[name].relative_to(
            plain.out_dir)).read_bytes(), name
    assert read_state(shop).date == STATE_DAY


def test_customers_not_contacted_live_the_same_future(shop: Path, tmp_path: Path) -> None:
    untouched = continue_shop(shop, None, until=UNTIL, out_dir=tmp_path / "none")
    campaign = _campaign(400, seed=2)
    acted = continue_shop(shop, campaign, until=UNTIL, out_dir=tmp_path / "acted")
    contacted = set(campaign.loc[~campaign["is_control"], "user_id"])
    a, b = (pd.read_parquet(r.paths["events"]) for r in (untouched, acted))
    keep_a, keep_b = ~a["user_id"].isin(contacted), ~b["user_id"].isin(contacted)
    # Everyone else's events (ids, times, contents) are the same, control customers included.
    pd.testing.assert_frame_equal(a[keep_a].reset_index(drop=True),
                                  b[keep_b].reset_index(drop=True))
    ta, tb = (pd.read_parquet(r.paths["truth_churn"]).set_index("user_id")
              for r in (untouched, acted))
    others = sorted(set(ta.index) - contacted)
    pd.testing.assert_frame_equal(ta.loc[others], tb.loc[others])
    # ... and the campaign did change the contacted customers' future, not their past: their
    # events before the delivery, and the reviews and returns of their orders before it, stay.
    assert not a[~keep_a].reset_index(drop=True).equals(b[~keep_b].reset_index(drop=True))
    delivered = campaign["assigned_at"].iloc[0]
    ca, cb = a[~keep_a], b[~keep_b]
    pd.testing.assert_frame_equal(ca[ca["ts"] < delivered].reset_index(drop=True),
                                  cb[cb["ts"] < delivered].reset_index(drop=True))
    before = ca[(ca["type"] == "order") & (ca["ts"] < delivered)][["user_id", "item_id"]]
    after = ca[ca["type"].isin(["review", "return"]) & (ca["ts"] >= delivered)
               & (ca["ts"] < delivered + pd.Timedelta(days=8))]
    echoes = after.merge(before.drop_duplicates(), on=["user_id", "item_id"])
    assert len(echoes) > 0
    assert echoes["event_id"].isin(cb["event_id"]).all()
    orders = b[(b["type"] == "coupon_redeem") & b["user_id"].isin(contacted)]
    assert len(orders) > 0


def test_tickets_of_the_delivery_day_are_kept(shop: Path, tmp_path: Path) -> None:
    """Tickets opening or resolved on the day of a contact were recorded before the action (as
    in the simulation's own campaigns): the contacted customer's file keeps them."""
    untouched = pd.read_parquet(continue_shop(shop, None, until=UNTIL,
                                              out_dir=tmp_path / "none").paths["events"])
    known = untouched["user_id"].str[1:].astype(int) < 800  # not the newcomers of the month
    tickets = untouched[untouched["type"].isin(["support_ticket", "ticket_resolved"]) & known]
    day = tickets["ts"].dt.floor("D").value_counts().index[0]  # the day with most of them
    on_day = tickets[tickets["ts"].dt.floor("D") == day]
    campaign = pd.DataFrame({"user_id": on_day["user_id"].unique(), "action": "coupon_5",
                             "is_control": False, "assigned_at": day})
    acted = pd.read_parquet(continue_shop(shop, campaign, until=UNTIL,
                                          out_dir=tmp_path / "acted").paths["events"])
    assert on_day["event_id"].isin(acted["event_id"]).all()


def test_continuing_in_two_steps_is_continuing_at_once(shop: Path, tmp_path: Path) -> None:
    """Without a campaign the day loop does not depend on where a continuation stops: the orders,
    tickets and hidden states are the same (the browsing detail of a call's events is drawn
    once per call, so session times differ)."""
    middle = STATE_DAY + dt.timedelta(days=12)
    once = continue_shop(shop, None, until=UNTIL, out_dir=tmp_path / "once")
    first = continue_shop(shop, None, until=middle, out_dir=tmp_path / "first")
    second = continue_shop(first.out_dir, None, until=UNTIL, out_dir=tmp_path / "second")

    def facts(frames: list[pd.DataFrame]) -> pd.DataFrame:
        e = pd.concat(frames)
        e = e[e["type"].isin(["order", "support_ticket", "ticket_resolved", "coupon_redeem"])]
        out = e.assign(day=e["ts"].dt.floor("D"))[["user_id", "day", "type", "item_id",
                                                    "amount", "quantity"]]
        return out.sort_values(list(out.columns)).reset_index(drop=True)

    pd.testing.assert_frame_equal(
        facts([pd.read_parquet(once.paths["events"])]),
        facts([pd.read_parquet(r.paths["events"]) for r in (first, second)]))
    a, b = read_state(once.out_dir), read_state(second.out_dir)
    assert a.day == b.day
    for name in ("alive", "s", "last_order", "t_open", "t_resolve", "iv_until"):
        np.testing.assert_array_equal(getattr(a.base, name), getattr(b.base, name), name)
    pd.testing.assert_frame_equal(pd.read_parquet(once.paths["truth_churn"]),
                                  pd.read_parquet(second.paths["truth_churn"]))


def test_chained_continuations_keep_every_event_id_unique(shop: Path, tmp_path: Path) -> None:
    first = continue_shop(shop, _campaign(300, seed=3), until=UNTIL, out_dir=tmp_path / "1")
    second = continue_shop(first.out_dir, _campaign(300, seed=4, day=UNTIL, lag=0),
                           until=UNTIL + dt.timedelta(days=20), out_dir=tmp_path / "2")
    ids = pd.concat([pd.read_parquet(p, columns=["event_id", "ts"]) for p in
                     (shop / "events.parquet", first.paths["events"], second.paths["events"])])
    assert ids["event_id"].is_unique
    # Each file covers its own period: nothing before its start, nothing at or after its end.
    for result in (first, second):
        ts = pd.read_parquet(result.paths["events"])["ts"]
        assert ts.min() >= pd.Timestamp(result.start, tz="UTC")
        assert ts.max() < pd.Timestamp(result.until, tz="UTC")
    state = read_state(second.out_dir)
    assert state.contact_user.size == first.n_contacts + second.n_contacts
    # The second campaign's truth (on the day the first continuation ended) is the first one's
    # oracle there, for customers contacted twice too: both read each customer's real state.
    oracle = pd.read_parquet(first.paths["truth_churn"]).set_index("user_id")
    contacts = pd.read_parquet(second.paths["truth_contacts"]).set_index("user_id")
    again = contacts.index.isin(pd.read_parquet(first.paths["truth_contacts"]).query(
        "not is_control")["user_id"])
    assert again.sum() > 20
    expected = [oracle.at[u, f"effect_{a}"] for u, a in zip(contacts.index, contacts["action"],
                                                             strict=True)]
    np.testing.assert_allclose(contacts["effect"], expected, atol=1e-12)


def test_contact_truth_is_the_simulators_effect_of_the_action(shop: Path,
                                                             tmp_path: Path) -> None:
    """On the state day, a contact's truth equals the simulation's own ``effect_<action>`` at
    that cutoff: one model of what an action does."""
    campaign = _campaign(300, seed=5).assign(assigned_at=pd.Timestamp(STATE_DAY, tz="UTC"))
    result = continue_shop(shop, campaign, until=UNTIL, out_dir=tmp_path / "t", horizon_days=90)
    contacts = pd.read_parquet(result.paths["truth_contacts"]).set_index("user_id")
    truth = pd.read_parquet(shop / "truth" / "churn.parquet")  # cutoffs at days 90 and 120
    truth = truth[truth["cutoff"] == pd.Timestamp(STATE_DAY, tz="UTC")].set_index("user_id")
    expected = np.array([truth.at[u, f"effect_{a}"] for u, a in
                         zip(contacts.index, contacts["action"], strict=True)])
    np.testing.assert_allclose(contacts["effect"].to_numpy(), expected, atol=1e-12)
    assert (contacts["p_churn_none"] == truth.loc[contacts.index, "p_churn"]).all()


def test_a_drift_shop_continues_in_its_changed_world(tmp_path: Path) -> None:
    """The state keeps the scenario and its change day: after the change a coupon works as the
    changed world says (coupon_hazard_after), as in the simulation's own truth."""
    shop = simulate(n_users=400, days=DAYS, seed=9, out_dir=tmp_path / "drift",
                    scenario="drift", change_day=60, keep_state=True)
    rng = np.random.default_rng(0)
    campaign = pd.DataFrame({"user_id": [f"u{j:07d}" for j in rng.choice(400, 150, False)],
                             "action": "coupon_20", "is_control": False,
                             "assigned_at": pd.Timestamp(STATE_DAY, tz="UTC")})
    result = continue_shop(shop.out_dir, campaign, until=UNTIL, out_dir=tmp_path / "more")
    contacts = pd.read_parquet(result.paths["truth_contacts"]).set_index("user_id")
    truth = pd.read_parquet(shop.paths["truth_churn"])
    truth = truth[truth["cutoff"] == pd.Timestamp(STATE_DAY, tz="UTC")].set_index("user_id")
    np.testing.assert_allclose(contacts["effect"], truth.loc[contacts.index, "effect_coupon_20"],
                               atol=1e-12)
    assert result.scenario == "drift" and read_state(result.out_dir).change_day == 60


def test_the_delivered_campaign_is_checked(shop: Path, tmp_path: Path) -> None:
    good = _campaign(10, seed=6)
    cases = {
        "not in the shop.*delivered row 1": good.assign(user_id="someone"),
        "not one the shop knows": good.assign(action="free_pony", is_control=False),
        "outside the continued period": good.assign(
            assigned_at=pd.Timestamp(STATE_DAY, tz="UTC") - pd.Timedelta(days=2)),
        "delivered row 11.* twice": pd.concat([good, good], ignore_index=True),
        "no assigned_at": good.drop(columns="assigned_at"),
    }
    for words, frame in cases.items():
        with pytest.raises(ValueError, match=words):
            continue_shop(shop, frame, until=UNTIL, out_dir=tmp_path / "x")
    with pytest.raises(ValueError, match="must be after"):
        continue_shop(shop, None, until=STATE_DAY, out_dir=tmp_path / "x")
    for itself in (shop, shop / "state"):
        with pytest.raises(ValueError, match="folder of its own"):
            continue_shop(itself, None, until=UNTIL, out_dir=shop)
    with pytest.raises(ValueError, match="keep-state"):
        continue_shop(tmp_path, None, until=UNTIL, out_dir=tmp_path / "x")


def test_a_plan_export_with_a_delivery_date_is_a_delivered_campaign(shop: Path,
                                                                   tmp_path: Path) -> None:
    """``churnguard plan --out`` writes no time: --delivered-at gives it; CSV booleans read."""
    plan = _campaign(50, seed=7).drop(columns="assigned_at")
    plan["is_control"] = plan["is_control"].map({True: "true", False: "false"})
    path = tmp_path / "plan.csv"
    plan.to_csv(path, index=False)
    result = continue_shop(shop, path, until=UNTIL, out_dir=tmp_path / "p",
                           delivered_at=STATE_DAY + dt.timedelta(days=1))
    contacts = pd.read_parquet(result.paths["truth_contacts"])
    assert len(contacts) == 50 and result.n_contacts == int((plan["is_control"] == "false").sum())
    assert (contacts["delivered_day"] == pd.Timestamp(STATE_DAY, tz="UTC")
            + pd.Timedelta(days=1)).all()


def test_the_command_line_keeps_the_state_and_continues(tmp_path: Path) -> None:
    runner = CliRunner()
    shop = tmp_path / "shop"
    made = runner.invoke(cli, ["simulate", "--users", "300", "--days", "100", "--seed", "2",
                               "--keep-state", "--out", str(shop)])
    assert made.exit_code == 0, made.output
    campaign = tmp_path / "campaign.parquet"
    _campaign(100, seed=8, day=START + dt.timedelta(days=100), users=300).to_parquet(campaign)
    out = tmp_path / "next"
    done = runner.invoke(cli, ["simulate", "--continue", str(shop), "--delivered", str(campaign),
                               "--until", "2025-05-01", "--horizon", "30d", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "Continued the shop from 2025-04-11 to 2025-05-01" in done.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["horizon_days"] == 30 and manifest["campaigns"]["c1"]["treated"] > 0
    refused = runner.invoke(cli, ["simulate", "--continue", str(shop), "--users", "5",
                                  "--until", "2025-05-01", "--out", str(tmp_path / "no")])
    assert refused.exit_code == 2 and "--users cannot be given with --continue" in refused.output
    lonely = runner.invoke(cli, ["simulate", "--until", "2025-05-01", "--out", str(tmp_path)])
    assert lonely.exit_code == 2 and "with --continue only" in lonely.output


def test_customers_keep_signing_up_at_the_shops_rate(shop: Path, tmp_path: Path) -> None:
    """Newcomers sign up at the simulated window's daily rate, get the next user ids, are in
    users.parquet (which ingests as any users file) and act only after their sign-up."""
    first = continue_shop(shop, None, until=UNTIL, out_dir=tmp_path / "1")
    second = continue_shop(first.out_dir, None, until=UNTIL + dt.timedelta(days=30),
                           out_dir=tmp_path / "2")
    signed = (pd.read_parquet(shop / "users.parquet")["signup_ts"]
              >= pd.Timestamp(START, tz="UTC")).sum()
    for result, offset in ((first, 800), (second, 800 + first.n_new_users)):
        users = pd.read_parquet(result.paths["users"])
        assert len(users) == result.n_new_users
        assert abs(result.n_new_users - signed / DAYS * 30) <= 1  # the rate, rounded per day
        assert users["user_id"].tolist() == [f"u{j:07d}" for j in range(offset, offset + len(users))]
        assert users["signup_ts"].between(pd.Timestamp(result.start, tz="UTC"),
                                          pd.Timestamp(result.until, tz="UTC")).all()
        events = pd.read_parquet(result.paths["events"]).merge(users, on="user_id")
        assert len(events) > 0 and (events["ts"] >= events["signup_ts"]).all()
    with Store.in_memory() as store:
        report = ingest_files(store, kind="users", files=[first.paths["users"]])
        assert report.rows_added == first.n_new_users
    closed = continue_shop(shop, None, until=UNTIL, out_dir=tmp_path / "closed",
                           new_customers=False)
    assert closed.n_new_users == 0 and pd.read_parquet(closed.paths["users"]).empty
