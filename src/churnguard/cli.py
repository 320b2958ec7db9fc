"""The ``churnguard`` command: one sub-command per verb, each a thin shell over the library.

Exit codes (DESIGN.md): 0 success, 2 bad usage or bad input (the message names file, row, column
and reason), 1 anything else.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
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
from rich.table import Table

from churnguard import __version__
from pydantic import ValidationError

from churnguard.config import ChurnDefinition, ConfigError
from churnguard.durations import parse_date, parse_days
from churnguard.project import CONFIG_FILENAME, Project, init_project, resolve_project_dir
from churnguard.store import StoreError

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2

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


def days_option(*names: str, default: str | None, help: str) -> Callable[..., Any]:
    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
        if value is None:
            return None
        try:
            return parse_days(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return click.option(*names, default=default, callback=convert, help=help, show_default=True)


def date_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return parse_date(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


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


@contextmanager
def stage_spinner(label: str) -> Iterator[Callable[[str], None]]:
    """A spinner whose text follows the stage messages of a long operation."""
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    ) as progress:
        task = progress.add_task(label, total=None)
        yield lambda message: progress.update(task, description=f"{label}: {message}")


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
              help="'default', or 'sequence' (the order of events carries signal that totals miss).")
@click.option("--start", default="2025-01-01", show_default=True, callback=date_callback,
              help="First simulated day (YYYY-MM-DD).")
@days_option("--horizon", default="90d", help="Churn horizon used for the ground truth.")
def simulate(n_users: int, days: int, seed: int, out_dir: Path, scenario: str, start: dt.date,
             horizon: int) -> None:
    """Simulate an online shop with known ground truth.

    Writes events.parquet, users.parquet, items.parquet and campaigns.parquet (the historical
    randomised campaigns) in the data contracts' format, and truth/ with each customer's true
    churn probability and true action effects at every cutoff (every 30 days from day 90).
    """
    from churnguard.simulate import simulate as run_simulation

    try:
        with day_progress(f"Simulating {n_users:,} customers") as update:
            result = run_simulation(n_users=n_users, days=days, seed=seed, out_dir=out_dir,
                                    scenario=scenario, start=start, horizon_days=horizon,
                                    progress=update)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    click.echo(
        f"Simulated {result.n_users:,} customers, {result.n_events:,} events over {days} days "
        f"(scenario {result.scenario}, seed {result.seed}) into {result.out_dir}"
    )


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
    from churnguard.ingest import IngestError, ingest_files, parse_mapping

    project = load_project(project_dir)
    try:
        mapping = parse_mapping(mappings)
        with project.open_store() as store, stage_spinner(f"Ingesting {kind}") as update:
            report = ingest_files(store, kind=kind, files=files, mapping=mapping,
                                  default_type=default_type, fmt=fmt, on_error=on_error,
                                  config=project.config.ingest, delimiter=delimiter,
                                  encoding=encoding, progress=update)
    except IngestError as exc:
        raise BadInput(str(exc)) from None
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
    from churnguard.labels import LabelError, churn_preview

    project = load_project(project_dir)
    definition = churn_definition(project, activity, lookback, horizon)
    with project.open_store(read_only=True) as store:
        try:
            rows = churn_preview(store, definition=definition)
        except LabelError as exc:
            raise BadInput(str(exc)) from None
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


# -- models: train, backtest, score, explain, report ----------------------------------------------
def _truth(project: Project) -> Any:
    """The simulator's truth for the oracle, when the project says where it is."""
    import pandas as pd

    if not project.config.simulation.truth:
        return None
    path = (project.root / project.config.simulation.truth).resolve()
    if not path.exists():
        raise BadInput(f"simulation.truth in {CONFIG_FILENAME} names {path}, which does not exist")
    return pd.read_parquet(path, columns=["user_id", "cutoff", "p_churn"])


def _model_names(value: str) -> tuple[str, ...]:
    from churnguard.evaluate import MODEL_FACTORIES

    names = tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = [n for n in names if n not in MODEL_FACTORIES]
    if unknown or not names:
        raise BadInput(f"--models: unknown model {unknown[0] if unknown else value!r}; "
                       f"known: {', '.join(MODEL_FACTORIES)}")
    return names


