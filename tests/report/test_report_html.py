"""The report page: one self-contained file, every section, exact numbers, escaped text."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from report_fixtures import BOLD_REASON, CHINESE_REASON, CHINESE_REGION, N, synthetic_report_data

from churnguard.report import ReportData, render_report

HEADINGS = [
    "1. Summary", "2. Model leaderboard", "3. ROC and precision–recall curves", "4. Calibration",
    "5. Cumulative gains and lift", "6. Score distribution by risk tier",
    "7. Global feature importance", "8. Churn rate by segment", "9. Churn definition preview",
    "10. Top at-risk customers", "11. Interventions",
]


@pytest.fixture(scope="module")
def page_path(report_data: ReportData, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_report(report_data, tmp_path_factory.mktemp("report") / "sub" / "report.html")


@pytest.fixture(scope="module")
def page(page_path: Path) -> str:
    return page_path.read_text(encoding="utf-8")


def leaderboard_rows(page: str) -> dict[str, tuple[str, list[str]]]:
    """model name -> (row class, cell texts) from the leaderboard table."""
    table = re.search(r'<table class="leaderboard">(.*?)</table>', page, re.S).group(1)
    rows = {}
    for cls, head, cells in re.findall(
            r'<tr class="([^"]*)"><th scope="row">(.*?)</th>(.*?)</tr>', table, re.S):
        name = re.sub(r"<.*", "", head).strip()
        rows[name] = (cls, re.findall(r"<td[^>]*>(.*?)</td>", cells))
    return rows


def test_writes_one_self_contained_file(page_path: Path, page: str) -> None:
    assert page_path.name == "report.html"  # the folder "sub" was created
    assert sorted(p.name for p in page_path.parent.iterdir()) == ["report.html"]  # no temp left
    text = page
    assert text.startswith("<!DOCTYPE html>")
    assert '<meta charset="utf-8">' in text
    for external in ("http://", "https://", "<script", "<link", "<img", "@import", "url(http"):
        assert external not in text, external
    # roc, pr, calibration, gains, distribution, importance and three segment columns
    assert text.count("<svg ") == 9


def test_every_section_heading_in_order(page: str) -> None:
    found = re.findall(r"<h2>(.*?)</h2>", page)
    assert found == HEADINGS


def test_leaderboard_shows_exact_values_marks_best_and_chosen(page: str) -> None:
    rows = leaderboard_rows(page)
    assert list(rows) == ["recency", "btyd", "gbdt", "oracle"]  # oracle last
    assert rows["gbdt"] == ("chosen", ["0.812", "0.646", "0.158", "0.019", "2.47×", "25.1%"])
    assert rows["recency"][1] == ["0.701", "0.512", "0.190", "0.031", "1.84×", "18.8%"]
    assert rows["oracle"] == ("oracle", ["0.863", "0.700", "0.140", "0.009", "2.88×", "29.1%"])
    best_cells = re.findall(r'<td class="num best">(.*?)</td>', page)
    # gbdt is best everywhere; the oracle is the ceiling and never marked best.
    assert best_cells == ["0.812", "0.646", "0.158", "0.019", "2.47×", "25.1%"]
    for line in ("ROC AUC (higher is better)", "Brier score (lower is better)",
                 "Recall at 10% (higher is better)"):
        assert line in page


def test_summary_numbers(report_data: ReportData, page: str) -> None:
    scores = report_data.scores
    expected = f"{round(scores['p_churn'].sum()):,}"
    summary = page[page.index('id="summary"'):page.index('id="leaderboard"')]
    assert f"{N:,}" in summary
    assert f'<div class="value">{expected}</div>' in summary
    assert f'<div class="value">{(scores["risk_tier"] == "high").sum():,}</div>' in summary
    high_share = (scores["risk_tier"] == "high").mean()
    assert f'<span class="tier tier-high">high</span> {high_share:.1%}</div>' in summary
    assert "ROC AUC of <strong>0.812</strong>, against 0.701 for the naive recency rule" in summary
    assert "0.863 is the best possible score on this data" in summary
    assert "reaches <strong>25.1%</strong> of all leavers (recency rule: 18.8%)" in summary
    assert "Simulated data: the oracle knows each customer&#x27;s true churn" in summary


def test_text_is_escaped_and_chinese_survives(page: str, page_path: Path) -> None:
    assert "Basket value fell &lt;b&gt;sharply&lt;/b&gt; &amp; stayed low" in page
    assert BOLD_REASON not in page and "<b>" not in page
    assert "Days since the last order (&lt;most&gt; important)" in page
    assert CHINESE_REASON in page
    assert CHINESE_REGION in page  # a segment value, drawn as SVG text
    assert CHINESE_REASON.encode("utf-8") in page_path.read_bytes()


def test_top_customers_table(report_data: ReportData, page: str) -> None:
    table = re.search(r'<table class="customers">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r"<tr><td class=\"num\">(\d+)</td><td><code>(u\d+)</code></td>", table)
    expected = report_data.scores.sort_values("p_churn", ascending=False)["user_id"].head(50)
    assert [u for _, u in rows] == list(expected)
    assert [int(r) for r, _ in rows] == list(range(1, 51))


def test_definition_in_words_and_preview(page: str) -> None:
    assert ("a customer is <strong>in the population</strong> when they made at least one order "
            "in the 365 days before it") in page
    assert "no order in the 90 days after it" in page
    assert ('<tr class="obs-partial"><td>2025-03-01</td><td class="num">2,100</td>'
            '<td class="num">300</td><td class="num">14.3%</td>') in page
    assert ('<tr class="obs-none"><td>2025-05-01</td><td class="num">2,150</td>'
            '<td class="num">—</td><td class="num">—</td><td>not yet observable') in page


def test_feature_importance_top_15_with_descriptions(page: str) -> None:
    section = page[page.index('id="importance"'):page.index('id="segments"')]
    assert len(re.findall(r"<tr><td class=\"num\">\d+</td><td><code>feature_", section)) == 15
    assert "<code>feature_14</code>" in section and "<code>feature_15</code>" not in section
    assert "Description of feature_03" in section
    assert "<code>text</code>: no review or ticket text in the events" in section


def test_same_data_gives_the_same_file(report_data: ReportData, page_path: Path,
                                       tmp_path: Path) -> None:
    again = render_report(report_data, tmp_path / "again.html")
    assert again.read_bytes() == page_path.read_bytes()


def test_failed_write_keeps_the_old_report(report_data: ReportData, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "report.html"
    out.write_text("old", encoding="utf-8")

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        render_report(report_data, out)
    assert out.read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_scores_without_p_churn_is_a_precise_error(report_data: ReportData) -> None:
    with pytest.raises(ValueError, match=r"ReportData.scores lacks the column\(s\) \['p_churn'\]"):
        synthetic_report_data(scores=report_data.scores.drop(columns="p_churn"))
