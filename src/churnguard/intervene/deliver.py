"""Delivery: hand a campaign's planned contacts to a webhook (or a file), each exactly once.

The ``deliveries`` table is the delivery log. :func:`deliver_plan` first writes a ``pending`` row
for every contacted customer (one transaction, so nobody is lost), then sends the pending and
failed ones in batches and marks each batch ``sent`` or ``failed`` in its own transaction. Rows
already ``sent`` are never sent again, so a rerun resumes where the last run stopped.

A crash between a successful POST and the commit that records it resends that batch on the rerun:
delivery from this side is at-least-once. Every delivery carries an idempotency key, a stable hash
of (campaign id, user id); a receiver that ignores keys it has already seen makes delivery
exactly-once end to end (docs/deliver.md).

Control customers (``is_control``) and customers whose action is ``none`` are never contacted:
they get no delivery row and are filtered out again when a batch is built.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import hmac
import json
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from churnguard.config import NO_ACTION
from churnguard.errors import ChurnguardError
from churnguard.files import csv_text, replace_atomically
from churnguard.ingest import FAULT_ENV, FAULT_EXIT_CODE
from churnguard.store import Store

# Fault injection for the crash test: with CHURNGUARD_FAULT=deliver:after-post the delivering
# process dies right after the first successful send, before the commit that records it.
FAULT_AFTER_POST = "deliver:after-post"

EXPORT_SUFFIXES = (".csv", ".json", ".jsonl", ".parquet")
PLAN_COLUMNS = (
    "campaign_id", "user_id", "action", "is_control", "risk_tier", "p_churn", "uplift", "value",
    "expected_cost", "expected_margin", "channel", "items", "message_en", "message_zh",
    "assignment",
)  # fmt: skip
# Fields of one delivery in a request body and in an --out file (plus campaign_id there).
DELIVERY_FIELDS = ("idempotency_key", "user_id", "action", "channel", "items", "message_en",
                   "message_zh")
PENDING, SENT, FAILED = "pending", "sent", "failed"
MAX_DELAY_S = 60.0  # longest wait between two attempts, Retry-After included
SECRET_ENV = "CHURNGUARD_WEBHOOK_SECRET"  # signs every webhook request when set
HOSTS_ENV = "CHURNGUARD_WEBHOOK_HOSTS"  # comma-separated hosts a webhook may go to, when set
SIGNATURE_HEADER, TIMESTAMP_HEADER = "X-Churnguard-Signature", "X-Churnguard-Timestamp"

Progress = Callable[[int, int], None]


class DeliveryError(ChurnguardError, ValueError):
    """A plan cannot be exported or delivered as asked (with what to do about it)."""

    code = "cannot_deliver"


@dataclass(frozen=True, kw_only=True)
class DeliveryReport:
    """What one :func:`deliver_plan` run did.

    ``sent``: rows delivered by this run; ``already_sent``: rows a previous run had delivered;
    ``failed``: rows this run gave up on (rerun to retry them); ``attempts``: requests (or file
    writes) made; ``errors``: the last error of each failed batch.
    """

    campaign_id: str
    sent: int
    already_sent: int
    failed: int
    attempts: int
    target: str
    errors: tuple[str, ...] = field(default=())

    @property
    def total(self) -> int:
        """Contacted customers in the plan."""
        return self.sent + self.already_sent + self.failed

    @property
    def complete(self) -> bool:
        return self.failed == 0


def idempotency_key(campaign_id: str, user_id: str) -> str:
    """The delivery's idempotency key: sha256 hex of campaign id, U+001F, user id (UTF-8).

    The same customer in the same campaign always gets the same key, in any run.

    >>> idempotency_key("c1", "u1")[:16]
    '3edeccdcee2b6423'
    """
    return hashlib.sha256(f"{campaign_id}\x1f{user_id}".encode()).hexdigest()


# The same hash in SQL, so the pending rows are written in one set-based statement.
_KEY_SQL = "sha256(campaign_id || chr(31) || user_id)"


def retry_after_seconds(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date), None if absent.

    >>> retry_after_seconds("2")
    2.0
    >>> retry_after_seconds("Wed, 21 Oct 2015 07:28:05 GMT",
    ...                     now=dt.datetime(2015, 10, 21, 7, 28, tzinfo=dt.UTC))
    5.0
    >>> retry_after_seconds("soon") is None
    True
    """
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def backoff_delay(attempt: int, backoff_s: float, retry_after: float | None = None) -> float:
    """Wait before retry number ``attempt`` (1 = the first retry), in seconds.

    Exponential back-off with "equal jitter" (a random half of the doubling delay is kept, which
    spreads out senders that failed together), capped at ``MAX_DELAY_S``; a server's Retry-After
    replaces it.

    >>> 0.5 <= backoff_delay(1, 1.0) <= 1.0 and 2.0 <= backoff_delay(3, 1.0) <= 4.0
    True
    >>> backoff_delay(1, 1.0, retry_after=7.0)
    7.0
    """
    if retry_after is not None:
        return min(retry_after, MAX_DELAY_S)
    delay = min(backoff_s * 2 ** (attempt - 1), MAX_DELAY_S)
    return delay / 2 + random.uniform(0, delay / 2)


