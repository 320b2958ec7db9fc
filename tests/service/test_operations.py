"""The operating record in the service: GET /v1/cycles, GET /v1/models/decisions and the
dashboard's Operations page, over a shop where two real cycles ran (one ingested a file and
refused another, one failed mid-ingest) and the gate recorded two decisions.

A hostile string travels where the store keeps text a person or a file chose: a refused file's
name (so its error), a failed step's error and a rollback's reason.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from browser import chromium_page
from churnguard.operate import OneStore, cycle, run_cycle
from churnguard.project import Project
from churnguard.registry import (
    CHAMPION,
    GateDecision,
    alias_version,
    list_models,
    record_decision,
    rollback,
    set_alias,
)
from churnguard.service import create_app
from churnguard.service.schemas import CyclesOut, GateDecisionsOut

from service.helpers import ADMIN, READ, error, headers, serving_in_thread, settings

HOSTILE = '<script>window.__pwned=1</script>"><img src=x onerror=alert(1)>'
# A file name cannot hold '/', so the refused file's name carries the part without one.
HOSTILE_NAME = "<img src=x onerror=alert(1)>.csv"
SCHEDULE = "0 6 * * mon"
CLOCK = dt.datetime(2026, 1, 1, 12, 0)  # a Thursday: the next fire is Monday 5 January, 06:00


def _write_events(path: Path, user: str, ts: dt.datetime, kinds: tuple[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("user_id,ts,type\n" + "".join(f"{user},{ts:%Y-%m-%d %H:%M:%S},{kind}\n"
                                                   for kind in kinds), encoding="utf-8")


def _fail_in_ingest(point: str) -> None:
    if point == "cycle:ingest:before-commit":
        raise RuntimeError(HOSTILE)


@pytest.fixture(scope="module")
def ops_project(template_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shop with [operate] schedule, two cycles and two gate decisions."""
    root = tmp_path_factory.mktemp("operations") / "project"
    shutil.copytree(template_project, root)
    config = root / "churnguard.toml"
    config.write_text(config.read_text().split("\n[operate]\n")[0]
                      + f'\n[operate]\nschedule = "{SCHEDULE}"\n')
    project = Project.load(root)
    with project.open_store() as store:
        user, newest = store.con.execute(
            "SELECT arg_max(user_id, ts), max(ts) FROM events").fetchall()[0]
    _write_events(root / "inbox" / "events" / "late.csv", user, newest, ("visit", "search"))
    (root / "inbox" / HOSTILE_NAME).write_text("a,b\n1,2\n", encoding="utf-8")
    with project.open_store() as store:
        first = run_cycle(OneStore(store), project=project, steps=["ingest", "score"])
    assert first.status == "done", first.error
    # The second cycle dies inside its ingest transaction: its file stays in the inbox.
    _write_events(root / "inbox" / "events" / "later.csv", user, newest, ("visit", "login"))
    cycle.FAULT_HOOK = _fail_in_ingest
    try:
        with project.open_store() as store:
            second = run_cycle(OneStore(store), project=project, steps=["ingest"])
    finally:
        cycle.FAULT_HOOK = None
    assert second.status == "failed"
    with project.open_store() as store:
        champion = alias_version(store, CHAMPION)
        other = next(m.version for m in list_models(store) if m.version != champion)
        record_decision(store, GateDecision(
            decision_id="decision-kept-1", decided_at=dt.datetime(2026, 1, 2, 6, 0),
            trigger="challenge", outcome="kept", champion_version=champion,
            challenger_version=other, champion_after=champion,
            reason="the lower bound of ΔAUC -0.0310 is below -0.005",
            cohort_cutoff=dt.datetime(2025, 9, 1), n_customers=288, n_churned=61,
            champion_auc=0.8123, challenger_auc=0.8, delta_auc=-0.0123, delta_auc_lower=-0.031,
            delta_auc_upper=0.004, champion_ece=0.0211, challenger_ece=0.0287, tolerance=0.005,
            max_ece=0.03, confidence=0.95, resamples=500, seed=0,
            evidence={"baseline_auc": float("nan"), "windows": [1, 2]}))
        set_alias(store, CHAMPION, other, reason="promoted by hand")
        rollback(store, reason=HOSTILE)
    return root


@pytest.fixture(scope="module")
def ops(ops_project: Path) -> Iterator[TestClient]:
    app = create_app(Project.load(ops_project), settings(warm_on_start=False),
                     cycle_clock=lambda: CLOCK)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


