"""Value class (客户价值分类, seed 000): high, potential_high, medium, low, unsuitable.

Rules, first match wins:
1. high           - composite tier >= ``high_min_tier`` (platinum). First, so that a wealthy customer with a
                    poor credit score stays high value (credit risk is managed elsewhere, not by dropping them);
2. unsuitable     - dormant (see lifecycle.DormancyRules) with a tier value < ``unsuitable_max_value``, or a
                    credit score < ``unsuitable_max_credit_score`` while holding loans (loan ADB > 0);
3. potential_high - (p_conversion >= ``potential_min_p_conversion``, or credit score >=
                    ``potential_min_credit_score`` at a tier >= ``potential_min_tier``) and not
                    p_churn >= ``potential_max_p_churn`` (someone about to leave is no growth prospect);
4. medium         - composite tier >= ``medium_min_tier`` (gold);
5. low            - everything else.
Missing propensities or credit scores never fire a rule (NaN compares False).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bankseg.segments._checks import SegmentName, numeric, parse_names, probability, require_columns
from bankseg.segments.lifecycle import DormancyRules, is_dormant
from bankseg.segments.tiers import CompositeTierRules, as_tier, composite_tier_value

VALUE_CLASS_CODES: tuple[str, ...] = ("high", "potential_high", "medium", "low", "unsuitable")


@dataclass(frozen=True)
class ValueClassRules:
    """Thresholds of the value-class rules (see the module docstring) and the class names."""

    names: tuple[SegmentName, ...]
    high_min_tier: str = "platinum"
    unsuitable_max_value: float = 1000.0
    unsuitable_max_credit_score: float = 500.0
    potential_min_p_conversion: float = 0.5
    potential_min_credit_score: float = 700.0
    potential_min_tier: str = "gold"
    potential_max_p_churn: float = 0.5
    medium_min_tier: str = "gold"
    credit_column: str = "cust_credit_score"

    def __post_init__(self) -> None:
        if sorted(n.name for n in self.names) != sorted(VALUE_CLASS_CODES):
            raise ValueError(f"value_class.names must be {list(VALUE_CLASS_CODES)}")

    @classmethod
    def from_dict(cls, cfg: Mapping, tiers: CompositeTierRules) -> ValueClassRules:
        defaults = cls.__dataclass_fields__
        kwargs = {k: cfg[k] for k in cfg if k in defaults and k != "names"}
        unknown = sorted(set(cfg) - set(defaults))
        if unknown:
            raise ValueError(f"value_class: unknown settings {unknown}")
        rules = cls(names=parse_names(cfg["names"], "value_class.names"), **kwargs)
        for tier in (rules.high_min_tier, rules.potential_min_tier, rules.medium_min_tier):
            tiers.rank(tier)
        return rules

    @property
    def dtype(self) -> pd.CategoricalDtype:
        return pd.CategoricalDtype([n.name for n in self.names])


def assign_value_class(
    frame: pd.DataFrame,
    composite_tier: pd.Series,
    tiers: CompositeTierRules,
    rules: ValueClassRules,
    dormancy: DormancyRules,
    p_conversion: pd.Series | None = None,
    p_churn: pd.Series | None = None,
) -> pd.Series:
    """The value class of every row (Categorical); propensities are optional aligned series in [0, 1].

    ``frame`` needs the tier-value columns (composite tier rules), recency, 3-month logins and the credit
    score column (nullable). The loan column is read to know who holds loans.
    """
    require_columns(frame, [rules.credit_column, tiers.loan_column], "value class")
    if not composite_tier.index.equals(frame.index):
        raise ValueError("value class: composite_tier must share the frame's index")
    rank = as_tier(composite_tier, tiers, "composite_tier").cat.codes.to_numpy()
    value = composite_tier_value(frame, tiers).to_numpy()
    credit = numeric(frame, rules.credit_column)
    has_loans = np.nan_to_num(numeric(frame, tiers.loan_column), nan=0.0) > 0
    p_conv = probability(p_conversion, frame.index, "p_conversion")
    p_out = probability(p_churn, frame.index, "p_churn")

    unsuitable = (is_dormant(frame, dormancy).to_numpy() & (value < rules.unsuitable_max_value)) | (
        (credit < rules.unsuitable_max_credit_score) & has_loans
    )
    promising = (p_conv >= rules.potential_min_p_conversion) | (
        (credit >= rules.potential_min_credit_score) & (rank >= tiers.rank(rules.potential_min_tier))
    )
    potential = promising & ~(p_out >= rules.potential_max_p_churn)
    conditions = [
        rank >= tiers.rank(rules.high_min_tier),
        unsuitable,
        potential,
        rank >= tiers.rank(rules.medium_min_tier),
    ]
    order = [n.name for n in rules.names]
    choices = [order.index(c) for c in ("high", "unsuitable", "potential_high", "medium")]
    codes = np.select(conditions, choices, default=order.index("low"))
    return pd.Series(pd.Categorical.from_codes(codes, dtype=rules.dtype), index=frame.index, name="value_class")
