"""The responding shop: carry a simulated shop on after churnguard acts.

``continue_shop(state_dir, delivered, until=..., out_dir=...)`` starts from a shop's saved state
(``state.py``; ``simulate(..., keep_state=True)`` or an earlier continuation), applies each
delivered action on its delivery day with the simulator's own action model
(``process.apply_action``, the one behind every ``effect_<action>`` of ``truth/``), simulates on
up to ``until`` and writes, in ``out_dir``:

* ``events.parquet``: the events of [state day, until), in the data contracts' format (event and
  session ids carry the continuation's start date, so they never collide with earlier files);
* ``users.parquet``: the customers who signed up meanwhile (at the simulated window's rate);
* ``truth/contacts.parquet``: per delivered row (treated and control) the exact P(no order in
  the ``horizon_days`` from the delivery day) without the action (``p_churn_none``) and with the
  row's action (``p_churn_action``; for a control row, the action it was held out of), and
  ``effect`` = p_churn_action - p_churn_none, by the forward recursion of ``truth.py`` on the
  customer's hidden state at delivery, assuming no later contact;
* ``truth/redemptions.parquet``: the coupon discounts churnguard's contacts cost, as paid;
* ``truth/churn.parquet``: every signed-up customer's true P(churn) and ``effect_<action>`` at
  ``until`` (the oracle of the next plan), as in the simulation's ``truth/churn.parquet``;
* ``state/``: the state at ``until``, to continue again; ``manifest.json``.

How the futures stay apart. The state holds two worlds (``state.py``): ``base``, every customer
as if churnguard had never contacted anyone, and ``branch``, the contacted customers in the world
churnguard made. A delivery copies a customer's base state into the branch (once) and applies the
action there; each world draws its days from its own generator seeded by (seed, day, world). So
the customers churnguard never contacted live exactly the future they would have had without any
campaign, whatever was done to others; the contacted ones continue from their own state.
Newcomers sign up every day at the simulated window's rate (drawn per day, so the same whatever
the continuation's steps); the shop's own historical campaigns end with its window (churnguard
runs the campaigns now).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnguard.simulate.events import DayLog, _cat, build_events
from churnguard.simulate.population import Population, Traits, draw_population, take_traits
from churnguard.simulate.process import (
    ACTIONS,
    CONTROL,
    State,
    advance_day,
    apply_action,
    initial_state,
    take_state,
)
from churnguard.simulate.runner import _record_tickets, _shop
from churnguard.simulate.state import (
    PENDING_DAYS,
    STATE_DIR,
    ShopState,
    read_state,
    split_events,
    write_state,
)
from churnguard.simulate.truth import campaign_truth, cutoff_truth
from churnguard.simulate.writer import (
    TRUTH_METHOD,
    _churn_truth_table,
    _users_table,
    _write,
    _write_json,
    action_costs,
)

NO_ACTION = "none"
DEFAULT_CAMPAIGN = "continued"
# Spawn-key tag of the continuation's generators (the first simulation uses 1-element keys).
_CONTINUE = 0x5348
_BASE, _BRANCH = 0, 1
_SIGNUP = 4  # the generators of the newcomers (2 and 3 draw the events)
_TS = pa.timestamp("us", tz="UTC")
DELIVERED_SUFFIXES = (".csv", ".parquet", ".json", ".jsonl")

Delivered = pd.DataFrame | str | Path | Sequence[pd.DataFrame | str | Path] | None


@dataclass(frozen=True, kw_only=True)
class ContinuationResult:
    """What ``continue_shop`` wrote: the folder, each file, the period and the counts."""

    out_dir: Path
    paths: dict[str, Path]
    seed: int
    scenario: str
    start: dt.date  # the first continued day
    until: dt.date  # exclusive: the state now stands at this day
    n_events: int
    n_contacts: int  # treated rows (an action was applied)
    n_control: int
    n_new_users: int  # customers who signed up during the continuation (users.parquet)


# -- the delivered campaign ----------------------------------------------------------------------
def read_delivered(delivered: Delivered, *, delivered_at: dt.date | dt.datetime | None = None,
                   campaign_id: str = DEFAULT_CAMPAIGN) -> pd.DataFrame:
    """The delivered rows as one frame: campaign_id, user_id, action, is_control, assigned_at.

    ``delivered``: frames or files (.csv, .parquet, .json, .jsonl) with at least user_id and
    action: the campaigns contract (``assigned_at``, ``is_control``), a plan export
    (``churnguard plan --out``: ``is_control``, no time) or a delivery file (``churnguard deliver
    --out``: the contacted customers only). ``delivered_at`` fills a missing ``assigned_at``;
    ``campaign_id`` a missing campaign id. None: no campaign.

    >>> d = read_delivered(pd.DataFrame({"user_id": ["u0000001"], "action": ["coupon_10"]}),
    ...                    delivered_at=dt.date(2025, 6, 1))
    >>> d.at[0, "campaign_id"], bool(d.at[0, "is_control"]), str(d.at[0, "assigned_at"])
    ('continued', False, '2025-06-01 00:00:00+00:00')
    """
    columns = ["campaign_id", "user_id", "action", "is_control", "assigned_at"]
    if delivered is None:
        return pd.DataFrame({"campaign_id": pd.Series(dtype=str), "user_id": pd.Series(dtype=str),
                             "action": pd.Series(dtype=str), "is_control": pd.Series(dtype=bool),
                             "assigned_at": pd.Series(dtype=_UTC)})
    items = [delivered] if isinstance(delivered, pd.DataFrame | str | Path) else list(delivered)
    frames = [item.copy() if isinstance(item, pd.DataFrame) else _read_file(Path(item))
              for item in items]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    missing = [c for c in ("user_id", "action") if c not in frame.columns]
    if missing:
        raise ValueError(f"the delivered campaign has no column {', '.join(missing)}; it needs "
                         f"user_id and action (and is_control, assigned_at, campaign_id)")
    out = pd.DataFrame({"campaign_id": frame.get("campaign_id", campaign_id),
                        "user_id": frame["user_id"].astype(str),
                        "action": frame["action"].fillna(NO_ACTION).astype(str)})
    out["campaign_id"] = out["campaign_id"].fillna(campaign_id).astype(str)
    out["is_control"] = _as_bool(frame["is_control"]) if "is_control" in frame else False
    when = (pd.to_datetime(frame["assigned_at"], utc=True, format="mixed")
            if "assigned_at" in frame else pd.Series(pd.NaT, index=frame.index, dtype=_UTC))
    if delivered_at is not None:
        when = when.fillna(pd.Timestamp(delivered_at).tz_localize("UTC")
                           if pd.Timestamp(delivered_at).tzinfo is None
                           else pd.Timestamp(delivered_at).tz_convert("UTC"))
    if when.isna().any():
        raise ValueError(f"{int(when.isna().sum())} delivered rows have no assigned_at; give the "
                         f"delivery date (delivered_at, `--delivered-at`)")
    out["assigned_at"] = when.astype(_UTC)
    return out[columns]


_UTC = pd.DatetimeTZDtype("us", "UTC")


def _read_file(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    if suffix == ".csv":
        return pd.read_csv(path, dtype={"user_id": str, "campaign_id": str})
    if suffix == ".parquet":
        return pd.read_parquet(path)
    if suffix in (".json", ".jsonl"):
        return pd.read_json(path, lines=suffix == ".jsonl", dtype={"user_id": str})
    kind = suffix or "a file without a suffix"
    raise ValueError(f"{path}: cannot read a delivered campaign from {kind}; use one of "
                     f"{', '.join(DELIVERED_SUFFIXES)}")


def _as_bool(values: pd.Series) -> pd.Series:
    if values.dtype == bool:
        return values
    text = values.astype(str).str.strip().str.lower()
    bad = ~text.isin(["true", "false", "1", "0", "yes", "no", "t", "f", "1.0", "0.0"])
    if bad.any():
        raise ValueError(f"is_control must be true or false, got {values[bad].iloc[0]!r}")
    return text.isin(["true", "1", "yes", "t", "1.0"])


@dataclass(frozen=True, kw_only=True)
class _Rows:
    """The delivered rows checked against the shop, ordered by (day, campaign, customer)."""

    campaign_id: np.ndarray  # str
    user: np.ndarray  # int64 customer index
    action: np.ndarray  # int8 code, CONTROL for 'none'
    is_control: np.ndarray  # bool
    day: np.ndarray  # int64 window day the action applies from


def _check_rows(frame: pd.DataFrame, *, shop: ShopState, until_day: int) -> _Rows:
    """Map the delivered rows onto the shop; a ValueError names the first problem found."""
    frame = frame[frame["is_control"] | (frame["action"] != NO_ACTION)]
    users = frame["user_id"]
    known = users.str.fullmatch(r"u\d{7}")
    index = pd.to_numeric(users.str[1:].where(known), errors="coerce")
    unknown = users[index.isna() | (index >= shop.n_users)]
    if len(unknown):
        raise ValueError(f"{len(unknown)} delivered customers are not in the shop "
                         f"({shop.n_users:,} customers, u0000000 on), e.g. {unknown.iloc[0]!r} "
                         f"({_row(unknown)})")
    codes = {name: code for code, name in enumerate(ACTIONS)} | {NO_ACTION: CONTROL}
    action = frame["action"].map(codes)
    bad = frame["action"][action.isna() | (~frame["is_control"] & (action == CONTROL))]
    if len(bad):
        raise ValueError(f"action {bad.iloc[0]!r} ({_row(bad)}) is not one the shop knows "
                         f"({', '.join(ACTIONS)}; '{NO_ACTION}' only for a control row)")
    epoch = pd.Timestamp(shop.start).tz_localize("UTC")
    # The action works from the first simulated day that starts at or after the delivery.
    day = np.ceil((frame["assigned_at"] - epoch) / pd.Timedelta(days=1)).astype(np.int64)
    early, late = day < shop.day, day >= until_day
    if early.any() or late.any():
        when = frame["assigned_at"][early | late]
        raise ValueError(
            f"a delivery at {when.iloc[0]} ({_row(when)}) falls outside the continued period [{shop.date}, "
            f"{shop.start + dt.timedelta(days=until_day)}): the shop's state stands at "
            f"{shop.date}; continue from a state saved before the delivery, and until after it")
    dup = frame.duplicated(["campaign_id", "user_id"]) | pd.Series(
        pd.MultiIndex.from_arrays([day, users]).duplicated(), index=frame.index)
    if dup.any():
        raise ValueError(f"customer {users[dup].iloc[0]!r} ({_row(users[dup])}) is delivered "
                         f"twice on one day or twice in campaign "
                         f"{frame['campaign_id'][dup].iloc[0]!r}")
    order = np.lexsort((index.to_numpy(np.int64), frame["campaign_id"].to_numpy(str),
                        day.to_numpy()))
    return _Rows(campaign_id=frame["campaign_id"].to_numpy(str)[order],
                 user=index.to_numpy(np.int64)[order],
                 action=action.to_numpy(np.int8)[order],
                 is_control=frame["is_control"].to_numpy(bool)[order],
                 day=day.to_numpy()[order])


def _row(bad: pd.Series) -> str:
    """Where the first bad value is: its row among the delivered rows, counted from 1."""
    return f"delivered row {int(bad.index[0]) + 1}"


# -- the two worlds ------------------------------------------------------------------------------
def _take_population(population: Population, index: np.ndarray) -> Population:
    return Population(traits=take_traits(traits=population.traits, index=index),
                      **{f.name: getattr(population, f.name)[index]
                         for f in fields(Population) if f.name != "traits"})


def _concat_populations(a: Population, b: Population) -> Population:
    def both(x: object, y: object, cls: type, skip: str = "") -> dict[str, np.ndarray]:
        return {f.name: np.concatenate([getattr(x, f.name), getattr(y, f.name)])
                for f in fields(cls) if f.name != skip}

    return Population(traits=Traits(**both(a.traits, b.traits, Traits)),
                      **both(a, b, Population, "traits"))


def _concat_states(a: State, b: State) -> State:
    return State(**{f.name: np.ascontiguousarray(np.concatenate(
        [getattr(a, f.name), getattr(b, f.name)], axis=-1)) for f in fields(State)})


def _generator(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_CONTINUE, *key)))


class _Redemptions:
    """Coupon redemptions charged to churnguard's contacts (``_shop`` calls ``redeem``)."""

    def __init__(self) -> None:
        self.day = 0
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def redeem(self, *, rows: np.ndarray, cost: np.ndarray) -> None:
        # Rows < 0: a coupon of the shop's historical campaigns, not a churnguard contact.
        mine = rows >= 0
        if mine.any():
            self.parts.append((rows[mine], cost[mine], np.full(int(mine.sum()), self.day)))

    def columns(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.parts:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.int64)
        rows, cost, day = (np.concatenate(x) for x in zip(*self.parts, strict=True))
        return rows.astype(np.int64), cost, day


