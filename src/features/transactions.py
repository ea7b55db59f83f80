"""Transaction features (``txn_``): recency, counts and amounts by window, flows, salary, seasonality, mixes.

Point in time: only transactions with ``ts < as_of`` are used.
The table can be fed whole or in batches (:func:`build_transaction_features_batched`) with identical results. Window ``w`` is ``[as_of - w months, as_of)``
in calendar months (``pd.DateOffset``; a mid-month ``as_of`` gives month-long slices ending on its day, with
the day clipped to the end of shorter months). The block looks back at most ``max(windows, 12)`` months.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from bankseg.data.schema import CHANNELS, COUNTERPARTIES, DIRECTIONS, TXN_CATEGORIES
from bankseg.features import _kernels as k

TRANSACTION_COLUMNS = ("customer_id", "ts", "amount", "direction", "channel", "category", "counterparty")
MIX_MONTHS = 12  # channel and category shares, salary and seasonality look at the last 12 months
FLOW_MONTHS = 3  # net flow, outflow to other banks, count trend

_IN = DIRECTIONS.index("in")
_SALARY = TXN_CATEGORIES.index("salary")
_OTHER_BANK = COUNTERPARTIES.index("other_bank")


class TransactionAccumulator:
    """Running per-customer sums of the transaction aggregates for one ``as_of``; rows can come in batches.

    Sums use ``np.add.at``, which adds in row order exactly like one ``np.bincount`` over all rows, so feeding
    a table in batches gives bit-identical features to feeding it whole (and memory stays at one batch).
    """

    def __init__(self, ids: np.ndarray, as_of: pd.Timestamp, n_slices: int) -> None:
        self.ids, self.as_of, self.n_slices = ids, as_of, n_slices
        n = ids.size
        self.count = np.zeros((n, n_slices), dtype=np.int64)
        self.amount = np.zeros((n, n_slices))
        self.inflow = np.zeros((n, n_slices))
        self.to_other_bank_3m = np.zeros(n)
        self.last_day = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
        self.salary_n = np.zeros(n)
        self.salary_dom = np.zeros(n)
        self.salary_dom_sq = np.zeros(n)
        self.salary_slices = np.zeros((n, MIX_MONTHS), dtype=np.int64)
        self.by_channel = np.zeros((n, len(CHANNELS)), dtype=np.int64)
        self.by_category = np.zeros((n, len(TXN_CATEGORIES)), dtype=np.int64)

    def add(self, rows: pd.DataFrame) -> None:
        """Add a batch of transaction rows (rows at or after as_of, or of other customers, are ignored)."""
        k.require_columns(rows, TRANSACTION_COLUMNS, "transactions")
        n_slices = self.n_slices
        ts = k.datetime_values(rows["ts"], "transactions.ts")
        slices = k.month_slices(ts, self.as_of, n_slices)
        codes = k.customer_codes(rows["customer_id"].to_numpy(dtype=np.int64), self.ids)
        sel = np.flatnonzero((slices >= 0) & (codes >= 0))
        direction = k.category_codes(rows["direction"], DIRECTIONS, "transactions.direction")
        channel = k.category_codes(rows["channel"], CHANNELS, "transactions.channel")
        category = k.category_codes(rows["category"], TXN_CATEGORIES, "transactions.category")
        counterparty = k.category_codes(rows["counterparty"], COUNTERPARTIES, "transactions.counterparty")
        code_s, slice_s = codes[sel], slices[sel]
        amount = rows["amount"].to_numpy(dtype=np.float64)[sel]
        is_in = direction[sel] == _IN
        day = ts[sel].astype("datetime64[D]")

        cell = code_s * n_slices + slice_s
        np.add.at(self.count.reshape(-1), cell, 1)
        np.add.at(self.amount.reshape(-1), cell, amount)
        np.add.at(self.inflow.reshape(-1), cell, np.where(is_in, amount, 0.0))
        np.maximum.at(self.last_day, code_s, day.astype(np.int64))
        recent_out = (slice_s < FLOW_MONTHS) & ~is_in & (counterparty[sel] == _OTHER_BANK)
        np.add.at(self.to_other_bank_3m, code_s[recent_out], amount[recent_out])

        in_mix = slice_s < MIX_MONTHS
        salary = in_mix & is_in & (category[sel] == _SALARY)
        sal_code = code_s[salary]
        sal_day = day[salary]
        dom = (sal_day - sal_day.astype("datetime64[M]")).astype(np.int64) + 1.0
        np.add.at(self.salary_n, sal_code, 1.0)
        np.add.at(self.salary_dom, sal_code, dom)
        np.add.at(self.salary_dom_sq, sal_code, dom**2)
        np.add.at(self.salary_slices.reshape(-1), sal_code * MIX_MONTHS + slice_s[salary], 1)
        mix_code = code_s[in_mix]
        np.add.at(self.by_channel.reshape(-1), mix_code * len(CHANNELS) + channel[sel][in_mix], 1)
        np.add.at(self.by_category.reshape(-1), mix_code * len(TXN_CATEGORIES) + category[sel][in_mix], 1)

    def features(
        self, windows: Sequence[int], recency_cap_days: int, salary_day_std_scale: float
    ) -> pd.DataFrame:
        """Return the features (see :func:`build_transaction_features`) from the sums so far."""
        count = self.count.astype(np.float64)
        outflow = self.amount - self.inflow
        out: dict[str, np.ndarray] = {"customer_id": self.ids}
        as_of_day = self.as_of.to_datetime64().astype("datetime64[D]").astype(np.int64)
        none = self.last_day == np.iinfo(np.int64).min
        recency = np.where(none, recency_cap_days, as_of_day - np.where(none, as_of_day, self.last_day))
        out["txn_recency_days"] = np.minimum(recency, recency_cap_days).astype(np.int64)

        counts, amounts = k.window_sums(count, windows), k.window_sums(self.amount, windows)
        inflows, outflows = k.window_sums(self.inflow, windows), k.window_sums(outflow, windows)
        for w in windows:
            out[f"txn_count_{w}m"] = np.rint(counts[w]).astype(np.int64)
        for w in windows:
            out[f"txn_amount_{w}m"] = amounts[w]
        for w in windows:
            out[f"txn_inflow_{w}m"] = inflows[w]
        for w in windows:
            out[f"txn_outflow_{w}m"] = outflows[w]
        out["txn_net_flow_3m"] = (
            self.inflow[:, :FLOW_MONTHS].sum(axis=1) - outflow[:, :FLOW_MONTHS].sum(axis=1)
        )

        mean_dom = k.safe_ratio(self.salary_dom, self.salary_n, 0.0)
        var_dom = k.safe_ratio(self.salary_dom_sq, self.salary_n, 0.0) - mean_dom**2
        std_dom = np.sqrt(np.maximum(var_dom, 0.0))
        regularity = 1.0 - np.minimum(std_dom / salary_day_std_scale, 1.0)
        out["txn_salary_regularity"] = np.where(self.salary_n >= 2, regularity, 0.0)
        out["txn_salary_months_12m"] = (self.salary_slices > 0).sum(axis=1).astype(np.int64)

        inflow_12 = self.inflow[:, :MIX_MONTHS]
        out["txn_inflow_seasonality"] = k.safe_ratio(inflow_12.max(axis=1), inflow_12.sum(axis=1), 0.0)

        n_12 = count[:, :MIX_MONTHS].sum(axis=1)
        for i, c in enumerate(CHANNELS):
            out[f"txn_channel_share_{c}"] = k.safe_ratio(self.by_channel[:, i].astype(np.float64), n_12, 0.0)
        for i, c in enumerate(TXN_CATEGORIES):
            out[f"txn_category_share_{c}"] = k.safe_ratio(self.by_category[:, i].astype(np.float64), n_12, 0.0)

        out["txn_outflow_other_bank_share_3m"] = k.safe_ratio(
            self.to_other_bank_3m, outflow[:, :FLOW_MONTHS].sum(axis=1), 0.0
        )
        recent_count = count[:, :FLOW_MONTHS].sum(axis=1)
        earlier_count = count[:, FLOW_MONTHS : 2 * FLOW_MONTHS].sum(axis=1)
        out["txn_count_trend_3m"] = k.safe_ratio(recent_count, earlier_count, np.nan) - 1.0
        return pd.DataFrame(out)


def build_transaction_features(
    rows: pd.DataFrame,
    as_of: pd.Timestamp,
    *,
    windows: Sequence[int],
    recency_cap_days: int = 400,
    salary_day_std_scale: float = 7.5,
    customer_ids: Sequence[int] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Return one row of transaction features per customer, from transactions strictly before ``as_of``.

    ``rows`` holds the transactions table (customer_id, ts, amount, direction, channel, category,
    counterparty). Output rows are ``customer_ids`` (sorted) when given, else customers with a transaction in
    the look-back; customers without transactions get 0 counts, amounts and shares, NaN trend, and the
    capped recency.

    Definitions: ``txn_recency_days`` = whole days from the last transaction's date to ``as_of``'s date,
    ``recency_cap_days`` when there is none in the look-back (values never exceed the cap).
    ``txn_salary_regularity`` = 1 - min(std of the salary credits' day of month / ``salary_day_std_scale``, 1)
    over 12 months, 0 with fewer than 2 salary credits. ``txn_salary_months_12m`` = month slices holding a
    salary credit. ``txn_inflow_seasonality`` = largest single month's share of 12-month inflows (1/12 =
    perfectly even, 1 = one lump; 0 without inflows). Channel and category shares are shares of the 12-month
    transaction *count*. ``txn_outflow_other_bank_share_3m`` = share of 3-month outflow amount paid to other
    banks. ``txn_count_trend_3m`` = count of the last 3 months / count of the 3 before - 1 (NaN when that is 0).
    """
    k.require_columns(rows, TRANSACTION_COLUMNS, "transactions")
    as_of = k.normalise_as_of(as_of)
    windows = k.validate_windows(windows)
    n_slices = k.lookback_months(windows, MIX_MONTHS)
    if customer_ids is None:
        slices = k.month_slices(k.datetime_values(rows["ts"], "transactions.ts"), as_of, n_slices)
        customer_ids = rows["customer_id"].to_numpy(dtype=np.int64)[slices >= 0]
    accumulator = TransactionAccumulator(k.customer_index(customer_ids), as_of, n_slices)
    accumulator.add(rows)
    return accumulator.features(windows, recency_cap_days, salary_day_std_scale)


def build_transaction_features_batched(
    batches: Iterable[pd.DataFrame],
    as_of_dates: Sequence[pd.Timestamp],
    *,
    windows: Sequence[int],
    customer_ids: Sequence[int] | np.ndarray,
    recency_cap_days: int = 400,
    salary_day_std_scale: float = 7.5,
) -> list[pd.DataFrame]:
    """Return :func:`build_transaction_features` for each as_of date, reading the rows once, batch by batch.

    The result is bit-identical to passing the concatenated batches; memory holds one batch at a time plus
    the per-customer sums (customers x months).
    """
    windows = k.validate_windows(windows)
    n_slices = k.lookback_months(windows, MIX_MONTHS)
    ids = k.customer_index(customer_ids)
    accumulators = [TransactionAccumulator(ids, k.normalise_as_of(t), n_slices) for t in as_of_dates]
    for batch in batches:
        for accumulator in accumulators:
            accumulator.add(batch)
    return [a.features(windows, recency_cap_days, salary_day_std_scale) for a in accumulators]