def _configured(project: Project, names: Sequence[str]) -> list[Any]:
    """``names`` built as churnguard.toml says ([models.behaviour] for the behaviour models)."""
    from churnguard.training import configured_models

    try:
        return configured_models(names, project.config.models.behaviour, root=project.root)
    except ValueError as exc:
        raise BadInput(str(exc)) from None


def _train_cutoffs(value: str | None) -> int | list[dt.date] | None:
    if value is None:
        return None
    if value.strip().isdigit():
        return int(value)
    try:
        return [parse_date(v) for v in value.split(",") if v.strip()]
    except ValueError as exc:
        raise BadInput(f"--train-cutoffs: {exc}; give a number K or dates D1,D2,...") from None


@cli.command()
@click.option("--models", "models", default="gbdt", show_default=True,
              help="The model to train: recency, btyd, gbdt, behaviour, behaviour_gru, "
              "behaviour_transformer, behaviour+gbdt or ensemble. The behaviour models take "
              "their size from [models.behaviour] in churnguard.toml.")
@click.option("--as-of", default=None, callback=date_callback,
              help="Train as if today were this date (default: on all the data).")
@click.option("--train-cutoffs", type=click.IntRange(min=1), default=None,
              help="Training cutoffs (30 days apart), the newest one horizon before the "
              "validation cutoff [default: up to 3, as many as the history allows].")
@click.option("--promote/--no-promote", default=None,
              help="Make it the champion that `score` uses (default: only if there is none).")
@definition_options
@project_option
def train(models: str, as_of: dt.date | None, train_cutoffs: int | None, promote: bool | None,
          activity: str | None, lookback: int | None, horizon: int | None,
          project_dir: Path | None) -> None:
    """Train a churn model on the newest labelled cutoffs and register it in the store.

    The newest cutoff whose horizon the data covers is the validation cutoff (early stopping and
    calibration); the training cutoffs end their horizons on or before it (the newest one
    horizon before it, the others 30 days apart before that), so no training label overlaps the
    validation labels. Run `churnguard backtest` for an honest, out-of-time measure of the same
    recipe.
    """
    from churnguard.evaluate import BacktestError
    from churnguard.training import train_model

    project = load_project(project_dir)
    definition = churn_definition(project, activity, lookback, horizon)
    (name,) = _model_names(models)[:1]
    (model,) = _configured(project, [name])
    with project.open_store() as store, stage_spinner(f"Training {name}") as update:
        try:
            trained = train_model(store, definition=definition, model=model, as_of=as_of,
                                  train_cutoffs=train_cutoffs, promote=promote, progress=update)
        except BacktestError as exc:
            raise BadInput(str(exc)) from None
        _print_skipped_groups(store)
    auc = trained.validation_metrics.get("roc_auc")
    click.echo(f"Trained {trained.version} on {trained.n_train:,} rows "
               f"(cutoffs {', '.join(f'{c:%Y-%m-%d}' for c in trained.train_cutoffs)}; validation "
               f"{trained.validation_cutoff:%Y-%m-%d}, ROC-AUC {auc:.3f} in-sample)"
               + ("; it is now the champion" if trained.promoted else ""))


def _print_skipped_groups(store: Any) -> None:
    """Say which feature groups the data could not support (e.g. an orders-only export)."""
    from churnguard.features import feature_groups_available

    missing = [g for g in feature_groups_available(store) if not g.available]
    if missing:
        console.print("Feature groups not computed: "
                      + "; ".join(f"{g.group} ({g.reason})" for g in missing), markup=False)


def _print_leaderboard(document: dict[str, Any], chosen: str | None = None) -> None:
    table = Table("model", "ROC-AUC", "PR-AUC", "Brier", "ECE", "lift@10%", "recall@10%",
                  title=f"Out-of-time backtest: test cutoff {document['test_cutoff']}, "
                  f"{document['n_test']:,} customers, churn rate {document['base_rate']:.1%}")

    def fmt(value: Any) -> str:
        return "—" if value is None else f"{value:.3f}"

    for row in sorted(document["models"], key=lambda r: -(r["roc_auc"] or 0)):
        name = row["name"] + (" (truth)" if row["name"] == "oracle" else "")
        table.add_row(name, fmt(row["roc_auc"]), fmt(row["pr_auc"]), fmt(row["brier"]),
                      fmt(row["ece"]), fmt(row["lift_at_10"]), fmt(row["recall_at_10"]),
                      style="bold" if row["name"] == chosen else None)
    Console(highlight=False).print(table)
    gaps = document.get("oracle_auc_gap")
    if gaps:
        Console(highlight=False).print(
            "Gap to the oracle's ROC-AUC: "
            + ", ".join(f"{k} {v:+.3f}" for k, v in gaps.items() if v is not None))