class _Worlds:
    """The base and branch worlds of one continuation, stepped day by day."""

    def __init__(self, shop: ShopState, *, new_customers: bool) -> None:
        self.shop = shop
        self.world = shop.world
        self.new_customers = new_customers
        self.population = shop.population  # grows as newcomers sign up
        self.traits = shop.population.traits
        self.base = shop.base
        self.branch = shop.branch
        self.users = shop.branch_users.copy()
        self.since = np.full(self.users.size, shop.day, np.int64)  # branch day in this call
        self.sub = _take_population(shop.population, self.users)
        self.base_log, self.branch_log = DayLog(), DayLog()
        self.redemptions = _Redemptions()
        self.contact_campaign = list(shop.contact_campaign.tolist())
        self.contact_user = list(shop.contact_user.tolist())
        self.truth: list[tuple[np.ndarray, np.ndarray]] = []

    def sign_up(self, day: int) -> None:
        """The customers who sign up on ``day``: the simulated window's daily rate, each day's
        newcomers drawn from a generator of their own (so the count and the customers do not
        depend on where a continuation starts or stops). They join the base world."""
        rate = self.shop.signups_per_day
        k = math.floor(rate * (day + 1)) - math.floor(rate * day)
        if not self.new_customers or k <= 0:
            return
        params = self.world.params
        new = draw_population(
            rng=_generator(self.shop.seed, day, _SIGNUP), n_users=k, days=1,
            n_campaigns=len(self.world.campaign_days), prestart_share=0.0,
            trait_rng=(_generator(self.shop.seed, day, _SIGNUP + 1)
                       if params.change_day is not None else None),
            competitor_regions=params.competitor_regions, zh_share=self.shop.zh_share)
        new.traits.signup_day[:] = day
        self.population = _concat_populations(self.population, new)
        self.traits = self.population.traits
        self.base = _concat_states(self.base, initial_state(population=new))

    def rows_of(self, users: np.ndarray) -> np.ndarray:
        """Branch row of each customer, -1 where not contacted yet."""
        where = {int(u): j for j, u in enumerate(self.users.tolist())}
        return np.array([where.get(int(u), -1) for u in users.tolist()], np.int64)

    def real_states(self, users: np.ndarray) -> State:
        state = take_state(state=self.base, index=users)
        rows = self.rows_of(users)
        have = rows >= 0
        for f in fields(State):
            getattr(state, f.name)[..., have] = getattr(self.branch, f.name)[..., rows[have]]
        return state

    def prepare(self, day: int) -> None:
        """Advance both worlds to the start of ``day`` (nothing of it simulated)."""
        advance_day(traits=self.traits, state=self.base, world=self.world, day=day)
        if self.users.size:
            advance_day(traits=self.sub.traits, state=self.branch, world=self.world, day=day)

    def start_day(self, day: int) -> None:
        if day > self.shop.day:
            self.prepare(day)
        _record_tickets(log=self.base_log, state=self.base, day=day)
        _record_tickets(log=self.branch_log, state=self.branch, day=day)

    def deliver(self, rows: _Rows, day: int, horizon: int) -> None:
        """The day's deliveries: their truth on the state before them, then the actions."""
        mine = np.flatnonzero(rows.day == day)
        if not mine.size:
            return
        users, action = rows.user[mine], rows.action[mine]
        # The truth recursion indexes its state by ``users``: give it the customers' own rows.
        p_none, p_action = campaign_truth(
            traits=take_traits(traits=self.traits, index=users), state=self.real_states(users),
            world=self.world, day=day, horizon=horizon, users=np.arange(users.size), arm=action)
        self.truth.append((mine, np.stack([p_none, p_action])))
        treated = ~rows.is_control[mine]
        new = np.setdiff1d(users[treated], self.users)
        if new.size:
            self.users = np.concatenate([self.users, new])
            self.since = np.concatenate([self.since, np.full(new.size, day, np.int64)])
            self.branch = _concat_states(self.branch, take_state(state=self.base, index=new))
            self.sub = _take_population(self.population, self.users)
        at = self.rows_of(users[treated])
        codes = np.full(self.users.size, CONTROL, np.int8)
        codes[at] = action[treated]
        resolved = apply_action(traits=self.sub.traits, state=self.branch, day=day,
                                action=codes, params=self.world.params)
        self.branch_log.resolved_in(day=day, state=self.branch, mask=resolved,
                                    via_outreach=True)
        first = len(self.contact_user)
        self.branch.iv_row[at] = first + np.arange(at.size)
        self.contact_campaign += rows.campaign_id[mine][treated].tolist()
        self.contact_user += users[treated].tolist()

    def shop_day(self, day: int) -> None:
        seed = self.shop.seed
        _shop(rng=_generator(seed, day, _BASE), state=self.base, world=self.world, day=day,
              population=self.population, catalog=self.shop.catalog, log=self.base_log,
              campaigns=_Redemptions())
        if self.users.size:
            self.redemptions.day = day
            _shop(rng=_generator(seed, day, _BRANCH), state=self.branch, world=self.world,
                  day=day, population=self.sub, catalog=self.shop.catalog, log=self.branch_log,
                  campaigns=self.redemptions)


