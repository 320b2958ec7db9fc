"""The intervention commands end to end on a small simulated shop: uplift, plan, deliver, measure."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churnguard.cli import main
from churnguard.config import ProjectConfig
from churnguard.cutoffs import scoring_cutoff
from churnguard.intervene.control import control_key, control_mask
from churnguard.intervene.plan import choose_actions, make_plan, plan_inputs, save_plan
from churnguard.project import Project
from churnguard.scoring import reasons_for, score_customers
from churnguard.simulate import simulate
from churnguard.store import Store

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2,000 customers over 400 days (campaigns on days 60, 150, 240, 330), a champion model."""
    root = tmp_path_factory.mktemp("campaign_shop")
    sim = simulate(n_users=2000, days=400, seed=11, out_dir=root / "data")
    assert main(["init", str(root)]) == 0
    for kind in ("items", "users", "events", "campaigns"):
        assert main(["ingest", kind, str(sim.paths[kind]), "--project", str(root)]) == 0
    assert main(["train", "--models", "gbdt", "--project", str(root)]) == 0
    return root


def _store(root: Path) -> Store:
    return Store.open(root / "churnguard.duckdb")


def test_uplift_evaluate_and_score_follow_the_cli_contract(project: Path, tmp_path: Path) -> None:
    doc_path = tmp_path / "uplift.json"
    assert main(["uplift", "evaluate", "--folds", "2", "--json", str(doc_path),
                 "--project", str(project)]) == 0
    doc = json.loads(doc_path.read_text())
    names = [row["name"] for row in doc["learners"]]
    assert {"t_learner", "x_learner", "s_learner", "random"} <= set(names)
    assert doc["chosen"] in names and doc["chosen"] != "random"
    assert all({"name", "qini", "auuc", "uplift_at_30"} <= set(row) for row in doc["learners"])

    users = tmp_path / "some.csv"
    pd.DataFrame({"user_id": ["u0000001", "u0000002", "u0000003"]}).to_csv(users, index=False)
    out = tmp_path / "uplift.csv"
    assert main(["uplift", "score", "--users", str(users), "--learner", "t_learner",
                 "--out", str(out), "--project", str(project)]) == 0
    frame = pd.read_csv(out)
    actions = [a.name for a in ProjectConfig().intervene.actions]
    assert list(frame.columns) == ["user_id", *actions]
    assert frame["user_id"].tolist() == ["u0000001", "u0000002", "u0000003"]
    assert frame[actions].abs().max().max() < 1  # changes in a probability

    bad = tmp_path / "bad.csv"
    pd.DataFrame({"customer": ["x"]}).to_csv(bad, index=False)
    assert main(["uplift", "score", "--users", str(bad), "--out", str(out),
                 "--project", str(project)]) == 2


def test_plan_respects_budget_capacity_consent_and_holds_out_a_control(project: Path,
                                                                        tmp_path: Path) -> None:
    out = tmp_path / "plan.csv"
    assert main(["plan", "--budget", "300", "--campaign-id", "spring", "--out", str(out),
                 "--project", str(project)]) == 0
    rows = pd.read_csv(out)
    treated, control = rows[~rows["is_control"]], rows[rows["is_control"]]
    assert len(treated) > 20
    assert treated["expected_cost"].sum() <= 300 + 1e-6
    # The model's picks are each worth their cost; explored ones may not be known to pay yet.
    model = treated[treated["assignment"] == "model"]
    assert len(model) > 20 and (model["expected_margin"] > 0).all()
    assert treated["message_en"].notna().all() and treated["message_zh"].notna().all()
    assert control["message_en"].isna().all()
    # About 10% held out within each (tier, action) stratum.
    share = len(control) / len(rows)
    assert 0.05 <= share <= 0.15
    with _store(project) as store:
        no_consent = {r[0] for r in store.con.execute(
            "SELECT user_id FROM user_attributes WHERE name = 'contact_ok' AND value = 'false'"
        ).fetchall()}
        assert no_consent and not (set(rows["user_id"]) & no_consent)
        campaign = store.con.execute(
            "SELECT count(*), count(*) FILTER (WHERE is_control) FROM campaigns "
            "WHERE campaign_id = 'spring'").fetchall()[0]
        assert campaign == (len(rows), len(control))
        summary = json.loads(store.con.execute(
            "SELECT summary FROM plans WHERE campaign_id = 'spring'").fetchall()[0][0])
    assert "randomised campaigns" in summary["uplift_source"]
    assert summary["value_model"]["chosen"] in ("btyd", "gbdt")
    # The same id again is refused (the plan is a campaign of record).
    assert main(["plan", "--budget", "300", "--campaign-id", "spring",
                 "--project", str(project)]) == 2

    # Delivery to a file: every treated customer once, no control customer.
    sent = tmp_path / "sent.jsonl"
    assert main(["deliver", "spring", "--out", str(sent), "--project", str(project)]) == 0
    assert main(["deliver", "spring", "--out", str(sent), "--project", str(project)]) == 0
    delivered = [json.loads(line)["user_id"] for line in sent.read_text().splitlines()]
    assert sorted(delivered) == sorted(treated["user_id"])
    # Too early to measure: the window has not passed.
    assert main(["measure", "spring", "--project", str(project)]) == 2