@cli.command()
@days_option("--horizon", default=None, help="Churn horizon, e.g. 90d (default: churnguard.toml).")
@click.option("--test-cutoff", default=None, callback=date_callback,
              help="Cutoff to test on (default: the newest whose horizon is observed).")
@click.option("--train-cutoffs", "train_cutoffs", default=None, metavar="K|D1,D2,...",
              help="K training cutoffs 30 days apart, the newest one horizon before the "
              "validation cutoff; or the dates (the newest is the validation cutoff; the others "
              "should end their horizons on or before it) [default: up to 3, as many as the "
              "history allows].")
@click.option("--models", default="recency,btyd,gbdt", show_default=True,
              help="Comma-separated models to compare.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the leaderboard as JSON here.")
@project_option
def backtest(horizon: int | None, test_cutoff: dt.date | None, train_cutoffs: str | None,
             models: str, json_path: Path | None, project_dir: Path | None) -> None:
    """Measure models out of time: fit on earlier cutoffs, test on a later one.

    The validation cutoff (early stopping and calibration) is the newest whose horizon ends on
    or before the test cutoff; the training cutoffs end their horizons on or before the
    validation cutoff, so no training label overlaps the labels the fit is judged on (see
    docs/models.md). The leaderboard lists every model, and on simulated data
    (simulation.truth in churnguard.toml) the oracle that knows the true churn probabilities.
    """
    from churnguard.evaluate import BacktestError, backtest as run_backtest
    from churnguard.reporting import save_backtest

    project = load_project(project_dir)
    definition = churn_definition(project, None, None, horizon)
    names = _model_names(models)
    chosen = _configured(project, names)
    cutoffs = _train_cutoffs(train_cutoffs)
    truth = _truth(project)
    with project.open_store() as store:
        try:
            with stage_spinner("Backtest") as update:
                result = run_backtest(store, definition=definition, test_cutoff=test_cutoff,
                                      train_cutoffs=cutoffs, models=chosen, truth=truth,
                                      progress=update)
        except BacktestError as exc:
            raise BadInput(str(exc)) from None
        run_id = save_backtest(store, result)
        _print_skipped_groups(store)
    document = result.to_dict()
    _print_leaderboard(document)
    if json_path is not None:
        result.to_json(json_path)
    click.echo(f"Backtest {run_id}: test cutoff {document['test_cutoff']}, "
               f"{document['n_test']:,} customers" + (f"; JSON in {json_path}" if json_path else ""))


@cli.command()
@click.option("--as-of", default=None, callback=date_callback,
              help="Score as of this date (default: just after the last event).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the scores to FILE.csv or FILE.parquet.")
@click.option("--lang", type=click.Choice(["en", "zh"]), default=None,
              help="Language of the reasons (default: scoring.lang in churnguard.toml).")
@definition_options
@project_option
def score(as_of: dt.date | None, out_path: Path | None, lang: str | None, activity: str | None,
          lookback: int | None, horizon: int | None, project_dir: Path | None) -> None:
    """Score every customer in the population with the champion model, with three reasons each.

    Columns: user_id, p_churn (calibrated probability of churning within the horizon),
    risk_tier (high/medium/low by scoring.high and scoring.medium), reason_1..reason_3,
    model_version. The scores are also kept in the store.
    """
    from churnguard.labels import LabelError
    from churnguard.scoring import ScoringError, score_customers

    if out_path is not None and out_path.suffix.lower() not in (".csv", ".parquet"):
        raise BadInput(f"--out {out_path}: write .csv or .parquet")
    project = load_project(project_dir)
    definition = churn_definition(project, activity, lookback, horizon)
    with project.open_store() as store, stage_spinner("Scoring") as update:
        try:
            result = score_customers(store, definition=definition, tiers=project.config.scoring,
                                     as_of=as_of, lang=lang, progress=update)
        except (ScoringError, LabelError) as exc:
            raise BadInput(str(exc)) from None
    frame = result.scores
    if out_path is not None:
        _write_table(frame, out_path)
    tiers = frame["risk_tier"].value_counts()
    click.echo(f"Scored {len(frame):,} customers as of {result.as_of:%Y-%m-%d} with "
               f"{result.model_version}: {tiers.get('high', 0):,} high, "
               f"{tiers.get('medium', 0):,} medium, {tiers.get('low', 0):,} low risk"
               + (f"; written to {out_path}" if out_path else ""))


