"""Buy-till-you-die models: BG/NBD, its MBG/NBD variant, and Pareto/NBD.

The BG/NBD model (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way: An Alternative
to the Pareto/NBD Model", Marketing Science 24(2), 275-284; "FHL" below) describes each customer
by three numbers measured from their first purchase:

* ``frequency`` x: the number of repeat purchases (purchase *days* after the first one),
* ``recency`` t_x: the time of the last purchase, 0 when x = 0,
* ``T``: the time from the first purchase to the end of the observation period.

While alive a customer buys as a Poisson process with rate lambda ~ Gamma(r, alpha); right after
every repeat purchase they drop out with probability p ~ Beta(a, b). In the MBG/NBD variant
(Batislam, Denizel & Filiztekin 2007, "Empirical validation and comparison of models for customer
base analysis", IJRM 24(3), 201-209) they can also drop out right after the *first* purchase, so a
one-time buyer who has been silent for long is no longer certainly alive.

>>> import numpy as np
>>> rfm = rfm_from_transactions(
...     ["u1", "u1", "u1", "u2"],
...     ["2024-01-01 09:00", "2024-01-01 17:00", "2024-01-15", "2024-01-08"],
...     cutoff="2024-01-30",
... )
>>> rfm
         frequency  recency    T
user_id
u1             1.0      2.0  4.0
u2             0.0      0.0  3.0
"""

from __future__ import annotations

import json
import math
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaincinv, betaln, expit, gammaln, hyp2f1
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

__all__ = ["BetaGeoModel", "ParetoNBDModel", "rfm_from_transactions", "FORMAT_VERSION"]

#: Version of the JSON layout written by :meth:`BetaGeoModel.save`.
FORMAT_VERSION = 1
_MODELS = ("bg", "mbg")
_RFM_COLUMNS = ("frequency", "recency", "T")

# Starting points in log-parameter space (log r, log alpha, log a, log b). The likelihood is not
# convex; a few spread-out starts guard against a poor local optimum at little cost.
_STARTS = (
    (0.0, 0.0, 0.0, 0.0),
    (math.log(0.5), math.log(5.0), math.log(0.5), math.log(2.0)),
    (math.log(2.0), math.log(20.0), math.log(2.0), math.log(5.0)),
)
# exp(+-15) spans 3e-7 .. 3e6, wide enough for any data set measured in days, weeks or months,
# narrow enough that gammaln/betaln never overflow during the search.
_LOG_BOUND = 15.0


def rfm_from_transactions(
    user_ids: Any,
    timestamps: Any,
    cutoff: Any,
    time_unit_days: float = 7,
) -> pd.DataFrame:
    """Summarise transactions strictly before ``cutoff`` into frequency, recency and T per user.

    Purchases are counted per calendar day, as in FHL (2005, section 3): several transactions on
    one day are one purchase, so ``frequency`` is the number of distinct purchase days minus one.
    Times are whole days between day stamps, divided by ``time_unit_days``; T runs from the first
    purchase day to the last day of the window (the day before a midnight cutoff). With
    ``cutoff="1997-10-01"`` this reproduces the published CDNOW summary, where a customer who first
    bought on 1997-01-01 has T = 272 / 7 = 38.86 weeks.

    Returns a DataFrame indexed by ``user_id`` (sorted) with float columns ``frequency``,
    ``recency`` and ``T``; users without a transaction before the cutoff are absent.

    >>> rfm_from_transactions([1, 1, 2], ["2024-01-01", "2024-01-08", "2024-01-10"],
    ...                       cutoff="2024-01-15", time_unit_days=1)
             frequency  recency     T
    user_id
    1              1.0      7.0  13.0
    2              0.0      0.0   4.0
    """
    if not (isinstance(time_unit_days, (int, float)) and math.isfinite(time_unit_days)
            and time_unit_days > 0):
        raise ValueError(f"time_unit_days must be a positive number, got {time_unit_days!r}.")
    users = pd.Series(np.asarray(user_ids), name="user_id")
    stamps = np.asarray(timestamps)
    # Strings must be ISO 8601 (formats may differ per row); datetimes pass through unchanged.
    as_text = pd.api.types.infer_dtype(stamps, skipna=True) in ("string", "mixed")
    stamps = pd.Series(pd.to_datetime(stamps, format="ISO8601" if as_text else None),
                       name="timestamp")
    if len(users) != len(stamps):
        raise ValueError(
            f"user_ids and timestamps must have the same length; got {len(users)} and "
            f"{len(stamps)}."
        )
    missing = stamps.isna().to_numpy() | users.isna().to_numpy()
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        raise ValueError(
            f"Some user_ids or timestamps are missing: {int(missing.sum())} of {len(users)} rows, "
            f"e.g. row {row}. Drop these transactions or fill them in before summarising."
        )
    cutoff_ts = pd.Timestamp(cutoff)
    if pd.isna(cutoff_ts):
        raise ValueError(f"cutoff must be a timestamp, got {cutoff!r}.")

    before = (stamps < cutoff_ts).to_numpy()
    days = pd.DataFrame(
        {"user_id": users.to_numpy()[before], "day": stamps[before].dt.floor("D").to_numpy()}
    ).drop_duplicates()
    by_user = days.groupby("user_id", sort=True)["day"]
    first = by_user.min()
    last = by_user.max()
    # The last day on which a purchase inside the window can happen.
    last_day = (cutoff_ts - pd.Timedelta(1, "ns")).floor("D")
    unit = pd.Timedelta(days=1) * time_unit_days
    rfm = pd.DataFrame(
        {
            "frequency": (by_user.size() - 1).astype(float),
            "recency": (last - first) / unit,
            "T": (last_day - first) / unit,
        }
    )
    rfm.index.name = "user_id"
    return rfm


