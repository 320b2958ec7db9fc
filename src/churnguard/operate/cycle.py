"""The operating cycle: run the steps in order, record each, resume after a crash.

A cycle is one row of ``cycles`` and a row of ``cycle_steps`` per step. Before a step runs, its
*inputs* (what it reads that decides what it would do: the data clock, the event count, the
champion's version, its section of churnguard.toml...) are hashed into a fingerprint. Then:

* a step whose fingerprint equals the one of its last ``done`` run (in any cycle) is
  ``skipped`` and says since which cycle its inputs are unchanged (a step that must look every
  time, such as ingest, opts out with ``skip_unchanged=False``);
* otherwise the row is written ``started``, the step runs, and the row becomes ``done`` or
  ``skipped`` (the step itself found nothing to do, e.g. no plan due) with its figures, its
  decision in one sentence and the evidence for it;
* a step that raises is ``failed`` with its error, the cycle is ``failed`` and stops there.

A cycle that did not finish (the process was killed, or a step failed) is resumed by the next
:func:`run_cycle`, at its first step not ``done``/``skipped``, with its own steps and ``now``.
Each step is written so that running it again after a crash never repeats an effect: ingest
records a file in the same transaction as its rows, a plan is stored under the cycle's campaign
id, delivery keeps its log, a measurement is not taken twice (operate/steps.py).

Steps live in a registry (:data:`STEPS`, in cycle order); adding one is a function and one
:func:`register_step` call (docs/operate.md, "The cycle").

Fault points (tests): with ``CHURNGUARD_FAULT=cycle:<step>`` the process dies (``os._exit``)
after the step's work and before its ``done`` record, the worst moment; ``cycle:<step>:hang``
instead writes the file named by ``CHURNGUARD_FAULT_MARKER`` and waits to be killed (a real
``kill -9``); ``cycle:<step>:wait`` writes it and goes on once it is deleted.
:data:`FAULT_HOOK` is called at every point (tests make it raise).

>>> fingerprint({"events": 3, "newest": "2026-01-01"}) == fingerprint({"newest": "2026-01-01",
...                                                                     "events": 3})
True
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from churnguard.errors import ChurnguardError
from churnguard.ingest import FAULT_ENV, FAULT_EXIT_CODE
from churnguard.project import Project
from churnguard.store import Store

RUNNING, DONE, FAILED = "running", "done", "failed"
STARTED, SKIPPED = "started", "skipped"
FAULT_MARKER_ENV = "CHURNGUARD_FAULT_MARKER"
# Tests set this to a function of the fault point (e.g. one that raises at a chosen step).
FAULT_HOOK: Callable[[str], None] | None = None


class CycleError(ChurnguardError, RuntimeError):
    """A cycle cannot run as asked (unknown step, bad --now), or a step of it failed."""

    code = "cycle_failed"


def fault(point: str) -> None:
    """A fault point (module docstring)."""
    wanted = os.environ.get(FAULT_ENV, "")
    if wanted == point:
        os._exit(FAULT_EXIT_CODE)
    if wanted == f"{point}:hang":
        marker = os.environ.get(FAULT_MARKER_ENV)
        if marker:
            _write_marker(Path(marker))
        while True:  # until the test kills the process
            time.sleep(3600)
    if wanted == f"{point}:wait":
        # A pause (a cycle the service runs in a child process holds the store meanwhile):
        # write the marker, go on once the test deletes it.
        marker = Path(os.environ[FAULT_MARKER_ENV])
        _write_marker(marker)
        while marker.exists():
            time.sleep(0.05)
    if FAULT_HOOK is not None:
        FAULT_HOOK(point)


def _write_marker(marker: Path) -> None:
    """The marker appears with this process's id in it, never empty: a test that sees the file
    reads the pid (written aside, then renamed into place)."""
    part = marker.with_name(marker.name + ".part")
    part.write_text(str(os.getpid()), encoding="utf-8")
    os.replace(part, marker)


def fingerprint(inputs: dict[str, Any]) -> str:
    """sha256 of the inputs as canonical JSON (keys sorted; dates as ISO text)."""
    text = json.dumps(inputs, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


# -- how a cycle reaches the store ----------------------------------------------------------------
class StoreAccess(Protocol):
    """Where the cycle gets store handles: ``reading()`` for reads, ``writing()`` for writes.

    The CLI hands one open store for both (:class:`OneStore`); the service its
    :class:`~churnguard.service.store_pool.StorePool`, so a cycle's reads run beside the
    requests and its writes queue with the service's other writers."""

    def reading(self) -> AbstractContextManager[Store]: ...

    def writing(self) -> AbstractContextManager[Store]: ...


