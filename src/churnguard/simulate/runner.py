"""``simulate``: run the shop day by day over arrays of all customers and write the files."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa

from churnguard.simulate.catalog import Catalog, draw_catalog, draw_items
from churnguard.simulate.events import DayLog, SurgePlan, build_events
from churnguard.simulate.population import (
    REGION_LATE_RISK,
    Population,
    Traits,
    draw_population,
)
from churnguard.simulate.process import (
    CONTROL,
    World,
    advance_day,
    apply_campaigns,
    apply_orders,
    campaign_days,
    day_rates,
    draw_experience,
    State,
    initial_state,
    take_state,
)
from churnguard.simulate.scenarios import (
    ScenarioParams,
    Surge,
    changing_scenarios,
    scenario_params,
)
from churnguard.simulate.state import (
    PENDING_DAYS,
    STATE_DIR,
    fresh_state,
    split_events,
    write_state,
)
from churnguard.simulate.truth import CutoffTruth, campaign_truth, cutoff_truth
from churnguard.simulate.writer import CampaignLog, write_outputs

# Dormant customers still drop by now and then without buying.
DORMANT_VISIT = 0.004


@dataclass(frozen=True, kw_only=True)
class SimulationResult:
    """What ``simulate`` wrote: the folder, each file's path, row counts and the run's identity."""

    out_dir: Path
    paths: dict[str, Path]
    n_users: int
    n_events: int
    n_items: int
    n_campaign_rows: int
    scenario: str
    seed: int
    cutoffs: tuple[dt.date, ...]


def default_cutoffs(*, start: dt.date, days: int) -> list[dt.date]:
    """Every 30 days from start + 90 days up to and including start + days."""
    return [start + dt.timedelta(days=d) for d in range(90, days + 1, 30)]


def _validate(*, n_users: int, days: int, horizon_days: int, start: dt.date,
              cutoffs: list[dt.date]) -> None:
    if not isinstance(n_users, int | np.integer) or n_users < 1:
        raise ValueError(f"n_users must be an integer >= 1, got {n_users!r}")
    if not isinstance(days, int | np.integer) or days < 1:
        raise ValueError(f"days must be an integer >= 1, got {days!r}")
    if not isinstance(horizon_days, int | np.integer) or horizon_days < 1:
        raise ValueError(f"horizon_days must be an integer >= 1, got {horizon_days!r}")
    if not isinstance(start, dt.date) or isinstance(start, dt.datetime):
        raise ValueError(f"start must be a datetime.date, got {start!r}")
    end = start + dt.timedelta(days=days)
    for c in cutoffs:
        if not isinstance(c, dt.date) or isinstance(c, dt.datetime) or not start < c <= end:
            raise ValueError(f"cutoff {c!r} must be a date in ({start}, {end}] "
                             f"(after the start, at most start + days)")


def _checked_share(zh_share: object) -> float | None:
    """``zh_share`` as a float from 0 to 1 (None stays None); a ValueError otherwise."""
    if zh_share is None:
        return None
    if isinstance(zh_share, bool) or not isinstance(zh_share, int | float) \
            or not 0.0 <= zh_share <= 1.0:
        raise ValueError(f"zh_share must be a number from 0 to 1 (the share of customers who "
                         f"write in Chinese), got {zh_share!r}")
    return float(zh_share)


def _with_change_day(params: ScenarioParams, *, change_day: int | None,
                     days: int) -> ScenarioParams:
    """The scenario's parameters with ``change_day`` applied, checked against the window."""
    if change_day is not None:
        if params.change_day is None:
            raise ValueError(f"scenario {params.name!r} has no change; a change day applies to "
                             f"scenarios with one ({', '.join(changing_scenarios())})")
        if not isinstance(change_day, int | np.integer) or isinstance(change_day, bool):
            raise ValueError(f"change_day must be an integer, got {change_day!r}")
        params = replace(params, change_day=int(change_day))
    if params.change_day is not None and not 1 <= params.change_day < days:
        raise ValueError(
            f"scenario {params.name!r} changes on day {params.change_day}, outside the "
            f"{days}-day window (days 1 to {days - 1}); simulate more days or choose another "
            f"change day")
    return params


