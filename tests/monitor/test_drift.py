"""Calibrated drift alarms: quiet on unchanged batches of any size, loud on a small real shift.

Synthetic, seeded data (no store): a reference window of 20,000 rows and batches drawn from the
same distributions (the null), or with one feature's mean moved by 0.1 standard deviation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnguard.monitor.drift import Season, drift_test, prepare_reference
from churnguard.monitor.psi import psi

N_FEATURES = 10
REFERENCE_ROWS = 20_000


def shop_like(rng: np.random.Generator, n: int, *, shift: float = 0.0) -> pd.DataFrame:
    """Ten features of the kinds a shop has: normal, counts, skewed amounts, a category, a flag
    with missing values, and a constant. ``shift`` moves the mean of ``normal_0`` by that many
    standard deviations."""
    return pd.DataFrame({
        "normal_0": rng.normal(shift, 1.0, n),
        "normal_1": rng.normal(5.0, 2.0, n),
        "count_0": rng.poisson(2.0, n).astype(float),
        "count_1": rng.poisson(12.0, n).astype(float),
        "amount_0": rng.lognormal(3.0, 1.0, n),
        "amount_1": rng.gamma(2.0, 10.0, n),
        "segment": pd.Series(rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1]),
                             dtype="category"),
        "flag": np.where(rng.random(n) < 0.1, np.nan, (rng.random(n) < 0.3).astype(float)),
        "gap_days": np.where(rng.random(n) < 0.2, np.nan, rng.exponential(30.0, n)),
        "constant": np.ones(n),
    })


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return shop_like(np.random.default_rng(2024), REFERENCE_ROWS)


@pytest.fixture(scope="module")
def prepared(reference: pd.DataFrame):
    """The reference binned once for the many batches below (the same as passing the frame)."""
    return prepare_reference(reference)


@pytest.mark.parametrize("batch_size", [100, 5_000])
def test_unchanged_batches_rarely_alarm_where_a_fixed_psi_rule_fires_often(
        reference: pd.DataFrame, prepared, batch_size: int) -> None:
    """The null test: 60 unchanged batches of each size, 600 feature checks. Measured: 1 alarm
    in 600 checks at 100 rows, 0 at 5,000 (BH at FDR 0.01 bounds the chance of any alarm in a
    batch by 1%); raw p < 0.05 on 4.5% and 3.7% of the checks (the p-values are calibrated, not
    merely conservative); "PSI > 0.1" fires on 29.6% of the numeric checks at 100 rows (the
    issue measured 41% on its features) and on none at 5,000."""
    alarms = checks = below_5pct = fixed_rule = 0
    for draw in range(60):
        batch = shop_like(np.random.default_rng(10_000 + draw), batch_size)
        result = drift_test(prepared, batch, bootstrap=300, seed=draw)
        alarms += sum(r.alarm for r in result)
        below_5pct += sum(r.p_value < 0.05 for r in result)
        checks += len(result)
        fixed_rule += sum((psi(reference[c].to_numpy(float), batch[c].to_numpy(float)) or 0) > 0.1
                          for c in reference.columns if c != "segment")
    assert checks == 60 * N_FEATURES
    assert alarms / checks <= 0.01
    assert 0.02 <= below_5pct / checks <= 0.09  # calibrated, not merely conservative
    if batch_size == 100:
        assert fixed_rule / (60 * (N_FEATURES - 1)) >= 0.15


def test_a_tenth_of_a_standard_deviation_is_found_at_5000_rows(reference: pd.DataFrame,
                                                               prepared) -> None:
    """Power: 50 seeds, normal_0's mean moved by 0.1 SD. Measured: detected in 43 of 50 (86%),
    with 2 alarms among the other 450 checks; the fixed rule "PSI > 0.1" finds none."""
    found = others = fixed_rule = 0
    for seed in range(50):
        batch = shop_like(np.random.default_rng(20_000 + seed), 5_000, shift=0.1)
        result = {r.name: r for r in drift_test(prepared, batch, bootstrap=300, seed=seed)}
        found += result["normal_0"].alarm
        others += sum(r.alarm for name, r in result.items() if name != "normal_0")
        fixed_rule += psi(reference["normal_0"].to_numpy(), batch["normal_0"].to_numpy()) > 0.1
    assert found >= 40  # >= 80% of the draws
    assert others <= 5  # the other features stay quiet (~1%)
    assert fixed_rule == 0


def test_missing_values_new_categories_and_constants_are_drift(reference: pd.DataFrame) -> None:
    """A column that starts arriving empty, a category the reference never had, and a constant
    that stops being constant each alarm; the untouched columns do not."""
    batch = shop_like(np.random.default_rng(7), 2_000)
    batch.loc[: 399, "amount_1"] = np.nan
    batch["segment"] = batch["segment"].cat.add_categories("new")
    batch.loc[: 299, "segment"] = "new"
    batch.loc[: 199, "constant"] = 2.0
    result = {r.name: r for r in drift_test(reference, batch, bootstrap=300, seed=1)}
    assert {n for n, r in result.items() if r.alarm} == {"amount_1", "segment", "constant"}
    assert result["amount_1"].batch_missing == pytest.approx(0.2)
    assert result["constant"].kind == "levels"


def test_jensen_shannon_is_calibrated_too(prepared) -> None:
    """Measured: 0 alarms in 200 unchanged checks at 100 rows; the shift found in 19 of 20."""
    alarms = found = 0
    for draw in range(20):
        same = shop_like(np.random.default_rng(30_000 + draw), 100)
        alarms += sum(r.alarm for r in drift_test(prepared, same, statistic="js",
                                                  bootstrap=300, seed=draw))
        moved = shop_like(np.random.default_rng(40_000 + draw), 5_000, shift=0.1)
        found += {r.name: r for r in drift_test(prepared, moved, statistic="js",
                                                bootstrap=300, seed=draw)}["normal_0"].alarm
    assert alarms <= 2
    assert found >= 14


def test_the_same_seed_gives_the_same_answer(reference: pd.DataFrame) -> None:
    batch = shop_like(np.random.default_rng(3), 500)
    first = drift_test(reference, batch, bootstrap=200, seed=5)
    assert first == drift_test(reference, batch, bootstrap=200, seed=5)
    assert first == drift_test(prepare_reference(reference), batch, bootstrap=200, seed=5)


def test_a_reference_holding_customers_several_times_is_redrawn_at_its_distinct_customers(
        ) -> None:
    """A training window holds the same customers at several cutoffs. Here the extreme: 5,000
    customers four times over (20,000 rows), against 40 unchanged batches of 5,000. Redrawn at
    20,000 rows the null ignores most of the reference's own noise (measured: raw p < 0.05 on
    29% of 400 checks, 29 alarms); at its 5,000 distinct customers it is calibrated (7%, 1)."""
    base = shop_like(np.random.default_rng(99), 5_000)
    window = prepare_reference(pd.concat([base] * 4, ignore_index=True))
    below = {None: 0, 5_000: 0}
    alarms = {None: 0, 5_000: 0}
    for draw in range(40):
        batch = shop_like(np.random.default_rng(50_000 + draw), 5_000)
        for size in below:
            result = drift_test(window, batch, bootstrap=300, seed=draw, reference_size=size)
            below[size] += sum(r.p_value < 0.05 for r in result)
            alarms[size] += sum(r.alarm for r in result)
    assert below[5_000] / 400 <= 0.1 and alarms[5_000] <= 4
    assert below[None] / 400 >= 0.15 and alarms[None] >= 10


def festive(rng: np.random.Generator, n: int, *, season: float,
            extra: float = 0.0) -> pd.DataFrame:
    """``shop_like`` in a season of strength ``season`` (0: none, 1: the festival): normal_0
    moves by 0.3 SD, count_0's mean from 2 to 3, gap_days shrinks by half; ``extra`` moves
    normal_0 by that many SD more (news beyond the season)."""
    frame = shop_like(rng, n, shift=0.3 * season + extra)
    frame["count_0"] = rng.poisson(2.0 + season, n).astype(float)
    frame["gap_days"] = np.where(rng.random(n) < 0.2, np.nan,
                                 rng.exponential(30.0 / (1.0 + season), n))
    return frame


@pytest.mark.parametrize("rows", [100, 5_000])
def test_a_season_that_moved_the_same_way_last_year_is_no_news(rows: int) -> None:
    """Each year the festival moves three inputs between the two weekly moments; 40 draws, 400
    checks per size. Measured: the plain check alarms on 43 (100 rows) and 120 (5,000 rows), the
    seasonal one on 0 and 1, with raw p < 0.05 on 2% and 3% of its checks (calibrated, a little
    conservative)."""
    plain = seasonal = below = checks = 0
    for draw in range(40):
        rng = np.random.default_rng(60_000 + draw)
        last_year = Season(reference=festive(rng, rows, season=0), batch=festive(rng, rows, season=1))
        reference, batch = festive(rng, rows, season=0), festive(rng, rows, season=1)
        result = drift_test(reference, batch, bootstrap=300, seed=draw, season=last_year)
        seasonal += sum(r.alarm for r in result)
        below += sum(r.p_value < 0.05 for r in result)
        checks += len(result)
        plain += sum(r.alarm for r in drift_test(reference, batch, bootstrap=300, seed=draw))
    assert checks == 40 * N_FEATURES
    assert seasonal / checks <= 0.01
    assert below / checks <= 0.08
    assert plain / checks >= 0.08


def test_a_change_beyond_last_years_season_still_alarms() -> None:
    """normal_0 moves 0.25 SD more than the season moved it last year, at 5,000 rows in each of
    the four samples; 30 draws. Measured: found in 30 (the plain check finds a 0.1 SD shift in
    86% of draws at this size: comparing with last year costs power, since its two samples add
    their noise); the other inputs alarm once in 270 checks."""
    found = others = 0
    for draw in range(30):
        rng = np.random.default_rng(70_000 + draw)
        last_year = Season(reference=festive(rng, 5_000, season=0),
                           batch=festive(rng, 5_000, season=1))
        reference = festive(rng, 5_000, season=0)
        batch = festive(rng, 5_000, season=1, extra=0.25)
        result = {r.name: r for r in drift_test(reference, batch, bootstrap=300, seed=draw,
                                                season=last_year)}
        found += result["normal_0"].alarm
        others += sum(r.alarm for name, r in result.items() if name != "normal_0")
    assert found >= 24
    assert others <= 3


def test_a_season_without_a_checked_feature_is_refused() -> None:
    rng = np.random.default_rng(4)
    frame = shop_like(rng, 200)
    last_year = Season(reference=frame.drop(columns=["count_0"]), batch=frame)
    with pytest.raises(ValueError, match="season's reference lacks the checked features"):
        drift_test(frame, frame, bootstrap=50, season=last_year)