class _BuyTillYouDieModel(BaseEstimator):
    """Fitting, validation and persistence shared by the BG/NBD and Pareto/NBD models."""

    _param_names: tuple[str, ...] = ()

    def fit(self, rfm: pd.DataFrame, y: None = None) -> Any:
        """Fit on a DataFrame with columns frequency, recency and T (see rfm_from_transactions)."""
        missing = [c for c in _RFM_COLUMNS if c not in getattr(rfm, "columns", ())]
        if missing:
            raise ValueError(
                f"rfm is missing column(s) {missing}; expected the columns frequency, recency "
                "and T as produced by rfm_from_transactions()."
            )
        return self.fit_rfm(rfm["frequency"], rfm["recency"], rfm["T"])

    def fit_transactions(self, user_ids: Any, timestamps: Any, cutoff: Any) -> Any:
        """Summarise transactions before ``cutoff`` in units of ``time_unit_days`` and fit."""
        self._check_hyperparameters()
        return self.fit(rfm_from_transactions(user_ids, timestamps, cutoff, self.time_unit_days))

    def fit_rfm(self, x: Any, t_x: Any, T: Any) -> Any:
        """Maximise the log-likelihood over log-parameters; return ``self``.

        Identical (x, t_x, T) rows are pooled with a count, L-BFGS-B runs from a few fixed
        starts, and Nelder-Mead polishes the best one, so the fit is deterministic.
        """
        self._check_hyperparameters()
        x, t_x, T = _check_rfm(x, t_x, T, one_dimensional=True)
        if x.size == 0:
            raise ValueError("Cannot fit on zero customers; the RFM vectors are empty.")
        rows, counts = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
        ux, ut_x, uT = rows[:, 0], rows[:, 1], rows[:, 2]
        weights = counts / counts.sum()
        penalizer = float(self.penalizer_coef)

        def objective(log_params: np.ndarray) -> float:
            params = np.exp(log_params)
            ll = self._row_log_likelihood(params, ux, ut_x, uT)
            value = -float(weights @ ll) + penalizer * float(params @ params)
            # L-BFGS-B's finite differences may step where the likelihood under/overflows.
            return value if math.isfinite(value) else 1e300

        bounds = [(-_LOG_BOUND, _LOG_BOUND)] * len(self._param_names)
        best = None
        for start in _STARTS:
            result = minimize(objective, np.array(start), method="L-BFGS-B", bounds=bounds,
                              options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-10})
            if best is None or result.fun < best.fun:
                best = result
        # The bounds hold here too: without them the simplex walked a fit whose dropout is nearly
        # homogeneous (the likelihood flat as a and b grow together) out to b ~ 1.5e7.
        # fatol sits above the noise of the objective, which is relative (a mean log-likelihood
        # of order 1-50 over tens of thousands of rows, each term's rounding its own): below it
        # the simplex never meets fatol and runs all 20,000 evaluations (100-130 s on a
        # 20,000-customer shop's pooled training rows) to end where it was after a few hundred.
        polished = minimize(objective, best.x, method="Nelder-Mead", bounds=bounds,
                            options={"xatol": 1e-10, "fatol": 1e-12 * max(1.0, abs(best.fun)),
                                     "maxiter": 20_000, "maxfev": 20_000})
        if polished.fun <= best.fun:
            best = polished
        params = np.exp(best.x)
        self.params_ = dict(zip(self._param_names, (float(v) for v in params)))
        self.log_likelihood_ = float(counts @ self._row_log_likelihood(params, ux, ut_x, uT))
        self.n_customers_ = int(x.size)
        self.converged_ = bool(best.success) and bool(
            np.all(np.abs(best.x) < _LOG_BOUND - 1e-6)
        )
        return self

    def individual_log_likelihood(self, x: Any, t_x: Any, T: Any) -> np.ndarray | float:
        """Log-likelihood of each customer's (x, t_x, T) under the fitted parameters."""
        params = self._fitted_params("individual_log_likelihood")
        x, t_x, T = _check_rfm(x, t_x, T)
        return _scalar_or_array(self._row_log_likelihood(params, x, t_x, T))

    # -------------------------------------------------------------- persistence

    def save(self, path: str | PathLike[str]) -> None:
        """Write the configuration and fitted parameters to ``path`` as JSON (exact floats)."""
        self._fitted_params("save")
        document = {
            "format": self._format_name(),
            "version": FORMAT_VERSION,
            "config": self.get_params(),
            "state": {
                "params_": self.params_,
                "log_likelihood_": self.log_likelihood_,
                "n_customers_": self.n_customers_,
                "converged_": self.converged_,
            },
        }
        Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | PathLike[str]) -> Any:
        """Read a model written by :meth:`save`."""
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(document, dict) or document.get("format") != cls._format_name():
            raise ValueError(
                f"{path} is not a saved {cls.__name__} (format {cls._format_name()!r})."
            )
        if document.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{path} has model file version {document.get('version')!r}; this churnguard "
                f"reads version {FORMAT_VERSION}. Refit the model or load it with the "
                "churnguard release that wrote it."
            )
        model = cls(**document["config"])
        model._check_hyperparameters()
        state = document["state"]
        model.params_ = {name: float(state["params_"][name]) for name in cls._param_names}
        model.log_likelihood_ = float(state["log_likelihood_"])
        model.n_customers_ = int(state["n_customers_"])
        model.converged_ = bool(state["converged_"])
        return model

    # ------------------------------------------------------------------ helpers

    @classmethod
    def _format_name(cls) -> str:
        return f"churnguard.models.btyd.{cls.__name__}"

    def _row_log_likelihood(
        self, params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        raise NotImplementedError

    def _check_hyperparameters(self) -> None:
        for name in ("penalizer_coef", "time_unit_days"):
            value = getattr(self, name)
            is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not is_number or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}.")
        if self.penalizer_coef < 0:
            raise ValueError(f"penalizer_coef must be >= 0, got {self.penalizer_coef!r}.")
        if self.time_unit_days <= 0:
            raise ValueError(f"time_unit_days must be > 0, got {self.time_unit_days!r}.")

    def _fitted_params(self, method: str) -> np.ndarray:
        if not hasattr(self, "params_"):
            raise NotFittedError(
                f"This {type(self).__name__} is not fitted yet; call fit(rfm) or "
                f"fit_rfm(x, t_x, T) before {method}()."
            )
        return np.array([self.params_[name] for name in self._param_names])


