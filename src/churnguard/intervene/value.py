"""Each customer's expected future value over the horizon, so that a plan weighs saves by worth.

Two estimators of the revenue a customer brings in [T, T + H), picked by an out-of-time backtest:

* ``btyd``: expected orders from the MBG/NBD model (Batislam et al. 2007) times the expected spend
  per order from the Gamma-Gamma model of monetary value (Fader, Hardie & Lee 2005, "RFM and CLV:
  using iso-value curves for customer base analysis", JMR 42(4); the likelihood and conditional
  expectation as in Fader & Hardie 2013, "The Gamma-Gamma model of monetary value", eqs. 1-5);
* ``gbdt``: a LightGBM regression with a Tweedie loss (revenue is zero for many customers and
  skewed for the rest) on the engineered point-in-time features.

Revenue is zero when a customer places no order, so E[R] = P(active) E[R | active], and the value
of keeping a customer is ``value_if_retained = E[R] / P(active)``: what an action that turns a
leaver into a stayer gains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
from scipy.optimize import minimize
from scipy.special import gammaln
from sklearn.exceptions import NotFittedError

from churnguard.config import ChurnDefinition
from churnguard.cutoffs import label_window_end_sql
from churnguard.models.btyd_churn import BTYDChurnModel, rfm_per_row
from churnguard.snapshots import Snapshot
from churnguard.store import Store

__all__ = [
    "BTYDValueModel",
    "GBDTValueModel",
    "GammaGammaModel",
    "VALUE_MODELS",
    "ValueBacktest",
    "future_revenue",
    "value_backtest",
]


class GammaGammaModel:
    """Spend per transaction ~ Gamma(p, nu), nu ~ Gamma(q, gamma) across customers.

    ``fit(frequency, monetary)``: repeat transactions x > 0 and their mean value m_x (customers
    with x = 0 carry no information about their own spend and are left out, as in the paper).

    >>> rng = np.random.default_rng(0)
    >>> x = rng.integers(1, 8, 3000)
    >>> nu = rng.gamma(4.0, 1 / 15.0, 3000)           # q = 4, gamma = 15
    >>> m = rng.gamma(6.0 * x, 1 / (nu * x))           # the mean of x Gamma(6, nu) spends
    >>> gg = GammaGammaModel().fit(x, m)
    >>> [round(gg.params_[k]) for k in ("p", "q", "v")], round(gg.mean_spend_)
    ([6, 4, 15], 30)
    >>> spend = gg.conditional_expected_spend(np.array([0, 7]), np.array([0.0, 80.0]))
    >>> bool(spend[0] == gg.mean_spend_ and 30 < spend[1] < 80)
    True
    """

    def __init__(self, *, penalizer_coef: float = 0.0) -> None:
        self.penalizer_coef = penalizer_coef

    def fit(self, frequency: np.ndarray, monetary: np.ndarray) -> GammaGammaModel:
        x = np.asarray(frequency, dtype=float)
        m = np.asarray(monetary, dtype=float)
        if x.shape != m.shape:
            raise ValueError(f"frequency and monetary must have the same shape, got {x.shape} "
                             f"and {m.shape}")
        keep = x > 0
        if np.any(~np.isfinite(m[keep])) or np.any(m[keep] <= 0):
            raise ValueError("monetary values of customers with repeat purchases must be finite "
                             "and > 0 (the Gamma-Gamma model describes positive spend)")
        x, m = x[keep], m[keep]
        if x.size < 3:
            raise ValueError(f"the Gamma-Gamma model needs at least 3 customers with repeat "
                             f"purchases, got {x.size}")

        def negative_log_likelihood(log_params: np.ndarray) -> float:
            p, q, v = np.exp(log_params)
            # Fader & Hardie (2013), eq. 3: the marginal density of the mean m_x of x values.
            ll = (gammaln(p * x + q) - gammaln(p * x) - gammaln(q) + q * np.log(v)
                  + (p * x - 1) * np.log(m) + p * x * np.log(x) - (p * x + q) * np.log(x * m + v))
            return -ll.mean() + self.penalizer_coef * float(np.sum(np.exp(log_params) ** 2))

        start = np.log([1.0, 2.0, float(np.mean(m))])
        result = minimize(negative_log_likelihood, start, method="Nelder-Mead",
                          options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 10_000})
        p, q, v = np.exp(result.x)
        if not result.success or q <= 1:
            raise ValueError(f"the Gamma-Gamma fit did not converge to a finite mean spend "
                             f"(q = {q:.3g} must exceed 1; {result.message})")
        self.params_ = {"p": float(p), "q": float(q), "v": float(v)}
        return self

    @property
    def mean_spend_(self) -> float:
        """E[spend per transaction] of a customer we know nothing about: p v / (q - 1)."""
        prm = self._params()
        return prm["p"] * prm["v"] / (prm["q"] - 1)

    def _params(self) -> dict[str, float]:
        if not hasattr(self, "params_"):
            raise NotFittedError("this GammaGammaModel is not fitted yet; call fit() first")
        return self.params_

    def conditional_expected_spend(self, frequency: np.ndarray, monetary: np.ndarray
                                   ) -> np.ndarray:
        """E[M | x, m_x] = (q - 1)/(p x + q - 1) * p v/(q - 1) + p x/(p x + q - 1) * m_x
        (Fader & Hardie 2013, eq. 5): the population mean shrunk toward the customer's own."""
        prm = self._params()
        p, q, v = prm["p"], prm["q"], prm["v"]
        x = np.asarray(frequency, dtype=float)
        m = np.nan_to_num(np.asarray(monetary, dtype=float))
        weight = p * x / (p * x + q - 1)
        return (1 - weight) * (p * v / (q - 1)) + weight * m


