"""`churnguard serve` and `python -m churnguard.service` as real processes on the small shop.

The other service tests drive the app in process; this one runs what a user runs: the installed
command, settings from the environment (production, a real read key), uvicorn on a local port.
It fetches the dashboard at /, /healthz and a /v1 route, then stops the server with Ctrl+C.
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from service.helpers import READ, headers

# Generous bounds against a hang, not a measure of speed: a loaded machine may take a while.
START_TIMEOUT_S = 180
STOP_TIMEOUT_S = 60
ADDRESS_IN_USE = "address already in use"
COMMANDS = {
    "churnguard serve": [str(Path(sys.executable).with_name("churnguard")), "serve"],
    "python -m churnguard.service": [sys.executable, "-m", "churnguard.service"],
}


@dataclass
class Server:
    proc: subprocess.Popen[str]
    url: str
    lines: list[str] = field(default_factory=list)

    @property
    def log(self) -> str:
        return "".join(self.lines)


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(command: list[str], project: Path, env: dict[str, str]) -> Server | None:
    """Start the server on a port that was free a moment ago; None when another process took
    that port before the server could bind it (the caller tries another)."""
    port = _unused_port()
    proc = subprocess.Popen([*command, "--project", str(project), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    server = Server(proc=proc, url=f"http://127.0.0.1:{port}")
    arrived: queue.Queue[str | None] = queue.Queue()

    def read() -> None:  # a thread: reading the pipe must never block the test
        for line in proc.stdout:  # type: ignore[union-attr]
            server.lines.append(line)
            arrived.put(line)
        arrived.put(None)

    threading.Thread(target=read, daemon=True).start()
    # uvicorn says so once the application has started and the socket listens.
    ready = f"Uvicorn running on {server.url}"
    while True:
        try:
            line = arrived.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            proc.kill()
            pytest.fail(f"the server did not start in {START_TIMEOUT_S} s:\n{server.log}")
        if line is None:  # the process ended before it listened
            proc.wait(timeout=STOP_TIMEOUT_S)
            if ADDRESS_IN_USE in server.log.lower():
                return None
            pytest.fail(f"the server exited with {proc.returncode}:\n{server.log}")
        if ready in line:
            return server


@contextmanager
def serving(command: list[str], project: Path, *,
            keys: dict[str, str] | None = None) -> Iterator[Server]:
    """The server as a process, with these API keys (key -> role; default: one read key)."""
    # The settings are these alone, whatever CHURNGUARD_* variables the test run has.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("CHURNGUARD_")}
    keys = keys if keys is not None else {READ: "read"}
    env = {**inherited, "CHURNGUARD_ENV": "production",
           "CHURNGUARD_API_KEYS": ",".join(f"{k}:{role}" for k, role in keys.items()),
           # The shop's events are in the past: "now" is just after the newest one.
           "CHURNGUARD_CLOCK": "data", "NO_COLOR": "1"}
    for _ in range(5):
        server = _launch(command, project, env)
        if server is not None:
            break
    else:
        pytest.fail("five free ports in a row were taken before the server could bind them")
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGINT)  # what Ctrl+C sends
            try:
                server.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_served_project_answers_on_the_dashboard_health_and_api(name: str,
                                                                    project_dir: Path) -> None:
    with serving(COMMANDS[name], project_dir) as server, \
            httpx.Client(base_url=server.url, timeout=60) as http:
        health = http.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})

        assert http.get("/v1/models").status_code == 401  # keys are checked
        models = http.get("/v1/models", headers=headers(READ))
        assert models.status_code == 200
        assert {"gbdt", "recency"} <= {m["name"] for m in models.json()["models"]}

        # The dashboard is part of the served app: / asks for a sign-in, the key opens it.
        page = http.get("/")
        assert page.status_code == 303 and page.headers["location"] == "/login?next=%2F"
        assert http.post("/dashboard/session", headers=headers(READ)).status_code == 200
        overview = http.get("/")
        assert overview.status_code == 200
        assert '<html lang="en">' in overview.text and "At-risk customers" in overview.text

        server.proc.send_signal(signal.SIGINT)
        server.proc.wait(timeout=STOP_TIMEOUT_S)
    # A clean stop: the lifespan ran to its end (the store closed) and nothing was reported.
    assert server.proc.returncode == 0, server.log
    assert "Application shutdown complete." in server.log
    assert "Traceback" not in server.log and "ERROR" not in server.log