class OneStore:
    """One open store for reading and writing (``churnguard run``)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @contextlib.contextmanager
    def reading(self) -> Iterator[Store]:
        yield self.store

    writing = reading


# -- steps ----------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class StepOutcome:
    """What a step did: ``done`` (it acted) or ``skipped`` (nothing to do, and why).

    ``changed``: whether it changed what the service answers from (events, the champion), so a
    service running the cycle refreshes its caches."""

    status: str
    decision: str
    evidence: str = ""
    figures: dict[str, Any] = field(default_factory=dict)
    changed: bool = False

    @classmethod
    def done(cls, decision: str, **kwargs: Any) -> StepOutcome:
        return cls(status=DONE, decision=decision, **kwargs)

    @classmethod
    def skipped(cls, decision: str, **kwargs: Any) -> StepOutcome:
        return cls(status=SKIPPED, decision=decision, **kwargs)


@dataclass
class CycleContext:
    """What a step gets: the project, the store access, the cycle and its steps so far."""

    project: Project
    access: StoreAccess
    cycle_id: str
    now: dt.datetime | None  # the --now asked for; None: the data's own now
    say: Callable[[str], None]
    records: dict[str, StepRecord] = field(default_factory=dict)  # this cycle's, by step

    @property
    def config(self) -> Any:
        return self.project.config


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step: ``inputs(ctx)`` (read-only; hashed into the fingerprint) and ``run(ctx)``."""

    name: str
    run: Callable[[CycleContext], StepOutcome]
    inputs: Callable[[CycleContext], dict[str, Any]]
    skip_unchanged: bool = True
    help: str = ""


STEPS: dict[str, Step] = {}  # the registry, in cycle order


def register_step(step: Step, *, after: str | None = None, replace_existing: bool = False
                  ) -> None:
    """Add ``step`` to the cycle: at the end, or right after the step ``after``;
    ``replace_existing`` swaps a step of the same name in place (a placeholder for the real
    one)."""
    if step.name in STEPS and not replace_existing:
        raise ValueError(f"a step {step.name!r} is registered already")
    if step.name in STEPS:
        STEPS[step.name] = step
        return
    items = list(STEPS.items())
    at = len(items) if after is None else [n for n, _ in items].index(after) + 1
    items.insert(at, (step.name, step))
    STEPS.clear()
    STEPS.update(items)


def chosen_steps(names: Sequence[str] | None) -> list[str]:
    """The steps to run, in cycle order (all by default); an unknown name is a CycleError."""
    if not names:
        return list(STEPS)
    unknown = [n for n in names if n not in STEPS]
    if unknown:
        raise CycleError(f"unknown step {unknown[0]!r}; the steps are {', '.join(STEPS)}")
    return [n for n in STEPS if n in set(names)]


# -- records --------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class StepRecord:
    cycle_id: str
    step: str
    position: int
    status: str
    fingerprint: str | None
    inputs: dict[str, Any]
    figures: dict[str, Any]
    decision: str | None
    evidence: str | None
    error: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "status": self.status, "decision": self.decision,
                "evidence": self.evidence, "figures": self.figures, "error": self.error,
                "fingerprint": self.fingerprint, "inputs": self.inputs,
                "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at)}


@dataclass(frozen=True, kw_only=True)
class CycleRecord:
    cycle_id: str
    trigger: str
    status: str
    steps: tuple[str, ...]
    now: dt.datetime | None
    started_at: dt.datetime
    finished_at: dt.datetime | None
    error: str | None
    records: tuple[StepRecord, ...] = ()
    resumed: bool = False  # this run continued a cycle an earlier run left unfinished
    error_bad_input: bool = False
    changed: bool = False  # a step changed events or the champion (the service refreshes)

    def to_dict(self) -> dict[str, Any]:
        return {"cycle_id": self.cycle_id, "trigger": self.trigger, "status": self.status,
                "now": _iso(self.now), "started_at": _iso(self.started_at),
                "finished_at": _iso(self.finished_at), "error": self.error,
                "resumed": self.resumed, "steps": [r.to_dict() for r in self.records]}


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


_STEP_COLUMNS = ("cycle_id, step, position, status, fingerprint, inputs, figures, decision, "
                 "evidence, error, started_at, finished_at")
_CYCLE_COLUMNS = "cycle_id, trigger, status, steps, now, started_at, finished_at, error"