# -- continue ------------------------------------------------------------------------------------
def continue_shop(state_dir: str | Path, delivered: Delivered = None, *, until: dt.date,
                  out_dir: str | Path, delivered_at: dt.date | dt.datetime | None = None,
                  horizon_days: int | None = None, new_customers: bool = True,
                  progress: Callable[[int, int], None] | None = None) -> ContinuationResult:
    """Carry the shop saved in ``state_dir`` on to ``until`` with ``delivered`` applied.

    See the module docstring for what is written. ``delivered``: see :func:`read_delivered`
    (None: no campaign); every delivery must fall in [the state's day, until). ``horizon_days``:
    the window of the contacts' and the final truth (default: the shop's). ``new_customers``:
    customers keep signing up at the simulated window's rate (False: a closed population). Same
    state, same deliveries, same arguments: the same files. ``progress(done_days, days)`` once
    per day.

    >>> import tempfile
    >>> from churnguard.simulate import simulate
    >>> shop = simulate(n_users=40, days=100, seed=1, out_dir=tempfile.mkdtemp(), keep_state=True)
    >>> more = continue_shop(shop.out_dir, until=dt.date(2025, 5, 1), out_dir=tempfile.mkdtemp())
    >>> more.start.isoformat(), more.until.isoformat(), more.n_contacts
    ('2025-04-11', '2025-05-01', 0)
    """
    shop = read_state(state_dir)
    source = Path(state_dir).resolve()
    if Path(out_dir).resolve() in (source, source.parent if source.name == STATE_DIR else source):
        raise ValueError(f"out_dir {out_dir} is the shop being continued; write the continuation "
                         f"to a folder of its own (the shop's files and state stay as they are)")
    if not isinstance(until, dt.date) or isinstance(until, dt.datetime):
        raise ValueError(f"until must be a datetime.date, got {until!r}")
    end = (until - shop.start).days
    if end <= shop.day:
        raise ValueError(f"until ({until}) must be after the day the shop's state stands at "
                         f"({shop.date})")
    horizon = int(horizon_days if horizon_days is not None else shop.horizon_days)
    if horizon < 1:
        raise ValueError(f"horizon_days must be >= 1, got {horizon_days!r}")
    frame = read_delivered(delivered, delivered_at=delivered_at)
    rows = _check_rows(frame, shop=shop, until_day=end)
    worlds = _Worlds(shop, new_customers=new_customers)
    for day in range(shop.day, end):
        worlds.start_day(day)
        worlds.sign_up(day)
        worlds.deliver(rows, day, horizon)
        worlds.shop_day(day)
        if progress is not None:
            progress(day - shop.day + 1, end - shop.day)
    worlds.prepare(end)  # the state stands at ``until`` as simulate leaves it at its end
    return _write_continuation(worlds, rows, end=end, horizon=horizon, out_dir=Path(out_dir))