def _write_table(frame: Any, path: Path) -> None:
    """Write atomically: a half-written export is never left behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(tmp, index=False)
    else:
        frame.to_csv(tmp, index=False)
    os.replace(tmp, path)


@cli.command()
@click.argument("user_id")
@click.option("--as-of", default=None, callback=date_callback,
              help="Explain as of this date (default: just after the last event).")
@click.option("--lang", type=click.Choice(["en", "zh"]), default=None,
              help="Language of the reasons (default: scoring.lang in churnguard.toml).")
@project_option
def explain(user_id: str, as_of: dt.date | None, lang: str | None, project_dir: Path | None) -> None:
    """Why the champion model thinks USER_ID may leave: probability, tier and reasons."""
    from churnguard.labels import LabelError
    from churnguard.scoring import ScoringError, explain_customer

    project = load_project(project_dir)
    with project.open_store(read_only=True) as store:
        try:
            result = explain_customer(store, user_id, definition=project.config.churn,
                                      tiers=project.config.scoring, as_of=as_of, lang=lang)
        except (ScoringError, LabelError) as exc:
            raise BadInput(str(exc)) from None
    click.echo(f"{result.user_id}: P(churn within {project.config.churn.horizon_days} days) = "
               f"{result.p_churn:.1%} ({result.risk_tier} risk) as of {result.as_of:%Y-%m-%d}, "
               f"model {result.model_version}")
    for k, sentence in enumerate(result.reasons, 1):
        click.echo(f"  {k}. {sentence}")
    if not result.reasons:
        click.echo("  No feature pushes this customer toward churn.")


@cli.command()
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("report.html"), show_default=True, help="HTML file to write.")
@project_option
def report(out_path: Path, project_dir: Path | None) -> None:
    """Write a self-contained HTML report (opens offline): leaderboard, curves, calibration,
    gains, score distribution, feature importance, churn by segment, the definition preview
    and the customers most at risk with their reasons."""
    from churnguard.report import render_report
    from churnguard.reporting import ReportError, build_report_data

    project = load_project(project_dir)
    with project.open_store(read_only=True) as store:
        try:
            data = build_report_data(store, title=f"Churn report — {project.root.name}",
                                     definition=project.config.churn)
        except ReportError as exc:
            raise BadInput(str(exc)) from None
    path = render_report(data, out_path)
    click.echo(f"Report written to {path}")


@cli.command(name="models")
@click.argument("version", required=False)
@project_option
def models_command(version: str | None, project_dir: Path | None) -> None:
    """List the registered model versions; the champion is marked.

    With VERSION, print that version as JSON: its settings (the model's hyper-parameters and
    the churn definition), data window, validation metrics and features.
    """
    from churnguard.registry import (
        CHAMPION,
        RegistryError,
        alias_version,
        get_model_version,
        list_models,
    )

    project = load_project(project_dir)
    if version is not None:
        with project.open_store(read_only=True) as store:
            try:
                chosen = get_model_version(store, version)
            except RegistryError as exc:
                raise BadInput(str(exc)) from None
            is_champion = alias_version(store, CHAMPION) == chosen.version
        click.echo(json.dumps({"version": chosen.version, "name": chosen.name,
                               "created_at": chosen.created_at.isoformat(),
                               "champion": is_champion, "config": chosen.config,
                               "data_window": chosen.data_window, "metrics": chosen.metrics,
                               "features": chosen.features}, indent=2, default=str))
        return
    with project.open_store(read_only=True) as store:
        versions, champion = list_models(store), alias_version(store, CHAMPION)
    if not versions:
        click.echo("No models yet; run `churnguard train`.")
        return
    table = Table("version", "model", "created (UTC)", "validation cutoff", "champion")
    for v in versions:
        table.add_row(v.version, v.name, f"{v.created_at:%Y-%m-%d %H:%M}",
                      str(v.data_window.get("validation_cutoff", "")),
                      "★" if v.version == champion else "")
    Console(highlight=False).print(table)


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


@dataclass(frozen=True, kw_only=True)
class DemoSize:
    """The size the demo trains its models at: small enough that `make demo` stays within ten
    minutes on two cores, large enough for an honest comparison.

    Pretraining (CoLES, no labels) sees at most ``pretrain_customers`` customers for at most
    ``pretrain_epochs`` epochs; the behaviour models read each customer's newest ``max_len``
    events through a one-layer GRU of width ``d_model`` (with review text), and ``behaviour``
    fine-tunes for at most ``epochs`` epochs (both stop early on held-out data). Measured on the
    20,000-customer demo shop, width 32 over 32 events came within 0.003 out-of-time ROC-AUC of
    width 64 over 64 events in well under half the fine-tuning time.

    The gradient-boosted trees (``gbdt`` and the trees of ``behaviour+gbdt``) learn at
    ``gbdt_learning_rate`` (the models' default: 0.03): about half the trees, so training and
    the TreeSHAP reasons take about half the time. Out of time on the demo shop, gbdt scored
    ROC-AUC 0.8584 with 1,031 trees against 0.8587 with 2,000 at 0.03; on three 50,000-customer
    shops (benchmarks/.data/models_50000_540_*), 0.8696 against 0.8702.
    """

    pretrain_epochs: int = 3
    pretrain_customers: int = 8_000
    max_len: int = 32
    d_model: int = 32
    epochs: int = 3
    gbdt_learning_rate: float = 0.06

    def pretrain_config(self) -> Any:
        """The pretraining that a ``behaviour`` model of this size runs inside ``fit``."""
        from churnguard.models.behaviour.encoders import EncoderConfig
        from churnguard.models.behaviour.pretrain import PretrainConfig

        encoder = EncoderConfig(kind="gru", d_model=self.d_model, d_ff=2 * self.d_model)
        return PretrainConfig(encoder=encoder, epochs=self.pretrain_epochs,
                              max_customers=self.pretrain_customers, max_len=self.max_len)

    def models(self, pretrained: str = "auto") -> list[Any]:
        """``behaviour`` and ``behaviour+gbdt`` of this size, from the encoder file
        ``pretrained`` (or pretraining inside ``fit`` with "auto")."""
        from churnguard.models.behaviour.model import BehaviourChurnModel, BehaviourGBDTModel

        shared = {"encoder": "gru", "d_model": self.d_model, "max_len": self.max_len,
                  "pretrain": pretrained, "pretrain_epochs": self.pretrain_epochs,
                  "pretrain_max_customers": self.pretrain_customers}
        return [BehaviourChurnModel(epochs=self.epochs, **shared),
                BehaviourGBDTModel(learning_rate=self.gbdt_learning_rate, **shared)]

    def gbdt(self) -> Any:
        """The demo's ``gbdt`` model."""
        from churnguard.models.gbdt import GBDTChurnModel

        return GBDTChurnModel(learning_rate=self.gbdt_learning_rate)


DEMO_SIZE = DemoSize()


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


@cli.command()
@click.option("--users", "n_users", type=click.IntRange(min=100), default=20_000, show_default=True,
              help="Customers in the simulated shop.")
@click.option("--days", type=click.IntRange(min=400), default=730, show_default=True,
              help="Days of simulated history (at least 400: three training cutoffs, validation "
              "and test, each with a 90-day horizon).")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--budget", type=click.FloatRange(min=0), default=None,
              help="Budget of the retention campaign (default: 0.25 per customer in the "
              "population).")
