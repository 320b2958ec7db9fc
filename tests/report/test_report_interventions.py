"""The Interventions section: read from the store's plans, plan_rows and measurements tables and
shown with exact figures, Qini and forest SVGs, escaped data and an empty state."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from report_intervention_fixtures import (
    CAMPAIGN,
    HOSTILE_MESSAGE,
    HOSTILE_USER,
    OLD_CAMPAIGN,
    PRIOR_SOURCE,
    intervention_store,
    light_report_data,
)

from churnguard.intervene.measure import newcombe_interval
from churnguard.report import ReportData
from churnguard.report.html import build_html
from churnguard.reporting import latest_measurements, latest_plan

EMPTY_LINE = ('<p class="note">No intervention plan or measured campaign yet: run '
              "<code>churnguard plan --budget B</code> to plan a campaign, and "
              "<code>churnguard measure CAMPAIGN</code> once its window has passed.</p>")
PRIOR_WARNING = "The effects in this plan are assumptions, not measurements."


def section(page: str) -> str:
    return page[page.index('<section id="interventions">'):]


def svg_labels(page: str) -> list[str]:
    return re.findall(r'<svg role="img" aria-label="([^"]*)"', page)


def table_rows(page: str, cls: str) -> list[list[str]]:
    """Cell texts (th and td) of each body row of the first table with class ``cls``."""
    body = re.search(rf'<table class="{cls}">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    return [[" ".join(re.sub(r"<[^>]+>", " ", cell).split())
             for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def from_store(*, prior: bool = False) -> tuple[ReportData, list[str]]:
    store = intervention_store(prior=prior)
    notes: list[str] = []
    try:
        plan, sample = latest_plan(store, notes)
        measurements = latest_measurements(store, notes)
    finally:
        store.close()
    return light_report_data(plan=plan, plan_sample=sample, measurements=measurements), notes


@pytest.fixture(scope="module")
def stored() -> tuple[ReportData, list[str]]:
    return from_store()


@pytest.fixture(scope="module")
def page(stored: tuple[ReportData, list[str]]) -> str:
    return section(build_html(stored[0]))


# -- reading the store ----------------------------------------------------------------------------

def test_reads_the_newest_plan_its_top_treated_rows_and_newest_measurements(
        stored: tuple[ReportData, list[str]]) -> None:
    data, notes = stored
    assert notes == []
    assert data.plan["campaign_id"] == CAMPAIGN and data.plan["status"] == "planned"
    assert data.plan["summary"]["treated"] == 1482
    assert data.plan["config"]["window_days"] == 90
    sample = data.plan_sample
    assert len(sample) == 20 and not sample["is_control"].any()
    assert sample["user_id"].tolist() == ["u000", HOSTILE_USER] + [f"u{i:03d}" for i in
                                                                 range(2, 20)]
    # One document per campaign, the newest measurement of each, the latest measured first.
    assert [m["campaign_id"] for m in data.measurements] == [CAMPAIGN, OLD_CAMPAIGN]
    assert data.measurements[0]["n_treated"] == 1362  # not the stale earlier measurement


def test_unreadable_json_leaves_a_note_not_a_crash() -> None:
    store = intervention_store()
    try:
        store.con.execute("UPDATE measurements SET result = '{broken' "
                          "WHERE campaign_id = ?", [OLD_CAMPAIGN])
        notes: list[str] = []
        measurements = latest_measurements(store, notes)
    finally:
        store.close()
    assert [m["campaign_id"] for m in measurements] == [CAMPAIGN]
    assert len(notes) == 1
    assert notes[0].startswith(f"The stored measurement of campaign {OLD_CAMPAIGN} is not valid "
                               "JSON (")


# -- the plan ------------------------------------------------------------------------------------

def test_headline_figures(page: str) -> None:
    cards = dict(re.findall(r'<div class="label">(.*?)</div><div class="value">(.*?)</div>',
                            page))
    assert cards == {"Customers contacted": "1,482", "Control group": "165",
                     "Budget": "2,500.00", "Expected cost": "2,063.90",
                     "Expected saves": "35.5", "Expected incremental margin": "4,171.65"}
    assert "of 12,000 customers scored on 2025-03-01" in page
    assert "82.6% of the budget" in page
    assert "held out at random (10% of the planned customers)" in page
    assert "extra customers expected to have an “order” event within 90 days of contact" in page
    assert f"Campaign <code>{CAMPAIGN}</code>, planned 2025-03-01 09:30" in page
    assert "churn scores by model version gbdt-20250301-a1b2c3" in page


def test_per_action_table_and_tiers(page: str) -> None:
    assert table_rows(page, "plan-actions") == [
        ["coupon_10", "412", "46", "18.7", "1,536.40", "2,210.55", "82.03"],
        ["cs_outreach", "120", "13", "9.6", "480.00", "1,650.20", "50.00"],
        ["recommendation", "950", "106", "7.2", "47.50", "310.90", "6.60"],
        ["all actions", "1,482", "165", "35.5", "2,063.90", "4,171.65", "58.09"],
    ]
    # Tiers in risk order, whatever order the summary holds them in.
    assert ('Contacted by risk tier: <span class="tier tier-high">high</span> 700 · '
            '<span class="tier tier-medium">medium</span> 600 · '
            '<span class="tier tier-low">low</span> 182</p>') in page


def test_uplift_learners_table_marks_the_chosen_and_the_random_floor(page: str) -> None:
    assert table_rows(page, "learners") == [
        ["t_learner", "0.0123", "+3.1 pp", "+6.1 pp", "+4.5 pp", "+4.0 pp"],
        ["x_learner chosen", "0.0188", "+3.4 pp", "+7.3 pp", "+5.2 pp", "+4.3 pp"],
        ["s_learner", "0.0091", "+2.9 pp", "+5.4 pp", "+4.1 pp", "+3.7 pp"],
        ["random ranking (floor)", "0.0001", "+2.0 pp", "+2.0 pp", "+2.0 pp", "+2.0 pp"],
    ]
    assert '<tr class="chosen"><th scope="row">x_learner <span class="badge">chosen</span>' in page
    assert '<tr class="floor"><th scope="row">random ranking (floor)</th>' in page
    assert ("cross-fitted over 5 folds on 8,412 rows of 3 randomised campaigns (outcome: order "
            "within 90 days)") in page
    assert "Uplift source: x_learner fitted on 8,412 rows of 3 randomised campaigns" in page
    assert PRIOR_WARNING not in page


def test_one_qini_svg_per_action_with_both_learners_and_the_diagonal(page: str) -> None:
    labels = svg_labels(page)
    assert [x for x in labels if x.startswith("Qini")] == [
        "Qini curve of coupon_10", "Qini curve of cs_outreach", "Qini curve of recommendation"]
    first = page[page.index('aria-label="Qini curve of coupon_10"'):]
    first = first[:first.index("</svg>")]
    for legend in ("x_learner (chosen)", "t_learner", "random targeting"):
        assert legend in first


def test_value_model_backtest_table(page: str) -> None:
    assert table_rows(page, "value-models") == [
        ["btyd chosen", "41.37", "88.21", "1.04×", "0.612"],
        ["gbdt", "43.05", "85.77", "0.91×", "0.634"],
    ]
    assert ("predicted by the <strong>btyd</strong> model, chosen for the lowest mean absolute "
            "error in an out-of-time backtest on 2025-01-01 (9,800 customers, who spent 84.12 "
            "each on average)") in page


def test_planned_customers_sample(page: str) -> None:
    rows = table_rows(page, "plan-sample")
    assert len(rows) == 20
    assert rows[2] == ["3", "u002", "recommendation", "low", "86.1%", "+4.7 pp", "602.07",
                       "3.73", "111.79", "Hello 2, we miss you"]
    assert [r[0] for r in rows] == [str(i) for i in range(1, 21)]
    assert not any(r[1].startswith("c") for r in rows)  # control customers are never shown


def test_data_from_the_store_is_escaped(page: str) -> None:
    assert ("&lt;script&gt;alert(&quot;hi&quot;)&lt;/script&gt; Save 10% &amp; "
            "&lt;b&gt;more&lt;/b&gt;") in page
    assert "<code>u&lt;img src=x&gt;</code>" in page
    assert HOSTILE_MESSAGE not in page and HOSTILE_USER not in page
    for raw in ("<script", "<img", "<b>"):
        assert raw not in page


def test_hostile_ids_and_action_names_are_escaped() -> None:
    data, _ = from_store()
    summary = {**data.plan["summary"], "per_action": {"<i>x</i>": {"customers": 1}}}
    measurement = {**data.measurements[0], "campaign_id": 'c"><script>x</script>',
                   "groups": [{**g, "action": "$a$ <u>b</u>"} for g in
                              data.measurements[0]["groups"]]}
    page = section(build_html(light_report_data(
        plan={**data.plan, "campaign_id": "<x>", "summary": summary},
        measurements=[measurement])))
    assert "<i>" not in page and "<u>" not in page and "<script" not in page and "<x>" not in page
    assert "<code>&lt;x&gt;</code>" in page
    assert "<td>&lt;i&gt;x&lt;/i&gt;</td>" in page
    assert "<code>c&quot;&gt;&lt;script&gt;x&lt;/script&gt;</code>" in page


# -- prior effects --------------------------------------------------------------------------------

def test_prior_effects_are_said_plainly_and_no_qini_is_drawn() -> None:
    data, _ = from_store(prior=True)
    page = section(build_html(data))
    assert (f'<p class="note"><strong>{PRIOR_WARNING}</strong> They are the prior effects by '
            "risk tier set in churnguard.toml") in page
    assert f"Uplift source: {PRIOR_SOURCE}.</p>" in page
    assert "No uplift learner was evaluated for this plan" in page
    assert not any(x.startswith("Qini") for x in svg_labels(page))
    assert '<table class="plan-actions">' in page  # the rest of the plan is still shown


# -- measured campaigns ---------------------------------------------------------------------------

def test_measurement_table_with_rates_and_intervals(page: str) -> None:
    campaign = page[page.index(f"Campaign <code>{CAMPAIGN}</code></h4>"):
                    page.index(f"Campaign <code>{OLD_CAMPAIGN}</code></h4>")]
    lo, hi = newcombe_interval(np.array([210]), np.array([412]), np.array([17]),
                               np.array([46]))
    retention_ci = f"{100 * lo[0]:+.1f} pp to {100 * hi[0]:+.1f} pp"
    rows = table_rows(campaign, "measurement")
    assert rows[1] == ["coupon_10", "all tiers", "412", "46", "51.0%", "37.0%",
                       f"+14.0 pp {retention_ci}", "+7.40 +1.20 to +13.60", "—"]
    assert rows[0][:8] == ["coupon_10", "high", "250", "28", "52.4%", "32.1%", "+20.3 pp",
                           "+9.50"]
    assert rows[0][8].startswith("too few customers for a confidence interval")
    assert rows[-1][:4] == ["all actions", "all tiers", "1,362", "152"]
    assert '<tr class="total"><td>all actions</td>' in campaign
    assert "Incremental retention (95% CI)" in campaign
    assert ("Against its control group the campaign kept <strong>+70.3</strong> customers "
            "(95% CI -43.3 to +176.6) and earned <strong>+3,677.40</strong> in net revenue "
            "after the actions’ costs (95% CI +544.80 to +6,810.00).") in campaign
    assert ("measured 2025-06-02 14:00 with the events up to 2025-06-02 13:05. 1,362 treated "
            "and 152 control customers; each action against the control customers planned for "
            "it") in campaign
    assert "<li>12 customers neither treated nor in the control group (action &#x27;none&#x27;) "\
           "are left out</li>" in campaign


def test_one_forest_plot_per_campaign(page: str) -> None:
    labels = svg_labels(page)
    assert [x for x in labels if x.startswith("Incremental")] == [
        f"Incremental retention of campaign {CAMPAIGN}",
        f"Incremental retention of campaign {OLD_CAMPAIGN}"]
    forest = page[page.index(f'aria-label="Incremental retention of campaign {CAMPAIGN}"'):]
    forest = forest[:forest.index("</svg>")]
    for row in ("coupon_10 (412 vs 46)", "recommendation (950 vs 106)",
                "all actions (1,362 vs 152)"):
        assert row in forest
    assert "coupon_10 (250 vs 28)" not in forest  # tiers are in the table, not the plot


# -- partial and empty states ---------------------------------------------------------------------

def test_empty_state_is_one_line_with_the_commands() -> None:
    page = section(build_html(light_report_data()))
    body = page[page.index('<p class="lead">'):page.index("</section>")]
    assert body.split("</p>\n", 1)[1].strip() == EMPTY_LINE
    assert "<svg" not in page


def test_plan_without_measurement_and_measurement_without_plan(
        stored: tuple[ReportData, list[str]]) -> None:
    data, _ = stored
    only_plan = section(build_html(light_report_data(plan=data.plan)))
    assert ("No campaign has been measured yet; run <code>churnguard measure CAMPAIGN</code> "
            "once the campaign’s window has passed.") in only_plan
    assert "No planned customers were supplied." in only_plan
    only_measured = section(build_html(light_report_data(measurements=data.measurements[:1])))
    assert ("No plan is stored; run <code>churnguard plan --budget B</code> to plan a "
            "campaign.") in only_measured
    assert f"Campaign <code>{CAMPAIGN}</code></h4>" in only_measured


def test_plan_sample_without_expected_margin_is_a_precise_error() -> None:
    with pytest.raises(ValueError, match=r"ReportData.plan_sample lacks the column\(s\) "
                                         r"\['expected_margin'\]"):
        light_report_data(plan_sample=pd.DataFrame({"user_id": ["u1"], "action": ["coupon_10"]}))


def test_a_plan_that_kept_an_earlier_choice_of_learner_says_which_plan_chose(page: str) -> None:
    from churnguard.report.intervention_sections import _uplift_learners

    assert "kept the learner chosen" not in page  # the fixture's plan chose among them all
    learner = {"name": "s_logistic", "qini": 0.01, "auuc": 0.02, "uplift_at_10": 0.03,
               "uplift_at_20": 0.02, "uplift_at_30": 0.02}
    html = _uplift_learners({"uplift_evaluation": {
        "learners": [learner, {**learner, "name": "random"}], "chosen": "s_logistic",
        "folds": 3, "n_rows": 900, "n_campaigns": 2, "outcome_type": "order", "window_days": 90,
        "choice": {"chosen_at": "2026-03-01T00:00:00", "kept_from": "cg-<0301>"}}})
    assert ("This plan kept the learner chosen among all of them by the plan cg-&lt;0301&gt; "
            "(as of 2026-03-01; <code>[uplift] choose_every_days</code>), so it cross-fitted "
            "only that one") in html
