"""Issue 16, item 2 (second half): no single customer's data stops the scoring of the others.

Ingestion now bounds amounts, but a store loaded before it did may hold an amount the features
cannot sum exactly (DECIMAL(38, 6)), and then every ``score`` failed. The customer is left out,
named with the reason, and everyone else is scored; ``plan`` and the service's scoring of the
population (at the start and on refresh) do the same, and /readyz stays ready with the count.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from churnguard.campaigns import stored_plan
from churnguard.cli import main
from churnguard.config import ChurnDefinition, ProjectConfig, ScoringConfig
from churnguard.ingest import ingest_files
from churnguard.models.baselines import RecencyModel
from churnguard.project import Project
from churnguard.registry import CHAMPION, register_model, set_alias
from churnguard.scoring import score_customers
from churnguard.simulate import simulate
from churnguard.snapshots import build_snapshot
from churnguard.store import Store
from churnguard.training import training_cutoffs
from service.conftest import make_client, project_dir, template_project  # noqa: F401
from service.helpers import ClientFactory


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated shop with a champion (the recency rule) over every feature."""
    folder = tmp_path_factory.mktemp("isolation")
    sim = simulate(n_users=200, days=400, seed=3, out_dir=folder / "sim")
    with Store.open(folder / "churnguard.duckdb", threads=2) as store:
        for kind in ("items", "users", "events"):
            ingest_files(store, kind=kind, files=[sim.paths[kind]])
        definition = ChurnDefinition()
        fit, validation = training_cutoffs(store, definition=definition)
        snapshot = build_snapshot(store, definition=definition, cutoffs=[*fit, validation])
        model = RecencyModel().fit(snapshot)
        version = register_model(store, model, name="recency", config={}, data_window={},
                                 metrics={}, features=list(snapshot.features.columns))
        set_alias(store, CHAMPION, version, reason="test")
    return folder / "churnguard.duckdb"


def test_one_absurd_amount_leaves_out_one_customer_not_the_shop(shop: Path, tmp_path: Path) -> None:
    path = tmp_path / "churnguard.duckdb"
    path.write_bytes(shop.read_bytes())
    with Store.open(path, threads=2) as store:
        before = score_customers(store, definition=ChurnDefinition(), tiers=ScoringConfig(),
                                 save=False)
        victim = before.scores["user_id"].iloc[0]
        # As a store loaded before ingestion bounded amounts may hold it.
        last = store.con.execute("SELECT min(ts) FROM events").fetchone()[0]
        store.con.execute(
            "INSERT INTO events (event_id, user_id, ts, type, amount, batch_id) "
            "VALUES ('absurd', ?, ?, 'order', 1e40, 'old')", [victim, last])
        said: list[str] = []
        after = score_customers(store, definition=ChurnDefinition(), tiers=ScoringConfig(),
                                as_of=before.as_of, save=False, progress=said.append)
    assert list(after.left_out) == [victim]
    assert "beyond 1e+15" in after.left_out[victim]
    assert any(victim in line for line in said)
    others = before.scores[before.scores["user_id"] != victim].set_index("user_id")
    assert set(after.scores["user_id"]) == set(others.index)
    assert after.scores.set_index("user_id")["p_churn"].loc[others.index].tolist() == \
        pytest.approx(others["p_churn"].tolist())


def _poison(store: Store, victim: str) -> None:
    """One order of ``victim`` with an amount no exact sum holds, as a store loaded before
    ingestion bounded amounts may hold it (before every cutoff, so every snapshot meets it)."""
    first = store.con.execute("SELECT min(ts) FROM events").fetchone()[0]
    store.con.execute(
        "INSERT INTO events (event_id, user_id, ts, type, amount, batch_id) "
        "VALUES ('absurd', ?, ?, 'order', 1e40, 'old')", [victim, first])


def test_plan_leaves_out_one_unscorable_customer_and_plans_everyone_else(
        shop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "project"
    assert main(["init", str(root)]) == 0
    (root / "churnguard.duckdb").write_bytes(shop.read_bytes())
    config = ProjectConfig()
    with Store.open(root / "churnguard.duckdb", threads=2) as store:
        before = score_customers(store, definition=config.churn, tiers=config.scoring,
                                 save=False, with_reasons=False)
        victim = before.scores["user_id"].iloc[0]  # the riskiest customer
        _poison(store, victim)
    out = tmp_path / "plan.csv"
    capsys.readouterr()
    assert main(["plan", "--budget", "50", "--campaign-id", "isolated", "--out", str(out),
                 "--as-of", f"{before.as_of:%Y-%m-%d}", "--project", str(root)]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert f"left out customer {victim}: an event's amount is beyond 1e+15" in said
    rows = pd.read_csv(out)
    assert victim not in set(rows["user_id"])
    assert len(rows) > 0 and rows["expected_cost"].sum() > 0
    # The stored summary (what the API and the dashboard show) says so too, and everyone
    # else was in the plan's population.
    with Store.open(root / "churnguard.duckdb", read_only=True) as store:
        summary = stored_plan(store, "isolated").summary
    assert summary["left_out"] == 1
    assert summary["population"] == len(before.scores) - 1
    assert any(victim in note and "beyond 1e+15" in note for note in summary["notes"])


def test_service_start_leaves_out_one_customer_and_stays_ready(
        make_client: ClientFactory, project_dir: Path,  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    with Project.load(project_dir).open_store() as store:
        victim = store.con.execute(
            "SELECT user_id FROM events WHERE type = 'order' ORDER BY ts DESC, user_id "
            "LIMIT 1").fetchone()[0]
        other = store.con.execute(
            "SELECT user_id FROM events WHERE type = 'order' AND user_id <> ? "
            "ORDER BY ts DESC, user_id LIMIT 1", [victim]).fetchone()[0]
        _poison(store, victim)
    with caplog.at_level(logging.INFO, logger="churnguard.service"):
        client = make_client()
        ready = client.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert (body["status"], body["population"], body["left_out"]) == ("ready", "scored", 1)
    risk = client.app.state.service.risk
    assert risk.cached(other)[0] == "hit"  # everyone else was scored at the start
    assert risk.cached(victim)[0] == "miss"  # never reported lapsed; computed on the spot
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "left out 1 customers" in logged and "beyond 1e+15" in logged
    assert victim not in logged
    # A refresh of the population does the same.
    assert risk.rebuild()
    assert client.get("/readyz").json()["left_out"] == 1