@click.option("--behaviour/--no-behaviour", default=True, show_default=True,
              help="Pretrain the behaviour encoder and backtest the behaviour and behaviour+gbdt "
              f"models at the demo's small size (pretraining: at most "
              f"{DEMO_SIZE.pretrain_customers:,} customers, {DEMO_SIZE.pretrain_epochs} "
              f"epochs; GRU of width {DEMO_SIZE.d_model} over the newest "
              f"{DEMO_SIZE.max_len} events per customer; fine-tuning: at most "
              f"{DEMO_SIZE.epochs} epochs).")
@project_option
def demo(n_users: int, days: int, seed: int, budget: float | None, behaviour: bool,
         project_dir: Path | None) -> None:
    """Run the main job end to end on a simulated shop in the embedded store.

    Simulates a shop into PROJECT/data (the project is ./demo-project when run by `make demo`),
    creates the project, ingests every file, pretrains the behaviour encoder on the customers'
    event streams without labels (PROJECT/pretrained; not with --no-behaviour), backtests
    recency, BTYD, gradient-boosted trees, behaviour and behaviour+gbdt (not with
    --no-behaviour) out of time against the simulator's oracle, trains the
    champion (the best out-of-time ROC-AUC among the models that give reasons), scores every
    customer with reasons, measures the newest past campaign against its control group, plans a
    retention campaign under the budget (uplift, value, allocation, control group, items and
    messages) and writes the HTML report. The models run at the demo's small size (DEMO_SIZE in
    churnguard/cli.py; the trees learn at rate 0.06 instead of 0.03, which halves their training
    and reasons time). Each step prints its time. Rerunning is safe: the same
    seed gives the same data, ingestion adds nothing twice and the campaign of the same day is
    planned once.
    """
    from churnguard.evaluate import backtest as run_backtest
    from churnguard.evaluate import backtest_cutoffs
    from churnguard.ingest import IngestError, ingest_files
    from churnguard.report import render_report
    from churnguard.reporting import backtest_document, build_report_data, save_backtest
    from churnguard.scoring import score_customers
    from churnguard.simulate import simulate as run_simulation
    from churnguard.training import train_model

    root = resolve_project_dir(project_dir)
    data_dir = root / "data"
    steps = 9 if behaviour else 8
    counter = iter(range(1, steps + 1))

    @contextmanager
    def step(text: str) -> Iterator[None]:
        console.print(f"[bold]{next(counter)}/{steps}[/bold] {text}", markup=True)
        started = time.perf_counter()
        yield
        console.print(f"      ({_duration(time.perf_counter() - started)})")

    began = time.perf_counter()
    with step(f"Simulating a shop of {n_users:,} customers over {days} days"):
        with day_progress("Simulating") as update:
            result = run_simulation(n_users=n_users, days=days, seed=seed, out_dir=data_dir,
                                    progress=update)
        console.print(f"      {result.n_events:,} events written to {data_dir}")
    with step(f"Creating the project in {root}"):
        project, _ = init_project(root)
        _point_at_truth(project, result.paths["truth_churn"])
        project = Project.load(root)
    with project.open_store() as store:
        with step("Ingesting into the embedded store"):
            try:
                for kind in ("items", "users", "events", "campaigns"):
                    with stage_spinner(f"Ingesting {kind}") as update:
                        report = ingest_files(store, kind=kind, files=[result.paths[kind]],
                                              config=project.config.ingest, progress=update)
                    console.print(f"      {kind}: {report.rows_added:,} added, "
                                  f"{report.rows_duplicate:,} already there")
            except IngestError as exc:  # the simulator's own files must always be valid
                raise RuntimeError(f"the simulated data failed validation: {exc}") from exc
        definition = project.config.churn
        truth = _truth(project)
        test, fit_cutoffs, validation = backtest_cutoffs(
            store, definition=definition, candidates=_truth_cutoffs(truth))
        models: list[Any] = ["recency", "btyd", DEMO_SIZE.gbdt()]
        if behaviour:
            models += _demo_pretrain(store, step, cutoff=validation, out=root / "pretrained")
        step_text = ("Backtesting out of time: recency rule, BTYD, gradient-boosted trees"
                     + (", behaviour, behaviour+gbdt" if behaviour else "") + ", oracle")
        with step(step_text):
            with stage_spinner("Backtest") as update:
                measured = run_backtest(store, definition=definition, test_cutoff=test,
                                        train_cutoffs=[*fit_cutoffs, validation], models=models,
                                        truth=truth, progress=update)
            save_backtest(store, measured)
            (root / "backtest.json").write_text(
                json.dumps(backtest_document(measured), indent=2) + "\n", encoding="utf-8")
            champion = _demo_champion(measured)
            _print_leaderboard(measured.to_dict(), chosen=champion)
            console.print("      " + ", ".join(f"{name} {_duration(seconds)}"
                                               for name, seconds in measured.seconds.items()))
        with step(f"Training the champion, {champion} (the best out-of-time ROC-AUC among the "
                  "models that give reasons), on the newest cutoffs"):
            estimator = next((m for m in [DEMO_SIZE.gbdt(), *DEMO_SIZE.models()]
                              if m.name == champion), champion)
            with stage_spinner(f"Training {champion}") as update:
                trained = train_model(store, definition=definition, model=estimator,
                                      promote=True, progress=update)
            console.print(f"      {trained.version}")
        with step("Scoring every customer in the population, with reasons"):
            with stage_spinner("Scoring") as update:
                scored = score_customers(store, definition=definition,
                                         tiers=project.config.scoring, progress=update)
            _write_table(scored.scores, root / "scores.csv")
            tiers = scored.scores["risk_tier"].value_counts()
            console.print(f"      {len(scored.scores):,} customers: {tiers.get('high', 0):,} "
                          f"high, {tiers.get('medium', 0):,} medium, {tiers.get('low', 0):,} "
                          "low risk")
            top = scored.scores.iloc[0]
            console.print(f"      most at risk: {top['user_id']} ({top['p_churn']:.0%}): "
                          f"{top['reason_1']}", markup=False)
        with step("Measuring the last campaign and planning the next one"):
            _demo_campaign(project, store, budget=budget, population=len(scored.scores),
                           as_of=scored.as_of, out=root / "plan.csv")
        with step("Writing the report"):
            data = build_report_data(store, title=f"Churn report — {root.name}",
                                     definition=definition)
            render_report(data, root / "report.html")
    click.echo(f"Scores: {root / 'scores.csv'}")
    click.echo(f"Plan: {root / 'plan.csv'}")
    click.echo(f"Report: {root / 'report.html'}")
    click.echo(f"Project ready in {root} in {_duration(time.perf_counter() - began)}; "
               f"simulated ground truth in {data_dir / 'truth'}")
    click.echo(f"Dashboard: CHURNGUARD_ENV=development churnguard serve --project {root} "
               "(then open http://127.0.0.1:8000/)")


