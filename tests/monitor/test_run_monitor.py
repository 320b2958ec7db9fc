"""run_monitor over a store, and its three faces: ``churnguard monitor``, ``GET /v1/monitor`` and
the dashboard's Monitor page."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from churnguard.cli import main
from churnguard.config import MonitorConfig
from churnguard.monitor import LIMIT, SCORE, run_monitor
from churnguard.project import Project
from churnguard.registry import CHAMPION, alias_version, get_model_version
from churnguard.service import create_app

from monitor.conftest import SCORED_AT
from service.helpers import READ, headers, settings


@pytest.fixture(scope="module")
def report(monitor_project: Path):  # noqa: ANN201
    project = Project.load(monitor_project)
    with project.open_store(read_only=True) as store:
        version = get_model_version(store, alias_version(store, CHAMPION))
        found = run_monitor(store, config=project.config.monitor,
                            definition=project.config.churn)
    return found, version


def test_the_default_reference_is_the_population_a_week_earlier(report) -> None:  # noqa: ANN001
    found, _ = report
    assert found.reference.source == "lag"
    assert [found.as_of - c for c in found.reference.cutoffs] == [dt.timedelta(days=7)]


def test_the_report_checks_every_input_of_the_champion_and_its_scores(
        monitor_project: Path) -> None:
    project = Project.load(monitor_project)
    config = MonitorConfig(**{**project.config.monitor.model_dump(), "reference": "champion"})
    with project.open_store(read_only=True) as store:
        version = get_model_version(store, alias_version(store, CHAMPION))
        found = run_monitor(store, config=config, definition=project.config.churn)
    assert found.reference.source == "champion"
    window = version.data_window
    assert [f"{c:%Y-%m-%d}" for c in found.reference.cutoffs] == sorted(
        [*window["train_cutoffs"], window["validation_cutoff"]])
    assert {f.name for f in found.features} == set(version.features)
    assert found.score_drift is not None and found.score_drift.name == SCORE
    assert found.alarms == [f.name for f in [*found.features, found.score_drift] if f.alarm]
    assert found.drifted == bool(found.alarms)
    assert found.estimate is not None and 0 < found.estimate.churn_rate < 1
    assert found.estimate.limit == LIMIT
    assert [c.as_of for c in found.realized] == [SCORED_AT]
    document = json.loads(json.dumps(found.to_dict(), allow_nan=False))
    assert document["batch_size"] == found.batch_size > 0
    assert "concept drift" in document["estimate_limit"]


def test_without_a_champion_the_reference_is_the_population_one_lag_earlier(
        project_copy: Project) -> None:
    with project_copy.open_store() as store:
        store.con.execute("DELETE FROM model_aliases")
        found = run_monitor(store, config=MonitorConfig(reference_lag_days=60, bootstrap=100,
                                                        ignore=("tenure_days",)))
    assert found.reference.source == "lag"
    assert "tenure_days" not in {f.name for f in found.features}
    assert (found.as_of - found.reference.cutoffs[0]).days == 60
    assert found.score_drift is None and found.estimate is None
    assert len(found.features) > 20 and found.notes


def test_a_lag_reference_can_be_chosen_with_a_champion(monitor_project: Path) -> None:
    project = Project.load(monitor_project)
    with project.open_store(read_only=True) as store:
        found = run_monitor(store, config=MonitorConfig(reference="lag", reference_lag_days=7,
                                                        bootstrap=100))
    assert found.reference.source == "lag"
    assert (found.as_of - found.reference.cutoffs[0]).days == 7
    assert found.score_drift is not None and found.estimate is not None


def test_changes_are_compared_with_the_same_weeks_a_year_earlier_when_the_store_has_them(
        monitor_project: Path) -> None:
    """The shop's events begin 2025-01-01 and its scoring cutoff is 2026-05-16: the same weeks a
    year earlier (2025-05-09 to 2025-05-16) have 128 days of history before them. With the
    default 365 days required there is no seasonal check and a note says why; with 90 the
    check compares with them and says so."""
    project = Project.load(monitor_project)
    with project.open_store(read_only=True) as store:
        plain = run_monitor(store, config=MonitorConfig(bootstrap=100))
        seasonal = run_monitor(store, config=MonitorConfig(bootstrap=100,
                                                           season_history_days=90))
        off = run_monitor(store, config=MonitorConfig(bootstrap=100, season="off",
                                                      season_history_days=90))
    assert plain.reference.season is None
    assert any("season_history_days" in note for note in plain.notes)
    window = seasonal.reference.season
    assert window is not None and not any("seasonal" in note for note in seasonal.notes)
    assert [f"{c:%Y-%m-%d}" for c in window.reference_cutoffs] == ["2025-05-09"]
    assert f"{window.batch_cutoff:%Y-%m-%d}" == "2025-05-16" and seasonal.as_of.year == 2026
    assert window.reference_rows > 100 and window.batch_rows > 100
    assert "a year earlier" in seasonal.reference.description
    assert json.loads(json.dumps(seasonal.to_dict()))["reference"]["season"]["batch_rows"] \
        == window.batch_rows
    # The same checks, answered differently: the seasonal p-values are not the plain ones.
    assert [f.name for f in seasonal.features] == [f.name for f in plain.features]
    assert [f.p_value for f in seasonal.features] != [f.p_value for f in plain.features]
    assert off.reference.season is None and not off.notes
    assert [f.p_value for f in off.features] == [f.p_value for f in plain.features]


def test_the_command_prints_the_report_as_json_and_as_tables(
        project_copy: Project, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["monitor", "--project", str(project_copy.root), "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    with project_copy.open_store(read_only=True) as store:
        direct = run_monitor(store, config=project_copy.config.monitor,
                             definition=project_copy.config.churn).to_dict()
    assert document == json.loads(json.dumps(direct))
    assert main(["monitor", "--project", str(project_copy.root)]) == 0
    out = capsys.readouterr()
    assert "Limit:" in out.err and "concept drift" in out.err
    assert "drift alarm(s)" in out.out


def test_a_date_before_the_data_is_bad_input(project_copy: Project,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Nobody is in the population before the first event: exit code 2 and the reason."""
    assert main(["monitor", "--project", str(project_copy.root), "--as-of", "2020-01-01"]) == 2
    assert "nobody is in the" in capsys.readouterr().err


