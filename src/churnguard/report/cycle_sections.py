"""The report's cycles section: the newest operating cycles, each step's status and decision,
then the champion/challenger gate's decisions with their evidence.

>>> import datetime as dt
>>> html = cycles_html([{"cycle_id": "c1", "trigger": "cli", "status": "done",
...     "started_at": dt.datetime(2026, 3, 2, 6), "finished_at": dt.datetime(2026, 3, 2, 6, 1),
...     "steps": [{"step": "ingest", "status": "done", "decision": "ingested 1 file(s)",
...                "error": None}]}])
>>> "ingested 1 file(s)" in html and "<td>c1</td>" in html
True
>>> html = decisions_html([{"decided_at": "2026-03-02T06:01:00", "outcome": "kept",
...     "trigger": "challenge", "champion_version": "a", "challenger_version": "b",
...     "champion_after": "a", "cohort_cutoff": "2026-01-01T00:00:00", "n_customers": 900,
...     "delta_auc": -0.0123, "delta_auc_lower": -0.031, "champion_ece": 0.012,
...     "challenger_ece": 0.018, "reason": "lower bound below -0.005"}])
>>> '<td class="num">-0.0310</td>' in html, "lower bound below -0.005" in html
(True, True)
"""

from __future__ import annotations

from churnguard.report.data import ReportData
from churnguard.report.formatting import count, num, signed
from churnguard.report.markup import esc as _e
from churnguard.report.markup import note as _note
from churnguard.report.markup import table as _table
from churnguard.report.markup import when as _when


def cycles_html(cycles: list[dict]) -> str:
    rows = []
    for cycle in cycles:
        steps = "<br>".join(
            f"<strong>{_e(s['step'])}</strong> {_e(s['status'])}: "
            f"{_e(s['error'] if s['status'] == 'failed' else s['decision'] or '')}"
            for s in cycle["steps"])
        rows.append(f"<tr><td>{_e(cycle['cycle_id'])}</td><td>{_e(cycle['trigger'])}</td>"
                    f"<td>{_e(cycle['status'])}</td><td>{_e(_when(cycle['started_at']))}</td>"
                    f"<td>{steps}</td></tr>")
    return _table(["cycle", "trigger", "status", "started (UTC)", "steps"], rows, cls="cycles")


def _minute(iso: object) -> str:
    return "—" if iso is None else str(iso)[:16].replace("T", " ")


def decisions_html(decisions: list[dict]) -> str:
    """The gate's decisions, in the order given (newest first from the report data)."""
    if not decisions:
        return _note("The gate has not decided anything yet.")
    rows = []
    for d in decisions:
        before, after = d["champion_version"], d["champion_after"]
        champion = _e(after) if before == after else f"{_e(before)} → {_e(after)}"
        cohort = "—" if d.get("cohort_cutoff") is None else (
            f"{_e(str(d['cohort_cutoff'])[:10])}, {count(d.get('n_customers'))} customers")
        rows.append(
            f"<tr><td>{_e(_minute(d['decided_at']))}</td><td>{_e(d['outcome'])}</td>"
            f"<td>{_e(d['trigger'])}</td><td>{champion}</td><td>{cohort}</td>"
            f'<td class="num">{signed(d.get("delta_auc"), 4)}</td>'
            f'<td class="num">{signed(d.get("delta_auc_lower"), 4)}</td>'
            f'<td class="num">{num(d.get("champion_ece"), 4)} → '
            f'{num(d.get("challenger_ece"), 4)}</td>'
            f"<td>{_e(d['reason'])}</td></tr>")
    return _table(["decided (UTC)", "outcome", "trigger", "champion", "cohort", "ΔAUC",
                   "ΔAUC lower bound", "ECE (champion → challenger)", "reason"], rows,
                  cls="decisions")


def bodies(data: ReportData) -> dict[str, str]:
    """The HTML of the cycles section, by section id."""
    cycles = cycles_html(data.cycles) if data.cycles else _note("No operating cycle has run.")
    return {"cycles": cycles + "<h3>The gate's decisions</h3>" + decisions_html(data.decisions)}


__all__ = ["bodies", "cycles_html", "decisions_html"]