def _duration(seconds: float) -> str:
    """'12.3 s' under a minute, else '4 min 05 s'."""
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def _truth_cutoffs(truth: Any) -> list[dt.datetime] | None:
    """The cutoffs the simulator computed the truth at (the backtest tests on one of them)."""
    import pandas as pd

    if truth is None:
        return None
    stamps = pd.to_datetime(truth["cutoff"].drop_duplicates())
    if stamps.dt.tz is not None:
        stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
    return [s.to_pydatetime() for s in stamps]


def _demo_pretrain(store: Any, step: Callable[[str], Any], *, cutoff: dt.datetime,
                   out: Path) -> list[Any]:
    """Pretrain the demo's encoder on the events before the backtest's validation cutoff (what
    the backtested models may see; no labels) and return the behaviour models that use it."""
    from churnguard.models.behaviour.pretrain import pretrain as run_pretrain

    size = DEMO_SIZE
    with step(f"Pretraining the behaviour encoder without labels on at most "
              f"{size.pretrain_customers:,} customers' events before {cutoff:%Y-%m-%d} "
              f"(newest {size.max_len} per customer, at most {size.pretrain_epochs} epochs)"):
        with epoch_progress("Pretraining", total=size.pretrain_epochs) as update:
            done = run_pretrain(store, cutoff=cutoff, config=size.pretrain_config(),
                                out_dir=out, progress=update)
        last = done.history[done.best_epoch] if 0 <= done.best_epoch < len(done.history) else {}
        console.print(f"      {done.n_customers:,} customers, {len(done.history)} epoch(s), best "
                      f"held-out loss {last.get('heldout_loss', float('nan')):.3f}; encoder in "
                      f"{done.path}", markup=False)
    return size.models(str(done.path))


