"""Shared fixtures. Keep each one small and named for what it gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from churnguard.store import Store


@pytest.fixture
def store(tmp_path: Path):
    """A fresh file-backed store in a temporary folder."""
    with Store.open(tmp_path / "churnguard.duckdb", threads=2) as s:
        yield s
