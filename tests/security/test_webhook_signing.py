"""Issue 16, item 8: webhook requests are signed, go only to allowed hosts, and the receiver's
answers are not copied into the delivery log.

The receiver here verifies signatures with the code docs/deliver.md gives to receivers
(:func:`verify`), so the test also holds the documentation to what churnguard sends."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from churnguard.intervene.deliver import DeliveryError, deliver_plan
from churnguard.store import Store

SECRET = "whsec-test-0123456789"
PERSONAL = "alice@example.com called 13800138000"


def verify(secret: str, timestamp: str, signature: str, body: bytes,
           tolerance_s: int = 300) -> bool:
    """The receiver's check, as docs/deliver.md writes it."""
    if abs(time.time() - int(timestamp)) > tolerance_s:
        return False  # too old (or from the future): a replay
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature, "v1=" + expected)


class Receiver(ThreadingHTTPServer):
    def __init__(self, status: int = 200, answer: bytes = b"{}") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)  # port 0: the OS picks a free one
        self.status, self.answer = status, answer
        self.requests: list[tuple[dict[str, str], bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(self.server.status)
        self.send_header("Content-Length", str(len(self.server.answer)))
        self.end_headers()
        self.wfile.write(self.server.answer)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture()
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    server = Receiver(*getattr(request, "param", ()))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    """A planned campaign with three contacted customers and one control."""
    with Store.open(tmp_path / "churnguard.duckdb") as store:
        store.con.execute("INSERT INTO plans VALUES ('camp', now(), now(), 50, 'planned', '{}', "
                          "'{}')")
        for k, control in enumerate((False, False, False, True)):
            store.con.execute(
                "INSERT INTO plan_rows (campaign_id, user_id, action, is_control, channel, "
                "items, message_en, message_zh) VALUES ('camp', ?, 'coupon_10', ?, 'email', "
                "'[\"i1\"]', 'Hi', '你好')", [f"u{k}", control])
        yield store


def test_every_request_is_signed_over_its_timestamp_and_body(store: Store, receiver: Receiver,
                                                             monkeypatch) -> None:
    monkeypatch.setenv("CHURNGUARD_WEBHOOK_SECRET", SECRET)
    report = deliver_plan(store, campaign_id="camp", webhook=receiver.url, batch_size=2)
    assert (report.sent, report.failed) == (3, 0) and len(receiver.requests) == 2
    for headers, body in receiver.requests:
        timestamp, signature = headers["x-churnguard-timestamp"], headers["x-churnguard-signature"]
        assert verify(SECRET, timestamp, signature, body)
        assert not verify("another-secret", timestamp, signature, body)
        assert not verify(SECRET, timestamp, signature, body.replace(b"coupon_10", b"coupon_99"))
        assert not verify(SECRET, str(int(timestamp) - 3600), signature, body)  # replayed later
    sent = [d["user_id"] for _, body in receiver.requests
            for d in json.loads(body)["deliveries"]]
    assert sorted(sent) == ["u0", "u1", "u2"]


def test_without_a_secret_nothing_claims_to_be_signed(store: Store, receiver: Receiver,
                                                      monkeypatch) -> None:
    monkeypatch.delenv("CHURNGUARD_WEBHOOK_SECRET", raising=False)
    deliver_plan(store, campaign_id="camp", webhook=receiver.url)
    assert all("x-churnguard-signature" not in h for h, _ in receiver.requests)


def test_a_host_outside_the_allow_list_gets_nothing(store: Store, receiver: Receiver,
                                                    monkeypatch) -> None:
    monkeypatch.setenv("CHURNGUARD_WEBHOOK_HOSTS", "crm.example.com, hooks.example.org")
    with pytest.raises(DeliveryError, match="127.0.0.1.*CHURNGUARD_WEBHOOK_HOSTS"):
        deliver_plan(store, campaign_id="camp", webhook=receiver.url)
    assert receiver.requests == []
    assert store.con.execute("SELECT count(*) FROM deliveries").fetchall() == [(0,)]
    monkeypatch.setenv("CHURNGUARD_WEBHOOK_HOSTS", "crm.example.com,127.0.0.1")
    assert deliver_plan(store, campaign_id="camp", webhook=receiver.url).sent == 3


@pytest.mark.parametrize("receiver", [(422, PERSONAL.encode())], indirect=True)
def test_the_receivers_answer_is_not_kept(store: Store, receiver: Receiver) -> None:
    report = deliver_plan(store, campaign_id="camp", webhook=receiver.url, max_attempts=1)
    assert report.failed == 3
    errors = [e for (e,) in store.con.execute("SELECT last_error FROM deliveries").fetchall()]
    assert errors and all(e.startswith("HTTP 422 Unprocessable") for e in errors)
    assert not any("alice" in e or "13800138000" in e for e in [*errors, *report.errors])
