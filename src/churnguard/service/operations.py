"""What ``GET /v1/cycles``, ``GET /v1/models/decisions`` and the dashboard's Operations page
share: the cycles' record, the gate's decisions and the schedule, read through the library
(:func:`churnguard.operate.list_cycles`, :func:`churnguard.registry.list_decisions`) and shaped
as the API's output schemas.
"""

from __future__ import annotations

from churnguard.operate import Cron, list_cycles
from churnguard.operate.schedule import utc_now
from churnguard.registry import CHAMPION, alias_version, list_decisions
from churnguard.service.schemas import (
    CycleOut,
    CyclesOut,
    CycleStepOut,
    GateDecisionOut,
    GateDecisionsOut,
    ScheduleOut,
)
from churnguard.service.state import ServiceState
from churnguard.store import Store

MAX_CYCLES = 100


def schedule_of(service: ServiceState) -> ScheduleOut | None:
    """``[operate] schedule`` and its next fire: the running scheduler's, or (a schedule set
    after this service started) the expression's next time from now."""
    expression = service.project.config.operate.schedule
    if expression is None:
        return None
    scheduler = service.cycles
    if scheduler is not None and scheduler.next_fire is not None:
        return ScheduleOut(expression=scheduler.cron.expression, next_fire=scheduler.next_fire,
                           running=True, last_error=scheduler.last_error)
    # create_app refused a bad expression, so this parse cannot fail.
    cron = Cron.parse(expression)
    return ScheduleOut(expression=cron.expression, next_fire=cron.next_after(utc_now()),
                       running=False, last_error=None)


def cycles_out(service: ServiceState, store: Store, *, limit: int) -> CyclesOut:
    """The newest ``limit`` cycles with their steps, newest first, and the schedule."""
    cycles = []
    for record in list_cycles(store, limit=limit):
        steps = [CycleStepOut(step=s.step, status=s.status, decision=s.decision,
                              evidence=s.evidence, figures=s.figures, error=s.error,
                              fingerprint=s.fingerprint, started_at=s.started_at,
                              finished_at=s.finished_at) for s in record.records]
        cycles.append(CycleOut(cycle_id=record.cycle_id, trigger=record.trigger,
                               status=record.status, now=record.now,
                               started_at=record.started_at, finished_at=record.finished_at,
                               error=record.error, steps=steps))
    return CyclesOut(cycles=cycles, schedule=schedule_of(service))


def decisions_out(store: Store) -> GateDecisionsOut:
    """Every decision of the gate with its evidence, oldest first, and the champion now."""
    return GateDecisionsOut(
        champion=alias_version(store, CHAMPION),
        decisions=[GateDecisionOut(**d.to_dict()) for d in list_decisions(store)])


__all__ = ["MAX_CYCLES", "cycles_out", "decisions_out", "schedule_of"]