# -- writing -------------------------------------------------------------------------------------
def _events(worlds: _Worlds, *, end: int) -> tuple[pa.Table, pa.Table]:
    """(events of [state day, end), events drawn for later): the pending events of the state,
    the base world's events of customers not contacted (a contacted customer's only up to the
    day they were first contacted, and the reviews and returns of their orders before it) and
    the branch world's events."""
    shop = worlds.shop
    seed, first = shop.seed, shop.day
    delivery_reviews = worlds.world.params.delivery_reviews
    kw = dict(population=worlds.population, catalog=shop.catalog, start=shop.start,
              days=end + PENDING_DAYS, delivery_reviews=delivery_reviews)
    base = build_events(rng=_generator(seed, first, end, 2 + _BASE), log=worlds.base_log, **kw)
    branch_log = _mapped(worlds.branch_log, worlds.users)
    branch = build_events(rng=_generator(seed, first, end, 2 + _BRANCH), log=branch_log, **kw)
    base = _real_base_events(base, worlds)
    stamp = f"{shop.date:%Y%m%d}"
    parts = [shop.pending, _renamed(base, f"{stamp}b-"), _renamed(branch, f"{stamp}t-")]
    schema = parts[1].schema
    events = pa.concat_tables([t.select(schema.names).cast(schema) for t in parts])
    events = events.sort_by([("ts", "ascending"), ("user_id", "ascending"),
                             ("event_id", "ascending")])
    return split_events(events, start=shop.start, day=end)


