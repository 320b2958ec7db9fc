"""The gate's commands: `churnguard models challenge|decisions|rollback`, and `churnguard
models [VERSION]` as before; a rollback killed mid-transaction leaves the registry unchanged."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from churnguard.cli import main
from churnguard.ingest import FAULT_ENV, FAULT_EXIT_CODE
from churnguard.models.baselines import RecencyModel
from churnguard.registry import (
    CHAMPION,
    DECISION_FAULT_POINTS,
    alias_history,
    alias_version,
    get_model_version,
    list_decisions,
    register_model,
    set_alias,
)
from churnguard.simulate import simulate
from churnguard.store import Store


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, list[str]]:
    """A project whose champion went a → b → c (registered rules, no training needed)."""
    root = tmp_path / "shop"
    assert main(["init", str(root)]) == 0
    with Store.open(root / "churnguard.duckdb") as store:
        versions = []
        for reason in ("first", "second", "third"):
            version = register_model(store, RecencyModel(), name="recency", config={},
                                     data_window={}, metrics={}, features=[])
            set_alias(store, CHAMPION, version, reason=reason)
            versions.append(version)
    return root, versions


def _state(root: Path) -> tuple:
    with Store.open(root / "churnguard.duckdb", read_only=True) as store:
        return (alias_version(store, CHAMPION), alias_history(store),
                store.con.execute("SELECT * FROM model_decisions").fetchall())


def test_rollback_restores_the_previous_champion_and_records_why(
        project: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    root, (a, b, c) = project
    code, out, _ = run(["models", "rollback", "--reason", "complaints from the call centre",
                        "--project", str(root)], capsys)
    assert code == 0
    assert out.startswith(f"Rolled back: the champion is {b} again (was {c}); decision ")
    code, out, _ = run(["models", "decisions", "--json", "--project", str(root)], capsys)
    assert code == 0
    (record,) = json.loads(out)
    assert {k: record[k] for k in ("trigger", "outcome", "champion_version",
                                   "challenger_version", "champion_after", "reason")} == {
        "trigger": "manual", "outcome": "rolled-back", "champion_version": c,
        "challenger_version": b, "champion_after": b,
        "reason": "complaints from the call centre"}
    assert _state(root)[0] == b
    # The next rollback skips c (rolled back away from) and goes to a; then nothing is left.
    assert run(["models", "rollback", "--reason", "again", "--project", str(root)],
               capsys)[0] == 0
    assert _state(root)[0] == a
    code, _, err = run(["models", "rollback", "--reason", "once more", "--project", str(root)],
                       capsys)
    assert code == 2 and "there is nothing to roll back to" in err
    # --to names any earlier champion, even one rolled back away from.
    assert run(["models", "rollback", "--to", c, "--reason", "fixed", "--project", str(root)],
               capsys)[0] == 0
    assert _state(root)[0] == c
    code, out, _ = run(["models", "decisions", "--project", str(root)], capsys)
    assert code == 0 and out.count("rolled-back (manual)") == 3 and "\n  fixed\n" in out


def test_rollback_refuses_what_it_cannot_do(project: tuple[Path, list[str]], tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    root, (a, b, c) = project
    code, _, err = run(["models", "rollback", "--project", str(root)], capsys)
    assert code == 2 and "--reason" in err
    code, _, err = run(["models", "rollback", "--to", "nope", "--reason", "x",
                        "--project", str(root)], capsys)
    assert code == 2 and "no model version 'nope'" in err
    with Store.open(root / "churnguard.duckdb") as store:
        never = register_model(store, RecencyModel(), name="recency", config={},
                               data_window={}, metrics={}, features=[])
    code, _, err = run(["models", "rollback", "--to", never, "--reason", "x",
                        "--project", str(root)], capsys)
    assert code == 2 and "has never been the champion" in err
    code, _, err = run(["models", "rollback", "--to", c, "--reason", "x",
                        "--project", str(root)], capsys)
    assert code == 2 and "is the champion already" in err
    assert _state(root)[0] == c and _state(root)[2] == []


def test_models_lists_and_shows_a_version_as_before(project: tuple[Path, list[str]],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    root, (a, b, c) = project
    code, out, _ = run(["models", "--project", str(root)], capsys)
    assert code == 0 and "recency" in out and out.count("★") == 1
    for args in (["models", a, "--project", str(root)], ["models", "--project", str(root), a]):
        code, out, _ = run(args, capsys)
        assert code == 0
        shown = json.loads(out)
        assert (shown["version"], shown["champion"]) == (a, False)
    code, _, err = run(["models", "v-none", "--project", str(root)], capsys)
    assert code == 2 and "no model version 'v-none'" in err


@pytest.mark.parametrize("point", DECISION_FAULT_POINTS)
def test_a_rollback_killed_inside_its_transaction_changes_nothing(
        project: tuple[Path, list[str]], point: str) -> None:
    """The process dies (os._exit, as kill -9) after the decision row, or after the alias
    move, before the commit: reopened, the registry is as it was; the rerun completes."""
    root, (a, b, c) = project
    before = _state(root)
    command = ("import sys; from churnguard.cli import main; "
               "sys.exit(main(sys.argv[1:]))")
    args = ["models", "rollback", "--reason", "crash test", "--project", str(root)]
    proc = subprocess.run([sys.executable, "-c", command, *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, FAULT_ENV: point})
    assert proc.returncode == FAULT_EXIT_CODE, f"{point} was not reached: {proc.stderr}"
    assert _state(root) == before
    proc = subprocess.run([sys.executable, "-c", command, *args], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    champion, history, decisions = _state(root)
    assert champion == b and len(history) == len(before[1]) + 1 and len(decisions) == 1


def test_challenge_end_to_end_on_a_small_shop(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """simulate → ingest → `train --as-of` (a champion on early data) → `models challenge`: a
    decision with its evidence is recorded, the champion moves only if it says promoted."""
    root = tmp_path / "shop"
    sim = simulate(n_users=1500, days=400, seed=5, out_dir=tmp_path / "data")
    assert main(["init", str(root)]) == 0
    for kind in ("items", "users", "events", "campaigns"):
        assert main(["ingest", kind, str(sim.paths[kind]), "--project", str(root)]) == 0
    with Store.open(root / "churnguard.duckdb", read_only=True) as store:
        last = store.con.execute("SELECT max(ts) FROM events").fetchall()[0][0]
    # Four weeks before the newest matured cutoff (the 90-day horizon before the data ends):
    # the champion's labels end there, so the newest cohort is out of time for it.
    early = f"{last - dt.timedelta(days=90 + 28):%Y-%m-%d}"
    assert main(["train", "--as-of", early, "--project", str(root)]) == 0
    with Store.open(root / "churnguard.duckdb", read_only=True) as store:
        champion = alias_version(store, CHAMPION)
    capsys.readouterr()

    code, out, _ = run(["models", "challenge", "--project", str(root)], capsys)
    assert code == 0
    code, listing, _ = run(["models", "decisions", "--json", "--project", str(root)], capsys)
    (record,) = json.loads(listing)
    assert record["outcome"] in ("promoted", "kept")
    assert out.startswith(f"{record['outcome']}: {record['reason']}")
    assert record["champion_version"] == champion
    for key in ("cohort_cutoff", "n_customers", "champion_auc", "challenger_auc", "delta_auc",
                "delta_auc_lower", "champion_ece", "challenger_ece"):
        assert record[key] is not None, key
    assert record["n_customers"] > 500
    with Store.open(root / "churnguard.duckdb", read_only=True) as store:
        expected = record["challenger_version"] if record["outcome"] == "promoted" else champion
        assert alias_version(store, CHAMPION) == expected == record["champion_after"]
        assert get_model_version(store, record["challenger_version"]).name == "gbdt"
        assert list_decisions(store)[0].to_dict() == record
