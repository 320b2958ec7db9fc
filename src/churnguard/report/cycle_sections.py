"""The report's cycles section: the newest operating cycles, each step's status and decision.

>>> import datetime as dt
>>> html = cycles_html([{"cycle_id": "c1", "trigger": "cli", "status": "done",
...     "started_at": dt.datetime(2026, 3, 2, 6), "finished_at": dt.datetime(2026, 3, 2, 6, 1),
...     "steps": [{"step": "ingest", "status": "done", "decision": "ingested 1 file(s)",
...                "error": None}]}])
>>> "ingested 1 file(s)" in html and "<td>c1</td>" in html
True
"""

from __future__ import annotations

from churnguard.report.data import ReportData
from churnguard.report.markup import esc as _e
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


def bodies(data: ReportData) -> dict[str, str]:
    """The HTML of the cycles section, by section id."""
    return {"cycles": cycles_html(data.cycles)}


__all__ = ["bodies", "cycles_html"]
