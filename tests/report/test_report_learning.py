"""What the campaigns have taught: the learning curve and each action's effect as known after each
campaign (report/learning.py), and the plan's exploration, in the report."""

from __future__ import annotations

import datetime as dt
import math
import re

import pytest
from report_intervention_fixtures import light_report_data, measurement, plan_summary

from churnguard.report.html import build_html
from churnguard.report.learning import learning_history


def _doc(campaign_id: str, day: str, effect: float, half: float | None = 0.04,
         net: float = 120.0) -> dict:
    ci = None if half is None else [effect - half, effect + half]
    return {"campaign_id": campaign_id, "assigned_to": day, "confidence": 0.95,
            "n_treated": 400, "n_control": 40,
            "totals": {"incremental_net_revenue": net,
                       "incremental_net_revenue_ci": [net - 50, net + 50]},
            "groups": [{"action": "call", "tier": "all", "incremental_retention": effect,
                        "incremental_retention_ci": ci},
                       {"action": "call", "tier": "high", "incremental_retention": 0.5,
                        "incremental_retention_ci": [0.4, 0.6]},
                       {"action": "all", "tier": "all", "incremental_retention": effect,
                        "incremental_retention_ci": ci}]}


def test_the_pooled_effect_narrows_with_every_measured_campaign() -> None:
    history = learning_history([_doc("c3", "2025-03-01", 0.05), _doc("c1", "2025-01-01", 0.01),
                                _doc("c2", "2025-02-01", 0.03, half=0.08)])
    points = history.effects["call"]
    assert [p.campaign_id for p in points] == ["c1", "c2", "c3"]  # in assignment order
    widths = [p.pooled_high - p.pooled_low for p in points]
    assert widths[0] == pytest.approx(0.08)
    assert widths[0] > widths[1] > widths[2]
    # Inverse-variance weights: c2's interval is twice as wide, so it counts a quarter.
    assert points[1].pooled == pytest.approx((0.01 * 4 + 0.03) / 5)
    assert points[2].pooled == pytest.approx((0.01 * 4 + 0.03 + 0.05 * 4) / 9)
    assert widths[2] == pytest.approx(0.08 / math.sqrt(9 / 4))
    assert points[2].effect == 0.05 and points[2].campaigns == 3  # the tier rows stay out
    curve = history.campaigns
    assert [(c.campaign_id, c.retention, c.net_revenue) for c in curve] == [
        ("c1", 0.01, 120.0), ("c2", 0.03, 120.0), ("c3", 0.05, 120.0)]


def test_a_campaign_without_an_interval_shows_its_effect_but_does_not_narrow() -> None:
    history = learning_history([_doc("c1", "2025-01-01", 0.02),
                                _doc("c2", "2025-02-01", 0.10, half=None)])
    first, second = history.effects["call"]
    assert second.effect == 0.10 and second.low is None
    assert (second.pooled, second.pooled_low, second.campaigns) == (
        first.pooled, first.pooled_low, 1)


def test_the_report_shows_the_learning_curve_and_each_actions_narrowing_effect() -> None:
    older = measurement("spring", dt.datetime(2025, 6, 1)).to_dict()
    newer = {**measurement("summer", dt.datetime(2025, 9, 1)).to_dict(),
             "assigned_to": "2025-06-01T00:00:00"}
    page = build_html(light_report_data(measurements=[newer, older]))
    body = page[page.index('<section id="learning">'):]
    curve = re.search(r'<table class="learning-curve">.*?</table>', body, re.S).group(0)
    assert curve.index("spring") < curve.index("summer")  # oldest first
    # The every-action retention effect with its interval, and the net revenue with its own.
    assert "+5.2 pp<br><span class=\"ci\">-3.2 pp to +13.0 pp</span>" in curve
    assert "+3,677.40<br><span class=\"ci\">+544.80 to +6,810.00</span>" in curve
    labels = re.findall(r'<svg role="img" aria-label="([^"]*)"', body)
    assert labels == ["Learning curve", "Effect of coupon_10 after each campaign",
                      "Effect of recommendation after each campaign"]
    history = learning_history([older, newer])
    first, second = history.effects["coupon_10"]
    assert second.pooled_high - second.pooled_low < first.pooled_high - first.pooled_low
    effects = re.search(r'<table class="effect-history">.*?</table>', body, re.S).group(0)
    assert effects.count("<tr>") == 3  # the header and one row per campaign
    # Its own section after the interventions, shown only once a campaign was measured.
    assert "<h2>12. What the campaigns have taught</h2>" in page
    assert '<section id="learning">' not in build_html(light_report_data())


def test_the_report_says_what_exploring_costs_and_teaches() -> None:
    summary = plan_summary()
    summary["exploration"] = {
        "share": 0.1, "explored": 12, "contacts": 120, "contacted": 11,
        "contacted_share": 11 / 110, "greedy_expected_margin": 500.0, "expected_margin": 470.5,
        "expected_margin_given_up": 29.5,
        "per_segment": [{"risk_tier": "high", "action": "coupon_10", "effect": 0.04,
                         "width_now": 0.2, "width_after_plan": 0.12,
                         "width_after_greedy": 0.15, "explored": 7, "planned": 40,
                         "n_treated": 0, "n_control": 0}]}
    plan = {"campaign_id": "cg", "summary": summary, "config": {}, "budget": 1000.0}
    page = build_html(light_report_data(plan=plan))
    text = re.sub(r"<[^>]+>", "", page[page.index("<h4>Exploration</h4>"):])
    assert "11 of the contacted customers (10.0%" in text
    assert "expected 29.50 of margin against the greedy plan (500.00)" in text
    row = re.search(r'<table class="exploration">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    assert re.sub(r"<[^>]+>", " ", row).split() == [
        "coupon_10", "high", "7", "40", "+4.0", "pp", "+20.0", "pp", "+12.0", "pp", "+15.0", "pp"]
    assert "<h4>Exploration</h4>" not in build_html(light_report_data(plan={
        **plan, "summary": plan_summary()}))
