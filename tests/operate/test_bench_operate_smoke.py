"""The verdicts of benchmarks/bench_operate.py, on hand-made cycles: the gate checked against
the truth, the detection delay and the recovery rule of issue 18's Done-when lines."""

from __future__ import annotations

import doctest
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import bench_operate  # noqa: E402

CHANGE = {"change_date": "2026-02-25", "first_changed_labels_matured": "2026-02-26",
          "first_wholly_changed_labels_matured": "2026-05-26"}


def _row(date: str, outcome: str | None = None, *, drifted: bool = False) -> dict:
    return {"date": date, "drifted": drifted,
            "decision": None if outcome is None else {"outcome": outcome, "delta_auc": 0.0,
                                                      "delta_auc_lower": -0.004}}


def _truth(date: str, champion: float, every: float, never: float,
           before: float | None = None) -> dict:
    return {"date": date, "champion": champion, "every_cycle": every, "never": never,
            "champion_before": before}


def test_doctests() -> None:
    assert doctest.testmod(bench_operate).failed == 0


def test_the_calendar_refuses_a_shop_too_short_for_the_last_cohort() -> None:
    assert bench_operate.calendar(start_day=392, weeks=34)["days"] == 392 + 7 * 34 + 91
    with pytest.raises(ValueError, match="needs 721 days"):
        bench_operate.calendar(start_day=392, weeks=34, days=720)


def test_a_promotion_is_wrong_when_the_deployed_model_is_truly_worse_by_more_than_001() -> None:
    rows = [_row("2026-03-04", "promoted"), _row("2026-03-11", "promoted"),
            _row("2026-03-18", "kept"), _row("2026-03-25", "kept"), _row("2026-04-01"),
            _row("2026-04-08", "no-evidence")]
    truth = [_truth("2026-03-04", 0.780, 0.78, 0.70, before=0.795),  # 0.015 worse: wrong
             _truth("2026-03-11", 0.790, 0.79, 0.70, before=0.799),  # 0.009 worse: fine
             _truth("2026-03-18", 0.760, 0.775, 0.70),  # the refit was 0.015 better: missed
             _truth("2026-03-25", 0.760, 0.765, 0.70),
             _truth("2026-04-01", 0.7, 0.7, 0.7), _truth("2026-04-08", 0.7, 0.7, 0.7)]
    checks = bench_operate.gate_checks(rows, truth)
    assert [(c["date"], c["wrong"], c["missed"]) for c in checks] == [
        ("2026-03-04", True, False), ("2026-03-11", False, False),
        ("2026-03-18", False, True), ("2026-03-25", False, False)]
    assert checks[0]["true_delta"] == pytest.approx(-0.015)


def test_detection_counts_weeks_from_when_the_change_is_measurable() -> None:
    rows = [_row("2026-02-18", drifted=True),  # before the change: not a detection
            _row("2026-02-25"), _row("2026-03-04"), _row("2026-03-11", drifted=True),
            _row("2026-03-18", "promoted")]
    found = bench_operate.detection(rows, CHANGE)
    assert found["first_alarm"] == "2026-03-11"
    assert found["alarm_weeks"] == pytest.approx(13 / 7)
    assert found["first_promotion"] == "2026-03-18"
    assert bench_operate.detection(rows[:2], CHANGE)["first_alarm"] is None


def test_recovery_judges_the_champion_from_four_weeks_after_the_every_cycle_model_recovers(
        ) -> None:
    dates = [f"2026-03-{d:02d}" for d in (4, 11, 18, 25)] + [
        f"2026-04-{d:02d}" for d in (1, 8, 15, 22, 29)]
    every = [0.70, 0.73, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75]  # recovered from 03-11
    champion = [0.70, 0.70, 0.70, 0.70, 0.71, 0.745, 0.745, 0.73, 0.745]
    truth = [_truth(d, c, e, 0.70) for d, c, e in zip(dates, champion, every, strict=True)]
    found = bench_operate.recovery(truth, change_date="2026-02-25")
    assert found["recovered"] == "2026-03-11"
    # Judged from 2026-04-08 on: within 0.01 on three of four; the gap at 04-22 is 0.02.
    assert (found["judged"], found["within"], found["above_never"]) == (4, 3, 4)
    assert found["worst_gap"] == pytest.approx(0.02)
    never_recovers = [_truth(d, 0.7, 0.71, 0.70) for d in dates]
    assert bench_operate.recovery(never_recovers, change_date="2026-02-25") == {
        "recovered": None}


