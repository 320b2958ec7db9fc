"""The assistant's panel on a customer's page, in a real headless Chromium (English and
Chinese)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from browser import artifact_path, chromium_page
from churnguard import assistant
from churnguard.project import Project
from churnguard.store import Store
from service.helpers import READ, serving_in_thread
from service.test_dashboard import build_dashboard_shop, dashboard_app

pytestmark = pytest.mark.browser
TIMEOUT_MS = 60_000


def _customer_with_help(project: Path) -> tuple[str, str, str]:
    """(customer, open ticket, recommended text): the first at-risk customer with an open ticket
    the assistant answers."""
    config = Project.load(project).config
    with Store.open(project / "churnguard.duckdb", read_only=True) as store:
        users = [r[0] for r in store.con.execute(
            "SELECT DISTINCT e.user_id FROM events e JOIN scores s USING (user_id) "
            "WHERE e.type = 'support_ticket' AND s.risk_tier = 'high' ORDER BY 1").fetchall()]
        for user in users:
            tickets = assistant.open_tickets(store, user)
            if not tickets:
                continue
            help_ = assistant.assist(store, user, tickets[0].ticket_id, config=config.assistant,
                                     actions=config.intervene.actions)
            if not help_.abstained and help_.recommendation is not None:
                return user, tickets[0].ticket_id, help_.recommendation.text
    raise AssertionError("the dashboard shop has no at-risk customer with an answered ticket")


def test_the_customer_page_shows_the_assistant_panel(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    target = tmp_path_factory.mktemp("assist_browser") / "project"
    shutil.copytree(build_dashboard_shop(tmp_path_factory), target)
    user, ticket, recommended = _customer_with_help(target)
    with serving_in_thread(dashboard_app(target, warm_on_start=False), "assist-uvicorn") as url, \
            chromium_page() as browser:
        page = browser.page
        page.route(f"{url}/**", lambda route: route.continue_())
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{url}/model")
        page.wait_for_url(re.compile(r"/login\?next="))
        page.fill("#api-key", READ)
        page.click("#sign-in button[type=submit]")
        page.wait_for_url(f"{url}/model")
        page.goto(f"{url}/customers/{user}")
        panel = page.locator("#assistant")
        assert panel.locator("h2").inner_text() == "Assistant for open tickets"
        article = panel.locator(f"article[data-ticket='{ticket}']")
        assert "at-risk customer" in article.inner_text()
        assert article.locator("table tbody tr").count() == 3
        assert article.locator("blockquote.recommended").inner_text() == recommended
        page.screenshot(path=artifact_path("dashboard-assistant.png"), full_page=True)
        page.goto(f"{url}/customers/{user}?lang=zh")
        panel = page.locator("#assistant")
        assert panel.locator("h2").inner_text() == "未解决工单的坐席助手"
        assert "相似的已解决工单" in panel.inner_text()
        assert panel.locator(f"article[data-ticket='{ticket}'] blockquote.recommended"
                             ).inner_text() == recommended  # the ticket's language, not the page's
        page.screenshot(path=artifact_path("dashboard-assistant-zh.png"), full_page=True)
        assert browser.problems() == []
