"""The report's cycles section lists the gate's decisions with their evidence, newest first, and
appears when the gate decided even if no cycle ran (a champion challenged by hand)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from churnguard.cli import main
from churnguard.project import Project
from churnguard.registry import CHAMPION, GateDecision, alias_version, record_decision

HOSTILE = "<script>window.__pwned=1</script>"


def _decision(champion: str, *, decision_id: str, at: dt.datetime, reason: str,
              delta: float, lower: float) -> GateDecision:
    return GateDecision(
        decision_id=decision_id, decided_at=at, trigger="challenge", outcome="kept",
        champion_version=champion, challenger_version="twin-of-" + champion,
        champion_after=champion, reason=reason, cohort_cutoff=dt.datetime(2025, 9, 1),
        n_customers=288, n_churned=61, champion_auc=0.81, challenger_auc=0.8, delta_auc=delta,
        delta_auc_lower=lower, delta_auc_upper=0.004, champion_ece=0.0211,
        challenger_ece=0.0287, tolerance=0.005, max_ece=0.03, confidence=0.95, resamples=500,
        seed=0)


def test_the_report_lists_the_gate_decisions(project: Project, tmp_path: Path) -> None:
    root = str(project.root)
    with project.open_store() as store:
        champion = alias_version(store, CHAMPION)
        assert champion is not None
        record_decision(store, _decision(champion, decision_id="d-old",
                                         at=dt.datetime(2026, 1, 2, 6), reason="the older one",
                                         delta=-0.0123, lower=-0.031))
        record_decision(store, _decision(champion, decision_id="d-new",
                                         at=dt.datetime(2026, 1, 9, 6), reason=HOSTILE,
                                         delta=0.0042, lower=-0.0021))
    out = tmp_path / "report.html"
    assert main(["report", "--out", str(out), "--project", root]) == 0
    page = out.read_text()
    assert '<a href="#cycles">' in page  # shown with no cycle: the gate decided
    section = page[page.index('<section id="cycles">'):]
    section = section[:section.index("</section>")]
    assert "No operating cycle has run." in section
    decisions = section[section.index('<table class="decisions">'):]
    assert decisions.index("2026-01-09 06:00") < decisions.index("2026-01-02 06:00")
    assert '<td class="num">-0.0123</td><td class="num">-0.0310</td>' in decisions
    assert '<td class="num">+0.0042</td><td class="num">-0.0021</td>' in decisions
    assert "0.0211 → 0.0287" in decisions and "the older one" in decisions
    assert "288 customers" in decisions
    assert HOSTILE not in page and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in decisions
