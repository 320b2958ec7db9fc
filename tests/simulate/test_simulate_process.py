"""The shared day step and the truth recursion, on hand-made states."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow.parquet as pq

from churnguard.simulate import simulate
from churnguard.simulate.population import draw_population
from churnguard.simulate.process import (
    ACTIONS,
    CS_OUTREACH,
    TICKET_STALE_DAYS,
    World,
    advance_day,
    apply_action,
    campaign_days,
    day_rates,
    initial_state,
    open_tickets,
    take_state,
)
from churnguard.simulate.scenarios import SCENARIOS
from churnguard.simulate.truth import no_order_probability


def _setup(n=400, scenario="default"):
    rng = np.random.default_rng(0)
    world = World(params=SCENARIOS[scenario], start=dt.date(2025, 1, 1),
                  campaign_days=campaign_days(days=365))
    pop = draw_population(rng=rng, n_users=n, days=365, n_campaigns=len(world.campaign_days))
    return world, pop.traits, initial_state(population=pop)


def test_open_tickets_matches_the_plain_definition():
    _, _, state = _setup(n=2000)
    rng = np.random.default_rng(1)
    state.t_open[:] = rng.integers(-400, 400, state.t_open.shape)
    state.t_resolve[:] = state.t_open + rng.integers(0, 60, state.t_open.shape)
    for day in (-300, 0, 17, 250):
        plain = (state.t_open <= day) & (state.t_resolve > day) \
            & (state.t_open > day - TICKET_STALE_DAYS)
        assert np.array_equal(open_tickets(state=state, day=day), plain)


def test_one_day_horizon_is_one_minus_alive_times_order_probability():
    world, traits, state = _setup()
    day = 200
    advance_day(traits=traits, state=state, world=world, day=day)
    p, _, _ = day_rates(traits=traits, state=state, world=world, day=day)
    got = no_order_probability(traits=traits, state=take_state(state=state, index=np.arange(400)),
                               world=world, day=day, horizon=1)
    assert np.allclose(got, 1.0 - state.alive * p)


def test_two_day_horizon_matches_the_closed_form():
    world, traits, state = _setup()
    day = 10
    state.alive[::2] = False
    advance_day(traits=traits, state=state, world=world, day=day)
    s = take_state(state=state, index=np.arange(400))
    p0, q0, c0 = day_rates(traits=traits, state=s, world=world, day=day)
    advance_day(traits=traits, state=s, world=world, day=day + 1)
    p1, _, _ = day_rates(traits=traits, state=s, world=world, day=day + 1)
    a = state.alive.astype(float)
    a1 = a * (1 - p0) * (1 - q0) + (1 - a) * c0
    z1 = a * (1 - p0) * q0 + (1 - a) * (1 - c0)
    got = no_order_probability(traits=traits, state=take_state(state=state, index=np.arange(400)),
                               world=world, day=day, horizon=2)
    assert np.allclose(got, a1 * (1 - p1) + z1)


def test_outreach_resolves_open_tickets_and_lifts_satisfaction():
    world, traits, state = _setup(n=4)
    advance_day(traits=traits, state=state, world=world, day=50)
    state.t_open[0, :2] = 45
    state.t_resolve[0, :2] = 2**30
    before = state.s.copy()
    action = np.array([CS_OUTREACH, -1, CS_OUTREACH, -1], dtype=np.int8)
    resolved = apply_action(traits=traits, state=state, day=50, action=action)
    assert resolved[0].tolist() == [True, False, False, False]
    assert state.t_resolve[0, 0] == 50 and state.t_resolve[0, 1] == 2**30
    lift = state.s - before
    assert np.isclose(lift[0], 0.9) and np.isclose(lift[2], 0.1) and lift[1] == 0
    assert len(ACTIONS) == 5


def test_tiny_shops_write_every_file_with_the_full_schema(tmp_path):
    result = simulate(n_users=1, days=1, seed=0, out_dir=tmp_path)
    assert result.n_campaign_rows == 0 and result.cutoffs == ()
    names = {"truth_churn": 10, "campaigns": 7, "truth_campaigns": 7, "events": 12}
    for name, n_cols in names.items():
        assert len(pq.read_schema(result.paths[name])) == n_cols, name
