"""The dashboard in a real headless Chromium, served by uvicorn on 127.0.0.1.

Every page loads with no console error and no request leaving the machine, Plotly draws the
charts, a click in the at-risk table opens the customer's page, the language switch shows
Chinese, and the budget slider changes the expected saves. Screenshots land in test-artifacts/.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from browser import BrowserPage, artifact_path, chromium_page
from service.helpers import READ
from service.test_dashboard import build_dashboard_shop, dashboard_app

pytestmark = pytest.mark.browser

CHART = ".chart .main-svg"
TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Served:
    url: str
    project: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The service with the dashboard over a copy of the shop, on a local port that uvicorn
    binds itself (port 0: the system picks a free one, so no other process can race for it)."""
    import uvicorn

    target = tmp_path_factory.mktemp("dashboard_browser") / "project"
    shutil.copytree(build_dashboard_shop(tmp_path_factory), target)
    server = uvicorn.Server(uvicorn.Config(
        dashboard_app(target, warm_on_start=False), host="127.0.0.1", port=0,
        log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, name="dashboard-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(url=f"http://127.0.0.1:{port}", project=target)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def signed_in(served: Served, **size: int) -> Iterator[BrowserPage]:
    """A fresh Chromium page signed in to the dashboard with a read key."""
    with chromium_page(**size) as browser:
        page = browser.page
        # The helper refuses every request but local files; this server is local too.
        page.route(f"{served.url}/**", lambda route: route.continue_())
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{served.url}/model")
        page.wait_for_url(re.compile(r"/login\?next="))
        page.fill("#api-key", READ)
        page.click("#sign-in button[type=submit]")
        page.wait_for_url(f"{served.url}/model")
        yield browser


# No page.wait_for_function: when its predicate is not true at once it polls by evaluating a
# string, which the dashboard's Content-Security-Policy (no 'unsafe-eval') refuses; so it failed
# only when the page was slow, on a loaded machine. Locators and attribute reads poll without it.
def _charts_drawn(page, expected: int) -> None:
    page.locator(CHART).nth(expected - 1).wait_for(state="attached")


def _wait_for_budget(page, wanted: float) -> None:
    """Until the preview says it was computed for ``wanted`` (bounded by the page timeout)."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        shown = page.get_attribute("#preview-saves", "data-budget")
        if shown is not None and float(shown) == wanted:
            return
        assert time.monotonic() < deadline, f"the preview never showed budget {wanted}"
        page.wait_for_timeout(50)


def test_every_page_loads_and_draws_its_charts(served: Served) -> None:
    with signed_in(served) as browser:
        page = browser.page
        top = page.locator("a.customer-link")
        for path, name, charts in (("/", "overview", 2), ("/customers", "customers", 0),
                                   ("/model", "model", 4), ("/campaigns", "campaigns", 1)):
            page.goto(served.url + path)
            page.wait_for_load_state("networkidle")
            if charts:
                _charts_drawn(page, charts)
            if path == "/campaigns":
                page.wait_for_selector("#planner[data-status=ready]", timeout=180_000)
                _charts_drawn(page, 1)
            assert page.locator("h1").inner_text()
            page.screenshot(path=artifact_path(f"dashboard-{name}.png"), full_page=True)
        page.goto(served.url + "/customers")
        first = top.first.inner_text()
        page.goto(f"{served.url}/customers/{first}")
        _charts_drawn(page, 2)  # risk over time and the timeline
        page.screenshot(path=artifact_path("dashboard-customer.png"), full_page=True)
        assert browser.problems() == []


def test_a_click_in_the_at_risk_table_opens_the_customer(served: Served) -> None:
    with signed_in(served) as browser:
        page = browser.page
        page.goto(f"{served.url}/customers?tier=high")
        row = page.locator("tr.row-link").nth(2)
        user = row.locator("a.customer-link").inner_text()
        row.locator("td.reasons").click()  # the row, not the link in it
        page.wait_for_url(re.compile(r"/customers/" + re.escape(user) + r"$"))
        assert user in page.locator("h1").inner_text()
        page.wait_for_selector("#reasons li")
        _charts_drawn(page, 2)
        # Back on the table, sorting by id puts the smallest id first.
        page.goto(f"{served.url}/customers")
        page.click("a.sort[data-sort=user_id]")
        page.wait_for_url(re.compile(r"sort=user_id"))
        ids = page.locator("a.customer-link").all_inner_texts()
        assert ids == sorted(ids)
        assert browser.problems() == []


def test_the_language_switch_shows_chinese(served: Served) -> None:
    with signed_in(served) as browser:
        page = browser.page
        page.goto(served.url + "/")
        _charts_drawn(page, 2)
        assert page.locator("nav a.active").inner_text() == "Overview"
        page.click("#lang-switch")
        page.wait_for_url(re.compile(r"lang=zh"))
        _charts_drawn(page, 2)
        assert page.locator("html").get_attribute("lang") == "zh-Hans"
        assert page.locator("nav a.active").inner_text() == "总览"
        assert "高风险客户" in page.locator("nav").inner_text()
        assert page.locator(".main-svg .gtitle").first.text_content() == "预测流失概率"
        # Links keep the language.
        page.click("nav a[href^='/customers']")
        page.wait_for_url(re.compile(r"/customers\?lang=zh"))
        assert "风险等级" in page.locator("table.at-risk thead").inner_text()
        page.screenshot(path=artifact_path("dashboard-customers-zh.png"), full_page=True)
        page.click("#lang-switch")
        page.wait_for_url(re.compile(r"/customers$"))
        assert "Risk tier" in page.locator("table.at-risk thead").inner_text()
        assert browser.problems() == []


def test_the_budget_slider_updates_expected_saves(served: Served) -> None:
    with signed_in(served) as browser:
        page = browser.page
        page.goto(served.url + "/campaigns")
        page.wait_for_selector("#planner[data-status=ready]", timeout=180_000)
        page.wait_for_selector("#preview-saves[data-budget]", state="attached",
                               timeout=3 * TIMEOUT_MS)  # the first preview plans on a busy CI box
        top = float(page.get_attribute("#budget", "max"))

        def slide_to(value: float) -> str:
            page.eval_on_selector(
                "#budget", "(el, v) => { el.value = String(v); "
                           "el.dispatchEvent(new Event('input', {bubbles: true})); }", value)
            wanted = page.eval_on_selector("#budget", "el => Number(el.value)")
            _wait_for_budget(page, wanted)
            return page.inner_text("#preview-saves")

        small = slide_to(top * 0.05)
        large = slide_to(top)
        assert float(large.replace(",", "")) > float(small.replace(",", ""))
        assert page.locator("#preview-actions tbody tr").count() >= 1
        assert page.inner_text("#budget-value") != ""
        page.screenshot(path=artifact_path("dashboard-planner.png"), full_page=True)
        assert browser.problems() == []


def test_the_campaigns_page_draws_the_learning_curve_in_both_languages(served: Served) -> None:
    with signed_in(served) as browser:
        page = browser.page
        for lang, title in (("en", "Learning curve: incremental retention per campaign"),
                            ("zh", "学习曲线：各活动的增量留存率")):
            page.goto(served.url + "/campaigns" + ("?lang=zh" if lang == "zh" else ""))
            page.locator("#chart-learning .main-svg").first.wait_for(state="attached")
            assert page.locator("#chart-learning .gtitle").first.text_content() == title
            page.locator("#learning .chart .main-svg").nth(1).wait_for(state="attached")
            assert page.locator("#learning table.learning-curve tbody tr").count() >= 1
            page.screenshot(path=artifact_path(f"dashboard-learning-{lang}.png"),
                            full_page=True)
        assert browser.problems() == []
