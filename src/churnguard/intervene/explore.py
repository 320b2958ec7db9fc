"""Exploration: a share of a plan's contacts assigned at random where the effects are least known.

A greedy plan gives each customer the action with the largest *estimated* margin, so it keeps
giving what already looks best and learns little about the rest. ``[intervene] explore_share``
(default 0.1, at most 0.5) of the plan's contacts are therefore *explored* (docs/intervene.md,
"Exploration"):

1. **What is known, per segment.** A segment is a risk tier. Each action's campaign-wide
   average effect (treated minus matched-control outcome rate within each randomisation
   context, pooled by precision: :func:`action_beliefs`) with its standard error ``s_a`` is
   the prior of that action's effect in every segment, widened by ``SEGMENT_SPREAD``
   (segments differ around the average: a hierarchical normal model with the between-segment
   spread fixed, Gelman et al., *Bayesian Data Analysis*, 3rd ed., sec. 5.4).
   The rows of churnguard's own plans carry the segment they were planned in, so each (segment,
   action) is updated with its own treated-vs-matched-control difference (normal approximation,
   precision-weighted). An action without any campaign row has the prior ``N(0, PRIOR_SD^2)``.
2. **Where to explore.** The number of explored contacts is shared across segments in
   proportion to ``N_s x sd_s`` (Neyman's optimal allocation, Neyman 1934, "On the two
   different aspects of the representative method", JRSS 97(4)): ``N_s`` the segment's
   customers who can be given an action worth its cost, ``sd_s`` the mean posterior standard
   deviation of the segment's effects. Within a segment the customers are drawn at random.
3. **Which action.** Thompson sampling (Thompson 1933, Biometrika 25(3/4); batched as in
   Chapelle & Li 2011, "An empirical evaluation of Thompson sampling"): for each explored
   customer one effect per action is drawn from the segment's posterior, the customer's own
   estimate is shifted by the draw's distance from the segment's mean estimate, and the action
   with the largest sampled margin is given. Only actions the customer is eligible for and that
   could pay (worth their cost at the upper end of the 95% interval of the segment's belief,
   ``plan._could_pay``) are candidates: exploring never gives an action that would lose money
   even then, but tries those not yet known to pay.
4. **How many.** ``explore_share`` of the plan's contacts; and when the model's own picks leave
   budget unspent, up to ``explore_share`` of the budget (``plan.choose_with_exploration``).

Explored customers keep their own control group (the plan's control share, drawn per
``tier|action|explore`` stratum), so their rows are randomised data: ``measure`` compares each
(tier, action) stratum with its matched control, and the next uplift fit learns from them like
any campaign row. The draws use a generator seeded by the plan's seed and as-of date: the same
plan made again (under any campaign id) reproduces the same exploration.

>>> b = action_beliefs(np.array(["none"] * 400 + ["a"] * 400, dtype=object),
...                    np.r_[np.zeros(300), np.ones(100), np.zeros(200), np.ones(200)], ["a"])
>>> round(b["a"].mean, 2), round(b["a"].sd, 3), b["a"].n_treated
(0.25, 0.033, 400)
>>> neyman_counts({"high": 100, "low": 100}, {"high": 0.3, "low": 0.1}, 20)
{'high': 15, 'low': 5}
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churnguard.config import NO_ACTION
from churnguard.intervene.learners import matched_control

__all__ = ["Belief", "PRIOR_SD", "SEGMENT_SPREAD", "Z95", "action_beliefs", "explore_rng",
           "expected_sd", "neyman_counts", "segment_beliefs", "thompson_choice"]

# An action no campaign ever gave: its effect on P(outcome) is unknown, believed within about
# +-10 points (two sd): wide enough that exploration tries it, narrow enough to stay a guess.
PRIOR_SD = 0.05
# How far a segment's effect is believed to stray from the action's campaign-wide average (sd).
SEGMENT_SPREAD = 0.05
Z95 = 1.959964


@dataclass(frozen=True, kw_only=True)
class Belief:
    """A normal belief about an effect on P(outcome): its mean and standard deviation, and the
    randomised rows (treated, control) it rests on."""

    mean: float
    sd: float
    n_treated: int = 0
    n_control: int = 0

    @property
    def width(self) -> float:
        """Width of the 95% interval."""
        return 2 * Z95 * self.sd

    def to_json(self) -> dict:
        return {"mean": self.mean, "sd": self.sd, "width": self.width,
                "n_treated": self.n_treated, "n_control": self.n_control}


def _difference(y_t: np.ndarray, y_c: np.ndarray) -> tuple[float, float]:
    """Treated minus control rate and its standard error (Wald; rates kept off 0 and 1 so that
    a small arm without events still has a variance)."""
    p_t = (y_t.sum() + 0.5) / (y_t.size + 1.0)
    p_c = (y_c.sum() + 0.5) / (y_c.size + 1.0)
    se = np.sqrt(p_t * (1 - p_t) / y_t.size + p_c * (1 - p_c) / y_c.size)
    return float(y_t.mean() - y_c.mean()), float(se)


def action_beliefs(action: np.ndarray, y: np.ndarray, actions: Sequence[str], *,
                   strata: np.ndarray | None = None, contexts: np.ndarray | None = None
                   ) -> dict[str, Belief]:
    """Each action's campaign-wide average effect (treated minus control outcome rate) with its
    standard error; ``N(0, PRIOR_SD^2)`` for an action without treated or control rows.

    Only randomised comparisons count: an action's treated rows against its matched control
    rows (``strata``: the action each row's randomisation belongs to, see
    ``learners.matched_control``), and with ``contexts`` (``UpliftData.contexts``) within each
    context, the contexts' differences pooled by their precision. A plan gives each action to
    the customers it suits, so the treated of one action set against the control rows of
    another would compare unlike customers.

    >>> ctx = np.repeat(np.array(["risky", "safe"], dtype=object), 400)
    >>> act = np.array((["a"] * 360 + ["none"] * 40) + (["a"] * 40 + ["none"] * 360), dtype=object)
    >>> y = np.r_[np.ones(90), np.zeros(270), np.ones(8), np.zeros(32),
    ...           np.ones(30), np.zeros(10), np.ones(252), np.zeros(108)]
    >>> round(action_beliefs(act, y, ["a"])["a"].mean, 2)  # unlike customers compared
    -0.35
    >>> round(action_beliefs(act, y, ["a"], contexts=ctx)["a"].mean, 2)  # +0.05 in each
    0.05
    """
    action = np.asarray(action, dtype=object)
    y = np.asarray(y, dtype=float)
    contexts = (np.zeros(len(y), dtype=object) if contexts is None
                else np.asarray(contexts, dtype=object))
    out = {}
    for a in actions:
        treated = action == a
        control = matched_control(action == NO_ACTION, strata, a)
        diffs, variances, n_t, n_c = [], [], 0, 0
        for c in pd.unique(contexts[treated | control]):
            here = contexts == c
            if not (treated & here).any() or not (control & here).any():
                continue
            mean, se = _difference(y[treated & here], y[control & here])
            diffs.append(mean)
            variances.append(se ** 2)
            n_t, n_c = n_t + int((treated & here).sum()), n_c + int((control & here).sum())
        if not diffs:
            out[a] = Belief(mean=0.0, sd=PRIOR_SD)
            continue
        precision = 1.0 / np.asarray(variances)
        out[a] = Belief(mean=float(np.sum(precision * np.asarray(diffs)) / precision.sum()),
                        sd=float(np.sqrt(1.0 / precision.sum())), n_treated=n_t, n_control=n_c)
    return out


def segment_beliefs(overall: Mapping[str, Belief], measured: pd.DataFrame,
                    segments: Sequence[str]) -> dict[tuple[str, str], Belief]:
    """The belief about each (segment, action) effect: the action's campaign-wide belief widened
    by ``SEGMENT_SPREAD`` as the prior, updated with the segment's own randomised rows.

    ``measured``: one row per planned campaign row whose outcome is known, with ``segment``,
    ``action`` (the planned action, also for control rows), ``is_control`` and ``y``. A segment
    with treated and control rows of an action contributes their difference (precision-weighted
    normal update); otherwise the prior stands.

    >>> prior = {"a": Belief(mean=0.02, sd=0.01)}
    >>> rows = pd.DataFrame({"segment": "high", "action": "a", "is_control": [False] * 200
    ...                      + [True] * 200, "y": [1.0] * 120 + [0.0] * 80 + [1.0] * 80
    ...                      + [0.0] * 120})
    >>> b = segment_beliefs(prior, rows, ["high", "low"])
    >>> round(b[("high", "a")].mean, 3), b[("high", "a")].n_treated
    (0.114, 200)
    >>> b[("low", "a")].sd > b[("high", "a")].sd
    True
    """
    out = {}
    for s in segments:
        mine = measured[measured["segment"] == s] if len(measured) else measured
        for a, belief in overall.items():
            prior_var = belief.sd ** 2 + SEGMENT_SPREAD ** 2
            rows = mine[mine["action"] == a] if len(mine) else mine
            control = rows["is_control"].to_numpy(dtype=bool) if len(rows) else np.zeros(0, bool)
            y = rows["y"].to_numpy(dtype=float) if len(rows) else np.zeros(0)
            if control.all() or not control.any():
                out[(s, a)] = Belief(mean=belief.mean, sd=float(np.sqrt(prior_var)))
                continue
            diff, se = _difference(y[~control], y[control])
            precision = 1 / prior_var + 1 / se ** 2
            mean = (belief.mean / prior_var + diff / se ** 2) / precision
            out[(s, a)] = Belief(mean=float(mean), sd=float(np.sqrt(1 / precision)),
                                 n_treated=int((~control).sum()), n_control=int(control.sum()))
    return out


def expected_sd(belief: Belief, *, rate: float, n_treated: int, n_control: int) -> float:
    """The belief's standard deviation once ``n_treated`` more treated and ``n_control`` more
    control rows with outcome rate about ``rate`` are measured (their difference's variance
    rate (1 - rate) (1/n_t + 1/n_c) joins the belief's precision).

    >>> round(expected_sd(Belief(mean=0.0, sd=0.05), rate=0.5, n_treated=90, n_control=10), 3)
    0.048
    >>> round(expected_sd(Belief(mean=0.0, sd=0.05), rate=0.5, n_treated=900, n_control=100), 3)
    0.036
    """
    if n_treated <= 0 or n_control <= 0:
        return belief.sd
    rate = float(np.clip(rate, 0.01, 0.99))
    new_var = rate * (1 - rate) * (1 / n_treated + 1 / n_control)
    return float(np.sqrt(1 / (1 / belief.sd ** 2 + 1 / new_var)))


def neyman_counts(pool: Mapping[str, int], sd: Mapping[str, float], total: int
                  ) -> dict[str, int]:
    """``total`` explored contacts shared across segments in proportion to pool size x sd
    (Neyman allocation), by largest remainder and never more than a segment's pool."""
    keys = [k for k in pool if pool[k] > 0]
    total = int(min(total, sum(pool[k] for k in keys)))
    counts = {k: 0 for k in pool}
    while total > 0 and keys:
        weight = np.array([pool[k] * max(sd[k], 1e-12) for k in keys])
        share = total * weight / weight.sum()
        base = np.minimum(np.floor(share).astype(int), [pool[k] for k in keys])
        left = total - int(base.sum())
        order = np.argsort(-(share - base), kind="stable")
        for i in order[:left]:
            if base[i] < pool[keys[i]]:
                base[i] += 1
        for k, n in zip(keys, base, strict=True):
            counts[k] += int(n)
            pool = {**pool, k: pool[k] - int(n)}
        total -= int(base.sum())
        keys = [k for k in keys if pool[k] > 0]
    return counts


def thompson_choice(estimate: np.ndarray, segment_mean: np.ndarray, segment_sd: np.ndarray,
                    margin_of: callable, candidates: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
    """One Thompson draw per explored customer: per action an effect from the segment's
    posterior (``segment_mean``, ``segment_sd``: customers x actions), the customer's own
    ``estimate`` shifted by the draw's distance from their segment's mean estimate, and the
    candidate action (``candidates``, bool customers x actions) with the largest sampled margin
    (``margin_of(effects)`` -> customers x actions). -1 where a customer has no candidate."""
    draw = rng.normal(segment_mean, segment_sd)
    sampled = margin_of(estimate + (draw - segment_mean))
    sampled = np.where(candidates, sampled, -np.inf)
    choice = np.argmax(sampled, axis=1)
    return np.where(candidates.any(axis=1), choice, -1)


def explore_rng(seed: int, key: str) -> np.random.Generator:
    """The generator of a plan's exploration, from its seed and a key (the plan's as-of date):
    the same plan made again draws the same exploration, a later plan draws anew."""
    digest = hashlib.sha256(key.encode()).digest()
    return np.random.default_rng([int(seed), int.from_bytes(digest[:8], "big")])