def _checked(date: str, *, rejects: bool = False, detectable: bool = False,
             null_false: bool = False, applies: bool = True) -> tuple[dict, dict]:
    label = {"cohort": date, "model_version": "m", "calibration_alarm": rejects,
             "auc_alarm": False, "alarm": rejects and applies}
    return ({"date": date, "label": label},
            {"detectable": detectable, "null_false": null_false, "applies": applies})


def test_the_label_alarm_is_judged_from_when_the_truth_makes_the_change_detectable() -> None:
    pairs = [_checked("2026-02-18", rejects=True),  # before the change, truth inside: false
             _checked("2026-02-25"), _checked("2026-03-04", detectable=True, null_false=True),
             _checked("2026-03-11", rejects=True, detectable=True, null_false=True,
                      applies=False),  # the champion had learned these outcomes
             _checked("2026-03-18", rejects=True, detectable=True, null_false=True)]
    rows, truth = [p[0] for p in pairs], [p[1] for p in pairs]
    found = bench_operate.label_detection(rows, truth, change_date="2026-02-25")
    assert (found["checks_before"], found["rejected_before"], found["false_before"]) == (1, 1, 1)
    assert found["measurable"] == "2026-03-04"
    assert found["first_reject"] == "2026-03-11" and found["reject_weeks"] == 1
    assert found["first_alarm"] == "2026-03-18" and found["alarm_weeks"] == 2
    assert found["false_after"] == 0


def test_the_staleness_ceiling_counts_cohorts_where_an_older_retrain_is_within_001() -> None:
    truth = [{"date": "2026-05-06", "every_cycle": 0.80, "every_cycle_stale": [0.795, 0.78]},
             {"date": "2026-05-13", "every_cycle": 0.80, "every_cycle_stale": [0.805, 0.80,
                                                                               0.70, 0.70]},
             {"date": "2026-04-29", "every_cycle": 0.80, "every_cycle_stale": [0.5]}]
    found = bench_operate.staleness_ceiling(truth, since="2026-05-06")
    assert found[1] == {"judged": 2, "within": 2}
    assert found[2] == {"judged": 2, "within": 1}
    assert found[4] == {"judged": 1, "within": 0}
    assert bench_operate.staleness_ceiling(truth, since=None)[1] == {"judged": 0, "within": 0}


def test_a_finished_run_committed_in_benchmarks_runs_is_read_not_replayed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse
    import json

    monkeypatch.setattr(bench_operate, "FINISHED", tmp_path / "runs")
    monkeypatch.setattr(bench_operate, "DATA", tmp_path / "data")
    args = argparse.Namespace(users=20000, start_day=757, weeks=104, change_day=785, days=None,
                              retrain_every_days=28, fresh=False)
    cal = bench_operate.calendar(start_day=757, weeks=104)
    name = f"operate_drift_20000_{cal['days']}_785_757_28_0.json"
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / name).write_text(json.dumps({"scenario": "drift", "seed": 0,
                                                      "rows": [{"day": 757}]}))
    run = bench_operate.run_one(scenario="drift", seed=0, args=args)
    # The section names the runs it read rather than replayed.
    assert run == {"scenario": "drift", "seed": 0, "rows": [{"day": 757}], "read_from": name}
    assert not (tmp_path / "data").exists()  # nothing simulated, nothing replayed
