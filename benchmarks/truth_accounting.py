"""What an allocation truly earns, by the simulator's exact effects: shared by bench_plan.py (one
plan) and bench_learning.py (twelve monthly plans on the responding shop).

The accounting, for the customers an allocation contacts with action a:

* true saves = sum of the TRUE change in P(order in the window) the action makes (the
  simulator's ``-effect_<a>``, exact);
* true retained value = sum of true change x the customer's value (churnguard's estimate of
  what keeping the customer is worth, the same one every allocation is planned with);
* true net margin = true retained value x gross margin - expected spend.

The usual practice is here too: the riskiest customers get the 10% coupon until the budget ends.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

USUAL_ACTION = "coupon_10"


def usual_practice(inputs, budget: float) -> np.ndarray:  # noqa: ANN001 (PlanInputs)
    """Highest P(churn) first, the 10% coupon to every eligible customer until the budget ends.

    Returns the action index per customer of ``inputs`` (-1: not contacted)."""
    k = inputs.actions.index(USUAL_ACTION)
    cost = inputs.cost[USUAL_ACTION].to_numpy()
    eligible = inputs.eligible[USUAL_ACTION].to_numpy(dtype=bool)
    order = np.argsort(-inputs.customers["p_churn"].to_numpy(), kind="stable")
    order = order[eligible[order]]
    within = np.cumsum(cost[order]) <= budget
    choice = np.full(len(cost), -1)
    choice[order[within]] = k
    return choice


def true_uplift(truth: pd.DataFrame, user_ids: Sequence[str], actions: Sequence[str]
                ) -> pd.DataFrame:
    """The TRUE retention effect of each action per customer, in the order of ``user_ids``:
    ``-effect_<action>`` of the simulator's truth (indexed by user_id) at the plan's cutoff;
    0 for customers the truth does not cover.

    >>> truth = pd.DataFrame({"effect_email": [-0.1, 0.02]}, index=["a", "b"])
    >>> true_uplift(truth, ["b", "x", "a"], ["email"])["email"].tolist()
    [-0.02, -0.0, 0.1]
    """
    ids = pd.Index([str(u) for u in user_ids])
    return pd.DataFrame({a: -truth[f"effect_{a}"].reindex(ids).fillna(0.0).to_numpy()
                         for a in actions})


def account(choice: np.ndarray, *, true: np.ndarray, value: np.ndarray, cost: np.ndarray,
            gross_margin: float, estimated: np.ndarray | None = None,
            actions: Sequence[str] = ()) -> dict[str, object]:
    """The truth of an allocation: ``choice`` the action index per customer (-1: none); ``true``,
    ``cost`` (and ``estimated``) customers x actions; ``value`` per customer.

    >>> acc = account(np.array([0, -1, 1]), true=np.array([[0.1, 0.0], [0.5, 0.5], [0.0, 0.2]]),
    ...               value=np.array([100.0, 100.0, 50.0]), cost=np.full((3, 2), 1.0),
    ...               gross_margin=0.5, actions=["a", "b"])
    >>> acc["contacted"], acc["true_saves"], acc["true_retained_value"], acc["true_net_margin"]
    (2, 0.30000000000000004, 20.0, 8.0)
    >>> acc["actions"]
    {'a': 1, 'b': 1}
    """
    picked = np.flatnonzero(choice >= 0)
    k = choice[picked]
    retained = true[picked, k] * value[picked]
    spend = cost[picked, k]
    return {
        "contacted": int(picked.size),
        "spend": float(spend.sum()),
        "true_saves": float(true[picked, k].sum()),
        "estimated_saves": (float(estimated[picked, k].sum()) if estimated is not None
                            else None),
        "true_retained_value": float(retained.sum()),
        "true_net_margin": float((retained * gross_margin - spend).sum()),
        "actions": {a: int((k == j).sum()) for j, a in enumerate(actions)},
    }
