"""What the campaigns have taught, cycle by cycle, from their stored measurements.

Pure: measurement documents in (``CampaignMeasurement.to_dict()``, as ``measurements`` stores
them), figures out; the HTML report and the dashboard's campaigns page both draw them.

* The **learning curve**: per campaign, in the order they were assigned, the measured
  incremental retention (treated minus control, every action and tier) and the incremental net
  revenue after the actions' costs, each with the interval ``measure`` computed.
* Each action's **effect as known after each campaign**: the campaign's own measured effect on
  retention and the pooled estimate of every campaign measured so far, an inverse-variance
  weighted mean (the fixed-effect meta-analysis, Borenstein et al. 2009, *Introduction to
  Meta-Analysis*, ch. 11, eqs. 11.3-11.5), whose standard error is each interval's half-width
  divided by z. Every measured campaign narrows it, which is what the learning loop is for.

Where ``measure`` also adjusted a group's difference for the plan's churn score
(``incremental_retention_adjusted``: a churnguard plan's campaigns), the adjusted figure and
its narrower interval are the ones shown and pooled.

>>> doc = lambda cid, day, effect: {"campaign_id": cid, "assigned_to": day, "confidence": 0.95,
...     "n_treated": 100, "n_control": 100, "totals": {}, "groups": [{"action": "call",
...     "tier": "all", "incremental_retention": effect,
...     "incremental_retention_ci": [effect - 0.0392, effect + 0.0392]}]}
>>> h = learning_history([doc("b", "2025-02-01", 0.06), doc("a", "2025-01-01", 0.02)])
>>> [(r.campaign_id, round(r.pooled, 3), round(r.pooled_high - r.pooled_low, 4))
...  for r in h.effects["call"]]
[('a', 0.02, 0.0784), ('b', 0.04, 0.0554)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

__all__ = ["CampaignPoint", "EffectPoint", "LearningHistory", "learning_history"]


@dataclass(frozen=True, kw_only=True)
class CampaignPoint:
    """One campaign on the learning curve (None where the measurement has no figure)."""

    campaign_id: str
    assigned_to: str
    n_treated: int | None
    n_control: int | None
    retention: float | None  # incremental retention, every action and tier
    retention_low: float | None
    retention_high: float | None
    net_revenue: float | None  # incremental net revenue after costs, the campaign's total
    net_revenue_low: float | None
    net_revenue_high: float | None


@dataclass(frozen=True, kw_only=True)
class EffectPoint:
    """An action's effect on retention: this campaign's own, and pooled over it and every
    campaign measured before it."""

    campaign_id: str
    assigned_to: str
    effect: float
    low: float | None
    high: float | None
    pooled: float
    pooled_low: float | None
    pooled_high: float | None
    campaigns: int  # campaigns pooled (with an interval)


@dataclass(frozen=True, kw_only=True)
class LearningHistory:
    confidence: float
    campaigns: list[CampaignPoint] = field(default_factory=list)
    effects: dict[str, list[EffectPoint]] = field(default_factory=dict)


def _finite(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _interval(value: object) -> tuple[float | None, float | None]:
    if isinstance(value, list | tuple) and len(value) == 2:
        low, high = _finite(value[0]), _finite(value[1])
        if low is not None and high is not None:
            return low, high
    return None, None


def _retention(group: dict) -> tuple[float | None, float | None, float | None]:
    """A group's incremental retention and interval: adjusted for the churn score when
    ``measure`` could, else the plain difference."""
    adjusted = _finite(group.get("incremental_retention_adjusted"))
    if adjusted is not None:
        return (adjusted, *_interval(group.get("incremental_retention_adjusted_ci")))
    return (_finite(group.get("incremental_retention")),
            *_interval(group.get("incremental_retention_ci")))


def _overall(doc: dict) -> dict:
    for g in doc.get("groups") or []:
        if isinstance(g, dict) and g.get("action") == "all" and g.get("tier") == "all":
            return g
    return {}


def learning_history(measurements: list[dict]) -> LearningHistory:
    """The learning curve and each action's pooled effect after each campaign (module doc);
    ``measurements`` in any order (they are sorted by their last assignment)."""
    docs = sorted((m for m in measurements if isinstance(m, dict)),
                  key=lambda m: (str(m.get("assigned_to", "")), str(m.get("campaign_id", ""))))
    confidence = float(docs[-1].get("confidence", 0.95)) if docs else 0.95
    campaigns, effects = [], {}
    sums: dict[str, list[float]] = {}  # action -> [sum of w * effect, sum of w, campaigns]
    for m in docs:
        z = NormalDist().inv_cdf(0.5 + float(m.get("confidence", 0.95)) / 2)
        overall, totals = _overall(m), m.get("totals") or {}
        retention, low, high = _retention(overall)
        net_low, net_high = _interval(totals.get("incremental_net_revenue_ci"))
        campaigns.append(CampaignPoint(
            campaign_id=str(m.get("campaign_id")), assigned_to=str(m.get("assigned_to", ""))[:10],
            n_treated=m.get("n_treated"), n_control=m.get("n_control"),
            retention=retention, retention_low=low,
            retention_high=high, net_revenue=_finite(totals.get("incremental_net_revenue")),
            net_revenue_low=net_low, net_revenue_high=net_high))
        for g in m.get("groups") or []:
            if not isinstance(g, dict) or g.get("tier") != "all" or g.get("action") == "all":
                continue
            effect, low, high = _retention(g)
            if effect is None:
                continue
            action = str(g.get("action"))
            acc = sums.setdefault(action, [0.0, 0.0, 0])
            if low is not None and high > low:
                weight = (2 * z / (high - low)) ** 2  # 1 / se^2
                acc[0], acc[1], acc[2] = acc[0] + weight * effect, acc[1] + weight, acc[2] + 1
            if acc[1] > 0:
                pooled, half = acc[0] / acc[1], z / math.sqrt(acc[1])
                p_low, p_high = pooled - half, pooled + half
            else:
                pooled, p_low, p_high = effect, None, None
            effects.setdefault(action, []).append(EffectPoint(
                campaign_id=str(m.get("campaign_id")),
                assigned_to=str(m.get("assigned_to", ""))[:10], effect=effect, low=low,
                high=high, pooled=pooled, pooled_low=p_low, pooled_high=p_high,
                campaigns=int(acc[2])))
    return LearningHistory(confidence=confidence, campaigns=campaigns,
                           effects=dict(sorted(effects.items())))
