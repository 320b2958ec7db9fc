"""Exact ground truth by forward recursion over the hidden two-state chain (alive / dormant).

Conditional on no order in [T, T+H), the path of (p_d, q_d, c_d) is a deterministic function of
the state at T (see ``process.py``). With

    a_d = P(alive at the start of d, no order in [T, d)),
    z_d = P(dormant at the start of d, no order in [T, d)),

and a_T = alive_T, z_T = 1 - alive_T (the truth conditions on the hidden state), one day is

    a_{d+1} = a_d (1 - p_d) (1 - q_d) + z_d c_d
    z_{d+1} = a_d (1 - p_d) q_d       + z_d (1 - c_d)

(an alive customer orders with probability p_d, then turns dormant with probability q_d; a
dormant one never orders and comes back with probability c_d), and

    P(no order in [T, T+H) | state at T) = a_{T+H} + z_{T+H}.

This is the forward algorithm of a hidden Markov model (Rabiner 1989, "A tutorial on hidden
Markov models", Proc. IEEE 77(2), eqs. 19-20) with the emission "no order" on every day; there is
no Monte Carlo error. The deterministic advance of the state along the path is
the very same ``advance_day`` / ``apply_campaigns`` / ``day_rates`` the simulation runs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from churnguard.simulate.population import Traits, take_traits
from churnguard.simulate.process import (
    ACTIONS,
    CONTROL,
    State,
    World,
    advance_day,
    apply_action,
    apply_campaigns,
    day_rates,
    take_state,
)


def no_order_probability(*, traits: Traits, state: State, world: World, day: int,
                         horizon: int) -> np.ndarray:
    """P(no order in [day, day + horizon)) for a state already prepared for ``day``.

    "Prepared" means ``advance_day`` and the day's campaign (and any hypothetical action) have
    been applied. The state is consumed (advanced in place).
    """
    a = state.alive.astype(np.float64)
    z = 1.0 - a
    for k in range(horizon):
        d = day + k
        if k > 0:
            advance_day(traits=traits, state=state, world=world, day=d)
            apply_campaigns(traits=traits, state=state, world=world, day=d)
        p, q, c = day_rates(traits=traits, state=state, world=world, day=d)
        stay = a * (1.0 - p)
        a, z = stay * (1.0 - q) + z * c, stay * q + z * (1.0 - c)
    return a + z


@dataclass(frozen=True, kw_only=True)
class CutoffTruth:
    users: np.ndarray  # customer indices
    alive: np.ndarray
    p_churn: np.ndarray
    effects: dict[str, np.ndarray]  # action -> P(churn | action at T) - P(churn | nothing)


def cutoff_truth(*, traits: Traits, state: State, world: World, day: int, horizon: int,
                 users: np.ndarray) -> CutoffTruth:
    """Truth at cutoff ``day`` for ``users``: no new intervention, and each action at the cutoff.

    ``state`` is the simulation state after the day's ``advance_day`` and historical campaign;
    the hypothetical action is applied on top (it replaces a campaign action given that day).
    All 1 + len(ACTIONS) paths run stacked in one recursion.
    """
    k = 1 + len(ACTIONS)
    n = users.shape[0]
    index = np.tile(users, k)
    t = take_traits(traits=traits, index=index)
    s = take_state(state=state, index=index)
    action = np.repeat(np.arange(-1, len(ACTIONS), dtype=np.int8), n)
    apply_action(traits=t, state=s, day=day, action=action, params=world.params)
    prob = no_order_probability(traits=t, state=s, world=world, day=day, horizon=horizon)
    prob = prob.reshape(k, n)
    effects = {name: prob[j + 1] - prob[0] for j, name in enumerate(ACTIONS)}
    return CutoffTruth(users=users, alive=state.alive[users].copy(), p_churn=prob[0],
                       effects=effects)


def campaign_truth(*, traits: Traits, state: State, world: World, day: int, horizon: int,
                   users: np.ndarray, arm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p_churn_none, p_churn_action) for campaign rows ``users`` with arms ``arm`` on ``day``.

    ``state`` is taken after ``advance_day`` and BEFORE the campaign was applied. Control rows get
    p_churn_action = p_churn_none.
    """
    treated = arm != CONTROL
    index = np.concatenate([users, users[treated]])
    t = take_traits(traits=traits, index=index)
    s = take_state(state=state, index=index)
    action = np.concatenate([np.full(users.shape[0], CONTROL, dtype=np.int8), arm[treated]])
    apply_action(traits=t, state=s, day=day, action=action, params=world.params)
    prob = no_order_probability(traits=t, state=s, world=world, day=day, horizon=horizon)
    p_none = prob[: users.shape[0]]
    p_action = p_none.copy()
    p_action[treated] = prob[users.shape[0]:]
    return p_none, p_action
