"""Day-step dynamics shared by the simulation and the exact truth recursion.

Hidden state per customer i: alive_i in {0, 1}; satisfaction s_i; a ring buffer of satisfaction
shocks scheduled on future days; up to ``K`` support-ticket slots with pre-drawn open and
resolution days (never = NEVER); the active intervention (until-day, order-rate multiplier,
hazard multiplier, coupon discount); the day of the last order.

One day d runs in this order:

1. ``advance_day`` (deterministic): s_d = b + rho (s_{d-1} - b) + shock_d + r * #resolved_d
   - drag * #open_d; the intervention expires when until <= d.
2. ``apply_campaigns`` (deterministic given the state and the pre-drawn uniforms): a historical
   campaign on day d targets eligible customers and applies the randomised action.
3. ``day_rates``: for an alive customer
   p_{i,d} = base_i * season(d) * exp(beta (s - b)) * m_order          (P(order on d))
   q_{i,d} = h0 * h_seg * exp(-gamma s) * (1 + k exp(-tenure/60)) * price(d) * ticket * m_hazard
             * change(d)
   (P(alive -> dormant after d)); a dormant customer comes back with c_{i,d} = c0 * m_order;
   change(d) = 1 before a drift scenario's change day (always in the other scenarios), then
   (1 + delivery_kappa * delivery_sensitivity * [d within slow_window days after the latest
   delivery that took SLOW_DELIVERY days or more]) * (1 + change_price_kappa * price_sensitivity).
   The window is set by the order (step 4) when its delay is drawn, so the key property holds.
4. the simulation draws orders and transitions; ``apply_orders`` applies what an order causes
   (last order day, delivery shock, a ticket with its pre-drawn resolution day, coupon redemption).

KEY PROPERTY: steps 1-3 depend on the random past only through the state, and everything an
order changes is done in step 4. Conditional on "no order in [T, T+H)", the path of
(p_{i,d}, q_{i,d}, c_{i,d}) is therefore a deterministic function of the state at T, which is what
``truth.py`` exploits for an exact forward recursion.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields

import numpy as np

from churnguard.simulate.population import LOYAL, Population, Traits
from churnguard.simulate.scenarios import ScenarioParams

ACTIONS: tuple[str, ...] = ("recommendation", "coupon_5", "coupon_10", "coupon_20", "cs_outreach")
RECOMMENDATION, COUPON_5, COUPON_10, COUPON_20, CS_OUTREACH = range(5)
CONTROL = -1
_COUPON_PCT = {COUPON_5: 0.05, COUPON_10: 0.10, COUPON_20: 0.20}
INTERVENTION_DAYS = 30
RING = 32  # satisfaction shocks are scheduled at most RING - 1 days ahead
TICKET_SLOTS = 3
TICKET_STALE_DAYS = 120  # an unresolved ticket older than this no longer moves the hazard
NEVER = np.int32(2**30)
EMPTY = np.int32(-(2**30))
# Historical campaigns: every 90 days from day 60; eligibility needs an order in the last 180 days.
CAMPAIGN_FIRST_DAY = 60
CAMPAIGN_EVERY = 90
CAMPAIGN_LOOKBACK = 180
CAMPAIGN_TARGET_SHARE = 0.5
CONTROL_SHARE = 0.2
# A delivery taking this many days or more is slow to a delivery-sensitive customer (drift).
SLOW_DELIVERY = 3


def campaign_days(*, days: int) -> tuple[int, ...]:
    """Days (window indices) of the historical campaigns."""
    return tuple(range(CAMPAIGN_FIRST_DAY, days, CAMPAIGN_EVERY))


@dataclass(frozen=True, kw_only=True)
class World:
    """Fixed context of a run: scenario parameters, calendar and campaign schedule."""

    params: ScenarioParams
    start: dt.date
    campaign_days: tuple[int, ...]


@dataclass(kw_only=True)
class State:
    """Mutable hidden state; 1-D arrays are per customer, ring and slot arrays are (slots, n)."""

    alive: np.ndarray
    s: np.ndarray
    shock: np.ndarray  # (RING, n): shock[d % RING] is added to s on day d
    t_open: np.ndarray  # (TICKET_SLOTS, n) int32
    t_resolve: np.ndarray  # (TICKET_SLOTS, n) int32
    t_topic: np.ndarray  # (TICKET_SLOTS, n) int8: 0 delivery, 1 quality
    last_order: np.ndarray  # int32
    iv_until: np.ndarray  # int32
    iv_order: np.ndarray
    iv_hazard: np.ndarray
    iv_coupon: np.ndarray  # discount fraction while an unredeemed coupon is active
    iv_row: np.ndarray  # int64: campaign row that gave the active intervention (-1 none)
    # [slow_from, slow_until): the days after the latest slow delivery (drift scenario only).
    slow_from: np.ndarray  # int32
    slow_until: np.ndarray  # int32


def initial_state(*, population: Population) -> State:
    n = population.traits.n
    return State(
        alive=population.initial_alive.copy(),
        s=population.traits.baseline.copy(),
        shock=np.zeros((RING, n)),
        t_open=np.full((TICKET_SLOTS, n), EMPTY, dtype=np.int32),
        t_resolve=np.full((TICKET_SLOTS, n), EMPTY, dtype=np.int32),
        t_topic=np.zeros((TICKET_SLOTS, n), dtype=np.int8),
        last_order=population.initial_last_order.copy(),
        iv_until=np.full(n, EMPTY, dtype=np.int32),
        iv_order=np.ones(n),
        iv_hazard=np.ones(n),
        iv_coupon=np.zeros(n),
        iv_row=np.full(n, -1, dtype=np.int64),
        slow_from=np.full(n, EMPTY, dtype=np.int32),
        slow_until=np.full(n, EMPTY, dtype=np.int32),
    )


def take_state(*, state: State, index: np.ndarray) -> State:
    """Copy of the state for the customers in ``index`` (repeats allowed)."""
    out = {}
    for f in fields(State):
        arr = getattr(state, f.name)
        # Fancy indexing on axis 1 yields a Fortran-ordered copy; rows must stay contiguous
        # because the day step reads one slot row at a time.
        out[f.name] = np.ascontiguousarray(arr[:, index]) if arr.ndim == 2 else arr[index]
    return State(**out)


def seasonality(*, world: World, day: int) -> float:
    """season(d) = 1 + 0.12 sin(2 pi (doy - 80) / 365) + festival bumps (11.11, late November,
    early December)."""
    date = world.start + dt.timedelta(days=day)
    doy = date.timetuple().tm_yday
    value = 1.0 + 0.12 * np.sin(2 * np.pi * (doy - 80) / 365.0)
    if date.month == 11 and date.day == 11:
        value += 1.0
    if date.month == 11 and 24 <= date.day <= 30:
        value += 0.5
    if date.month == 12 and date.day <= 20:
        value += 0.2
    return float(value)


def open_tickets(*, state: State, day: int) -> np.ndarray:
    """(TICKET_SLOTS, n) mask of tickets open on ``day`` that still move the hazard:
    opened in (day - TICKET_STALE_DAYS, day] and not resolved by ``day``."""
    # One unsigned comparison tests day - STALE < t_open <= day (the day loop's hottest line).
    recent = (state.t_open - np.int32(day - TICKET_STALE_DAYS + 1)).view(np.uint32) \
        < np.uint32(TICKET_STALE_DAYS)
    return recent & (state.t_resolve > day)


def slot_count(mask: np.ndarray) -> np.ndarray:
    """Per-customer count over the slot axis of a (TICKET_SLOTS, n) mask."""
    return np.add.reduce(mask.view(np.int8), axis=0, dtype=np.int8)


def advance_day(*, traits: Traits, state: State, world: World, day: int) -> None:
    """Deterministic start of day ``day`` (in place): satisfaction AR(1) step and expiries.

    s_d = b + rho (s_{d-1} - b) + shock_d + r * #(tickets resolved on d) - drag * #(open on d).
    """
    p = world.params
    slot = day % RING
    b = traits.baseline
    s = state.s
    # In place: this runs for every customer on every simulated and every recursed day.
    s -= b
    s *= p.rho
    s += b
    s += state.shock[slot]
    state.shock[slot] = 0.0
    resolved = slot_count(state.t_resolve == day)
    if resolved.any():
        s += p.shock_resolved * resolved
    if p.ticket_drag:
        s -= p.ticket_drag * slot_count(open_tickets(state=state, day=day))
    # Interventions are set with until = day + INTERVENTION_DAYS, so they end exactly here.
    expired = np.flatnonzero(state.iv_until == day)
    state.iv_order[expired] = 1.0
    state.iv_hazard[expired] = 1.0
    state.iv_coupon[expired] = 0.0
    state.iv_row[expired] = -1


def apply_action(*, traits: Traits, state: State, day: int, action: np.ndarray,
                 params: ScenarioParams | None = None) -> np.ndarray:
    """Apply per-customer action codes (CONTROL = nothing) on ``day``; returns the mask of
    tickets (TICKET_SLOTS, n) that cs_outreach resolved.

    Multipliers for the next INTERVENTION_DAYS days (they replace any active intervention):

    * coupon_k: m_order = 1 + 1.6 ps k/20, m_hazard = 1 - h ps k/20 (ps = price sensitivity,
      h = the scenario's coupon_hazard, 0.5; after a drift scenario's change coupon_hazard_after;
      without ``params`` 0.5); the coupon is single use (an order redeems it and ends the
      order-rate lift).
    * recommendation: m_order = 1 + 0.9 exp(-(breadth - 1) / 1.5) (narrow interests gain most),
      m_hazard = 0.95.
    * cs_outreach: resolves the open tickets now and lifts s by 0.9 if any was open, 0.1 otherwise;
      m_hazard = 0.85.
    * any contact to a satisfied loyal customer (s >= b - 0.1): m_hazard *= 2.5, m_order *= 0.9
      (the backfire: being nagged).
    """
    treated = action >= 0
    ps = traits.price_sensitivity
    m_order = np.ones_like(ps)
    m_hazard = np.ones_like(ps)
    coupon = np.zeros_like(ps)
    h = 0.5 if params is None else (
        params.coupon_hazard_after if params.changed(day) else params.coupon_hazard)
    for code, pct in _COUPON_PCT.items():
        m = action == code
        m_order[m] = 1.0 + 1.6 * ps[m] * pct / 0.20
        m_hazard[m] = 1.0 - h * ps[m] * pct / 0.20
        coupon[m] = pct
    rec = action == RECOMMENDATION
    m_order[rec] = 1.0 + 0.9 * np.exp(-(traits.breadth[rec] - 1.0) / 1.5)
    m_hazard[rec] = 0.95
    out = action == CS_OUTREACH
    m_hazard[out] = 0.85
    resolved = open_tickets(state=state, day=day) & out[None, :]
    had_open = resolved.any(axis=0)
    state.t_resolve[resolved] = day
    state.s[out] += np.where(had_open[out], 0.9, 0.1)
    backfire = treated & (traits.segment == LOYAL) & (state.s >= traits.baseline - 0.1)
    m_hazard[backfire] *= 2.5
    m_order[backfire] *= 0.9
    state.iv_until[treated] = day + INTERVENTION_DAYS
    state.iv_order[treated] = m_order[treated]
    state.iv_hazard[treated] = m_hazard[treated]
    state.iv_coupon[treated] = coupon[treated]
    state.iv_row[treated] = -1
    return resolved


def campaign_assignment(*, traits: Traits, state: State, world: World, day: int
                        ) -> tuple[np.ndarray, np.ndarray] | None:
    """Targeting and randomisation of the campaign on ``day`` (None when there is none).

    Eligible: signed up before the day, an order in the last 180 days, contact consent.
    Targeted: eligible and u_target < 0.5. Arm: control if u_arm < 0.2, else action
    floor((u_arm - 0.2) / 0.8 * 5). Returns (targeted mask, arm codes with CONTROL = -1).
    """
    if day not in world.campaign_days:
        return None
    j = world.campaign_days.index(day)
    u = traits.campaign_u[:, j, :]
    eligible = (traits.signup_day < day) & (state.last_order >= day - CAMPAIGN_LOOKBACK) \
        & traits.contact_ok
    targeted = eligible & (u[:, 0] < CAMPAIGN_TARGET_SHARE)
    arm = np.floor((u[:, 1] - CONTROL_SHARE) / (1.0 - CONTROL_SHARE) * len(ACTIONS))
    arm = np.where(u[:, 1] < CONTROL_SHARE, CONTROL, np.minimum(arm, len(ACTIONS) - 1))
    arm = np.where(targeted, arm, CONTROL).astype(np.int8)
    return targeted, arm


def apply_campaigns(*, traits: Traits, state: State, world: World, day: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Run the historical campaign of ``day`` if any; returns (targeted, arm, resolved tickets)."""
    assignment = campaign_assignment(traits=traits, state=state, world=world, day=day)
    if assignment is None:
        return None
    targeted, arm = assignment
    resolved = apply_action(traits=traits, state=state, day=day, action=arm, params=world.params)
    return targeted, arm, resolved