def simulate(*, n_users: int, days: int, seed: int, out_dir: str | Path,
             scenario: str = "default", start: dt.date = dt.date(2025, 1, 1),
             horizon_days: int = 90, cutoffs: list[dt.date] | None = None,
             change_day: int | None = None, keep_state: bool = False,
             surge: Surge | None = None, zh_share: float | None = None,
             progress: Callable[[int, int], None] | None = None) -> SimulationResult:
    """Simulate ``n_users`` customers for ``days`` days from ``start`` and write Parquet files.

    Same seed, same arguments: byte-identical Parquet content. ``progress(done_days, days)`` is
    called once per simulated day. Truth is exact (see ``truth.py``).

    ``change_day``: for a scenario with a change (``drift``), the day (window index, 1 to
    days - 1) it happens on instead of the scenario's own (day 365); a ValueError for the others.

    ``keep_state``: also write ``state/`` (``state.py``), from which ``continue_shop`` carries the
    shop on after churnguard acts; the other files are the same with or without it.

    ``surge``: inject a complaint surge (:class:`~churnguard.simulate.scenarios.Surge`): extra
    complaints of its topic from its start, drawn from a random stream of their own, so every
    other event and all churn truth are those of the run without it; ``truth/surge.json`` (the
    surge, its baseline and what each day added) and ``truth/surge.parquet`` (its events).

    ``zh_share``: the share of customers who write in Chinese, in every region (1.0: a
    Chinese-only shop); None keeps each region's own. Only the texts' language moves (same
    uniforms); a continuation's newcomers keep it (``state/``).

    >>> import tempfile
    >>> r = simulate(n_users=50, days=100, seed=1, out_dir=tempfile.mkdtemp())
    >>> r.n_users, r.cutoffs[0].isoformat()
    (50, '2025-04-01')
    """
    params = _with_change_day(scenario_params(name=scenario), change_day=change_day, days=days)
    cutoffs = sorted(set(cutoffs)) if cutoffs is not None else default_cutoffs(start=start,
                                                                              days=days)
    _validate(n_users=n_users, days=days, horizon_days=horizon_days, start=start, cutoffs=cutoffs)
    zh_share = _checked_share(zh_share)
    if surge is not None:
        surge.check(start=start, days=days)
    out_dir = Path(out_dir)
    n_users, days = int(n_users), int(days)

    # A fifth stream for the drift scenario's latent trait: spawn(5) gives the same first four
    # children as spawn(4), so the other draws do not depend on whether the trait is drawn.
    streams = np.random.SeedSequence(seed).spawn(5)
    rng_pop, rng_catalog, rng_days, rng_events = (np.random.default_rng(s) for s in streams[:4])
    world = World(params=params, start=start, campaign_days=campaign_days(days=days))
    catalog = draw_catalog(rng=rng_catalog)
    population = draw_population(
        rng=rng_pop, n_users=n_users, days=days, n_campaigns=len(world.campaign_days),
        trait_rng=np.random.default_rng(streams[4]) if params.change_day is not None else None,
        competitor_regions=params.competitor_regions, zh_share=zh_share)
    traits = population.traits
    state = initial_state(population=population)
    cutoff_days = {(c - start).days: c for c in cutoffs}

    log = DayLog()
    campaigns = CampaignLog()
    truths: list[tuple[dt.date, CutoffTruth]] = []
    # A cutoff at start + days is evaluated on the state at the start of that (unsimulated) day.
    for day in range(days + 1):
        advance_day(traits=traits, state=state, world=world, day=day)
        if day < days:
            # Before the campaign: its cs_outreach also sets resolution days to today.
            _record_tickets(log=log, state=state, day=day)
        _run_campaign(state=state, world=world, day=day, traits=traits, horizon_days=horizon_days,
                      log=log, campaigns=campaigns)
        if day in cutoff_days:
            users = np.flatnonzero(traits.signup_day < day)
            truths.append((cutoff_days[day], cutoff_truth(
                traits=traits, state=state, world=world, day=day, horizon=horizon_days,
                users=users)))
        if day == days:
            break
        _shop(rng=rng_days, state=state, world=world, day=day, population=population,
              catalog=catalog, log=log, campaigns=campaigns)
        if progress is not None:
            progress(day + 1, days)

    events, pending, surged = _events(
        rng=rng_events, seed=seed, log=log, population=population, catalog=catalog, start=start,
        days=days, keep_state=keep_state, params=params, surge=surge)
    paths = write_outputs(
        out_dir=out_dir, seed=seed, scenario=scenario, start=start, days=days,
        horizon_days=horizon_days, cutoffs=cutoffs, population=population, catalog=catalog,
        events=events, campaigns=campaigns, truths=truths, world=world, surge=surged,
        zh_share=zh_share)
    if keep_state:
        paths["state"] = write_state(fresh_state(
            seed=seed, world=world, day=days, original_days=days, horizon_days=horizon_days,
            population=population, catalog=catalog, state=state, pending=pending,
            zh_share=zh_share),
            out_dir / STATE_DIR)
    return SimulationResult(
        out_dir=out_dir, paths=paths, n_users=n_users, n_events=events.num_rows,
        n_items=catalog.n_items, n_campaign_rows=campaigns.n_rows, scenario=scenario,
        seed=seed, cutoffs=tuple(cutoffs),
    )


