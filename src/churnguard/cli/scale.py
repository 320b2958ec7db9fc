"""``--engine spark`` of ``score`` and the ``features`` command: the same scores and snapshots
computed on Apache Spark from a lake's tables, or with ``--engine duckdb --events`` in DuckDB
from a lake's Parquet (docs/scale.md). Without ``--events`` the DuckDB engine (the default)
works on the project's store as before."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from churnguard.cli.base import (
    BadInput,
    churn_definition,
    cli,
    console,
    definition_options,
    file_option,
    load_project,
    project_option,
    stage_spinner,
    write_table,
)
from churnguard.durations import parse_date

LAKE_OPTIONS = ("events", "users", "items", "user_attributes", "labels")
_SOURCE = ("a Parquet file, folder, glob or URI (/lake/x/*.parquet, s3a://bucket/x/), or with "
           "--engine spark a table name (shop.x)")


def engine_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--engine and the lake's tables (--events, --users, --items, --user-attributes,
    --labels)."""
    # applied last to first: the help lists events, users, items, user-attributes, labels
    for name, what in (
            ("labels", "supplied labels (user_id, as_of, churned)"),
            ("user-attributes", "user attributes (user_id, name, value)"),
            ("items", "items (item_id, category)"),
            ("users", "users (user_id, signup_ts)")):
        command = click.option(f"--{name}", default=None, metavar="SOURCE",
                               help=f"With --events: the lake's {what}; a path (or with "
                                    "--engine spark a table) as for --events.")(command)
    command = click.option(
        "--events", default=None, metavar="SOURCE",
        help=f"A lake's events (required with --engine spark), {_SOURCE}; columns "
             "event_id, user_id, ts, type and, where known, amount, rating, session_id, "
             "item_id, category, text. With --engine duckdb: Parquet only (a remote URI "
             "needs DuckDB's httpfs installed); without --events the project's store is "
             "read.")(command)
    return click.option(
        "--engine", type=click.Choice(["duckdb", "spark"]), default=None,
        help="duckdb (default): the project's store, or DuckDB over --events with the "
             "project's champion. spark: Apache Spark over --events (needs `pip install "
             "'churnguard[spark]'` and Java 17+). Both give the same rows on the same "
             "data.")(command)


def duckdb_lake(lake: dict[str, str | None]) -> Any:
    """The lake's tables for the DuckDB engine (a :class:`churnguard.lake.LakeTables`), or None
    when no --events is given (the project's store is read); other tables without --events are
    refused."""
    from churnguard.lake import LakeTables

    if lake.get("events") is None:
        given = [f"--{n.replace('_', '-')}" for n in LAKE_OPTIONS if lake.get(n) is not None]
        if given:
            raise BadInput(f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} "
                           "--events (the lake's events); without --events the DuckDB engine "
                           "reads the project's store (ingest the files with `churnguard "
                           "ingest`)")
        return None
    return LakeTables(**{n: lake.get(n) for n in LAKE_OPTIONS})


def _sources(lake: dict[str, str | None]) -> Any:
    from churnguard.spark.jobs import LakeSources
    from churnguard.spark.lake import pyspark_sql

    if lake.get("events") is None:
        raise BadInput("--engine spark needs --events SOURCE (a Parquet path or URI, or a "
                       "table name)")
    pyspark_sql()  # without the [spark] extra, say how to get it before any work
    return LakeSources(**{n: lake.get(n) for n in LAKE_OPTIONS})


def _spark_out(out: str | None) -> str:
    if out is None:
        raise BadInput("--engine spark needs --out PATH (a Parquet folder, local or a URI)")
    return out


def score_on_spark(*, project: Any, definition_of: Callable[[Any], Any],
                   as_of: dt.date | None, out: str | None, lang: str | None,
                   **lake: str | None) -> None:
    """``churnguard score --engine spark``: the champion from the store (``definition_of(store)``
    the churn definition to score with), the rest on Spark."""
    from churnguard.spark.jobs import score_job
    from churnguard.spark.scoring import spark_champion

    sources, target = _sources(lake), _spark_out(out)
    with project.open_store(read_only=True) as store:
        definition = definition_of(store)
        champion = spark_champion(store, definition)
    with stage_spinner("Scoring on Spark") as update:
        result = score_job(champion, sources=sources, out=target, definition=definition,
                           tiers=project.config.scoring, as_of=as_of, lang=lang,
                           progress=update)
    tiers = result.tiers
    click.echo(f"Scored {result.rows:,} customers as of {result.as_of:%Y-%m-%d} with "
               f"{result.model_version} on Spark: {tiers.get('high', 0):,} high, "
               f"{tiers.get('medium', 0):,} medium, {tiers.get('low', 0):,} low risk; "
               f"written to {result.out}")


def _cutoffs(value: str | None) -> list[dt.date] | None:
    if value is None:
        return None
    try:
        return [parse_date(part.strip()) for part in value.split(",") if part.strip()]
    except ValueError as exc:
        raise BadInput(f"--cutoffs {value}: {exc}") from None


@cli.command()
@click.option("--out", "out", required=True, metavar="PATH",
              help="Where to write: FILE.parquet or FILE.csv (duckdb); a Parquet folder, local "
                   "or a URI such as s3a://bucket/features/ (spark).")
@click.option("--cutoffs", default=None, metavar="DATE[,DATE...]",
              help="The cutoffs (default: just after the last event).")
@engine_options
@definition_options
@project_option
def features(out: str, cutoffs: str | None, engine: str | None, activity: str | None,
             lookback: int | None, horizon: int | None, project_dir: Path | None,
             **lake: str | None) -> None:
    """Write the training snapshot: the population at the cutoffs with labels and features.

    Columns: user_id, cutoff, churned (empty where the horizon is not observed yet),
    label_source (rule or supplied), then every registered feature and the attr_ columns
    (docs/features.md). The churn definition is churnguard.toml's [churn], or the options.

    --engine duckdb (default) reads the project's store, or with --events a lake's Parquet
    files (and the other tables given) in DuckDB; --engine spark reads --events on Apache
    Spark. Every way gives the same rows on the same data (docs/scale.md).
    """
    project = load_project(project_dir)
    definition = churn_definition(project, activity, lookback, horizon)
    when = _cutoffs(cutoffs)
    if engine == "spark":
        from churnguard.spark.jobs import features_job

        sources = _sources(lake)
        with stage_spinner("Features on Spark") as update:
            result = features_job(sources=sources, out=out, definition=definition,
                                  cutoffs=when, progress=update)
        click.echo(f"{result.rows:,} rows ({result.labelled:,} labelled) at "
                   f"{', '.join(f'{c:%Y-%m-%d}' for c in result.cutoffs)}, "
                   f"{result.columns} features, on Spark; written to {result.out}")
        return
    tables = duckdb_lake(lake)
    path = file_option(out, "out")
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise BadInput(f"--out {path}: write .csv or .parquet")
    from churnguard.cutoffs import resolve_as_of
    from churnguard.lake import features_from_lake
    from churnguard.snapshots import snapshot_table

    if tables is not None:
        with stage_spinner("Features from the lake"):
            frame = features_from_lake(tables, definition=definition, cutoffs=when)
    else:
        with project.open_store(read_only=True) as store, stage_spinner("Features"):
            chosen = when or [resolve_as_of(store, None)]
            frame = snapshot_table(store, definition=definition, cutoffs=chosen)
    write_table(frame, path)
    labelled = int(frame["churned"].notna().sum())
    console.print(f"{len(frame):,} rows ({labelled:,} labelled), {frame.shape[1] - 4} "
                  f"features; written to {path}", markup=False)
