"""The uplift learners, in one registry ordered from the simplest to the richest.

Each estimates tau_a(x) = P(Y=1 | x, a) - P(Y=1 | x, none) for every action a from randomised
campaign rows, and takes per-row ``sample_weight`` (older campaigns count less, see
``uplift.campaign_weights``) and ``groups`` (the campaign of each row: the DR-learner's known
propensity is the action's share in that campaign) and ``strata``: the action whose
randomisation each row belongs to. A plan holds its control group out per action (and tier), so a
customer held out from ``coupon_20`` is a comparison for ``coupon_20``'s customers only, who were
chosen for it, and not for ``cs_outreach``'s, who were chosen otherwise; a campaign that
randomised across every action (its control rows carry no action) has the stratum ``none`` and
its controls serve every action. Each action's effect is learned against its matched control rows
(``_MetaLearner.matched_control``).

Regularised linear learners (small, noisy effects are where they often beat trees):

* ``s_logistic``: one L2-penalised logistic regression over every arm, with the action as
  indicators and action x feature interactions, so each action's effect is the shared model plus
  a penalised deviation (heterogeneity is shrunk toward a common effect);
* ``t_logistic``: one L2-penalised logistic regression per arm, subtracted;
* ``dr_learner``: the DR-learner (Kennedy 2023, "Towards optimal doubly robust estimation of
  heterogeneous causal effects", Electronic Journal of Statistics 17(2), sec. 3, with
  cross-fitting): penalised logistic outcome models per arm fitted on one half of the rows give,
  on the other half, the pseudo-outcome
  phi = mu_a(x) - mu_0(x) + T (Y - mu_a(x)) / e - (1 - T)(Y - mu_0(x)) / (1 - e)
  with e the known propensity (the action's share among its campaign's action and control rows);
  a ridge regression of phi on the features is the effect.

Every linear model sees standardised features (median-imputed with a missing flag, clipped to
+-5 standard deviations, categories one-hot) and chooses its L2 strength by 3-fold
cross-validation (log loss for the logistic models, leave-one-out error for the ridge).

Gradient-boosted trees (LightGBM), as before:

* ``s_learner``: per action, one outcome model over its treated and matched control rows with
  the action as an input;
* ``t_learner``: one outcome model per arm, subtracted;
* ``x_learner`` (Kuenzel, Sekhon, Bickel & Yu 2019, "Metalearners for estimating heterogeneous
  treatment effects using machine learning", PNAS 116(10), eqs. 5-9): effects imputed from the
  other arm's outcome model, regressed per arm and blended by the propensity.

``LEARNERS`` maps each name to its class in that order (simplest first): the chooser
(``uplift.evaluate_learners``) prefers an earlier one unless a later one is better beyond
noise, and ``churnguard uplift score --learner`` lists exactly these names.

>>> list(LEARNERS)
['s_logistic', 't_logistic', 'dr_learner', 's_learner', 't_learner', 'x_learner']
>>> rng = np.random.default_rng(0)
>>> x = pd.DataFrame({"x1": rng.random(4000)})
>>> action = rng.choice(np.array(["none", "coupon"], dtype=object), 4000)
>>> y = (rng.random(4000) < 0.2 + 0.3 * (action == "coupon") * x["x1"]).astype(float)
>>> tau = TLogistic(random_state=0).fit(x, action, y, ["coupon"]).predict(
...     pd.DataFrame({"x1": [0.1, 0.9]}))
>>> bool(tau.loc[1, "coupon"] > tau.loc[0, "coupon"] + 0.1)
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import pandas as pd
from sklearn.exceptions import NotFittedError
from threadpoolctl import threadpool_limits

from churnguard.config import NO_ACTION
from churnguard.errors import ChurnguardError

__all__ = [
    "DRLearner",
    "matched_control",
    "LEARNERS",
    "SLearner",
    "SLogistic",
    "TLearner",
    "TLogistic",
    "UpliftError",
    "XLearner",
]


class UpliftError(ChurnguardError, ValueError):
    """The store holds no campaign history usable for uplift (with the reason and the fix)."""

    code = "cannot_estimate_uplift"


# -- gradient-boosted trees --------------------------------------------------------------------
def _classifier(seed: int):
    import lightgbm as lgb

    # Effects are small next to the outcome's variance: shallow, strongly regularised trees.
    return lgb.LGBMClassifier(n_estimators=100, learning_rate=0.05, num_leaves=15,
                              min_child_samples=100, subsample=0.8, subsample_freq=1,
                              colsample_bytree=0.8, reg_lambda=5.0, random_state=seed,
                              n_jobs=0, verbose=-1)


def _regressor(seed: int):
    import lightgbm as lgb

    return lgb.LGBMRegressor(n_estimators=100, learning_rate=0.05, num_leaves=7,
                             min_child_samples=200, subsample=0.8, subsample_freq=1,
                             colsample_bytree=0.8, reg_lambda=5.0, random_state=seed,
                             n_jobs=0, verbose=-1)


def _prob(model, x, fallback: float) -> np.ndarray:
    if model is None:
        return np.full(len(x), fallback)
    return model.predict_proba(x)[:, 1]


def _fit_arm(x: pd.DataFrame, y: np.ndarray, w: np.ndarray, seed: int):
    """An outcome model for one arm; None when the arm's outcome does not vary."""
    if len(np.unique(y)) < 2:
        return None
    return _classifier(seed).fit(x, y, sample_weight=w)


