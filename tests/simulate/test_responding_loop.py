"""One cycle of the learning loop on the responding shop, through churnguard's own steps: ingest,
train, plan, save, deliver to a file, continue the shop with the campaign as the store recorded
it, ingest the new events and measure. The shop takes what churnguard writes as it is."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from churnguard.config import IngestConfig, ProjectConfig
from churnguard.ingest import ingest_files
from churnguard.intervene.deliver import deliver_plan
from churnguard.intervene.measure import measure_campaign
from churnguard.intervene.plan import make_plan, save_plan
from churnguard.simulate import continue_shop, simulate
from churnguard.store import Store
from churnguard.training import train_model

DAYS = 400
END = dt.date(2025, 1, 1) + dt.timedelta(days=DAYS)
MONTH = END + dt.timedelta(days=30)


@pytest.mark.slow
def test_one_cycle_of_plan_deliver_continue_and_measure(tmp_path: Path) -> None:
    shop = simulate(n_users=3_000, days=DAYS, seed=1, out_dir=tmp_path / "shop", keep_state=True)
    # Half of the plan held out: the plan contacts only the customers worth an action, which on
    # this small shop's short campaign history may be a handful, and the loop needs both groups.
    config = ProjectConfig.model_validate({"intervene": {"control_share": 0.5}})
    ingest = IngestConfig(future_events="allow")
    with Store.open(tmp_path / "churnguard.duckdb") as store:
        for kind in ("users", "items", "events", "campaigns"):
            ingest_files(store, kind=kind, files=[shop.out_dir / f"{kind}.parquet"],
                         config=ingest)
        train_model(store, definition=config.churn, model="gbdt", promote=True)
        plan = make_plan(store, config=config, budget=800.0, as_of=END)
        assert plan.rows["is_control"].any() and (~plan.rows["is_control"]).any(), plan.rows
        save_plan(store, plan, config=config)
        deliver_plan(store, campaign_id=plan.campaign_id, out=tmp_path / "deliveries.jsonl")
        rows = store.con.execute(
            "SELECT campaign_id, user_id, action, is_control, assigned_at FROM campaigns "
            "WHERE campaign_id = ?", [plan.campaign_id]).df()
        month = continue_shop(shop.out_dir, rows, until=MONTH, out_dir=tmp_path / "month",
                              horizon_days=30)
        for kind in ("users", "events"):  # the month's newcomers, then everyone's events
            ingest_files(store, kind=kind, files=[month.paths[kind]], config=ingest)
        measured = measure_campaign(store, campaign_id=plan.campaign_id, window_days=30,
                                    as_of=MONTH)

    treated = plan.rows[~plan.rows["is_control"]]
    truth = pd.read_parquet(month.paths["truth_contacts"])
    assert month.n_contacts == len(treated) > 0 and month.n_control == plan.rows["is_control"].sum()
    pd.testing.assert_series_equal(
        truth.loc[~truth["is_control"], "action"].reset_index(drop=True),
        treated.set_index("user_id").loc[truth.loc[~truth["is_control"], "user_id"], "action"]
        .reset_index(drop=True), check_names=False)
    assert (truth["delivered_day"] == pd.Timestamp(END, tz="UTC")).all()
    # The plan's own measurement: matched control, every customer of the plan counted.
    assert measured.control == "matched" and measured.tiers_from == "plan"
    assert measured.n_treated == month.n_contacts and measured.n_control == month.n_control
    # The delivery file holds the contacted customers only and no time: with the plan's date it
    # gives the same shop (the control customers are left alone either way).
    from_file = continue_shop(shop.out_dir, tmp_path / "deliveries.jsonl", delivered_at=END,
                              until=MONTH, out_dir=tmp_path / "from_file", horizon_days=30)
    assert from_file.n_contacts == month.n_contacts and from_file.n_control == 0
    assert from_file.paths["events"].read_bytes() == month.paths["events"].read_bytes()
