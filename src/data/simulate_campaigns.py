"""Campaigns of the simulated bank: who is contacted, and what a contact truly does to each customer (issue 18).

Each named campaign (conf/simulator/default.yaml, ``campaigns.list``) runs in some months of the year through one
channel and pitches one product (or ``retention``). In a campaign month every reachable customer (active or in a
churn warning phase; for a product campaign, not holding the product) is either in the campaign's randomised
experiment (``randomised_share`` of them: a coin with ``randomised_contact_prob`` decides contact or hold-out, as
banks run control groups) or left to the bank's targeting (the wealth-targeted contact odds of the month loop).

What a contact does, for ``effect_months`` months from the contact (fading by ``effect_fade`` a month):
- adoption of the campaign's product: the monthly hazard gains an additive ``delta`` (negative: pushed away), on
  top of the response lift every contact has through the customer's response;
- churn: the onset hazard is multiplied by ``exp(kappa)`` from the next month (kappa > 0: a "sleeping dog"
  reminded to leave; a retention call calms the dissatisfied, ``dissatisfaction_beta`` < 0).
``delta`` and ``kappa`` differ by persona (blended by the customer's persona weights), composite tier (by AUM)
and channel (an app campaign reaches digital customers, a branch event the others).

The true individual effect (probability of the outcome within ``effect_months`` with a contact minus without,
given the customer's hazards in the contact month held constant) goes to ``ground_truth_campaigns`` only; the
observable log of who was in which arm goes to ``campaign_assignments`` (a bank's campaign system keeps it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bankseg.data.simulate_population import ADOPTABLE, PERSONAS

RETENTION = "retention"
GROUPS: tuple[str, ...] = ("randomised_contact", "randomised_holdout", "targeted")
CHANNELS: tuple[str, ...] = ("app", "branch", "phone")
TIER_BOUNDS = np.array([50_000.0, 500_000.0, 2_000_000.0, 6_000_000.0])  # mass < gold < platinum < diamond < private
TIERS: tuple[str, ...] = ("mass", "gold", "platinum", "diamond", "private")


@dataclass(frozen=True)
class Campaign:
    """One named campaign, its schedule and its true effect parameters."""

    name: str
    product: str  # a product of ADOPTABLE, or "retention"
    months: tuple[int, ...]  # months of the year it runs (1-12)
    channel: str
    adoption_effect: np.ndarray  # per persona: monthly adoption-hazard increment of a contact
    churn_effect: np.ndarray  # per persona: log multiplier of the churn hazard
    tier_factor: np.ndarray  # per composite tier: multiplier of the adoption effect
    dissatisfaction_beta: float  # kappa += beta x dissatisfaction
    randomised_share: float
    randomised_contact_prob: float

    @property
    def product_col(self) -> int:
        """Column of the product in ADOPTABLE (-1 for retention)."""
        return -1 if self.product == RETENTION else ADOPTABLE.index(self.product)


def _per_persona(values: dict | None, what: str, campaign: str) -> np.ndarray:
    values = dict(values or {})
    unknown = sorted(set(values) - set(PERSONAS))
    if unknown:
        raise ValueError(f"campaign {campaign!r}: unknown personas in {what}: {unknown}")
    return np.array([float(values.get(p, 0.0)) for p in PERSONAS])


def parse_campaigns(cfg: dict) -> tuple[Campaign, ...]:
    """The named campaigns of the ``campaigns`` config section; one error lists every problem."""
    out, problems, taken = [], [], {}
    for name, c in (cfg.get("list") or {}).items():
        product, channel = c.get("product"), c.get("channel", "phone")
        if product != RETENTION and product not in ADOPTABLE:
            problems.append(f"{name}: product {product!r} is neither 'retention' nor one of {list(ADOPTABLE)}")
            continue
        if channel not in CHANNELS:
            problems.append(f"{name}: channel {channel!r} not in {list(CHANNELS)}")
        months = tuple(int(m) for m in c.get("months", ()))
        for m in months:
            if not 1 <= m <= 12:
                problems.append(f"{name}: month {m} outside 1-12")
            elif m in taken:
                problems.append(f"{name}: month {m} already taken by campaign {taken[m]!r} (one campaign a month)")
            taken.setdefault(m, name)
        tiers = dict(c.get("tier_factor", {}))
        tier_factor = np.array([float(tiers.get(t, 1.0)) for t in TIERS])
        out.append(Campaign(
            name=name, product=product, months=months, channel=channel,
            adoption_effect=_per_persona(c.get("adoption_effect"), "adoption_effect", name),
            churn_effect=_per_persona(c.get("churn_effect"), "churn_effect", name),
            tier_factor=tier_factor, dissatisfaction_beta=float(c.get("dissatisfaction_beta", 0.0)),
            randomised_share=float(c.get("randomised_share", cfg["randomised_share"])),
            randomised_contact_prob=float(c.get("randomised_contact_prob", cfg["randomised_contact_prob"])),
        ))
    if problems:
        raise ValueError("invalid campaigns: " + "; ".join(problems))
    return tuple(out)


@dataclass
class CampaignLog:
    """Rows collected month by month: the assignment log and the true individual effects."""

    cust: list[np.ndarray] = field(default_factory=list)
    month: list[np.ndarray] = field(default_factory=list)
    campaign: list[np.ndarray] = field(default_factory=list)
    group: list[np.ndarray] = field(default_factory=list)
    true_adoption: list[np.ndarray] = field(default_factory=list)
    true_churn: list[np.ndarray] = field(default_factory=list)

    def add(self, cust: np.ndarray, month: int, campaign: int, group: np.ndarray, true_adoption: np.ndarray,
            true_churn: np.ndarray) -> None:
        self.cust.append(cust)
        self.month.append(np.full(cust.size, month))
        self.campaign.append(np.full(cust.size, campaign))
        self.group.append(group)
        self.true_adoption.append(np.asarray(true_adoption, dtype=float))
        self.true_churn.append(np.asarray(true_churn, dtype=float))

    def arrays(self) -> dict[str, np.ndarray]:
        names = ("cust", "month", "campaign", "group", "true_adoption", "true_churn")
        dtypes = (np.int64, np.int64, np.int64, np.int8, np.float64, np.float64)
        return {
            k: (np.concatenate(getattr(self, k)).astype(d) if getattr(self, k) else np.zeros(0, dtype=d))
            for k, d in zip(names, dtypes, strict=True)
        }


def campaign_of_month(campaigns: tuple[Campaign, ...], month_of_year0: int) -> int:
    """Index of the campaign running in a month (0-based month of year), -1 if none."""
    for i, c in enumerate(campaigns):
        if month_of_year0 + 1 in c.months:
            return i
    return -1


def composite_tier(aum: np.ndarray) -> np.ndarray:
    """Tier index (0 = mass ... 4 = private) of an AUM (the simulator's stand-in for the 3-month average)."""
    return np.searchsorted(TIER_BOUNDS, aum, side="right")


def channel_factor(channel: str, digital: np.ndarray) -> np.ndarray:
    """How well a channel reaches a customer: an app campaign the digital, a branch event the others."""
    if channel == "app":
        return 0.3 + 1.4 * digital
    if channel == "branch":
        return 0.3 + 1.4 * (1.0 - digital)
    return np.ones_like(digital)


def individual_effects(
    c: Campaign, weight: np.ndarray, persona: np.ndarray, second: np.ndarray, aum: np.ndarray,
    digital: np.ndarray, dissatisfaction: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """(delta, kappa) per customer: adoption-hazard increment and churn log-multiplier of a contact."""
    def blend(per_persona: np.ndarray) -> np.ndarray:
        return weight * per_persona[persona] + (1.0 - weight) * per_persona[second]

    reach = channel_factor(c.channel, digital)
    delta = blend(c.adoption_effect) * c.tier_factor[composite_tier(aum)] * reach
    kappa = (blend(c.churn_effect) + c.dissatisfaction_beta * dissatisfaction) * np.sqrt(reach)
    return delta, kappa


def assign_contacts(
    rng: np.random.Generator, c: Campaign, reachable: np.ndarray, targeted: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(contacted, group) for one campaign month; group is -1 for a customer outside the campaign."""
    n = reachable.size
    u_in, u_coin = rng.random(n), rng.random(n)
    in_exp = reachable & (u_in < c.randomised_share)
    coin = u_coin < c.randomised_contact_prob
    contacted = np.where(in_exp, coin, reachable & targeted)
    group = np.full(n, -1, dtype=np.int8)
    group[in_exp & coin] = 0
    group[in_exp & ~coin] = 1
    group[~in_exp & contacted] = 2
    return contacted, group


def adoption_truth(a_base: np.ndarray, resp_prob: np.ndarray, delta: np.ndarray, cfg: dict) -> np.ndarray:
    """P(adopt within effect_months | contact) - P(... | no contact), hazards of the contact month held constant."""
    months, fade = int(cfg["effect_months"]), float(cfg["effect_fade"])
    lift, r_fade, r_months = float(cfg["response_lift"]), float(cfg["response_fade"]), int(cfg["response_months"])
    stay1 = np.ones_like(a_base)
    for k in range(months):
        resp = 1.0 + resp_prob * ((lift - 1.0) * r_fade**k if k < r_months else 0.0)
        stay1 *= 1.0 - np.clip(a_base * resp + delta * fade**k, 0.0, 0.9)
    stay0 = (1.0 - np.clip(a_base, 0.0, 0.9)) ** months
    return stay0 - stay1


def churn_truth(h: np.ndarray, kappa: np.ndarray, cfg: dict, max_hazard: float) -> np.ndarray:
    """P(churn onset within effect_months after the contact | contact) - P(... | no contact)."""
    months, fade = int(cfg["effect_months"]), float(cfg["effect_fade"])
    h = np.nan_to_num(h, nan=0.0)
    stay1 = np.ones_like(h)
    for k in range(months):
        stay1 *= 1.0 - np.minimum(h * np.exp(kappa * fade**k), max_hazard)
    stay0 = (1.0 - np.minimum(h, max_hazard)) ** months
    return stay0 - stay1