def _demo_champion(measured: Any) -> str:
    """The backtested model with the best out-of-time ROC-AUC among those that give reasons
    (the demo scores every customer with reasons); the oracle is not a model."""
    import math

    from churnguard.models.base import ChurnModel

    def gives_reasons(name: str) -> bool:
        return type(measured.models[name]).explain is not ChurnModel.explain

    ranked = [m for m in measured.metrics if m.name in measured.models and gives_reasons(m.name)
              and math.isfinite(m.roc_auc)]
    if not ranked:
        raise RuntimeError("no backtested model gives reasons; the demo needs one to score with")
    return max(ranked, key=lambda m: m.roc_auc).name


def _demo_campaign(project: Project, store: Any, *, budget: float | None, population: int,
                   as_of: dt.datetime, out: Path) -> None:
    """Measure the newest fully observed campaign, then plan (once per day) and export."""
    import json

    from churnguard.cli_campaigns import print_plan_summary
    from churnguard.intervene.deliver import export_plan
    from churnguard.intervene.measure import MeasurementError, measure_campaign, save_measurement
    from churnguard.intervene.plan import make_plan, save_plan

    iv = project.config.intervene
    observed = store.con.execute(
        f"SELECT campaign_id FROM campaigns GROUP BY campaign_id HAVING bool_or(is_control) AND "
        f"max(assigned_at) + INTERVAL ({iv.window_days}) DAY <= (SELECT max(ts) FROM events) "
        "ORDER BY max(assigned_at) DESC LIMIT 1").fetchall()
    if observed:
        try:
            measured = measure_campaign(store, campaign_id=observed[0][0],
                                        outcome_type=iv.outcome_type, window_days=iv.window_days)
        except MeasurementError as exc:
            console.print(f"      could not measure {observed[0][0]}: {exc}", markup=False)
        else:
            save_measurement(store, measured)
            pooled = next((g for g in measured.groups if g.action == "all" and g.tier == "all"),
                          None)
            if pooled is not None and pooled.incremental_retention is not None:
                low, high = pooled.incremental_retention_ci or (float("nan"), float("nan"))
                console.print(f"      campaign {observed[0][0]}: incremental retention "
                              f"{pooled.incremental_retention:+.1%} (95% CI {low:+.1%} to "
                              f"{high:+.1%}) over {pooled.n_treated:,} treated customers")
    campaign_id = f"demo-{as_of:%Y%m%d}"
    existing = store.con.execute("SELECT summary FROM plans WHERE campaign_id = ?",
                                 [campaign_id]).fetchall()
    if existing:
        summary = json.loads(existing[0][0])
        console.print(f"      campaign {campaign_id} was planned before; showing it")
    else:
        amount = 0.25 * population if budget is None else budget
        with stage_spinner("Planning") as update:
            plan = make_plan(store, config=project.config, budget=amount, as_of=as_of,
                             campaign_id=campaign_id, progress=update)
        save_plan(store, plan, config=project.config)
        summary = plan.summary
    print_plan_summary(summary)
    export_plan(store, campaign_id=campaign_id, path=out)


