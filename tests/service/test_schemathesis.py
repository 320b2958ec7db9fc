"""Property-based run over the served OpenAPI document: no 5xx, no answer outside the schema.

Cases are generated per operation from the schema (valid inputs, then invalid ones) with
schemathesis' Python API and sent to the app in process. The quick run (default set) tries a few
cases per operation and mode; the slow run many more.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from churnguard.project import Project
from churnguard.service import create_app
from service.helpers import ADMIN, headers, settings

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def api_schema(template_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    root = tmp_path_factory.mktemp("schemathesis") / "project"
    shutil.copytree(template_project, root)
    app = create_app(Project.load(root), settings(warm_on_start=False))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    app.state.service.close()


def run_all(schema, *, examples: int) -> list[str]:  # noqa: ANN001
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @given(case=operation.as_strategy(generation_mode=mode))
            @hypothesis_settings(max_examples=examples, deadline=None, derandomize=True,
                                 suppress_health_check=list(HealthCheck), database=None)
            def check(case) -> None:  # noqa: ANN001
                # Planning a campaign fits the uplift learners: seconds, not milliseconds.
                case.call_and_validate(headers=headers(ADMIN), checks=CHECKS, timeout=120)

            try:
                check()
            except Unsatisfiable:
                continue  # no invalid input exists for an operation without parameters
            except Exception as exc:  # noqa: BLE001 - collect every operation's failure
                failures.append(f"{operation.label} ({mode.value}): {exc}"[:3000])
    return failures


def test_quick_no_server_error_and_schema_conformance(api_schema) -> None:  # noqa: ANN001
    failures = run_all(api_schema, examples=5)
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
def test_thorough_no_server_error_and_schema_conformance(api_schema) -> None:  # noqa: ANN001
    failures = run_all(api_schema, examples=100)
    assert not failures, "\n\n".join(failures)
