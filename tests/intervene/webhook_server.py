"""A webhook receiver for the delivery tests: records deliveries, dedupes, fails on demand.

Run as a script (standard library only)::

    python webhook_server.py --out received.jsonl [--port 8765] [--requests-log requests.jsonl]
        [--fail-rate 0.3 --fail-statuses 500,503,429 --seed 1] [--retry-after 0.2]
        [--script 429,200,400] [--exit-after 3]

It listens on 127.0.0.1 and prints ``listening on http://127.0.0.1:PORT`` once it accepts
requests. Without ``--port`` (or with 0) the system picks a free port as the server binds it, so
two servers never race for one: read the port from that line. Every POST body ``{"campaign_id", "deliveries": [...]}`` that it accepts has each
delivery appended to ``--out`` as one JSON line (with ``campaign_id``), unless its
``idempotency_key`` was seen before: a repeated key is answered 200 but not recorded twice. The
seen keys are read back from ``--out`` at start, so a restarted server still dedupes.

Failure modes:

* ``--script``: the statuses answered to the first requests, in order; ``200`` means "handle it
  normally".
* ``--fail-rate F``: after the script, answer a fraction F of requests with one of
  ``--fail-statuses`` instead (drawn with ``--seed``, so the same request sequence fails the same
  way). 429 and 503 answers carry ``Retry-After: --retry-after`` when that is given.
* ``--exit-after N``: after recording the N-th accepted batch, die with ``os._exit`` before
  answering (the receiver has the batch, the sender never hears so).

``--requests-log`` gets one line per request received, whatever the answer: the status, the
user ids and the keys in it, so tests can check what was ever sent.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

EXIT_CODE = 3  # what --exit-after exits with


class Receiver:
    """The server's state: seen keys, the failure script and generator, counters."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.out = Path(args.out)
        self.requests_log = Path(args.requests_log) if args.requests_log else None
        self.script = [int(s) for s in args.script.split(",") if s] if args.script else []
        self.fail_rate = args.fail_rate
        self.fail_statuses = [int(s) for s in args.fail_statuses.split(",")]
        self.retry_after = args.retry_after
        self.exit_after = args.exit_after
        self.rng = random.Random(args.seed)
        self.accepted = 0
        self.lock = threading.Lock()
        self.seen = set()
        if self.out.exists():
            for line in self.out.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    self.seen.add(json.loads(line)["idempotency_key"])

    def handle(self, body: bytes) -> tuple[int, dict, dict[str, str]]:
        """(status, response body, extra headers) for one request, under the lock."""
        with self.lock:
            try:
                payload = json.loads(body)
                campaign_id = payload["campaign_id"]
                deliveries = payload["deliveries"]
                keys = [d["idempotency_key"] for d in deliveries]
                users = [d["user_id"] for d in deliveries]
            except (ValueError, KeyError, TypeError) as exc:
                self._log(400, [], [])
                return 400, {"error": f"bad payload: {exc!r}"}, {}
            status = self._planned_status()
            self._log(status, users, keys)
            if status != 200:
                headers = ({"Retry-After": str(self.retry_after)}
                           if self.retry_after is not None and status in (429, 503) else {})
                return status, {"error": f"failing on purpose with {status}"}, headers
            new = [d for d in deliveries if d["idempotency_key"] not in self.seen]
            with open(self.out, "a", encoding="utf-8") as fh:
                for delivery in new:
                    fh.write(json.dumps({"campaign_id": campaign_id, **delivery},
                                        ensure_ascii=False) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            self.seen.update(d["idempotency_key"] for d in new)
            self.accepted += 1
            if self.exit_after and self.accepted >= self.exit_after:
                os._exit(EXIT_CODE)
            return 200, {"recorded": len(new), "duplicates": len(deliveries) - len(new)}, {}

    def _planned_status(self) -> int:
        if self.script:
            return self.script.pop(0)
        if self.fail_rate and self.rng.random() < self.fail_rate:
            return self.rng.choice(self.fail_statuses)
        return 200

    def _log(self, status: int, users: list[str], keys: list[str]) -> None:
        if self.requests_log is None:
            return
        with open(self.requests_log, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"status": status, "user_ids": users, "keys": keys}) + "\n")


def make_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server naming)
            length = int(self.headers.get("Content-Length") or 0)
            status, body, headers = receiver.handle(self.rfile.read(length))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # quiet: the requests log is the record

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0: a free port, chosen on binding")
    parser.add_argument("--out", required=True, help="JSON Lines file of recorded deliveries")
    parser.add_argument("--requests-log", help="JSON Lines file, one line per request")
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--fail-statuses", default="500,503,429")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retry-after", help="Retry-After value sent with 429 and 503")
    parser.add_argument("--script", help="statuses for the first requests, e.g. 429,200,400")
    parser.add_argument("--exit-after", type=int, default=0,
                        help="os._exit after recording this many accepted batches")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(Receiver(args)))
    print(f"listening on http://127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
