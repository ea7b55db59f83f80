"""Customer lifetime value (CLV, seed 001): margin on AUM and loans, projected with a retention probability.

    annual margin m = sum_p aum_adb * share_p * rate_p   (AUM products; products without a rate use
                                                          ``aum_margin_rate``)
                    + loan_adb * loan_margin_rate         (net interest margin on loans)
    annual retention r = (1 - p_churn) ** (12 / churn_window_months)   when p_churn is given
                         (p_churn is the probability of churning within the label window, 3 months by
                          default, so it is compounded to a year), else ``default_annual_retention``
    CLV = sum_{t=1..H} m * r**t / (1 + d)**t = m * q * (1 - q**H) / (1 - q),   q = r / (1 + d)

Year t's margin is earned at its end and only if the customer is still here. Balances are held flat: CLV
values the current relationship, not a growth forecast. Money is in the dataset's currency.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bankseg.segments._checks import numeric, probability, require_columns


@dataclass(frozen=True)
class ClvRules:
    """Margin rates, horizon, discount and retention settings of the CLV formula (module docstring)."""

    aum_margin_rate: float = 0.012
    aum_product_margin_rates: Mapping[str, float] | None = None
    loan_margin_rate: float = 0.025
    horizon_years: int = 5
    discount_rate: float = 0.08
    default_annual_retention: float = 0.85
    churn_window_months: float = 3.0
    aum_column: str = "bal_aum_adb_3m"
    loan_column: str = "bal_loan_adb_3m"

    def __post_init__(self) -> None:
        if self.horizon_years < 1:
            raise ValueError("clv.horizon_years must be >= 1")
        if not 0 <= self.default_annual_retention <= 1:
            raise ValueError("clv.default_annual_retention must lie in [0, 1]")
        if self.discount_rate <= -1 or self.churn_window_months <= 0:
            raise ValueError("clv: discount_rate must be > -1 and churn_window_months > 0")

    @classmethod
    def from_dict(cls, cfg: Mapping) -> ClvRules:
        unknown = sorted(set(cfg) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"clv: unknown settings {unknown}")
        kwargs = dict(cfg)
        if kwargs.get("aum_product_margin_rates"):
            kwargs["aum_product_margin_rates"] = {str(k): float(v) for k, v in kwargs["aum_product_margin_rates"].items()}
        return cls(**kwargs)


def annual_margin(frame: pd.DataFrame, rules: ClvRules) -> pd.Series:
    """Yearly margin the bank earns on the customer's current AUM and loans (money per year)."""
    rates = rules.aum_product_margin_rates or {}
    share_cols = [f"bal_aum_share_{p}" for p in rates]
    require_columns(frame, [rules.aum_column, rules.loan_column, *share_cols], "clv")
    aum = np.nan_to_num(numeric(frame, rules.aum_column), nan=0.0)
    loans = np.nan_to_num(numeric(frame, rules.loan_column), nan=0.0)
    if (aum < 0).any() or (loans < 0).any():
        raise ValueError(f"clv: negative balances in rows {list(frame.index[(aum < 0) | (loans < 0)][:5])}")
    if rates:
        shares = np.column_stack([np.nan_to_num(numeric(frame, c), nan=0.0) for c in share_cols])
        # AUM not covered by a rated product (shares summing below 1) earns the generic rate.
        rest = np.clip(1.0 - shares.sum(axis=1), 0.0, None)
        aum_rate = shares @ np.array(list(rates.values())) + rest * rules.aum_margin_rate
    else:
        aum_rate = rules.aum_margin_rate
    return pd.Series(aum * aum_rate + loans * rules.loan_margin_rate, index=frame.index, name="annual_margin")


def annual_retention(index: pd.Index, rules: ClvRules, p_churn: pd.Series | None = None) -> pd.Series:
    """Yearly retention probability: (1 - p_churn) compounded over a year, or the configured default."""
    p = probability(p_churn, index, "p_churn")
    retention = np.where(np.isnan(p), rules.default_annual_retention, (1.0 - p) ** (12.0 / rules.churn_window_months))
    return pd.Series(retention, index=index, name="annual_retention")


def compute_clv(frame: pd.DataFrame, rules: ClvRules, p_churn: pd.Series | None = None) -> pd.Series:
    """CLV per row: discounted margin over ``horizon_years`` weighted by survival (module docstring)."""
    margin = annual_margin(frame, rules).to_numpy()
    q = annual_retention(frame.index, rules, p_churn).to_numpy() / (1.0 + rules.discount_rate)
    h = rules.horizon_years
    near_one = np.isclose(q, 1.0)
    safe_q = np.where(near_one, 0.5, q)
    factor = np.where(near_one, float(h), safe_q * (1.0 - safe_q**h) / (1.0 - safe_q))
    return pd.Series(margin * factor, index=frame.index, name="clv")
