"""The customer population: observable attributes and the hidden traits that drive the dynamics.

Segments (hidden, exported only in ``truth/users.parquet``):

============== ========= ============ ================= =========== ==================
segment        base rate hazard mult  price sensitivity return prop baseline satisf.
============== ========= ============ ================= =========== ==================
loyal          0.050/day 0.45         Beta(2, 6)        0.04        N(1.0, 0.3)
bargain_hunter 0.030/day 1.00         Beta(6, 2)        0.15        N(0.5, 0.4)
occasional     0.013/day 1.10         Beta(3, 3)        0.07        N(0.5, 0.4)
new            0.030/day 1.25         Beta(4, 3)        0.09        N(0.4, 0.5)
============== ========= ============ ================= =========== ==================

Each customer's base rate is the segment's times a Gamma(4, 1/4) factor (mean 1).
Category preferences are Dirichlet(alpha * 1) with a per-customer concentration alpha; the
category breadth is the inverse Simpson index 1 / sum_c pi_c^2 (the effective number of
categories a customer buys from).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from churnguard.simulate.catalog import N_CATEGORIES

SEGMENTS: tuple[str, ...] = ("loyal", "bargain_hunter", "occasional", "new")
LOYAL, BARGAIN, OCCASIONAL, NEW = range(4)
_BASE_RATE = np.array([0.050, 0.030, 0.013, 0.030])
_HAZARD_MULT = np.array([0.45, 1.00, 1.10, 1.25])
_PS_BETA = ((2.0, 6.0), (6.0, 2.0), (3.0, 3.0), (4.0, 3.0))
_RETURN = np.array([0.04, 0.15, 0.07, 0.09])
_BASELINE = ((1.0, 0.3), (0.5, 0.4), (0.5, 0.4), (0.4, 0.5))
# Probability that a customer is alive at the window start, by segment (pre-start customers).
_ALIVE_AT_START = np.array([0.85, 0.6, 0.55, 0.5])

REGIONS: tuple[str, ...] = ("us-west", "us-east", "eu-central", "cn-east", "cn-south", "sg")
_REGION_P = np.array([0.18, 0.2, 0.2, 0.17, 0.15, 0.1])
# Late-delivery risk differs by region (longer routes, weaker carriers).
REGION_LATE_RISK = np.array([0.06, 0.05, 0.09, 0.08, 0.2, 0.12])
_REGION_ZH = np.array([0.04, 0.04, 0.03, 0.92, 0.9, 0.5])
MEMBERSHIP: tuple[str, ...] = ("basic", "silver", "gold", "platinum")
CHANNELS: tuple[str, ...] = ("organic", "search_ads", "social", "referral", "affiliate")
DEVICES: tuple[str, ...] = ("web", "app")
PRESTART_DAYS = 730


@dataclass(frozen=True, kw_only=True)
class Traits:
    """Per-customer arrays read by the day-step dynamics; every field has the customers first."""

    segment: np.ndarray  # int8
    signup_day: np.ndarray  # int32, day index relative to the window start (negative = before)
    base_rate: np.ndarray
    hazard_mult: np.ndarray
    price_sensitivity: np.ndarray
    baseline: np.ndarray
    breadth: np.ndarray
    visit_ratio: np.ndarray
    contact_ok: np.ndarray  # bool
    campaign_u: np.ndarray  # (n, n_campaigns, 2): pre-drawn uniforms (targeting, arm)
    # Latent sensitivity to slow delivery in [0, 1]; only the drift scenario uses it.
    delivery_sensitivity: np.ndarray
    # 1.0 where a competitor launched fast delivery (the drift scenario's regions), else 0.0.
    competitor: np.ndarray

    @property
    def n(self) -> int:
        return int(self.segment.shape[0])


def take_traits(*, traits: Traits, index: np.ndarray) -> Traits:
    """Select (and repeat) customers: the truth recursion runs on stacked copies."""
    return Traits(**{f.name: getattr(traits, f.name)[index] for f in fields(Traits)})


@dataclass(frozen=True, kw_only=True)
class Population:
    """Everything drawn about the customers once, before the first day."""

    traits: Traits
    signup_second: np.ndarray  # seconds after midnight of the signup day
    region: np.ndarray  # int8 into REGIONS
    membership: np.ndarray  # int8 into MEMBERSHIP
    acquisition: np.ndarray  # int8 into CHANNELS
    language_zh: np.ndarray  # bool
    email_ok: np.ndarray  # bool
    preferred_hour: np.ndarray  # float hours
    device: np.ndarray  # int8 into DEVICES
    pref_cum: np.ndarray  # (n, N_CATEGORIES) cumulative category preferences
    return_propensity: np.ndarray
    initial_alive: np.ndarray  # bool
    initial_last_order: np.ndarray  # int32, day of the last order before the window (or -10**6)


def draw_delivery_sensitivity(*, rng: np.random.Generator, region: np.ndarray) -> np.ndarray:
    """Each customer's latent sensitivity to slow delivery: Beta(a_r, 2.5), a_r = 0.5 + 12 * the
    region's late-delivery risk (customers where deliveries are often late care more).

    Means by region run from about 0.31 (us-east) to 0.54 (cn-south).

    >>> d = draw_delivery_sensitivity(rng=np.random.default_rng(0), region=np.zeros(4, np.int8))
    >>> bool(((d >= 0) & (d <= 1)).all())
    True
    """
    return rng.beta(0.5 + 12.0 * REGION_LATE_RISK[region], 2.5)


def draw_population(*, rng: np.random.Generator, n_users: int, days: int,
                    n_campaigns: int, trait_rng: np.random.Generator | None = None,
                    competitor_regions: tuple[str, ...] = (),
                    prestart_share: float = 0.5, zh_share: float | None = None) -> Population:
    """Draw ``n_users`` customers; about half signed up in the two years before the window.

    ``trait_rng`` draws the delivery sensitivity from a stream of its own, so that the other
    draws are the same with or without it; without it everyone's sensitivity is 0.
    ``competitor_regions``: where a competitor launches fast delivery (drift scenario).
    ``prestart_share``: the share signed up before the window (0: all sign up in it, as the
    newcomers of a continued shop); the random draws are the same whatever it is.
    ``zh_share``: the share of customers who write in Chinese, the same in every region (1.0: a
    Chinese-only shop); None (the default) keeps the regions' own shares (92% in cn-east, 4% in
    us-west, ...). The same uniform decides either way, so the other draws do not move.
    """
    n = n_users
    prestart = rng.random(n) < prestart_share
    seg_pre = rng.choice(4, size=n, p=[0.3, 0.3, 0.4, 0.0])
    seg_new = rng.choice(4, size=n, p=[0.08, 0.14, 0.18, 0.6])
    segment = np.where(prestart, seg_pre, seg_new).astype(np.int8)
    signup_day = np.where(prestart, -rng.integers(1, PRESTART_DAYS + 1, size=n),
                          rng.integers(0, days, size=n)).astype(np.int32)
    signup_second = rng.integers(0, 6 * 3600, size=n)

    ps = np.empty(n)
    baseline = np.empty(n)
    for k, (a, b) in enumerate(_PS_BETA):
        m = segment == k
        ps[m] = rng.beta(a, b, size=int(m.sum()))
        mu, sd = _BASELINE[k]
        baseline[m] = rng.normal(mu, sd, size=int(m.sum()))
    # Rates vary within a segment too: gamma heterogeneity with mean 1, as in the BG/NBD model
    # (Fader, Hardie & Lee 2005, "Counting your customers the easy way", eq. 2).
    base_rate = _BASE_RATE[segment] * rng.gamma(4.0, 0.25, size=n)
    alpha = np.exp(rng.normal(np.log(0.6), 0.9, size=n))
    pref = rng.gamma(np.repeat(alpha[:, None], N_CATEGORIES, axis=1))
    pref = np.maximum(pref, 1e-12)
    pref /= pref.sum(axis=1, keepdims=True)
    breadth = 1.0 / np.sum(pref**2, axis=1)
    pref_cum = np.cumsum(pref, axis=1)
    pref_cum[:, -1] = 1.0

    region = rng.choice(len(REGIONS), size=n, p=_REGION_P).astype(np.int8)
    u_language = rng.random(n)
    language_zh = u_language < (_REGION_ZH[region] if zh_share is None else zh_share)
    level_score = (segment == LOYAL) * 1.2 + rng.normal(0, 0.8, size=n) - (segment == NEW) * 0.8
    membership = np.digitize(level_score, [0.3, 1.0, 1.8]).astype(np.int8)
    acquisition = rng.choice(len(CHANNELS), size=n, p=[0.35, 0.25, 0.2, 0.12, 0.08]).astype(np.int8)
    contact_ok = rng.random(n) < 0.85
    email_ok = contact_ok & (rng.random(n) < 0.85)
    preferred_hour = np.clip(rng.normal(np.where(rng.random(n) < 0.6, 20.0, 12.5), 1.8), 6.5, 22.0)
    device = (rng.random(n) < 0.55).astype(np.int8)

    # Pre-start customers: alive by segment; the last order is roughly Exp(base rate) ago for the
    # alive and older (they went quiet first) for the dormant. Real exports cut history the same
    # way.
    tenure = np.maximum(-signup_day, 1)
    initial_alive = np.where(prestart, rng.random(n) < _ALIVE_AT_START[segment], True)
    since_alive = rng.exponential(1.0 / np.maximum(base_rate, 1e-4))
    since_dormant = 30 + rng.random(n) * 400
    since = np.minimum(np.where(initial_alive, since_alive, since_dormant), tenure)
    initial_last_order = np.where(prestart, -np.ceil(since), -10**6).astype(np.int32)

    traits = Traits(
        segment=segment, signup_day=signup_day, base_rate=base_rate,
        hazard_mult=_HAZARD_MULT[segment], price_sensitivity=ps, baseline=baseline,
        breadth=breadth, visit_ratio=1.5 + rng.gamma(2.0, 0.6, size=n), contact_ok=contact_ok,
        campaign_u=rng.random((n, n_campaigns, 2)),
        delivery_sensitivity=np.zeros(n) if trait_rng is None
        else draw_delivery_sensitivity(rng=trait_rng, region=region),
        competitor=np.isin(region, [REGIONS.index(r) for r in competitor_regions]).astype(float),
    )
    return Population(
        traits=traits, signup_second=signup_second, region=region, membership=membership,
        acquisition=acquisition, language_zh=language_zh, email_ok=email_ok,
        preferred_hour=preferred_hour, device=device, pref_cum=pref_cum,
        return_propensity=_RETURN[segment], initial_alive=initial_alive,
        initial_last_order=initial_last_order,
    )
