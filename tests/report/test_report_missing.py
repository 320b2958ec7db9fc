"""A report made before everything was computed: the page renders what exists and says, where the
missing parts would be, which command makes them (``ReportData.missing``)."""

from __future__ import annotations

import html
import re

import pandas as pd
import pytest
from report_fixtures import synthetic_report_data

from churnguard.report import ReportData
from churnguard.report.data import MISSING, missing_line
from churnguard.report.html import build_html

NO_BACKTEST = ("No backtest yet: run churnguard backtest; the model leaderboard, the curves, "
               "calibration, gains and churn by segment come from it.")
NO_MODEL = ("No model trained yet: run churnguard train; the chosen model and its feature "
            "importance come from it.")
NO_SCORES = ("No scores yet: run churnguard score; the score distribution and the customers "
             "most at risk come from it.")


def headings(page: str) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", page)


def section_text(page: str, sid: str) -> str:
    """The section's text, tags removed and entities decoded."""
    body = re.search(rf'<section id="{sid}">(.*?)</section>', page, re.S).group(1)
    return html.unescape(re.sub(r"<[^>]+>", "", body))


def without_backtest(data: ReportData) -> ReportData:
    return synthetic_report_data(backtest={}, test_predictions={}, segments=pd.DataFrame(),
                                 missing=("backtest",))


def test_missing_lines_name_the_command() -> None:
    assert [missing_line(key) for key in MISSING] == [NO_BACKTEST, NO_MODEL, NO_SCORES]


def test_without_a_backtest_one_section_says_how_to_run_it_and_the_rest_is_shown(
        report_data: ReportData) -> None:
    page = build_html(without_backtest(report_data))
    assert headings(page) == [
        "1. Summary", "2. Model quality", "3. Score distribution by risk tier",
        "4. Global feature importance", "5. Churn rate by segment", "6. Churn definition preview",
        "7. Top at-risk customers", "8. Interventions"]
    assert section_text(page, "backtest").strip().endswith(NO_BACKTEST)
    assert NO_BACKTEST in section_text(page, "segments")
    assert '<table class="leaderboard">' not in page and "ROC curves" not in page
    # What exists is shown: the scores, their distribution, the riskiest customers, importance.
    summary = section_text(page, "summary")
    assert "Not in this report yet" + NO_BACKTEST in summary
    assert "Customers scored2,000" in summary
    assert "The chosen model is gbdt; no backtest has been run, so its out-of-time quality is " \
        "not known yet." in summary
    riskiest = report_data.scores.sort_values("p_churn").iloc[-1]["user_id"]
    assert f"<code>{riskiest}</code>" in page
    assert "Expected churners" in section_text(page, "distribution")
    assert "feature_00" in section_text(page, "importance")
    assert NO_MODEL not in page and NO_SCORES not in page


def test_before_any_model_the_page_shows_the_definition_and_says_all_that_is_missing() -> None:
    data = synthetic_report_data(backtest={}, test_predictions={}, chosen_model="",
                                 scores=pd.DataFrame(), feature_importance=pd.Series(dtype=float),
                                 segments=pd.DataFrame(), notes=[],
                                 missing=("backtest", "model", "scores"))
    page = build_html(data)
    assert "no model trained yet" in page.split("<main>")[0]
    summary = section_text(page, "summary")
    assert [line for line in (NO_BACKTEST, NO_MODEL, NO_SCORES) if line in summary] == [
        NO_BACKTEST, NO_MODEL, NO_SCORES]
    assert NO_SCORES in section_text(page, "distribution")
    assert NO_SCORES in section_text(page, "customers")
    assert NO_MODEL in section_text(page, "importance")
    # The definition preview needs none of them.
    assert "2025-03-01" in section_text(page, "definition")
    assert "Customers scored" not in page


def test_missing_names_only_what_the_report_knows() -> None:
    with pytest.raises(ValueError, match="ReportData.missing names"):
        synthetic_report_data(missing=("forecast",))
    # An empty score table is accepted only when the scores are said to be missing.
    with pytest.raises(ValueError, match="lacks the column"):
        synthetic_report_data(scores=pd.DataFrame())
