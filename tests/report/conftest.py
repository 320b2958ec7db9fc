"""Fixtures of the report tests and the ``browser`` marker."""

from __future__ import annotations

import pytest
from report_fixtures import synthetic_report_data

from churnguard.report import ReportData


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: opens pages in headless Chromium "
                                       "(skipped without /usr/bin/chromium)")


@pytest.fixture(scope="session")
def report_data() -> ReportData:
    return synthetic_report_data()