def _rate(y: np.ndarray, w: np.ndarray) -> float:
    return float(np.average(y, weights=w)) if w.sum() > 0 else float(y.mean())


def matched_control(control: np.ndarray, strata: np.ndarray | None, a: str) -> np.ndarray:
    """The control rows that are a randomised comparison for action ``a``: those held out from
    ``a`` itself (stratum ``a``) or from a campaign randomised across every action (stratum
    ``none``); every control row when ``strata`` is None.

    >>> control = np.array([True, True, True, False])
    >>> matched_control(control, np.array(["a", "b", "none", "a"], dtype=object), "a").tolist()
    [True, False, True, False]
    """
    control = np.asarray(control, dtype=bool)
    if strata is None:
        return control
    strata = np.asarray(strata, dtype=object)
    return control & ((strata == a) | (strata == NO_ACTION))


class _MetaLearner:
    name: ClassVar[str]

    def __init__(self, *, random_state: int = 0) -> None:
        self.random_state = random_state

    def _check_fitted(self) -> None:
        if not hasattr(self, "actions_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit()")

    def fit(self, features: pd.DataFrame, action: np.ndarray, y: np.ndarray,
            actions: Sequence[str], *, sample_weight: np.ndarray | None = None,
            groups: np.ndarray | None = None, strata: np.ndarray | None = None
            ) -> _MetaLearner:
        """Learn each of ``actions`` against its matched control rows (action ``none``, see
        :func:`matched_control`); rows may carry a ``sample_weight``, a campaign (``groups``)
        and the action whose randomisation they belong to (``strata``; None: every row was
        randomised across every action). An action without a treated row, or without a control
        row matched to it, is not fitted (effect 0, listed in ``missing_actions_``)."""
        action = np.asarray(action, dtype=object)
        y = np.asarray(y, dtype=float)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        control = action == NO_ACTION
        if not control.any():
            raise UpliftError("the training rows hold no control customers; uplift needs a "
                              "randomised control group")
        self.features_ = list(features.columns)
        matched = {a: matched_control(control, strata, a) for a in actions}
        self.actions_ = [a for a in actions if (action == a).any() and matched[a].any()]
        self.missing_actions_ = [a for a in actions if a not in self.actions_]
        self.base_rate_ = _rate(y[control], w[control])
        # One BLAS thread: the linear learners make tens of thousands of small matrix-vector
        # products, where a second BLAS thread costs more in hand-offs than it computes, and
        # on a busy machine its spinning made the six-learner comparison ~3x slower (measured
        # in docs/intervene.md, "Speed"). The trees use OpenMP, which this leaves alone.
        with threadpool_limits(limits=1, user_api="blas"):
            self._fit_shared(features, action, y, w, control, groups)
            self.arms_ = {}
            for k, a in enumerate(self.actions_):
                self.arms_[a] = self._fit_action(features, y, w, action == a, matched[a],
                                                 self.random_state + k, a, groups)
        return self

    def _fit_shared(self, x, action, y, w, control, groups) -> None:
        """What every action shares (the control arm's model, a pooled model)."""

    def predict(self, features: pd.DataFrame) -> pd.DataFrame:
        """Estimated effect of each action on P(outcome), one column per fitted action; actions
        without any training row are 0 (unknown), listed in ``missing_actions_``."""
        self._check_fitted()
        x = features[self.features_]
        out = {a: self._predict_action(x, a) for a in self.actions_}
        out.update({a: np.zeros(len(x)) for a in self.missing_actions_})
        return pd.DataFrame(out, index=features.index)