# --- export ---------------------------------------------------------------------------------------

def export_plan(store: Store, *, campaign_id: str, path: str | Path) -> int:
    """Write every plan row of ``campaign_id`` (control customers included) to ``path``.

    The suffix picks the format: ``.csv``, ``.parquet``, ``.json`` (one JSON array of objects) or
    ``.jsonl`` (one object per line). ``items`` is a list (JSON text in a CSV cell). The file is
    replaced atomically: readers see the old file or the whole new one. Returns the rows written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in EXPORT_SUFFIXES:
        raise DeliveryError(
            f"{path}: cannot export a plan as {suffix or 'a file without a suffix'}; "
            f"use one of {', '.join(EXPORT_SUFFIXES)}"
        )
    _check_campaign(store, campaign_id)
    cursor = store.con.execute(
        f"SELECT {', '.join(PLAN_COLUMNS)} FROM plan_rows WHERE campaign_id = ? ORDER BY user_id",
        [campaign_id],
    )
    records = [dict(zip(PLAN_COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    for record in records:
        record["items"] = _items(record["items"], campaign_id, record["user_id"])
        if record["assignment"] is None:  # a plan made before exploration (migration 11)
            record["assignment"] = "control" if record["is_control"] else "model"
    writers = {".csv": _write_csv, ".parquet": _write_parquet, ".json": _write_json,
               ".jsonl": _write_jsonl}
    replace_atomically(path, lambda tmp: writers[suffix](records, tmp))
    return len(records)


def _items(text: str | None, campaign_id: str, user_id: str) -> list[Any]:
    if text is None:
        return []
    try:
        items = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DeliveryError(
            f"plan_rows of campaign {campaign_id!r}, user {user_id!r}, column 'items': not JSON "
            f"({exc.msg}); the planner must store a JSON list"
        ) from None
    if not isinstance(items, list):
        raise DeliveryError(
            f"plan_rows of campaign {campaign_id!r}, user {user_id!r}, column 'items': "
            f"{type(items).__name__}, not a JSON list"
        )
    return items


def _write_csv(records: list[dict[str, Any]], path: Path) -> None:
    frame = pd.DataFrame.from_records(records, columns=list(PLAN_COLUMNS))
    frame["items"] = [json.dumps(items, ensure_ascii=False) for items in frame["items"]]
    path.write_text(csv_text(frame), encoding="utf-8")


def _write_parquet(records: list[dict[str, Any]], path: Path) -> None:
    items = pa.array([r["items"] for r in records])
    if pa.types.is_null(items.type) or pa.types.is_null(items.type.value_type):
        items = items.cast(pa.list_(pa.string()))  # no items anywhere: still a list of strings
    types = {"is_control": pa.bool_()} | {
        c: pa.float64() for c in ("p_churn", "uplift", "value", "expected_cost", "expected_margin")
    }
    columns = {
        c: items if c == "items" else pa.array([r[c] for r in records], types.get(c, pa.string()))
        for c in PLAN_COLUMNS
    }
    pq.write_table(pa.table(columns), path)


def _write_json(records: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(records, fh, ensure_ascii=False)


def _write_jsonl(records: list[dict[str, Any]], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")


# --- delivery -------------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class _Try:
    """The outcome of one attempt to send one batch."""

    ok: bool
    retryable: bool = False
    status_code: int | None = None
    error: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True, kw_only=True)
class _Outcome:
    """The outcome of sending one batch, retries included."""

    ok: bool
    attempts: int
    status_code: int | None
    error: str | None


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Churnguard-Signature`` of a webhook request: ``v1=`` and the hex HMAC-SHA256
    (RFC 2104) under ``secret`` of ``"{timestamp}."`` followed by the body's bytes. Signing the
    timestamp with the body lets a receiver refuse a replayed request (docs/deliver.md).

    >>> sign("s3cret", 1700000000, b'{"campaign_id": "c1"}')[:19]
    'v1=f13d40462b28884f'
    """
    digest = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + body,
                      hashlib.sha256).hexdigest()
    return f"v1={digest}"


