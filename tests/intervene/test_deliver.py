"""Delivery: every contacted customer exactly once, through receiver crashes and sender crashes.

The receiver is tests/intervene/webhook_server.py, a real HTTP server in a subprocess.
"""

from __future__ import annotations

import collections
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from churnguard.ingest import FAULT_ENV, FAULT_EXIT_CODE
from churnguard.intervene.deliver import (
    EXPORT_SUFFIXES,
    FAULT_AFTER_POST,
    PLAN_COLUMNS,
    DeliveryError,
    deliver_plan,
    export_plan,
    idempotency_key,
)
from churnguard.store import Store

SERVER = Path(__file__).with_name("webhook_server.py")
FAST = {"backoff_s": 0.001, "timeout_s": 5.0}  # back-off small enough for seconds-long tests
ACTIONS = ("recommendation", "coupon_10", "cs_outreach")


# --- fixtures and helpers -------------------------------------------------------------------------

def add_plan(store: Store, campaign_id: str = "c1", *, contacted: int = 40, control: int = 6,
             no_action: int = 4) -> dict[str, set[str]]:
    """Insert a plan with the given numbers of contacted, control and no-action customers."""
    groups: dict[str, set[str]] = {"contacted": set(), "control": set(), "none": set()}
    rows = []
    for i in range(contacted + control + no_action):
        user = f"u{i:04d}"
        if i < contacted:
            group, action, is_control = "contacted", ACTIONS[i % len(ACTIONS)], False
        elif i < contacted + control:
            group, action, is_control = "control", ACTIONS[i % len(ACTIONS)], True
        else:
            group, action, is_control = "none", "none", False
        groups[group].add(user)
        items = json.dumps([f"item{i}", f"item{i + 1}"] if i % 5 else [])
        rows.append((campaign_id, user, action, is_control, ["high", "medium"][i % 2],
                     0.1 + i / 1000, 0.01 * (i % 7), 12.5 + i, 0.05 * i, 1.0 / (i + 3), "email",
                     items, f"Hello {user}, we miss you", f"{user}，我们想念您",
                     "control" if is_control else "model"))  # fmt: skip
    with store.transaction() as con:
        con.execute(
            "INSERT INTO plans VALUES (?, now()::TIMESTAMP, TIMESTAMP '2024-06-01', 1000, "
            "'planned', '{}', '{}')",
            [campaign_id],
        )
        con.executemany(f"INSERT INTO plan_rows ({', '.join(PLAN_COLUMNS)}) "
                        f"VALUES ({', '.join('?' * len(PLAN_COLUMNS))})", rows)
    return groups


