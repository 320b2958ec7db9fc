"""Loading simulated shops and the churn rule the product applies (kept apart from conftest so
that test modules can import it by a unique name)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from churnguard.simulate import SimulationResult

HORIZON = pd.Timedelta(days=90)
LOOKBACK = pd.Timedelta(days=365)


@dataclass(frozen=True)
class Shop:
    result: SimulationResult
    events: pd.DataFrame
    users: pd.DataFrame
    churn: pd.DataFrame
    truth_users: pd.DataFrame
    campaigns: pd.DataFrame
    truth_campaigns: pd.DataFrame

    @property
    def end(self) -> pd.Timestamp:
        start = pd.Timestamp(dt.date(2025, 1, 1), tz="UTC")
        return start + pd.Timedelta(days=365)


def load_shop(result: SimulationResult) -> Shop:
    p = result.paths
    return Shop(
        result=result,
        events=pd.read_parquet(p["events"]),
        users=pd.read_parquet(p["users"]),
        churn=pd.read_parquet(p["truth_churn"]),
        truth_users=pd.read_parquet(p["truth_users"]),
        campaigns=pd.read_parquet(p["campaigns"]),
        truth_campaigns=pd.read_parquet(p["truth_campaigns"]),
    )


def order_times(events: pd.DataFrame) -> pd.DataFrame:
    return events.loc[events["type"] == "order", ["user_id", "ts"]]


def population_at(*, events: pd.DataFrame, cutoff: pd.Timestamp) -> set[str]:
    """Users with at least one order in [cutoff - 365d, cutoff) (the product's default rule)."""
    o = order_times(events)
    return set(o.loc[(o["ts"] >= cutoff - LOOKBACK) & (o["ts"] < cutoff), "user_id"])


def ordered_within(*, events: pd.DataFrame, start: pd.Series | pd.Timestamp,
                   users: pd.Series) -> pd.Series:
    """Per row: did the user order in [start, start + 90d)? ``start`` may be per row."""
    o = order_times(events)
    rows = pd.DataFrame({"user_id": users.to_numpy(), "t0": start if isinstance(
        start, pd.Timestamp) else start.to_numpy()})
    rows["row"] = range(len(rows))
    m = rows.merge(o, on="user_id", how="left")
    hit = (m["ts"] >= m["t0"]) & (m["ts"] < m["t0"] + HORIZON)
    return hit.groupby(m["row"]).any().sort_index().set_axis(users.index)


def cutoffs_with_labels(shop: Shop) -> list[pd.Timestamp]:
    """Cutoffs whose whole horizon lies inside the simulated window."""
    return [c for c in sorted(shop.churn["cutoff"].unique()) if c + HORIZON <= shop.end]


def churn_check_rows(*, shop_events: pd.DataFrame, churn: pd.DataFrame,
                     cutoff: pd.Timestamp) -> pd.DataFrame:
    """Truth rows of the population at ``cutoff`` with the observed label ``churned``."""
    rows = churn[churn["cutoff"] == cutoff]
    rows = rows[rows["user_id"].isin(population_at(events=shop_events, cutoff=cutoff))].copy()
    rows["churned"] = ~ordered_within(events=shop_events, start=cutoff, users=rows["user_id"])
    return rows