class _Webhook:
    """POSTs batches as JSON; 2xx is success, 429/5xx/network errors may be retried. With a
    secret, each request is signed (:func:`sign`)."""

    def __init__(self, url: str, *, timeout_s: float, secret: str | None) -> None:
        self.url = url
        self.target = _redacted(url)
        self.secret = secret
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    def send(self, campaign_id: str, deliveries: list[dict[str, Any]]) -> _Try:
        body = json.dumps({"campaign_id": campaign_id, "deliveries": deliveries},
                          ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json",
                   "Idempotency-Key": _batch_key([d["idempotency_key"] for d in deliveries])}
        if self.secret:
            timestamp = int(time.time())  # signed per attempt: a retry is a fresh request
            headers[TIMESTAMP_HEADER] = str(timestamp)
            headers[SIGNATURE_HEADER] = sign(self.secret, timestamp, body)
        try:
            response = self._client.post(self.url, content=body, headers=headers)
        except httpx.RequestError as exc:  # connect, read, write, timeout, protocol errors
            return _Try(ok=False, retryable=True, error=f"{type(exc).__name__}: {exc}")
        code = response.status_code
        if 200 <= code < 300:
            return _Try(ok=True, status_code=code)
        # The receiver's body is not kept: it is theirs and may echo customers' data back.
        size = len(response.content)
        error = f"HTTP {code} {response.reason_phrase}" + (
            f" (a {size:,}-byte body, not kept)" if size else "")
        retryable = code == 429 or code >= 500
        return _Try(ok=False, retryable=retryable, status_code=code, error=error,
                    retry_after=retry_after_seconds(response.headers.get("Retry-After"))
                    if retryable else None)