class Receiver:
    """The webhook server in a subprocess, with its files. The server binds a free port itself
    and says which; a restarted server gets a fresh one (``url`` follows it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.url = ""
        self.out = folder / "received.jsonl"
        self.requests = folder / "requests.jsonl"
        self.proc: subprocess.Popen[str] | None = None

    def start(self, *flags: str) -> Receiver:
        self.stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER), "--out", str(self.out),
             "--requests-log", str(self.requests), *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("listening on http://127.0.0.1:"), \
            self.proc.stderr.read()  # type: ignore[union-attr]
        self.url = f"{line.split()[-1]}/hooks/churnguard"
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
        if self.proc is not None:
            self.proc.wait(timeout=10)
            self.proc.stdout.close()  # type: ignore[union-attr]
            self.proc.stderr.close()  # type: ignore[union-attr]

    def recorded(self) -> list[dict]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text(encoding="utf-8").splitlines()]

    def requests_seen(self) -> list[dict]:
        if not self.requests.exists():
            return []
        return [json.loads(line) for line in self.requests.read_text().splitlines()]


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    r = Receiver(tmp_path)
    yield r
    r.stop()


def log(store: Store, campaign_id: str = "c1") -> dict[str, tuple]:
    rows = store.con.execute(
        "SELECT user_id, status, attempts, last_status_code, last_error, idempotency_key, target "
        "FROM deliveries WHERE campaign_id = ?",
        [campaign_id],
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def plan_status(store: Store, campaign_id: str = "c1") -> str:
    return store.con.execute("SELECT status FROM plans WHERE campaign_id = ?",
                             [campaign_id]).fetchall()[0][0]


def assert_exactly_once(records: list[dict], groups: dict[str, set[str]]) -> None:
    counts = collections.Counter(r["user_id"] for r in records)
    assert set(counts) == groups["contacted"]
    assert set(counts.values()) == {1}


def assert_never_requested(requests: list[dict], groups: dict[str, set[str]]) -> None:
    requested = {u for r in requests for u in r["user_ids"]}
    assert requested, "no request reached the receiver"
    assert not requested & groups["control"]
    assert not requested & groups["none"]


# --- the acceptance test --------------------------------------------------------------------------

def test_receiver_failing_and_killed_then_rerun_delivers_each_customer_exactly_once(
    tmp_path: Path, receiver: Receiver
) -> None:
    """A receiver that fails ~30% of requests and dies after 4 accepted batches; restarted;
    delivery rerun: every contacted customer recorded exactly once, no control, all `sent`."""
    with Store.open(tmp_path / "churnguard.duckdb", threads=1) as store:
        groups = add_plan(store, contacted=200, control=25, no_action=25)
        receiver.start("--fail-rate", "0.3", "--seed", "3", "--exit-after", "4")
        report = deliver_plan(store, campaign_id="c1", webhook=receiver.url, batch_size=20,
                              max_attempts=4, **FAST)
        # The 4th accepted batch killed the server before it answered: three batches were sent,
        # the other seven failed (retried, then given up) and are recorded as such.
        assert receiver.proc.wait(timeout=10) == 3  # type: ignore[union-attr]
        assert (report.sent, report.already_sent, report.failed) == (60, 0, 140)
        assert not report.complete and report.total == 200
        assert len(report.errors) == 7 and all("attempts)" in e for e in report.errors)
        first = log(store)
        assert collections.Counter(v[0] for v in first.values()) == {"sent": 60, "failed": 140}
        assert all(v[3] for v in first.values() if v[0] == "failed")  # last_error kept
        assert plan_status(store) == "partially_delivered"
        assert len(receiver.recorded()) == 80  # the receiver holds the unanswered batch too

        receiver.start()  # restarted, healthy, same files (a fresh port: receiver.url follows)
        again = deliver_plan(store, campaign_id="c1", webhook=receiver.url, batch_size=20,
                             max_attempts=4, **FAST)
        assert (again.sent, again.already_sent, again.failed) == (140, 60, 0)
        assert again.complete
        final = log(store)
        assert {v[0] for v in final.values()} == {"sent"}
        assert set(final) == groups["contacted"]
        assert plan_status(store) == "delivered"

    assert_exactly_once(receiver.recorded(), groups)
    assert_never_requested(receiver.requests_seen(), groups)
    # Sent rows were never sent again by the rerun; only the unanswered batch went twice.
    accepted = collections.Counter(u for r in receiver.requests_seen() if r["status"] == 200
                                   for u in r["user_ids"])
    assert sum(1 for n in accepted.values() if n == 2) == 20
    recorded = {r["user_id"]: r for r in receiver.recorded()}
    assert all(recorded[u]["idempotency_key"] == idempotency_key("c1", u) for u in recorded)
    assert all(r["campaign_id"] == "c1" and r["action"] != "none" for r in recorded.values())


# --- crash of the delivering process --------------------------------------------------------------

def run_crashing_delivery(store_path: Path, target: str) -> subprocess.CompletedProcess[str]:
    script = textwrap.dedent(f"""
        from churnguard.intervene.deliver import deliver_plan
        from churnguard.store import Store
        with Store.open({str(store_path)!r}, threads=1) as s:
            deliver_plan(s, campaign_id="c1", {target}, batch_size=10, backoff_s=0.001)
        print("not reached")
    """)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, FAULT_ENV: FAULT_AFTER_POST}, timeout=120)


def test_sender_crash_after_post_then_rerun_is_exactly_once_at_the_receiver(
    tmp_path: Path, receiver: Receiver
) -> None:
    path = tmp_path / "churnguard.duckdb"
    with Store.open(path, threads=1) as store:
        groups = add_plan(store, contacted=35)
    receiver.start()
    proc = run_crashing_delivery(path, f"webhook={receiver.url!r}")
    assert proc.returncode == FAULT_EXIT_CODE, proc.stderr
    assert "not reached" not in proc.stdout
    assert len(receiver.recorded()) == 10  # the receiver got the first batch ...

    with Store.open(path, threads=1) as store:
        # ... the sender never recorded it: every row is still pending, none is lost.
        assert {v[0] for v in log(store).values()} == {"pending"}
        assert set(log(store)) == groups["contacted"]
        report = deliver_plan(store, campaign_id="c1", webhook=receiver.url, batch_size=10, **FAST)
        assert (report.sent, report.already_sent, report.failed) == (35, 0, 0)
        assert plan_status(store) == "delivered"
    assert_exactly_once(receiver.recorded(), groups)  # the resent batch was deduped on its keys
    requested = collections.Counter(u for r in receiver.requests_seen() for u in r["user_ids"])
    assert sorted(requested.values()).count(2) == 10
    assert_never_requested(receiver.requests_seen(), groups)


def test_sender_crash_writing_a_file_then_rerun_writes_each_customer_once(tmp_path: Path) -> None:
    path, out = tmp_path / "churnguard.duckdb", tmp_path / "out" / "deliveries.jsonl"
    with Store.open(path, threads=1) as store:
        groups = add_plan(store, contacted=25)
    proc = run_crashing_delivery(path, f"out={str(out)!r}")
    assert proc.returncode == FAULT_EXIT_CODE, proc.stderr
    with open(out, "a", encoding="utf-8") as fh:
        fh.write('{"campaign_id": "c1", "idempo')  # and a line torn by the crash
    with Store.open(path, threads=1) as store:
        report = deliver_plan(store, campaign_id="c1", out=out, batch_size=10)
        assert (report.sent, report.failed) == (25, 0)
        assert report.target == out.resolve().as_uri()
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert_exactly_once(records, groups)


# --- the delivery log, reruns, payload ------------------------------------------------------------

def test_rerun_after_success_sends_nothing(store: Store, receiver: Receiver) -> None:
    groups = add_plan(store)
    receiver.start()
    seen: list[tuple[int, int]] = []
    first = deliver_plan(store, campaign_id="c1", webhook=receiver.url, batch_size=15,
                         progress=lambda done, total: seen.append((done, total)), **FAST)
    assert (first.sent, first.already_sent, first.failed, first.attempts) == (40, 0, 0, 3)
    assert first.target == receiver.url
    assert seen == [(0, 40), (15, 40), (30, 40), (40, 40)]
    second = deliver_plan(store, campaign_id="c1", webhook=receiver.url, **FAST)
    assert (second.sent, second.already_sent, second.failed, second.attempts) == (0, 40, 0, 0)
    assert len(receiver.requests_seen()) == 3
    assert_exactly_once(receiver.recorded(), groups)
    entry = log(store)["u0001"]
    assert entry[:3] == ("sent", 1, 200) and entry[3] is None
    assert entry[4] == idempotency_key("c1", "u0001")


def test_request_carries_the_plan_row_and_never_a_control(store: Store, receiver: Receiver) -> None:
    groups = add_plan(store, contacted=5, control=5, no_action=5)
    receiver.start()
    deliver_plan(store, campaign_id="c1", webhook=receiver.url, **FAST)
    assert_never_requested(receiver.requests_seen(), groups)
    recorded = {r["user_id"]: r for r in receiver.recorded()}
    assert recorded["u0001"] == {
        "campaign_id": "c1", "idempotency_key": idempotency_key("c1", "u0001"),
        "user_id": "u0001", "action": "coupon_10", "channel": "email",
        "items": ["item1", "item2"], "message_en": "Hello u0001, we miss you",
        "message_zh": "u0001，我们想念您",
    }  # fmt: skip
    assert recorded["u0000"]["items"] == []


def test_idempotency_key_is_stable_and_per_campaign(store: Store, receiver: Receiver) -> None:
    add_plan(store, "c1", contacted=3, control=0, no_action=0)
    add_plan(store, "c2", contacted=3, control=0, no_action=0)
    receiver.start()
    for campaign in ("c1", "c2"):
        deliver_plan(store, campaign_id=campaign, webhook=receiver.url, **FAST)
    keys = store.con.execute(
        "SELECT campaign_id, user_id, idempotency_key FROM deliveries").fetchall()
    assert all(key == idempotency_key(c, u) for c, u, key in keys)  # SQL and Python agree
    assert len({key for _, _, key in keys}) == 6
    assert idempotency_key("c1", "u1") == idempotency_key("c1", "u1") != idempotency_key("c2", "u1")


# --- retries --------------------------------------------------------------------------------------

def test_retry_honours_retry_after(store: Store, receiver: Receiver) -> None:
    add_plan(store, contacted=4, control=0, no_action=0)
    receiver.start("--script", "429", "--retry-after", "0.4")
    started = time.monotonic()
    report = deliver_plan(store, campaign_id="c1", webhook=receiver.url, **FAST)
    assert time.monotonic() - started >= 0.4  # the back-off alone would wait about 1 ms
    assert (report.sent, report.failed, report.attempts) == (4, 0, 2)
    assert [r["status"] for r in receiver.requests_seen()] == [429, 200]
    assert {v[:3] for v in log(store).values()} == {("sent", 2, 200)}


def test_400_is_not_retried_and_the_next_batch_still_goes(store: Store, receiver: Receiver) -> None:
    add_plan(store, contacted=20, control=0, no_action=0)
    receiver.start("--script", "400")
    report = deliver_plan(store, campaign_id="c1", webhook=receiver.url, batch_size=10, **FAST)
    assert (report.sent, report.failed, report.attempts) == (10, 10, 2)
    assert [r["status"] for r in receiver.requests_seen()] == [400, 200]
    failed = {u: v for u, v in log(store).items() if v[0] == "failed"}
    assert len(failed) == 10
    assert {v[1:3] for v in failed.values()} == {(1, 400)}
    # The receiver's answer is not kept, only its size (issue 16, item 8).
    assert all(v[3].startswith("HTTP 400 Bad Request (a ") and "-byte body, not kept)" in v[3]
               for v in failed.values())
    assert report.errors == (next(iter(failed.values()))[3],)
    assert plan_status(store) == "partially_delivered"

    rerun = deliver_plan(store, campaign_id="c1", webhook=receiver.url, batch_size=10, **FAST)
    assert (rerun.sent, rerun.already_sent, rerun.failed) == (10, 10, 0)
    assert plan_status(store) == "delivered"
    assert {v[1] for u, v in log(store).items() if u in failed} == {2}  # attempts accumulate


def test_5xx_exhausts_max_attempts_and_records_the_last_status(store: Store,
                                                             receiver: Receiver) -> None:
    add_plan(store, contacted=3, control=0, no_action=0)
    receiver.start("--fail-rate", "1", "--fail-statuses", "503")
    report = deliver_plan(store, campaign_id="c1", webhook=receiver.url, max_attempts=3, **FAST)
    assert (report.sent, report.failed, report.attempts) == (0, 3, 3)
    assert len(receiver.requests_seen()) == 3
    assert {v[:3] for v in log(store).values()} == {("failed", 3, 503)}
    assert report.errors[0].startswith("HTTP 503 Service Unavailable")
    assert report.errors[0].endswith("(after 3 attempts)")


def test_connection_refused_is_recorded_not_swallowed(store: Store) -> None:
    add_plan(store, contacted=3, control=0, no_action=0)
    # A port held by this test but not listening: connecting is refused, and no other process
    # can take the port meanwhile.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{held.getsockname()[1]}/hook"
        report = deliver_plan(store, campaign_id="c1", webhook=url, max_attempts=2, **FAST)
    assert (report.sent, report.failed, report.attempts) == (0, 3, 2)
    assert report.errors[0].startswith("ConnectError: ")
    assert {(v[0], v[1], v[2]) for v in log(store).values()} == {("failed", 2, None)}
    assert all(v[3].startswith("ConnectError: ") for v in log(store).values())


# --- errors ---------------------------------------------------------------------------------------

def test_unknown_campaign_names_the_known_ones(store: Store, tmp_path: Path) -> None:
    with pytest.raises(DeliveryError) as err:
        deliver_plan(store, campaign_id="nope", out=tmp_path / "d.jsonl")
    assert str(err.value) == ("unknown campaign 'nope': the store has no plans yet; "
                              "run `churnguard plan` first")
    add_plan(store, "spring")
    with pytest.raises(DeliveryError) as err:
        export_plan(store, campaign_id="nope", path=tmp_path / "p.csv")
    assert str(err.value) == "unknown campaign 'nope'; the store's campaigns, newest first: spring"
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "example.com/hook", "file:///tmp/x"])
def test_webhook_must_be_http(store: Store, url: str) -> None:
    add_plan(store)
    with pytest.raises(DeliveryError, match=r"is not an http\(s\) URL"):
        deliver_plan(store, campaign_id="c1", webhook=url)
    assert log(store) == {}


def test_webhook_or_out_not_both(store: Store, tmp_path: Path) -> None:
    add_plan(store)
    with pytest.raises(DeliveryError, match="either a webhook URL or an output file"):
        deliver_plan(store, campaign_id="c1")
    with pytest.raises(DeliveryError, match="either a webhook URL or an output file"):
        deliver_plan(store, campaign_id="c1", webhook="http://x", out=tmp_path / "d.jsonl")


def test_a_plan_without_contacts_is_delivered_with_nothing_sent(store: Store,
                                                               tmp_path: Path) -> None:
    add_plan(store, contacted=0, control=3, no_action=3)
    report = deliver_plan(store, campaign_id="c1", out=tmp_path / "d.jsonl")
    assert (report.sent, report.total) == (0, 0)
    assert plan_status(store) == "delivered"
    assert (tmp_path / "d.jsonl").read_text() == ""


# --- export ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", EXPORT_SUFFIXES)
def test_export_round_trips(store: Store, tmp_path: Path, suffix: str) -> None:
    add_plan(store, contacted=10, control=3, no_action=2)
    path = tmp_path / "exports" / f"plan{suffix}"
    assert export_plan(store, campaign_id="c1", path=path) == 15
    expected = store.con.execute(
        f"SELECT {', '.join(PLAN_COLUMNS)} FROM plan_rows ORDER BY user_id").df()
    expected["items"] = [json.loads(x) for x in expected["items"]]
    if suffix == ".csv":
        got = pd.read_csv(path, keep_default_na=False, na_values=[""])
        got["items"] = [json.loads(x) for x in got["items"]]
    elif suffix == ".parquet":
        got = pd.read_parquet(path)
        got["items"] = [list(x) for x in got["items"]]
    else:
        got = pd.read_json(path, lines=suffix == ".jsonl", dtype=False)
    assert list(got.columns) == list(PLAN_COLUMNS)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert got["is_control"].sum() == 3
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_export_replaces_an_older_file_whole(store: Store, tmp_path: Path) -> None:
    add_plan(store, contacted=2, control=0, no_action=0)
    path = tmp_path / "plan.jsonl"
    path.write_text("old\n" * 100)
    assert export_plan(store, campaign_id="c1", path=path) == 2
    assert [json.loads(line)["user_id"] for line in path.read_text().splitlines()] == [
        "u0000", "u0001"]


def test_export_unknown_suffix(store: Store, tmp_path: Path) -> None:
    add_plan(store)
    with pytest.raises(ValueError) as err:
        export_plan(store, campaign_id="c1", path=tmp_path / "plan.xlsx")
    assert str(err.value) == (f"{tmp_path / 'plan.xlsx'}: cannot export a plan as .xlsx; "
                              "use one of .csv, .json, .jsonl, .parquet")