class BetaGeoModel(_BuyTillYouDieModel):
    """BG/NBD model of repeat buying and silent dropout (FHL 2005), or MBG/NBD with ``model="mbg"``.

    Parameters (keyword-only, stored unchanged):

    model:
        ``"bg"`` for BG/NBD, ``"mbg"`` for MBG/NBD (Batislam et al. 2007). In BG/NBD a customer
        with no repeat purchase is alive with probability 1 however long ago they bought, a known
        flaw of the model; MBG/NBD lets them drop out after the first purchase too. Under
        ``"bg"`` rank one-time buyers with :meth:`probability_no_purchase`, which still grows
        with the time since their purchase (the posterior purchase rate falls).
    penalizer_coef:
        L2 penalty ``penalizer_coef * (r**2 + alpha**2 + a**2 + b**2)`` added to the mean negative
        log-likelihood (as in lifetimes); 0 gives the plain maximum-likelihood estimate.
    time_unit_days:
        Length in days of the time unit of frequency/recency/T (7: weeks). Used by
        :meth:`fit_transactions`; the RFM methods take times already in this unit.

    Fitted attributes: ``params_`` (dict r, alpha, a, b), ``log_likelihood_`` (total, without the
    penalty), ``n_customers_``, ``converged_``.

    >>> model = BetaGeoModel().fit_rfm([2, 0, 5], [30.4, 0.0, 20.0], [38.9, 38.9, 30.0])
    >>> sorted(model.params_)
    ['a', 'alpha', 'b', 'r']
    >>> BetaGeoModel().probability_alive(1, 1.0, 2.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sklearn.exceptions.NotFittedError: This BetaGeoModel is not fitted yet; call fit(rfm) ...
    """

    _param_names = ("r", "alpha", "a", "b")

    def __init__(
        self, *, model: str = "bg", penalizer_coef: float = 0.0, time_unit_days: float = 7
    ) -> None:
        self.model = model
        self.penalizer_coef = penalizer_coef
        self.time_unit_days = time_unit_days

    def _check_hyperparameters(self) -> None:
        if self.model not in _MODELS:
            raise ValueError(f"model must be one of {list(_MODELS)}, got {self.model!r}.")
        super()._check_hyperparameters()

    def _row_log_likelihood(
        self, params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """FHL (2005) eq. 6; MBG/NBD with ``model="mbg"`` (see :func:`_log_likelihood`)."""
        return _log_likelihood(params, x, t_x, T, mbg=self.model == "mbg")

    def probability_alive(self, x: Any, t_x: Any, T: Any) -> np.ndarray | float:
        """P(alive at T | x, t_x, T).

        BG/NBD (Fader, Hardie & Lee 2008, note "Computing P(alive) using the BG/NBD model";
        also FHL 2005 eq. 6 read as "alive term / total")::

            P(alive) = 1 / (1 + delta_{x>0} * a / (b + x - 1)
                                * ((alpha + T) / (alpha + t_x))**(r + x))

        MBG/NBD (Batislam et al. 2007) replaces ``delta_{x>0} * a / (b + x - 1)`` by
        ``a / (b + x)``, so one-time buyers are not certainly alive.
        """
        params = self._fitted_params("probability_alive")
        x, t_x, T = _check_rfm(x, t_x, T)
        return _scalar_or_array(_probability_alive(params, x, t_x, T, mbg=self.model == "mbg"))

    def conditional_expected_purchases(
        self, t: Any, x: Any, t_x: Any, T: Any
    ) -> np.ndarray | float:
        """E[Y(t) | x, t_x, T]: expected purchases in (T, T + t] (FHL 2005 eq. 10).

        With b' = b + x (MBG/NBD: b + x + 1, the posterior of p among the alive)::

            E = (a + b' - 1) / (a - 1)
                * [1 - ((alpha+T)/(alpha+T+t))**(r+x) * 2F1(r+x, b'; a+b'-1; t/(alpha+T+t))]
                * P(alive)

        It is the mean over p ~ Beta(a, b') of what a customer alive at T buys,
        ``(1/p) * [1 - ((alpha+T)/(alpha+T+p*t))**(r+x)]``; see :func:`_expected_if_alive` for
        how it is evaluated where one closed form alone overflows.
        """
        params = self._fitted_params("conditional_expected_purchases")
        t_arr = _check_horizon("t", t)
        x, t_x, T = _check_rfm(x, t_x, T)
        t_arr, x, t_x, T = np.broadcast_arrays(t_arr, x, t_x, T)
        r, alpha, a, b = params
        b_post = b + x + (1.0 if self.model == "mbg" else 0.0)
        expected = _expected_if_alive(r, alpha, a, b_post, x, T, t_arr)
        p_alive = _probability_alive(params, x, t_x, T, mbg=self.model == "mbg")
        return _scalar_or_array(expected * p_alive)

    def probability_no_purchase(
        self, horizon: Any, x: Any, t_x: Any, T: Any
    ) -> np.ndarray | float:
        """P(no purchase in (T, T + horizon] | x, t_x, T).

        In BG/NBD (FHL 2005, section 2, assumptions (ii)-(iv); also MBG/NBD) dropout can only
        happen immediately after a purchase. A customer alive at T who makes no purchase in the
        window therefore cannot drop out inside it, and "no purchase" is simply "the next
        exponential inter-purchase time exceeds the horizon", probability exp(-lambda h),
        whatever p is. From the alive term of eq. 3, (1-p)^x lambda^x exp(-lambda T), the posterior
        of lambda among the alive is Gamma(r + x, alpha + T), so
        E[exp(-lambda h) | alive] = ((alpha + T) / (alpha + T + h))**(r + x). A customer who is
        already inactive buys nothing. Hence::

            P(no purchase) = (1 - P(alive)) + P(alive) * ((alpha + T) / (alpha + T + h))**(r + x)

        It is 1 at h = 0 and falls towards 1 - P(alive) as the horizon grows.
        """
        params = self._fitted_params("probability_no_purchase")
        h = _check_horizon("horizon", horizon)
        x, t_x, T = _check_rfm(x, t_x, T)
        h, x, t_x, T = np.broadcast_arrays(h, x, t_x, T)
        r, alpha, _, _ = params
        p_alive = _probability_alive(params, x, t_x, T, mbg=self.model == "mbg")
        # 1 - ((alpha+T)/(alpha+T+h))^(r+x), accurate for tiny horizons too.
        p_purchase_if_alive = -np.expm1(-(r + x) * np.log1p(h / (alpha + T)))
        return _scalar_or_array(1.0 - p_alive * p_purchase_if_alive)

class ParetoNBDModel(_BuyTillYouDieModel):
    """Pareto/NBD model (Schmittlein, Morrison & Colombo 1987, Management Science 33(1), 1-24).

    While alive a customer buys at rate lambda ~ Gamma(r, alpha) and dies at an exponential time
    with rate mu ~ Gamma(s, beta), so, unlike BG/NBD, dropout can happen at any moment and
    one-time buyers who have been silent for long are not certainly alive. The likelihood follows
    Fader & Hardie (2005), "A Note on Deriving the Pareto/NBD Model and Related Expressions".

    Parameters (keyword-only, stored unchanged): ``penalizer_coef`` and ``time_unit_days`` as in
    :class:`BetaGeoModel`. Fitted attributes: ``params_`` (dict r, alpha, s, beta),
    ``log_likelihood_``, ``n_customers_``, ``converged_``.
    """

    _param_names = ("r", "alpha", "s", "beta")

    def __init__(self, *, penalizer_coef: float = 0.0, time_unit_days: float = 7) -> None:
        self.penalizer_coef = penalizer_coef
        self.time_unit_days = time_unit_days

    def _row_log_likelihood(
        self, params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        """log L = log A1 + log(alive term + dead term), see :func:`_pareto_log_terms`."""
        r, alpha, s, beta = params
        log_a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        log_alive, log_dead = _pareto_log_terms(params, x, t_x, T)
        return log_a1 + np.logaddexp(log_alive, log_dead)

    def probability_alive(self, x: Any, t_x: Any, T: Any) -> np.ndarray | float:
        """P(alive at T | x, t_x, T) = alive term / (alive term + dead term) of the likelihood."""
        params = self._fitted_params("probability_alive")
        x, t_x, T = _check_rfm(x, t_x, T)
        log_alive, log_dead = _pareto_log_terms(params, x, t_x, T)
        return _scalar_or_array(expit(log_alive - log_dead))

    def conditional_expected_purchases(
        self, t: Any, x: Any, t_x: Any, T: Any
    ) -> np.ndarray | float:
        """E[Y(t) | x, t_x, T] (Schmittlein et al. 1987; Fader & Hardie 2005 note)::

            E = (r + x) (beta + T) / ((alpha + T) (s - 1))
                * [1 - ((beta + T) / (beta + T + t))**(s - 1)]
                * P(alive)

        with the s -> 1 limit (r + x) / (alpha + T) * (beta + T) * log((beta + T + t) / (beta + T)).
        """
        params = self._fitted_params("conditional_expected_purchases")
        t_arr = _check_horizon("t", t)
        x, t_x, T = _check_rfm(x, t_x, T)
        t_arr, x, t_x, T = np.broadcast_arrays(t_arr, x, t_x, T)
        r, alpha, s, beta = params
        log_growth = np.log1p(t_arr / (beta + T))
        # [1 - exp(-(s-1) L)] / (s - 1), continuous through s = 1.
        if abs(s - 1.0) < 1e-12:
            lifetime = log_growth
        else:
            lifetime = -np.expm1(-(s - 1.0) * log_growth) / (s - 1.0)
        expected = (r + x) * (beta + T) / (alpha + T) * lifetime
        log_alive, log_dead = _pareto_log_terms(params, x, t_x, T)
        return _scalar_or_array(expected * expit(log_alive - log_dead))

    def probability_no_purchase(
        self, horizon: Any, x: Any, t_x: Any, T: Any
    ) -> np.ndarray | float:
        """P(no purchase in (T, T + horizon] | x, t_x, T).

        Among the alive the posterior is lambda ~ Gamma(r + x, alpha + T), mu ~ Gamma(s, beta + T)
        (independent). Here death can come at any time, so the first purchase after T happens at u
        only if the customer is still alive then; its density is E[lambda exp(-(lambda + mu) u)]::

            P(purchase in window | alive) = int_T^{T+h} (r+x) (alpha+T)^(r+x) (beta+T)^s
                                            (alpha+tau)^-(r+x+1) (beta+tau)^-s dtau

            P(no purchase) = 1 - P(alive) * P(purchase in window | alive)

        The integral is evaluated in closed form with :func:`_log_tail_integral`.
        """
        params = self._fitted_params("probability_no_purchase")
        h = _check_horizon("horizon", horizon)
        x, t_x, T = _check_rfm(x, t_x, T)
        h, x, t_x, T = np.broadcast_arrays(h, x, t_x, T)
        r, alpha, s, beta = params
        log_alive, log_dead = _pareto_log_terms(params, x, t_x, T)
        p = r + x + 1.0
        from_T = _log_tail_integral(p, s, alpha, beta, T)
        from_end = _log_tail_integral(p, s, alpha, beta, T + h)
        log_buy = (np.log(r + x) + (r + x) * np.log(alpha + T) + s * np.log(beta + T)
                   + _log_diff_exp(from_T, from_end))
        return _scalar_or_array(1.0 - expit(log_alive - log_dead) * np.exp(log_buy))


# ---------------------------------------------------------------------- maths


def _log_likelihood(
    params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, *, mbg: bool
) -> np.ndarray:
    """Log of FHL (2005) eq. 6, vectorised; with ``mbg`` the MBG/NBD likelihood.

    eq. 6 is L = A1 * A2 * (A3 + delta_{x>0} * A4) with
    A1 = Gamma(r+x) alpha^r / Gamma(r), A2 = B(a, b+x) / B(a, b), A3 = (alpha+T)^-(r+x) and
    A4 = a / (b+x-1) * (alpha+t_x)^-(r+x), using B(a+1, b+x-1) / B(a, b+x) = a / (b+x-1).
    MBG/NBD (Batislam et al. 2007) has B(a, b+x+1) in A2, a / (b+x) in A4, and no delta: the
    dropout term is present for x = 0 too. The sum A3 + A4 is taken with log-sum-exp.
    """
    r, alpha, a, b = params
    b_alive = b + x + (1.0 if mbg else 0.0)
    has_dropout_term = np.ones(x.shape, dtype=bool) if mbg else x > 0
    log_a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    log_a2 = betaln(a, b_alive) - betaln(a, b)
    log_a3 = -(r + x) * np.log(alpha + T)
    safe_b = np.where(has_dropout_term, b_alive - 1.0, 1.0)
    log_a4 = np.where(
        has_dropout_term,
        np.log(a) - np.log(safe_b) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return log_a1 + log_a2 + np.logaddexp(log_a3, log_a4)


def _expected_if_alive(
    r: float, alpha: float, a: float, b_post: np.ndarray, x: np.ndarray, T: np.ndarray,
    t: np.ndarray,
) -> np.ndarray:
    """E[purchases in (T, T + t] | alive at T] under BG/NBD: the mean over p ~ Beta(a, b_post) of
    ``h(p) = (1/p) * [1 - (1 + p*s)**-(r+x)]`` with s = t / (alpha + T) (FHL 2005 eq. 10 without
    its P(alive) factor), i.e. ``(a+b'-1)/(a-1) * [1 - (1-z)**(r+x) 2F1(r+x, b'; a+b'-1; z)]`` with
    z = t / (alpha + T + t).

    Two evaluations, the second used where the first fails:

    1. Euler's transformation ``(1-z)**(a-1) 2F1(a-1, a+b'-1-r-x; a+b'-1; z)``, whose series stays
       small for heavy buyers (large x);
    2. Gauss-Legendre quadrature of h over the quantiles of Beta(a, b') (:func:`_quantile_rule`).

    The closed form breaks where the fit makes dropout nearly homogeneous (a and b in the
    hundreds of thousands, a maximum-likelihood boundary real shops reach): ``(1-z)**(a-1)``
    underflows to 0 while the series overflows, and 0 * inf is NaN. It also breaks for heavy
    buyers far ahead (z near 1), and at a = 1 it is 0/0. The plain form
    ``(1-z)**(r+x) 2F1(r+x, b'; ...)`` is no way out: where Euler's fails it is NaN or, worse,
    finite and wrong by a percent. Against mpmath on a grid of a from 0.3 to 1.4e5 and b to
    1.5e7 (tests/models/test_btyd.py) the result is within 2e-6 of the exact mean.

    A result counts as failed unless it is finite and within what h allows: at most
    h(0) = (r+x) s (nobody drops out) and at least h(1) = 1 - (1+s)**-(r+x), up to rounding.
    """
    shape = np.shape(t)
    b_post, x, T, t = (np.ravel(v).astype(float) for v in np.broadcast_arrays(b_post, x, T, t))
    k = r + x
    s = t / (alpha + T)
    upper = k * s
    lower = -np.expm1(-k * np.log1p(s))
    z = t / (alpha + T + t)
    c = a + b_post - 1.0

    def fits(value: np.ndarray) -> np.ndarray:
        slack = 1e-7 * upper
        return np.isfinite(value) & (value >= lower - slack) & (value <= upper + slack)

    with np.errstate(all="ignore"):
        expected = c / (a - 1.0) * (1.0 - np.power(1.0 - z, a - 1.0)
                                    * hyp2f1(a - 1.0, c - r - x, c, z))
    failed = ~fits(expected)
    if failed.any():
        expected[failed] = _expected_by_quadrature(a, b_post[failed], k[failed], s[failed])
    if not np.all(fits(expected)):
        raise FloatingPointError(
            f"E[purchases | alive] left its bounds for r={r}, alpha={alpha}, a={a}; please "
            "report the parameters and the (x, T, t) it failed on.")
    return np.clip(expected, lower, upper).reshape(shape)


def _quantile_rule(per_piece: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights (summing to 1) on (0, 1): Gauss-Legendre on pieces that shrink
    geometrically towards both ends, so a feature of h at a far quantile of the Beta (a heavy
    buyer's h falls at p ~ 1 / ((r+x) s), which can sit at q ~ 1e-4) is still resolved."""
    tails = 10.0 ** -np.arange(14, 0, -1.0)  # 1e-14 .. 0.1
    edges = np.concatenate([[0.0], tails, [0.3, 0.5, 0.7], 1.0 - tails[::-1], [1.0]])
    base, weights = np.polynomial.legendre.leggauss(per_piece)
    lo, hi = edges[:-1, None], edges[1:, None]
    nodes = lo + (hi - lo) * 0.5 * (base + 1.0)
    return nodes.ravel(), ((hi - lo) * 0.5 * weights).ravel()


_QUAD_NODES, _QUAD_WEIGHTS = _quantile_rule()


def _expected_by_quadrature(a: float, b_post: np.ndarray, k: np.ndarray,
                            s: np.ndarray) -> np.ndarray:
    """Mean of h(p) = (1/p) [1 - (1 + p s)**-k] over p ~ Beta(a, b_post), as the integral of h over
    the quantiles q of the Beta: one set of nodes per distinct b_post (per frequency)."""
    out = np.empty(len(k))
    for value in np.unique(b_post):
        rows = b_post == value
        p = betaincinv(a, value, _QUAD_NODES)[None, :]
        kr, u = k[rows, None], p * s[rows, None]
        with np.errstate(invalid="ignore", divide="ignore", under="ignore"):
            h = -np.expm1(-kr * np.log1p(u)) / p
        # Where p s is tiny (a << 1 piles the Beta at p ~ 1e-308, and p s is then subnormal)
        # the quotient loses its digits: two terms of h's series in p s are exact there.
        h = np.where(u < 1e-8, kr * s[rows, None] * (1.0 - 0.5 * (kr + 1.0) * u), h)
        out[rows] = h @ _QUAD_WEIGHTS
    return out


def _probability_alive(
    params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, *, mbg: bool
) -> np.ndarray:
    """P(alive) = A3 / (A3 + A4) in the notation of :func:`_log_likelihood`, via the log-odds."""
    r, alpha, a, b = params
    b_alive = b + x + (1.0 if mbg else 0.0)
    has_dropout_term = np.ones(np.shape(x), dtype=bool) if mbg else x > 0
    safe_b = np.where(has_dropout_term, b_alive - 1.0, 1.0)
    log_odds_dead = np.log(a) - np.log(safe_b) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x))
    return np.where(has_dropout_term, expit(-log_odds_dead), 1.0)


def _pareto_log_terms(
    params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Log of the two terms of the Pareto/NBD likelihood after the common factor A1.

    L = A1 * [(alpha+T)^-(r+x) (beta+T)^-s
              + s int_{t_x}^T (alpha+tau)^-(r+x) (beta+tau)^-(s+1) dtau]
    with A1 = Gamma(r+x) alpha^r beta^s / Gamma(r): alive at T, or died at tau in (t_x, T]. The
    integral is Fader & Hardie's (2005 note) A0 times (r+s+x)/s, the 2F1 difference.
    """
    r, alpha, s, beta = params
    log_alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
    p = r + x
    log_dead = np.log(s) + _log_diff_exp(
        _log_tail_integral(p, s + 1.0, alpha, beta, t_x),
        _log_tail_integral(p, s + 1.0, alpha, beta, T),
    )
    return log_alive, log_dead


def _log_tail_integral(p: Any, q: Any, alpha: float, beta: float, t: Any) -> np.ndarray:
    """log of int_t^inf (alpha + tau)^-p (beta + tau)^-q dtau, for p + q > 1.

    With m = max(alpha, beta) carrying its exponent k (p for alpha, q for beta), the other
    exponent j and z = |alpha - beta| / (m + t), the integral is
    (m + t)^-(p+q-1) / (p+q-1) * 2F1(p+q-1, j; p+q; z) (the form of Fader & Hardie's A0).
    Euler's transformation gives 2F1(p+q-1, j; p+q; z) = (1-z)^(1-j) 2F1(1, k; p+q; z), a series
    with bounded terms that stays accurate for heavy buyers.
    """
    p, q, t = np.broadcast_arrays(np.asarray(p, float), np.asarray(q, float), np.asarray(t, float))
    if alpha >= beta:
        m, k, j = alpha, p, q
    else:
        m, k, j = beta, q, p
    z = np.broadcast_to(abs(alpha - beta) / (m + t), p.shape)
    total = p + q
    return -(total - 1.0) * np.log(m + t) - np.log(total - 1.0) + (1.0 - j) * np.log1p(-z) + (
        np.log(_hyp2f1_one(k, total, z)))


def _hyp2f1_one(b: np.ndarray, c: np.ndarray, z: np.ndarray) -> np.ndarray:
    """2F1(1, b; c; z) for 0 <= z < 1, c > b > 0: by Euler's integral, the mean of 1 / (1 - z U)
    over U ~ Beta(b, c - b), so it lies in [1, 1 / (1 - z)].

    scipy's hyp2f1 leaves that range in two places met with real parameters (scipy 1.17): where
    c - 1 - b is an integer and z > 0.9 its 1 - z transformation degenerates (2F1(1, 1.05; 101.05;
    0.976) gives inf, mpmath 1.0103), and where c - b is small and z near 1 it gives NaN
    (2F1(1, 300.05; 301.1; 0.9976), mpmath 216.59). The first is smooth in c, so the mean at
    c +- 1e-7 c stands in (exact to ~1e-14); what still fails is integrated over the Beta's
    quantiles (:func:`_quantile_rule`).
    """
    shape = np.shape(c)
    b, c, z = (np.ravel(np.broadcast_to(v, shape)).astype(float) for v in (b, c, z))
    upper = 1.0 / (1.0 - z)

    def fails(value: np.ndarray) -> np.ndarray:
        return ~(np.isfinite(value) & (value >= 1.0 - 1e-12) & (value <= upper * (1 + 1e-12)))

    with np.errstate(all="ignore"):
        value = hyp2f1(1.0, b, c, z)
        bad = fails(value)
        if bad.any():
            nudge = 1e-7 * c[bad]
            value[bad] = 0.5 * (hyp2f1(1.0, b[bad], c[bad] + nudge, z[bad])
                                + hyp2f1(1.0, b[bad], c[bad] - nudge, z[bad]))
            bad = fails(value)
    for i in np.flatnonzero(bad):
        u = betaincinv(b[i], c[i] - b[i], _QUAD_NODES)
        value[i] = (1.0 / (1.0 - z[i] * u)) @ _QUAD_WEIGHTS
    return np.clip(value, 1.0, upper).reshape(shape)


def _log_diff_exp(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """log(exp(upper) - exp(lower)) for upper >= lower; -inf where they are equal."""
    with np.errstate(divide="ignore"):
        return upper + np.log(-np.expm1(np.minimum(lower - upper, 0.0)))


# ----------------------------------------------------------------- validation


def _check_rfm(
    x: Any, t_x: Any, T: Any, *, one_dimensional: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return float arrays for frequency, recency and T, or raise a ValueError saying where."""
    vectors = {}
    for name, values in (("frequency", x), ("recency", t_x), ("T", T)):
        try:
            vectors[name] = np.asarray(values, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"The {name} vector must be numeric: {exc}") from None
    if one_dimensional:
        for name, arr in vectors.items():
            if arr.ndim != 1:
                raise ValueError(
                    f"The {name} vector must be one-dimensional, got shape {arr.shape}."
                )
        lengths = [arr.size for arr in vectors.values()]
        if len(set(lengths)) != 1:
            raise ValueError(
                "The frequency, recency and T vectors must have the same length; got "
                f"{lengths[0]}, {lengths[1]} and {lengths[2]}."
            )
    try:
        x, t_x, T = np.broadcast_arrays(*vectors.values())
    except ValueError:
        shapes = ", ".join(str(arr.shape) for arr in vectors.values())
        raise ValueError(
            f"The frequency, recency and T vectors cannot be broadcast together (shapes {shapes})."
        ) from None

    def fail(problem: str, bad: np.ndarray, fix: str) -> None:
        if not bad.any():
            return
        flat = bad.ravel()
        row = int(np.flatnonzero(flat)[0])
        raise ValueError(
            f"{problem}: {int(flat.sum())} of {flat.size} rows, e.g. row {row} "
            f"(frequency={float(x.ravel()[row])!r}, recency={float(t_x.ravel()[row])!r}, "
            f"T={float(T.ravel()[row])!r}). {fix}"
        )

    for name, arr in (("frequency", x), ("recency", t_x), ("T", T)):
        fail(f"There exist non-finite values (NaN or inf) in the {name} vector", ~np.isfinite(arr),
             "Drop or fill these customers before fitting or scoring.")
    fail("There exist negative values in the frequency vector", x < 0,
         "Frequency counts repeat purchases and is 0 or more.")
    fail("There exist non-integer values in the frequency vector", x != np.round(x),
         "Frequency counts repeat purchase days and must be a whole number.")
    fail("There exist negative values in the recency vector", t_x < 0,
         "Recency is the time from the first to the last purchase and is 0 or more.")
    fail("Some values in recency vector are larger than T vector", t_x > T,
         "Recency (time from first to last purchase) cannot exceed T (time from first purchase "
         "to the end of the period); compute both with the same cutoff.")
    fail("There exist non-zero recency values when frequency is zero", (x == 0) & (t_x != 0),
         "A customer without repeat purchases has recency 0.")
    fail("There exist zero recency values when frequency is positive", (x > 0) & (t_x == 0),
         "Repeat purchases fall on days after the first purchase, so recency must be > 0.")
    return x, t_x, T


def _check_horizon(name: str, values: Any) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    bad = ~np.isfinite(arr) | (arr < 0)
    if bad.any():
        row = int(np.flatnonzero(bad.ravel())[0])
        raise ValueError(
            f"{name} must be finite and >= 0: {int(bad.sum())} of {bad.size} values are not, "
            f"e.g. index {row} ({name}={float(arr.ravel()[row])!r})."
        )
    return arr


def _scalar_or_array(values: np.ndarray) -> np.ndarray | float:
    values = np.asarray(values, dtype=float)
    return float(values) if values.ndim == 0 else values
