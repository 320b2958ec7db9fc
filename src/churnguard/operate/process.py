"""A cycle in a process of its own: how `churnguard serve` runs its scheduled cycles.

A cycle inside the service's process shares the interpreter (the GIL) and the CPU priority with
the requests: at 20,000 customers it took the risk endpoint from p99 0.2 s to 17 s
(benchmarks/RESULTS.md, "cycle"). So the service starts ``churnguard run --project ROOT
--json`` as a child process at a lower CPU priority (``nice``), which borrows the store the way
every command does (:mod:`churnguard.lending`: one writer, the service answering risk from
memory meanwhile), and waits for it in the scheduler's thread, never in the event loop.

:class:`CycleProcess` runs one child at a time: :meth:`CycleProcess.run` refuses
(:class:`CycleBusyError`) while one runs. The child's progress lines are passed to ``say`` as
they come; its last lines are kept for the error message. The outcome is the child's exit code
and the cycle record it printed (``--json``), or None when it printed none (it was killed: the
cycle it left is unfinished and the next run resumes it, operate/cycle.py).

>>> command = cycle_command(Path("/srv/shop"), trigger="schedule", nice=10, nice_binary=None)
>>> command[3:]
['run', '--project', '/srv/shop', '--json', '--trigger=schedule']
>>> cycle_command(Path("/srv/shop"), trigger="schedule", nice=5, nice_binary="/usr/bin/nice")[:3]
['/usr/bin/nice', '-n', '5']
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from churnguard.errors import ChurnguardError

log = logging.getLogger("churnguard.operate")

# The child waits this long for its turn to borrow the store (a command may be borrowing it):
# a scheduled cycle should wait for an ingest rather than fail.
BORROW_WAIT_S = 600.0
# How long a stopping service gives its child after SIGTERM before SIGKILL.
TERMINATE_GRACE_S = 10.0
_TAIL_LINES = 20
# `churnguard` as this interpreter runs it (the console script may not be on PATH).
_MAIN = "import sys; from churnguard.cli import main; sys.exit(main())"


class CycleBusyError(ChurnguardError, RuntimeError):
    """A cycle's process is already running; one runs at a time."""

    code = "cycle_running"


@dataclass(frozen=True, kw_only=True)
class ChildOutcome:
    """How a cycle's process ended: its exit code (negative: killed by that signal), the cycle
    record it printed (``churnguard run --json``; None when it printed none), the seconds it
    ran and its last lines of output."""

    exit_code: int
    record: dict[str, Any] | None
    seconds: float
    tail: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.record is not None and \
            self.record.get("status") == "done"

    def describe(self) -> str:
        """One line for the log and the schedule's ``last_error``."""
        how = (f"killed by signal {-self.exit_code}" if self.exit_code < 0
               else f"exit code {self.exit_code}")
        if self.record is None:
            last = self.tail.strip().splitlines()[-1:] or ["no output"]
            return (f"the cycle's process ended ({how}) after {self.seconds:.0f} s without a "
                    f"record; its cycle is left unfinished and the next run resumes it "
                    f"(last output: {last[0][:300]})")
        record = self.record
        text = f"cycle {record.get('cycle_id')} {record.get('status')} ({how}, " \
               f"{self.seconds:.0f} s)"
        return text + (f": {record['error']}" if record.get("error") else "")


def cycle_command(root: Path, *, trigger: str, nice: int,
                  nice_binary: str | None = None) -> list[str]:
    """The child's command line: ``[nice -n N] python -c <churnguard's main> run --project ROOT
    --json --trigger=TRIGGER``. Without a ``nice`` program the priority is lowered right after
    the start instead (:meth:`CycleProcess.run`)."""
    command = [sys.executable, "-c", _MAIN, "run", "--project", str(root), "--json",
               f"--trigger={trigger}"]
    if nice > 0 and nice_binary is not None:
        command = [nice_binary, "-n", str(nice), *command]
    return command


