"""The ``drift`` scenario: the default shop until a known day, then a change in how behaviour maps
to churn, recorded in the truth; and the default scenario exactly as it was.

The model-level yardstick (a never-retrained GBDT loses at least 0.03 ROC-AUC after the change
against one retrained on post-change labels, and loses nothing on the default shop) is
``test_never_retrained_gbdt_loses_after_the_change`` (slow) and its smaller fast variant.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnguard.cli import main
from churnguard.simulate import simulate

START = dt.date(2025, 1, 1)


def _day(d: int) -> dt.date:
    return START + dt.timedelta(days=d)


def content_digest(paths: dict[str, Path]) -> str:
    """A digest of the tables' content (not the Parquet bytes, whose metadata names the writer's
    version); floats rounded to 9 decimals so a last-bit difference in libm does not count."""
    h = hashlib.sha256()
    for name in ("events", "users", "campaigns", "truth_churn", "truth_campaigns", "truth_users"):
        frame = pd.read_parquet(paths[name])
        for col in frame.columns:
            values = frame[col]
            if values.dtype.kind == "f":
                values = values.round(9)
            h.update(col.encode())
            h.update(pd.util.hash_pandas_object(values, index=False).to_numpy().tobytes())
    return h.hexdigest()


def test_default_scenario_is_unchanged(tmp_path: Path) -> None:
    # Computed with the simulator as it was before the drift scenario existed (main at 1e54d17).
    # If a deliberate change to the default shop moves it, every figure measured on the default
    # shop moves too: update it together with benchmarks/RESULTS.md. Moved once on purpose
    # since: the composed review and ticket texts (simulate/text.py, 2026-12-02) changed the
    # events' text column and nothing else (every other column and table hashed equal). Moved
    # again on purpose: tickets and their resolutions share a thread id (session_id) and a
    # resolution carries the reply that resolved it (issue 20 item 6); only the text and
    # session_id of support_ticket and ticket_resolved rows changed (every other column, row
    # and table equal), and the random stream is untouched.
    result = simulate(n_users=800, days=200, seed=7, out_dir=tmp_path)
    assert content_digest(result.paths) == \
        "3be82d329bcbaac7d68e8e79273f23f3ef832708521b09d7c04686dbf84bac71"
    assert "truth_change" not in result.paths
    assert "change" not in json.loads(result.paths["manifest"].read_text())
    assert "delivery_sensitivity" not in pd.read_parquet(result.paths["truth_users"]).columns


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """The default and the drift shop with the same seed, change on day 150 of 300."""
    out = tmp_path_factory.mktemp("drift_pair")
    cutoffs = [_day(50), _day(60), _day(150), _day(200), _day(240)]
    runs = {name: simulate(n_users=2000, days=300, seed=3, out_dir=out / name, scenario=name,
                           cutoffs=cutoffs, **({"change_day": 150} if name == "drift" else {}))
            for name in ("default", "drift")}
    return {"runs": runs, "churn": {k: pd.read_parquet(r.paths["truth_churn"])
                                    for k, r in runs.items()},
            "events": {k: pd.read_parquet(r.paths["events"]) for k, r in runs.items()}}


def test_until_the_change_the_drift_shop_is_the_default_shop(pair: dict[str, object]) -> None:
    churn, events = pair["churn"], pair["events"]
    # Cutoffs whose 90-day label window ends by the change: the same true P(churn), exactly.
    for day in (50, 60):
        cut = pd.Timestamp(_day(day), tz="UTC")
        a = churn["default"][churn["default"]["cutoff"] == cut].reset_index(drop=True)
        b = churn["drift"][churn["drift"]["cutoff"] == cut].reset_index(drop=True)
        assert len(a) > 500
        pd.testing.assert_frame_equal(a, b)
    # The orders before the change are the same orders (the trait has its own random stream).
    # Their time of day may differ: the events pass draws session times for all visits at once,
    # and the drift shop has more visits after the change.
    change = pd.Timestamp(_day(150), tz="UTC")
    cols = ["user_id", "day", "item_id", "amount", "quantity"]
    orders = {k: e[(e["type"] == "order") & (e["ts"] < change)]
              .assign(day=lambda f: f["ts"].dt.floor("D"), user_id=lambda f: f["user_id"]
                      .astype(str), item_id=lambda f: f["item_id"].astype(str))[cols]
              .sort_values(cols).reset_index(drop=True) for k, e in events.items()}
    assert len(orders["default"]) > 1000
    pd.testing.assert_frame_equal(orders["default"], orders["drift"])


def test_after_the_change_more_customers_churn(pair: dict[str, object]) -> None:
    churn = pair["churn"]
    for day in (150, 240):
        cut = pd.Timestamp(_day(day), tz="UTC")
        a = churn["default"][churn["default"]["cutoff"] == cut]["p_churn"].to_numpy()
        b = churn["drift"][churn["drift"]["cutoff"] == cut]["p_churn"].to_numpy()
        assert b.mean() > a.mean() + 0.03, day


def test_the_change_is_in_how_behaviour_maps_to_churn(pair: dict[str, object]) -> None:
    """Concept drift, not only a shift of the features: among customers who behave alike (a visit
    in the 30 days before the cutoff), where they live and how sensitive to delivery they are
    decides their true churn probability after the change, and did not before."""
    users = pd.read_parquet(pair["runs"]["drift"].paths["users"]).set_index("user_id")
    trait = pd.read_parquet(pair["runs"]["drift"].paths["truth_users"]) \
        .set_index("user_id")["delivery_sensitivity"]
    competitor = users["region"].isin(["cn-east", "cn-south"]) & (trait > 0.4)

    def contrast(name: str, day: int) -> float:
        churn, events = pair["churn"][name], pair["events"][name]
        cut = pd.Timestamp(_day(day), tz="UTC")
        recent = events[(events["type"] == "visit") & (events["ts"] < cut)
                        & (events["ts"] >= cut - pd.Timedelta(days=30))]["user_id"].astype(str)
        at = churn[(churn["cutoff"] == cut) & churn["user_id"].isin(set(recent))]
        hit = competitor.reindex(at["user_id"]).to_numpy()
        return float(at["p_churn"][hit].mean() - at["p_churn"][~hit].mean())

    # The same contrast in the default shop (region alone moves churn a little there: late
    # deliveries) is the yardstick; before the change the two shops agree exactly.
    values = {(name, day): contrast(name, day)
              for name in ("drift", "default") for day in (60, 240)}
    assert values["drift", 60] == values["default", 60]
    assert values["drift", 240] > values["default", 240] + 0.15, values


def test_the_truth_stays_exact_after_the_change(pair: dict[str, object]) -> None:
    """The true P(churn) at cutoffs whose horizon lies after the change matches the churn the
    events show, within 4 exact binomial standard errors (as the default shop's truth does)."""
    from shop_helpers import churn_check_rows

    for day in (150, 200):
        rows = churn_check_rows(shop_events=pair["events"]["drift"], churn=pair["churn"]["drift"],
                                cutoff=pd.Timestamp(_day(day), tz="UTC"))
        p = rows["p_churn"].to_numpy()
        se = np.sqrt(np.sum(p * (1 - p))) / p.size
        assert len(rows) > 800 and se < 0.02, (day, len(rows), se)
        gap = rows["churned"].mean() - p.mean()
        assert abs(gap) < 4 * se, (day, rows["churned"].mean(), p.mean(), se)


def test_the_truth_records_the_change_and_the_trait(pair: dict[str, object]) -> None:
    run = pair["runs"]["drift"]
    change = json.loads(run.paths["truth_change"].read_text())
    assert change["change_day"] == 150 and change["change_date"] == "2025-05-31"
    assert change["first_cutoff_with_changed_labels"] == "2025-03-03"  # + 89 days = the change
    assert change["first_wholly_changed_labels_matured"] == "2025-08-29"
    assert change["parameters"]["competitor_kappa"]["before"] == 0.0
    assert change["parameters"]["competitor_kappa"]["after"] > 0.0
    assert change["parameters"]["coupon_hazard"]["before"] \
        != change["parameters"]["coupon_hazard"]["after"]
    manifest = json.loads(run.paths["manifest"].read_text())
    assert manifest["change"] == {"day": 150, "date": "2025-05-31"}
    assert manifest["files"]["truth_change"] == "truth/change.json"
    users = pd.read_parquet(run.paths["truth_users"])
    d = users["delivery_sensitivity"].to_numpy()
    assert ((d >= 0) & (d <= 1)).all() and d.std() > 0.1


def test_the_trait_shows_in_the_data_before_the_change(pair: dict[str, object]) -> None:
    """What makes retraining possible: delivery-sensitive customers write low-rated reviews of
    slow deliveries from day 0, while in the default shop the trait leaves no trace."""
    run = pair["runs"]["drift"]
    trait = pd.read_parquet(run.paths["truth_users"]).set_index("user_id")["delivery_sensitivity"]
    change = pd.Timestamp(_day(150), tz="UTC")
    shares = {}
    for name, events in pair["events"].items():
        before = events[events["ts"] < change]
        orders = before[before["type"] == "order"].groupby("user_id", observed=True).size()
        low = before[(before["type"] == "review") & (before["rating"] <= 2)] \
            .groupby("user_id", observed=True).size()
        frame = pd.DataFrame({"orders": orders, "low": low}).fillna(0)
        frame = frame[frame["orders"] >= 3].join(trait)
        share = frame["low"] / frame["orders"]
        shares[name] = (share[frame["delivery_sensitivity"] > 0.6].mean(),
                        share[frame["delivery_sensitivity"] < 0.2].mean())
    # In the default shop the trait's regions (more late deliveries) give a small gap; the
    # complaints about slow deliveries make it several times larger.
    gap = {name: high - low for name, (high, low) in shares.items()}
    assert shares["drift"][0] > 2 * shares["drift"][1]
    assert gap["drift"] > 3 * gap["default"], shares


def test_change_day_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="has no change"):
        simulate(n_users=10, days=30, seed=0, out_dir=tmp_path, change_day=10)
    with pytest.raises(ValueError, match="outside the 300-day window"):
        simulate(n_users=10, days=300, seed=0, out_dir=tmp_path, scenario="drift")
    with pytest.raises(ValueError, match="outside the 30-day window"):
        simulate(n_users=10, days=30, seed=0, out_dir=tmp_path, scenario="drift", change_day=30)