def _mapped(log: DayLog, users: np.ndarray) -> DayLog:
    """The branch's day log with its rows turned into customer indices."""
    out = DayLog()
    for name in ("_visit", "_order", "_opened", "_resolved"):
        setattr(out, name, [(part[0], users[part[1]], *part[2:]) for part in getattr(log, name)])
    return out


def _real_base_events(events: pa.Table, worlds: _Worlds) -> pa.Table:
    """Drop the base world's events of contacted customers from the day of their first contact,
    except that day's ticket events (recorded before the delivery) and the reviews and returns of
    orders placed before it (those orders were real)."""
    if not worlds.users.size:
        return events
    since = np.full(worlds.population.traits.n, np.iinfo(np.int64).max)
    since[worlds.users] = worlds.since
    frame = pd.DataFrame({
        "user": pc.cast(pc.utf8_slice_codeunits(events["user_id"], 1), pa.int64()).to_numpy(),
        "day": _days(events["ts"], worlds.shop.start),
        "type": events["type"].to_numpy(zero_copy_only=False),
        "item": events["item_id"].to_numpy(zero_copy_only=False)})
    first = since[frame["user"].to_numpy()]
    day = frame["day"].to_numpy()
    keep = (day < first) | ((day == first) & frame["type"].isin(
        ["support_ticket", "ticket_resolved"]).to_numpy())
    later = np.flatnonzero(~keep & frame["type"].isin(["review", "return"]).to_numpy())
    if later.size:
        o_day, o_user, o_item = _cat(worlds.base_log._order, (np.int64, np.int64, np.int64))[:3]
        orders = pd.DataFrame({"user": o_user, "order_day": o_day,
                               "item": worlds.shop.catalog.item_id[o_item].astype(object)})
        asked = frame.iloc[later].assign(row=later, day=day[later] - 2)
        # The order behind a review or return: the customer's latest order of the item at least
        # two days before it (reviews come 2+ days after an order, returns 3+).
        found = pd.merge_asof(asked.sort_values("day"), orders.sort_values("order_day"),
                              left_on="day", right_on="order_day", by=["user", "item"])
        real = found["order_day"].to_numpy() < since[found["user"].to_numpy()]
        keep[found["row"].to_numpy()[real]] = True
    return events.filter(pa.array(keep))


