"""The Operations page: the newest operating cycles step by step (a failed step with its error),
the champion and the gate's decisions with their evidence, the schedule and the inbox.

It shows what ``GET /v1/cycles`` and ``GET /v1/models/decisions`` answer (both built by
:mod:`churnguard.service.operations`) and the inbox as the next cycle will find it
(:mod:`churnguard.operate.inbox`); docs/operate.md explains the cycle and the gate. Step
decisions, reasons and errors are shown as stored (English), escaped like everything else.

>>> _status("zh", "failed")
'<span class="state state-major">失败</span>'
"""

from __future__ import annotations

from churnguard.operate.inbox import InboxFile, Seen
from churnguard.service.dashboard.i18n import t
from churnguard.service.dashboard.layout import (
    PageContext, cards, count, e, minute, note, num, page, section, signed, table)
from churnguard.service.schemas import CycleOut, CyclesOut, GateDecisionOut, ScheduleOut

__all__ = ["render"]

# The colour of each state: green for what went as planned, amber for nothing done, red for a
# failure or a champion taken back.
_KIND = {"done": "stable", "skipped": "moderate", "started": "moderate", "running": "moderate",
         "failed": "major", "ingested": "stable", "rejected": "major", "promoted": "stable",
         "kept": "moderate", "no-evidence": "moderate", "rolled-back": "major"}


def _status(lang: str, status: str) -> str:
    label = t(lang, "status_" + status.replace("-", "_")) if status in _KIND else status
    return f'<span class="state state-{_KIND.get(status, "moderate")}">{e(label)}</span>'


def _cycle(lang: str, cycle: CycleOut) -> str:
    rows = []
    for s in cycle.steps:
        failed = s.status == "failed"
        text = (f'<strong class="step-error">{e(s.error)}</strong>' if failed
                else e(s.decision or ""))
        evidence = f'<div class="muted">{e(s.evidence)}</div>' if s.evidence and not failed \
            else ""
        rows.append(f'<tr class="{"failed" if failed else ""}" data-step="{e(s.step)}">'
                    f'<th scope="row"><code>{e(s.step)}</code></th>'
                    f'<td>{_status(lang, s.status)}</td><td class="decision">{text}{evidence}</td>'
                    f"<td>{e(minute(s.started_at))}</td><td>{e(minute(s.finished_at))}</td></tr>")
    headers = [e(t(lang, h)) for h in ("col_step", "col_status", "col_decision",
                                       "col_started", "col_finished")]
    title = t(lang, "cycle_heading", cycle=cycle.cycle_id, trigger=cycle.trigger,
              started=minute(cycle.started_at))
    error = (f'<p class="note cycle-error">{e(t(lang, "cycle_stopped", error=cycle.error))}</p>'
             if cycle.error else "")
    return (f'<article class="cycle" data-cycle="{e(cycle.cycle_id)}"><h3>{e(title)} '
            f"{_status(lang, cycle.status)}</h3>{error}"
            + table(headers, rows, cls="cycle-steps") + "</article>")


def _decision_row(lang: str, d: GateDecisionOut) -> str:
    moved = (f"<code>{e(d.champion_version)}</code> → <code>{e(d.champion_after)}</code>"
             if d.champion_after != d.champion_version else f"<code>{e(d.champion_after)}</code>")
    cohort = "" if d.cohort_cutoff is None else t(
        lang, "cohort_of", date=minute(d.cohort_cutoff)[:10],
        n=count(d.n_customers) if d.n_customers is not None else "—")
    return (f'<tr data-decision="{e(d.decision_id)}" data-outcome="{e(d.outcome)}">'
            f"<td>{e(minute(d.decided_at))}</td><td>{_status(lang, d.outcome)}</td>"
            f"<td>{e(d.trigger)}</td><td>{moved}</td><td>{e(cohort)}</td>"
            f'<td class="num">{e(signed(d.delta_auc, 4))}</td>'
            f'<td class="num">{e(signed(d.delta_auc_lower, 4))}</td>'
            f'<td class="num">{num(d.champion_ece, 4)} → {num(d.challenger_ece, 4)}</td>'
            f'<td class="reason">{e(d.reason)}</td></tr>')


