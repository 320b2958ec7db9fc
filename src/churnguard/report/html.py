"""The report page: one self-contained HTML file (inline CSS, inline SVG charts, no script, no
external resource) that a marketer can open offline and read top to bottom.

Every piece of text that comes from data goes through :func:`html.escape`
(:func:`churnguard.report.markup.esc`); numbers are formatted in one place
(:mod:`churnguard.report.formatting`) and a missing or NaN value reads "—". The dashboard writes
its numbers with the same functions, so a figure reads the same in the report and on the pages.

This module lays out the page; the sections are written by :mod:`~churnguard.report.model_sections`,
:mod:`~churnguard.report.customer_sections` and :mod:`~churnguard.report.intervention_sections`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from churnguard.report import (
    customer_sections,
    cycle_sections,
    intervention_sections,
    model_sections,
    voice_sections,
)
from churnguard.report.data import ReportData
from churnguard.report.formatting import count, finite, formatted, money, num, pct, pp, signed
from churnguard.report.markup import esc as _e
from churnguard.report.markup import when as _when
from churnguard.report.model_sections import METRICS
from churnguard.report.style import CSS

__all__ = ["METRICS", "SECTIONS", "build_html", "count", "finite", "formatted", "money",
           "num", "page_sections", "pct", "pp", "render_report", "signed"]

# (id, heading, plain-language line under the heading)
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("summary", "Summary",
     "Who is likely to stop buying, how many, and how far the model can be trusted."),
    ("leaderboard", "Model leaderboard",
     "Every model was trained on the past and judged on what customers did afterwards (an "
     "out-of-time test). The chosen model is highlighted; the best value in each column is bold."),
    ("curves", "ROC and precision–recall curves",
     "How well each model separates customers who left from those who stayed, at every possible "
     "threshold. Curves closer to the top-left (ROC) or top-right (precision–recall) are better."),
    ("calibration", "Calibration",
     "Can the percentages be taken at face value? Customers are grouped into 10 bins by predicted "
     "probability; if the model is well calibrated, each bin's dot lies on the diagonal."),
    ("gains", "Cumulative gains and lift",
     "If you contact customers in order of risk, how many of the leavers do you reach? The grey "
     "line at 10% marks a typical campaign size."),
    ("distribution", "Score distribution by risk tier",
     "How today's customers are spread over predicted churn probability, coloured by risk tier."),
    ("importance", "Global feature importance",
     "Which customer signals the chosen model leans on most, over all customers (top 15)."),
    ("segments", "Churn rate by segment",
     "What share of each group actually left at the test cutoff, with group sizes. The dashed "
     "line is the average over all customers."),
    ("definition", "Churn definition preview",
     "What counts as churn here, and how many customers it concerns at each cutoff date."),
    ("customers", "Top at-risk customers",
     "The 50 customers with the highest predicted churn probability and the three main reasons."),
    ("interventions", "Interventions",
     "Whom the latest plan contacts with which action and what it expects to gain, and what "
     "measured campaigns really gained against their random control groups."),
    ("learning", "What the campaigns have taught",
     "Each measured campaign against its control group, in the order they ran, and each "
     "action's effect as known after each campaign: the interval narrows as campaigns add "
     "randomised evidence."),
    ("voice", "Voice of the customer",
     "Did complaints about a topic surge? Negative mentions per topic and day in reviews and "
     "tickets against their usual level, and the at-risk customers who wrote them."),
    ("cycles", "Operating cycles",
     "What the newest cycles of `churnguard run` and the service's schedule did, step by step, "
     "and why; and every decision of the champion/challenger gate with its evidence."),
)


def render_report(data: ReportData, path: str | os.PathLike) -> Path:
    """Write the report to ``path`` (via a temporary file and a rename) and return the path."""
    return _write_atomically(Path(path), build_html(data))


# Without a backtest, its four sections give way to one that says how to run it.
BACKTEST_SECTIONS = ("leaderboard", "curves", "calibration", "gains")
NO_BACKTEST_SECTION = ("backtest", "Model quality",
                       "How well the models tell leavers from stayers, judged out of time: a "
                       "backtest measures it.")


def page_sections(data: ReportData) -> tuple[tuple[str, str, str], ...]:
    """The sections of this page, in order: :data:`SECTIONS`, with the backtest's replaced by
    one that says how to run it when there is none, the cycles' only when a cycle ran or the
    gate decided (a project run by hand has neither to show), and what the campaigns have
    taught only when a campaign was measured."""
    sections = tuple(s for s in SECTIONS
                     if (s[0] != "cycles" or data.cycles or data.decisions)
                     and (s[0] != "voice" or data.voice)
                     and (s[0] != "learning" or data.measurements))
    if "backtest" not in data.missing:
        return sections
    at = next(i for i, (sid, _, _) in enumerate(sections) if sid in BACKTEST_SECTIONS)
    kept = [s for s in sections if s[0] not in BACKTEST_SECTIONS]
    return (*kept[:at], NO_BACKTEST_SECTION, *kept[at:])


def build_html(data: ReportData) -> str:
    """The whole page as one string."""
    bodies = {**model_sections.bodies(data), **customer_sections.bodies(data),
              **intervention_sections.bodies(data), **cycle_sections.bodies(data),
              **voice_sections.bodies(data)}
    shown = page_sections(data)
    nav = "".join(f'<li><a href="#{sid}">{_e(title)}</a></li>' for sid, title, _ in shown)
    sections = "\n".join(
        f'<section id="{sid}">\n<h2>{i}. {_e(title)}</h2>\n<p class="lead">{_e(lead)}</p>\n'
        f"{bodies[sid]}\n</section>"
        for i, (sid, title, lead) in enumerate(shown, start=1))
    chosen = (f'chosen model\n<span class="badge">{_e(data.chosen_model)}</span>'
              if data.chosen_model else "no model trained yet")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(data.title)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{_e(data.title)}</h1>
<p class="meta">Generated {_e(_when(data.generated_at))} · {chosen}</p>
<nav><ol>{nav}</ol></nav>
</header>
<main>
{sections}
</main>
<footer>Made by churnguard. This file is self-contained: it needs no network connection.</footer>
</body>
</html>
"""


def _write_atomically(path: Path, text: str) -> Path:
    """Readers see the old file or the whole new one, never half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
