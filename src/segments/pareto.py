"""The Pareto (80/20) table (seed 001): how concentrated AUM (or CLV) is across customers.

Customers are ranked by value, highest first (ties keep the input order, so results are reproducible), and
cut into ``n_groups`` equal-count groups (deciles by default; group 1 = the top). A customer's group is
floor(position * n_groups / n), so with n not divisible by n_groups the groups differ by at most one customer.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


def _ranked(values: pd.Series) -> np.ndarray:
    """Values as float64 sorted high to low; missing or negative values refused."""
    v = pd.to_numeric(values, errors="raise").to_numpy(dtype="float64", na_value=np.nan)
    if np.isnan(v).any() or (v < 0).any():
        bad = np.isnan(v) | (v < 0)
        raise ValueError(f"pareto: {int(bad.sum())} missing or negative values, e.g. rows {list(values.index[bad][:5])}")
    if len(v) == 0:
        raise ValueError("pareto: no customers")
    return v[np.argsort(-v, kind="stable")]


def top_share(values: pd.Series, share: float = 0.2) -> float:
    """Share of the total held by the top ``share`` of customers (ceil(share * n) customers)."""
    if not 0 < share <= 1:
        raise ValueError(f"pareto: share must lie in (0, 1], got {share}")
    v = _ranked(values)
    total = v.sum()
    if total == 0:
        return float("nan")
    return float(v[: math.ceil(share * len(v) - 1e-9)].sum() / total)


def pareto_table(values: pd.Series, n_groups: int = 10) -> pd.DataFrame:
    """One row per value group, top first.

    Columns: group (1 = highest values), n_customers, value_sum, value_share, value_min, value_max,
    cum_customer_share, cum_value_share (cumulative from the top: the Lorenz-style 80/20 curve).
    """
    if n_groups < 1:
        raise ValueError("pareto: n_groups must be >= 1")
    v = _ranked(values)
    n = len(v)
    group = np.arange(n) * n_groups // n + 1
    table = (
        pd.DataFrame({"group": group, "value": v})
        .groupby("group")["value"]
        .agg(n_customers="size", value_sum="sum", value_min="min", value_max="max")
        .reset_index()
    )
    total = v.sum()
    table["value_share"] = table["value_sum"] / total if total > 0 else np.nan
    table["cum_customer_share"] = table["n_customers"].cumsum() / n
    table["cum_value_share"] = table["value_sum"].cumsum() / total if total > 0 else np.nan
    return table[
        ["group", "n_customers", "value_sum", "value_share", "value_min", "value_max", "cum_customer_share",
         "cum_value_share"]
    ]
