"""The gate on a simulated shop: challengers trained with the champion's recipe, judged out of
time for both models, every decision recorded with its evidence, promotion atomic."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from churnguard import registry
from churnguard.champions import (
    GateError,
    challenge,
    check_realized,
    decide,
    learned_until,
)
from churnguard.config import GateConfig
from churnguard.evaluate import ece, roc_auc
from churnguard.models.gbdt import GBDTChurnModel
from churnguard.registry import (
    CHALLENGER,
    CHAMPION,
    DECISION_FAULT_POINTS,
    GateDecision,
    alias_history,
    alias_version,
    get_model_version,
    list_decisions,
    list_models,
    load_model,
    record_decision,
    register_model,
    set_alias,
)
from churnguard.snapshots import build_snapshot
from churnguard.training import train_model

from .conftest import DEFINITION, GateShop, Squashed, register_fitted

CONFIG = GateConfig()
DAY = dt.timedelta(days=1)


def _registry_state(store) -> tuple:
    """What a half-done promotion would show: aliases, their history, decisions, versions."""
    return (store.con.execute("SELECT * FROM model_aliases ORDER BY alias").fetchall(),
            store.con.execute("SELECT * FROM model_alias_history ORDER BY changed_at").fetchall(),
            store.con.execute("SELECT * FROM model_decisions").fetchall(),
            [v.version for v in list_models(store)])


def _on_cohort(store, version: str, cohort: dt.datetime) -> tuple[np.ndarray, np.ndarray]:
    snapshot = build_snapshot(store, definition=DEFINITION, cutoffs=[cohort])
    return snapshot.y(), load_model(store, version).predict_proba(snapshot)


def test_a_challenge_judges_out_of_time_and_records_its_evidence(gate_shop: GateShop) -> None:
    store, cohort = gate_shop.store, gate_shop.cohort
    champion = gate_shop.versions["early"]
    set_alias(store, CHAMPION, champion, reason="test")
    before = {v.version for v in list_models(store)}

    decision = challenge(store, definition=DEFINITION, config=CONFIG)

    # A challenger (its evaluated twin) was trained with the champion's recipe and registered
    # under its alias; the champion, out of time on the cohort, stands for itself. When
    # promoted, the recipe refitted on all the labels is registered too and deployed
    # (tests/gate/test_refit.py checks the refit); kept, nothing else is trained.
    challenger = alias_version(store, CHALLENGER)
    assert decision.evidence["evaluated"] == {"champion": champion, "challenger": challenger}
    promoted = decision.outcome == "promoted"
    deployed = decision.challenger_version if promoted else challenger
    assert deployed == decision.challenger_version
    added = {v.version for v in list_models(store)} - before
    assert added == ({challenger, deployed} if promoted else {challenger})
    trained, old = get_model_version(store, challenger), get_model_version(store, champion)
    assert (trained.name, trained.config) == (old.name, old.config)
    # Judged on the newest matured cohort; the challenger's labels end there, the champion's
    # earlier; the challenger's training cutoffs end one horizon before its validation cutoff.
    assert decision.cohort_cutoff == cohort
    assert learned_until(trained) == cohort and learned_until(old) <= cohort
    horizon = dt.timedelta(days=DEFINITION.horizon_days)
    assert trained.data_window["validation_cutoff"] == f"{cohort - horizon:%Y-%m-%d}"
    assert max(trained.data_window["train_cutoffs"]) <= f"{cohort - 2 * horizon:%Y-%m-%d}"

    # The evidence is what the two models score on that cohort.
    y, p_champion = _on_cohort(store, champion, cohort)
    _, p_challenger = _on_cohort(store, challenger, cohort)
    assert decision.n_customers == y.size and decision.n_churned == int(y.sum())
    assert decision.champion_auc == pytest.approx(roc_auc(y, p_champion), abs=1e-12)
    assert decision.challenger_auc == pytest.approx(roc_auc(y, p_challenger), abs=1e-12)
    assert decision.delta_auc == pytest.approx(decision.challenger_auc - decision.champion_auc)
    assert decision.delta_auc_lower < decision.delta_auc < decision.delta_auc_upper
    assert decision.challenger_ece == pytest.approx(ece(y, p_challenger), abs=1e-12)
    assert decision.champion_ece == pytest.approx(ece(y, p_champion), abs=1e-12)
    assert (decision.tolerance, decision.max_ece, decision.confidence, decision.resamples,
            decision.seed) == (0.005, 0.03, 0.95, 1000, 0)
    assert decision.outcome in ("promoted", "kept") and decision.reason

    # Recorded as returned; the champion moved only if promoted, and the move names it.
    assert list_decisions(store) == [decision]
    assert promoted == (decision.delta_auc_lower >= -0.005 and decision.challenger_ece <= 0.03)
    assert alias_version(store, CHAMPION) == (deployed if promoted else champion)
    history = alias_history(store, CHAMPION)
    assert len(history) == (2 if promoted else 1)
    if promoted:
        assert decision.decision_id in history[-1]["reason"]

    # A rerun on the same cohort returns that decision; nothing is trained or recorded again.
    again = challenge(store, definition=DEFINITION, config=CONFIG)
    assert again == decision
    assert len(list_models(store)) == len(before) + len(added) and len(list_decisions(store)) == 1


def test_the_alias_moves_only_on_promoted(gate_shop: GateShop) -> None:
    """A bad champion and a good challenger: promoted, the alias moves with the record, to
    the challenger's recipe refitted on all the labels. The other way round: kept, the alias
    stays."""
    store, v = gate_shop.store, gate_shop.versions
    set_alias(store, CHAMPION, v["shuffled"], reason="test")
    decision = decide(store, challenger=v["good"], definition=DEFINITION, config=CONFIG)
    assert decision.outcome == "promoted", decision.reason
    assert decision.delta_auc_lower > 0.2  # shuffled labels rank at chance
    refit = decision.champion_after
    assert alias_version(store, CHAMPION) == refit == decision.challenger_version
    assert get_model_version(store, refit).config["gate"]["evaluated_twin"] == v["good"]
    assert decision.evidence["evaluated"]["challenger"] == v["good"]
    assert alias_history(store, CHAMPION)[-1]["previous_version"] == v["shuffled"]

    set_alias(store, CHAMPION, v["good"], reason="test")
    kept = decide(store, challenger=v["shuffled"], definition=DEFINITION, config=CONFIG)
    assert kept.outcome == "kept"
    assert alias_version(store, CHAMPION) == v["good"] == kept.champion_after
    assert "lower bound of ΔAUC" in kept.reason


def test_a_model_trained_on_shuffled_labels_is_never_promoted(gate_shop: GateShop) -> None:
    """Against a champion it is kept out; without a champion it fails the baselines and
    there stays no champion."""
    store, v = gate_shop.store, gate_shop.versions
    alone = decide(store, challenger=v["shuffled"], definition=DEFINITION, config=CONFIG)
    assert alone.outcome == "kept" and alone.champion_after is None
    assert alias_version(store, CHAMPION) is None
    assert "does not beat recency" in alone.reason
    assert alone.evidence.get("baseline_auc") is None

    set_alias(store, CHAMPION, v["early"], reason="test")
    against = decide(store, challenger=v["shuffled"], definition=DEFINITION, config=CONFIG)
    assert against.outcome == "kept" and alias_version(store, CHAMPION) == v["early"]
    assert against.delta_auc_lower < -0.2 and "lower bound of ΔAUC" in against.reason


def test_without_a_champion_a_calibrated_challenger_that_beats_the_baselines_becomes_champion(
        gate_shop: GateShop) -> None:
    store, v = gate_shop.store, gate_shop.versions
    decision = decide(store, challenger=v["good"], definition=DEFINITION, config=CONFIG)
    assert decision.outcome == "promoted", decision.reason
    # The evaluated version passed; its recipe refitted on all the labels is deployed.
    assert decision.evidence["refit"]["evaluated_twin"] == v["good"]
    assert alias_version(store, CHAMPION) == decision.evidence["refit"]["version"]
    baselines = decision.evidence["baseline_auc"]
    assert set(baselines) == {"gbdt", "recency", "btyd"}
    assert baselines["gbdt"] >= max(baselines["recency"], baselines["btyd"]) + 0.01
    assert decision.evidence["calibration"]["ece"] <= CONFIG.max_ece


def test_a_miscalibrated_challenger_is_kept_even_when_it_ranks_as_well(gate_shop) -> None:
    """The same ranking (ΔAUC exactly 0, so the bound passes) with probabilities squared:
    its ECE breaks the gate."""
    store, v = gate_shop.store, gate_shop.versions
    good = get_model_version(store, v["good"])
    squashed = register_model(store, Squashed(inner=load_model(store, v["good"])).fit(None),
                              name="gbdt", config=good.config, data_window=good.data_window,
                              metrics={}, features=good.features)
    set_alias(store, CHAMPION, v["good"], reason="test")
    decision = decide(store, challenger=squashed, definition=DEFINITION, config=CONFIG)
    assert decision.delta_auc == 0 and decision.delta_auc_lower == 0
    assert decision.outcome == "kept" and decision.challenger_ece > CONFIG.max_ece
    assert f"its ECE is {decision.challenger_ece:.4f}, above 0.03" in decision.reason
    assert alias_version(store, CHAMPION) == v["good"]


def test_a_challenger_no_worse_calibrated_than_the_champion_is_promoted(gate_shop) -> None:
    """Under drift neither twin is calibrated on the cohort: a challenger that ranks as well
    and is no worse calibrated than the champion replaces it (keeping the champion would buy
    no calibration); one worse calibrated than both the limit and the champion is kept."""
    store, v = gate_shop.store, gate_shop.versions
    good = get_model_version(store, v["good"])

    def powered(power: float) -> str:
        model = Squashed(inner=load_model(store, v["good"]), power=power).fit(None)
        return register_model(store, model, name="gbdt", config=good.config,
                              data_window=good.data_window, metrics={}, features=good.features)

    cubed, squared = powered(3.0), powered(2.0)
    set_alias(store, CHAMPION, cubed, reason="test")
    decision = decide(store, challenger=squared, definition=DEFINITION, config=CONFIG,
                      refit=False)
    assert decision.delta_auc == 0
    assert CONFIG.max_ece < decision.challenger_ece <= decision.champion_ece
    assert decision.outcome == "promoted", decision.reason
    assert "no worse than the champion's" in decision.reason
    assert alias_version(store, CHAMPION) == squared
    # The other way round: worse than both the limit and the champion.
    fourth = powered(4.0)
    decision = decide(store, challenger=fourth, definition=DEFINITION, config=CONFIG,
                      refit=False)
    assert decision.outcome == "kept" and decision.challenger_ece > decision.champion_ece
    assert "and above the champion's" in decision.reason
    assert alias_version(store, CHAMPION) == squared


def test_no_evidence_when_the_champion_trained_on_the_newest_cohort(gate_shop) -> None:
    """The champion validated on the newest matured cohort: it learned from every label a
    model trained now would, so its recipe has nothing newer to learn; no challenger is trained
    and the decision says when there will be."""
    store, v, cohort = gate_shop.store, gate_shop.versions, gate_shop.cohort
    set_alias(store, CHAMPION, v["latest"], reason="test")
    before = _registry_state(store)
    decision = challenge(store, definition=DEFINITION, config=CONFIG)
    assert decision.outcome == "no-evidence"
    assert decision.champion_after == v["latest"] and decision.challenger_version is None
    assert decision.cohort_cutoff == cohort and decision.delta_auc is None
    until = learned_until(get_model_version(store, v["latest"]))
    assert until > cohort
    assert f"learned from labels up to {until:%Y-%m-%d}" in decision.reason
    assert [m.version for m in list_models(store)] == before[3]  # nothing trained
    assert alias_version(store, CHAMPION) == v["latest"]
    assert list_decisions(store) == [decision]


def test_a_challenger_that_learned_from_the_cohort_is_refused(gate_shop: GateShop) -> None:
    store, v = gate_shop.store, gate_shop.versions
    set_alias(store, CHAMPION, v["early"], reason="test")
    with pytest.raises(GateError, match="cannot be judged out of time"):
        decide(store, challenger=v["latest"], definition=DEFINITION, config=CONFIG)
    assert list_decisions(store) == []


@pytest.mark.parametrize("point", DECISION_FAULT_POINTS)
def test_a_crash_inside_the_promotion_leaves_no_half_promoted_model(
        gate_shop: GateShop, monkeypatch: pytest.MonkeyPatch, point: str) -> None:
    """Raising at each point inside the decision's transaction: neither the row nor the alias
    move survive (the refit, registered before the transaction, stays registered and unused);
    the rerun deploys that refit whole."""
    store, v = gate_shop.store, gate_shop.versions
    set_alias(store, CHAMPION, v["shuffled"], reason="test")
    before = _registry_state(store)
    real_fault = registry._fault

    def crash(at: str) -> None:
        if at == point:
            raise RuntimeError(f"crash at {at}")
        real_fault(at)

    monkeypatch.setattr(registry, "_fault", crash)
    with pytest.raises(RuntimeError, match=f"crash at {point}"):
        decide(store, challenger=v["good"], definition=DEFINITION, config=CONFIG)
    after = _registry_state(store)
    assert after[:3] == before[:3]
    (refit,) = set(after[3]) - set(before[3])
    monkeypatch.setattr(registry, "_fault", real_fault)
    decision = decide(store, challenger=v["good"], definition=DEFINITION, config=CONFIG)
    assert decision.outcome == "promoted" and alias_version(store, CHAMPION) == refit
    assert list_decisions(store) == [decision] and _registry_state(store)[3] == after[3]


def test_a_challenge_that_crashed_before_deciding_judges_its_challenger_on_rerun(
        gate_shop: GateShop, monkeypatch: pytest.MonkeyPatch) -> None:
    """The challenger is registered before the decision: a crash in the decision (the first
    fault point: the promoted recipe's refit just registered) leaves both registered (the
    challenger's twin under the alias ``challenger``) and the champion untouched; the rerun
    judges that challenger and deploys that refit instead of training others."""
    store, v = gate_shop.store, gate_shop.versions
    set_alias(store, CHAMPION, v["shuffled"], reason="test")

    def crash(at: str) -> None:
        raise RuntimeError(f"crash at {at}")

    monkeypatch.setattr(registry, "_fault", crash)
    with pytest.raises(RuntimeError):
        challenge(store, definition=DEFINITION, config=CONFIG)
    waiting = alias_version(store, CHALLENGER)
    assert waiting not in v.values() and alias_version(store, CHAMPION) == v["shuffled"]
    assert list_decisions(store) == []
    models = len(list_models(store))
    monkeypatch.undo()
    decision = challenge(store, definition=DEFINITION, config=CONFIG)
    assert decision.evidence["evaluated"]["challenger"] == waiting
    assert len(list_models(store)) == models
    refit = decision.challenger_version
    assert get_model_version(store, refit).config["gate"]["evaluated_twin"] == waiting
    assert decision.outcome == "promoted" and alias_version(store, CHAMPION) == refit

    # Rolled back by hand: the same cohort is not judged again, so it is not re-promoted.
    registry.rollback(store, reason="the call centre reports odd scores")
    assert challenge(store, definition=DEFINITION, config=CONFIG) == decision
    assert alias_version(store, CHAMPION) == v["shuffled"] and len(list_models(store)) == models


def test_a_decision_is_refused_when_the_champion_moved_meanwhile(gate_shop: GateShop) -> None:
    store, v = gate_shop.store, gate_shop.versions
    set_alias(store, CHAMPION, v["early"], reason="test")
    stale = GateDecision(decision_id="d-stale", decided_at=dt.datetime(2026, 1, 1),
                         trigger="challenge", outcome="promoted", champion_version=v["shuffled"],
                         challenger_version=v["good"], champion_after=v["good"], reason="x")
    with pytest.raises(registry.RegistryError, match="changed while the decision was taken"):
        record_decision(store, stale)
    assert alias_version(store, CHAMPION) == v["early"] and list_decisions(store) == []


def _promote_by_hand(store, *, previous: str, promoted: str, cohort: dt.datetime) -> None:
    """A promotion the gate recorded on ``cohort`` (as if the bootstrap had been unlucky)."""
    set_alias(store, CHAMPION, previous, reason="test")
    record_decision(store, GateDecision(
        decision_id=f"d-{promoted}", decided_at=dt.datetime(2026, 1, 1), trigger="challenge",
        outcome="promoted", champion_version=previous, challenger_version=promoted,
        champion_after=promoted, reason="promoted (test)", cohort_cutoff=cohort))


def test_a_promoted_champion_that_proves_worse_on_a_later_cohort_is_rolled_back(
        gate_shop: GateShop) -> None:
    """Promoted on the cohort two weeks before the newest (a model trained on shuffled labels
    that slipped through); on the newest cohort, out of time for both, the previous champion
    beats it beyond the tolerance: rolled back, recorded; checked once per cohort."""
    store, v, cohort = gate_shop.store, gate_shop.versions, gate_shop.cohort
    earlier = cohort - 14 * DAY
    bad = register_fitted(store, GBDTChurnModel(), definition=DEFINITION, as_of=earlier,
                          shuffle_labels=True)
    _promote_by_hand(store, previous=v["early"], promoted=bad, cohort=earlier)
    decision = check_realized(store, definition=DEFINITION, config=CONFIG)
    assert decision is not None and decision.outcome == "rolled-back", decision
    assert (decision.trigger, decision.champion_version, decision.challenger_version,
            decision.champion_after) == ("realized", bad, v["early"], v["early"])
    assert decision.cohort_cutoff == cohort and decision.delta_auc_lower > CONFIG.tolerance
    assert alias_version(store, CHAMPION) == v["early"]
    assert list_decisions(store)[-1] == decision
    assert check_realized(store, definition=DEFINITION, config=CONFIG) is None


def test_a_promoted_champion_that_holds_up_is_kept(gate_shop: GateShop) -> None:
    store, v, cohort = gate_shop.store, gate_shop.versions, gate_shop.cohort
    earlier = cohort - 14 * DAY
    fine = train_model(store, definition=DEFINITION, as_of=earlier, promote=False).version
    _promote_by_hand(store, previous=v["early"], promoted=fine, cohort=earlier)
    decision = check_realized(store, definition=DEFINITION, config=CONFIG)
    assert decision is not None and decision.outcome == "kept", decision
    assert decision.delta_auc_lower <= CONFIG.tolerance
    assert alias_version(store, CHAMPION) == fine
    # Judged once per cohort; nothing to judge before a later cohort matures.
    assert check_realized(store, definition=DEFINITION, config=CONFIG) is None
    assert check_realized(store, definition=DEFINITION, config=CONFIG,
                          as_of=earlier + 90 * DAY) is None


def test_nothing_to_check_for_a_champion_the_gate_did_not_promote(gate_shop) -> None:
    store, v = gate_shop.store, gate_shop.versions
    assert check_realized(store, definition=DEFINITION, config=CONFIG) is None
    set_alias(store, CHAMPION, v["early"], reason="by hand")
    assert check_realized(store, definition=DEFINITION, config=CONFIG) is None
    assert list_decisions(store) == []
