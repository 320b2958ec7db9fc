"""Scenario parameters of the simulated shop.

Two scenarios exist:

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

Both scenarios share the same population, catalogue, campaigns and actions; only the parameters
below differ.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


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
}


def scenario_params(*, name: str) -> ScenarioParams:
    """Return the parameters of scenario ``name``; an unknown name is a ValueError naming all."""
    try:
        return SCENARIOS[name]
    except KeyError:
        known = ", ".join(sorted(SCENARIOS))
        raise ValueError(f"unknown scenario {name!r}; the scenarios are: {known}") from None