class TLearner(_MetaLearner):
    """tau_a(x) = mu_a(x) - mu_0(x), one gradient-boosted outcome model per arm."""

    name: ClassVar[str] = "t_learner"

    def _fit_shared(self, x, action, y, w, control, groups):
        self.mu0_ = _fit_arm(x[control], y[control], w[control], self.random_state)

    def _fit_action(self, x, y, w, treated, control, seed, a, groups):
        return {"mu1": _fit_arm(x[treated], y[treated], w[treated], seed),
                "rate": _rate(y[treated], w[treated])}

    def _predict_action(self, x, a):
        arm = self.arms_[a]
        return _prob(arm["mu1"], x, arm["rate"]) - _prob(self.mu0_, x, self.base_rate_)


class XLearner(_MetaLearner):
    """Kuenzel et al. (2019): D1 = Y1 - mu0(X1) on the treated, D0 = mu1(X0) - Y0 on the
    controls; tau1, tau0 regress them; tau(x) = g tau0(x) + (1 - g) tau1(x) with g the share of
    the arm's rows that were treated (their eq. 9 with a constant propensity)."""

    name: ClassVar[str] = "x_learner"

    def fit(self, features, action, y, actions, *, sample_weight=None, groups=None,
            strata=None, outcome_models: TLearner | None = None):
        """``outcome_models``: a T-learner fitted on the same rows (and weights), whose per-arm
        outcome models are the X-learner's first stage (saves refitting them)."""
        self._stage1 = outcome_models
        try:
            return super().fit(features, action, y, actions, sample_weight=sample_weight,
                               groups=groups, strata=strata)
        finally:
            del self._stage1

    def _fit_shared(self, x, action, y, w, control, groups):
        self.mu0_ = (self._stage1.mu0_ if self._stage1 is not None
                     else _fit_arm(x[control], y[control], w[control], self.random_state))

    def _fit_action(self, x, y, w, treated, control, seed, a, groups):
        mu1 = (self._stage1.arms_[a]["mu1"] if self._stage1 is not None
               else _fit_arm(x[treated], y[treated], w[treated], seed))
        rate = _rate(y[treated], w[treated])
        d1 = y[treated] - _prob(self.mu0_, x[treated], self.base_rate_)
        d0 = _prob(mu1, x[control], rate) - y[control]
        g = treated.sum() / (treated.sum() + control.sum())
        return {"tau1": _regressor(seed).fit(x[treated], d1, sample_weight=w[treated]),
                "tau0": _regressor(seed + 1000).fit(x[control], d0, sample_weight=w[control]),
                "g": float(g)}

    def _predict_action(self, x, a):
        arm = self.arms_[a]
        return arm["g"] * arm["tau0"].predict(x) + (1 - arm["g"]) * arm["tau1"].predict(x)


_ARM = "__action"


def _with_arm(x: pd.DataFrame, arm: object, categories: list[str]) -> pd.DataFrame:
    """The features plus the action as a categorical column (for the pooled outcome model)."""
    values = np.broadcast_to(np.asarray(arm, dtype=object), (len(x),))
    return x.assign(**{_ARM: pd.Categorical(values, categories=categories)})


