"""Headless Chromium for browser tests (the report, the dashboard), shared by every test folder.

Import it as ``from browser import chromium_page``: pytest puts ``tests/`` on ``sys.path`` because
``tests/conftest.py`` lives there (the default "prepend" import mode).

The browser is Debian's ``/usr/bin/chromium`` driven by the Python ``playwright`` package; no
browser is downloaded. When either is missing the test is skipped with a message saying how to get
it, unless ``CHURNGUARD_REQUIRE_BROWSER=1`` (set in CI), where a missing browser fails the test so
that a green run always means the pages really rendered.

Every page is opened in a fresh profile, with network access other than ``file:``, ``data:`` and
``about:`` URLs refused and recorded, so a test can assert that a page needs nothing from outside.

Example::

    with chromium_page() as browser:
        browser.page.goto(path.as_uri())
        assert browser.problems() == []
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_ENV = "CHURNGUARD_REQUIRE_BROWSER"
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync")
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:")


@dataclass
class BrowserPage:
    """A playwright page and what went wrong on it so far."""

    page: object  # playwright.sync_api.Page, typed loosely: importing this needs no playwright
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    external_requests: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and refused network requests, in one list."""
        return ([f"console error: {m}" for m in self.console_errors]
                + [f"page error: {m}" for m in self.page_errors]
                + [f"external request: {u}" for u in self.external_requests])


def browser_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") == "1"


def _unavailable(reason: str) -> None:
    if browser_required():
        pytest.fail(f"{reason}; {REQUIRE_ENV}=1 forbids skipping browser tests", pytrace=False)
    pytest.skip(reason)


@contextmanager
def chromium_page(*, width: int = 1280, height: int = 900) -> Iterator[BrowserPage]:
    """A fresh headless Chromium page that records errors and refuses outside network access."""
    if not CHROMIUM.exists():
        _unavailable(f"Chromium not found at {CHROMIUM}; install Debian's chromium to run "
                     "browser tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed; run "
                     "`.venv/bin/pip install -e '.[test]'` to run browser tests")
    with tempfile.TemporaryDirectory(prefix="churnguard-chromium-") as profile, \
            sync_playwright() as p:
        # launch() refuses --user-data-dir; a persistent context takes the fresh profile instead.
        context = p.chromium.launch_persistent_context(
            user_data_dir=profile, executable_path=str(CHROMIUM), headless=True,
            args=list(CHROMIUM_ARGS), viewport={"width": width, "height": height})
        try:
            page = context.pages[0] if context.pages else context.new_page()
            result = BrowserPage(page=page)
            page.on("console", lambda m: m.type == "error" and result.console_errors.append(
                f"{m.text} ({m.location.get('url', '')}:{m.location.get('lineNumber', '')})"))
            page.on("pageerror", lambda e: result.page_errors.append(str(e)))

            def refuse_external(route) -> None:
                url = route.request.url
                if url.startswith(LOCAL_SCHEMES):
                    route.continue_()
                else:
                    result.external_requests.append(url)
                    route.abort()

            context.route("**/*", refuse_external)
            yield result
        finally:
            context.close()


ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def artifact_path(name: str) -> Path:
    """Where a browser test leaves a screenshot for people to look at: test-artifacts/NAME."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
