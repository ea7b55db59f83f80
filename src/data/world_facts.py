"""Facts about a simulated bank that say whether it looks like a real retail book (tests and benchmarks only).

The targets (DESIGN.md, "The synthetic bank"; issue 12): 20-30% of customers low-activity or dormant, about
2-3% at or above 500k CNY, many near-empty accounts, annual attrition of active customers about 8-15%.
Everything but the attrition is measured from the canonical tables as a bank would; the attrition needs the
ground truth (when each customer's churn truly began), so this module is never used by a pipeline step.

Definitions, for an ``as_of`` (first day of a month) and the customers holding a product at as_of:
- ``low_activity_share``: fewer than ``LOW_ACTIVITY_TXNS`` transactions in the 3 months before as_of, not
  counting the bank's own postings (interest, fees);
- ``share_aum_500k``: 3-month average daily AUM >= 500,000; ``near_empty_share``: below 1,000;
- ``annual_attrition_active``: of the customers in the ``active`` state 12 months before as_of, the share whose
  churn began (ground truth onset) in those 12 months.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bankseg.data.io import read_table
from bankseg.data.schema import DEFAULT_AUM_PRODUCTS

LOW_ACTIVITY_TXNS = 3  # fewer than one customer transaction a month
BANK_POSTINGS = ("interest", "fee")


def world_facts(data_path: Path | str, as_of: pd.Timestamp | str) -> dict[str, float]:
    """The realism facts of the simulated bank at ``data_path`` as of ``as_of`` (see the module docstring)."""
    root = Path(data_path)
    as_of = pd.Timestamp(as_of)
    back3 = as_of - pd.DateOffset(months=3)
    holdings = read_table(root, "holdings", columns=["customer_id", "opened", "closed"])
    open_now = (holdings["opened"] < as_of) & (holdings["closed"].isna() | (holdings["closed"] >= as_of))
    customers = np.unique(holdings.loc[open_now, "customer_id"].to_numpy())

    txns = read_table(root, "transactions", columns=["customer_id", "ts", "category"],
                      filters=[("ts", ">=", back3.to_pydatetime()), ("ts", "<", as_of.to_pydatetime())])
    own = txns.loc[~txns["category"].astype(str).isin(BANK_POSTINGS), "customer_id"]
    counts = own.value_counts().reindex(customers, fill_value=0).to_numpy()

    balances = read_table(root, "balances", columns=["customer_id", "month", "product", "avg_daily_balance"],
                          filters=[("month", ">=", back3.to_pydatetime()), ("month", "<", as_of.to_pydatetime())])
    aum_rows = balances[balances["product"].astype(str).isin(DEFAULT_AUM_PRODUCTS)]
    aum = (aum_rows.groupby("customer_id")["avg_daily_balance"].sum() / 3).reindex(customers, fill_value=0.0)

    return {
        "as_of": str(as_of.date()),
        "n_customers_open": int(customers.size),
        "low_activity_share": float(np.mean(counts < LOW_ACTIVITY_TXNS)),
        "share_aum_500k": float(np.mean(aum.to_numpy() >= 500_000)),
        "near_empty_share": float(np.mean(aum.to_numpy() < 1_000)),
        "annual_attrition_active": annual_attrition(root, as_of),
    }


def annual_attrition(root: Path, as_of: pd.Timestamp) -> float:
    """Share of the customers active 12 months before ``as_of`` whose churn began in those 12 months."""
    start = as_of - pd.DateOffset(months=12)
    monthly = read_table(root, "ground_truth_monthly", columns=["customer_id", "month", "state"],
                         filters=[("month", "==", start.to_pydatetime())])
    active = monthly.loc[monthly["state"].astype(str) == "active", "customer_id"]
    truth = pd.read_parquet(root / "ground_truth.parquet", columns=["customer_id", "churn_onset_month"])
    onset = pd.to_datetime(truth.set_index("customer_id")["churn_onset_month"]).reindex(active)
    return float(((onset >= start) & (onset < as_of)).mean())