class SLearner(_MetaLearner):
    """tau_a(x) = mu(x, a) - mu(x, none) from a gradient-boosted outcome model with the action
    as an input (Kuenzel et al. 2019, the S-learner), one per action over its treated and
    matched control rows (``matched_control``): sample-efficient, but the trees may ignore a weak
    action input. (One model over every arm would set the customers a plan chose for one action
    against the control rows held out from another, and trees do not reliably separate the
    strata.)"""

    name: ClassVar[str] = "s_learner"

    def _fit_action(self, x, y, w, treated, control, seed, a, groups):
        levels = [NO_ACTION, a]
        rows = treated | control
        arm = np.where(treated[rows], a, NO_ACTION).astype(object)
        return {"levels": levels, "model": _classifier(seed).fit(
            _with_arm(x[rows], arm, levels), y[rows], sample_weight=w[rows])}

    def _predict_action(self, x, a):
        arm = self.arms_[a]

        def prob(level):
            return arm["model"].predict_proba(_with_arm(x, level, arm["levels"]))[:, 1]

        return prob(a) - prob(NO_ACTION)


# -- regularised linear learners ---------------------------------------------------------------
# Inverse L2 strengths tried by cross-validation (sklearn's C), from very strong to weak.
_CS = np.logspace(-3, 1, 7)
_ALPHAS = np.logspace(-1, 5, 13)
_CLIP = 5.0


class _Design:
    """Features for a linear model: numeric columns median-imputed (with a missing flag where a
    value can be missing), standardised and clipped to +-5 sd (so one heavy-tailed customer
    cannot lever the fit); categorical columns one-hot over the training categories. Constant
    columns are dropped.

    >>> d = _Design().fit(pd.DataFrame({"n": [1.0, 3.0, None], "c": ["a", "b", "a"]}))
    >>> d.names_
    ['n', 'n_missing', 'c=a', 'c=b']
    >>> d.transform(pd.DataFrame({"n": [3.0, None], "c": ["z", "a"]})).round(2).tolist()
    [[1.22, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]]
    """

    def fit(self, x: pd.DataFrame) -> _Design:
        self.numeric_, self.flags_, self.categories_, self.names_ = [], [], {}, []
        for column in x.columns:
            s = x[column]
            if isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object \
                    or pd.api.types.is_string_dtype(s.dtype):
                levels = sorted({str(v) for v in s.dropna()})
                if len(levels) >= 2 or (levels and s.isna().any()):
                    self.categories_[column] = levels
                continue
            v = pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
            missing = np.isnan(v)
            if missing.all():
                continue
            median = float(np.median(v[~missing]))
            filled = np.where(missing, median, v)
            if filled.std() > 0:
                self.numeric_.append((column, median, float(filled.mean()), float(filled.std())))
            if missing.any():
                self.flags_.append(column)
        self.names_ = ([c for c, *_ in self.numeric_]
                       + [f"{c}_missing" for c in self.flags_]
                       + [f"{c}={v}" for c, levels in self.categories_.items() for v in levels])
        return self

    def transform(self, x: pd.DataFrame) -> np.ndarray:
        parts = []
        for column, median, mean, sd in self.numeric_:
            v = pd.to_numeric(x[column], errors="coerce").to_numpy(dtype=float)
            parts.append(np.clip((np.where(np.isnan(v), median, v) - mean) / sd, -_CLIP, _CLIP))
        for column in self.flags_:
            parts.append(pd.to_numeric(x[column], errors="coerce").isna().to_numpy(dtype=float))
        for column, levels in self.categories_.items():
            values = x[column].astype(object).map(lambda v: None if pd.isna(v) else str(v))
            parts.extend((values == level).to_numpy(dtype=float) for level in levels)
        if not parts:
            return np.zeros((len(x), 0))
        return np.column_stack(parts)


def _log_loss(y: np.ndarray, p: np.ndarray, w: np.ndarray) -> float:
    """Weighted mean log loss, probabilities clipped away from 0 and 1 as scikit-learn does."""
    eps = np.finfo(p.dtype).eps
    p = np.clip(p, eps, 1 - eps)
    return float(-np.average(y * np.log(p) + (1 - y) * np.log1p(-p), weights=w))