@pytest.fixture(scope="module")
def client(monitor_project: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    import shutil

    root = tmp_path_factory.mktemp("monitor_service") / "project"
    shutil.copytree(monitor_project, root)
    with TestClient(create_app(Project.load(root), settings(warm_on_start=False)),
                    raise_server_exceptions=False) as client:
        # The dashboard's pages read with a session opened by any API key.
        assert client.post("/dashboard/session", headers=headers(READ)).status_code == 200
        yield client


def test_the_endpoint_answers_the_same_document_for_a_read_key(client: TestClient,
                                                                report) -> None:  # noqa: ANN001
    answer = client.get("/v1/monitor", headers=headers(READ))
    assert answer.status_code == 200
    expected = json.loads(json.dumps(report[0].to_dict()))
    assert answer.json() == expected
    assert client.get("/v1/monitor", headers=headers(READ)).json() == expected  # from the cache
    assert client.get("/v1/monitor").status_code == 401
    assert client.get("/v1/monitor", params={"as_of": "2020-01-01"},
                      headers=headers(READ)).json()["error"]["code"] == "cannot_monitor"


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_dashboard_page_shows_drift_the_estimate_its_limit_and_realized_figures(
        client: TestClient, report, lang: str) -> None:  # noqa: ANN001
    found = report[0]
    page = client.get("/monitor", params={"lang": lang} if lang == "zh" else None)
    assert page.status_code == 200
    html = page.text
    for f in found.features:
        assert f'data-feature="{f.name}"' in html
    assert f'<span id="alarm-count">{len(found.alarms)}</span>' in html
    assert 'id="estimate-limit"' in html
    assert ("concept drift" if lang == "en" else "概念漂移") in html
    assert f"{SCORED_AT:%Y-%m-%d}" in html and 'class="realized"' in html
    assert 'href="/monitor' in html  # in the navigation


def test_the_page_says_why_there_is_no_report_in_a_project_without_events(
        tmp_path: Path) -> None:
    from churnguard.project import init_project

    project, _ = init_project(tmp_path / "empty")
    with TestClient(create_app(project, settings(warm_on_start=False)),
                    raise_server_exceptions=False) as client:
        assert client.post("/dashboard/session", headers=headers(READ)).status_code == 200
        page = client.get("/monitor")
        assert page.status_code == 200
        assert "No monitoring report" in page.text and "no events" in page.text
        answer = client.get("/v1/monitor", headers=headers(READ))
        assert answer.status_code == 409 and answer.json()["error"]["code"] == "cannot_monitor"
