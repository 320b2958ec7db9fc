"""The report in a real headless Chromium: no errors, no network, every chart drawn."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import artifact_path, chromium_page
from report_intervention_fixtures import intervention_store, light_report_data

from churnguard.report import ReportData, render_report
from churnguard.reporting import latest_measurements, latest_plan


@pytest.mark.browser
def test_report_renders_in_chromium(report_data: ReportData, tmp_path: Path) -> None:
    path = render_report(report_data, tmp_path / "report.html")
    with chromium_page() as browser:
        page = browser.page
        page.goto(path.as_uri(), wait_until="load")
        assert page.title() == "Churn report — demo-project"
        boxes = page.eval_on_selector_all(
            "svg", "els => els.map(e => { const r = e.getBoundingClientRect();"
                   " return [e.getAttribute('aria-label'), r.width, r.height]; })")
        headings = page.eval_on_selector_all("h2", "els => els.map(e => e.textContent)")
        reason_cells = page.eval_on_selector_all(
            "table.customers td", "els => els.map(e => e.textContent)")
        page.screenshot(path=str(artifact_path("report.png")), full_page=True)
        assert browser.problems() == []
    assert len(boxes) >= 6
    assert [label for label, w, h in boxes if not (w > 100 and h > 100)] == []
    assert len(headings) == 11 and headings[-1] == "11. Interventions"
    # The escaped reason reads as the literal text, not as bold markup.
    assert "Basket value fell <b>sharply</b> & stayed low" in reason_cells
    assert "最近 90 天没有下单" in reason_cells
    assert artifact_path("report.png").stat().st_size > 50_000


@pytest.mark.browser
def test_intervention_section_renders_in_chromium(tmp_path: Path) -> None:
    store = intervention_store()
    try:
        notes: list[str] = []
        plan, sample = latest_plan(store, notes)
        data = light_report_data(plan=plan, plan_sample=sample,
                                 measurements=latest_measurements(store, notes))
    finally:
        store.close()
    path = render_report(data, tmp_path / "interventions.html")
    with chromium_page() as browser:
        page = browser.page
        page.goto(path.as_uri(), wait_until="load")
        boxes = page.eval_on_selector_all(
            "#interventions svg", "els => els.map(e => { const r = e.getBoundingClientRect();"
                                  " return [e.getAttribute('aria-label'), r.width, r.height]; })")
        message = page.eval_on_selector_all(
            "table.plan-sample td", "els => els.map(e => e.textContent)")
        page.locator("#interventions").screenshot(path=str(artifact_path("interventions.png")))
        assert browser.problems() == []
    # Three Qini curves (one per action) and a forest plot per measured campaign, all drawn.
    assert len(boxes) == 5
    assert [label for label, w, h in boxes if not (w > 100 and h > 100)] == []
    assert '<script>alert("hi")</script> Save 10% & <b>more</b>' in message