def _events(*, rng: np.random.Generator, seed: int, log: DayLog, population: Population,
            catalog: Catalog, start: dt.date, days: int, keep_state: bool,
            params: ScenarioParams, surge: Surge | None,
            ) -> tuple[pa.Table, pa.Table, tuple[Surge, dict, pa.ChunkedArray] | None]:
    """The events of the window, those drawn past it (pending) and the surge's record."""
    # With the state kept, the events drawn past the window (reviews and returns of its last
    # orders) are kept too, for the continuation to emit; those inside it are the same.
    # The surge's own stream: spawn(6) gives the same first five children as spawn(5).
    plan = None if surge is None else SurgePlan(
        surge=surge, rng=np.random.default_rng(np.random.SeedSequence(seed).spawn(6)[5]))
    events = build_events(rng=rng, log=log, population=population, catalog=catalog,
                          start=start, days=days + (PENDING_DAYS if keep_state else 0),
                          delivery_reviews=params.delivery_reviews, surge=plan)
    surge_ids = None if plan is None else events.column("event_id").take(
        pa.array(plan.record["rows"], pa.int64()))
    events, pending = split_events(events, start=start, day=days)
    return events, pending, None if plan is None else (plan.surge, plan.record, surge_ids)


def _run_campaign(*, state: State, world: World, day: int, traits: Traits, horizon_days: int,
                  log: DayLog, campaigns: CampaignLog) -> None:
    """The historical campaign of ``day``, if any: assign, act, and log its rows with their
    true effects (taken on the state just before it)."""
    if day in world.campaign_days:
        before = take_state(state=state, index=np.arange(traits.n))
    applied = apply_campaigns(traits=traits, state=state, world=world, day=day)
    if applied is None:
        return
    targeted, arm, resolved = applied
    users = np.flatnonzero(targeted)
    p_none, p_action = campaign_truth(traits=traits, state=before, world=world, day=day,
                                      horizon=horizon_days, users=users, arm=arm[users])
    rows = campaigns.add(day=day, campaign=world.campaign_days.index(day), users=users,
                         arm=arm[users], p_none=p_none, p_action=p_action)
    treated = arm[users] != CONTROL
    state.iv_row[users[treated]] = rows[treated]
    log.resolved_in(day=day, state=state, mask=resolved, via_outreach=True)


def _shop(*, rng: np.random.Generator, state: State, world: World, day: int,
          population: Population, catalog: Catalog, log: DayLog, campaigns: CampaignLog) -> None:
    """One day of shopping: who visits, who orders what, which coupons are redeemed, and who
    turns dormant or comes back."""
    traits, params = population.traits, world.params
    n_users = traits.n
    p, q, c = day_rates(traits=traits, state=state, world=world, day=day)
    u = rng.random(n_users)
    alive = state.alive
    v = np.minimum(p * traits.visit_ratio, 1.0)
    dormant_v = DORMANT_VISIT
    if params.changed(day):
        # Drift: customers lost to the competitor keep comparing in our shop; they browse at
        # their old rate times their delivery sensitivity but buy elsewhere (no order while
        # dormant). Same uniform as the plain visit, so the random stream does not move.
        dormant_v = np.maximum(DORMANT_VISIT,
                               v * traits.competitor * traits.delivery_sensitivity)
    visit = np.where(alive, u < v, (u < dormant_v) & (traits.signup_day <= day))
    order = alive & (u < p)
    log.visits(day=day, users=np.flatnonzero(visit), ordered=order[visit])
    idx = np.flatnonzero(order)
    if idx.size:
        late_risk = REGION_LATE_RISK[population.region[idx]]
        experience = draw_experience(rng=rng, day=day, late_risk=late_risk)
        pref = population.pref_cum[idx]
        category = np.sum(pref < rng.random(idx.size)[:, None], axis=1).astype(np.int16)
        item = draw_items(rng=rng, catalog=catalog, category=category)
        quantity = 1 + rng.poisson(0.3, idx.size)
        price = catalog.price[item] * (1.0 + params.price_increase * (day >= params.price_day))
        if params.changed(day):
            price = price * (1.0 + params.change_price_increase)
        amount = np.round(price * quantity, 2)
        coupon_row = state.iv_row[idx].copy()
        _, redeemed = apply_orders(state=state, world=world, day=day, idx=idx,
                                   experience=experience)
        campaigns.redeem(rows=coupon_row[redeemed > 0],
                         cost=np.round(redeemed[redeemed > 0] * amount[redeemed > 0], 2))
        log.orders(day=day, users=idx, item=item, category=category, quantity=quantity,
                   amount=amount, experience=experience, coupon=redeemed)
    w = rng.random(n_users)
    state.alive = np.where(alive, w >= q, w < c)


def _record_tickets(*, log: DayLog, state: State, day: int) -> None:
    """Log tickets opening and resolving today, before today's orders may reuse a slot."""
    slot, who = np.nonzero(state.t_open == day)
    log.opened(day=day, users=who, topic=state.t_topic[slot, who], slots=slot)
    log.resolved_in(day=day, state=state, mask=(state.t_resolve == day) & (state.t_open < day),
                    via_outreach=False)