def test_control_group_is_reproducible_and_budget_zero_contacts_nobody(project: Path) -> None:
    config = Project.load(project).config
    with _store(project) as store:
        first = make_plan(store, config=config, budget=200, campaign_id="same")
        again = make_plan(store, config=config, budget=200, campaign_id="same")
        none = make_plan(store, config=config, budget=0, campaign_id="zero")
    key = ["user_id", "is_control"]
    pd.testing.assert_frame_equal(first.rows[key], again.rows[key])
    assert none.summary["treated"] == 0


def test_plan_draws_its_control_group_by_campaign_id_and_key(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another campaign, or another control key, holds out other customers, as many of them in
    every risk tier and action (tests/intervene/test_control.py tests the hash itself)."""
    config = Project.load(project).config
    env = config.intervene.control_key_env
    monkeypatch.setenv(env, "first-key")
    with _store(project) as store:
        inputs = plan_inputs(store, config=config)
        base = make_plan(store, config=config, budget=200, campaign_id="spring", inputs=inputs)
        other_campaign = make_plan(store, config=config, budget=200, campaign_id="summer",
                                   inputs=inputs)
        monkeypatch.setenv(env, "second-key")
        other_key = make_plan(store, config=config, budget=200, campaign_id="spring",
                              inputs=inputs)

    def held_out(plan) -> pd.DataFrame:
        return plan.rows[plan.rows["is_control"]]

    def strata(plan) -> dict[tuple[str, str], int]:
        return held_out(plan).groupby(["risk_tier", "action"]).size().to_dict()

    assert len(held_out(base)) >= 20
    for other in (other_campaign, other_key):
        # As many held out in each risk tier and action (control rows are never trimmed) ...
        assert strata(other) == strata(base)
        shared = set(held_out(base)["user_id"]) & set(held_out(other)["user_id"])
        # ... but two independent draws share a control customer about as often as the control
        # share (10%); the same draw shares them all.
        assert len(shared) < 0.5 * len(held_out(base))


def test_measure_a_historical_campaign(project: Path, tmp_path: Path) -> None:
    with _store(project) as store:
        first = store.con.execute("SELECT min(campaign_id) FROM campaigns").fetchall()[0][0]
    out = tmp_path / "m.json"
    assert main(["measure", first, "--json", str(out), "--project", str(project)]) == 0
    doc = json.loads(out.read_text())
    assert {g["action"] for g in doc["groups"]} >= {"coupon_10", "cs_outreach"}


def test_plan_explains_only_whom_it_contacts_with_the_same_reasons_as_scoring(
        project: Path) -> None:
    config = Project.load(project).config
    with _store(project) as store:
        full = score_customers(store, definition=config.churn, tiers=config.scoring, save=False)
        quick = score_customers(store, definition=config.churn, tiers=config.scoring, save=False,
                                with_reasons=False)
        with pytest.raises(ValueError, match="save=False"):
            score_customers(store, definition=config.churn, tiers=config.scoring,
                            with_reasons=False)
        stored_before = store.con.execute("SELECT count(*) FROM scores").fetchall()[0][0]
        plan = make_plan(store, config=config, budget=200, campaign_id="reasons")
        stored_after = store.con.execute("SELECT count(*) FROM scores").fetchall()[0][0]
        treated = plan.rows.loc[~plan.rows["is_control"], "user_id"].tolist()
        some = [*treated[:40], "no-such-customer"]
        why = reasons_for(store, some, definition=config.churn, as_of=full.as_of,
                          version=full.model_version, lang=config.scoring.lang)
    # Without reasons: the same probabilities and tiers, empty reasons.
    pd.testing.assert_frame_equal(quick.scores[["user_id", "p_churn", "risk_tier"]],
                                  full.scores[["user_id", "p_churn", "risk_tier"]])
    assert (quick.scores[["reason_1", "reason_2", "reason_3"]] == "").all().all()
    assert stored_after == stored_before  # the plan leaves the stored scores alone
    # The contacted customers' reasons are exactly those a full scoring pass gives them.
    assert len(treated) >= 10 and "no-such-customer" not in why.index
    assert sorted(why.index) == sorted(treated[:40])
    by_user = full.scores.set_index("user_id")
    for k in (1, 2, 3):
        assert (why[f"reason_{k}"] == by_user.loc[why.index, f"reason_{k}"]).all()
        expected = full.reason_keys.loc[why.index, f"reason_keys_{k}"]
        assert [str(v) for v in why[f"reason_keys_{k}"]] == [str(v) for v in expected]
    assert (why["reason_1"] != "").all()


def test_exploration_marks_its_rows_and_a_zero_share_keeps_the_greedy_plan(
        project: Path, tmp_path: Path) -> None:
    config = Project.load(project).config

    def sharing(share: float) -> ProjectConfig:
        return config.model_copy(update={"intervene": config.intervene.model_copy(
            update={"explore_share": share})})

    with _store(project) as store:
        inputs = plan_inputs(store, config=config)
        plain = make_plan(store, config=sharing(0.0), budget=200, campaign_id="plain",
                          inputs=inputs)
        greedy = choose_actions(inputs, config=sharing(0.0), budget=200)
        explored = make_plan(store, config=sharing(0.2), budget=200, campaign_id="explored",
                             inputs=inputs)
        save_plan(store, explored, config=sharing(0.2))
        key = control_key(config.intervene.control_key_env)
    # A share of 0: the greedy allocation and the control draw per (tier, action) as before.
    rows = plain.rows
    picked = inputs.customers["user_id"].to_numpy()[greedy >= 0]
    assert sorted(rows["user_id"]) == sorted(picked)
    expected = control_mask(rows["user_id"], rows["risk_tier"] + "|" + rows["action"],
                            campaign_id="plain", share=config.intervene.control_share, key=key)
    assert (rows["is_control"].to_numpy() == np.asarray(expected)).all()
    assert set(rows["assignment"]) == {"model", "control"}
    assert ((rows["assignment"] == "control") == rows["is_control"]).all()
    assert "exploration" not in plain.summary
    # A share of 0.2: a fifth of the contacts explored, each arm with its own control group.
    rows = explored.rows
    treated = rows[~rows["is_control"]]
    assert (treated["assignment"] == "explore").mean() == pytest.approx(0.2, abs=0.03)
    assert treated["expected_cost"].sum() <= 200 + 1e-6
    assert (rows.loc[rows["assignment"] == "explore_control", "is_control"]).all()
    assert 0 < (rows["assignment"] == "explore_control").sum() \
        < (rows["assignment"] == "explore").sum()
    report = explored.summary["exploration"]
    assert report["share"] == 0.2
    assert report["contacted"] == (treated["assignment"] == "explore").sum()
    assert report["expected_margin_given_up"] >= 0
    out = tmp_path / "explored.csv"
    assert main(["plan", "--budget", "1", "--out", str(out), "--campaign-id", "tiny",
                 "--project", str(project)]) == 0
    with _store(project) as store:
        stored = store.con.execute("SELECT assignment, count(*) FROM plan_rows WHERE "
                                   "campaign_id = 'explored' GROUP BY 1").fetchall()
    assert dict(stored) == rows["assignment"].value_counts().to_dict()
    assert "assignment" in pd.read_csv(out).columns


@pytest.mark.slow
def test_a_plan_applies_a_kept_uplift_model_instead_of_learning_again(project: Path) -> None:
    """``plan_inputs(learned=...)`` (bench_learning.py's frozen model and its cache): the kept
    model gives the very effects learning again from the same campaigns gives, without learning."""
    config = Project.load(project).config
    said: list[str] = []
    with _store(project) as store:
        learned = plan_inputs(store, config=config)
        again = plan_inputs(store, config=config, learned=learned.learned, progress=said.append)
    assert learned.learned is not None and again.learned is learned.learned
    assert not any("learning uplift" in m or "fold" in m for m in said), said
    pd.testing.assert_frame_equal(again.uplift, learned.uplift)
    pd.testing.assert_frame_equal(again.cost, learned.cost)
    assert again.uplift_source == learned.uplift_source
    assert again.evaluation is learned.evaluation


def test_a_plan_keeps_a_recent_choice_of_learner_and_chooses_again_when_it_is_old(
        project: Path) -> None:
    """``[uplift] choose_every_days``: a plan within that many days of the plan that chose the
    uplift learner among all six keeps its choice and cross-fits only that learner (for the
    recalibration); a plan that many days later, or with 0, chooses among all of them again."""
    config = Project.load(project).config
    assert config.uplift.choose_every_days == 28
    every = ["s_logistic", "t_logistic", "dr_learner", "s_learner", "t_learner", "x_learner"]

    def evaluated(inputs: object) -> list[str]:
        return [learner["name"] for learner in inputs.evaluation.learners]

    with _store(project) as store:
        t = scoring_cutoff(store)
        # Before every plan the other tests store (they plan at T): none of theirs is older.
        chooses = plan_inputs(store, config=config, as_of=t - dt.timedelta(days=35))
        save_plan(store, make_plan(store, config=config, budget=200.0, inputs=chooses,
                                   campaign_id="chooses"), config=config)
        assert evaluated(chooses) == [*every, "random"]
        chosen = chooses.evaluation.chosen
        said: list[str] = []
        week_later = plan_inputs(store, config=config, as_of=t - dt.timedelta(days=28),
                                 progress=said.append)
        assert evaluated(week_later) == [chosen, "random"]
        assert week_later.evaluation.chosen == chosen
        assert week_later.evaluation.choice["kept_from"] == "chooses"
        assert week_later.evaluation.choice["chosen_at"][:10] == f"{t - dt.timedelta(days=35):%F}"
        assert f"kept from the choice of {t - dt.timedelta(days=35):%F}" in \
            week_later.uplift_source
        folds = [m for m in said if m.startswith("fold ")]
        fitted = {m.split(": ", 1)[1] for m in folds} - {"the outcome's baseline"}
        assert fitted == ({chosen, "t_learner"} if chosen == "x_learner" else {chosen}), folds
        # Its recalibrated effects are estimated afresh on the same campaigns: the same as a
        # plan that chose again finds for the same learner.
        every_plan = config.model_copy(update={"uplift": config.uplift.model_copy(
            update={"choose_every_days": 0})})
        again = plan_inputs(store, config=every_plan, as_of=t - dt.timedelta(days=28))
        assert evaluated(again) == [*every, "random"]
        if again.evaluation.chosen == chosen:
            pd.testing.assert_frame_equal(again.uplift, week_later.uplift)
        # 28 days after the choice, a plan chooses again.
        later = plan_inputs(store, config=config, as_of=t - dt.timedelta(days=7))
        assert evaluated(later) == [*every, "random"]
        assert later.evaluation.choice["kept_from"] is None
