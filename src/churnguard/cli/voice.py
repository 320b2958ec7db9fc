"""The ``voice`` command: topics, sentiment and surge alerts of reviews and tickets
(:func:`churnguard.voice.surges.voice_alerts`; docs/voice.md "Alerts")."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import click
from rich.table import Table

from churnguard.cli.base import (
    BadInput,
    cli,
    console,
    date_callback,
    load_project,
    project_option,
    stage_spinner,
    write_table,
)


def _p(value: float) -> str:
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def _print_topics(document: dict) -> None:
    table = Table(title=f"Topics, {document['start']} to {document['as_of']} (exclusive)")
    for name in ("topic", "keys", "texts", "negative", "tested", "baseline/day", "alerts"):
        table.add_column(name, justify="left" if name in ("topic", "keys", "tested") else "right")
    for t in document["topics"]:
        table.add_row(t["topic"], "+".join(t["keys"]), f"{t['texts']:,}", f"{t['negative']:,}",
                      t["tested"] or "—",
                      "—" if t["baseline_per_day"] is None else f"{t['baseline_per_day']:.2f}",
                      str(t["alerts"]))
    console.print(table)


def _print_alerts(document: dict) -> None:
    if not document["alerts"]:
        console.print(f"No alerts in {document['tests']:,} tests (Benjamini-Hochberg at "
                      f"{document['settings']['alert_fdr']:g} per day).", markup=False)
        return
    table = Table(title=f"Alerts ({len(document['alerts'])} of {document['tests']:,} tests, "
                        f"Benjamini-Hochberg at {document['settings']['alert_fdr']:g} per day)")
    for name in ("alert", "topic", "period", "count", "expected", "p", "q", "authors",
                 "at risk"):
        table.add_column(name, justify="left" if name in ("alert", "topic", "period") else "right")
    for a in document["alerts"]:
        period = a["start"] if a["period"] == "day" else f"week {a['start']}..{a['end']}"
        table.add_row(a["alert_id"], a["topic"], period, str(a["count"]),
                      f"{a['expected']:.1f}", _p(a["p_value"]), _p(a["q_value"]),
                      str(a["authors"]), str(a["at_risk"]))
    console.print(table)


@cli.command()
@click.option("--as-of", default=None, callback=date_callback,
              help="The day after the window (default: the day after the last review or "
                   "ticket).")
@click.option("--days", type=click.IntRange(min=1, max=3660), default=None,
              help="Days of alerts to list, ending the day before --as-of (default: [voice] "
                   "alert_days, 28).")
@click.option("--json", "as_json", is_flag=True,
              help="Print the whole document as JSON on stdout (the same as GET /v1/voice).")
@click.option("--audience", "alert_id", default=None, metavar="ALERT_ID",
              help="Write this alert's at-risk authors (a campaign's audience) to --out "
                   "instead of listing alerts.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="With --audience: FILE.csv or FILE.parquet.")
@project_option
def voice(as_of: dt.date | None, days: int | None, as_json: bool, alert_id: str | None,
          out_path: Path | None, project_dir: Path | None) -> None:
    """Topics, sentiment and surge alerts of reviews and tickets.

    Each review and ticket gets a topic (the stored codebook) and a sentiment (learned from the
    shop's rated reviews). Negative mentions per topic per day are tested against the same
    weekday of the [voice] baseline_weeks (8) weeks before, with a negative binomial model
    fitted there; the p-values of one day's topics are corrected by Benjamini-Hochberg, and a
    q-value at or below [voice] alert_fdr (0.001) is an alert. Topics with fewer than [voice]
    weekly_below (5) negative mentions a day are tested per week (on Sundays). Each alert lists
    the customers who wrote those texts with their newest risk tier; alert ids look like
    d20250501-en03 (a day) or w20250505-zh02+zh07 (the week from that Monday).

    \b
    churnguard voice --days 14
    churnguard voice --json > voice.json
    churnguard voice --audience d20250501-en03 --out audience.csv
    churnguard uplift score --users audience.csv --out uplift.csv

    The audience file (user_id, risk_tier, p_churn, ...) is what `uplift score --users`
    reads. Exit code 0 whether or not anything alerted.
    """
    from churnguard.voice.surges import alert_audience, voice_alerts

    if alert_id is not None and out_path is None:
        raise BadInput("--audience needs --out FILE.csv or FILE.parquet")
    if out_path is not None and alert_id is None:
        raise BadInput("--out goes with --audience ALERT_ID")
    if out_path is not None and out_path.suffix.lower() not in (".csv", ".parquet"):
        raise BadInput(f"--out {out_path}: write a .csv or .parquet file")
    project = load_project(project_dir)
    if alert_id is not None:
        with project.open_store() as store, stage_spinner("Finding the audience"):
            frame = alert_audience(store, project.config, alert_id)
        write_table(frame, out_path)
        click.echo(f"Alert {alert_id}: {len(frame):,} at-risk authors "
                   f"(tiers {', '.join(project.config.voice.audience_tiers)}) written to "
                   f"{out_path}")
        return
    with project.open_store() as store, stage_spinner("Reading reviews and tickets"):
        report = voice_alerts(store, project.config, as_of=as_of, days=days)
    document = report.to_dict()
    if as_json:
        click.echo(json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False))
        return
    console.print("Sentiment sources (texts): " + ", ".join(
        f"{k} {n:,}" for k, n in document["sentiment_sources"].items()), markup=False)
    _print_topics(document)
    _print_alerts(document)
    for note in document["notes"]:
        console.print(f"Note: {note}", markup=False, soft_wrap=True)