def _decisions(lang: str, decisions: list[GateDecisionOut]) -> str:
    headers = [e(t(lang, h)) for h in (
        "col_decided", "col_outcome", "col_trigger", "col_champion_move", "col_cohort",
        "col_delta_auc", "col_delta_auc_lower", "col_eces", "col_reason")]
    rule = f'<p class="muted">{e(t(lang, "gate_rule"))}</p>'
    return rule + table(headers, [_decision_row(lang, d) for d in reversed(decisions)],
                        cls="decisions", empty=e(t(lang, "no_decisions")))


def _schedule(lang: str, schedule: ScheduleOut | None) -> str:
    if schedule is None:
        return note(e(t(lang, "no_schedule")))
    text = t(lang, "schedule_text", expression=schedule.expression,
             next=minute(schedule.next_fire))
    failed = (note(e(t(lang, "schedule_failed", error=schedule.last_error)))
              if schedule.last_error else "")
    idle = "" if schedule.running else note(e(t(lang, "schedule_not_running")))
    return f'<p id="schedule">{e(text)}</p>{idle}{failed}'


def _inbox(lang: str, folder: str, waiting: list[InboxFile], seen: list[Seen]) -> str:
    wait_rows = [f"<tr><td><code>{e(f.name)}</code></td><td>{e(f.kind)}</td>"
                 f'<td class="num">{count(f.size)}</td></tr>' for f in waiting]
    seen_rows = [f'<tr class="{"failed" if s.status == "rejected" else ""}">'
                 f"<td><code>{e(s.name)}</code></td><td>{_status(lang, s.status)}</td>"
                 f"<td>{e(s.kind)}</td><td>{e(minute(s.seen_at))}</td><td>{e(s.cycle_id)}</td>"
                 f'<td class="file-error">{e(s.error or "")}</td></tr>' for s in seen]
    return (f'<p class="muted">{e(t(lang, "inbox_folder", folder=folder))}</p>'
            f"<h3>{e(t(lang, 'inbox_waiting', n=len(waiting)))}</h3>"
            + table([e(t(lang, h)) for h in ("col_file", "col_kind", "col_bytes")], wait_rows,
                    cls="inbox-waiting", empty=e(t(lang, "inbox_empty")))
            + f"<h3>{e(t(lang, 'inbox_seen'))}</h3>"
            + table([e(t(lang, h)) for h in ("col_file", "col_status", "col_kind", "col_seen",
                                             "col_cycle", "col_error")],
                    seen_rows, cls="inbox-seen", empty=e(t(lang, "inbox_none_seen"))))


def render(ctx: PageContext, *, cycles: CyclesOut, champion: str | None,
           decisions: list[GateDecisionOut], inbox_folder: str, waiting: list[InboxFile],
           seen: list[Seen]) -> str:
    """The page: headline figures, then cycles, decisions, schedule and inbox."""
    lang = ctx.lang
    last = cycles.cycles[0] if cycles.cycles else None
    schedule = cycles.schedule
    headline = cards([
        (e(t(lang, "ops_champion")), f"<code>{e(champion)}</code>",
         e(t(lang, "ops_decisions_sub", n=len(decisions)))),
        (e(t(lang, "ops_last_cycle")), _status(lang, last.status) if last else "—",
         e(minute(last.started_at)) if last else e(t(lang, "no_cycles_short"))),
        (e(t(lang, "ops_next_cycle")),
         e(minute(schedule.next_fire)) if schedule else "—",
         e(schedule.expression if schedule else t(lang, "no_schedule_short"))),
        (e(t(lang, "ops_inbox")), f'<span id="inbox-count">{len(waiting)}</span>',
         e(t(lang, "ops_inbox_sub"))),
    ])
    cycles_html = ("\n".join(_cycle(lang, c) for c in cycles.cycles) if cycles.cycles
                   else note(e(t(lang, "no_cycles"))))
    body = "\n" + "\n".join([
        headline,
        section(t(lang, "section_cycles"), cycles_html),
        section(t(lang, "section_decisions"), _decisions(lang, decisions)),
        section(t(lang, "section_schedule"), _schedule(lang, schedule)),
        section(t(lang, "section_inbox"), _inbox(lang, inbox_folder, waiting, seen))]) + "\n"
    return page(ctx, title=t(lang, "ops_title"), active="operations", body=body,
                lead=e(t(lang, "ops_lead")))
