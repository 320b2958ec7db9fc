"""The campaign planner behind the budget slider.

``plan_inputs`` (scores, uplift, value, costs, eligibility) takes seconds on a small shop and
minutes on a large one, while the allocation under a budget (``choose_actions``) takes
milliseconds to a second. So the inputs are computed once per scoring cutoff, in a background
thread, and kept in memory; each slider position re-runs only the allocation. The inputs are
computed again when the scoring cutoff, the champion or the erasure count changes (an erased
customer must not be planned from a stale copy). A failure is reported for a minute, then the
next request tries again.

The preview counts what the plan would do before its control group is drawn: the allocation
runs with budget / (1 − control share), exactly as ``make_plan`` does, and the control customers
(a random ``control_share`` of each stratum) are neither contacted nor paid for, so every
expected figure is the allocation's total times (1 − control share).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnguard.config import ProjectConfig
from churnguard.erasure import erasure_count
from churnguard.intervene.plan import (
    Plan,
    PlanInputs,
    choose_actions,
    make_plan,
    plan_inputs,
    plan_summary,
    save_plan,
)
from churnguard.labels import scoring_cutoff
from churnguard.registry import CHAMPION, alias_version
from churnguard.service.state import ServiceState
from churnguard.store import Store

log = logging.getLogger("churnguard.service")

CURVE_POINTS = 16
RETRY_AFTER_FAILURE_SECONDS = 60.0


@dataclass(frozen=True)
class PlannerKey:
    as_of: dt.datetime
    champion: str | None
    erasures: int


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """Plan inputs and what the page needs besides: the slider's range and the saves curve."""

    key: PlannerKey
    inputs: PlanInputs
    max_budget: float
    curve: list[dict]


@dataclass(frozen=True, kw_only=True)
class PlannerState:
    status: str  # "preparing", "ready" or "error"
    prepared: Prepared | None = None
    message: str | None = None


def planner_key(store: Store) -> PlannerKey:
    return PlannerKey(as_of=scoring_cutoff(store), champion=alias_version(store, CHAMPION),
                      erasures=erasure_count(store))


def nice_ceiling(value: float) -> float:
    """The next 1, 2 or 5 times a power of ten at or above ``value`` (slider ranges).

    >>> nice_ceiling(0.0), nice_ceiling(137.0), nice_ceiling(2000.0)
    (10.0, 200.0, 2000.0)
    """
    if not math.isfinite(value) or value <= 10:
        return 10.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value - 1e-9:
            return float(step * power)
    return float(10 * power)


def preview(inputs: PlanInputs, *, config: ProjectConfig, budget: float) -> dict:
    """What a plan under ``budget`` would do (expected figures after the control group): the
    plan's own summary (:func:`~churnguard.intervene.plan.plan_summary`) of the allocation,
    times the share the control group leaves."""
    choice = choose_actions(inputs, config=config, budget=budget)
    picked = np.flatnonzero(choice >= 0)
    chosen = choice[picked]
    actions = inputs.actions
    rows = pd.DataFrame({
        "action": np.asarray(actions, dtype=object)[chosen],
        "is_control": np.zeros(len(picked), dtype=bool),
        "risk_tier": inputs.customers["risk_tier"].to_numpy()[picked],
        "uplift": inputs.uplift[actions].to_numpy(dtype=float)[picked, chosen],
        "expected_cost": inputs.cost[actions].to_numpy(dtype=float)[picked, chosen],
        "expected_margin": inputs.margin(config)[picked, chosen]})
    summary = plan_summary(rows, inputs, budget=budget, config=config)
    keep = 1.0 - config.intervene.control_share
    per_action = [{"action": action, "customers": float(part["customers"] * keep),
                   "expected_saves": float(part["expected_saves"] * keep),
                   "expected_cost": float(part["expected_cost"] * keep)}
                  for action in actions if (part := summary["per_action"].get(action))]
    return {"budget": float(budget), "planned": summary["treated"],
            "contacted": float(summary["treated"] * keep),
            "control": float(summary["treated"] * (1.0 - keep)),
            "expected_saves": float(summary["expected_saves"] * keep),
            "expected_cost": float(summary["expected_cost"] * keep),
            "expected_margin": float(summary["expected_incremental_margin"] * keep),
            "per_action": per_action}


