"""Incomplete inputs render a page with a note where a chart cannot be drawn; nothing crashes."""

from __future__ import annotations

import copy
import doctest
import re

import numpy as np
import pandas as pd
import pytest
from report_fixtures import BACKTEST, synthetic_report_data

from churnguard.report import ReportData, charts
from churnguard.report.html import build_html


def svg_labels(page: str) -> list[str]:
    return re.findall(r'<svg role="img" aria-label="([^"]*)"', page)


@pytest.fixture(scope="module")
def base(report_data: ReportData) -> ReportData:
    return report_data


def test_model_missing_from_test_predictions(base: ReportData) -> None:
    predictions = {k: v for k, v in base.test_predictions.items() if k != "btyd"}
    page = build_html(synthetic_report_data(test_predictions=predictions))
    assert "No test predictions were supplied for “btyd”; it is left out of the charts." in page
    assert '<th scope="row">btyd' in page  # still on the leaderboard
    assert "ROC curves of every model" in svg_labels(page)


def test_no_oracle(base: ReportData) -> None:
    backtest = copy.deepcopy(BACKTEST)
    backtest["models"] = [m for m in backtest["models"] if m["name"] != "oracle"]
    predictions = {k: v for k, v in base.test_predictions.items() if k != "oracle"}
    page = build_html(synthetic_report_data(backtest=backtest, test_predictions=predictions,
                                            notes=[]))
    assert "best possible" not in page
    assert "oracle" not in page.split("<main>")[1].split("</section>")[0]  # summary
    assert len(svg_labels(page)) == 9


def test_empty_segments() -> None:
    page = build_html(synthetic_report_data(segments=pd.DataFrame()))
    assert "No segment data was supplied, so churn by segment is not shown." in page
    assert not any(label.startswith("Churn rate by") for label in svg_labels(page))


def test_segments_without_a_cohort_column_and_with_many_values(base: ReportData) -> None:
    segments = base.segments.drop(columns="signup_cohort").assign(
        city=[f"city {i % 30}" for i in range(len(base.segments))])
    page = build_html(synthetic_report_data(segments=segments))
    assert "No signup cohort column was supplied." in page
    assert "The 11 largest of 30 groups are shown; the rest are pooled as “other”." in page
    assert "other (19 values)" in page


def test_single_class_in_y_true_skips_the_ranking_curves(base: ReportData) -> None:
    predictions = {k: (np.zeros_like(y), p) for k, (y, p) in base.test_predictions.items()}
    page = build_html(synthetic_report_data(test_predictions=predictions))
    assert ("“gbdt”: every test customer stayed, so ranking curves (ROC, precision–recall, gains) "
            "cannot be drawn for it.") in page
    assert "No model has test predictions with both churners and stayers" in page
    labels = svg_labels(page)
    assert "ROC curves of every model" not in labels
    assert "Cumulative gains and lift" not in labels
    assert "Calibration reliability diagram" in labels  # still meaningful with one class


def test_nan_and_missing_metrics_show_a_dash(base: ReportData) -> None:
    backtest = copy.deepcopy(BACKTEST)
    backtest["models"][2]["roc_auc"] = float("nan")  # gbdt
    backtest["models"][0]["ece"] = None  # recency
    del backtest["models"][1]["brier"]  # btyd
    page = build_html(synthetic_report_data(backtest=backtest))
    assert ('<tr class="chosen"><th scope="row">gbdt <span class="badge">chosen</span></th>'
            '<td class="num">—</td>') in page
    assert "ROC AUC of <strong>—</strong>, against 0.701" in page
    # With gbdt's AUC unknown, btyd holds the best AUC.
    assert '<td class="num best">0.743</td>' in page


def test_mismatched_and_nan_predictions(base: ReportData) -> None:
    y, p = base.test_predictions["gbdt"]
    p = p.copy()
    p[:5] = np.nan
    predictions = {**base.test_predictions, "gbdt": (y, p), "btyd": (y[:10], p[:11])}
    page = build_html(synthetic_report_data(test_predictions=predictions))
    assert "“gbdt”: 5 rows without a prediction or label are left out." in page
    assert "“btyd”: 10 labels but 11 predictions; left out of the charts." in page


def test_nothing_but_the_required_columns() -> None:
    empty_scores = pd.DataFrame({"user_id": [], "p_churn": [], "risk_tier": []})
    data = synthetic_report_data(
        backtest={}, test_predictions={}, chosen_model="gbdt", scores=empty_scores,
        feature_importance=pd.Series(dtype=float), feature_descriptions={},
        segments=pd.DataFrame(), preview=[], skipped_groups={}, notes=[], definition={})
    page = build_html(data)
    assert svg_labels(page) == []
    for note in ("The backtest holds no model results.", "No scored customers.",
                 "No feature importance was supplied.", "No churn-definition preview was supplied.",
                 "the backtest holds no result for it"):
        assert note in page
    assert '<div class="value">0</div>' in page


def test_chart_module_doctests() -> None:
    assert doctest.testmod(charts, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0


def test_calibration_bins_are_ten_equal_width_bins() -> None:
    p = np.linspace(0.0, 1.0, 101)
    bins = charts.calibration_bins((p > 0.5).astype(int), p)
    assert bins["count"].tolist() == [10] * 9 + [11]  # 1.0 falls in the last bin
    assert bins["observed"].tolist() == [0, 0, 0, 0, 0, 0.9, 1, 1, 1, 1]  # 0.50 itself is no churn