def test_cli_simulates_drift_with_a_change_day(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--users", "50", "--days", "40", "--scenario", "drift",
                 "--change-day", "20", "--out", str(tmp_path / "shop")])
    assert code == 0, capsys.readouterr().err
    change = json.loads((tmp_path / "shop" / "truth" / "change.json").read_text())
    assert change["change_date"] == "2025-01-21"
    code = main(["simulate", "--users", "50", "--days", "40", "--change-day", "20",
                 "--out", str(tmp_path / "other")])
    err = capsys.readouterr().err
    assert code == 2 and "has no change" in err and "drift" in err


def test_drift_shop_is_deterministic(tmp_path: Path) -> None:
    a = simulate(n_users=300, days=120, seed=5, out_dir=tmp_path / "a", scenario="drift",
                 change_day=60)
    b = simulate(n_users=300, days=120, seed=5, out_dir=tmp_path / "b", scenario="drift",
                 change_day=60)
    for name, path in a.paths.items():
        assert path.read_bytes() == b.paths[name].read_bytes(), name


def _bench():  # noqa: ANN202
    """benchmarks/bench_drift_scenario.py, whose measurement the model tests share."""
    import importlib
    import sys

    root = Path(__file__).resolve().parents[2] / "benchmarks"
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module("bench_drift_scenario")


