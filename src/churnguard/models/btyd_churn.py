"""BTYD as a churn model: P(no purchase within the horizon) from each row's purchase history.

Each (user, cutoff) row of a snapshot becomes one BTYD "customer" observed from their first
purchase up to the cutoff: ``frequency`` x (repeat purchase days), ``recency`` t_x and ``T``, in
units of ``time_unit_days`` (weeks by default), exactly as :func:`rfm_from_transactions` counts
them. Rows of several cutoffs are pooled when fitting (a pseudo-likelihood: the same customer
seen at two cutoffs counts twice); the four population parameters are what is learned.

The churn probability is :meth:`BetaGeoModel.probability_no_purchase` over the horizon
(FHL 2005; Batislam et al. 2007 for MBG/NBD), the same event the churn label counts: no activity
in [T, T + horizon). MBG/NBD is the default because under BG/NBD a one-time buyer (x = 0) is alive
with probability 1 however long ago they bought, and one-time buyers are a large share of any
shop's population.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from churnguard.models.base import ChurnModel
from churnguard.models.btyd import BetaGeoModel, ParetoNBDModel
from churnguard.snapshots import Snapshot

__all__ = ["BTYDChurnModel", "BTYD_FEATURES", "rfm_per_row"]

BTYD_FEATURES = ("btyd_p_alive", "btyd_expected_orders", "btyd_p_no_purchase")
_MODELS = ("bg", "mbg", "pareto")


def rfm_per_row(snapshot: Snapshot, *, time_unit_days: float = 7) -> pd.DataFrame:
    """frequency, recency and T of every snapshot row, from ``snapshot.orders`` (vectorised).

    Same counting as :func:`churnguard.models.btyd.rfm_from_transactions` (distinct purchase
    days; T runs to the last day before the cutoff), per (user_id, cutoff). Rows without any
    order before their cutoff get NaN.
    """
    if snapshot.orders is None:
        raise ValueError(
            "this snapshot has no order histories (Snapshot.orders is None); build it with "
            "churnguard.snapshots.build_snapshot")
    if len(snapshot) <= _FEW:
        return _rfm_few(snapshot, time_unit_days)
    orders = snapshot.orders
    days = pd.DataFrame({
        "user_id": orders["user_id"].astype(str).to_numpy(),
        "cutoff": pd.to_datetime(orders["cutoff"]).astype("datetime64[us]").to_numpy(),
        "day": pd.to_datetime(orders["ts"]).dt.floor("D").astype("datetime64[us]").to_numpy(),
    }).drop_duplicates()
    grouped = days.groupby(["user_id", "cutoff"], sort=False)["day"]
    summary = pd.DataFrame({"n": grouped.size(), "first": grouped.min(), "last": grouped.max()})
    index = snapshot.index
    summary = summary.reindex(pd.MultiIndex.from_arrays(
        [index.get_level_values(0).astype(str),
         pd.DatetimeIndex(index.get_level_values(1)).astype("datetime64[us]")],
        names=["user_id", "cutoff"]))
    cutoff = pd.DatetimeIndex(summary.index.get_level_values("cutoff"))
    last_day = (cutoff - pd.Timedelta(1, "us")).floor("D")
    unit = pd.Timedelta(days=1) * time_unit_days
    rfm = pd.DataFrame({
        "frequency": (summary["n"] - 1).astype(float).to_numpy(),
        "recency": ((summary["last"] - summary["first"]) / unit).to_numpy(dtype=float),
        "T": ((last_day - pd.DatetimeIndex(summary["first"])) / unit).to_numpy(dtype=float),
    }, index=snapshot.index)
    return rfm


_FEW = 64  # rows scored one by one (the real-time answer): NumPy per row beats pandas' groupby
_DAY_US = 86_400_000_000


def _rfm_few(snapshot: Snapshot, time_unit_days: float) -> pd.DataFrame:
    """:func:`rfm_per_row` for a few rows, per row in NumPy: the same numbers (whole UTC days
    of the activity events; durations in microseconds divided by the unit's, as pandas divides
    them), without pandas' per-call overhead, which is most of scoring one customer's BTYD
    inputs. tests/service/test_realtime.py requires the probabilities equal to batch scoring's,
    which takes the pandas path."""
    orders = snapshot.orders
    users = orders["user_id"].astype(str).to_numpy()
    cutoffs = pd.to_datetime(orders["cutoff"]).astype("datetime64[us]").to_numpy().view(np.int64)
    ts = pd.to_datetime(orders["ts"]).astype("datetime64[us]").to_numpy().view(np.int64)
    unit = (pd.Timedelta(days=1) * time_unit_days).as_unit("us")
    unit_us = float(unit.to_timedelta64().view(np.int64))
    index = snapshot.index
    out = np.full((len(index), 3), np.nan)
    row_cutoffs = pd.DatetimeIndex(index.get_level_values(1)).astype("datetime64[us]") \
        .to_numpy().view(np.int64)
    for k, (user, cut) in enumerate(zip(index.get_level_values(0).astype(str), row_cutoffs,
                                        strict=True)):
        days = np.unique(np.floor_divide(ts[(users == user) & (cutoffs == cut)], _DAY_US))
        if days.size == 0:
            continue
        first, last = int(days[0]) * _DAY_US, int(days[-1]) * _DAY_US
        last_day = (int(cut) - 1) // _DAY_US * _DAY_US
        out[k] = (float(days.size - 1), float(last - first) / unit_us,
                  float(last_day - first) / unit_us)
    return pd.DataFrame(out, index=index, columns=["frequency", "recency", "T"])


class BTYDChurnModel(ChurnModel):
    """P(churn) = P(no purchase within the horizon) under a fitted BTYD model.

    ``model``: "mbg" (MBG/NBD, default), "bg" (BG/NBD) or "pareto" (Pareto/NBD).
    ``time_unit_days``: the time unit of the RFM summary (7: weeks).
    ``penalizer_coef``: L2 penalty on the parameters, as in :class:`BetaGeoModel`.

    ``transform(snapshot)`` gives per-row BTYD quantities (P(alive), expected orders and
    P(no purchase) within the horizon) for use as features by other models.
    """

    name: ClassVar[str] = "btyd"

    def __init__(self, *, model: str = "mbg", time_unit_days: float = 7,
                 penalizer_coef: float = 0.0) -> None:
        self.model = model
        self.time_unit_days = time_unit_days
        self.penalizer_coef = penalizer_coef

    def _new_model(self) -> BetaGeoModel | ParetoNBDModel:
        if self.model not in _MODELS:
            raise ValueError(f"model must be one of {list(_MODELS)}, got {self.model!r}")
        if self.model == "pareto":
            return ParetoNBDModel(penalizer_coef=self.penalizer_coef,
                                  time_unit_days=self.time_unit_days)
        return BetaGeoModel(model=self.model, penalizer_coef=self.penalizer_coef,
                            time_unit_days=self.time_unit_days)

    def fit(self, train: Snapshot, *, validation: Snapshot | None = None) -> BTYDChurnModel:
        """Fit the BTYD parameters on the train rows' histories (``validation`` is not used)."""
        btyd = self._new_model()
        rfm = rfm_per_row(train, time_unit_days=self.time_unit_days).dropna()
        if rfm.empty:
            raise ValueError("BTYDChurnModel.fit: no row of the training snapshot has an order "
                             "before its cutoff")
        btyd.fit(rfm)
        self.btyd_ = btyd
        self.horizon_days_ = int(train.horizon_days)
        # Rows without any purchase history (supplied labels only) get the training churn rate.
        self.fallback_ = float(np.nanmean(train.labels)) if train.labels is not None else 0.5
        return self

    def _quantities(self, snapshot: Snapshot) -> pd.DataFrame:
        self._check_fitted("predict")
        if int(snapshot.horizon_days) != self.horizon_days_:
            raise ValueError(
                f"this model was fitted for a {self.horizon_days_}-day horizon, the snapshot has "
                f"{snapshot.horizon_days} days; refit on a snapshot with the same horizon")
        rfm = rfm_per_row(snapshot, time_unit_days=self.time_unit_days)
        ok = rfm["frequency"].notna().to_numpy()
        out = pd.DataFrame(np.nan, index=snapshot.index, columns=list(BTYD_FEATURES))
        if ok.any():
            x, t_x, T = (rfm.loc[ok, c].to_numpy() for c in ("frequency", "recency", "T"))
            h = self.horizon_days_ / self.time_unit_days
            out.loc[ok, "btyd_p_alive"] = np.atleast_1d(self.btyd_.probability_alive(x, t_x, T))
            out.loc[ok, "btyd_expected_orders"] = np.atleast_1d(
                self.btyd_.conditional_expected_purchases(h, x, t_x, T))
            out.loc[ok, "btyd_p_no_purchase"] = np.atleast_1d(
                self.btyd_.probability_no_purchase(h, x, t_x, T))
        return out

    def transform(self, snapshot: Snapshot) -> pd.DataFrame:
        """Per row: btyd_p_alive, btyd_expected_orders, btyd_p_no_purchase (NaN: no history)."""
        return self._quantities(snapshot)

    def predict_proba(self, snapshot: Snapshot) -> np.ndarray:
        p = self._quantities(snapshot)["btyd_p_no_purchase"].to_numpy(dtype=float)
        return np.clip(np.where(np.isnan(p), self.fallback_, p), 0.0, 1.0)