def _logistic(X: np.ndarray, y: np.ndarray, w: np.ndarray, seed: int):
    """An L2-penalised logistic regression whose strength is chosen by 3-fold cross-validated
    log loss; None when the outcome does not vary (the caller uses the rate).

    The same choice as ``LogisticRegressionCV(Cs=_CS, cv=StratifiedKFold(3, shuffle=True,
    random_state=seed), scoring="neg_log_loss")`` with sample weights: per fold, the Cs from
    strong to weak, each fit warm-started from the previous one (scikit-learn's path); the C
    with the least weighted held-out log loss summed over folds; the refit on every row
    warm-started from the folds' mean coefficients at that C. It scores with NumPy and stops
    the Cs two rises past the least loss: the same C whenever the held-out loss has a single
    minimum along the path, as in every fit measured (docs/intervene.md, "Speed")."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    if len(np.unique(y)) < 2 or X.shape[1] == 0:
        return None
    if min(np.bincount(y.astype(int))) < 3:
        return LogisticRegression(C=float(_CS[0]), max_iter=1000).fit(X, y, sample_weight=w)
    folds = list(StratifiedKFold(3, shuffle=True, random_state=seed).split(X, y))
    models = [LogisticRegression(C=float(_CS[0]), max_iter=1000, warm_start=True)
              for _ in folds]
    loss = np.full(len(_CS), np.inf)
    coefs = np.zeros((len(_CS), X.shape[1] + 1))
    for j, c in enumerate(_CS):
        loss[j] = 0.0
        for (train, test), model in zip(folds, models, strict=True):
            model.C = float(c)
            model.fit(X[train], y[train], sample_weight=w[train])
            loss[j] += _log_loss(y[test], model.predict_proba(X[test])[:, 1], w[test])
            coefs[j] += np.r_[model.coef_.ravel(), model.intercept_]
        # The weak penalties are the slow fits (many solver iterations) and the held-out loss
        # of an L2 path rises steadily past its minimum: stop after two rises in a row.
        if j >= 2 + int(np.argmin(loss[: j + 1])):
            break
    best = int(np.argmin(loss))
    model = LogisticRegression(C=float(_CS[best]), max_iter=1000, warm_start=True)
    init = coefs[best] / len(folds)
    model.coef_, model.intercept_ = init[None, :-1], init[-1:]
    model.fit(X, y, sample_weight=w)
    model.C_ = float(_CS[best])  # the strength chosen, as LogisticRegressionCV names it
    return model


class TLogistic(_MetaLearner):
    """tau_a(x) = mu_a(x) - mu_0(x), one L2-penalised logistic regression per arm on
    standardised features (strength chosen by cross-validation)."""

    name: ClassVar[str] = "t_logistic"

    def _fit_shared(self, x, action, y, w, control, groups):
        self.design_ = _Design().fit(x)
        self._X = self.design_.transform(x)
        self.mu0_ = _logistic(self._X[control], y[control], w[control], self.random_state)

    def fit(self, features, action, y, actions, *, sample_weight=None, groups=None,
            strata=None):
        try:
            return super().fit(features, action, y, actions, sample_weight=sample_weight,
                               groups=groups, strata=strata)
        finally:
            self.__dict__.pop("_X", None)

    def _fit_action(self, x, y, w, treated, control, seed, a, groups):
        return {"mu1": _logistic(self._X[treated], y[treated], w[treated], seed),
                "rate": _rate(y[treated], w[treated])}

    def _predict_action(self, x, a):
        X = self.design_.transform(x)
        arm = self.arms_[a]
        return _prob(arm["mu1"], X, arm["rate"]) - _prob(self.mu0_, X, self.base_rate_)


class SLogistic(_MetaLearner):
    """One L2-penalised logistic regression over every arm: features, action indicators and
    action x feature interactions (strength chosen by cross-validation); tau_a(x) = mu(x, a) -
    mu(x, none). The penalty shrinks each action's deviation from the shared model, so the
    effects are heterogeneous only as far as the data insists."""

    name: ClassVar[str] = "s_logistic"

    def _rows(self, X: np.ndarray, arm: np.ndarray) -> np.ndarray:
        parts = [X]
        for a in self.actions_:
            t = (arm == a).astype(float)[:, None]
            parts += [t, t * X]
        return np.hstack(parts)

    def _fit_shared(self, x, action, y, w, control, groups):
        self.design_ = _Design().fit(x)
        keep = np.isin(action, [NO_ACTION, *self.actions_])
        X = self.design_.transform(x[keep])
        self.pooled_ = _logistic(self._rows(X, action[keep]), y[keep], w[keep],
                                 self.random_state)

    def _fit_action(self, x, y, w, treated, control, seed, a, groups):
        return {}

    def _predict_action(self, x, a):
        X = self.design_.transform(x)
        if self.pooled_ is None:
            return np.zeros(len(x))

        def prob(arm):
            rows = self._rows(X, np.full(len(x), arm, dtype=object))
            return self.pooled_.predict_proba(rows)[:, 1]

        return prob(a) - prob(NO_ACTION)


def _propensity(treated: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """P(T = 1) of each row among the action's and the control rows: the action's share in the
    row's campaign (known by design in a randomised campaign), kept within [0.01, 0.99]."""
    if groups is None:
        e = np.full(treated.size, treated.mean())
    else:
        g = pd.Series(treated.astype(float)).groupby(np.asarray(groups, dtype=object))
        e = g.transform("mean").to_numpy()
    return np.clip(e, 0.01, 0.99)


