"""The truth agrees with the generated events, within exact sampling error, and has the
heterogeneity the design specifies.

Sampling error: given the states, outcomes are independent Bernoulli(p_i), so the observed rate
has standard error sqrt(sum_i p_i (1 - p_i)) / n with the TRUE p_i (no estimate needed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churnguard.simulate import ACTIONS

from shop_helpers import (
    HORIZON,
    churn_check_rows,
    cutoffs_with_labels,
    ordered_within,
    population_at,
)


def test_mean_true_churn_matches_observed_churn_at_every_cutoff(default_shop):
    cutoffs = cutoffs_with_labels(default_shop)
    assert len(cutoffs) >= 5
    for cutoff in cutoffs:
        rows = churn_check_rows(shop_events=default_shop.events, churn=default_shop.churn,
                                cutoff=cutoff)
        p = rows["p_churn"].to_numpy()
        se = np.sqrt(np.sum(p * (1 - p))) / p.size
        # 4 SE below 0.03: a truth off by three points would fail.
        assert se < 0.0075, (cutoff, se)
        gap = rows["churned"].mean() - p.mean()
        assert abs(gap) < 4 * se, (cutoff, rows["churned"].mean(), p.mean(), se)


def test_pooled_over_non_overlapping_horizons(default_shop):
    # Cutoffs 90 days apart have disjoint horizons; each p is the conditional expectation given
    # the state at its cutoff, which includes the earlier horizon, so the residuals y - p are
    # martingale differences (uncorrelated) and their variances add up.
    cutoffs = cutoffs_with_labels(default_shop)[::3]
    assert len(cutoffs) >= 3
    rows = pd.concat([churn_check_rows(shop_events=default_shop.events,
                                       churn=default_shop.churn, cutoff=c) for c in cutoffs])
    p, y = rows["p_churn"].to_numpy(), rows["churned"].to_numpy()
    z = np.sum(y - p) / np.sqrt(np.sum(p * (1 - p)))
    assert abs(z) < 4, z


def test_truth_is_calibrated_within_deciles(default_shop):
    # sum over deciles of (observed - expected)^2 / variance is chi-square with 10 degrees of
    # freedom; 29.6 is its 99.9% quantile.
    for cutoff in cutoffs_with_labels(default_shop)[::3]:
        rows = churn_check_rows(shop_events=default_shop.events, churn=default_shop.churn,
                                cutoff=cutoff)
        rows["var"] = rows["p_churn"] * (1 - rows["p_churn"])
        rows["decile"] = pd.qcut(rows["p_churn"], 10, labels=False)
        g = rows.groupby("decile").agg(o=("churned", "sum"), e=("p_churn", "sum"), v=("var", "sum"))
        chi2 = float((((g["o"] - g["e"]) ** 2) / g["v"]).sum())
        assert chi2 < 29.6, (cutoff, chi2)


def test_observed_churn_in_the_active_population_is_realistic(default_shop):
    # Recency is informative but far from perfect: 30-50% of last year's buyers churn.
    late = cutoffs_with_labels(default_shop)[-3:]
    for cutoff in late:
        pop = population_at(events=default_shop.events, cutoff=cutoff)
        users = pd.Series(sorted(pop))
        rate = 1 - ordered_within(events=default_shop.events, start=cutoff, users=users).mean()
        assert 0.3 <= rate <= 0.5, (cutoff, rate)


def test_truth_is_not_the_hidden_state_alone(default_shop):
    rows = default_shop.churn[default_shop.churn["cutoff"] == cutoffs_with_labels(default_shop)[-1]]
    alive = rows[rows["alive"]]
    dormant = rows[~rows["alive"]]
    assert dormant["p_churn"].mean() > 0.8
    assert 0.05 < alive["p_churn"].mean() < 0.6
    assert alive["p_churn"].std() > 0.1


@pytest.mark.parametrize("action", ACTIONS)
def test_campaign_treatment_control_difference_matches_true_effect(default_shop, action):
    c = default_shop.campaigns.copy()
    tc = default_shop.truth_campaigns
    c["p_none"], c["p_action"], c["effect"] = tc["p_churn_none"], tc["p_churn_action"], tc["effect"]
    c = c[c["assigned_at"] + HORIZON <= default_shop.end].copy()
    c["churned"] = ~ordered_within(events=default_shop.events, start=c["assigned_at"],
                                   users=c["user_id"])
    treated = c[c["action"] == action]
    control = c[c["is_control"]]
    observed = treated["churned"].mean() - control["churned"].mean()
    true_effect = treated["effect"].mean()
    pa_, pn = treated["p_action"].to_numpy(), control["p_none"].to_numpy()
    # Binomial noise of both arms plus the randomisation noise of comparing two different groups
    # (the treated effect is measured against the control group's, not the treated's, baseline).
    var = np.sum(pa_ * (1 - pa_)) / pa_.size**2 + np.sum(pn * (1 - pn)) / pn.size**2 \
        + c["p_none"].var() * (1 / pa_.size + 1 / pn.size)
    se = np.sqrt(var)
    assert se < 0.02, se
    assert abs(observed - true_effect) < 4 * se, (action, observed, true_effect, se)


def _cutoff_frame(shop) -> pd.DataFrame:
    cutoff = cutoffs_with_labels(shop)[-1]
    rows = shop.churn[shop.churn["cutoff"] == cutoff]
    rows = rows[rows["user_id"].isin(population_at(events=shop.events, cutoff=cutoff))]
    ev = shop.events[shop.events["ts"] < cutoff]
    opened = ev[ev["type"] == "support_ticket"].groupby("user_id").size()
    resolved = ev[ev["type"] == "ticket_resolved"].groupby("user_id").size()
    open_now = opened.sub(resolved, fill_value=0)
    rows = rows.merge(shop.truth_users, on=["user_id", "segment"])
    rows["open_tickets"] = rows["user_id"].map(open_now).fillna(0)
    return rows


def test_coupon_effect_grows_with_price_sensitivity_and_discount(default_shop):
    f = _cutoff_frame(default_shop)
    assert f["effect_coupon_20"].corr(f["price_sensitivity"]) < -0.3
    assert f["effect_coupon_20"].mean() < f["effect_coupon_10"].mean() < f["effect_coupon_5"].mean()


def test_outreach_helps_most_where_tickets_are_open(default_shop):
    f = _cutoff_frame(default_shop)
    with_open = f.loc[f["open_tickets"] > 0, "effect_cs_outreach"]
    without = f.loc[f["open_tickets"] == 0, "effect_cs_outreach"]
    assert len(with_open) >= 30
    assert with_open.mean() < 3 * without.mean()
    assert with_open.mean() < without.mean() - 0.02


def test_recommendation_helps_narrow_interests_most(default_shop):
    f = _cutoff_frame(default_shop)
    assert f["effect_recommendation"].corr(f["category_breadth"]) > 0.2


def test_contact_backfires_for_some_satisfied_loyal_customers(default_shop):
    f = _cutoff_frame(default_shop)
    loyal = f[f["segment"] == "loyal"]
    others = f[f["segment"] != "loyal"]
    assert (loyal["effect_recommendation"] > 0).mean() > 0.1
    assert (others["effect_recommendation"] > 0).mean() < 0.01