# -- GET /v1/cycles -------------------------------------------------------------------------------
def test_cycles_need_a_read_key(ops: TestClient) -> None:
    assert error(ops.get("/v1/cycles")) == (401, "missing_api_key")
    assert error(ops.get("/v1/cycles", headers=headers("x" * 24))) == (401, "invalid_api_key")
    for key in (READ, ADMIN):
        assert ops.get("/v1/cycles", headers=headers(key)).status_code == 200


def test_cycles_answer_the_record_newest_first_with_each_step(ops: TestClient) -> None:
    response = ops.get("/v1/cycles", headers=headers(READ))
    body = CyclesOut.model_validate(response.json())  # no field outside the schema
    failed, done = body.cycles
    assert (failed.status, done.status) == ("failed", "done")
    assert failed.started_at >= done.started_at and failed.started_at.tzinfo is not None

    assert [s.step for s in done.steps] == ["ingest", "score"]
    ingest, score = done.steps
    assert ingest.status == "done" and ingest.decision is not None
    assert ingest.decision.startswith("ingested 1 file(s), 2 rows added") and \
        "refused 1" in ingest.decision
    assert [r["file"] for r in ingest.figures["rejected"]] == [HOSTILE_NAME]
    assert HOSTILE_NAME in ingest.figures["rejected"][0]["error"]
    assert score.status == "done" and score.finished_at is not None
    assert len(score.fingerprint or "") == 64

    (step,) = failed.steps
    assert step.status == "failed" and step.error == f"RuntimeError: {HOSTILE}"
    assert failed.error == f"step ingest: {HOSTILE}"
    # The schedule the service runs, by its clock.
    assert body.schedule is not None and body.schedule.expression == SCHEDULE
    assert body.schedule.running and body.schedule.last_error is None
    assert response.json()["schedule"]["next_fire"] == "2026-01-05T06:00:00Z"


def test_cycles_limit(ops: TestClient) -> None:
    (only,) = ops.get("/v1/cycles", params={"limit": 1}, headers=headers(READ)).json()["cycles"]
    assert only["status"] == "failed"
    for bad in (0, 101, "x"):
        assert error(ops.get("/v1/cycles", params={"limit": bad}, headers=headers(READ))) == \
            (422, "invalid_request")


def test_no_cycles_and_no_schedule(make_client) -> None:  # noqa: ANN001
    client = make_client(warm_on_start=False)
    assert client.get("/v1/cycles", headers=headers(READ)).json() == \
        {"cycles": [], "schedule": None}
    assert client.get("/v1/models/decisions", headers=headers(READ)).json()["decisions"] == []


# -- GET /v1/models/decisions ---------------------------------------------------------------------
def test_decisions_need_a_read_key(ops: TestClient) -> None:
    assert error(ops.get("/v1/models/decisions")) == (401, "missing_api_key")
    assert error(ops.get("/v1/models/decisions", headers=headers("x" * 24))) == \
        (401, "invalid_api_key")


def test_decisions_answer_the_gate_with_its_evidence(ops: TestClient) -> None:
    response = ops.get("/v1/models/decisions", headers=headers(READ))
    assert response.status_code == 200
    body = GateDecisionsOut.model_validate(response.json())
    kept, rolled = body.decisions  # oldest first
    assert kept.outcome == "kept" and kept.champion_after == kept.champion_version
    assert (kept.delta_auc, kept.delta_auc_lower, kept.champion_ece, kept.challenger_ece) == \
        (-0.0123, -0.031, 0.0211, 0.0287)
    assert kept.n_customers == 288 and kept.confidence == 0.95
    assert response.json()["decisions"][0]["cohort_cutoff"] == "2025-09-01T00:00:00Z"
    # NaN is not JSON: a figure the gate could not measure is null.
    assert kept.evidence == {"baseline_auc": None, "windows": [1, 2]}
    assert rolled.outcome == "rolled-back" and rolled.trigger == "manual"
    assert rolled.reason == HOSTILE
    assert body.champion == rolled.champion_after == kept.champion_version


def test_both_endpoints_are_in_the_openapi_document(ops: TestClient) -> None:
    paths = ops.get("/openapi.json").json()["paths"]
    assert set(paths["/v1/cycles"]) == {"get"} and set(paths["/v1/models/decisions"]) == {"get"}


