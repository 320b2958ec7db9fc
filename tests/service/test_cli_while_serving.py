"""Issue 18 item 2: every CLI command works while `churnguard serve` runs on the same project.

DuckDB lets one process hold the store, so the service *lends* it (churnguard.lending): a command
asks the service over the project's Unix socket, the service closes its handle and answers, the
command opens the file, and the service opens it again when the command is done (or dies).

The service runs here as a real `churnguard serve` process on a copy of the small shop with a
champion; the commands run in this process (through `churnguard.cli.main`, as a user's would)
or, where the test kills one, as a separate process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import click
import httpx
import pandas as pd
import pytest

from churnguard import lending
from churnguard.cli import cli, main
from churnguard.realtime import CustomerRisk
from churnguard.service.risk import RiskBook
from churnguard.store import Store
from service.helpers import ADMIN, KEYS, READ, WRITE, headers
from service.test_serve import COMMANDS as SERVE_COMMANDS
from service.test_serve import STOP_TIMEOUT_S, Server
from service.test_serve import serving as serve_process

SERVE = SERVE_COMMANDS["churnguard serve"]
# Bounds against a hang, not measures of speed.
RECOVER_TIMEOUT_S = 120
NOW = pd.Timestamp("2026-02-25").to_pydatetime()
LOCK_WORDS = ("Conflicting lock", "in use by", "store_busy", "did not lend")

# A command-line process that borrows the store the way every command does
# (Project.open_store) and keeps it for SECONDS, or until a line arrives on its stdin.
BORROWER = textwrap.dedent("""
    import select, sys
    from pathlib import Path
    from churnguard.project import Project
    root, seconds = sys.argv[1], float(sys.argv[2])
    with Project.load(Path(root)).open_store() as store:
        print("borrowed", flush=True)
        select.select([sys.stdin], [], [], seconds)
        store.table_counts()  # the file is still ours
    print("returned", flush=True)
""")


def serving(project: Path) -> AbstractContextManager[Server]:
    """`churnguard serve` on ``project``, with every role's key."""
    return serve_process(SERVE, project, keys=KEYS)


def borrow_in_another_process(project: Path, seconds: float) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", BORROWER, str(project), str(seconds)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "borrowed":
        proc.kill()
        pytest.fail(f"the borrower did not get the store: {line!r} {proc.stderr.read()}")
    return proc


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def a_scored_customer(project: Path) -> str:
    """A customer of the shop: the first one in its events file."""
    return pd.read_parquet(project.parent / "inputs" / "events.parquet",
                           columns=["user_id"])["user_id"].iloc[0]


def events_file(path: Path, user_id: str, ts: str) -> Path:
    path.write_text(f"user_id,ts,type,amount\n{user_id},{ts},order,42.0\n", encoding="utf-8")
    return path


def newest_event(template: Path) -> pd.Timestamp:
    with Store.open(template / "churnguard.duckdb", read_only=True) as store:
        return pd.Timestamp(store.con.execute("SELECT max(ts) FROM events").fetchall()[0][0])


def wait_for(check: Callable[[], bool], what: str, timeout: float = RECOVER_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout} s")
        time.sleep(0.2)


def test_two_answers_arriving_in_one_chunk_are_both_read() -> None:
    # The service's "waiting" and "lent" can reach the command in one read: losing the second
    # left the command waiting for an answer that had already come.
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b'{"waiting": true}\n{"lent": true}\n')
        lines = lending._Lines(b)
        assert lines.read(5) == {"waiting": True}
        assert lines.read(5) == {"lent": True}
        a.close()
        assert lines.read(5) is None


def test_a_project_path_too_long_for_a_socket_address_still_lends(tmp_path: Path) -> None:
    root = tmp_path.joinpath(*["a-rather-long-folder-name"] * 6)
    root.mkdir(parents=True)
    assert len(str(lending.socket_path(root))) > 108  # over the limit of a socket address
    lends: list[int] = []

    @contextmanager
    def lend(borrower: lending.Borrower) -> Iterator[None]:
        lends.append(borrower.pid)
        yield

    lender = lending.Lender(root=root, store_path=root / "churnguard.duckdb", lend=lend)
    assert lender.start()
    try:
        lease = lending.borrow(root / "churnguard.duckdb", wait_s=30)
        assert lease is not None and lends == [os.getpid()]
        lease.release()
    finally:
        lender.stop()
    assert not lending.socket_path(root).exists()