def day_rates(*, traits: Traits, state: State, world: World, day: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p, q, c) for ``day``: order probability if alive, alive->dormant hazard, comeback."""
    prm = world.params
    signed = traits.signup_day <= day
    p = traits.base_rate * seasonality(world=world, day=day) \
        * np.exp(prm.beta * (state.s - traits.baseline)) * state.iv_order
    tenure = (day - traits.signup_day).astype(np.float64)
    hazard = prm.base_hazard * traits.hazard_mult * np.exp(-prm.gamma * state.s) \
        * (1.0 + prm.tenure_k * np.exp(-np.maximum(tenure, 0.0) / prm.tenure_scale)) \
        * state.iv_hazard
    if day >= prm.price_day:
        hazard = hazard * (1.0 + prm.price_kappa * traits.price_sensitivity
                           * np.exp(-(day - prm.price_day) / prm.price_decay))
    if prm.changed(day):
        # The drift scenario's change: after a slow delivery a delivery-sensitive customer tries
        # the competitor's fast delivery; price-sensitive ones feel the lasting price rise.
        after_slow = (state.slow_from <= day) & (day < state.slow_until)
        hazard = hazard * (1.0 + prm.delivery_kappa * traits.delivery_sensitivity * after_slow) \
            * (1.0 + prm.competitor_kappa * traits.delivery_sensitivity * traits.competitor) \
            * (1.0 + prm.change_price_kappa * traits.price_sensitivity)
    is_open = open_tickets(state=state, day=day)
    if prm.sequence_tickets:
        after_last = is_open & (state.t_open > state.last_order[None, :])
        term = 1.0 + prm.ticket_recent * after_last.any(axis=0) \
            + prm.ticket_old * slot_count(is_open & ~after_last)
    else:
        term = 1.0 + prm.ticket_any * slot_count(is_open)
    hazard = hazard * term
    p = np.where(signed, np.minimum(p, 0.5), 0.0)
    q = np.where(signed, np.minimum(hazard, 0.5), 0.0)
    c = np.where(signed, np.minimum(prm.comeback * state.iv_order, 0.5), 0.0)
    return p, q, c


@dataclass(frozen=True, kw_only=True)
class OrderExperience:
    """What an order brings, drawn at order time (so the future it causes is known then)."""

    delay: np.ndarray  # days to delivery, 1 .. RING - 1
    late: np.ndarray  # bool
    defective: np.ndarray  # bool
    ticket_day: np.ndarray  # int32, day the ticket opens (NEVER: no ticket)
    resolve_day: np.ndarray  # int32, NEVER when it is never resolved


def draw_experience(*, rng: np.random.Generator, day: int, late_risk: np.ndarray,
                    ) -> OrderExperience:
    """Delivery delay, lateness (risk by region), defect and the complaint it may cause."""
    m = late_risk.shape[0]
    late = rng.random(m) < late_risk
    delay = np.where(late, 6 + rng.poisson(2.0, m), 1 + rng.poisson(1.5, m))
    delay = np.clip(delay, 1, 14).astype(np.int32)
    late = late & (delay > 5)
    defective = rng.random(m) < 0.05
    p_ticket = np.where(defective, 0.6, np.where(late, 0.35, 0.0))
    ticket = rng.random(m) < p_ticket
    ticket_day = np.where(ticket, day + delay + rng.integers(0, 3, m), NEVER).astype(np.int32)
    never = rng.random(m) < 0.25
    resolve_after = 1 + np.minimum(rng.geometric(0.2, m), 29)
    resolve_day = np.where(ticket & ~never, ticket_day + resolve_after, NEVER).astype(np.int32)
    return OrderExperience(delay=delay, late=late, defective=defective,
                           ticket_day=ticket_day, resolve_day=resolve_day)


def apply_orders(*, state: State, world: World, day: int, idx: np.ndarray,
                 experience: OrderExperience) -> tuple[np.ndarray, np.ndarray]:
    """Apply what the orders of customers ``idx`` on ``day`` cause (in place).

    Returns (ticket scheduled mask over idx, coupon discount redeemed per idx, 0 if none).
    """
    prm = world.params
    state.last_order[idx] = day
    if prm.change_day is not None:
        # Remember the window after a slow delivery (SLOW_DELIVERY days or more): after the
        # drift scenario's change, a delivery-sensitive customer is at risk during it.
        slow = experience.delay >= SLOW_DELIVERY
        delivered = day + experience.delay[slow]
        state.slow_from[idx[slow]] = delivered
        state.slow_until[idx[slow]] = delivered + prm.slow_window
    shock = np.where(experience.late | experience.defective, 0.0, prm.shock_good) \
        + np.where(experience.late, prm.shock_late, 0.0) \
        + np.where(experience.defective, prm.shock_defective, 0.0)
    # (slot, customer) pairs are unique because idx is, so plain fancy-index addition is exact.
    state.shock[(day + experience.delay) % RING, idx] += shock
    wants = experience.ticket_day != NEVER
    t_open = state.t_open[:, idx]
    t_resolve = state.t_resolve[:, idx]
    free = (t_resolve <= day) | (t_open <= day - TICKET_STALE_DAYS)
    slot = np.argmax(free, axis=0)
    placed = wants & free.any(axis=0)
    # Two orders of one customer on one day cannot happen (one draw per day), so idx is unique.
    rows, cols = slot[placed], idx[placed]
    state.t_open[rows, cols] = experience.ticket_day[placed]
    state.t_resolve[rows, cols] = experience.resolve_day[placed]
    state.t_topic[rows, cols] = np.where(experience.defective[placed], 1, 0)
    redeemed = state.iv_coupon[idx].copy()
    has = redeemed > 0
    state.iv_coupon[idx[has]] = 0.0
    state.iv_order[idx[has]] = 1.0
    return placed, redeemed