def _record(stdout: str) -> dict[str, Any] | None:
    r"""The JSON cycle record ``churnguard run --json`` printed last, if any. Other output may
    come before it on stdout (DuckDB draws its progress bar there on long queries).

    >>> _record('100% |####| (00:00:05 elapsed)\n{\n  "cycle_id": "c1",\n  "status": "done"\n}\n')
    {'cycle_id': 'c1', 'status': 'done'}
    >>> _record("killed before the end\n{\n  \"cycle_id\": ") is None
    True
    """
    text = stdout.rstrip()
    start = len(text)
    while True:  # the record is printed indented: it starts with a line that is "{"
        start = text.rfind("{", 0, start)
        if start < 0:
            return None
        if start == 0 or text[start - 1] in "\r\n":
            break
    try:
        found = json.loads(text[start:])
    except ValueError:
        return None
    return found if isinstance(found, dict) and "cycle_id" in found else None


class CycleProcess:
    """Runs ``churnguard run`` for the project at ``root`` in a child process, one at a time.

    ``nice``: how much lower than this process the child's CPU priority is (0 to 19)."""

    def __init__(self, root: Path, *, nice: int = 10) -> None:
        self.root, self.nice = Path(root), nice
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[str] | None = None
        self._stopping = False
        self.last: ChildOutcome | None = None

    @property
    def running(self) -> bool:
        return self._lock.locked()

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return None if proc is None else proc.pid

    def run(self, *, trigger: str = "schedule",
            say: Callable[[str], None] = lambda line: log.info("cycle: %s", line)
            ) -> ChildOutcome:
        """Start the child, pass its progress lines to ``say``, wait for it; its outcome.

        Raises :class:`CycleBusyError` while another child runs, and :class:`CycleBusyError`
        too once :meth:`stop` was called."""
        if not self._lock.acquire(blocking=False):
            raise CycleBusyError(f"a cycle is already running (process {self.pid}); one runs "
                                 "at a time")
        try:
            if self._stopping:
                raise CycleBusyError("the service is stopping; no new cycle starts")
            return self._run(trigger, say)
        finally:
            self._proc = None
            self._lock.release()

    def _run(self, trigger: str, say: Callable[[str], None]) -> ChildOutcome:
        binary = shutil.which("nice") if self.nice > 0 else None
        command = cycle_command(self.root, trigger=trigger, nice=self.nice, nice_binary=binary)
        env = dict(os.environ)
        wait = max(BORROW_WAIT_S, float(env.get("CHURNGUARD_LOCK_WAIT") or 0))
        env["CHURNGUARD_LOCK_WAIT"] = str(wait)
        started = time.monotonic()
        tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
        with tempfile.TemporaryFile("w+", encoding="utf-8") as stdout:
            # The record (stdout) goes to a file, the progress (stderr) is read as it comes:
            # two pipes read by one thread could fill and block the child.
            proc = subprocess.Popen(command, stdout=stdout, stderr=subprocess.PIPE, env=env,
                                    text=True, encoding="utf-8", errors="replace")
            self._proc = proc
            if self.nice > 0 and binary is None:
                # No `nice` program: lower the priority now, before the child starts threads
                # (Linux sets it per thread; threads inherit it from their creator).
                with contextlib.suppress(OSError):
                    os.setpriority(os.PRIO_PROCESS, proc.pid,
                                   os.getpriority(os.PRIO_PROCESS, 0) + self.nice)
            log.info("cycle: started process %d (%s), CPU priority %+d", proc.pid, trigger,
                     self.nice)
            assert proc.stderr is not None
            stderr = proc.stderr

            def read() -> None:
                for line in stderr:
                    line = line.rstrip("\n")
                    if line.strip():
                        tail.append(line)
                        say(line)

            # Read in a thread and wait for the process itself: a process the child started
            # could keep the pipe open after the child died.
            reader = threading.Thread(target=read, name="churnguard-cycle-output", daemon=True)
            reader.start()
            code = proc.wait()
            reader.join(timeout=10)
            stdout.seek(0)
            record = _record(stdout.read())
        outcome = ChildOutcome(exit_code=code, record=record,
                               seconds=time.monotonic() - started, tail="\n".join(tail))
        self.last = outcome
        return outcome

    def stop(self) -> None:
        """No new child starts; a running one is asked to stop (SIGTERM, SIGKILL after
        :data:`TERMINATE_GRACE_S`). Its cycle is left unfinished: the next run resumes it."""
        self._stopping = True
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        log.warning("stopping the cycle's process %d; the next run resumes its cycle", proc.pid)
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=TERMINATE_GRACE_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=TERMINATE_GRACE_S)


__all__ = ["BORROW_WAIT_S", "ChildOutcome", "CycleBusyError", "CycleProcess", "cycle_command"]