def _repeat_spend(snapshot: Snapshot) -> pd.DataFrame:
    """Per snapshot row: repeat purchase days x and the mean revenue of those repeat days.

    Same-day orders are one transaction, and the first purchase day is left out, as in the
    CDNOW analyses the Gamma-Gamma model was built on.
    """
    orders = snapshot.orders
    days = pd.DataFrame({
        "user_id": orders["user_id"].astype(str).to_numpy(),
        "cutoff": pd.to_datetime(orders["cutoff"]).astype("datetime64[us]").to_numpy(),
        "day": pd.to_datetime(orders["ts"]).dt.floor("D").astype("datetime64[us]").to_numpy(),
        "amount": orders["amount"].fillna(0.0).to_numpy(dtype=float),
    })
    daily = days.groupby(["user_id", "cutoff", "day"], sort=True)["amount"].sum().reset_index()
    daily["first"] = daily.groupby(["user_id", "cutoff"])["day"].transform("min")
    repeat = daily[daily["day"] > daily["first"]]
    grouped = repeat.groupby(["user_id", "cutoff"])["amount"]
    out = pd.DataFrame({"x": grouped.size().astype(float), "m": grouped.mean()})
    index = pd.MultiIndex.from_arrays(
        [snapshot.index.get_level_values(0).astype(str),
         pd.DatetimeIndex(snapshot.index.get_level_values(1)).astype("datetime64[us]")],
        names=["user_id", "cutoff"])
    out = out.reindex(index)
    out["x"] = out["x"].fillna(0.0)
    return out


class _ValueModel:
    name: ClassVar[str]

    def _check_fitted(self) -> None:
        if not hasattr(self, "horizon_days_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit() first")


class BTYDValueModel(_ValueModel):
    """E[revenue in the horizon] = E[orders | history] (MBG/NBD) x E[spend | history] (Gamma-Gamma).

    Rows without any order before the cutoff get the mean revenue of such rows in training.
    """

    name: ClassVar[str] = "btyd"

    def __init__(self, *, time_unit_days: float = 7) -> None:
        self.time_unit_days = time_unit_days

    def fit(self, train: Snapshot, revenue: pd.Series) -> BTYDValueModel:
        self.btyd_ = BTYDChurnModel(model="mbg", time_unit_days=self.time_unit_days).fit(train)
        spend = _repeat_spend(train)
        self.gamma_gamma_ = GammaGammaModel().fit(spend["x"].to_numpy(), spend["m"].to_numpy())
        no_history = rfm_per_row(train, time_unit_days=self.time_unit_days)["frequency"].isna()
        target = revenue.reindex(train.index).to_numpy(dtype=float)
        self.fallback_ = float(np.nanmean(target[no_history.to_numpy()])) \
            if no_history.any() else 0.0
        self.horizon_days_ = int(train.horizon_days)
        return self

    def predict(self, snapshot: Snapshot) -> np.ndarray:
        self._check_fitted()
        orders = self.btyd_.transform(snapshot)["btyd_expected_orders"].to_numpy(dtype=float)
        spend = _repeat_spend(snapshot)
        per_order = self.gamma_gamma_.conditional_expected_spend(spend["x"].to_numpy(),
                                                                 spend["m"].to_numpy())
        value = orders * per_order
        return np.where(np.isnan(value), self.fallback_, np.maximum(value, 0.0))