class DRLearner(_MetaLearner):
    """Kennedy's (2023) DR-learner with two-fold cross-fitting: penalised logistic outcome models
    fitted on one half give the other half's doubly robust pseudo-outcomes, which a ridge
    regression (strength by leave-one-out error) turns into tau_a(x)."""

    name: ClassVar[str] = "dr_learner"

    def _fit_shared(self, x, action, y, w, control, groups):
        self.design_ = _Design().fit(x)
        self._X = self.design_.transform(x)
        self._half = np.random.default_rng(self.random_state).permutation(len(y)) % 2
        # The control arm's cross-fitted predictions serve every action: fitted once per half.
        self._mu0 = np.empty(len(y))
        for h in (0, 1):
            fit_on = control & (self._half != h)
            m0 = _logistic(self._X[fit_on], y[fit_on], w[fit_on], self.random_state)
            out = self._half == h
            self._mu0[out] = _prob(m0, self._X[out], _rate(y[fit_on], w[fit_on])
                                   if fit_on.any() else self.base_rate_)

    def fit(self, features, action, y, actions, *, sample_weight=None, groups=None,
            strata=None):
        try:
            return super().fit(features, action, y, actions, sample_weight=sample_weight,
                               groups=groups, strata=strata)
        finally:
            for scratch in ("_X", "_half", "_mu0"):
                self.__dict__.pop(scratch, None)

    def _fit_action(self, x, y, w, treated, control, seed, a, groups):
        from sklearn.linear_model import RidgeCV

        rows = treated | control
        X, t, yy, ww = self._X[rows], treated[rows], y[rows], w[rows]
        half = self._half[rows]
        e = _propensity(t, None if groups is None else np.asarray(groups, dtype=object)[rows])
        mu0, mu1 = self._mu0[rows], np.empty(len(yy))
        for h in (0, 1):
            fit_on, out = half != h, half == h
            m1 = _logistic(X[fit_on & t], yy[fit_on & t], ww[fit_on & t], seed)
            mu1[out] = _prob(m1, X[out], _rate(yy[fit_on & t], ww[fit_on & t])
                             if (fit_on & t).any() else self.base_rate_)
        # Kennedy (2023), eq. (3): the doubly robust pseudo-outcome of the effect.
        phi = mu1 - mu0 + t * (yy - mu1) / e - (~t) * (yy - mu0) / (1 - e)
        if X.shape[1] == 0:
            return {"ridge": None, "ate": float(np.average(phi, weights=ww))}
        return {"ridge": RidgeCV(alphas=_ALPHAS).fit(X, phi, sample_weight=ww), "ate": None}

    def _predict_action(self, x, a):
        arm = self.arms_[a]
        if arm["ridge"] is None:
            return np.full(len(x), arm["ate"])
        return arm["ridge"].predict(self.design_.transform(x))


# The one registry, simplest first: the chooser's preference order and the CLI's list.
LEARNERS: dict[str, type[_MetaLearner]] = {
    cls.name: cls for cls in (SLogistic, TLogistic, DRLearner, SLearner, TLearner, XLearner)
}
