"""Project and data commands: ``init``, ``simulate``, ``ingest``, ``churn preview`` and ``status``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from churnguard.cli.base import (
    BadInput,
    churn_definition,
    cli,
    console,
    date_callback,
    day_progress,
    days_option,
    definition_options,
    load_project,
    project_option,
    stage_spinner,
)
from churnguard.erasure import pending_compactions
from churnguard.project import CONFIG_FILENAME, Project, init_project, resolve_project_dir


@cli.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
def init(directory: Path | None) -> None:
    """Create a project in DIRECTORY (default: $CHURNGUARD_PROJECT or the current folder).

    Writes churnguard.toml with the default settings and creates the embedded store. An existing
    project is left untouched.
    """
    root = resolve_project_dir(directory)
    project, created = init_project(root)
    verb = "Created" if created else "Already a project:"
    click.echo(f"{verb} {project.root} ({CONFIG_FILENAME}, {project.store_path.name})")


@cli.command()
@click.option("--users", "n_users", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Number of customers.")
@click.option("--days", type=click.IntRange(min=1), default=365, show_default=True,
              help="Length of the simulated period in days.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed; same seed, same data.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write events, users, items, campaigns and the ground truth to.")
@click.option("--scenario", default="default", show_default=True,
              help="'default'; 'sequence' (the order of events carries signal that totals miss); "
              "or 'drift' (the default shop until --change-day, then delivery-sensitive and "
              "price-sensitive customers leave faster: concept drift with known truth).")
@click.option("--change-day", type=click.IntRange(min=1), default=None,
              help="With --scenario drift: the day (counted from --start) the change happens on "
              "[default: 365, a year]. It must fall inside --days; simulate at least 180 days "
              "past it to see a horizon of labels that carry it.")
@click.option("--start", default="2025-01-01", show_default=True, callback=date_callback,
              help="First simulated day (YYYY-MM-DD).")
@days_option("--horizon", default="90d", help="Churn horizon used for the ground truth "
             "(with --continue: the window of the contacts' truth, default the shop's).")
@click.option("--keep-state", is_flag=True,
              help="Also write state/, from which `simulate --continue` carries the shop on "
              "after churnguard acts.")
@click.option("--surge-topic", type=click.Choice(["delivery", "quality", "price", "service"]),
              default=None, help="Inject a complaint surge of this topic: its negative reviews "
              "and tickets run at --surge-size times their baseline from --surge-start for "
              "--surge-days days (texts only; truth/surge.json and truth/surge.parquet record "
              "it; docs/simulate.md).")
@click.option("--surge-start", default=None, callback=date_callback,
              help="With --surge-topic: the surge's first day (YYYY-MM-DD), at least 7 days "
              "after --start.")
@click.option("--surge-size", type=click.FloatRange(min=1.0, max=100.0), default=2.0,
              show_default=True, help="With --surge-topic: the multiplier of the baseline.")
@click.option("--surge-days", type=click.IntRange(min=1), default=14, show_default=True,
              help="With --surge-topic: how many days the surge lasts.")
@click.option("--zh-share", type=click.FloatRange(min=0.0, max=1.0), default=None,
              help="Share of customers who write their reviews, tickets and searches in "
              "Chinese, the same in every region: 1 gives a Chinese-only shop, 0 an English-only "
              "one [default: each region's own share, about 36% overall]. Only the texts' "
              "language changes; orders and churn are those of the same seed without it.")
@click.option("--continue", "continue_from", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Carry on the shop in this folder (simulated with --keep-state, "
              "or written by an earlier --continue) to --until, with the --delivered campaign "
              "applied; writes the new events, the truth of each contact and the new state to "
              "--out (docs/simulate.md, \"Continuing a shop\").")
@click.option("--delivered", "delivered", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="With --continue: the delivered campaign (repeatable): campaign rows "
              "(user_id, action, is_control, assigned_at), a plan export (`plan --out`) or a "
              "delivery file (`deliver --out`). Without it the shop goes on untouched.")
@click.option("--delivered-at", default=None, callback=date_callback,
              help="With --continue: the delivery date of rows without assigned_at (YYYY-MM-DD).")
@click.option("--until", default=None, callback=date_callback,
              help="With --continue: the day to simulate up to (exclusive, YYYY-MM-DD).")
@click.pass_context
def simulate(ctx: click.Context, n_users: int, days: int, seed: int, out_dir: Path, scenario: str,
             change_day: int | None, start: dt.date, horizon: int, keep_state: bool,
             continue_from: Path | None, delivered: tuple[Path, ...],
             delivered_at: dt.date | None, until: dt.date | None, surge_topic: str | None,
             surge_start: dt.date | None, surge_size: float, surge_days: int,
             zh_share: float | None) -> None:
    """Simulate an online shop with known ground truth, or carry one on after churnguard acts.

    Writes events.parquet, users.parquet, items.parquet and campaigns.parquet (the historical
    randomised campaigns) in the data contracts' format, and truth/ with each customer's true
    churn probability and true action effects at every cutoff (every 30 days from day 90). The
    drift scenario adds truth/change.json (the change's date and parameters) and each customer's
    delivery sensitivity in truth/users.parquet.

    With --continue, the shop responds: each delivered action takes effect on the contacted
    customers from its delivery day, and the shop goes on to --until; --out gets the new events
    and the customers who signed up meanwhile (ingest them as usual), truth/contacts.parquet
    (each contact's true effect) and state/.

    \b
    churnguard simulate --users 20000 --days 635 --scenario drift --out shop
    churnguard simulate --users 20000 --days 365 --surge-topic delivery \\
        --surge-start 2025-09-01 --surge-size 2 --surge-days 14 --out shop
    churnguard simulate --users 20000 --days 365 --keep-state --out shop
    churnguard simulate --users 8000 --days 365 --zh-share 1 --out shop-zh
    churnguard simulate --continue shop --delivered plan.csv --delivered-at 2026-01-01 \\
        --until 2026-02-01 --out shop-2026-01
    """
    surge_given = [f"--{name.replace('_', '-')}" for name in
                   ("surge_start", "surge_size", "surge_days")
                   if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
    if continue_from is not None:
        fixed = [f"--{name.replace('_', '-')}" for name in
                 ("n_users", "days", "seed", "scenario", "change_day", "start", "keep_state",
                  "surge_topic", "zh_share")
                 if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT]
        fixed += surge_given
        if fixed:
            raise BadInput(f"{', '.join(fixed).replace('--n-users', '--users')} cannot be given "
                           "with --continue: the shop's saved state fixes them")
        if until is None:
            raise BadInput("--continue needs --until, the day to simulate up to")
        given = ctx.get_parameter_source("horizon") is not click.core.ParameterSource.DEFAULT
        _continue_shop(continue_from, delivered=delivered, delivered_at=delivered_at,
                       until=until, out_dir=out_dir, horizon=horizon if given else None)
        return
    if delivered or delivered_at or until:
        raise BadInput("--delivered, --delivered-at and --until apply with --continue only")
    if surge_topic is None and surge_given:
        raise BadInput(f"{', '.join(surge_given)} apply with --surge-topic only")
    if surge_topic is not None and surge_start is None:
        raise BadInput("--surge-topic needs --surge-start, the surge's first day")
    from churnguard.simulate import Surge, simulate as run_simulation

    surge = None if surge_topic is None else Surge(topic=surge_topic, start=surge_start,
                                                   size=surge_size, days=surge_days)
    try:
        with day_progress(f"Simulating {n_users:,} customers") as update:
            result = run_simulation(n_users=n_users, days=days, seed=seed, out_dir=out_dir,
                                    scenario=scenario, start=start, horizon_days=horizon,
                                    change_day=change_day, keep_state=keep_state,
                                    surge=surge, zh_share=zh_share, progress=update)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    click.echo(
        f"Simulated {result.n_users:,} customers, {result.n_events:,} events over {days} days "
        f"(scenario {result.scenario}, seed {result.seed}) into {result.out_dir}"
    )
    _future_note(start + dt.timedelta(days=days), days=days)


def _future_note(ends: dt.date, *, days: int | None = None, period: str = "simulated") -> None:
    """Warn when the simulated period ends after today: ingestion refuses events from the
    future, so say so now, not at ingest time (the default --start is fixed, so a long period
    can reach past today). ``days``: the period's length, for the --start that ends today."""
    today = dt.datetime.now(dt.UTC).date()
    if ends > today:
        restart = ("" if days is None else
                   f"Simulate with --start {today - dt.timedelta(days=days)} to end today, or ")
        click.echo(
            f"Note: the {period} period ends {ends}, after today ({today}): `churnguard "
            "ingest` refuses events later than the time of the ingest (docs/ingest.md, \"Events "
            f"from the future\"). {restart or 'Or '}set future_events = \"allow\" under "
            "[ingest] in the project that loads these files.", err=True)


def _continue_shop(state: Path, *, delivered: tuple[Path, ...], delivered_at: dt.date | None,
                   until: dt.date, out_dir: Path, horizon: int | None) -> None:
    from churnguard.simulate import continue_shop

    try:
        with day_progress("Continuing the shop") as update:
            result = continue_shop(state, list(delivered) or None, until=until, out_dir=out_dir,
                                   delivered_at=delivered_at, horizon_days=horizon,
                                   progress=update)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    click.echo(
        f"Continued the shop from {result.start} to {result.until}: {result.n_events:,} events, "
        f"{result.n_new_users:,} new customers, {result.n_contacts:,} contacts and "
        f"{result.n_control:,} control customers; truth in {result.out_dir / 'truth'}, the new "
        f"state in {result.paths['state']}")
    _future_note(until, period="continued")


# -- ingest --------------------------------------------------------------------------------------
@cli.group()
def ingest() -> None:
    """Load files into the store: validated, normalised to UTC, de-duplicated, all or nothing.

    \b
    churnguard ingest events orders.csv --map user_id=customer --map ts=order_date --default-type order
    churnguard ingest users customers.parquet
    churnguard ingest quarantine            (rows kept aside by --on-error quarantine)
    """


def _ingest_command(kind: str, summary: str) -> click.Command:
    @click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
    @click.option("--map", "mappings", multiple=True, metavar="DST=SRC",
                  help="Use the file's column SRC as the contract column DST (repeatable).")
    @click.option("--format", "fmt", type=click.Choice(["auto", "csv", "parquet", "jsonl"]),
                  default="auto", show_default=True, help="File format; auto goes by extension.")
    @click.option("--on-error", type=click.Choice(["reject", "skip", "quarantine"]), default="reject",
                  show_default=True,
                  help="reject: a bad row changes nothing; skip: load the good rows; "
                  "quarantine: load the good rows and keep the bad ones with their reasons.")
    @click.option("--delimiter", default=None, help="CSV delimiter (default: detected).")
    @click.option("--encoding", default="utf-8", show_default=True, help="CSV text encoding.")
    @project_option
    def command(files: tuple[Path, ...], mappings: tuple[str, ...], fmt: str, on_error: str,
                delimiter: str | None, encoding: str, project_dir: Path | None,
                default_type: str | None = None) -> None:
        _run_ingest(kind=kind, files=files, mappings=mappings, fmt=fmt, on_error=on_error,
                    delimiter=delimiter, encoding=encoding, project_dir=project_dir,
                    default_type=default_type)

    if kind == "events":
        command = click.option("--default-type", default=None,
                               help="Event type for files without a type column (e.g. 'order' "
                               "for an orders export).")(command)
    command.__doc__ = summary
    return click.command(name=kind)(command)


def _run_ingest(*, kind: str, files: tuple[Path, ...], mappings: tuple[str, ...], fmt: str,
                on_error: str, delimiter: str | None, encoding: str, project_dir: Path | None,
                default_type: str | None) -> None:
    from churnguard.ingest import ingest_files, parse_mapping

    project = load_project(project_dir)
    mapping = parse_mapping(mappings)
    with project.open_store() as store, stage_spinner(f"Ingesting {kind}") as update:
        report = ingest_files(store, kind=kind, files=files, mapping=mapping,
                              default_type=default_type, fmt=fmt, on_error=on_error,
                              config=project.config.ingest, delimiter=delimiter,
                              encoding=encoding, progress=update)
    click.echo(
        f"{kind}: read {report.rows_read:,} rows from {len(report.files)} file(s); "
        f"added {report.rows_added:,}, updated {report.rows_updated:,}, "
        f"duplicates {report.rows_duplicate:,}, bad {report.rows_bad:,} (batch {report.batch_id})"
    )
    if report.rows_bad:
        where = "kept in quarantine" if on_error == "quarantine" else "skipped"
        console.print(f"[yellow]{report.rows_bad:,} bad rows {where}; first problems:[/yellow]")
        for problem in report.problems[:5]:
            console.print(f"  {problem}")


_INGEST_KINDS = {
    "events": "Ingest event files (user_id, ts, type, and optional event_id, item_id, category, "
    "amount, quantity, text, rating, channel, session_id).",
    "users": "Ingest customer files (user_id, optional signup_ts; other columns become attributes).",
    "items": "Ingest catalogue files (item_id, optional category, price, title; other columns "
    "become attributes).",
    "campaigns": "Ingest campaign assignments (user_id, campaign_id, action, assigned_at, "
    "is_control, optional cost, channel).",
    "labels": "Ingest supplied churn labels (user_id, as_of, churned); they replace the churn rule.",
}
for _kind, _summary in _INGEST_KINDS.items():
    ingest.add_command(_ingest_command(_kind, _summary))


@ingest.command(name="quarantine")
@click.option("--batch", "batch_id", default=None, help="Only rows of this ingest batch.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@project_option
def ingest_quarantine(batch_id: str | None, limit: int, project_dir: Path | None) -> None:
    """List rows kept aside by `--on-error quarantine`, with file, row, column and reason."""
    from churnguard.ingest import list_quarantine

    project = load_project(project_dir)
    with project.open_store(read_only=True) as store:
        rows = list_quarantine(store, batch_id=batch_id, limit=limit)
    if not rows:
        click.echo("No quarantined rows.")
        return
    table = Table("batch", "kind", "file", "row", "column", "reason")
    for row in rows:
        table.add_row(str(row["batch_id"])[:12], row["kind"], Path(row["file"]).name,
                      str(row["row_number"]), str(row["column_name"]), row["reason"])
    Console(highlight=False).print(table)


# -- churn definition ----------------------------------------------------------------------------
@cli.group()
def churn() -> None:
    """Look at what a churn definition means before training on it."""


@churn.command(name="preview")
@definition_options
@project_option
def churn_preview_command(activity: str | None, lookback: int | None, horizon: int | None,
                          project_dir: Path | None) -> None:
    """Per cutoff: the population, how many churned, the churn rate, and whether labels are known.

    A customer is in the population at cutoff T when they have an activity event in
    [T - lookback, T), and churned when they have none in [T, T + horizon). Cutoffs run every
    30 days; the newest ones cannot be labelled yet (their horizon is in the future).
    """
    from churnguard.labels import churn_preview

    project = load_project(project_dir)
    definition = churn_definition(project, activity, lookback, horizon)
    with project.open_store(read_only=True) as store:
        rows = churn_preview(store, definition=definition)
    table = Table("cutoff", "population", "churned", "churn rate", "labels",
                  title=f"Churn = no {'/'.join(definition.activity)} within "
                  f"{definition.horizon_days} days; population = "
                  f"{'/'.join(definition.activity)} in the previous {definition.lookback_days} days")
    for row in rows:
        table.add_row(f"{row.cutoff:%Y-%m-%d}", f"{row.population:,}",
                      "—" if row.churned is None else f"{row.churned:,}",
                      "—" if row.churn_rate is None else f"{row.churn_rate:.1%}",
                      row.note)
    Console(highlight=False, width=140).print(table)


# -- status and demo -----------------------------------------------------------------------------
@cli.command()
@project_option
def status(project_dir: Path | None) -> None:
    """Summarise the project's store: rows per table, events per type, time span, batches."""
    project = load_project(project_dir)
    with project.open_store(read_only=True) as store:
        _print_store_summary(store, project)


def _print_store_summary(store: Any, project: Project) -> None:
    out = Console(highlight=False)
    counts = store.table_counts()
    summary = store.event_summary()
    table = Table("table", "rows", title=f"Store {project.store_path}")
    for name, n in counts.items():
        table.add_row(name, f"{n:,}")
    out.print(table)
    if summary["first_ts"] is not None:
        out.print(f"Events from {summary['first_ts']:%Y-%m-%d} to {summary['last_ts']:%Y-%m-%d} UTC, "
                  f"{summary['users_with_events']:,} customers with events")
        types = Table("event type", "events")
        for event_type, n in summary["by_type"].items():
            types.add_row(event_type, f"{n:,}")
        out.print(types)
    pending = pending_compactions(project.root)
    if pending:
        out.print(f"{len(pending):,} erasure(s) wait for the store file to be rewritten (another "
                  "process held it): run `churnguard erase --finish`")

