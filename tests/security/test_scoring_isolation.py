"""Issue 16, item 2 (second half): no single customer's data stops the scoring of the others.

Ingestion now bounds amounts, but a store loaded before it did may hold an amount the features
cannot sum exactly (DECIMAL(38, 6)), and then every ``score`` failed. The customer is left out,
named with the reason, and everyone else is scored.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from churnguard.config import ChurnDefinition, ScoringConfig
from churnguard.ingest import ingest_files
from churnguard.models.baselines import RecencyModel
from churnguard.registry import CHAMPION, register_model, set_alias
from churnguard.scoring import score_customers
from churnguard.simulate import simulate
from churnguard.snapshots import build_snapshot
from churnguard.store import Store
from churnguard.training import training_cutoffs


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