def _days(ts: pa.ChunkedArray, start: dt.date) -> np.ndarray:
    epoch = dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)
    micros = pc.cast(ts, pa.int64()).to_numpy() - int(epoch.timestamp()) * 1_000_000
    return micros // (86_400 * 1_000_000)


def _renamed(events: pa.Table, prefix: str) -> pa.Table:
    """Event and session ids with ``prefix``: unique across the continuations of a shop."""
    for name in ("event_id", "session_id"):
        column = pc.binary_join_element_wise(pa.scalar(prefix), events[name], "")
        events = events.set_column(events.schema.get_field_index(name), name, column)
    return events


def _write_continuation(worlds: _Worlds, rows: _Rows, *, end: int, horizon: int,
                        out_dir: Path) -> ContinuationResult:
    shop, population = worlds.shop, worlds.population
    out_dir.mkdir(parents=True, exist_ok=True)
    events, pending = _events(worlds, end=end)
    user_ids = np.array([f"u{j:07d}" for j in range(population.traits.n)])
    paths = {"events": _write(events, out_dir / "events.parquet")}
    newcomers = np.arange(shop.n_users, population.traits.n)
    paths["users"] = _write(_users_table(population=_take_population(population, newcomers),
                                         user_ids=user_ids[newcomers], start=shop.start),
                            out_dir / "users.parquet")
    paths["truth_contacts"] = _write(_contacts_table(worlds, rows, user_ids, horizon),
                                     out_dir / "truth" / "contacts.parquet")
    paths["truth_redemptions"] = _write(_redemptions_table(worlds, user_ids),
                                        out_dir / "truth" / "redemptions.parquet")
    nxt = replace(shop, day=end, continuations=shop.continuations + 1, population=population,
                  base=worlds.base, branch_users=worlds.users, branch=worlds.branch,
                  contact_campaign=np.array(worlds.contact_campaign, dtype=str),
                  contact_user=np.array(worlds.contact_user, dtype=np.int64), pending=pending)
    users = np.flatnonzero(population.traits.signup_day < end)
    final = cutoff_truth(traits=population.traits, state=nxt.real_state(),
                         world=worlds.world, day=end, horizon=horizon, users=users)
    paths["truth_churn"] = _write(_churn_truth_table(
        truths=[(nxt.date, final)], population=population, user_ids=user_ids,
        start=shop.start), out_dir / "truth" / "churn.parquet")
    paths["state"] = write_state(nxt, out_dir / STATE_DIR)
    treated = int((~rows.is_control).sum())
    paths["manifest"] = _write_json(_manifest(
        nxt, first=shop, horizon=horizon, events=events, rows=rows, paths=paths,
        out_dir=out_dir), out_dir / "manifest.json")
    return ContinuationResult(out_dir=out_dir, paths=paths, seed=shop.seed, scenario=shop.scenario,
                              start=shop.date, until=nxt.date, n_events=events.num_rows,
                              n_contacts=treated, n_control=int(rows.is_control.sum()),
                              n_new_users=int(newcomers.size))