# -- the Operations page --------------------------------------------------------------------------
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_operations_page_shows_cycles_decisions_schedule_and_inbox(ops: TestClient,
                                                                        lang: str) -> None:
    ops.post("/dashboard/session", headers=headers(READ))
    response = ops.get("/operations", params={"lang": lang} if lang == "zh" else {})
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    text = response.text
    assert "<script>" not in text  # no inline script: only data blocks
    cycles = ops.get("/v1/cycles", headers=headers(READ)).json()["cycles"]
    # The step decisions as recorded (English in both languages).
    for step in cycles[1]["steps"]:
        assert step["decision"] in text
    # The failed step is highlighted with its error, escaped.
    assert '<tr class="failed" data-step="ingest">' in text
    assert "RuntimeError: &lt;script&gt;window.__pwned=1&lt;/script&gt;" in text
    # The decisions, newest first, with ΔAUC, its lower bound, the ECEs and the reason.
    assert text.index('data-outcome="rolled-back"') < text.index('data-outcome="kept"')
    assert "-0.0123" in text and "-0.0310" in text and "0.0211 → 0.0287" in text
    assert "the lower bound of ΔAUC -0.0310 is below -0.005" in text
    # The schedule and the inbox: the file the failed cycle left, the refused file's error.
    assert "2026-01-05 06:00" in text and SCHEDULE in text
    assert "events/later.csv" in text and '<span id="inbox-count">1</span>' in text
    assert "&lt;img src=x onerror=alert(1)&gt;.csv" in text
    assert "<script>window.__pwned" not in text and "<img src=x" not in text
    if lang == "zh":
        assert '<html lang="zh-Hans">' in text and "闸门" in text and "收件箱" in text
        assert "Newest cycles" not in text
    else:
        assert "Newest cycles" in text and "Champion and the gate&#x27;s decisions" in text
    # The navigation leads here, in the page's language.
    href = "/operations?lang=zh" if lang == "zh" else "/operations"
    assert f'<a href="{href}" aria-current="page" class="active">' in text


def test_the_operations_page_of_a_project_without_cycles(make_client) -> None:  # noqa: ANN001
    client = make_client(warm_on_start=False)
    client.post("/dashboard/session", headers=headers(READ))
    text = client.get("/operations").text
    assert "No cycle has run yet" in text and "No schedule" in text
    assert "The gate has not decided anything yet" in text and "No file waiting." in text


def test_nan_is_never_sent() -> None:
    # The check the endpoints rely on (JSONResponse refuses NaN with a 500).
    from churnguard.service.schemas import GateDecisionOut

    fields = {name: None for name in GateDecisionOut.model_fields}
    fields.update(decision_id="d", decided_at=dt.datetime(2026, 1, 1), trigger="manual",
                  outcome="kept", reason="r", evidence={"x": [math.inf]})
    assert GateDecisionOut(**fields).evidence == {"x": [None]}


# -- in a real browser ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(ops_project: Path) -> Iterator[str]:
    app = create_app(Project.load(ops_project), settings(warm_on_start=False),
                     cycle_clock=lambda: CLOCK)
    with serving_in_thread(app, "operations-uvicorn") as url:
        yield url


@pytest.mark.browser
def test_the_operations_page_in_chromium_runs_no_stored_script(served: str) -> None:
    """Signed in, the page loads with no console error, the hostile strings stay text (no
    script of theirs runs), the nav leads here, and the language switch shows Chinese."""
    with chromium_page() as browser:
        page = browser.page
        page.route(f"{served}/**", lambda route: route.continue_())  # this server only
        page.set_default_timeout(60_000)
        page.goto(f"{served}/operations")
        page.wait_for_url(re.compile(r"/login\?next="))
        page.fill("#api-key", READ)
        page.click("#sign-in button[type=submit]")
        page.wait_for_url(f"{served}/operations")
        assert page.locator("nav a.active").inner_text() == "Operations"
        assert page.locator("tr.failed .step-error").first.inner_text() == \
            f"RuntimeError: {HOSTILE}"
        assert page.locator("table.decisions tbody tr").count() == 2
        assert HOSTILE_NAME in page.locator("table.inbox-seen").inner_text()
        assert page.evaluate("window.__pwned") is None
        page.click("#lang-switch")
        page.wait_for_url(re.compile(r"/operations\?lang=zh"))
        assert page.locator("nav a.active").inner_text() == "运行"
        assert browser.problems() == []
