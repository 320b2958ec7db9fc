"""Fixtures of the hardening tests (issue 16): a bare project served over the REST API, and
helpers that prove a rejected input left the store as it was."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from churnguard.project import Project, init_project
from churnguard.service import create_app
from churnguard.store import DATA_TABLES, Store

from service.helpers import settings


def store_rows(store: Store) -> dict[str, list[tuple]]:
    """Every row of every data table, sorted: compare before/after to prove 'unchanged'."""
    return {t: sorted(store.con.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in DATA_TABLES}


@pytest.fixture
def api_project(tmp_path: Path) -> Project:
    """A new project (no model yet): enough for POST /v1/events and the timeline."""
    project, _ = init_project(tmp_path / "project")
    return project


@pytest.fixture
def api(api_project: Project) -> Iterator[TestClient]:
    """A started client over :func:`api_project`."""
    app = create_app(Project.load(api_project.root), settings())
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
