"""Issue 16, item 15: scores follow the champion's own churn definition.

A model trained with `--horizon 30d` predicts churn within 30 days; `score` used to refuse it until
churnguard.toml was edited ("fitted for a 30-day horizon, the snapshot has 90 days; refit"). Now
score, explain, plan and the service use the definition the champion was trained with, unless told
otherwise, and say so."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from churnguard.cli import main
from churnguard.project import Project
from churnguard.service import create_app
from churnguard.simulate import simulate
from service.helpers import READ, headers, settings


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("horizon")
    shop = simulate(n_users=500, days=450, seed=3, out_dir=base / "data")
    root = base / "shop"
    assert main(["init", str(root)]) == 0
    for kind in ("items", "users", "events", "campaigns"):
        assert main(["ingest", kind, str(shop.paths[kind]), "--project", str(root)]) == 0
    assert main(["train", "--horizon", "30d", "--project", str(root)]) == 0
    return root


def test_score_explain_and_plan_follow_the_champion(project: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    out_file = project / "scores.csv"
    assert main(["score", "--out", str(out_file), "--project", str(project)]) == 0
    _, err = capsys.readouterr()
    assert "Using the champion's churn definition" in err and "within 30 days" in err
    scores = pd.read_csv(out_file)
    assert len(scores) > 0 and scores["p_churn"].between(0, 1).all()

    who = str(scores["user_id"].iloc[0])
    assert main(["explain", who, "--project", str(project)]) == 0
    out, _ = capsys.readouterr()
    assert "P(churn within 30 days)" in out

    assert main(["plan", "--budget", "50", "--project", str(project)]) == 0
    _, err = capsys.readouterr()
    assert "within 30 days" in err

    # Told otherwise, the command does as told (and the model says what it was fitted for).
    assert main(["score", "--horizon", "90d", "--project", str(project)]) == 2
    err = capsys.readouterr().err
    assert "was trained for a 30-day horizon, not 90 days" in err and "leave out --horizon" in err


def test_the_service_follows_the_champion(project: Path) -> None:
    with TestClient(create_app(Project.load(project), settings(refresh_seconds=0)),
                    raise_server_exceptions=False) as client:
        assert client.get("/readyz").json()["population"] == "scored"
        scored = pd.read_csv(project / "scores.csv") if (project / "scores.csv").exists() else None
        who = "u0000001" if scored is None else str(scored["user_id"].iloc[0])
        answer = client.get(f"/v1/users/{who}/risk", headers=headers(READ))
        assert answer.status_code == 200, answer.text
