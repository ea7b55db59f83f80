"""The four quadrants of seed 003: value (from the composite tier) x potential (service tier, propensity).

- ordinary 普通 (low value, low potential): activate everyday services to build balances;
- value 价值 (high value, low potential): keep the balances here;
- potential 潜力 (low value, high potential): money not yet with us, gather it;
- key 重点 (high value, high potential): maximise value, prevent churn.

High value: composite tier >= ``value_min_tier`` (gold by default).
High potential: the service tier sits ``min_service_uplift`` or more levels above the composite tier (a
relationship manager judged the customer worth more than the balances show, seed 003's reason for the
service tier), or the predicted conversion propensity is >= ``min_p_conversion``. A missing propensity (no
model yet, or a customer out of the model's scope) counts as not high: the service-tier rule still applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bankseg.segments._checks import SegmentName, parse_names, probability
from bankseg.segments.tiers import CompositeTierRules, as_tier

QUADRANT_CODES: tuple[str, ...] = ("ordinary", "value", "potential", "key")


@dataclass(frozen=True)
class QuadrantRules:
    """Thresholds for high value and high potential, and the four quadrant names (in QUADRANT_CODES order)."""

    names: tuple[SegmentName, ...]
    value_min_tier: str = "gold"
    min_service_uplift: int = 1
    min_p_conversion: float = 0.5

    def __post_init__(self) -> None:
        if [n.name for n in self.names] != list(QUADRANT_CODES):
            raise ValueError(f"quadrant.names must be {list(QUADRANT_CODES)} in this order")
        if self.min_service_uplift < 1:
            raise ValueError("quadrant.min_service_uplift must be >= 1")

    @classmethod
    def from_dict(cls, cfg: Mapping, tiers: CompositeTierRules) -> QuadrantRules:
        rules = cls(
            names=parse_names(cfg["names"], "quadrant.names"),
            value_min_tier=cfg.get("value_min_tier", "gold"),
            min_service_uplift=int(cfg.get("min_service_uplift", 1)),
            min_p_conversion=float(cfg.get("min_p_conversion", 0.5)),
        )
        tiers.rank(rules.value_min_tier)
        return rules

    @property
    def dtype(self) -> pd.CategoricalDtype:
        return pd.CategoricalDtype([n.name for n in self.names])


def assign_quadrant(
    composite_tier: pd.Series,
    service_tier: pd.Series,
    tiers: CompositeTierRules,
    rules: QuadrantRules,
    p_conversion: pd.Series | None = None,
) -> pd.Series:
    """The quadrant of every customer (Categorical ordinary/value/potential/key), aligned to the tiers."""
    composite = as_tier(composite_tier, tiers, "composite_tier").cat.codes.to_numpy()
    service = as_tier(service_tier, tiers, "service_tier").cat.codes.to_numpy()
    p = probability(p_conversion, composite_tier.index, "p_conversion")
    high_value = composite >= tiers.rank(rules.value_min_tier)
    # NaN >= threshold is False: no propensity, no model-driven potential.
    high_potential = (service - composite >= rules.min_service_uplift) | (p >= rules.min_p_conversion)
    codes = high_value.astype("int64") + 2 * high_potential.astype("int64")  # ordinary, value, potential, key
    return pd.Series(
        pd.Categorical.from_codes(codes.astype(np.int64), dtype=rules.dtype),
        index=composite_tier.index,
        name="quadrant",
    )
