"""The prediction verbs of the CLI contract: train, backtest, score, explain, report, models."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from churnguard.cli import main
from churnguard.simulate import simulate


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project holding a small simulated shop (1,200 customers, 420 days), no models yet."""
    root = tmp_path_factory.mktemp("shop")
    sim = simulate(n_users=1200, days=420, seed=3, out_dir=root / "data")
    assert main(["init", str(root)]) == 0
    with (root / "churnguard.toml").open("a") as fh:
        fh.write('\n[simulation]\ntruth = "data/truth/churn.parquet"\n')
    for kind in ("items", "users", "events", "campaigns"):
        assert main(["ingest", kind, str(sim.paths[kind]), "--project", str(root)]) == 0
    return root


def test_score_before_training_says_what_to_do(project: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["score", "--project", str(project)], capsys)
    assert code == 2
    assert "no model has been trained yet; run `churnguard train` first" in err


def test_report_before_backtest_says_what_to_do(project: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Before any backtest, model or score, the report renders what exists (the churn
    definition and its preview) and says, on the page and on stderr, which command makes each
    missing part."""
    out_path = project / "r.html"
    code, out, err = run(["report", "--project", str(project), "--out", str(out_path)], capsys)
    assert code == 0
    assert out == f"Report written to {out_path}\n"
    assert err == (
        "Not in the report: No backtest yet: run churnguard backtest; the model leaderboard, "
        "the curves, calibration, gains and churn by segment come from it.\n"
        "Not in the report: No model trained yet: run churnguard train; the chosen model and "
        "its feature importance come from it.\n"
        "Not in the report: No scores yet: run churnguard score; the score distribution and the "
        "customers most at risk come from it.\n")
    page = out_path.read_text(encoding="utf-8")
    assert "No backtest yet: run <code>churnguard backtest</code>" in page
    assert "No model trained yet: run <code>churnguard train</code>" in page
    assert "No scores yet: run <code>churnguard score</code>" in page
    assert '<section id="backtest">' in page and '<table class="leaderboard">' not in page
    assert '<table class="preview">' in page  # the definition preview needs none of them
    out_path.unlink()


def test_backtest_json_has_the_documented_shape(project: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out_json = project / "bt.json"
    code, out, _ = run(["backtest", "--models", "recency,gbdt", "--train-cutoffs", "1",
                        "--json", str(out_json), "--project", str(project)], capsys)
    assert code == 0, out
    document = json.loads(out_json.read_text())
    assert {"horizon_days", "test_cutoff", "train_cutoffs", "n_test", "base_rate",
            "models"} <= set(document)
    assert document["horizon_days"] == 90 and len(document["train_cutoffs"]) == 1
    assert [m["name"] for m in document["models"]] == ["recency", "gbdt", "oracle"]
    for row in document["models"]:
        assert set(row) == {"name", "roc_auc", "pr_auc", "brier", "ece", "lift_at_10",
                            "recall_at_10"}
    # Out of time: every training horizon ends on or before the test cutoff.
    test = pd.Timestamp(document["test_cutoff"])
    assert all(pd.Timestamp(c) + pd.Timedelta(days=90) <= test for c in document["train_cutoffs"])
    assert "oracle (truth)" in out


def test_backtest_rejects_unknown_model_and_impossible_cutoff(
        project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["backtest", "--models", "gbdt,magic", "--project", str(project)], capsys)
    assert code == 2 and "unknown model 'magic'" in err
    code, _, err = run(["backtest", "--test-cutoff", "2026-12-01", "--project", str(project)],
                       capsys)
    assert code == 2 and "labels are not known" in err


def test_train_score_explain_report(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["train", "--project", str(project)], capsys)
    assert code == 0 and "it is now the champion" in out

    code, out, _ = run(["models", "--project", str(project)], capsys)
    assert code == 0 and "★" in out

    scores_path = project / "scores.parquet"
    code, out, _ = run(["score", "--out", str(scores_path), "--project", str(project)], capsys)
    assert code == 0, out
    scores = pd.read_parquet(scores_path)
    assert list(scores.columns) == ["user_id", "p_churn", "risk_tier", "reason_1", "reason_2",
                                    "reason_3", "model_version"]
    assert scores["p_churn"].is_monotonic_decreasing
    assert scores["model_version"].nunique() == 1
    tiers = scores["risk_tier"].to_numpy()
    p = scores["p_churn"].to_numpy()
    assert ((p >= 0.7) == (tiers == "high")).all() and ((p < 0.4) == (tiers == "low")).all()
    assert (scores["reason_1"] != "").mean() > 0.9

    riskiest = scores["user_id"].iloc[0]
    code, out, _ = run(["explain", riskiest, "--project", str(project)], capsys)
    assert code == 0
    assert out.startswith(f"{riskiest}: P(churn within 90 days) = ")
    assert scores["reason_1"].iloc[0] in out
    code, out_zh, _ = run(["explain", riskiest, "--lang", "zh", "--project", str(project)], capsys)
    assert code == 0
    assert any("\u4e00" <= ch <= "\u9fff" for ch in out_zh)  # Chinese reasons

    code, _, err = run(["explain", "nobody-like-this", "--project", str(project)], capsys)
    assert code == 2 and "no customer 'nobody-like-this' in the store" in err

    report = project / "report.html"
    code, out, _ = run(["report", "--out", str(report), "--project", str(project)], capsys)
    assert code == 0
    html = report.read_text(encoding="utf-8")
    assert "gbdt" in html and "oracle" in html and riskiest in html


def test_score_rejects_an_unknown_output_format(project: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["score", "--out", str(project / "s.xlsx"), "--project", str(project)],
                       capsys)
    assert code == 2 and "write .csv or .parquet" in err


@pytest.mark.e2e
def test_plain_order_export_runs_end_to_end_and_says_what_it_skipped(
        project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A shop with only customer id, date and amount still gets a backtest, scores and reasons."""
    events = pd.read_parquet(project / "data" / "events.parquet",
                             columns=["user_id", "ts", "type", "amount"])
    orders = events[events["type"] == "order"].drop(columns="type")
    export = tmp_path / "orders.csv"
    orders.rename(columns={"user_id": "customer", "ts": "order_date", "amount": "total"}).to_csv(
        export, index=False)
    shop = tmp_path / "plain"
    assert run(["init", str(shop)], capsys)[0] == 0
    code, out, _ = run(["ingest", "events", str(export), "--map", "user_id=customer",
                        "--map", "ts=order_date", "--map", "amount=total",
                        "--default-type", "order", "--project", str(shop)], capsys)
    assert code == 0 and f"added {len(orders):,}" in out

    code, out, err = run(["backtest", "--project", str(shop)], capsys)
    assert code == 0, err
    assert "Feature groups not computed" in err and "browsing" in err and "'review'" in err
    code, _, err = run(["train", "--project", str(shop)], capsys)
    assert code == 0, err
    scores_path = tmp_path / "plain_scores.csv"
    code, _, err = run(["score", "--out", str(scores_path), "--project", str(shop)], capsys)
    assert code == 0, err
    scores = pd.read_csv(scores_path, keep_default_na=False)
    assert len(scores) > 100 and scores["p_churn"].between(0, 1).all()
    assert (scores["reason_1"] != "").mean() > 0.9
    code, _, err = run(["report", "--out", str(tmp_path / "plain.html"), "--project", str(shop)],
                       capsys)
    assert code == 0, err


def test_score_on_an_empty_store_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["init", str(tmp_path)], capsys)[0] == 0
    code, _, err = run(["score", "--project", str(tmp_path)], capsys)
    assert code == 2
    assert "the store has no events; ingest events first" in err
