"""The surge alerts on a small simulated shop with an injected complaint surge, through every
face: ``churnguard voice --json`` and ``--audience``, ``GET /v1/voice``, the dashboard's voice
page and the report's voice section.

The shop: 1,200 customers over 120 days, a delivery surge of 8x its baseline for the week of
Monday 2025-04-14 (the codebook splits delivery complaints over several clusters of about one
negative mention a day each, so they are tested per week; 8x makes such a week stand out).
Each call reads every text through the encoder and fits the sentiment model: tens of seconds,
so the module is slow.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from churnguard.cli import main
from churnguard.ingest import ingest_files
from churnguard.project import Project, init_project
from churnguard.report import render_report
from churnguard.reporting import build_report_data
from churnguard.service import create_app
from churnguard.simulate import Surge, simulate

from service.helpers import READ, error, headers, settings

pytestmark = pytest.mark.slow

SURGE_WEEK = "2025-04-14"
HIGH = {f"u{i:07d}" for i in range(0, 1200, 3)}  # a third of the customers scored high


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """(project folder, the simulator's truth of each text) with a stored scoring run."""
    base = tmp_path_factory.mktemp("voice_shop")
    sim = simulate(n_users=1200, days=120, seed=3, out_dir=base / "sim",
                   surge=Surge(topic="delivery", start=dt.date(2025, 4, 14), size=8.0, days=7))
    project, _ = init_project(base / "project")
    with project.open_store() as store:
        for kind in ("users", "events"):
            ingest_files(store, kind=kind, files=[sim.paths[kind]])
        store.con.execute(
            "INSERT INTO scores SELECT user_id, TIMESTAMP '2025-04-01', 'v-test', "
            "CASE WHEN user_id IN (SELECT unnest(?)) THEN 0.8 ELSE 0.1 END, "
            "CASE WHEN user_id IN (SELECT unnest(?)) THEN 'high' ELSE 'low' END, "
            "NULL, NULL, NULL, 'en', TIMESTAMP '2025-04-01' FROM users",
            [sorted(HIGH), sorted(HIGH)])
    truth = pd.read_parquet(base / "sim" / "truth" / "texts.parquet")
    return project.root, truth


def _voice_json(root: Path, capsys, *args: str) -> dict:
    code = main(["voice", "--json", "--project", str(root), *args])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)


def test_cli_json_finds_the_surge_week_of_delivery_complaints_and_nothing_else(shop,
                                                                            capsys) -> None:
    root, truth = shop
    doc = _voice_json(root, capsys, "--days", "21")
    assert doc["as_of"] == "2025-05-01" and doc["start"] == "2025-04-10"
    alerts = doc["alerts"]
    assert alerts, "the surge week was not found"
    assert {(a["period"], a["start"], a["end"]) for a in alerts} == {
        ("week", SURGE_WEEK, "2025-04-20")}
    # The texts behind the alerts are delivery complaints (the simulator's truth).
    by_user = truth[(truth["ts"].dt.tz_convert("UTC").dt.strftime("%Y-%m-%d")
                     .between(SURGE_WEEK, "2025-04-20"))]
    authors = {c["user_id"] for a in alerts for c in a["customers"]}
    share = (by_user[by_user["user_id"].isin(authors)]["topic"] == "delivery").mean()
    assert share >= 0.8
    for a in alerts:
        assert a["count"] > a["expected"] and a["q_value"] <= doc["settings"]["alert_fdr"]
        assert a["alert_id"] == f"w20250414-{'+'.join(a['keys'])}"
        assert a["authors"] == len(a["customers"]) > 0
        assert a["at_risk"] == sum(c["user_id"] in HIGH for c in a["customers"])
        assert all(c["at_risk"] == (c["risk_tier"] == "high") for c in a["customers"])
        assert a["customers"][0]["at_risk"] or a["at_risk"] == 0  # at-risk authors first
    assert sum(t["alerts"] for t in doc["topics"]) == len(alerts)
    assert {t["tested"] for t in doc["topics"]} <= {"day", "week", None}


def test_audience_writes_an_alerts_at_risk_authors(shop, capsys, tmp_path) -> None:
    root, _ = shop
    doc = _voice_json(root, capsys, "--days", "21")
    alert = max(doc["alerts"], key=lambda a: a["at_risk"])
    out = tmp_path / "audience.csv"
    code = main(["voice", "--audience", alert["alert_id"], "--out", str(out),
                 "--project", str(root)])
    assert code == 0
    frame = pd.read_csv(out)
    assert sorted(frame["user_id"]) == sorted(
        c["user_id"] for c in alert["customers"] if c["at_risk"])
    assert set(frame["risk_tier"]) == {"high"} and (frame["alert_id"] == alert["alert_id"]).all()


def test_audience_errors_are_bad_input(shop, capsys, tmp_path) -> None:
    root, _ = shop
    assert main(["voice", "--audience", "nonsense", "--out", str(tmp_path / "a.csv"),
                 "--project", str(root)]) == 2
    assert "is not an alert id" in capsys.readouterr().err
    assert main(["voice", "--audience", "d20250101-en01", "--out", str(tmp_path / "a.csv"),
                 "--project", str(root)]) == 2
    assert "no alert d20250101-en01" in capsys.readouterr().err
    assert main(["voice", "--audience", "w20250414-en01", "--project", str(root)]) == 2


def test_get_v1_voice_and_the_dashboard_page(shop, capsys) -> None:
    root, _ = shop
    cli_doc = _voice_json(root, capsys)
    with TestClient(create_app(Project.load(root), settings(warm_on_start=False)),
                    raise_server_exceptions=False) as client:
        answer = client.get("/v1/voice", headers=headers(READ))
        assert answer.status_code == 200
        assert answer.json() == cli_doc
        assert error(client.get("/v1/voice")) == (401, "missing_api_key")
        assert error(client.get("/v1/voice?days=0", headers=headers(READ))) == (
            422, "invalid_request")
        assert client.post("/dashboard/session", headers=headers(READ)).status_code == 200
        page = client.get("/voice")
        assert page.status_code == 200
        for a in cli_doc["alerts"]:
            assert a["alert_id"] in page.text
            for c in a["customers"]:
                assert f'href="/customers/{c["user_id"]}' in page.text


def test_report_has_a_voice_section(shop, tmp_path) -> None:
    root, _ = shop
    project = Project.load(root)
    with project.open_store(read_only=True) as store:
        data = build_report_data(store, title="t", definition=project.config.churn,
                                 config=project.config)
    assert data.voice["alerts"]
    html = render_report(data, tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'id="voice"' in html and "Voice of the customer" in html
    assert data.voice["alerts"][0]["alert_id"] in html
