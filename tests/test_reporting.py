"""What the report is drawn from: the champion's feature importance, whatever model it is, and
what exists before everything is computed."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from churnguard.cli import main
from churnguard.config import ChurnDefinition
from churnguard.report.data import missing_line
from churnguard.reporting import BEHAVIOUR_PATTERN, build_report_data, feature_importance
from churnguard.simulate import simulate
from churnguard.store import Store


class _Trees:
    def feature_importance(self) -> pd.Series:
        return pd.Series({"events_30d": 50.0, "behaviour_emb_0": 30.0, "behaviour_emb_1": 25.0,
                          "days_since_last_visit": 10.0}, name="gain")


def test_a_model_with_its_own_importance_is_asked() -> None:
    model = SimpleNamespace(feature_importance=lambda: pd.Series({"a": 2.0, "b": 1.0}))
    assert feature_importance(model).to_dict() == {"a": 2.0, "b": 1.0}


def test_behaviour_gbdt_sums_the_vector_into_one_entry() -> None:
    model = SimpleNamespace(gbdt_=_Trees(),
                            embedding_columns_=["behaviour_emb_0", "behaviour_emb_1"])
    importance = feature_importance(model)
    assert importance.to_dict() == {BEHAVIOUR_PATTERN: 55.0, "events_30d": 50.0,
                                     "days_since_last_visit": 10.0}
    assert list(importance.index) == [BEHAVIOUR_PATTERN, "events_30d", "days_since_last_visit"]


def test_a_model_without_importance_gives_an_empty_series() -> None:
    assert feature_importance(SimpleNamespace()).empty


def test_the_pattern_is_named_as_the_model_names_it() -> None:
    from churnguard.models.behaviour.model import BEHAVIOUR_COLUMN

    assert BEHAVIOUR_PATTERN == BEHAVIOUR_COLUMN


# -- a report before everything is computed ----------------------------------------------------
def test_report_after_train_and_score_without_a_backtest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Trained and scored, never backtested: the report shows the scores, the riskiest customers
    and the champion's importance, and says in place of the model-quality sections (and on
    stderr) that `churnguard backtest` makes them; after a backtest nothing is missing."""
    root = tmp_path / "shop"
    sim = simulate(n_users=400, days=420, seed=3, out_dir=tmp_path / "data")
    assert main(["init", str(root)]) == 0
    for kind in ("items", "users", "events"):
        assert main(["ingest", kind, str(sim.paths[kind]), "--project", str(root)]) == 0
    assert main(["train", "--models", "gbdt", "--project", str(root)]) == 0
    assert main(["score", "--project", str(root)]) == 0
    capsys.readouterr()

    assert main(["report", "--out", str(tmp_path / "r.html"), "--project", str(root)]) == 0
    out, err = capsys.readouterr()
    assert out == f"Report written to {tmp_path / 'r.html'}\n"
    assert err == f"Not in the report: {missing_line('backtest')}\n"
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    with Store.open(root / "churnguard.duckdb", read_only=True) as store:
        data = build_report_data(store, title="t", definition=ChurnDefinition())
        riskiest = store.con.execute("SELECT user_id FROM scores ORDER BY p_churn DESC, user_id "
                                     "LIMIT 1").fetchall()[0][0]
    assert data.missing == ("backtest",)
    assert data.chosen_model == "gbdt" and len(data.scores) > 100
    assert '<section id="backtest">' in page and '<table class="leaderboard">' not in page
    assert f"<code>{riskiest}</code>" in page  # the top at-risk customers
    assert "Expected churners" in page  # the score distribution's table
    assert "No backtest yet: run <code>churnguard backtest</code>" in page

    assert main(["backtest", "--models", "recency", "--train-cutoffs", "1",
                 "--project", str(root)]) == 0
    capsys.readouterr()
    assert main(["report", "--out", str(tmp_path / "r2.html"), "--project", str(root)]) == 0
    assert capsys.readouterr().err == ""
    page = (tmp_path / "r2.html").read_text(encoding="utf-8")
    assert '<table class="leaderboard">' in page and "No backtest yet" not in page