def _step_record(row: tuple) -> StepRecord:
    (cycle_id, step, position, status, fp, inputs, figures, decision, evidence, error,
     started, finished) = row
    return StepRecord(cycle_id=cycle_id, step=step, position=position, status=status,
                      fingerprint=fp, inputs=json.loads(inputs or "{}"),
                      figures=json.loads(figures or "{}"), decision=decision, evidence=evidence,
                      error=error, started_at=started, finished_at=finished)


def _cycle_record(row: tuple, records: Sequence[StepRecord]) -> CycleRecord:
    cycle_id, trigger, status, steps, now, started, finished, error = row
    return CycleRecord(cycle_id=cycle_id, trigger=trigger, status=status,
                       steps=tuple(s for s in steps.split(",") if s), now=now,
                       started_at=started, finished_at=finished, error=error,
                       records=tuple(records))


def step_records(store: Store, cycle_id: str) -> list[StepRecord]:
    return [_step_record(r) for r in store.con.execute(
        f"SELECT {_STEP_COLUMNS} FROM cycle_steps WHERE cycle_id = ? ORDER BY position",
        [cycle_id]).fetchall()]


def list_cycles(store: Store, *, limit: int = 10) -> list[CycleRecord]:
    """The newest ``limit`` cycles, newest first, each with its step records (none in a store
    opened read-only before its schema had the cycle tables)."""
    (exists,) = store.con.execute("SELECT count(*) FROM information_schema.tables "
                                  "WHERE table_name = 'cycles'").fetchall()[0]
    if not exists:
        return []
    rows = store.con.execute(
        f"SELECT {_CYCLE_COLUMNS} FROM cycles ORDER BY started_at DESC, cycle_id DESC LIMIT ?",
        [int(limit)]).fetchall()
    return [_cycle_record(r, step_records(store, r[0])) for r in rows]


def _unfinished(store: Store) -> tuple | None:
    rows = store.con.execute(
        f"SELECT {_CYCLE_COLUMNS} FROM cycles WHERE status <> ? "
        "ORDER BY started_at DESC, cycle_id DESC LIMIT 1", [DONE]).fetchall()
    return rows[0] if rows else None


def _last_done(store: Store, step: str) -> tuple[str, str] | None:
    """(cycle id, fingerprint) of the step's newest ``done`` run."""
    rows = store.con.execute(
        "SELECT cycle_id, fingerprint FROM cycle_steps WHERE step = ? AND status = ? "
        "ORDER BY finished_at DESC LIMIT 1", [step, DONE]).fetchall()
    return (rows[0][0], rows[0][1]) if rows else None


def _write_step(store: Store, record: StepRecord) -> None:
    with store.transaction() as con:
        con.execute("DELETE FROM cycle_steps WHERE cycle_id = ? AND step = ?",
                    [record.cycle_id, record.step])
        con.execute(
            f"INSERT INTO cycle_steps ({_STEP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [record.cycle_id, record.step, record.position, record.status, record.fingerprint,
             json.dumps(record.inputs, sort_keys=True, default=str),
             json.dumps(record.figures, sort_keys=True, default=str), record.decision,
             record.evidence, record.error, record.started_at, record.finished_at])


def _finish_cycle(store: Store, cycle_id: str, status: str, error: str | None) -> None:
    with store.transaction() as con:
        con.execute("UPDATE cycles SET status = ?, finished_at = ?, error = ? WHERE cycle_id = ?",
                    [status, _now(), error, cycle_id])


def _new_cycle(store: Store, *, trigger: str, steps: list[str], now: dt.datetime | None) -> tuple:
    cycle_id = _now().strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    started = _now()
    with store.transaction() as con:
        con.execute(f"INSERT INTO cycles ({_CYCLE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, NULL)",
                    [cycle_id, trigger, RUNNING, ",".join(steps), now, started])
    return (cycle_id, trigger, RUNNING, ",".join(steps), now, started, None, None)