def test_while_lent_the_book_answers_a_scored_customer_without_reasons_but_not_a_marked_one(
        ) -> None:
    # Nothing can compute reasons while a command has the store, so the probability is
    # answered alone; a customer with events newer than the table must still be recomputed.
    book = RiskBook()
    ticket = book.ticket()
    scored = {u: CustomerRisk(user_id=u, as_of=NOW, model_version="v1", status="active",
                              p_churn=0.5, risk_tier="medium", reasons={}) for u in ("a", "b")}
    assert book.install(scored, {"a", "b"}, as_of=NOW, version="v1", ticket=ticket)
    book.mark(["b"])
    assert book.lookup("a") == ("miss", None)
    assert book.lookup("a", without_reasons=True) == ("hit", scored["a"])
    assert book.lookup("b", without_reasons=True) == ("miss", None)
    # Erased while lent: the customers the store no longer knows are found and forgotten.
    assert book.known_but_not_in(frozenset({"b"})) == ["a"]


# -- one served project for the fast tests of this module ----------------------------------------
@pytest.fixture(scope="module")
def served(template_project: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Path, Server]]:
    root = tmp_path_factory.mktemp("lend") / "project"
    shutil.copytree(template_project, root)
    with serving(root) as server:
        yield root, server


@pytest.fixture()
def http(served: tuple[Path, Server]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served[1].url, timeout=120) as client:
        yield client


def test_the_socket_is_private_to_the_user(served: tuple[Path, Server]) -> None:
    path = lending.socket_path(served[0])
    mode = path.lstat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600


