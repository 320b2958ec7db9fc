"""The public function: arguments, errors, progress and the result object."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import pytest

from churnguard.simulate import ACTIONS, SCENARIOS, SimulationResult, default_cutoffs, simulate


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_users": 0}, "n_users must be an integer >= 1, got 0"),
        ({"days": 0}, "days must be an integer >= 1, got 0"),
        ({"horizon_days": 0}, "horizon_days must be an integer >= 1, got 0"),
        ({"scenario": "nope"}, "unknown scenario 'nope'; the scenarios are: default, drift, sequence"),
        ({"cutoffs": [dt.date(2024, 12, 1)]}, "cutoff datetime.date(2024, 12, 1) must be a date"),
    ],
)
def test_bad_arguments_raise_precise_value_errors(tmp_out, kwargs, message):
    args = {"n_users": 10, "days": 10, "seed": 0, "out_dir": tmp_out} | kwargs
    with pytest.raises(ValueError) as err:
        simulate(**args)
    assert str(err.value).startswith(message)
    assert not tmp_out.exists()


def test_scenarios_are_the_documented_three():
    assert sorted(SCENARIOS) == ["default", "drift", "sequence"]


def test_progress_is_called_once_per_day(tmp_out):
    calls = []
    simulate(n_users=30, days=12, seed=0, out_dir=tmp_out,
             progress=lambda done, total: calls.append((done, total)))
    assert calls == [(d, 12) for d in range(1, 13)]


def test_default_cutoffs_every_30_days_from_day_90_through_the_end():
    start = dt.date(2025, 1, 1)
    got = default_cutoffs(start=start, days=180)
    assert got == [start + dt.timedelta(days=d) for d in (90, 120, 150, 180)]
    assert default_cutoffs(start=start, days=60) == []


def test_result_describes_what_was_written(tmp_out):
    result = simulate(n_users=300, days=120, seed=3, out_dir=tmp_out)
    assert isinstance(result, SimulationResult)
    assert dataclasses.is_dataclass(result)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.seed = 4  # type: ignore[misc]
    assert result.out_dir == tmp_out
    assert set(result.paths) == {"events", "users", "items", "campaigns", "truth_churn",
                                 "truth_campaigns", "truth_users", "truth_texts", "truth_tickets",
                                 "manifest"}
    assert all(p.exists() for p in result.paths.values())
    assert (result.scenario, result.seed, result.n_users) == ("default", 3, 300)
    assert result.cutoffs == (dt.date(2025, 4, 1), dt.date(2025, 5, 1))
    manifest = json.loads(result.paths["manifest"].read_text(encoding="utf-8"))
    assert manifest["counts"] == {"n_users": 300, "n_events": result.n_events,
                                  "n_items": result.n_items,
                                  "n_campaign_rows": result.n_campaign_rows}
    assert manifest["actions"] == list(ACTIONS)
    assert manifest["action_costs"]["recommendation"] == 0.05
    assert manifest["action_costs"]["cs_outreach"] == 4.0
    basket = manifest["expected_basket"]
    assert manifest["action_costs"]["coupon_10"] == pytest.approx(0.10 * basket, abs=1e-3)
    assert "exact" in manifest["truth_method"] and "Monte Carlo" in manifest["truth_method"]
    assert (manifest["start"], manifest["end"], manifest["horizon_days"]) == (
        "2025-01-01", "2025-05-01", 90)
    assert manifest["cutoffs"] == ["2025-04-01", "2025-05-01"]


def test_explicit_cutoffs_are_used(tmp_out):
    cut = [dt.date(2025, 2, 15), dt.date(2025, 1, 20)]
    result = simulate(n_users=200, days=60, seed=0, out_dir=tmp_out, cutoffs=cut)
    assert result.cutoffs == (dt.date(2025, 1, 20), dt.date(2025, 2, 15))
