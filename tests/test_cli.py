"""The command-line contract of DESIGN.md: verbs, --help, exit codes, messages."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pandas as pd
import pytest

from churnguard.cli import cli, main
from churnguard.models.catalog import demo_settings
from churnguard.registry import CHAMPION, alias_version, get_model_version
from churnguard.store import Store


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found.extend(all_commands(command, (*prefix, name)))
    return found


@pytest.mark.parametrize("path", all_commands(cli), ids=" ".join)
def test_every_command_has_help(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([*path, "--help"], capsys)
    assert code == 0
    assert out.startswith("Usage: churnguard " + " ".join(path))
    # The summary line under Usage explains the command, not just lists options.
    assert len(out.split("\n\n")[1].strip()) > 20


def test_the_documented_verbs_exist() -> None:
    commands = set(all_commands(cli))
    for path in [("init",), ("simulate",), ("demo",), ("status",), ("ingest", "events"),
                 ("ingest", "users"), ("ingest", "items"), ("ingest", "campaigns"),
                 ("ingest", "labels"), ("ingest", "quarantine")]:
        assert path in commands


def test_init_creates_config_and_store_and_is_idempotent(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["init", str(tmp_path / "shop")], capsys)
    assert code == 0 and out.startswith("Created")
    assert (tmp_path / "shop" / "churnguard.toml").exists()
    with Store.open(tmp_path / "shop" / "churnguard.duckdb") as store:
        assert store.table_counts()["events"] == 0
    code, out, _ = run(["init", str(tmp_path / "shop")], capsys)
    assert code == 0 and out.startswith("Already a project")


def test_project_from_environment(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHURNGUARD_PROJECT", str(tmp_path / "envshop"))
    assert run(["init"], capsys)[0] == 0
    assert (tmp_path / "envshop" / "churnguard.toml").exists()


def test_command_outside_a_project_exits_2_and_says_how_to_fix(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["status", "--project", str(tmp_path)], capsys)
    assert code == 2
    assert "not a churnguard project" in err and "churnguard init" in err


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["simulate", "--users", "0", "--out", "x"], capsys)
    assert code == 2
    assert "--users" in err


def test_bad_duration_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["simulate", "--out", str(tmp_path), "--horizon", "ninety"], capsys)
    assert code == 2
    assert "'ninety' is not a duration" in err


def test_unknown_scenario_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["simulate", "--users", "10", "--days", "5", "--out", str(tmp_path),
                        "--scenario", "nope"], capsys)
    assert code == 2
    assert "nope" in err and "default" in err


def test_invalid_config_exits_2_naming_the_setting(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run(["init", str(tmp_path)], capsys)
    (tmp_path / "churnguard.toml").write_text("[churn]\nhorizon_days = -3\n")
    code, _, err = run(["status", "--project", str(tmp_path)], capsys)
    assert code == 2
    assert "churn.horizon_days" in err


def test_bad_input_file_exits_2_with_file_row_column(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    run(["init", str(tmp_path)], capsys)
    bad = tmp_path / "events.csv"
    bad.write_text("user_id,ts,type\nu1,2026-01-01,order\nu2,not-a-date,order\n")
    code, _, err = run(["ingest", "events", str(bad), "--project", str(tmp_path)], capsys)
    assert code == 2
    assert "events.csv" in err and "row 2" in err and "'ts'" in err
    with Store.open(tmp_path / "churnguard.duckdb", read_only=True) as store:
        assert store.table_counts()["events"] == 0


def test_ingest_then_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(["init", str(tmp_path)], capsys)
    good = tmp_path / "orders.csv"
    good.write_text("customer,day,total\nu1,2026-01-01,10.5\nu2,2026-01-02,3\n")
    args = ["ingest", "events", str(good), "--map", "user_id=customer", "--map", "ts=day",
            "--map", "amount=total", "--default-type", "order", "--project", str(tmp_path)]
    code, out, _ = run(args, capsys)
    assert code == 0 and "added 2" in out
    code, out, _ = run(args, capsys)
    assert code == 0 and "added 0" in out and "duplicates 2" in out
    code, out, _ = run(["status", "--project", str(tmp_path)], capsys)
    assert code == 0
    assert "order" in out and "2026-01-01" in out


def test_console_script_exit_code_reaches_the_shell(tmp_path: Path) -> None:
    """The installed entry point turns main()'s return value into the process exit status."""
    script = Path(sys.executable).with_name("churnguard")
    proc = subprocess.run([str(script), "status", "--project", str(tmp_path)],
                          capture_output=True, text=True, env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 2
    assert "not a churnguard project" in proc.stderr


# Quality floors of the demo's backtest, set against its own baselines. Measured on the run
# below (1,500 customers over 420 days; one training cutoff of 547 rows, 709 validation and
# 860 test rows, base rate 0.470):
#   ROC-AUC  recency 0.8228, btyd 0.8442, gbdt 0.8434, behaviour 0.5385, behaviour+gbdt 0.8342,
#            oracle 0.9228
#   ECE      recency 0.0518, btyd 0.1113, gbdt 0.0325, behaviour 0.0672, behaviour+gbdt 0.0258,
#            oracle 0.0215
# and broken, on the same data: gbdt without its calibrator, ECE 0.0806 (recency without its
# own: 0.514); gbdt fitted on shuffled labels, ROC-AUC 0.6010; gbdt without its recency,
# frequency and browsing features and its BTYD inputs, 0.8289. Each floor fails on each break
# it is meant for. Margins are about half the measured gap.
#: gbdt over the recency rule (measured gap 0.0206).
DEMO_MARGIN_OVER_RECENCY = 0.010
#: gbdt under BTYD at most by this much: on this small shop the trees (35 of them, from 547
#: training rows) only tie BTYD (measured gap -0.0008), so this is a floor, not a margin; the
#: contract test holds the margin over BTYD on the larger test shop (tests/models).
DEMO_TOLERANCE_UNDER_BTYD = 0.010
#: ECE bounds of the calibrated models (btyd is not calibrated: 0.111). The tiny behaviour
#: network's bound is loose: it has little to calibrate (ROC-AUC 0.54).
DEMO_MAX_ECE = {"recency": 0.075, "gbdt": 0.055, "behaviour": 0.10, "behaviour+gbdt": 0.055}


def _assert_demo_quality(by_name: dict[str, dict]) -> None:
    """The demo backtest's floors (see above): gbdt against the baselines, ECE bounded."""
    gbdt, recency, btyd = (by_name[n]["roc_auc"] for n in ("gbdt", "recency", "btyd"))
    assert gbdt >= recency + DEMO_MARGIN_OVER_RECENCY, (gbdt, recency)
    assert gbdt >= btyd - DEMO_TOLERANCE_UNDER_BTYD, (gbdt, btyd)
    for name, bound in DEMO_MAX_ECE.items():
        assert by_name[name]["ece"] <= bound, (name, by_name[name]["ece"])


@pytest.mark.e2e
def test_demo_end_to_end_small(tmp_path: Path) -> None:
    """The main job, as `make demo` runs it, at small size, through the installed script:
    simulate → ingest → pretrain the behaviour encoder → backtest (with the behaviour models) →
    train → score with reasons → plan → report."""
    script = Path(sys.executable).with_name("churnguard")
    project = tmp_path / "demo"
    args = [str(script), "demo", "--users", "1500", "--days", "420", "--project", str(project)]
    first = subprocess.run(args, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "Project ready" in first.stdout
    assert "1/9 Simulating" in first.stderr and "4/9 Pretraining the behaviour encoder" in first.stderr
    with Store.open(project / "churnguard.duckdb", read_only=True) as store:
        counts = store.table_counts()
        orders = store.con.execute("SELECT count(*) FROM events WHERE type = 'order'").fetchall()[0][0]
        champion = get_model_version(store, alias_version(store, CHAMPION)).name
    assert counts["users"] == 1500
    assert counts["items"] > 0 and counts["campaigns"] > 0 and orders > 0
    assert counts["models"] == 1 and counts["backtests"] == 1

    document = json.loads((project / "backtest.json").read_text())
    names = [m["name"] for m in document["models"]]
    assert names == ["recency", "btyd", "gbdt", "behaviour", "behaviour+gbdt", "oracle"]
    by_name = {m["name"]: m for m in document["models"]}
    # The oracle knows the truth: no model may beat it by more than noise.
    assert by_name["oracle"]["roc_auc"] >= max(by_name[n]["roc_auc"] for n in names) - 0.01
    _assert_demo_quality(by_name)
    # The behaviour models were trained at the demo's small size, from the encoder pretrained
    # (without labels) on the events before the validation cutoff, and the size is recorded.
    assert (project / "pretrained" / "encoder.pt").exists()
    details = document["model_details"]
    size = demo_settings("behaviour")
    for name in ("behaviour", "behaviour+gbdt"):
        assert details[name]["max_len"] == size["max_len"]
        pretraining = details[name]["pretraining"]
        assert 0 < pretraining["customers"] <= min(1500, size["pretrain_max_customers"])
        assert 1 <= pretraining["epochs_run"] <= pretraining["epochs"] == size["pretrain_epochs"]
        assert pretraining["cutoff"] == document["validation_cutoff"]
    assert 1 <= details["behaviour"]["epochs_run"] <= details["behaviour"]["epochs"] == size["epochs"]
    for name in ("gbdt", "behaviour+gbdt"):  # the demo's faster-learning trees
        assert details[name]["learning_rate"] == demo_settings("gbdt")["learning_rate"]
        assert details[name]["trees"] >= 1
    # The champion is the backtest's best among the models that give reasons, not a fixed one.
    assert champion == max(("gbdt", "behaviour+gbdt"), key=lambda n: by_name[n]["roc_auc"])
    assert by_name[champion]["ece"] <= DEMO_MAX_ECE[champion]  # the scores are probabilities

    scores = pd.read_csv(project / "scores.csv", keep_default_na=False)
    assert list(scores.columns) == ["user_id", "p_churn", "risk_tier", "reason_1", "reason_2",
                                    "reason_3", "model_version"]
    assert scores["p_churn"].between(0, 1).all()
    assert set(scores["risk_tier"]) <= {"high", "medium", "low"}
    assert (scores["reason_1"] != "").mean() > 0.9
    assert scores["model_version"].str.startswith(champion + "-").all()
    html = (project / "report.html").read_text(encoding="utf-8")
    assert "<svg" in html and "http://" not in html and "https://" not in html
    leaderboard = re.search(r'<table class="leaderboard">(.*?)</table>', html, re.S).group(1)
    assert '<th scope="row">behaviour <' in leaderboard or '<th scope="row">behaviour</th>' in leaderboard
    assert "behaviour+gbdt" in leaderboard
    assert "How the models were trained" in html
    assert "No feature importance was supplied" not in html  # whichever model is the champion
    assert f"newest {size['max_len']} events per customer" in html
    assert "pretrained without labels on" in html

    # The job ends with a retention campaign: contacted customers with messages, a control
    # group, the budget (0.25 per customer in the population) respected; a past campaign
    # measured; both on the report's intervention pages.
    plan = pd.read_csv(project / "plan.csv")
    treated = plan[~plan["is_control"]]
    assert len(treated) > 0 and plan["is_control"].any()
    assert treated["expected_cost"].sum() <= 0.25 * len(scores) + 1e-6
    assert treated["message_en"].notna().all() and treated["message_zh"].notna().all()
    with Store.open(project / "churnguard.duckdb", read_only=True) as store:
        counts_after = store.table_counts()
    assert counts_after["plans"] == 1 and counts_after["measurements"] == 1
    assert "11. Interventions" in html and "Qini" in html

    # A second run (without the behaviour models, to keep this test short) regenerates the same
    # data, adds nothing and plans the day's campaign once.
    second = subprocess.run([*args, "--no-behaviour"], capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "1/8 Simulating" in second.stderr and "Pretraining" not in second.stderr
    names = [m["name"] for m in json.loads((project / "backtest.json").read_text())["models"]]
    assert names == ["recency", "btyd", "gbdt", "oracle"]
    with Store.open(project / "churnguard.duckdb", read_only=True) as store:
        assert store.table_counts()["events"] == counts["events"]
        assert store.table_counts()["plans"] == 1


def test_mixed_time_zones_rejected_in_a_new_project(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """A project made by `init` has no ingest.timezone, so a half-local export is refused."""
    run(["init", str(tmp_path)], capsys)
    mixed = tmp_path / "events.csv"
    mixed.write_text("user_id,ts,type\nu1,2026-01-01T10:00:00+08:00,order\nu2,2026-01-01 10:00,order\n")
    code, _, err = run(["ingest", "events", str(mixed), "--project", str(tmp_path)], capsys)
    assert code == 2
    assert "row 2" in err and "'ts'" in err and "ingest.timezone" in err


def test_churn_preview_prints_population_and_rate(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run(["init", str(tmp_path)], capsys)
    orders = tmp_path / "orders.csv"
    # u1 orders every month; u2 orders once in January and never again.
    rows = ["user_id,ts"] + [f"u1,2025-{m:02d}-01" for m in range(1, 13)] + ["u2,2025-01-15"]
    orders.write_text("\n".join(rows) + "\n")
    run(["ingest", "events", str(orders), "--default-type", "order", "--project", str(tmp_path)],
        capsys)
    code, out, _ = run(["churn", "preview", "--horizon", "60d", "--project", str(tmp_path)], capsys)
    assert code == 0
    assert "no order within 60 days" in out
    # At the observable cutoffs after mid-March both customers are in the population and u2
    # has churned: a rate of 50.0%.
    assert "50.0%" in out
    code, _, err = run(["churn", "preview", "--horizon", "soon", "--project", str(tmp_path)], capsys)
    assert code == 2 and "'soon' is not a duration" in err
