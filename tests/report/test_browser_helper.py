"""tests/browser.py: skips or fails as told when Chromium is missing, and does catch errors."""

from __future__ import annotations

from pathlib import Path

import browser
import pytest
from browser import chromium_page


def test_missing_chromium_skips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.delenv(browser.REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="Chromium not found at .*no-chromium; "
                                                     "install Debian's chromium"):
        with chromium_page():
            pass


def test_missing_chromium_fails_when_required(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "no-chromium")
    monkeypatch.setenv(browser.REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception,
                       match="CHURNGUARD_REQUIRE_BROWSER=1 forbids skipping browser tests"):
        with chromium_page():
            pass


@pytest.mark.browser
def test_errors_and_external_requests_are_caught(tmp_path: Path) -> None:
    page_file = tmp_path / "bad.html"
    page_file.write_text(
        '<!DOCTYPE html><meta charset="utf-8"><img src="https://example.com/pixel.png">'
        '<script>console.error("boom"); throw new Error("bad page");</script>', encoding="utf-8")
    with chromium_page() as b:
        b.page.goto(page_file.as_uri(), wait_until="load")
        problems = b.problems()
    assert "external request: https://example.com/pixel.png" in problems
    assert any(p.startswith("console error: boom") for p in problems)
    assert any(p.startswith("page error: ") and "bad page" in p for p in problems)
