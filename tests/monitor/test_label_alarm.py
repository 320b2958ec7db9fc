"""The label alarm: it fires when a shop's outcomes changed, stays quiet on a stable one at its
stated rate, never reads outcomes after ``now``, and makes the cycle's challenger due."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from churnguard.config import MonitorConfig
from churnguard.monitor import label_check, label_test, run_monitor
from churnguard.operate import OneStore, run_cycle
from churnguard.project import Project
from churnguard.registry import CHAMPION, alias_version

from monitor.conftest import SCORED_AT

HORIZON = 90
MATURED = SCORED_AT + dt.timedelta(days=HORIZON)  # the run's label window ends here
#: The fixture's cohort holds ~150 evaluable customers: below the default minimum of 200.
SMALL = MonitorConfig(label_min_customers=50, bootstrap=100)


def _shop(n: int, rng: np.random.Generator) -> np.ndarray:
    """Calibrated-looking probabilities of a shop of ``n`` customers (a logistic score)."""
    return 1 / (1 + np.exp(-(rng.normal(0.0, 1.6, n) - 0.1)))


# -- the statistics ----------------------------------------------------------------------------
def test_a_stable_shop_alarms_at_most_at_the_stated_rate_even_at_the_tolerance() -> None:
    """400 cohorts of 1,000 customers whose true churn rate sits exactly at the tolerance (every
    probability 0.03 higher than the model says): the calibration test rejects about alpha / 2 of
    them (expected 2 of 400 at alpha = 0.01); a calibrated shop, none. 8 or more would happen by
    chance with probability about 0.001 at the stated rate."""
    rng = np.random.default_rng(7)
    at_tolerance = quiet = 0
    for k in range(400):
        p = np.clip(_shop(1000, rng), 0.05, 0.9)
        at_tolerance += label_test(rng.random(1000) < p + 0.03, p, seed=k, draws=200).alarm
        quiet += label_test(rng.random(1000) < p, p, seed=k, draws=200).alarm
    assert at_tolerance <= 7
    assert quiet <= 7


def test_it_fires_when_churn_rises_or_the_ranking_breaks() -> None:
    rng = np.random.default_rng(3)
    p = _shop(2000, rng)
    risen = label_test(rng.random(2000) < np.clip(p + 0.12, 0, 1), p)
    assert risen.alarm and risen.calibration_alarm and risen.calibration_gap > 0.09
    # Same churn rate, but half the customers now churn regardless of their score: the ranking
    # the model promised (its expected AUC) is not what happens.
    q = p.copy()
    shuffled = rng.random(2000) < 0.5
    q[shuffled] = rng.permutation(q[shuffled])
    broken = label_test(rng.random(2000) < q, p)
    assert broken.auc_alarm and broken.alarm
    assert broken.auc_gap < -0.05 and not broken.calibration_alarm


def test_a_small_gap_within_tolerance_is_not_an_alarm_even_when_certain() -> None:
    """100,000 customers: a 0.02 rise in churn is certain, but within the 0.03 tolerance."""
    rng = np.random.default_rng(5)
    p = np.clip(_shop(100_000, rng), 0.05, 0.9)
    found = label_test(rng.random(p.size) < p + 0.02, p, draws=50)
    assert found.calibration_gap == pytest.approx(0.02, abs=0.005)
    assert not found.alarm


# -- over a store --------------------------------------------------------------------------------
def _half_the_stayers_churn(store) -> None:  # noqa: ANN001
    """Every other customer who ordered inside the run's label window loses those orders: they
    churned now."""
    stayed = store.con.execute(
        "SELECT DISTINCT user_id FROM events WHERE type = 'order' AND ts >= ? "
        "AND ts < ? ORDER BY 1", [SCORED_AT, MATURED]).fetchall()
    store.con.execute(
        "DELETE FROM events WHERE type = 'order' AND ts >= ? AND ts < ? "
        "AND user_id IN (SELECT unnest(?::VARCHAR[]))",
        [SCORED_AT, MATURED, [u for (u,) in stayed][::2]])


def test_it_fires_on_a_shop_whose_outcomes_changed(project_copy: Project) -> None:
    with project_copy.open_store() as store:
        before = run_monitor(store, as_of=MATURED, config=SMALL)
        assert before.label is not None and before.label.cohort == SCORED_AT
        assert before.label.applies  # the run's model is the champion
        _half_the_stayers_churn(store)
        after = run_monitor(store, as_of=MATURED, config=SMALL)
    assert after.label.churn_rate > before.label.churn_rate + 0.15
    assert after.label.alarm and after.alarm
    document = json.loads(json.dumps(after.to_dict(), allow_nan=False))
    assert document["label_alarm"] is True and document["alarm"] is True
    assert document["label"]["cohort"].startswith(f"{SCORED_AT:%Y-%m-%d}")
    assert "label alarm" in document["label"]["reason"]


def test_it_alarms_for_a_champion_that_learned_none_of_these_outcomes_only(
        project_copy: Project) -> None:
    """A successor trained before the cohort matured learned the same stale mapping: the alarm
    applies to it. One trained after learned from these very outcomes: reported, no alarm."""
    from churnguard.models.gbdt import GBDTChurnModel
    from churnguard.training import train_model

    definition = project_copy.config.churn
    with project_copy.open_store() as store:
        _half_the_stayers_churn(store)
        trained = {}
        for name, as_of in (("before", SCORED_AT + dt.timedelta(days=30)),
                            ("after", MATURED + dt.timedelta(days=30))):
            trained[name] = train_model(
                store, definition=definition, as_of=as_of, promote=False,
                model=GBDTChurnModel(n_estimators=30, early_stopping_rounds=10,
                                     n_jobs=1)).version
        found = {name: label_check(store, now=MATURED + dt.timedelta(days=31),
                                   definition=definition, config=SMALL, champion=version)
                 for name, version in trained.items()}
        unknown = label_check(store, now=MATURED, definition=definition, config=SMALL,
                              champion="no-such-model")
    assert all(f.cohort == SCORED_AT and f.calibration_alarm for f in found.values())
    assert found["before"].applies and found["before"].alarm
    assert not found["after"].applies and not found["after"].alarm
    assert "has since learned from these outcomes" in found["after"].reason
    assert not unknown.applies and not unknown.alarm


def test_it_never_reads_outcomes_after_now(project_copy: Project) -> None:
    """A day before the run matures there is no label check, though the store holds every
    outcome; at maturity the check is the same whether or not the store holds later events."""
    with project_copy.open_store() as store:
        early = run_monitor(store, as_of=MATURED - dt.timedelta(days=1), config=SMALL)
        assert early.label is None
        assert all(c.as_of != SCORED_AT for c in early.realized)
        at = run_monitor(store, as_of=MATURED, config=SMALL)
        # Later events (and orders of churners, had they come late) must change nothing. The
        # day after now stays, so that the data (whose end is its newest event) reaches now.
        store.con.execute("DELETE FROM events WHERE ts >= ?",
                          [MATURED + dt.timedelta(days=1)])
        assert store.con.execute("SELECT count(*) FROM events WHERE ts >= ?",
                                 [MATURED]).fetchone()[0] > 0
        later_gone = run_monitor(store, as_of=MATURED, config=SMALL)
    assert at.label is not None
    assert at.label.to_dict() == later_gone.label.to_dict()


def test_a_label_alarm_makes_the_challenger_due_in_the_cycle(project_copy: Project) -> None:
    config = project_copy.root / "churnguard.toml"
    text = config.read_text()
    # The defaults, less the minimum cohort for this small shop; no challenger due by age.
    for old, new in (("label_min_customers = 200", "label_min_customers = 50"),
                     ("bootstrap = 500", "bootstrap = 100"),
                     ("retrain_every_days = 28", "retrain_every_days = 100000")):
        assert old in text
        text = text.replace(old, new)
    config.write_text(text)
    project = Project.load(project_copy.root)
    with project.open_store() as store:
        _half_the_stayers_churn(store)
        champion = alias_version(store, CHAMPION)
        record = run_cycle(OneStore(store), project=project, now=MATURED,
                           steps=["monitor", "challenge"])
    steps = {r.step: r for r in record.records}
    assert record.status == "done", record.error
    monitor = steps["monitor"]
    assert monitor.figures["label_alarm"] and monitor.figures["alarm"]
    assert "label alarm" in monitor.decision
    challenge = steps["challenge"]
    assert challenge.figures["champion"] == champion
    assert challenge.figures["label_alarm"] and challenge.figures["due"]
    assert "label alarm" in challenge.evidence


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_label_alarm_shows_on_the_dashboard_and_in_the_command(
        project_copy: Project, lang: str, capsys: pytest.CaptureFixture[str]) -> None:
    from fastapi.testclient import TestClient

    from churnguard.cli import main
    from churnguard.service import create_app

    from service.helpers import READ, headers, settings

    config = project_copy.root / "churnguard.toml"
    config.write_text(config.read_text().replace("label_min_customers = 200",
                                                  "label_min_customers = 50"))
    project = Project.load(project_copy.root)
    with project.open_store() as store:
        _half_the_stayers_churn(store)
    with TestClient(create_app(project, settings(warm_on_start=False)),
                    raise_server_exceptions=False) as client:
        assert client.post("/dashboard/session", headers=headers(READ)).status_code == 200
        answer = client.get("/v1/monitor", params={"as_of": f"{MATURED:%Y-%m-%d}"},
                            headers=headers(READ)).json()
        assert answer["label_alarm"] is True and answer["label"]["n"] >= 50
        # The page monitors the data's now: the run at SCORED_AT is still the newest matured.
        html = client.get("/monitor", params={"lang": lang} if lang == "zh" else None).text
    assert 'id="label-alarm"' in html and "state-major" in html.split('id="label-alarm"')[1][:80]
    assert f"{SCORED_AT:%Y-%m-%d}" in html
    assert main(["monitor", "--project", str(project.root), "--as-of",
                 f"{MATURED:%Y-%m-%d}"]) == 0
    out = capsys.readouterr().out
    assert "; a label alarm" in out
