"""Writing the simulated shop: Parquet tables (UTC microsecond timestamps), truth and manifest.

Every file is written to a temporary name and renamed into place, so a crash never leaves a
half-written table behind.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churnguard.simulate.catalog import CATEGORIES, Catalog, expected_basket
from churnguard.simulate.population import (
    CHANNELS,
    MEMBERSHIP,
    REGIONS,
    SEGMENTS,
    Population,
)
from churnguard.simulate.scenarios import Surge
from churnguard.simulate.process import ACTIONS, CONTROL, CS_OUTREACH, RECOMMENDATION, World
from churnguard.simulate.text import text_truth, ticket_truth
from churnguard.simulate.truth import CutoffTruth

TRUTH_METHOD = (
    "Truth is exact: P(no order in [T, T+H)) is computed by a forward recursion over the hidden "
    "alive/dormant Markov chain along the state path that is deterministic given the state at T "
    "and no order (the same day-step code as the simulation), so it carries no Monte Carlo error."
)
FIXED_COSTS = {"recommendation": 0.05, "cs_outreach": 4.0}
CAMPAIGN_HOUR = 9
_TS = pa.timestamp("us", tz="UTC")


@dataclass
class CampaignLog:
    """Rows of the historical campaigns, their truth and the coupon costs paid on redemption."""

    _parts: list[tuple] = field(default_factory=list)
    _redeemed: list[tuple] = field(default_factory=list)
    n_rows: int = 0

    def add(self, *, day: int, campaign: int, users: np.ndarray, arm: np.ndarray,
            p_none: np.ndarray, p_action: np.ndarray) -> np.ndarray:
        rows = self.n_rows + np.arange(users.size, dtype=np.int64)
        self._parts.append((np.full(users.size, day, np.int32), np.full(users.size, campaign,
                                                                        np.int32),
                            users, arm, p_none, p_action))
        self.n_rows += users.size
        return rows

    def redeem(self, *, rows: np.ndarray, cost: np.ndarray) -> None:
        self._redeemed.append((rows, cost))

    def columns(self) -> tuple[np.ndarray, ...]:
        if not self._parts:
            empty = np.zeros(0)
            return (empty.astype(np.int32),) * 2 + (empty.astype(np.int64), empty.astype(np.int8),
                                                     empty, empty, empty)
        day, camp, users, arm, p_none, p_action = (np.concatenate(x) for x in zip(*self._parts))
        cost = np.zeros(self.n_rows)
        for rows, c in self._redeemed:
            np.add.at(cost, rows, c)
        return day, camp, users, arm, p_none, p_action, cost


def _ts(*, start: dt.date, seconds: np.ndarray) -> pa.Array:
    epoch = int(dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC).timestamp())
    return pa.array((epoch + seconds.astype(np.int64)) * 1_000_000, pa.int64()).cast(_TS)


def _write(table: pa.Table, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def action_costs(*, catalog: Catalog) -> dict[str, float]:
    """Cost per contact: fixed for recommendation and outreach; k% of the expected basket for a
    k% coupon, paid only when it is redeemed."""
    basket = expected_basket(catalog=catalog)
    costs = dict(FIXED_COSTS)
    for name in ACTIONS:
        if name.startswith("coupon_"):
            costs[name] = round(int(name.split("_")[1]) / 100 * basket, 4)
    return {name: costs[name] for name in ACTIONS}


def write_outputs(*, out_dir: Path, seed: int, scenario: str, start: dt.date, days: int,
                  horizon_days: int, cutoffs: list[dt.date], population: Population,
                  catalog: Catalog, events: pa.Table, campaigns: CampaignLog,
                  truths: list[tuple[dt.date, CutoffTruth]], world: World,
                  surge: tuple[Surge, dict, pa.ChunkedArray] | None = None,
                  zh_share: float | None = None) -> dict[str, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    tr = population.traits
    user_ids = np.array([f"u{j:07d}" for j in range(tr.n)])
    paths: dict[str, Path] = {}
    paths["events"] = _write(events, out_dir / "events.parquet")
    paths["users"] = _write(_users_table(population=population, user_ids=user_ids, start=start),
                            out_dir / "users.parquet")
    paths["items"] = _write(pa.table({
        "item_id": catalog.item_id,
        "category": np.array(CATEGORIES)[catalog.category],
        "price": catalog.price,
        "title": catalog.title,
    }), out_dir / "items.parquet")
    table, truth = _campaign_tables(campaigns=campaigns, population=population,
                                    user_ids=user_ids, start=start, world=world)
    paths["campaigns"] = _write(table, out_dir / "campaigns.parquet")
    paths["truth_campaigns"] = _write(truth, out_dir / "truth" / "campaigns.parquet")
    paths["truth_churn"] = _write(
        _churn_truth_table(truths=truths, population=population, user_ids=user_ids, start=start),
        out_dir / "truth" / "churn.parquet")
    truth_users = {
        "user_id": user_ids,
        "segment": np.array(SEGMENTS)[tr.segment],
        "price_sensitivity": tr.price_sensitivity,
        "category_breadth": tr.breadth,
        "base_order_rate": tr.base_rate,
        "baseline_satisfaction": tr.baseline,
        "return_propensity": population.return_propensity,
    }
    change = world.params.change_day is not None
    if change:  # only scenarios with a change carry it: the others' files stay as they were
        truth_users["delivery_sensitivity"] = tr.delivery_sensitivity
    paths["truth_users"] = _write(pa.table(truth_users), out_dir / "truth" / "users.parquet")
    paths["truth_texts"] = _write(text_truth(events), out_dir / "truth" / "texts.parquet")
    paths["truth_tickets"] = _write(ticket_truth(events), out_dir / "truth" / "tickets.parquet")
    if surge is not None:
        paths["truth_surge"], paths["truth_surge_events"] = _write_surge(
            *surge, events=events, out_dir=out_dir)
    if change:
        paths["truth_change"] = _write_json(
            change_truth(world=world, horizon_days=horizon_days), out_dir / "truth" / "change.json")
    manifest = _manifest(seed=seed, scenario=scenario, start=start, days=days,
                         horizon_days=horizon_days, cutoffs=cutoffs, n_users=tr.n,
                         catalog=catalog, events=events, campaigns=campaigns, world=world,
                         paths=paths, out_dir=out_dir,
                         surge_manifest=None if surge is None else {
                             "topic": surge[0].topic, "start": surge[0].start.isoformat(),
                             "size": surge[0].size, "days": surge[0].days},
                         zh_share=zh_share)
    paths["manifest"] = _write_json(manifest, out_dir / "manifest.json")
    return paths


def _write_surge(surge: Surge, record: dict, event_ids: pa.ChunkedArray, *, events: pa.Table,
                 out_dir: Path) -> tuple[Path, Path]:
    """``truth/surge.json`` (the surge, its baseline, what each day added) and
    ``truth/surge.parquet`` (the events it added that fall in the window)."""
    added = events.filter(pc.is_in(events.column("event_id"), value_set=event_ids.combine_chunks()))
    mentions = record["baseline_reviews_per_day"] + record["baseline_tickets_per_day"]
    about = {
        "topic": surge.topic, "start": surge.start.isoformat(), "end": surge.end.isoformat(),
        "end_exclusive": True, "size": surge.size, "days": surge.days,
        "baseline_from": record["baseline_from"],
        "baseline_negative_reviews_per_day": round(record["baseline_reviews_per_day"], 6),
        "baseline_tickets_per_day": round(record["baseline_tickets_per_day"], 6),
        "baseline_mentions_per_day": round(mentions, 6),
        "per_day": record["days"],
        "events": {t: int(pc.sum(pc.equal(added.column("type"), t)).as_py() or 0)
                   for t in ("review", "support_ticket", "ticket_resolved")},
        "what": ("From start (inclusive) to end (exclusive), extra negative reviews and support "
                 "tickets of the topic: Poisson((size - 1) * baseline) a day each, written by "
                 "customers who ordered in the 30 days before. Texts only: orders, hidden "
                 "states and churn truth are those of the run without the surge."),
    }
    return (_write_json(about, out_dir / "truth" / "surge.json"),
            _write(added.select(["event_id", "user_id", "ts", "type"]),
                   out_dir / "truth" / "surge.parquet"))


def _write_json(data: dict[str, object], path: Path) -> Path:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def change_truth(*, world: World, horizon_days: int) -> dict[str, object]:
    """What ``truth/change.json`` says about a scenario's change (concept drift).

    A cohort at cutoff T is labelled by orders in [T, T + horizon): its labels carry the change
    when T + horizon > change day (partly until T reaches the change day, wholly from then on), and
    they are known (matured) at T + horizon.
    """
    p = world.params
    assert p.change_day is not None
    day = p.change_day
    date = world.start + dt.timedelta(days=day)
    return {
        "scenario": p.name,
        "change_day": day,
        "change_date": date.isoformat(),
        "horizon_days": horizon_days,
        "first_cutoff_with_changed_labels":
            (date - dt.timedelta(days=horizon_days - 1)).isoformat(),
        "first_cutoff_wholly_changed": date.isoformat(),
        "first_changed_labels_matured": (date + dt.timedelta(days=1)).isoformat(),
        "first_wholly_changed_labels_matured": (
            date + dt.timedelta(days=horizon_days)).isoformat(),
        "parameters": p.change_parameters(),
        "competitor_regions": list(p.competitor_regions),
        "per_customer_trait": (
            "truth/users.parquet: delivery_sensitivity d in [0, 1] and price_sensitivity ps. "
            "After the change the daily hazard is multiplied by (1 + competitor_kappa * d) in "
            "competitor_regions, by (1 + delivery_kappa * d) for slow_window_days after a "
            "delivery of 3 days or more, and by (1 + price_kappa_lasting * ps)"),
        "what": ("From change_date on, a competitor's fast delivery makes delivery-sensitive "
                 "customers leave faster (and those it took in its regions keep browsing here "
                 "without buying), and a lasting price rise makes price-sensitive ones leave "
                 "faster; coupons offset more of it. Before it, the mapping from behaviour to "
                 "churn is the default scenario's."),
    }


def _users_table(*, population: Population, user_ids: np.ndarray, start: dt.date) -> pa.Table:
    tr = population.traits
    signup_sec = tr.signup_day.astype(np.int64) * 86_400 + population.signup_second
    return pa.table({
        "user_id": user_ids,
        "signup_ts": _ts(start=start, seconds=signup_sec),
        "region": np.array(REGIONS)[population.region],
        "membership_level": np.array(MEMBERSHIP)[population.membership],
        "acquisition_channel": np.array(CHANNELS)[population.acquisition],
        "language": np.where(population.language_zh, "zh", "en"),
        "contact_ok": tr.contact_ok,
        "email_ok": population.email_ok,
    })


def _campaign_tables(*, campaigns: CampaignLog, population: Population, user_ids: np.ndarray,
                     start: dt.date, world: World) -> tuple[pa.Table, pa.Table]:
    """The campaigns file (as the campaigns contract) and its truth (each row's true effect)."""
    day, camp, users, arm, p_none, p_action, cost = campaigns.columns()
    is_control = arm == CONTROL
    action = np.where(is_control, "none", np.array(ACTIONS)[np.maximum(arm, 0)])
    fixed = np.where(arm == RECOMMENDATION, FIXED_COSTS["recommendation"],
                     np.where(arm == CS_OUTREACH, FIXED_COSTS["cs_outreach"], 0.0))
    campaign_ids = np.array([f"cmp{j + 1:02d}-{start + dt.timedelta(days=d)}"
                             for j, d in enumerate(world.campaign_days)])
    channel = np.where(arm == CS_OUTREACH, "phone",
                       np.where(population.email_ok[users], "email", "app"))
    table = pa.table({
        "user_id": user_ids[users],
        "campaign_id": campaign_ids[camp] if camp.size else np.zeros(0, str),
        "action": action,
        "assigned_at": _ts(start=start, seconds=day.astype(np.int64) * 86_400
                           + CAMPAIGN_HOUR * 3600),
        "is_control": is_control,
        "cost": np.round(fixed + cost, 2),
        "channel": pa.array(channel, pa.string(), mask=is_control),
    })
    truth = pa.table({
        "user_id": user_ids[users],
        "campaign_id": campaign_ids[camp] if camp.size else np.zeros(0, str),
        "action": action,
        "is_control": is_control,
        "p_churn_none": p_none,
        "p_churn_action": p_action,
        "effect": p_action - p_none,
    })
    return table, truth


def _churn_truth_table(*, truths: list[tuple[dt.date, CutoffTruth]], population: Population,
                       user_ids: np.ndarray, start: dt.date) -> pa.Table:
    """Each customer's true churn probability and action effects at every cutoff."""
    tr = population.traits
    parts = []
    for cutoff, t in truths:
        seconds = np.full(t.users.size, (cutoff - start).days * 86_400, np.int64)
        cols = {
            "user_id": pa.array(user_ids[t.users]),
            "cutoff": _ts(start=start, seconds=seconds),
            "p_churn": pa.array(t.p_churn),
            "alive": pa.array(t.alive),
            "segment": pa.array(np.array(SEGMENTS)[tr.segment[t.users]]),
        }
        cols.update({f"effect_{a}": pa.array(t.effects[a]) for a in ACTIONS})
        parts.append(pa.table(cols))
    churn_schema = pa.schema([("user_id", pa.string()), ("cutoff", _TS), ("p_churn", pa.float64()),
                              ("alive", pa.bool_()), ("segment", pa.string())]
                             + [(f"effect_{a}", pa.float64()) for a in ACTIONS])
    return pa.concat_tables(parts) if parts else churn_schema.empty_table()


def _manifest(*, seed: int, scenario: str, start: dt.date, days: int, horizon_days: int,
              cutoffs: list[dt.date], n_users: int, catalog: Catalog, events: pa.Table,
              campaigns: CampaignLog, world: World, paths: dict[str, Path],
              out_dir: Path, surge_manifest: dict | None = None,
              zh_share: float | None = None) -> dict[str, object]:
    return {
        "seed": seed,
        "scenario": scenario,
        "n_users": n_users,
        "days": days,
        "start": start.isoformat(),
        "end": (start + dt.timedelta(days=days)).isoformat(),
        "end_exclusive": True,
        "horizon_days": horizon_days,
        "cutoffs": [c.isoformat() for c in cutoffs],
        "campaign_days": [(start + dt.timedelta(days=d)).isoformat() for d in world.campaign_days],
        "actions": list(ACTIONS),
        "action_costs": action_costs(catalog=catalog),
        "action_cost_note": "coupon costs are k% of the basket, paid only on redemption",
        "expected_basket": round(expected_basket(catalog=catalog), 4),
        "counts": {"n_users": n_users, "n_events": events.num_rows, "n_items": catalog.n_items,
                   "n_campaign_rows": campaigns.n_rows},
        "truth_method": TRUTH_METHOD,
        **({"surge": surge_manifest} if surge_manifest else {}),
        # Only when given: the default shop's manifest stays as it was.
        **({"zh_share": zh_share} if zh_share is not None else {}),
        **({"change": {"day": world.params.change_day,
                       "date": (start + dt.timedelta(days=world.params.change_day)).isoformat()}}
           if world.params.change_day is not None else {}),
        "files": {k: str(v.relative_to(out_dir)) for k, v in paths.items()},
    }