def _saturation(inputs: PlanInputs, config: ProjectConfig) -> float:
    """The spend at which every customer gets their best worthwhile action (no budget limit)."""
    margin = inputs.margin(config)
    eligible = inputs.eligible[inputs.actions].to_numpy(dtype=bool)
    worth = np.where(eligible & (margin > 0), margin, -np.inf)
    best = worth.argmax(axis=1)
    rows = np.flatnonzero(np.isfinite(worth.max(axis=1)))
    cost = inputs.cost[inputs.actions].to_numpy(dtype=float)[rows, best[rows]]
    return float(cost.sum() * (1.0 - config.intervene.control_share))


def prepare(inputs: PlanInputs, *, config: ProjectConfig, key: PlannerKey) -> Prepared:
    top = nice_ceiling(_saturation(inputs, config) * 1.1)
    curve = []
    for budget in np.linspace(0.0, top, CURVE_POINTS + 1):
        found = preview(inputs, config=config, budget=float(budget))
        curve.append({"budget": found["budget"], "expected_saves": found["expected_saves"],
                      "expected_cost": found["expected_cost"],
                      "expected_margin": found["expected_margin"]})
    return Prepared(key=key, inputs=inputs, max_budget=top, curve=curve)


class Planner:
    """Plan inputs of the current scoring cutoff, prepared in the background, one at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready: Prepared | None = None
        self._failed: tuple[PlannerKey, str, float] | None = None
        self._working: PlannerKey | None = None
        self._allocating = threading.Lock()  # one allocation at a time: they are CPU-bound

    def state(self, service: ServiceState, *, start: bool = True) -> PlannerState:
        """Ready inputs for the store as it is now, or "preparing" (and, when ``start``, start
        preparing them if nobody is)."""
        try:
            with service.pool.reading() as store:
                key = planner_key(store)
        except ValueError as exc:  # no events yet: nothing to plan for
            return PlannerState(status="error", message=str(exc))
        with self._lock:
            if self._ready is not None and self._ready.key == key:
                return PlannerState(status="ready", prepared=self._ready)
            if (self._failed is not None and self._failed[0] == key
                    and time.monotonic() - self._failed[2] < RETRY_AFTER_FAILURE_SECONDS):
                return PlannerState(status="error", message=self._failed[1])
            if start and self._working != key:
                self._working = key
                threading.Thread(target=self._prepare, args=(service, key), daemon=True,
                                 name="churnguard-dashboard-planner").start()
            return PlannerState(status="preparing")

    def _prepare(self, service: ServiceState, key: PlannerKey) -> None:
        config = service.project.config
        try:
            with service.pool.reading() as store:
                inputs = plan_inputs(store, config=config, as_of=key.as_of)
            prepared = prepare(inputs, config=config, key=key)
        except ValueError as exc:  # the library's errors say what is missing and how to fix it
            self._finish(key, failed=str(exc))
        except Exception:  # noqa: BLE001 - the page says it failed; the log has the details
            log.exception("preparing the campaign planner failed")
            self._finish(key, failed="preparing the planner failed; the server log has the "
                                     "details")
        else:
            self._finish(key, prepared=prepared)

    def _finish(self, key: PlannerKey, *, prepared: Prepared | None = None,
                failed: str | None = None) -> None:
        with self._lock:
            if self._working != key:
                return  # the store moved on meanwhile; a newer preparation is under way
            self._working = None
            if prepared is not None:
                self._ready, self._failed = prepared, None
            else:
                self._failed = (key, failed or "", time.monotonic())

    def preview(self, prepared: Prepared, *, config: ProjectConfig, budget: float) -> dict:
        with self._allocating:
            return preview(prepared.inputs, config=config, budget=budget)

    def commit(self, service: ServiceState, prepared: Prepared, *, budget: float,
               campaign_id: str | None) -> Plan:
        """Make the plan from the prepared inputs and store it (raises PlanError)."""
        config = service.project.config
        with self._allocating, service.pool.reading() as store:
            plan = make_plan(store, config=config, budget=budget, campaign_id=campaign_id,
                             inputs=prepared.inputs)
            with service.pool.write_lock:
                save_plan(store, plan, config=config)
            service.recommendations.refresh(store)  # risk answers never wait for this read
        return plan
