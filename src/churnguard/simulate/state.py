"""The saved state of a simulated shop, from which ``continue_shop`` carries it on.

A shop's ``state/`` folder (written by ``simulate(..., keep_state=True)`` and by every
continuation) holds everything the day loop needs to go on deterministically:

* ``state.json``: seed, scenario (and change day), start date, the day the shop stands at (the
  state is *prepared* for that day: its ``advance_day`` has run, nothing of it is simulated
  yet), the original window's length (its historical-campaign calendar), the truth horizon,
  how many continuations came before and how many churnguard contacts were made so far;
* ``arrays/*.npy``: the population (hidden traits and observable attributes), the catalogue,
  and two hidden states (``process.State``): ``base`` is every customer in the shop as it would
  be had churnguard never contacted anyone, ``branch`` the customers churnguard contacted, in
  the world they live in (``branch_users`` maps its rows to customers). A customer's real state
  is the branch's once contacted, else the base's; customers who signed up during earlier
  continuations come after the simulated ones;
* ``arrays/contact_*.npy``: every churnguard contact so far (campaign, customer), so that a coupon
  redeemed in a later continuation is charged to the contact that gave it;
* ``pending_events.parquet``: events already drawn that happen on or after the state's day
  (reviews and returns of recent orders): the next continuation emits them.

There is no random-generator state to keep: a continuation draws each day's numbers from a
generator seeded by (seed, day, world), so the future depends only on the seed and the state.
Every file is written with ``np.save`` / Parquet, which give the same bytes for the same content.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnguard.simulate.catalog import Catalog
from churnguard.simulate.population import Population, Traits
from churnguard.simulate.process import State, World, campaign_days
from churnguard.simulate.scenarios import scenario_params

STATE_DIR = "state"
STATE_VERSION = 1
# Reviews come at most 18 days after an order, returns 24 (``events._reviews_and_returns``):
# events are drawn this far past a window's end so that none of them is lost at the boundary.
PENDING_DAYS = 40
_SCALARS = ("seed", "scenario", "change_day", "start", "day", "original_days", "horizon_days",
            "continuations", "signups_per_day")


@dataclass(kw_only=True)
class ShopState:
    """A shop paused at the start of ``day`` (see the module docstring)."""

    seed: int
    scenario: str
    change_day: int | None
    start: dt.date
    day: int
    original_days: int
    horizon_days: int
    continuations: int
    signups_per_day: float  # the simulated window's rate, kept by the continuations
    population: Population
    catalog: Catalog
    base: State
    branch_users: np.ndarray  # int64 customer index of each branch row
    branch: State
    contact_campaign: np.ndarray  # str, per contact so far
    contact_user: np.ndarray  # int64, per contact so far
    pending: pa.Table  # events at or after ``day`` already drawn
    zh_share: float | None = None  # simulate(zh_share=...): the newcomers' share too

    @property
    def world(self) -> World:
        params = scenario_params(name=self.scenario)
        if self.change_day is not None:
            params = replace(params, change_day=self.change_day)
        return World(params=params, start=self.start,
                     campaign_days=campaign_days(days=self.original_days))

    @property
    def date(self) -> dt.date:
        return self.start + dt.timedelta(days=self.day)

    @property
    def n_users(self) -> int:
        return self.population.traits.n

    def real_state(self) -> State:
        """Every customer's real hidden state: the branch's for contacted customers."""
        out = {}
        for f in fields(State):
            arr = getattr(self.base, f.name).copy()
            if self.branch_users.size:
                arr[..., self.branch_users] = getattr(self.branch, f.name)
            out[f.name] = arr
        return State(**out)


def split_events(events: pa.Table, *, start: dt.date, day: int) -> tuple[pa.Table, pa.Table]:
    """(events before the start of ``day``, events from it on) of a table sorted by time."""
    epoch = dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC)
    cut = pa.scalar(epoch + dt.timedelta(days=day), events.schema.field("ts").type)
    n = int(pc.sum(pc.less(events["ts"], cut)).as_py() or 0)
    if n == events.num_rows:
        return events, events.slice(0, 0)
    return events.slice(0, n), events.slice(n)


def empty_state_like(state: State) -> State:
    """A State with no customers and the dtypes and slot counts of ``state``."""
    return State(**{f.name: getattr(state, f.name)[..., :0].copy() for f in fields(State)})


def _arrays(state: ShopState) -> dict[str, np.ndarray]:
    pop = state.population
    out = {f"traits.{f.name}": getattr(pop.traits, f.name) for f in fields(Traits)}
    out.update({f"population.{f.name}": getattr(pop, f.name) for f in fields(Population)
                if f.name != "traits"})
    out.update({f"catalog.{f.name}": getattr(state.catalog, f.name) for f in fields(Catalog)})
    out.update({f"base.{f.name}": getattr(state.base, f.name) for f in fields(State)})
    out.update({f"branch.{f.name}": getattr(state.branch, f.name) for f in fields(State)})
    out["branch_users"] = state.branch_users
    out["contact_campaign"] = state.contact_campaign.astype(str)
    out["contact_user"] = state.contact_user
    return out


def write_state(state: ShopState, folder: Path) -> Path:
    """Write ``state`` to ``folder`` (replaced as a whole: a crash leaves the old one or none)."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "arrays").mkdir(parents=True)
    for name, arr in _arrays(state).items():
        np.save(tmp / "arrays" / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
    pq.write_table(state.pending, tmp / "pending_events.parquet")
    meta = {k: getattr(state, k) for k in _SCALARS}
    if state.zh_share is not None:  # absent for the regions' own shares: state.json as before
        meta["zh_share"] = state.zh_share
    meta["start"] = state.start.isoformat()
    meta["date"] = state.date.isoformat()
    meta["version"] = STATE_VERSION
    meta["n_users"] = state.n_users
    meta["contacts"] = int(state.contact_user.size)
    meta["contacted_customers"] = int(state.branch_users.size)
    (tmp / "state.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def read_state(folder: str | Path) -> ShopState:
    """Read a shop's state folder; a ValueError says what is missing and how to get one."""
    folder = Path(folder)
    if (folder / STATE_DIR / "state.json").exists():
        folder = folder / STATE_DIR  # the shop's folder was given
    meta_path = folder / "state.json"
    if not meta_path.exists():
        raise ValueError(
            f"{folder} holds no saved shop state (state/state.json); simulate the shop with "
            f"keep_state=True (`churnguard simulate ... --keep-state`) or give the folder a "
            f"continuation wrote")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("version") != STATE_VERSION:
        raise ValueError(f"{meta_path}: state version {meta.get('version')!r}, this churnguard "
                         f"reads version {STATE_VERSION}; simulate the shop again")
    arrays = {p.name[:-4]: np.load(p, allow_pickle=False)
              for p in sorted((folder / "arrays").glob("*.npy"))}

    def group(prefix: str, cls: type, skip: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
        return {f.name: arrays[f"{prefix}.{f.name}"] for f in fields(cls) if f.name not in skip}

    traits = Traits(**group("traits", Traits))
    population = Population(traits=traits, **group("population", Population, ("traits",)))
    return ShopState(
        seed=int(meta["seed"]), scenario=meta["scenario"], change_day=meta["change_day"],
        start=dt.date.fromisoformat(meta["start"]), day=int(meta["day"]),
        original_days=int(meta["original_days"]), horizon_days=int(meta["horizon_days"]),
        continuations=int(meta["continuations"]),
        signups_per_day=float(meta["signups_per_day"]), population=population,
        catalog=Catalog(**group("catalog", Catalog)), base=State(**group("base", State)),
        branch_users=arrays["branch_users"], branch=State(**group("branch", State)),
        contact_campaign=arrays["contact_campaign"], contact_user=arrays["contact_user"],
        pending=pq.read_table(folder / "pending_events.parquet"),
        zh_share=None if meta.get("zh_share") is None else float(meta["zh_share"]))


def fresh_state(*, seed: int, world: World, day: int, original_days: int, horizon_days: int,
                population: Population, catalog: Catalog, state: State,
                pending: pa.Table, zh_share: float | None = None) -> ShopState:
    """The state of a shop ``simulate`` just ran: nobody contacted by churnguard yet.

    The historical campaigns' coupons still running keep their effect, but their redemptions are
    no churnguard contact's cost, so the campaign rows they point to are dropped.
    """
    base = State(**{f.name: getattr(state, f.name).copy() for f in fields(State)})
    base.iv_row[:] = -1
    return ShopState(
        seed=int(seed), scenario=world.params.name, change_day=world.params.change_day,
        start=world.start, day=int(day), original_days=int(original_days),
        horizon_days=int(horizon_days), continuations=0,
        signups_per_day=float((population.traits.signup_day >= 0).sum()) / original_days,
        population=population, catalog=catalog,
        base=base, branch_users=np.zeros(0, np.int64), branch=empty_state_like(base),
        contact_campaign=np.zeros(0, str), contact_user=np.zeros(0, np.int64), pending=pending,
        zh_share=zh_share)
