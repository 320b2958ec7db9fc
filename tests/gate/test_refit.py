"""Evaluate the recipe out of time, deploy the refit: the gate judges twins trained as of the
cohort it scores them on, and deploys the promoted recipe refitted on every label available at
the decision, so the champion is not one horizon behind a model retrained every cycle."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from churnguard.champions import (
    FAULT_REFIT_REGISTERED,
    challenge,
    check_realized,
    decide,
    learned_until,
)
from churnguard.config import GateConfig
from churnguard.cutoffs import midnight, training_cutoffs
from churnguard.evaluate import roc_auc
from churnguard.ingest import FAULT_ENV, FAULT_EXIT_CODE
from churnguard.models.gbdt import GBDTChurnModel
from churnguard.registry import (
    CHALLENGER,
    CHAMPION,
    GateDecision,
    alias_history,
    alias_version,
    get_model_version,
    list_decisions,
    list_models,
    load_model,
    record_decision,
    set_alias,
)
from churnguard.snapshots import build_snapshot
from churnguard.store import Store
from churnguard.training import train_model

from .conftest import DEFINITION, GateShop, register_fitted

CONFIG = GateConfig()
DAY = dt.timedelta(days=1)
HORIZON = dt.timedelta(days=DEFINITION.horizon_days)


def _day(value: dt.datetime) -> str:
    return f"{value:%Y-%m-%d}"


def _cutoffs(version) -> list[str]:
    window = version.data_window
    return sorted([*window["train_cutoffs"], window["validation_cutoff"]])


def _auc_on(store: Store, version: str, cohort: dt.datetime) -> float:
    snapshot = build_snapshot(store, definition=DEFINITION, cutoffs=[cohort])
    return roc_auc(snapshot.y(), load_model(store, version).predict_proba(snapshot))


def _last_event(store: Store) -> dt.datetime:
    return store.con.execute("SELECT max(ts) FROM events").fetchall()[0][0]


def test_promotion_deploys_the_recipe_refitted_on_all_labels(gate_shop: GateShop) -> None:
    """A promoted challenge registers the evaluated twin (labels up to the cohort E) and the
    refit (the cutoffs `churnguard train` picks at the data end t: up to t − horizon = E),
    links them, and moves the champion alias to the refit."""
    store, v, cohort = gate_shop.store, gate_shop.versions, gate_shop.cohort
    set_alias(store, CHAMPION, v["shuffled"], reason="test")
    before = {m.version for m in list_models(store)}

    decision = challenge(store, definition=DEFINITION, config=CONFIG)

    assert decision.outcome == "promoted", decision.reason
    twin_id, refit_id = alias_version(store, CHALLENGER), decision.champion_after
    assert {m.version for m in list_models(store)} - before == {twin_id, refit_id}
    assert alias_version(store, CHAMPION) == refit_id == decision.challenger_version
    assert twin_id != refit_id
    twin, refit = get_model_version(store, twin_id), get_model_version(store, refit_id)

    # The cohort is the newest matured cutoff: E = midnight(t − horizon).
    t = _last_event(store)
    assert cohort == midnight(t - HORIZON) == decision.cohort_cutoff
    # The evaluated twin: every label window it learned from ends by E (out of time on E).
    assert learned_until(twin) == cohort
    assert max(_cutoffs(twin)) == _day(cohort - HORIZON)
    # The deployed refit: its cutoffs reach t − horizon (E itself), not E − horizon, and are
    # exactly the ones `churnguard train` picks on all the data.
    assert max(_cutoffs(refit)) == _day(cohort) > max(_cutoffs(twin))
    assert learned_until(refit) == cohort + HORIZON
    fit, validation = training_cutoffs(store, definition=DEFINITION)
    assert refit.data_window["train_cutoffs"] == [_day(c) for c in fit]
    assert refit.data_window["validation_cutoff"] == _day(validation)

    # Same recipe (kind, settings, churn definition) as the twin and the champion.
    shuffled = get_model_version(store, v["shuffled"])
    assert refit.name == twin.name == shuffled.name
    assert refit.config["model"] == twin.config["model"] == shuffled.config["model"]
    assert refit.config["definition"] == twin.config["definition"]

    # Linked both ways: the refit's registry record names its twin, the decision both.
    assert refit.config["gate"] == {"role": "refit", "evaluated_twin": twin_id,
                                    "cohort": _day(cohort)}
    assert decision.evidence["evaluated"] == {"champion": v["shuffled"], "challenger": twin_id}
    assert decision.evidence["refit"] == {"version": refit_id, "evaluated_twin": twin_id,
                                          "learned_until": _day(cohort + HORIZON)}
    assert {twin_id, refit_id} <= set(decision.evidence["windows"])
    # The evidence is the twin's, measured out of time; the reason says what is deployed.
    assert decision.challenger_auc == pytest.approx(_auc_on(store, twin_id, cohort), abs=1e-12)
    assert decision.champion_auc == pytest.approx(_auc_on(store, v["shuffled"], cohort),
                                                  abs=1e-12)
    assert f"deployed as {refit_id}" in decision.reason
    assert alias_history(store, CHAMPION)[-1]["version"] == refit_id
    assert list_decisions(store) == [decision]


def test_a_kept_challenger_deploys_nothing_and_trains_no_refit(gate_shop: GateShop) -> None:
    store, v = gate_shop.store, gate_shop.versions
    set_alias(store, CHAMPION, v["good"], reason="test")
    before = {m.version for m in list_models(store)}
    decision = decide(store, challenger=v["shuffled"], definition=DEFINITION, config=CONFIG)
    assert decision.outcome == "kept" and "refit" not in decision.evidence
    assert decision.challenger_version == v["shuffled"]
    assert {m.version for m in list_models(store)} == before
    assert alias_version(store, CHAMPION) == v["good"]


@pytest.mark.slow  # five models trained (about 30 s on a loaded 2-core machine)
def test_the_next_challenge_judges_the_champions_recorded_twin(gate_shop: GateShop) -> None:
    """Two weekly cycles: the refit promoted two weeks before the data end cannot be judged
    on the newest cohort (it learned from it), so its recorded twin stands for it there; no
    twin of the champion is trained, and both models compared are out of time."""
    store, cohort = gate_shop.store, gate_shop.cohort
    bad = register_fitted(store, GBDTChurnModel(), definition=DEFINITION,
                          as_of=cohort - 28 * DAY, shuffle_labels=True)
    set_alias(store, CHAMPION, bad, reason="test")
    as_of = midnight(_last_event(store)) - 13 * DAY
    first = challenge(store, definition=DEFINITION, as_of=as_of, config=CONFIG)
    assert first.outcome == "promoted", first.reason
    twin1, refit1 = first.evidence["evaluated"]["challenger"], first.champion_after
    assert learned_until(get_model_version(store, refit1)) == as_of > cohort
    before = {m.version for m in list_models(store)}

    second = challenge(store, definition=DEFINITION, config=CONFIG)

    assert second.cohort_cutoff == cohort > first.cohort_cutoff
    assert second.champion_version == refit1
    assert second.evidence["evaluated"]["champion"] == twin1
    twin2 = second.evidence["evaluated"]["challenger"]
    assert learned_until(get_model_version(store, twin1)) == first.cohort_cutoff <= cohort
    assert learned_until(get_model_version(store, twin2)) == cohort
    assert second.champion_auc == pytest.approx(_auc_on(store, twin1, cohort), abs=1e-12)
    added = {m.version for m in list_models(store)} - before
    assert twin2 in added and not any(
        get_model_version(store, m).config.get("gate", {}).get("twin_of") for m in added)
    expected = {twin2, second.champion_after} if second.promoted else {twin2}
    assert added == expected


def test_a_hand_trained_champion_is_judged_through_its_recipe_refitted_earlier(
        gate_shop: GateShop) -> None:
    """A champion trained by hand on labels past the cohort (before: no evidence for a
    horizon) is stood for by its recipe refitted one lag earlier: labels ending before the
    cohort, registered with a link to it."""
    store, cohort = gate_shop.store, gate_shop.cohort
    champion = train_model(store, definition=DEFINITION, as_of=cohort + 70 * DAY,
                           promote=True).version
    assert learned_until(get_model_version(store, champion)) == cohort + 70 * DAY > cohort

    decision = challenge(store, definition=DEFINITION, config=CONFIG)

    assert decision.outcome in ("promoted", "kept"), decision.reason
    assert decision.champion_version == champion
    stand_in = get_model_version(store, decision.evidence["evaluated"]["champion"])
    # As far behind the champion as the challenger's twin is behind a refit now (90 days).
    assert learned_until(stand_in) == cohort + 70 * DAY - HORIZON < cohort
    assert stand_in.config["gate"] == {"role": "twin", "twin_of": champion,
                                       "cohort": _day(cohort)}
    assert stand_in.config["model"] == get_model_version(store, champion).config["model"]
    assert decision.champion_auc == pytest.approx(_auc_on(store, stand_in.version, cohort),
                                                  abs=1e-12)
    twin = decision.evidence["evaluated"]["challenger"]
    assert learned_until(get_model_version(store, twin)) == cohort


def test_no_evidence_when_the_champions_recipe_cannot_be_refitted_earlier(
        gate_shop: GateShop) -> None:
    """Its twin would need training cutoffs before the history starts: no evidence, said
    why, nothing trained."""
    store, cohort = gate_shop.store, gate_shop.cohort
    champion = train_model(store, definition=DEFINITION, as_of=cohort + 28 * DAY,
                           promote=True).version
    before = [m.version for m in list_models(store)]
    decision = challenge(store, definition=DEFINITION, config=CONFIG)
    assert decision.outcome == "no-evidence" and alias_version(store, CHAMPION) == champion
    assert "cannot be refitted as of" in decision.reason and "not enough history" in decision.reason
    assert [m.version for m in list_models(store)] == before


def test_a_kill_after_the_refit_is_registered_leaves_no_half_promotion(
        gate_template, tmp_path: Path) -> None:
    """kill -9 (os._exit) right after the refit is registered: the champion, its history and
    the decisions are as before, the refit sits registered and unnamed; the rerun deploys it
    without training another."""
    template, cohort, v = gate_template
    path = tmp_path / "churnguard.duckdb"
    shutil.copy(template, path)
    with Store.open(path) as store:
        set_alias(store, CHAMPION, v["shuffled"], reason="test")
        before = (alias_history(store, CHAMPION), {m.version for m in list_models(store)})
    script = ("import sys; from churnguard.store import Store; "
              "from churnguard.champions import decide; from churnguard.config import "
              "ChurnDefinition, GateConfig\n"
              "with Store.open(sys.argv[1]) as s:\n"
              "    decide(s, challenger=sys.argv[2], definition=ChurnDefinition(), "
              "config=GateConfig())\n")
    proc = subprocess.run([sys.executable, "-c", script, str(path), v["good"]],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, FAULT_ENV: FAULT_REFIT_REGISTERED})
    assert proc.returncode == FAULT_EXIT_CODE, f"the fault point was not reached: {proc.stderr}"
    with Store.open(path) as store:
        assert alias_version(store, CHAMPION) == v["shuffled"]
        assert alias_history(store, CHAMPION) == before[0] and list_decisions(store) == []
        (refit,) = {m.version for m in list_models(store)} - before[1]
        assert get_model_version(store, refit).config["gate"]["evaluated_twin"] == v["good"]
        decision = decide(store, challenger=v["good"], definition=DEFINITION, config=CONFIG)
        assert decision.outcome == "promoted" and decision.champion_after == refit
        assert alias_version(store, CHAMPION) == refit
        assert {m.version for m in list_models(store)} - before[1] == {refit}
        assert list_decisions(store) == [decision]


def test_a_promoted_refit_is_judged_only_on_cohorts_it_did_not_learn_from(
        gate_shop: GateShop) -> None:
    """A refit promoted on the cohort one horizon before the newest learned from the labels up
    to the newest: the realized check waits for a cohort at or after that (here the newest),
    even though earlier cohorts come after the promotion's."""
    store, v, cohort = gate_shop.store, gate_shop.versions, gate_shop.cohort
    set_alias(store, CHAMPION, v["early"], reason="test")
    record_decision(store, GateDecision(
        decision_id="d-refit", decided_at=dt.datetime(2026, 1, 1), trigger="challenge",
        outcome="promoted", champion_version=v["early"], challenger_version=v["good"],
        champion_after=v["good"], reason="promoted (test)", cohort_cutoff=cohort - HORIZON))
    assert learned_until(get_model_version(store, v["good"])) == cohort
    for days_before in (1, 30):
        assert check_realized(store, definition=DEFINITION, config=CONFIG,
                              as_of=cohort - days_before * DAY + HORIZON) is None
    decision = check_realized(store, definition=DEFINITION, config=CONFIG)
    assert decision is not None and decision.cohort_cutoff == cohort
    assert (decision.champion_version, decision.challenger_version) == (v["good"], v["early"])
    assert np.isfinite(decision.delta_auc_lower)