def test_a_command_reads_and_writes_while_the_service_runs_and_the_service_sees_the_write(
        served: tuple[Path, Server], http: httpx.Client, template_project: Path,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = served
    monkeypatch.setenv("CHURNGUARD_LOCK_WAIT", "60")
    newcomer = "lend-newcomer-1"
    # The service does not know the customer yet.
    assert http.get(f"/v1/users/{newcomer}/risk", headers=headers(READ)).status_code == 404

    code, out = run_cli(["status", "--project", str(root)], capsys)
    assert code == 0, out
    assert not any(word in out for word in LOCK_WORDS)

    ts = (newest_event(template_project) - pd.Timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    code, out = run_cli(["ingest", "events", str(events_file(tmp_path / "new.csv", newcomer, ts)),
                         "--project", str(root)], capsys)
    assert code == 0, out
    # The service has the store back and its answers include the command's write.
    timeline = http.get(f"/v1/users/{newcomer}", headers=headers(READ))
    assert timeline.status_code == 200 and timeline.json()["events_total"] == 1
    risk = http.get(f"/v1/users/{newcomer}/risk", headers=headers(READ))
    assert risk.status_code == 200, risk.text
    assert risk.json()["status"] == "active" and 0 <= risk.json()["p_churn"] <= 1
    assert "X-Churnguard-Store-Lent-Since" not in risk.headers
    # ... and it writes again itself.
    posted = http.post("/v1/events", headers=headers(WRITE), json={"events": [
        {"user_id": newcomer, "ts": ts.replace("Z", "+00:00"), "type": "visit"}]})
    assert posted.status_code == 200, posted.text


def test_the_service_answers_risk_while_a_command_holds_the_store_and_recovers_from_kill_9(
        served: tuple[Path, Server], http: httpx.Client, template_project: Path) -> None:
    root, server = served
    customer = a_scored_customer(template_project)
    before = http.get(f"/v1/users/{customer}/risk", headers=headers(READ))
    assert before.status_code == 200, before.text

    borrower = borrow_in_another_process(root, 600)
    try:
        during = http.get(f"/v1/users/{customer}/risk", headers=headers(READ))
        assert during.status_code == 200, during.text
        # Answered from memory: the same answer, marked as not holding what the command writes.
        assert during.json()["p_churn"] == before.json()["p_churn"]
        since = during.headers["X-Churnguard-Store-Lent-Since"]
        assert since.endswith("Z") and pd.Timestamp(since) <= pd.Timestamp.now(tz="UTC")
        ready = http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready", ready.text
        # A write needs the store: the service journals it on disk and says so (202); it is
        # stored when the store comes back (service/journal.py).
        queued = http.post("/v1/events", headers=headers(WRITE), json={"events": [
            {"user_id": "lend-queued", "ts": "2020-01-01T00:00:00+00:00", "type": "visit"}]})
        assert queued.status_code == 202, queued.text
        assert queued.json()["status"] == "queued" and queued.json()["received"] == 1
        assert queued.json()["store_lent_since"] is not None
    finally:
        borrower.send_signal(signal.SIGKILL)  # kill -9: no chance to give the store back
        borrower.wait(timeout=STOP_TIMEOUT_S)

    # The kernel closed the borrower's socket: the service opened the store again, stored the
    # journal and serves writes (one arriving before that is journaled too: 202).
    def writes_again() -> bool:
        answer = http.post("/v1/events", headers=headers(WRITE), json={"events": [
            {"user_id": customer, "ts": "2020-01-01T00:00:00+00:00", "type": "visit"}]})
        if answer.status_code == 202:
            assert answer.json()["status"] == "queued"
            return False
        assert answer.status_code == 200, answer.text
        return True

    wait_for(writes_again, "the service serving writes after its borrower was killed")
    # The journaled request was stored, once.
    timeline = http.get("/v1/users/lend-queued", headers=headers(READ))
    assert timeline.status_code == 200 and timeline.json()["events_total"] == 1
    after = http.get(f"/v1/users/{customer}/risk", headers=headers(READ))
    assert after.status_code == 200 and "X-Churnguard-Store-Lent-Since" not in after.headers
    assert server.proc.poll() is None
    assert "Traceback" not in server.log


def test_commands_take_turns_and_a_waiting_one_names_the_borrower_ahead(
        served: tuple[Path, Server], http: httpx.Client, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    root, _ = served
    first = borrow_in_another_process(root, 600)
    try:
        monkeypatch.setenv("CHURNGUARD_LOCK_WAIT", "0")  # the handover minimum still applies
        code, out = run_cli(["status", "--project", str(root)], capsys)
        assert code == 2, out
        assert f"process {first.pid}" in out and "CHURNGUARD_LOCK_WAIT" in out
    finally:
        first.communicate("done\n", timeout=STOP_TIMEOUT_S)

    # A borrower ahead of us: we wait for our turn (it cannot come while the other holds the
    # store) and then run.
    second = borrow_in_another_process(root, 600)
    monkeypatch.setenv("CHURNGUARD_LOCK_WAIT", "120")
    codes: list[int] = []
    waiter = threading.Thread(target=lambda: codes.append(
        main(["status", "--project", str(root)])))
    waiter.start()
    waiter.join(timeout=3)
    assert waiter.is_alive() and not codes  # waiting, not failed
    out, err = second.communicate("done\n", timeout=STOP_TIMEOUT_S)
    assert second.returncode == 0 and out.strip() == "returned", err
    waiter.join(timeout=RECOVER_TIMEOUT_S)
    assert codes == [0], capsys.readouterr()


def test_a_borrow_for_another_projects_store_is_refused(
        served: tuple[Path, Server], http: httpx.Client, tmp_path: Path) -> None:
    root, _ = served
    other = tmp_path / "other"
    assert main(["init", str(other)]) == 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        with lending._address(lending.socket_path(root)) as address:
            sock.connect(address)
        sock.sendall(json.dumps({"op": "borrow", "protocol": lending.PROTOCOL,
                                 "store": str(other / "churnguard.duckdb"), "pid": os.getpid(),
                                 "command": "test", "read_only": False}).encode() + b"\n")
        reply = json.loads(sock.makefile().readline())
    assert reply["lent"] is False and "serves" in reply["error"]
    # Nothing was lent: the service's store is open and it writes.
    posted = http.post("/v1/events", headers=headers(WRITE), json={"events": [
        {"user_id": "lend-other", "ts": "2020-01-01T00:00:00+00:00", "type": "visit"}]})
    assert posted.status_code == 200, posted.text


def test_a_socket_left_by_a_killed_service_is_ignored_by_commands_and_replaced(
        project_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("CHURNGUARD_LOCK_WAIT", "60")
    path = lending.socket_path(project_dir)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with lending._address(path) as address:
        stale.bind(address)
    stale.close()  # the file stays; nobody listens: what a killed service leaves
    assert path.exists()
    code, out = run_cli(["status", "--project", str(project_dir)], capsys)
    assert code == 0, out
    with serving(project_dir) as server:
        assert lending.socket_path(project_dir).exists()
        code, out = run_cli(["status", "--project", str(project_dir)], capsys)
        assert code == 0, out
        server.proc.send_signal(signal.SIGINT)
        server.proc.wait(timeout=STOP_TIMEOUT_S)
    assert server.proc.returncode == 0, server.log
    assert not path.exists()  # a clean stop removes it


def test_the_service_stops_cleanly_while_a_command_borrows_and_the_command_finishes(
        project_dir: Path) -> None:
    with serving(project_dir) as server:
        borrower = borrow_in_another_process(project_dir, 600)
        server.proc.send_signal(signal.SIGINT)
        # The service stops without waiting for the command (which holds until told)...
        server.proc.wait(timeout=STOP_TIMEOUT_S)
        assert borrower.poll() is None
        # ... and the command, told to finish, still has the file and ends as it would anyway.
        out, err = borrower.communicate("done\n", timeout=STOP_TIMEOUT_S)
        assert borrower.returncode == 0 and out.strip() == "returned", err
    assert server.proc.returncode == 0, server.log
    assert "Traceback" not in server.log and "ERROR" not in server.log, server.log
    assert not lending.socket_path(project_dir).exists()
    with Store.open(project_dir / "churnguard.duckdb", read_only=True) as store:
        assert store.table_counts()["events"] > 0  # the file is whole and free


# -- every command ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shop:
    root: Path
    work: Path
    inputs: Path
    customer: str
    newest: pd.Timestamp


def _p(shop: Shop) -> list[str]:
    return ["--project", str(shop.root)]


# argv (after the command's name) and the exit code it has without a service. Every command of
# the group that opens a store has a row; a command added without one fails the test below.
ARGS: dict[str, Callable[[Shop], tuple[list[str], int]]] = {
    "init": lambda s: ([str(s.root)], 0),
    "status": lambda s: (_p(s), 0),
    "churn preview": lambda s: (_p(s), 0),
    "ingest items": lambda s: ([str(s.inputs / "items.parquet"), *_p(s)], 0),
    "ingest users": lambda s: ([str(s.inputs / "users.parquet"), *_p(s)], 0),
    "ingest events": lambda s: ([str(events_file(s.work / "ev.csv", "lend-new-2",
                                                 s.newest.strftime("%Y-%m-%dT%H:%M:%SZ"))),
                                 *_p(s)], 0),
    "ingest campaigns": lambda s: ([str(s.inputs / "campaigns.parquet"), *_p(s)], 0),
    "ingest labels": lambda s: ([str(_labels(s)), *_p(s)], 0),
    "ingest quarantine": lambda s: (_p(s), 0),
    "models": lambda s: (_p(s), 0),
    "explain": lambda s: ([s.customer, *_p(s)], 0),
    "score": lambda s: (["--out", str(s.work / "scores.csv"), *_p(s)], 0),
    "features": lambda s: (["--out", str(s.work / "features.parquet"), *_p(s)], 0),
    "train": lambda s: (["--models", "recency", "--no-promote", *_p(s)], 0),
    "backtest": lambda s: (["--models", "recency", "--train-cutoffs", "1", *_p(s)], 0),
    "uplift evaluate": lambda s: (["--folds", "2", *_p(s)], 0),
    "uplift score": lambda s: (["--out", str(s.work / "uplift.csv"), *_p(s)], 0),
    "plan": lambda s: (["--budget", "50", "--campaign-id", "lend-plan", *_p(s)], 0),
    "deliver": lambda s: (["lend-plan", "--out", str(s.work / "deliveries.jsonl"), *_p(s)], 0),
    # The planned campaign's outcome window has not passed: refused as not yet measurable.
    "measure": lambda s: (["lend-plan", *_p(s)], 2),
    "report": lambda s: (["--out", str(s.work / "report.html"), *_p(s)], 0),
    "pretrain": lambda s: (["--epochs", "1", "--max-customers", "100",
                            "--out", str(s.work / "encoder"), *_p(s)], 0),
    "erase": lambda s: ([s.customer, *_p(s)], 0),
    # An unknown version is refused (exit 2) after the registry was read.
    "models show": lambda s: (["no-such-version", *_p(s)], 2),
    "models challenge": lambda s: (_p(s), 0),
    "models decisions": lambda s: (["--json", *_p(s)], 0),
    "models rollback": lambda s: (["--to", "no-such-version", "--reason", "lend test", *_p(s)], 2),
    "monitor": lambda s: (["--json", *_p(s)], 0),
    "run": lambda s: (["--steps", "ingest,score,monitor", *_p(s)], 0),
    "cycles": lambda s: (["--json", *_p(s)], 0),
    "voice": lambda s: (["--json", "--days", "30", *_p(s)], 0),
    # The template's shop again (service/conftest.py: 300 customers, 420 days, seed 5), so
    # the simulator's truth matches the store's data.
    "demo": lambda s: (["--users", "300", "--days", "420", "--seed", "5", "--no-behaviour",
                        *_p(s)], 0),
}
# Commands that open no store, with the reason.
NO_STORE = {
    "serve": "it is the service itself",
    "simulate": "it writes a simulated shop's files and opens no store",
}


def _labels(shop: Shop) -> Path:
    path = shop.work / "labels.csv"
    path.write_text(f"user_id,as_of,churned\n{shop.customer},2020-01-01,1\n", encoding="utf-8")
    return path


def command_names(group: click.Group = cli, prefix: str = "") -> list[str]:
    names = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            names.extend(command_names(command, f"{prefix}{name} "))
        else:
            names.append(prefix + name)
    return names


def test_every_command_has_a_row_or_a_reason() -> None:
    missing = [n for n in command_names() if n not in ARGS and n not in NO_STORE]
    assert not missing, f"add these commands to ARGS (or NO_STORE, with a reason): {missing}"


@pytest.mark.slow
def test_every_command_works_while_the_service_runs(
        project_dir: Path, template_project: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CHURNGUARD_LOCK_WAIT", "600")
    shop = Shop(root=project_dir, work=tmp_path, inputs=template_project.parent / "inputs",
                customer=a_scored_customer(template_project),
                newest=newest_event(template_project))
    # "erase" and "demo" change the shop the most: last.
    order = sorted((n for n in command_names() if n in ARGS),
                   key=lambda n: (n == "demo", n == "erase", list(ARGS).index(n)))
    ran = []
    with serving(project_dir) as server, \
            httpx.Client(base_url=server.url, timeout=120) as http:
        for name in order:
            args, expected = ARGS[name](shop)
            code, out = run_cli([*name.split(), *args], capsys)
            assert code == expected, f"churnguard {name}: exit {code}\n{out}"
            assert not any(word in out for word in LOCK_WORDS), f"churnguard {name}:\n{out}"
            # The service keeps answering between commands, from the store it has back.
            health = http.get(f"/v1/users/{shop.customer}", headers=headers(ADMIN))
            assert health.status_code in (200, 404), f"after {name}: {health.text}"
            if name == "erase":  # the service forgot what it kept in memory, too
                assert health.status_code == 404
                gone = http.get(f"/v1/users/{shop.customer}/risk", headers=headers(READ))
                assert gone.status_code == 404, gone.text
            ran.append(name)
        assert server.proc.poll() is None, server.log
    assert server.proc.returncode == 0, server.log
    assert "Traceback" not in server.log, server.log
    assert set(ran) == {n for n in command_names() if n not in NO_STORE}