class _File:
    """Appends deliveries to a JSON Lines file, one per line.

    The file is its own receiver, so it dedupes like one: deliveries whose key is already in the
    file (written by a run that crashed before its commit) are not written again.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.target = path.resolve().as_uri()
        self._seen = self._recover()

    def close(self) -> None:
        pass

    def _recover(self) -> set[str]:
        if not self.path.exists():  # created even when nothing is to be sent: an empty delivery
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.touch()
            return set()
        data = self.path.read_bytes()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):  # a write torn by a crash: drop the partial last line
            with open(self.path, "r+b") as fh:
                fh.truncate(complete)
        seen = set()
        for number, line in enumerate(data[:complete].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                seen.add(json.loads(line)["idempotency_key"])
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DeliveryError(
                    f"{self.path}: line {number} is not a churnguard delivery (JSON with an "
                    f"idempotency_key); deliver to a new file or fix this one"
                ) from None
        return seen

    def send(self, campaign_id: str, deliveries: list[dict[str, Any]]) -> _Try:
        new = [d for d in deliveries if d["idempotency_key"] not in self._seen]
        text = "".join(json.dumps({"campaign_id": campaign_id, **d}, ensure_ascii=False) + "\n"
                       for d in new)
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            return _Try(ok=False, error=f"{self.path}: {exc.strerror or exc}")
        self._seen.update(d["idempotency_key"] for d in new)
        return _Try(ok=True)


def deliver_plan(
    store: Store,
    *,
    campaign_id: str,
    webhook: str | None = None,
    out: str | Path | None = None,
    batch_size: int = 100,
    max_attempts: int = 6,
    backoff_s: float = 0.5,
    timeout_s: float = 10.0,
    progress: Progress | None = None,
) -> DeliveryReport:
    """Deliver every contacted customer of ``campaign_id`` once, to ``webhook`` or to ``out``.

    Each batch of ``batch_size`` deliveries is one JSON POST (body ``{"campaign_id",
    "deliveries": [...]}``, header ``Idempotency-Key``) or one append of JSON lines to ``out``.
    429, 5xx and network errors are retried up to ``max_attempts`` times in all, with exponential
    back-off from ``backoff_s`` (or the server's Retry-After); other responses fail the batch at
    once. A failed batch is recorded and the next one is tried; a rerun retries the failed rows
    and never resends the sent ones. The plan's status becomes ``delivered`` when every row is
    sent, ``partially_delivered`` when some failed. ``progress(sent_so_far, total)`` is called
    before the first batch and after each one.
    """
    if (webhook is None) == (out is None):
        raise DeliveryError("give either a webhook URL or an output file (--webhook or --out), "
                            "not both and not neither")
    for name, value, minimum in (("batch_size", batch_size, 1), ("max_attempts", max_attempts, 1)):
        if value < minimum:
            raise DeliveryError(f"{name} must be at least {minimum}, got {value}")
    if backoff_s < 0 or timeout_s <= 0:
        raise DeliveryError(f"backoff_s must be >= 0 and timeout_s > 0, got {backoff_s} and "
                            f"{timeout_s}")
    if webhook is not None:
        _check_webhook(webhook)
    _check_campaign(store, campaign_id)
    sink: _Webhook | _File = (
        _Webhook(webhook, timeout_s=timeout_s, secret=os.environ.get(SECRET_ENV) or None)
        if webhook is not None else _File(Path(out)))  # type: ignore[arg-type]
    try:
        return _deliver(store, campaign_id, sink, batch_size=batch_size, max_attempts=max_attempts,
                        backoff_s=backoff_s, progress=progress)
    finally:
        sink.close()


def _deliver(store: Store, campaign_id: str, sink: _Webhook | _File, *, batch_size: int,
             max_attempts: int, backoff_s: float, progress: Progress | None) -> DeliveryReport:
    with store.transaction() as con:
        con.execute(
            f"""
            INSERT INTO deliveries
            SELECT campaign_id, user_id, {_KEY_SQL}, ?, '{PENDING}', 0, NULL, NULL, ?
            FROM plan_rows p
            WHERE campaign_id = ? AND NOT is_control AND action <> ?
              AND NOT EXISTS (SELECT 1 FROM deliveries d
                              WHERE d.campaign_id = p.campaign_id AND d.user_id = p.user_id)
            """,
            [sink.target, _now(), campaign_id, NO_ACTION],
        )
    already_sent, total = store.con.execute(
        f"SELECT count(*) FILTER (WHERE status = '{SENT}'), count(*) FROM deliveries "
        "WHERE campaign_id = ?",
        [campaign_id],
    ).fetchall()[0]
    todo = _todo(store, campaign_id)

    sent = failed = attempts = 0
    errors: list[str] = []
    if progress:
        progress(already_sent, total)
    for batch in _chunks(todo, batch_size):
        outcome = _send(sink, campaign_id, batch, max_attempts=max_attempts, backoff_s=backoff_s)
        if outcome.ok and os.environ.get(FAULT_ENV) == FAULT_AFTER_POST:
            os._exit(FAULT_EXIT_CODE)
        _record(store, campaign_id, batch, outcome, sink.target)
        attempts += outcome.attempts
        if outcome.ok:
            sent += len(batch)
        else:
            failed += len(batch)
            errors.append(outcome.error or "failed")
        if progress:
            progress(already_sent + sent, total)
    _finish(store, campaign_id)
    return DeliveryReport(campaign_id=campaign_id, sent=sent, already_sent=already_sent,
                          failed=failed, attempts=attempts, target=sink.target,
                          errors=tuple(errors))


def _todo(store: Store, campaign_id: str) -> list[dict[str, Any]]:
    """The pending and failed deliveries, controls and no-action rows excluded once more."""
    cursor = store.con.execute(
        f"""
        SELECT d.idempotency_key, d.user_id, p.action, p.channel, p.items, p.message_en,
               p.message_zh
        FROM deliveries d JOIN plan_rows p USING (campaign_id, user_id)
        WHERE d.campaign_id = ? AND d.status IN ('{PENDING}', '{FAILED}')
          AND NOT p.is_control AND p.action <> ?
        ORDER BY d.user_id
        """,
        [campaign_id, NO_ACTION],
    )
    rows = [dict(zip(DELIVERY_FIELDS, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        row["items"] = _items(row["items"], campaign_id, row["user_id"])
    return rows


def _send(sink: _Webhook | _File, campaign_id: str, batch: list[dict[str, Any]], *,
          max_attempts: int, backoff_s: float) -> _Outcome:
    attempt = 0
    while True:
        attempt += 1
        result = sink.send(campaign_id, batch)
        if result.ok or not result.retryable or attempt >= max_attempts:
            return _Outcome(ok=result.ok, attempts=attempt, status_code=result.status_code,
                            error=None if result.ok else _with_attempts(result.error, attempt))
        time.sleep(backoff_delay(attempt, backoff_s, result.retry_after))


def _with_attempts(error: str | None, attempts: int) -> str:
    return f"{error or 'failed'} (after {attempts} attempt{'s' if attempts > 1 else ''})"


def _record(store: Store, campaign_id: str, batch: list[dict[str, Any]], outcome: _Outcome,
            target: str) -> None:
    with store.transaction() as con:
        con.execute(
            """
            UPDATE deliveries
            SET status = ?, target = ?, attempts = attempts + ?, last_status_code = ?,
                last_error = ?, updated_at = ?
            WHERE campaign_id = ? AND user_id IN (SELECT unnest(?::VARCHAR[]))
            """,
            [SENT if outcome.ok else FAILED, target, outcome.attempts, outcome.status_code,
             outcome.error, _now(), campaign_id, [d["user_id"] for d in batch]],
        )  # fmt: skip


def _finish(store: Store, campaign_id: str) -> None:
    pending, failed = store.con.execute(
        f"SELECT count(*) FILTER (WHERE status = '{PENDING}'), "
        f"count(*) FILTER (WHERE status = '{FAILED}') FROM deliveries WHERE campaign_id = ?",
        [campaign_id],
    ).fetchall()[0]
    status = "partially_delivered" if failed else "delivered" if not pending else None
    if status:
        with store.transaction() as con:
            con.execute("UPDATE plans SET status = ? WHERE campaign_id = ?", [status, campaign_id])


# --- checks and small helpers ---------------------------------------------------------------------

def _check_campaign(store: Store, campaign_id: str) -> None:
    known = [row[0] for row in store.con.execute(
        "SELECT campaign_id FROM plans ORDER BY created_at DESC, campaign_id").fetchall()]
    if campaign_id in known:
        return
    if not known:
        raise DeliveryError(f"unknown campaign {campaign_id!r}: the store has no plans yet; "
                            "run `churnguard plan` first")
    shown = ", ".join(known[:10]) + (f" (and {len(known) - 10} more)" if len(known) > 10 else "")
    raise DeliveryError(f"unknown campaign {campaign_id!r}; the store's campaigns, newest "
                        f"first: {shown}")


def _check_webhook(url: str) -> None:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise DeliveryError(f"webhook {url!r} is not a valid URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise DeliveryError(f"webhook {url!r} is not an http(s) URL; give one like "
                            "https://crm.example.com/hooks/churnguard")
    allowed = {h.strip().lower() for h in os.environ.get(HOSTS_ENV, "").split(",") if h.strip()}
    if allowed and parsed.host.lower() not in allowed:
        raise DeliveryError(f"webhook host {parsed.host!r} is not in {HOSTS_ENV} "
                            f"({', '.join(sorted(allowed))}); add it there to deliver to it")


def _redacted(url: str) -> str:
    """The URL as the delivery log keeps it: no user info, no query (they may hold secrets)."""
    return str(httpx.URL(url).copy_with(username=None, password=None, query=None))


def _batch_key(keys: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start:start + size]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)
