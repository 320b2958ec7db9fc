"""Choose at most one action per customer to earn the most margin under a budget and capacities.

The problem is a multiple-choice knapsack with extra cardinality constraints. With ``x_ij = 1``
when customer ``i`` gets action ``j``::

    maximise    Σ_ij m_ij x_ij
    subject to  Σ_ij c_ij x_ij ≤ B                 (the budget)
                Σ_i  x_ij      ≤ cap_j  for each j  (the capacities; none for an uncapped action)
                Σ_j  x_ij      ≤ 1      for each i  (at most one action; none = margin 0, cost 0)
                x_ij ∈ {0, 1}

A pair that is not eligible, has margin ≤ 0, costs more than the whole budget or belongs to an
action with capacity 0 can never be in an optimal solution, so both solvers drop it first.

* ``method="lagrangian"``: move the budget and the capacities into the objective with multipliers
  ``λ ≥ 0`` and ``μ_j ≥ 0`` (Fisher 1981, "The Lagrangian relaxation method for solving integer
  programming problems", Management Science 27(1), the problem (LR_u)). The relaxed problem
  separates by customer, each taking ``argmax_j (m_ij − λ c_ij − μ_j)`` or nothing, and its value::

      L(λ, μ) = Σ_i max(0, max_j (m_ij − λ c_ij − μ_j)) + λ B + Σ_j μ_j cap_j

  is an upper bound on the optimum for every ``λ, μ ≥ 0`` (Fisher 1981); at its minimum it equals
  the bound of the linear relaxation, because each customer's subproblem has the integrality
  property (Geoffrion 1974, "Lagrangean relaxation for integer programming", Mathematical
  Programming Study 2). The dual is minimised by exact coordinate descent (λ by a safeguarded
  regula falsi on the budget subgradient, each ``μ_j`` in closed form as an order statistic), and
  the customers' choices at the final multipliers are *repaired* into a feasible allocation: the
  worst pairs are dropped until the capacities and the budget hold, then the leftover budget and
  capacity are filled greedily by margin per cost (Sinha & Zoltners 1979, "The multiple-choice
  knapsack problem", Operations Research 27(3): the LP-greedy order of incremental efficiencies).
* ``method="exact"``: the integer programme above, solved to a proven relative gap of 1e-5 (ten
  times tighter than HiGHS's default). HiGHS alone (:func:`scipy.optimize.milp` on every pair)
  needs minutes for 20,000 customers, so the Lagrangian solution comes first: when its gap is
  already that small it is the answer; otherwise the Lagrangian bound fixes every customer whose
  alternatives cannot beat it (reduced-cost fixing) and HiGHS solves the few customers left.

``gap`` is ``(bound − objective) / |bound|``: the allocation is within that fraction of the best
one possible.

>>> import numpy as np
>>> margin = np.array([[5.0, 8.0], [4.0, 0.5], [-1.0, 2.0]])
>>> cost = np.array([[1.0, 3.0], [1.0, 1.0], [1.0, 1.0]])
>>> a = allocate(margin=margin, cost=cost, budget=3.0, method="exact")
>>> a.choice.tolist(), a.objective, a.spend, a.gap
([0, 0, 1], 11.0, 3.0, 0.0)
>>> allocate(margin=margin, cost=cost, budget=3.0, capacity=[1, None]).choice.tolist()
[1, -1, -1]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["METHODS", "Allocation", "allocate"]

METHODS = ("auto", "exact", "lagrangian")

_TINY = 1e-12
# Relative precision to which the dual is minimised; far below any gap worth reporting.
_DUAL_TOL = 1e-9
# The exact method stops once its allocation is proven within this fraction of the optimum (ten
# times tighter than HiGHS's default relative gap), or after _EXACT_SECONDS with HiGHS's best.
_EXACT_GAP = 1e-5
_EXACT_SECONDS = 60.0
_MAX_ROUNDS = 60
_MAX_ROOT_STEPS = 80
# First step, relative to the starting λ, of the walk that brackets the best λ (×4 each step).
_WALK = 0.005
_MAX_FILL_ROUNDS = 200
_FILL_BATCH = 4096
# Above this many customers, the dual is first minimised on a random sample (with the budget and
# capacities scaled down) so that the full-size coordinate descent starts next to the optimum.
_SAMPLE_ABOVE = 400_000
_SAMPLE_SIZE = 100_000


@dataclass(frozen=True, kw_only=True)
class Allocation:
    """One action per customer, with how good it is.

    ``choice[i]`` is the column of the action given to customer ``i``, ``-1`` for none;
    ``objective`` and ``spend`` are the total margin and cost of the chosen actions; ``bound`` is an
    upper bound on the best objective any feasible allocation can reach, and ``gap`` the relative
    distance ``(bound − objective) / |bound|`` (0 when both are 0).
    """

    choice: np.ndarray
    objective: float
    spend: float
    bound: float
    gap: float
    method: str


def allocate(*, margin, cost, budget: float, capacity: Sequence[int | None] | None = None,
             eligible=None, method: str = "auto",
             exact_max_customers: int = 50_000) -> Allocation:
    """Give each customer at most one action, maximising total margin within budget and capacities.

    ``margin[i, j]`` is the expected incremental margin of action ``j`` for customer ``i``, already
    net of the action's expected cost; ``cost[i, j] ≥ 0`` the expected spend it takes from
    ``budget``; ``capacity[j]`` the most customers action ``j`` may go to (``None``: no limit);
    ``eligible[i, j] = False`` forbids a pair. ``method`` is ``"exact"`` (proven within a relative
    gap of 1e-5: the Lagrangian solution, then HiGHS on the customers its bound cannot settle),
    ``"lagrangian"`` (dual decomposition and repair; linear in the customers) or ``"auto"``
    (exact up to ``exact_max_customers`` customers). The result never exceeds the budget or a
    capacity. Raises ``ValueError`` on malformed input, saying what to fix.

    >>> import numpy as np
    >>> a = allocate(margin=np.array([[3.0, 5.0], [2.0, -1.0]]), cost=np.ones((2, 2)), budget=1.0)
    >>> a.choice.tolist(), a.objective, a.method
    ([1, -1], 5.0, 'exact')
    """
    margin, cost, budget, cap, eligible = _validate(margin, cost, budget, capacity, eligible,
                                                    method, exact_max_customers)
    n, k = margin.shape
    if method == "auto":
        method = "exact" if n <= exact_max_customers else "lagrangian"
    keep = eligible & (margin > 0) & (cost <= budget) & (cap > 0)[None, :]
    if not keep.any():
        choice, bound = np.full(n, -1, dtype=np.int64), 0.0
    elif method == "exact":
        choice, bound = _solve_exact(margin, cost, keep, budget, cap)
    else:
        choice, bound = _solve_lagrangian(margin, cost, keep, budget, cap)
    objective, spend = _totals(margin, cost, choice)
    bound = max(bound, objective)  # a valid bound below the objective is only rounding
    gap = (bound - objective) / max(abs(bound), _TINY)
    return Allocation(choice=choice, objective=objective, spend=spend, bound=float(bound),
                      gap=float(gap), method=method)


# -- validation ------------------------------------------------------------------------------------

def _validate(margin, cost, budget, capacity, eligible, method, exact_max_customers):
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not known; use one of {', '.join(METHODS)}")
    if isinstance(exact_max_customers, bool) or not isinstance(exact_max_customers,
                                                                (int, np.integer)) \
            or exact_max_customers < 0:
        raise ValueError(f"exact_max_customers={exact_max_customers!r} must be a whole number "
                         "≥ 0 (the most customers for which method='auto' solves exactly)")
    margin = np.asarray(margin, dtype=np.float64)
    if margin.ndim != 2:
        raise ValueError(f"margin must be a 2-D array (customers × actions); got shape "
                         f"{margin.shape}")
    cost = np.asarray(cost, dtype=np.float64)
    if cost.shape != margin.shape:
        raise ValueError(f"cost has shape {cost.shape} but margin has shape {margin.shape}; give "
                         "one cost per customer and action")
    _require_finite("margin", margin, "mark pairs that must not be chosen with eligible=False")
    _require_finite("cost", cost, "give every pair a finite expected spend")
    if (cost < 0).any():
        i, j = np.argwhere(cost < 0)[0]
        raise ValueError(f"cost has {int((cost < 0).sum())} negative values (first at row {i}, "
                         f"column {j}: {float(cost[i, j])!r}); a cost is spend counted against the "
                         "budget and must be ≥ 0 (put a saving into the margin instead)")
    try:
        budget = float(budget)
    except (TypeError, ValueError):
        raise ValueError(f"budget={budget!r} is not a number; give the total spend allowed, "
                         "≥ 0") from None
    if math.isnan(budget) or budget < 0:
        raise ValueError(f"budget={budget!r} must be ≥ 0 (math.inf for no budget)")
    n, k = margin.shape
    cap = np.full(k, np.inf)
    if capacity is not None:
        capacity = list(capacity)
        if len(capacity) != k:
            raise ValueError(f"capacity has {len(capacity)} entries but there are {k} actions "
                             "(margin columns); give one per action, None for no limit")
        for j, c in enumerate(capacity):
            if c is None:
                continue
            if isinstance(c, bool) or not isinstance(c, (int, np.integer, float, np.floating)) \
                    or not float(c).is_integer() or c < 0:
                raise ValueError(f"capacity[{j}]={c!r} must be a whole number ≥ 0 or None "
                                 "(no limit)")
            cap[j] = float(c)
    if eligible is None:
        eligible = np.ones((n, k), dtype=bool)
    else:
        eligible = np.asarray(eligible)
        if eligible.shape != margin.shape:
            raise ValueError(f"eligible has shape {eligible.shape} but margin has shape "
                             f"{margin.shape}; give one True/False per customer and action")
        if eligible.dtype != bool:
            raise ValueError(f"eligible must be boolean (True = the action may be given); got "
                             f"dtype {eligible.dtype}")
    return margin, cost, budget, cap, eligible


def _require_finite(name: str, values: np.ndarray, fix: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"{name} has {int(bad.sum())} NaN or infinite values (first at row {i}, "
                         f"column {j}: {float(values[i, j])!r}); {fix}")


# -- shared pieces ---------------------------------------------------------------------------------

def _totals(margin: np.ndarray, cost: np.ndarray, choice: np.ndarray) -> tuple[float, float]:
    """Total margin and spend of ``choice``; the one place both are summed, so checks agree."""
    rows = np.flatnonzero(choice >= 0)
    cols = choice[rows]
    return float(margin[rows, cols].sum()), float(cost[rows, cols].sum())


def _repair(margin, cost, keep, budget, cap, choice, *, lam: float = 0.0,
            mu: np.ndarray | None = None) -> np.ndarray:
    """Make ``choice`` feasible, then fill what budget and capacity are left.

    Dropping: over a capacity, the customers of that action who lose least by taking their best
    other action instead (or none) lose it, values priced at the multipliers ``lam`` and ``mu``
    when the choice came from them (so that the loss counts what the other action spends);
    over the budget, the chosen pairs with the lowest
    margin per cost, as few as cover the excess. Filling: greedy in descending incremental margin
    per incremental cost (Sinha & Zoltners 1979), a customer's move from their current action (or
    none) to a better one being one item.
    """
    choice = np.where((choice >= 0) & keep[np.arange(len(choice)), np.maximum(choice, 0)],
                      choice, -1).astype(np.int64)
    for j in np.flatnonzero(np.isfinite(cap)):
        rows = np.flatnonzero(choice == j)
        excess = len(rows) - int(cap[j])
        if excess > 0:
            # those who lose least by taking their best other action (or none) give way
            priced = margin[rows] - lam * cost[rows] - (0.0 if mu is None else mu[None, :])
            others = np.where(keep[rows], priced, 0.0)
            others[:, j] = 0.0
            loss = priced[:, j] - np.maximum(others.max(axis=1), 0.0)
            worst = np.argpartition(loss, excess - 1)[:excess]
            choice[rows[worst]] = -1
    choice = _drop_to_budget(margin, cost, budget, choice)
    choice = _fill(margin, cost, keep, budget, cap, choice)
    return _drop_to_budget(margin, cost, budget, choice)  # only rounding can make this drop


def _drop_to_budget(margin, cost, budget, choice) -> np.ndarray:
    for _ in range(10):
        spend = _totals(margin, cost, choice)[1]
        if spend <= budget:
            return choice
        rows = np.flatnonzero((choice >= 0))
        rows = rows[cost[rows, choice[rows]] > 0]
        m, c = margin[rows, choice[rows]], cost[rows, choice[rows]]
        order = np.argsort(m / c, kind="stable")
        freed = np.cumsum(c[order])
        # the fewest worst pairs whose cost covers the excess; rounding may need another pass
        n_drop = int(np.searchsorted(freed, spend - budget, side="left")) + 1
        choice = choice.copy()
        choice[rows[order[:n_drop]]] = -1
    raise AssertionError("could not bring the spend within the budget")  # pragma: no cover


def _fill(margin, cost, keep, budget, cap, choice) -> np.ndarray:
    """Greedy fill of the leftover budget and capacity, in vectorised rounds.

    Each round sorts the candidate moves by incremental margin per incremental cost and accepts,
    in that order, every move that is its customer's first in the list, fits its action's
    remaining capacity and keeps the running spend within the budget, up to the first move that
    does not fit the budget; a move that does not fit when it comes first is discarded. Every
    round accepts or discards at least one move: this is the sequential greedy that skips what
    does not fit, without a Python loop over customers. A round looks only at the best
    ``_FILL_BATCH`` moves with a cost (and all without), which changes nothing but the speed
    (up to the order of exact ties).
    """
    n = len(choice)
    rows = np.arange(n)
    has = choice >= 0
    cur_m = np.where(has, margin[rows, np.maximum(choice, 0)], 0.0)
    cur_c = np.where(has, cost[rows, np.maximum(choice, 0)], 0.0)
    left = budget - float(cur_c.sum())
    used = np.bincount(choice[has], minlength=len(cap)).astype(np.float64)
    room = cap - used
    ci, cj = np.nonzero(keep & (margin > cur_m[:, None]) & (cost - cur_c[:, None] <= left)
                        & (room > 0)[None, :])
    cm, cc = margin[ci, cj], cost[ci, cj]
    choice = choice.copy()
    for _ in range(_MAX_FILL_ROUNDS):
        dm, dc = cm - cur_m[ci], cc - cur_c[ci]
        ok = (dm > 0) & (dc <= left) & (room[cj] > 0)
        ci, cj, cm, cc, dm, dc = ci[ok], cj[ok], cm[ok], cc[ok], dm[ok], dc[ok]
        if not len(ci):
            break
        ratio = np.where(dc > 0, dm / np.where(dc > 0, dc, 1.0), np.inf)
        # Only the best moves can be decided in one round: sort those, not all of them.
        head = np.flatnonzero(np.isinf(ratio))
        finite = np.flatnonzero(~np.isinf(ratio))
        if len(finite) > _FILL_BATCH:
            finite = finite[np.argpartition(-ratio[finite], _FILL_BATCH - 1)[:_FILL_BATCH]]
        head = np.concatenate([head, finite])
        order = head[np.lexsort((head, -dm[head], -ratio[head]))]
        first = np.zeros(len(order), dtype=bool)
        first[np.unique(ci[order], return_index=True)[1]] = True
        take = order[first]
        fits = np.ones(len(take), dtype=bool)
        for j in np.flatnonzero(np.isfinite(room)):
            at = np.flatnonzero(cj[take] == j)
            fits[at[int(room[j]):]] = False
        take = take[fits]
        if not len(take):
            break
        over = np.flatnonzero(np.cumsum(dc[take]) > left)
        if len(over) and over[0] == 0:  # the best move does not fit the budget: discard it
            drop = np.ones(len(ci), dtype=bool)
            drop[take[0]] = False
            ci, cj, cm, cc = ci[drop], cj[drop], cm[drop], cc[drop]
            continue
        take = take[:over[0]] if len(over) else take
        i, j = ci[take], cj[take]
        old = choice[i]
        np.add.at(room, old[old >= 0], 1.0)
        np.add.at(room, j, -1.0)
        left -= float(dc[take].sum())
        choice[i], cur_m[i], cur_c[i] = j, cm[take], cc[take]
    return choice


# -- exact: Lagrangian variable fixing, then HiGHS MILP on what is left ---------------------------

def _solve_exact(margin, cost, keep, budget, cap) -> tuple[np.ndarray, float]:
    """Optimal allocation: fix every pair the Lagrangian bound rules out, solve the rest exactly.

    With any multipliers, a feasible ``x`` has value at most ``L(λ, μ) − Σ_i (v_i − r_i(x))``,
    ``v_i`` being customer ``i``'s best reduced value and ``r_i(x)`` that of their option in ``x``
    (0 for none). So an option with ``v_i − r_i ≥ L − z`` cannot appear in any allocation better
    than the incumbent ``z`` (Lagrangian reduced-cost fixing, e.g. Nemhauser & Wolsey 1988,
    "Integer and Combinatorial Optimization"). At near-optimal
    multipliers ``L − z`` is tiny and almost every customer keeps a single option; HiGHS solves
    the few left over, with the budget and capacities the fixed customers leave. The bound is
    ``min(L, max(z, fixed value + HiGHS's dual bound of the rest))``.
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_array

    n, k = margin.shape
    dual, lam, mu = _dual_solution(margin, cost, keep, budget, cap)
    best, arg, _ = dual.respond(lam, mu)
    bound = dual.value(lam, mu)[0]  # the bound the fixing below rests on
    incumbent = _repair(margin, cost, keep, budget, cap, arg, lam=lam, mu=mu)
    z = _totals(margin, cost, incumbent)[0]
    if dual.best_value - z <= _EXACT_GAP * max(abs(dual.best_value), _TINY):
        return incumbent, dual.best_value  # already proven close enough
    # a little wider than the proof needs, so that rounding never fixes a pair it should not
    slack = max(bound - z, 0.0) * (1 + 1e-9) + 1e-9 * max(abs(bound), 1.0)
    reduced = np.empty((k, n))
    for j in range(k):
        dual._reduced(j, lam, mu, out=reduced[j])
    open_pair = keep & (reduced.T > (best - slack)[:, None])
    open_none = best < slack
    options = open_pair.sum(axis=1) + open_none
    core = options >= 2
    fixed = np.where(~core & ~open_none, np.argmax(open_pair, axis=1), -1)
    fixed[core] = -1
    fixed_value, fixed_spend = _totals(margin, cost, fixed)
    left_budget = budget - fixed_spend
    left_cap = cap - np.bincount(fixed[fixed >= 0], minlength=k)
    if left_budget < -1e-9 * max(budget, 1.0) or (left_cap < 0).any():
        return incumbent, z  # nothing better than the incumbent exists
    left_budget = max(left_budget, 0.0)

    ii, jj = np.nonzero(open_pair & core[:, None])
    p = len(ii)
    if p == 0:
        candidate, core_bound = fixed, 0.0
    else:
        m, c = margin[ii, jj], cost[ii, jj]
        _, row = np.unique(ii, return_inverse=True)
        rows, cols, vals = [row], [np.arange(p)], [np.ones(p)]
        lower = np.where(open_none[np.unique(ii)], 0.0, 1.0)  # no "nothing": take one action
        upper = np.ones(len(lower))
        nrows = len(lower)
        extra_lo, extra_up = [], []
        if math.isfinite(left_budget) and c.sum() > left_budget:
            rows.append(np.full(p, nrows))
            cols.append(np.arange(p))
            vals.append(c)
            extra_lo.append(-np.inf)
            extra_up.append(left_budget)
            nrows += 1
        for j in np.flatnonzero(np.isfinite(left_cap)):
            on = np.flatnonzero(jj == j)
            if len(on) > left_cap[j]:
                rows.append(np.full(len(on), nrows))
                cols.append(on)
                vals.append(np.ones(len(on)))
                extra_lo.append(-np.inf)
                extra_up.append(left_cap[j])
                nrows += 1
        a = coo_array((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=(nrows, p)).tocsr()
        constraint = LinearConstraint(a, np.concatenate([lower, extra_lo]),
                                      np.concatenate([upper, extra_up]))
        # HiGHS's gap is relative to the rest's objective, a small part of the whole
        rest = max(bound - fixed_value, _TINY)
        rel_gap = float(np.clip(_EXACT_GAP * max(abs(bound), _TINY) / rest, 1e-9, 0.5))
        res = milp(-m, constraints=constraint, integrality=np.ones(p), bounds=Bounds(0.0, 1.0),
                   options={"mip_rel_gap": rel_gap, "time_limit": _EXACT_SECONDS})
        if res.status == 2:  # infeasible: no allocation beats the incumbent
            return incumbent, z
        core_bound = getattr(res, "mip_dual_bound", None)
        if core_bound is None or not np.isfinite(core_bound):
            core_bound = milp(-m, constraints=constraint, bounds=Bounds(0.0, 1.0)).fun
        if res.x is None:  # out of time before HiGHS found any allocation of the rest
            return incumbent, min(dual.best_value, max(z, fixed_value - float(core_bound)))
        chosen = np.flatnonzero(res.x > 0.5)
        candidate = fixed.copy()
        candidate[ii[chosen]] = jj[chosen]
        core_bound = -float(core_bound)
    candidate = _repair(margin, cost, keep, budget, cap, candidate)
    choice = candidate if _totals(margin, cost, candidate)[0] > z else incumbent
    return choice, min(dual.best_value, max(z, fixed_value + core_bound))


# -- Lagrangian relaxation -------------------------------------------------------------------------

class _Dual:
    """The Lagrangian dual L(λ, μ) of one problem, with reusable buffers.

    Pairs that were dropped have margin −inf and cost 0, so they are never any customer's best.
    """

    def __init__(self, margin, cost, keep, budget, cap) -> None:
        n, k = margin.shape
        self.m, self.c = np.empty((k, n)), np.empty((k, n))  # one contiguous row per action
        self.lam_max = _TINY
        for j in range(k):
            np.copyto(self.m[j], margin[:, j])
            np.copyto(self.c[j], cost[:, j])
            out = ~keep[:, j]
            self.m[j][out] = -np.inf
            self.c[j][out] = 0.0
            ratio = np.divide(self.m[j], self.c[j], out=np.full(n, -np.inf),
                              where=self.c[j] > 0)
            # at any λ above this, no pair with a cost is worth anything (μ ≥ 0 only lowers it)
            self.lam_max = max(self.lam_max, 2.0 * float(ratio.max(initial=0.0)) + _TINY)
        self.k, self.n = k, n
        self.budget, self.cap = budget, cap
        self.capped = [j for j in np.flatnonzero(np.isfinite(cap))
                       if int(np.count_nonzero(keep[:, j])) > cap[j]]
        self._buf = np.empty(self.n)
        self._mask = np.empty(self.n, dtype=bool)
        self.best_value = np.inf
        self.evaluations = 0

    def respond(self, lam: float, mu: np.ndarray):
        """Each customer's best reduced value (≥ 0), their action (−1: none) and its cost."""
        best = np.zeros(self.n)
        arg = np.full(self.n, -1, dtype=np.int64)
        spent = np.zeros(self.n)
        buf, mask = self._buf, self._mask
        for j in range(self.k):
            self._reduced(j, lam, mu, out=buf)
            np.greater(buf, best, out=mask)
            np.maximum(buf, best, out=best)
            np.copyto(arg, j, where=mask)
            np.copyto(spent, self.c[j], where=mask)
        return best, arg, spent

    def _reduced(self, j: int, lam: float, mu: np.ndarray, *, out: np.ndarray) -> np.ndarray:
        np.multiply(self.c[j], -lam, out=out)
        out += self.m[j]
        if mu[j]:
            out -= mu[j]
        return out

    def value(self, lam: float, mu: np.ndarray) -> tuple[float, float]:
        """L(λ, μ) (Fisher 1981's problem (LR_u)) and the spend of the customers' responses."""
        best, _, spent = self.respond(lam, mu)
        value = float(best.sum()) + float(mu @ np.where(np.isfinite(self.cap), self.cap, 0.0))
        if lam:
            value += lam * self.budget
        self.evaluations += 1
        self.best_value = min(self.best_value, value)
        return value, float(spent.sum())

    def best_lambda(self, mu: np.ndarray, guess: float) -> float:
        """argmin over λ ≥ 0 of L(λ, μ), on the budget-feasible side.

        ``L`` is convex in λ with slope ``B − spend(λ)``, so the minimiser is where the spend
        falls to the budget; a regula falsi with the Illinois modification, falling back to
        bisection when the bracket shrinks slowly, finds it. It stops when
        ``(B − spend(hi)) · (hi − lo)``, which bounds ``L(hi) − min L``, is negligible.
        """
        b = self.budget
        if not math.isfinite(b):
            self.value(0.0, mu)
            return 0.0
        lo = hi = None
        if guess > 0:
            value, spend = self.value(guess, mu)
            if spend > b:
                lo, g_lo = guess, spend - b
            else:
                hi, g_hi, v_hi = guess, spend - b, value
                step = _WALK * guess
                while lo is None:  # walk down until the budget is exceeded
                    x = max(hi - step, 0.0)
                    value, spend = self.value(x, mu)
                    if spend > b:
                        lo, g_lo = x, spend - b
                    elif x == 0.0:
                        return 0.0
                    else:
                        hi, g_hi, v_hi = x, spend - b, value
                        step *= 4.0
        else:  # the slope at 0 decides whether the budget binds at all
            value, spend = self.value(0.0, mu)
            if spend <= b:
                return 0.0
            lo, g_lo = 0.0, spend - b
        step = _WALK * lo
        while hi is None:  # walk up until the spend is within budget (it is at lam_max)
            x = min(lo + step, self.lam_max) if step > 0 else self.lam_max
            value, spend = self.value(x, mu)
            if spend > b:
                lo, g_lo = x, spend - b
                step *= 4.0
            else:
                hi, g_hi, v_hi = x, spend - b, value
        side = 0
        width = hi - lo
        for it in range(_MAX_ROOT_STEPS):
            if -g_hi * (hi - lo) <= _DUAL_TOL * max(abs(v_hi), _TINY) or hi - lo <= _TINY * hi:
                break
            x = hi - g_hi * (hi - lo) / (g_hi - g_lo)
            if it % 3 == 2:  # guard: the bracket must halve every three steps
                if hi - lo > 0.5 * width:
                    x = 0.5 * (lo + hi)
                width = hi - lo
            if not lo < x < hi:
                x = 0.5 * (lo + hi)
            value, spend = self.value(x, mu)
            if spend > b:
                lo, g_lo = x, spend - b
                if side == -1:
                    g_hi *= 0.5
                side = -1
            else:
                hi, g_hi, v_hi = x, spend - b, value
                if side == 1:
                    g_lo *= 0.5
                side = 1
        return hi

    def best_mu(self, j: int, lam: float, mu: np.ndarray) -> float:
        """argmin over μ_j ≥ 0 of L(λ, μ), the others fixed: an order statistic.

        Customer ``i`` takes ``j`` while ``μ_j < d_i``, where ``d_i`` is the reduced value of
        ``j`` minus that of their best alternative (or nothing). The slope of ``L`` in ``μ_j`` is
        ``cap_j − #{d_i > μ_j}``, so the minimiser is the ``(cap_j + 1)``-th largest ``d_i``,
        or 0 when it is negative.
        """
        alternative = np.zeros(self.n)
        for other in range(self.k):
            if other != j:
                np.maximum(alternative, self._reduced(other, lam, mu, out=self._buf),
                           out=alternative)
        d = self._reduced(j, lam, mu, out=self._buf) + mu[j] - alternative
        cap = int(self.cap[j])
        if cap >= self.n:
            return 0.0
        kth = self.n - cap - 1
        return max(0.0, float(np.partition(d, kth)[kth]))

    def minimise(self, lam: float, mu: np.ndarray) -> tuple[float, np.ndarray]:
        """Exact coordinate descent over λ and the binding μ_j, from a starting point."""
        mu = mu.copy()
        lam = self.best_lambda(mu, lam)
        previous = np.inf
        for _ in range(_MAX_ROUNDS if self.capped else 0):
            before = mu.copy()
            for j in self.capped:
                mu[j] = self.best_mu(j, lam, mu)
            if np.array_equal(mu, before):
                break  # λ was best for these μ already
            lam = self.best_lambda(mu, lam)  # ends each round on the budget-feasible side
            if previous - self.best_value <= _DUAL_TOL * max(abs(self.best_value), _TINY):
                break
            previous = self.best_value
        return lam, mu


def _dual_solution(margin, cost, keep, budget, cap) -> tuple[_Dual, float, np.ndarray]:
    """The dual of the problem and near-optimal multipliers (λ, μ)."""
    n, k = margin.shape
    lam, mu = 0.0, np.zeros(k)
    if n > _SAMPLE_ABOVE:
        rows = np.sort(np.random.default_rng(0).choice(n, size=_SAMPLE_SIZE, replace=False))
        share = _SAMPLE_SIZE / n
        sample_cap = np.where(np.isfinite(cap), np.ceil(cap * share), np.inf)
        sample = _Dual(margin[rows], cost[rows], keep[rows], budget * share, sample_cap)
        lam, mu = sample.minimise(lam, mu)
    dual = _Dual(margin, cost, keep, budget, cap)
    lam, mu = dual.minimise(lam, mu)
    return dual, lam, mu


def _solve_lagrangian(margin, cost, keep, budget, cap) -> tuple[np.ndarray, float]:
    dual, lam, mu = _dual_solution(margin, cost, keep, budget, cap)
    _, choice, _ = dual.respond(lam, mu)
    return _repair(margin, cost, keep, budget, cap, choice, lam=lam, mu=mu), dual.best_value
