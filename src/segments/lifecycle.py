"""Lifecycle stage (客户生命周期): new, growth, mature, declining, dormant; and the shared dormancy test.

Rules, first match wins (so a dormant long-standing customer is dormant, not declining):
1. dormant   - no transaction for ``dormancy.min_recency_days`` days or more and at most
               ``dormancy.max_logins_3m`` logins in the last 3 months;
2. new       - tenure < ``new_max_tenure_months``;
3. declining - 3-month AUM trend <= ``declining_max_aum_trend`` (e.g. -20%);
4. growth    - tenure < ``growth_max_tenure_months``, or AUM trend >= ``growth_min_aum_trend``;
5. mature    - everything else.
A missing AUM trend (no earlier balance to compare with) fires neither the declining nor the trend-growth
rule. A missing recency (no transaction ever) counts as dormant on the transaction side.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bankseg.segments._checks import SegmentName, numeric, parse_names, require_columns

LIFECYCLE_CODES: tuple[str, ...] = ("new", "growth", "mature", "declining", "dormant")


@dataclass(frozen=True)
class DormancyRules:
    """A customer is dormant with no transaction for this long and (almost) no logins."""

    min_recency_days: float = 180
    max_logins_3m: float = 0
    recency_column: str = "txn_recency_days"
    logins_column: str = "int_logins_3m"

    @classmethod
    def from_dict(cls, cfg: Mapping) -> DormancyRules:
        return cls(
            min_recency_days=float(cfg.get("min_recency_days", 180)),
            max_logins_3m=float(cfg.get("max_logins_3m", 0)),
        )


@dataclass(frozen=True)
class LifecycleRules:
    """Thresholds of the lifecycle rules (see the module docstring) and the stage names."""

    names: tuple[SegmentName, ...]
    new_max_tenure_months: float = 6
    declining_max_aum_trend: float = -0.2
    growth_max_tenure_months: float = 36
    growth_min_aum_trend: float = 0.1
    tenure_column: str = "cust_tenure_months"
    trend_column: str = "bal_aum_trend_3m"

    def __post_init__(self) -> None:
        if sorted(n.name for n in self.names) != sorted(LIFECYCLE_CODES):
            raise ValueError(f"lifecycle.names must be {list(LIFECYCLE_CODES)}")
        if self.declining_max_aum_trend >= self.growth_min_aum_trend:
            raise ValueError("lifecycle: declining_max_aum_trend must be below growth_min_aum_trend")

    @classmethod
    def from_dict(cls, cfg: Mapping) -> LifecycleRules:
        return cls(
            names=parse_names(cfg["names"], "lifecycle.names"),
            new_max_tenure_months=float(cfg.get("new_max_tenure_months", 6)),
            declining_max_aum_trend=float(cfg.get("declining_max_aum_trend", -0.2)),
            growth_max_tenure_months=float(cfg.get("growth_max_tenure_months", 36)),
            growth_min_aum_trend=float(cfg.get("growth_min_aum_trend", 0.1)),
        )

    @property
    def dtype(self) -> pd.CategoricalDtype:
        return pd.CategoricalDtype([n.name for n in self.names])


def is_dormant(frame: pd.DataFrame, rules: DormancyRules) -> pd.Series:
    """True where the customer has not transacted for ``min_recency_days`` and has (almost) not logged in."""
    require_columns(frame, [rules.recency_column, rules.logins_column], "dormancy")
    recency = numeric(frame, rules.recency_column)
    logins = np.nan_to_num(numeric(frame, rules.logins_column), nan=0.0)
    quiet = np.isnan(recency) | (recency >= rules.min_recency_days)
    return pd.Series(quiet & (logins <= rules.max_logins_3m), index=frame.index, name="dormant")


def assign_lifecycle(frame: pd.DataFrame, rules: LifecycleRules, dormancy: DormancyRules) -> pd.Series:
    """The lifecycle stage of every row (Categorical); needs tenure, AUM trend, recency and logins."""
    require_columns(frame, [rules.tenure_column, rules.trend_column], "lifecycle")
    tenure = numeric(frame, rules.tenure_column)
    if np.isnan(tenure).any():
        rows = list(frame.index[np.isnan(tenure)][:5])
        raise ValueError(f"lifecycle: {rules.tenure_column} missing in {int(np.isnan(tenure).sum())} rows, e.g. {rows}")
    trend = numeric(frame, rules.trend_column)
    conditions = [
        is_dormant(frame, dormancy).to_numpy(),
        tenure < rules.new_max_tenure_months,
        trend <= rules.declining_max_aum_trend,
        (tenure < rules.growth_max_tenure_months) | (trend >= rules.growth_min_aum_trend),
    ]
    order = [n.name for n in rules.names]
    choices = [order.index(s) for s in ("dormant", "new", "declining", "growth")]
    codes = np.select(conditions, choices, default=order.index("mature"))
    return pd.Series(pd.Categorical.from_codes(codes, dtype=rules.dtype), index=frame.index, name="lifecycle")
