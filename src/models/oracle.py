"""What the simulated bank's ground truth says a perfect model could reach (metrics only, never features).

The simulator writes the true monthly states and hazards beside the dataset (``ground_truth_monthly/``). The
oracle knows them up to month T-1, the last month an observer at an as_of T could know. For churn it ranks the
customers whose churn process has already begun (``churning``: warning signs, draining) first, then everyone by
the month's onset hazard: a customer already draining is the surest churner, and the hazard alone (which is
about *new* onsets) misses them. For upgrade it is the month's adoption hazard. Real datasets: None.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bankseg.data.io import read_table, table_path

# Which ground-truth columns rank customers for which label (summed); conversion has no planted hazard.
ORACLE_COLUMNS = {"label_churn": ("churning", "churn_hazard"), "label_upgrade": ("upgrade_hazard",)}


def oracle_scores(data_path: Path, keys: pd.DataFrame, target: str) -> np.ndarray | None:
    """The true hazard for ``target`` of each (customer_id, as_of) row of ``keys``; NaN where unknown.

    None when the dataset has no ground truth or the label has no planted hazard.
    """
    truth_columns = ORACLE_COLUMNS.get(target)
    if truth_columns is None or table_path(Path(data_path), "ground_truth_monthly") is None:
        return None
    observed = (pd.to_datetime(keys["as_of"]) - pd.DateOffset(months=1)).dt.to_period("M").dt.to_timestamp()
    months = sorted(observed.unique())
    truth = read_table(
        Path(data_path), "ground_truth_monthly", columns=["customer_id", "month", *truth_columns],
        filters=[("month", "in", [pd.Timestamp(m).to_pydatetime() for m in months])],
    )
    truth["month"] = pd.to_datetime(truth["month"]).dt.to_period("M").dt.to_timestamp()
    lookup = pd.DataFrame({"customer_id": keys["customer_id"].to_numpy(), "month": observed.to_numpy()})
    merged = lookup.merge(truth, on=["customer_id", "month"], how="left", validate="many_to_one")
    return merged[list(truth_columns)].astype(float).sum(axis=1, min_count=1).to_numpy()


def persona_truth(data_path: Path, customer_ids: np.ndarray) -> np.ndarray | None:
    """The planted persona of each customer id, or None for data without ground truth."""
    path = Path(data_path) / "ground_truth.parquet"
    if not path.exists():
        return None
    truth = pd.read_parquet(path, columns=["customer_id", "persona"])
    return pd.DataFrame({"customer_id": customer_ids}).merge(truth, on="customer_id", how="left")["persona"].to_numpy()