def _contacts_table(worlds: _Worlds, rows: _Rows, user_ids: np.ndarray,
                    horizon: int) -> pa.Table:
    p = np.zeros((2, rows.user.size))
    for mine, probs in worlds.truth:
        p[:, mine] = probs
    start = worlds.shop.start
    epoch = dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)
    names = np.array([*ACTIONS, NO_ACTION])  # CONTROL (-1) picks the last
    return pa.table({
        "campaign_id": pa.array(rows.campaign_id, pa.string()),
        "user_id": pa.array(user_ids[rows.user], pa.string()),
        "action": pa.array(names[rows.action.astype(np.int64)], pa.string()),
        "is_control": pa.array(rows.is_control, pa.bool_()),
        "delivered_day": pa.array([epoch + dt.timedelta(days=int(d)) for d in rows.day], _TS),
        "horizon_days": pa.array(np.full(rows.user.size, horizon, np.int32)),
        "p_churn_none": pa.array(p[0]),
        "p_churn_action": pa.array(p[1]),
        "effect": pa.array(p[1] - p[0]),
    })


def _redemptions_table(worlds: _Worlds, user_ids: np.ndarray) -> pa.Table:
    row, cost, day = worlds.redemptions.columns()
    start = worlds.shop.start
    epoch = dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)
    campaign = np.array(worlds.contact_campaign, dtype=str)
    user = np.array(worlds.contact_user, dtype=np.int64)
    return pa.table({
        "campaign_id": pa.array(campaign[row] if row.size else [], pa.string()),
        "user_id": pa.array(user_ids[user[row]] if row.size else [], pa.string()),
        "day": pa.array([epoch + dt.timedelta(days=int(d)) for d in day], _TS),
        "cost": pa.array(cost, pa.float64()),
    })


