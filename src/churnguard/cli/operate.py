"""The operating commands: ``run`` (one cycle now) and ``cycles`` (the record of past cycles).

Registered on the ``churnguard`` group when the package loads; thin shells over
``churnguard.operate``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click

from churnguard.cli.base import BadInput, cli, console, load_project, project_option


def _timestamp(ctx: click.Context, param: click.Parameter, value: str | None
               ) -> dt.datetime | None:
    if value is None:
        return None
    try:
        stamp = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{value!r}: write YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)") \
            from None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.UTC).replace(tzinfo=None)
    return stamp


def _step_line(record: object) -> str:
    status = getattr(record, "status")
    text = getattr(record, "error") if status == "failed" else getattr(record, "decision")
    return f"  {getattr(record, 'step'):<10} {status:<8} {text or ''}"


@cli.command(name="run")
@click.option("--now", callback=_timestamp, default=None, metavar="TIMESTAMP",
              help="Act as if it were this time, UTC (default: the data's now, the midnight "
                   "after the newest event).")
@click.option("--steps", default=None, metavar="STEP[,STEP]",
              help="Run only these steps, in cycle order: ingest, score, monitor, challenge, "
                   "plan, deliver, measure (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print the cycle's record as JSON.")
# What started the cycle, as its record says: `churnguard serve` starts its scheduled cycles as
# `churnguard run --trigger=schedule` in a child process (churnguard.operate.process).
@click.option("--trigger", type=click.Choice(["cli", "schedule"]), default="cli", hidden=True)
@project_option
def run_command(now: dt.datetime | None, steps: str | None, as_json: bool, trigger: str,
                project_dir: Path | None) -> None:
    """Run one operating cycle now: ingest the inbox, score, monitor, challenge, plan, deliver,
    measure (docs/operate.md).

    Every step is recorded with a fingerprint of its inputs: a step whose inputs did not change
    since it last ran is skipped, and a cycle a crash interrupted is resumed at its first
    unfinished step, so running this from cron, a systemd timer or Airflow is always safe. A
    failed step stops the cycle (exit code 1, or 2 for bad input); `churnguard cycles` shows
    the record.
    """
    from churnguard.operate import OneStore, run_cycle
    from churnguard.operate.cycle import CycleError

    names = [s.strip() for s in steps.split(",") if s.strip()] if steps else None
    if steps is not None and not names:
        raise BadInput("--steps: name at least one step, e.g. --steps ingest,score")
    project = load_project(project_dir)
    with project.open_store() as store:
        record = run_cycle(OneStore(store), project=project, now=now, steps=names,
                           trigger=trigger, progress=lambda m: console.print(m, markup=False))
    if as_json:
        click.echo(json.dumps(record.to_dict(), indent=2, default=str))
    else:
        click.echo(f"Cycle {record.cycle_id}: {record.status}"
                   + (" (resumed)" if record.resumed else ""))
        for step in record.records:
            click.echo(_step_line(step))
    if record.status != "done":
        raise CycleError(f"cycle {record.cycle_id} stopped at {record.error}; fix the cause and "
                         "run `churnguard run` again to resume it",
                         bad_input=record.error_bad_input)


@cli.command(name="cycles")
@click.option("--limit", type=click.IntRange(min=1), default=10, show_default=True,
              help="Show the newest N cycles.")
@click.option("--json", "as_json", is_flag=True, help="Print the cycles as JSON.")
@project_option
def cycles_command(limit: int, as_json: bool, project_dir: Path | None) -> None:
    """The record of past cycles, newest first: each step's status, decision and figures."""
    from churnguard.operate import list_cycles

    project = load_project(project_dir)
    with project.open_store(read_only=True) as store:
        found = list_cycles(store, limit=limit)
    if as_json:
        click.echo(json.dumps([c.to_dict() for c in found], indent=2, default=str))
        return
    if not found:
        click.echo("No cycles yet; `churnguard run` runs one.")
        return
    for cycle in found:
        took = ("" if cycle.finished_at is None else
                f", {(cycle.finished_at - cycle.started_at).total_seconds():.0f} s")
        click.echo(f"Cycle {cycle.cycle_id} ({cycle.trigger}): {cycle.status}, started "
                   f"{cycle.started_at:%Y-%m-%d %H:%M:%S} UTC{took}")
        for step in cycle.records:
            click.echo(_step_line(step))
