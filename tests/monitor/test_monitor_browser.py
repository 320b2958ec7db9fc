"""The Monitor page in a real headless Chromium: it loads signed in with no console error and no
request leaving the machine, shows every input's check, and switches to Chinese."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser import chromium_page
from churnguard.project import Project
from churnguard.service import create_app
from service.helpers import READ, serving_in_thread, settings

pytestmark = pytest.mark.browser
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def served(monitor_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    target = tmp_path_factory.mktemp("monitor_browser") / "project"
    shutil.copytree(monitor_project, target)
    app = create_app(Project.load(target), settings(warm_on_start=False))
    with serving_in_thread(app, "monitor-uvicorn") as url:
        yield url


def test_the_monitor_page_loads_and_switches_language(served: str) -> None:
    with chromium_page() as browser:
        page = browser.page
        page.route(f"{served}/**", lambda route: route.continue_())
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{served}/monitor")
        page.wait_for_url(re.compile(r"/login\?next="))
        page.fill("#api-key", READ)
        page.click("#sign-in button[type=submit]")
        page.wait_for_url(f"{served}/monitor")
        assert page.locator("nav a.active").inner_text() == "Monitor"
        assert page.locator("table.feature-drift tbody tr").count() > 20
        assert page.locator("table.score-drift tbody tr").count() == 1
        assert "concept drift" in page.locator("#estimate-limit").inner_text()
        assert page.locator("table.realized tbody tr").count() == 1
        page.click("#lang-switch")
        page.wait_for_url(re.compile(r"/monitor\?lang=zh"))
        assert page.locator("nav a.active").inner_text() == "监控"
        assert "概念漂移" in page.locator("#estimate-limit").inner_text()
        assert browser.problems() == []
