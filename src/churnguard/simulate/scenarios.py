"""Scenario parameters of the simulated shop.

Three scenarios exist:

``default``
    Satisfaction has a long memory (daily mean-reversion factor rho = 0.97, a half-life of about
    23 days) and every open support ticket raises the daily churn hazard by the same factor,
    whenever it was opened. Counts and totals (orders, tickets, spend, days since last order)
    carry most of the signal.

``sequence``
    The ORDER of events carries signal that counts and totals miss. An unresolved ticket raises
    the hazard strongly only when it was opened after the customer's most recent order (an
    unresolved complaint about the last purchase followed by silence); the same number of old
    complaints that were followed by further orders carries little risk. Satisfaction memory is
    short (rho = 0.85, half-life about 4 days), so long-run averages of experience say little.

``drift``
    The ``default`` shop until ``change_day`` (day 365 unless told: a year as in ``default``),
    then a change in how behaviour maps to churn (concept drift, not only a shift of the
    features). Each customer has a latent sensitivity to slow delivery d_i in [0, 1]
    (``population.draw_delivery_sensitivity``; higher where deliveries are often late). It
    exists from day 0 and shows in the data all along: a delivery-sensitive customer writes a
    low-rated delivery review of a slow delivery (3 days or more) with probability 0.8 d_i.
    Before the change it does not move churn, so a model trained then has no reason to use it.
    From the change day on:

    * a competitor launches fast delivery in ``competitor_regions`` (cn-east and cn-south, 32% of
      the customers): there the daily hazard gains the lasting factor
      1 + competitor_kappa * d_i, and the customers it took keep comparing in the shop -- while
      dormant they visit at their old rate times d_i (instead of now and then) but buy
      elsewhere. Visits, a sign of a live customer before, no longer are for them;
    * everywhere, for ``slow_window`` (30) days after a slow delivery the hazard gains the factor
      1 + delivery_kappa * d_i: a recent order, a sign of loyalty before, becomes a risk;
    * a second, lasting price rise (prices * (1 + change_price_increase)) with the hazard term
      1 + change_price_kappa * price_sensitivity (no decay), and coupons that now offset more of
      it: a coupon's hazard multiplier is 1 - coupon_hazard_after * ps * k/20 instead of
      1 - coupon_hazard * ps * k/20.

    What a retrained model can see of it: the region attribute, the low-rated reviews, visits
    without orders and the returns and coupons of price-sensitive customers. Measured with
    ``benchmarks/bench_drift_scenario.py`` (RESULTS.md "drift_scenario"): a GBDT never retrained
    after the change loses about 0.045 ROC-AUC against one retrained on post-change labels.

    Until the change the simulation draws the same numbers as ``default`` with the same seed (the
    trait has its own random stream, and the drift-only draws reuse uniforms the default draws
    anyway), so the two shops share their orders and their true churn probabilities up to the
    change; only the review events the trait adds (and the times of day of events, drawn in one
    pass) differ. ``truth/change.json`` records the change, ``truth/users.parquet`` the trait.

The scenarios share the same population, catalogue, campaigns and actions; only the parameters
below differ.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace


# The drift scenario changes after a year, as the default shop, unless told otherwise.
DRIFT_CHANGE_DAY = 365


@dataclass(frozen=True, kw_only=True)
class ScenarioParams:
    """Parameters of the day-step dynamics (see ``process.py`` for the formulas)."""

    name: str
    # Satisfaction s_{d} = b + rho * (s_{d-1} - b) + shock_d  (AR(1) around the baseline b).
    rho: float = 0.97
    # Order rate multiplier exp(beta * (s - b)).
    beta: float = 0.6
    # Hazard multiplier exp(-gamma * s).
    gamma: float = 0.9
    # Base daily hazard of turning dormant, scaled per segment in population.py.
    base_hazard: float = 0.0040
    # Tenure term 1 + k * exp(-tenure / tenure_scale): new customers churn more.
    tenure_k: float = 2.0
    tenure_scale: float = 60.0
    # Daily probability that a dormant customer comes back.
    comeback: float = 0.0015
    # Shop-wide price increase on this day of the window; hazard term
    # 1 + price_kappa * price_sensitivity * exp(-(d - price_day) / price_decay) for d >= price_day.
    price_day: int = 120
    price_kappa: float = 1.2
    price_decay: float = 90.0
    price_increase: float = 0.08
    # Open-ticket hazard term. default: 1 + ticket_any * n_open.
    # sequence: 1 + ticket_recent * [open ticket opened after the last order]
    #             + ticket_old * n_open_opened_before_last_order.
    ticket_any: float = 0.8
    ticket_recent: float = 0.0
    ticket_old: float = 0.0
    sequence_tickets: bool = False
    # Satisfaction shocks at the delivery day.
    shock_good: float = 0.25
    shock_late: float = -0.7
    shock_defective: float = -1.2
    shock_resolved: float = 0.4
    # Daily satisfaction drag per open ticket (an ignored complaint keeps annoying).
    ticket_drag: float = 0.02
    # Coupon hazard multiplier 1 - coupon_hazard * ps * k/20 (k% coupon, ps price sensitivity).
    coupon_hazard: float = 0.5
    # Concept drift (``drift``): None means the mapping from behaviour to churn never changes.
    # From day change_day on: hazard * (1 + delivery_kappa * delivery_sensitivity * [within
    # slow_window days after a slow delivery]) * (1 + change_price_kappa * price_sensitivity),
    # prices * (1 + change_price_increase), and coupons use coupon_hazard_after, not coupon_hazard.
    change_day: int | None = None
    delivery_kappa: float = 0.0
    slow_window: int = 30
    # Lasting hazard term 1 + competitor_kappa * delivery_sensitivity where the competitor
    # launched (regions, names from population.REGIONS).
    competitor_kappa: float = 0.0
    competitor_regions: tuple[str, ...] = ()
    change_price_increase: float = 0.0
    change_price_kappa: float = 0.0
    coupon_hazard_after: float = 0.5
    # Delivery-sensitive customers review slow deliveries badly (how the trait shows in data).
    delivery_reviews: bool = False

    def changed(self, day: int) -> bool:
        """Whether the change has happened by ``day`` (never without a change_day)."""
        return self.change_day is not None and day >= self.change_day

    def change_parameters(self) -> dict[str, dict[str, float]]:
        """The parameters the change moves: {name: {"before": value, "after": value}}."""
        return {
            "delivery_kappa": {"before": 0.0, "after": self.delivery_kappa},
            "slow_window_days": {"before": 0.0, "after": float(self.slow_window)},
            "competitor_kappa": {"before": 0.0, "after": self.competitor_kappa},
            "price_increase": {"before": 0.0, "after": self.change_price_increase},
            "price_kappa_lasting": {"before": 0.0, "after": self.change_price_kappa},
            "coupon_hazard": {"before": self.coupon_hazard, "after": self.coupon_hazard_after},
        }


SCENARIOS: dict[str, ScenarioParams] = {
    "default": ScenarioParams(name="default"),
    "sequence": replace(
        ScenarioParams(name="sequence"),
        rho=0.85,
        beta=0.4,
        gamma=0.5,
        # Lower gamma raises exp(-gamma s); a lower base keeps churn levels comparable.
        base_hazard=0.0031,
        ticket_any=0.0,
        ticket_recent=10.0,
        ticket_old=0.1,
        sequence_tickets=True,
        ticket_drag=0.0,
    ),
    "drift": replace(
        ScenarioParams(name="drift"),
        change_day=DRIFT_CHANGE_DAY,
        delivery_kappa=6.0,
        competitor_kappa=10.0,
        competitor_regions=("cn-east", "cn-south"),
        change_price_increase=0.10,
        change_price_kappa=1.0,
        coupon_hazard_after=0.9,
        delivery_reviews=True,
    ),
}


def scenario_params(*, name: str) -> ScenarioParams:
    """Return the parameters of scenario ``name``; an unknown name is a ValueError naming all."""
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(sorted(SCENARIOS))
        raise ValueError(f"unknown scenario {name!r}; the scenarios are: {known}") from None


def changing_scenarios() -> list[str]:
    """Names of the scenarios with a change (concept drift) at a known day."""
    return sorted(name for name, p in SCENARIOS.items() if p.change_day is not None)


# A surge's baseline: the mean daily count of the topic's complaints over this many days before
# it starts (fewer when the window starts later; at least SURGE_MIN_BASELINE_DAYS).
SURGE_BASELINE_DAYS = 28
SURGE_MIN_BASELINE_DAYS = 7
SURGE_TOPICS = ("delivery", "quality", "price", "service")


@dataclass(frozen=True, kw_only=True)
class Surge:
    """An injected complaint surge: from ``start`` for ``days`` days, the negative mentions
    (reviews rated below 4 and support tickets) of ``topic`` run at ``size`` times their
    baseline (the mean daily count over the SURGE_BASELINE_DAYS days before ``start``).

    The surge adds texts only: extra complaints by customers who ordered in the 30 days before,
    drawn from a random stream of their own, so the rest of the shop (orders, hidden states,
    churn truth) is the run without it. ``truth/surge.json`` and ``truth/surge.parquet`` record
    it. ``size`` 1 adds nothing.

    >>> Surge(topic="delivery", start=dt.date(2025, 3, 1), size=2.0, days=14).end
    datetime.date(2025, 3, 15)
    """

    topic: str
    start: dt.date
    size: float = 2.0
    days: int = 14

    @property
    def end(self) -> dt.date:
        """The first day after the surge."""
        return self.start + dt.timedelta(days=self.days)

    def check(self, *, start: dt.date, days: int) -> None:
        """ValueError unless the surge fits a run of ``days`` days from ``start``."""
        if self.topic not in SURGE_TOPICS:
            raise ValueError(f"surge topic {self.topic!r} is not one of {', '.join(SURGE_TOPICS)}")
        if not isinstance(self.start, dt.date) or isinstance(self.start, dt.datetime):
            raise ValueError(f"surge start must be a datetime.date, got {self.start!r}")
        if not (isinstance(self.size, int | float) and 1.0 <= self.size <= 100.0):
            raise ValueError(f"surge size must be a multiplier from 1 to 100, got {self.size!r}")
        if not isinstance(self.days, int) or self.days < 1:
            raise ValueError(f"surge days must be an integer >= 1, got {self.days!r}")
        first = (self.start - start).days
        if not SURGE_MIN_BASELINE_DAYS <= first < days:
            raise ValueError(
                f"surge start {self.start} must fall from day {SURGE_MIN_BASELINE_DAYS} of the "
                f"window (a baseline to multiply) to its last day "
                f"({start + dt.timedelta(days=SURGE_MIN_BASELINE_DAYS)} to "
                f"{start + dt.timedelta(days=days - 1)})")
