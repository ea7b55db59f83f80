"""Balance features (``bal_``): average daily AUM and loans by window, AUM trend, volatility, product mix.

Point in time: a balances row describes a whole month, so only months that ended before ``as_of`` are used.
For ``as_of`` on the first day of month M that is every month before M; for a mid-month ``as_of`` the
month that contains it is not finished and is left out too, so a mid-month ``as_of`` gives the same balance
features as the first day of its month. Window ``w`` is the ``w`` complete months before ``as_of``'s month.

A customer's history starts at their first balances row before ``as_of``; within the history, a month without
a row counts as a zero balance. Average daily balance over a window = sum over the window's months of that
month's average daily balance / number of window months inside the history.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bankseg.data.schema import PRODUCTS
from bankseg.features import _kernels as k

BALANCE_COLUMNS = ("customer_id", "month", "product", "avg_daily_balance", "month_end_balance")
TREND_MONTHS = 3  # bal_aum_trend_3m compares the last 3 months with the 3 before
VOLATILITY_MONTHS = 6
SHARE_MONTHS = 3


def _product_positions(products: Sequence[str], role: str) -> np.ndarray:
    unknown = [p for p in products if p not in PRODUCTS]
    if unknown:
        raise ValueError(f"{role}: unknown products {unknown}; known: {list(PRODUCTS)}")
    return np.array([PRODUCTS.index(p) for p in products], dtype=np.int64)


def build_balance_features(
    rows: pd.DataFrame,
    as_of: pd.Timestamp,
    *,
    windows: Sequence[int],
    aum_products: Sequence[str],
    loan_products: Sequence[str],
    customer_ids: Sequence[int] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Return one row of balance features per customer, from months that ended before ``as_of``.

    ``rows`` holds the balances table (customer_id, month, product, avg_daily_balance, month_end_balance).
    Output rows are ``customer_ids`` (sorted) when given, else the customers with a row before ``as_of``;
    customers without rows get 0 balances, ``bal_history_months`` 0 and NaN trend/volatility.

    Columns: ``bal_aum_adb_{w}m``, ``bal_loan_adb_{w}m`` for each window; ``bal_aum_trend_3m`` (ADB of the
    last 3 months / ADB of the 3 before - 1; NaN when the earlier 3 months hold no AUM);
    ``bal_aum_volatility_6m`` (population std / mean of monthly AUM over the last 6 months of history; NaN
    when that mean is 0); ``bal_aum_share_{product}`` (share of 3-month AUM per AUM product; 0 when no AUM);
    ``bal_aum_month_end_last`` (month-end AUM of the last complete month); ``bal_history_months``.
    """
    k.require_columns(rows, BALANCE_COLUMNS, "balances")
    as_of = k.normalise_as_of(as_of)
    windows = k.validate_windows(windows)
    n_slices = k.lookback_months(windows, 2 * TREND_MONTHS)
    aum_pos = _product_positions(aum_products, "aum_products")
    loan_pos = _product_positions(loan_products, "loan_products")

    as_of_month = int(k.month_number(np.array([as_of.to_datetime64()]))[0])
    month_num = k.month_number(k.datetime_values(rows["month"], "balances.month"))
    visible = month_num < as_of_month
    cid = rows["customer_id"].to_numpy(dtype=np.int64)
    ids = k.customer_index(cid[visible] if customer_ids is None else customer_ids)
    n = ids.size
    codes = k.customer_codes(cid, ids)
    visible &= codes >= 0

    first_month = np.full(n, as_of_month, dtype=np.int64)
    np.minimum.at(first_month, codes[visible], month_num[visible])
    history = as_of_month - first_month

    rel = as_of_month - 1 - month_num
    sel = np.flatnonzero(visible & (rel < n_slices))
    code_s, rel_s = codes[sel], rel[sel]
    product = k.category_codes(rows["product"], PRODUCTS, "balances.product")[sel].astype(np.int64)
    adb = rows["avg_daily_balance"].to_numpy(dtype=np.float64)[sel]
    month_end = rows["month_end_balance"].to_numpy(dtype=np.float64)[sel]
    is_aum = np.isin(product, aum_pos)
    is_loan = np.isin(product, loan_pos)

    cell = code_s * n_slices + rel_s
    aum = k.grouped_sum(cell, n * n_slices, np.where(is_aum, adb, 0.0)).reshape(n, n_slices)
    loan = k.grouped_sum(cell, n * n_slices, np.where(is_loan, adb, 0.0)).reshape(n, n_slices)
    last_month_end = k.grouped_sum(code_s, n, np.where(is_aum & (rel_s == 0), month_end, 0.0))
    share_rows = is_aum & (rel_s < SHARE_MONTHS)
    by_product = k.grouped_sum(
        code_s[share_rows] * len(PRODUCTS) + product[share_rows], n * len(PRODUCTS), adb[share_rows]
    ).reshape(n, len(PRODUCTS))

    out: dict[str, np.ndarray] = {"customer_id": ids}
    aum_sums = k.window_sums(aum, windows)
    loan_sums = k.window_sums(loan, windows)
    for w in windows:
        months_in_history = np.minimum(w, history).astype(np.float64)
        out[f"bal_aum_adb_{w}m"] = k.safe_ratio(aum_sums[w], months_in_history, 0.0)
    for w in windows:
        months_in_history = np.minimum(w, history).astype(np.float64)
        out[f"bal_loan_adb_{w}m"] = k.safe_ratio(loan_sums[w], months_in_history, 0.0)

    recent = aum[:, :TREND_MONTHS].sum(axis=1)
    earlier = aum[:, TREND_MONTHS : 2 * TREND_MONTHS].sum(axis=1)
    out["bal_aum_trend_3m"] = k.safe_ratio(recent, earlier, np.nan) - 1.0

    n_vol = np.minimum(VOLATILITY_MONTHS, history)
    in_vol = np.arange(VOLATILITY_MONTHS)[None, :] < n_vol[:, None]
    vol_months = np.where(in_vol, aum[:, :VOLATILITY_MONTHS], 0.0)
    mean = k.safe_ratio(vol_months.sum(axis=1), n_vol.astype(np.float64), 0.0)
    centred = np.where(in_vol, vol_months - mean[:, None], 0.0)
    std = np.sqrt(k.safe_ratio((centred**2).sum(axis=1), n_vol.astype(np.float64), 0.0))
    out["bal_aum_volatility_6m"] = k.safe_ratio(std, mean, np.nan)

    aum_3m = by_product[:, aum_pos].sum(axis=1)
    for p, pos in zip(aum_products, aum_pos, strict=True):
        out[f"bal_aum_share_{p}"] = k.safe_ratio(by_product[:, pos], aum_3m, 0.0)
    out["bal_aum_month_end_last"] = last_month_end
    out["bal_history_months"] = history.astype(np.int64)
    return pd.DataFrame(out)