def _losses(tmp: Path, *, users: int, days: int, change_day: int, cohorts: list[int],
            seed: int) -> dict[str, list[float]]:
    """Per scenario, AUC(retrained) - AUC(never retrained) on each test cohort."""
    bench = _bench()
    out = {}
    for scenario in ("drift", "default"):
        run = bench.measure(scenario=scenario, users=users, days=days, change_day=change_day,
                            every=28, seed=seed, folder=tmp / scenario, cohorts=cohorts)
        assert all(c["post_trained"] for c in run["cohorts"])
        out[scenario] = [c["retrained"] - c["never"] for c in run["cohorts"]]
    return out


@pytest.mark.slow
def test_never_retrained_gbdt_loses_after_the_change(tmp_path: Path) -> None:
    """The yardstick the gate and the monitor are measured with: on cohorts after the change,
    the catalogue's GBDT trained with the labels known at the change loses at least 0.03 ROC-AUC
    against the same recipe retrained on post-change labels; on the default shop it loses
    nothing beyond noise."""
    # Change after a year; four monthly cohorts whose retrained model learnt from post-change
    # cutoffs only (the benchmark's shop, at 6,000 customers).
    losses = _losses(tmp_path, users=6000, days=730, change_day=365,
                     cohorts=[561, 589, 617, 639], seed=0)
    drift, default = np.mean(losses["drift"]), np.mean(losses["default"])
    assert drift >= 0.03, losses
    assert abs(default) < 0.015, losses
    assert min(losses["drift"]) > max(losses["default"]), losses


@pytest.mark.slow
def test_never_retrained_gbdt_loses_after_the_change_small(tmp_path: Path) -> None:
    """A smaller shop whose change comes after 300 days, two cohorts (about 90 s on 2 busy
    cores, hence slow too; the default run checks the change itself at the truth's level in
    ``test_the_change_is_in_how_behaviour_maps_to_churn``). Seeds 1 and 2 measured 0.033 and
    0.051 on the drift shop, -0.001 and -0.007 on the default one."""
    losses = _losses(tmp_path, users=2500, days=665, change_day=300, cohorts=[546, 574],
                     seed=1)
    drift, default = np.mean(losses["drift"]), np.mean(losses["default"])
    assert drift >= 0.02, losses
    assert drift > default + 0.015, losses
