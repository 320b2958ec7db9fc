"""Operating churnguard: one cycle (ingest the inbox, score, monitor, challenge, plan, deliver,
measure), recorded step by step and resumable, run by `churnguard run` or on a cron schedule
inside `churnguard serve` (docs/operate.md).

``cycle`` (the runner, the records and the step registry), ``steps`` (the steps, registered in
order when the package loads), ``inbox`` (files dropped for ingestion, once each by content)
and ``schedule`` (cron expressions and the service's scheduler).
"""

from churnguard.operate import steps as _steps  # noqa: F401 - registers the steps
from churnguard.operate.cycle import (
    STEPS,
    CycleError,
    CycleRecord,
    OneStore,
    Step,
    StepOutcome,
    StepRecord,
    StoreAccess,
    list_cycles,
    register_step,
    run_cycle,
)
from churnguard.operate.schedule import Cron, CronError, Scheduler

__all__ = ["STEPS", "Cron", "CronError", "CycleError", "CycleRecord", "OneStore", "Scheduler",
           "Step", "StepOutcome", "StepRecord", "StoreAccess", "list_cycles", "register_step",
           "run_cycle"]