# -- the runner -----------------------------------------------------------------------------------
def run_cycle(access: StoreAccess, *, project: Project, now: dt.datetime | None = None,
              steps: Sequence[str] | None = None, trigger: str = "cli",
              progress: Callable[[str], None] | None = None) -> CycleRecord:
    """Run one cycle (or resume the unfinished one) and return its record.

    ``now``: the time the cycle acts at (default: the data's now, just after the newest event);
    ``steps``: a subset of :data:`STEPS` (default all), run in cycle order. A step's failure
    does not raise: the record's ``status`` is ``failed`` and ``error`` says why (the CLI turns
    it into a non-zero exit)."""
    say = progress or (lambda message: None)
    wanted = chosen_steps(steps)
    with access.writing() as store:
        row = _unfinished(store)
        resumed = row is not None
        if row is None:
            row = _new_cycle(store, trigger=trigger, steps=wanted, now=now)
        else:
            with store.transaction() as con:
                con.execute("UPDATE cycles SET status = ?, error = NULL WHERE cycle_id = ?",
                            [RUNNING, row[0]])
        done_before = {r.step: r for r in step_records(store, row[0])}
    cycle_id, names = row[0], [s for s in row[3].split(",") if s]
    if resumed:
        say(f"resuming cycle {cycle_id}, which did not finish (its steps: {', '.join(names)})")
    ctx = CycleContext(project=project, access=access, cycle_id=cycle_id, now=row[4], say=say)
    failure: BaseException | None = None
    changed = False
    for position, name in enumerate(names):
        record = done_before.get(name)
        if record is not None and record.status in (DONE, SKIPPED):
            ctx.records[name] = record
            say(f"[{position + 1}/{len(names)}] {name}: already {record.status} in this cycle: "
                f"{record.decision}")
            continue
        if name not in STEPS:
            failure = CycleError(f"cycle {cycle_id} lists step {name!r}, which this churnguard "
                                 f"does not have; the steps are {', '.join(STEPS)}")
            break
        record, outcome_changed, failure = _run_step(ctx, STEPS[name], position)
        changed = changed or outcome_changed
        ctx.records[name] = record
        line = record.decision if record.status != FAILED else f"failed: {record.error}"
        say(f"[{position + 1}/{len(names)}] {name}: {record.status}: {line}")
        if failure is not None:
            break
    error = None if failure is None else f"step {name}: {failure}"
    with access.writing() as store:
        _finish_cycle(store, cycle_id, FAILED if failure else DONE, error)
        final = _cycle_record(
            store.con.execute(f"SELECT {_CYCLE_COLUMNS} FROM cycles WHERE cycle_id = ?",
                              [cycle_id]).fetchall()[0], step_records(store, cycle_id))
    bad_input = isinstance(failure, ChurnguardError) and failure.bad_input
    return replace(final, resumed=resumed, error_bad_input=bad_input, changed=changed)


def _run_step(ctx: CycleContext, step: Step, position: int
              ) -> tuple[StepRecord, bool, BaseException | None]:
    """Run one step and record it: (its record, whether it changed the data, its error)."""
    started = _now()
    base = StepRecord(cycle_id=ctx.cycle_id, step=step.name, position=position, status=STARTED,
                      fingerprint=None, inputs={}, figures={}, decision=None, evidence=None,
                      error=None, started_at=started, finished_at=None)
    try:
        inputs = step.inputs(ctx)
        fp = fingerprint(inputs)
        base = replace(base, inputs=inputs, fingerprint=fp)
        with ctx.access.reading() as store:
            last = _last_done(store, step.name)
        if step.skip_unchanged and last is not None and last[1] == fp:
            record = replace(base, status=SKIPPED, finished_at=_now(),
                             decision=f"inputs unchanged since cycle {last[0]}: nothing new to do",
                             evidence=f"fingerprint {fp[:12]} of {_inputs_text(inputs)}")
            with ctx.access.writing() as store:
                _write_step(store, record)
            return record, False, None
        with ctx.access.writing() as store:
            _write_step(store, base)
        outcome = step.run(ctx)
        fault(f"cycle:{step.name}")
    except Exception as exc:  # noqa: BLE001 - recorded, and the cycle stops here
        record = replace(base, status=FAILED, finished_at=_now(),
                         error=f"{type(exc).__name__}: {exc}" if not isinstance(
                             exc, ChurnguardError) else str(exc))
        with ctx.access.writing() as store:
            _write_step(store, record)
        return record, False, exc
    record = replace(base, status=outcome.status, figures=outcome.figures,
                     decision=outcome.decision, evidence=outcome.evidence, finished_at=_now())
    with ctx.access.writing() as store:
        _write_step(store, record)
    return record, outcome.changed, None


def _inputs_text(inputs: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(inputs.items()) if not isinstance(v, dict | list))


__all__ = ["DONE", "FAILED", "FAULT_HOOK", "RUNNING", "SKIPPED", "STARTED", "STEPS",
           "CycleContext", "CycleError", "CycleRecord", "OneStore", "Step", "StepOutcome",
           "StepRecord", "StoreAccess", "chosen_steps", "fault", "fingerprint", "list_cycles",
           "register_step", "run_cycle", "step_records"]