def _point_at_truth(project: Project, truth: Path) -> None:
    """Record in churnguard.toml where the simulator's truth is, so backtests add the oracle."""
    config_path = project.root / CONFIG_FILENAME
    text = config_path.read_text(encoding="utf-8")
    if "[simulation]" not in text:
        relative = os.path.relpath(truth, project.root)
        config_path.write_text(text.rstrip() + f'\n\n[simulation]\ntruth = "{relative}"\n',
                               encoding="utf-8")


# The intervention and behaviour-model commands live in their own modules; importing them
# registers them on `cli`.
from churnguard import cli_behaviour, cli_campaigns, cli_service  # noqa: E402,F401

# -- entry point ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run the CLI and map failures to the documented exit codes."""
    try:
        cli.main(args=argv, prog_name="churnguard", standalone_mode=False)
    except click.exceptions.Abort:
        console.print("Aborted.")
        return EXIT_FAILURE
    except click.ClickException as exc:  # BadInput and click's own usage errors (exit code 2)
        exc.show()
        return exc.exit_code
    except ConfigError as exc:
        console.print(f"Error: {exc}", markup=False)
        return EXIT_BAD_INPUT
    except StoreError as exc:
        console.print(f"Error: {exc}", markup=False)
        return EXIT_FAILURE
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except Exception as exc:  # anything unexpected: a short message, the traceback on request
        console.print(f"Error: {type(exc).__name__}: {exc}", markup=False)
        if os.environ.get("CHURNGUARD_DEBUG", "") not in ("", "0"):
            traceback.print_exc()
        else:
            console.print("Set CHURNGUARD_DEBUG=1 for the full traceback.")
        return EXIT_FAILURE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
