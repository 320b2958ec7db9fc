"""What every command shares: the ``churnguard`` group, the project option, date and duration
options, the churn-definition overrides, progress displays and atomic table writes.

The command modules of this package import from here and register themselves on :data:`cli`;
nothing here imports them, so the package has no import loop.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from churnguard import __version__
from churnguard.config import ChurnDefinition
from churnguard.durations import parse_date, parse_days
from churnguard.errors import EXIT_BAD_INPUT
from churnguard.files import write_table
from churnguard.project import CONFIG_FILENAME, Project, resolve_project_dir

__all__ = [
    "BadInput", "churn_definition", "cli", "console", "date_callback", "day_progress",
    "days_option", "definition_options", "epoch_progress", "load_project", "project_option",
    "stage_spinner", "write_table",
]

# Progress and tables go to stderr so that stdout stays clean for scripts.
console = Console(stderr=True, highlight=False)


class BadInput(click.ClickException):
    """Bad usage or bad input: exit code 2 with the message as given."""

    exit_code = EXIT_BAD_INPUT


# -- shared options and helpers ------------------------------------------------------------------
def project_option(command: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--project",
        "project_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Project folder (churnguard.toml + churnguard.duckdb). "
        "Default: $CHURNGUARD_PROJECT, else the current folder.",
    )(command)


def load_project(project_dir: Path | None) -> Project:
    root = resolve_project_dir(project_dir)
    if not (root / CONFIG_FILENAME).exists():
        raise BadInput(f"{root}: not a churnguard project (no {CONFIG_FILENAME}); run `churnguard init {root}`")
    return Project.load(root)


def _parsed_by(parse: Callable[[str], Any]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click callback that parses an option's text with ``parse`` (None stays None) and turns
    its ValueError into click's usage error (exit code 2)."""

    def callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


def days_option(*names: str, default: str | None, help: str) -> Callable[..., Any]:
    """An option of a number of days written as 90d, 12w or 90 (parsed to an int)."""
    return click.option(*names, default=default, callback=_parsed_by(parse_days), help=help,
                        show_default=True)


# --as-of and the other date options: YYYY-MM-DD parsed to a date.
date_callback = _parsed_by(parse_date)


@contextmanager
def day_progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar fed by ``callback(done, total)``."""
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,  # logs and pipes get the result lines only
    ) as progress:
        task = progress.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def file_option(value: str | None, name: str) -> Path | None:
    """An option given as text, read as click.Path(dir_okay=False) reads a file option (the
    same check and message): for options that are a file on one engine and a folder or URI on
    another (``--out`` of ``score``)."""
    if value is None:
        return None
    ctx = click.get_current_context()
    param = next(p for p in ctx.command.params if p.name == name)
    return click.Path(dir_okay=False, path_type=Path).convert(value, param, ctx)


@contextmanager
def stage_spinner(label: str) -> Iterator[Callable[[str], None]]:
    """A spinner whose text follows the stage messages of a long operation."""
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=None)
        yield lambda message: progress.update(task, description=f"{label}: {message}")


@contextmanager
def epoch_progress(label: str, total: int) -> Iterator[Callable[[str], None]]:
    """A progress bar over ``total`` epochs fed by a long operation's stage messages: a message
    "epoch K/N: ..." fills the bar to K and is printed above it (and in logs, without the bar)."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs"),
        TimeElapsedColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=total)

        def update(message: str) -> None:
            done = re.match(r"epoch (\d+)/(\d+)", message)
            if done:
                progress.update(task, completed=int(done.group(1)), total=int(done.group(2)))
                console.print(f"      {message}", markup=False)

        yield update



# -- churn definition ----------------------------------------------------------------------------
def definition_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--activity/--lookback/--horizon, overriding the project's [churn] settings."""
    command = days_option("--horizon", default=None,
                          help="Churn horizon, e.g. 90d (default: churnguard.toml).")(command)
    command = days_option("--lookback", default=None,
                          help="Population lookback, e.g. 365d (default: churnguard.toml).")(command)
    return click.option("--activity", default=None, metavar="TYPE[,TYPE]",
                        help="Event types that count as activity (default: churnguard.toml, "
                        "usually 'order').")(command)


def churn_definition(project: Project, activity: str | None, lookback: int | None,
                     horizon: int | None) -> ChurnDefinition:
    base = project.config.churn
    changes: dict[str, Any] = {}
    if activity is not None:
        changes["activity"] = tuple(a.strip() for a in activity.split(",") if a.strip())
    if lookback is not None:
        changes["lookback_days"] = lookback
    if horizon is not None:
        changes["horizon_days"] = horizon
    try:
        return ChurnDefinition.model_validate({**base.model_dump(), **changes})
    except ValidationError as exc:
        raise BadInput(f"bad churn definition: {exc.errors()[0]['msg']}") from None


# -- the command group ---------------------------------------------------------------------------
@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="churnguard")
def cli() -> None:
    """churnguard: predict which customers of an online shop are about to stop buying, say why,
    and decide what to do about it.

    Every command works on a project folder (churnguard.toml + churnguard.duckdb) given by
    --project, $CHURNGUARD_PROJECT, or the current folder. Start with `churnguard demo`, or
    `churnguard init DIR` followed by `churnguard ingest events FILE`.
    """