def _manifest(shop: ShopState, *, first: ShopState, horizon: int, events: pa.Table, rows: _Rows,
              paths: dict[str, Path], out_dir: Path) -> dict[str, object]:
    """``shop``: the state at the end; ``first``: the state continued from."""
    campaigns = {}
    for cid in sorted(set(rows.campaign_id.tolist())):
        mine = rows.campaign_id == cid
        campaigns[cid] = {"treated": int((mine & ~rows.is_control).sum()),
                          "control": int((mine & rows.is_control).sum())}
    return {
        "what": "continuation of a simulated shop after churnguard's deliveries",
        "seed": shop.seed,
        "scenario": shop.scenario,
        "n_users": shop.n_users,
        "n_new_users": shop.n_users - first.n_users,
        "from": first.date.isoformat(),
        "until": shop.date.isoformat(),
        "until_exclusive": True,
        "days": shop.day - first.day,
        "continuation": shop.continuations,
        "horizon_days": horizon,
        "campaigns": campaigns,
        "actions": list(ACTIONS),
        "action_costs": action_costs(catalog=shop.catalog),
        "action_cost_note": "coupon costs are k% of the basket, paid only on redemption "
                            "(truth/redemptions.parquet has what was paid)",
        "counts": {"n_events": events.num_rows, "n_contacts": int((~rows.is_control).sum()),
                   "n_control": int(rows.is_control.sum())},
        "truth_method": TRUTH_METHOD + " Contacts' truth: on the customer's hidden state on the "
                        "delivery day, assuming no later contact.",
        "files": {k: str(v.relative_to(out_dir)) for k, v in paths.items()},
    }