class GBDTValueModel(_ValueModel):
    """LightGBM regression of the horizon's revenue on the point-in-time features (Tweedie loss)."""

    name: ClassVar[str] = "gbdt"

    def __init__(self, *, n_estimators: int = 300, learning_rate: float = 0.05,
                 num_leaves: int = 31, tweedie_variance_power: float = 1.3,
                 random_state: int = 0) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.tweedie_variance_power = tweedie_variance_power
        self.random_state = random_state

    def fit(self, train: Snapshot, revenue: pd.Series) -> GBDTValueModel:
        target = revenue.reindex(train.index).to_numpy(dtype=float)
        keep = np.isfinite(target)
        self.features_ = list(train.features.columns)
        self.booster_ = lgb.LGBMRegressor(
            objective="tweedie", tweedie_variance_power=self.tweedie_variance_power,
            n_estimators=self.n_estimators, learning_rate=self.learning_rate,
            num_leaves=self.num_leaves, min_child_samples=50, subsample=0.8, subsample_freq=1,
            colsample_bytree=0.8, random_state=self.random_state, n_jobs=0, verbose=-1,
        ).fit(train.features.loc[keep, self.features_], target[keep])
        self.horizon_days_ = int(train.horizon_days)
        return self

    def predict(self, snapshot: Snapshot) -> np.ndarray:
        self._check_fitted()
        return np.maximum(self.booster_.predict(snapshot.features[self.features_]), 0.0)


VALUE_MODELS: dict[str, type[_ValueModel]] = {"btyd": BTYDValueModel, "gbdt": GBDTValueModel}


def future_revenue(store: Store, keys: pd.DataFrame, *, days: int,
                   activity: Sequence[str] = ("order",)) -> pd.Series:
    """Sum of ``amount`` over activity events in [cutoff, cutoff + days) per (user_id, cutoff)."""
    table = pa.table({
        "user_id": pa.array(keys["user_id"].astype(str).to_numpy(dtype=object), pa.string()),
        "cutoff": pa.array(pd.to_datetime(keys["cutoff"]).astype("datetime64[us]").to_numpy(),
                           pa.timestamp("us")),
    })
    acts = ", ".join("'" + a.replace("'", "''") + "'" for a in activity)
    with store.registered(table, "value_keys") as view:
        frame = store.con.execute(
            f"""
            SELECT k.user_id, k.cutoff, coalesce(sum(e.amount), 0) AS revenue
            FROM (SELECT DISTINCT user_id, cutoff FROM {view}) k
            LEFT JOIN events e ON e.user_id = k.user_id AND e.type IN ({acts})
                AND e.ts >= k.cutoff AND e.ts < {label_window_end_sql('k.cutoff', days)}
            GROUP BY k.user_id, k.cutoff
            """
        ).df()
    frame["cutoff"] = frame["cutoff"].astype("datetime64[us]")
    return frame.set_index(["user_id", "cutoff"])["revenue"].astype(float)


@dataclass(frozen=True, kw_only=True)
class ValueBacktest:
    """Out-of-time errors of each value model on the test cutoff, and the one chosen (lowest MAE)."""

    test_cutoff: str
    n_test: int
    mean_revenue: float
    models: dict[str, dict[str, float]]
    chosen: str


def _errors(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from scipy.stats import spearmanr

    return {
        "mae": float(np.mean(np.abs(pred - y))),
        "rmse": float(np.sqrt(np.mean((pred - y) ** 2))),
        "total_ratio": float(pred.sum() / y.sum()) if y.sum() > 0 else float("nan"),
        # Undefined (NaN) with fewer than three customers or a constant side, as scipy says.
        "spearman": (float(spearmanr(pred, y).statistic)
                     if y.size > 2 and np.ptp(y) > 0 and np.ptp(pred) > 0 else float("nan")),
    }


def value_backtest(train: Snapshot, test: Snapshot, *, store: Store,
                   definition: ChurnDefinition) -> tuple[ValueBacktest, dict[str, _ValueModel]]:
    """Fit every value model on ``train`` and compare them on the later ``test`` snapshot."""
    days = int(definition.horizon_days)
    rev_train = future_revenue(store, train.features.index.to_frame(index=False), days=days,
                               activity=definition.activity)
    rev_test = future_revenue(store, test.features.index.to_frame(index=False), days=days,
                              activity=definition.activity)
    y = rev_test.reindex(test.index).to_numpy(dtype=float)
    results, fitted = {}, {}
    for name, cls in VALUE_MODELS.items():
        model = cls().fit(train, rev_train)
        fitted[name] = model
        results[name] = _errors(y, model.predict(test))
    chosen = min(results, key=lambda n: results[n]["mae"])
    cutoff = str(pd.Timestamp(test.meta["cutoffs"][-1]).date())
    return ValueBacktest(test_cutoff=cutoff, n_test=int(y.size), mean_revenue=float(y.mean()),
                         models=results, chosen=chosen), fitted
