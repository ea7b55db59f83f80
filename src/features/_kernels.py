"""Numpy kernels the feature blocks share: customer codes, category codes, month slices, grouped sums.

Every block maps its rows to dense customer codes once, assigns each row to a *month slice* relative to
``as_of`` (slice 0 = the month just before as_of), and aggregates with ``np.bincount`` on
``code * n_slices + slice``. A window of ``w`` months is then a cumulative sum over the first ``w`` slices,
so all windows come from one pass over the rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def require_columns(rows: pd.DataFrame, columns: Sequence[str], table: str) -> None:
    """Raise ValueError naming every column of ``columns`` that ``rows`` lacks."""
    missing = [c for c in columns if c not in rows.columns]
    if missing:
        raise ValueError(f"{table}: missing columns {missing} (have {list(rows.columns)})")


def normalise_as_of(as_of) -> pd.Timestamp:
    """Return ``as_of`` as a tz-naive Timestamp; raise ValueError for NaT or tz-aware values."""
    ts = pd.Timestamp(as_of)
    if ts is pd.NaT or pd.isna(ts):
        raise ValueError(f"as_of must be a date, got {as_of!r}")
    if ts.tzinfo is not None:
        raise ValueError(f"as_of must be tz-naive (dates in the data are naive), got {as_of!r}")
    return ts


def customer_index(customer_ids) -> np.ndarray:
    """Return the sorted unique int64 customer ids that define the output rows of a block."""
    ids = np.unique(np.asarray(customer_ids, dtype=np.int64))
    return ids


def customer_codes(customer_id: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Map each row's customer_id to its position in the sorted ``ids``; -1 for customers not in ``ids``.

    Dense id ranges (the usual case) use a lookup table (one gather per row); sparse ranges fall back to
    a binary search.
    """
    cid = np.asarray(customer_id, dtype=np.int64)
    codes = np.full(cid.shape[0], -1, dtype=np.int64)
    if ids.size == 0 or cid.size == 0:
        return codes
    lo, hi = int(ids[0]), int(ids[-1])
    span = hi - lo + 1
    if span <= 8 * ids.size + 1024:
        lut = np.full(span, -1, dtype=np.int64)
        lut[ids - lo] = np.arange(ids.size, dtype=np.int64)
        inside = (cid >= lo) & (cid <= hi)
        if inside.all():
            return lut[cid - lo]
        codes[inside] = lut[cid[inside] - lo]
        return codes
    pos = np.searchsorted(ids, cid)
    pos_clipped = np.minimum(pos, ids.size - 1)
    hit = ids[pos_clipped] == cid
    codes[hit] = pos_clipped[hit]
    return codes


def category_codes(values: pd.Series, allowed: Sequence[str], column: str) -> np.ndarray:
    """Return int8 positions of ``values`` in ``allowed`` (-1 for missing); ValueError on unknown values.

    ``values`` may be ``category`` (fast: only the categories are looked up) or ``str``/object.
    """
    allowed = list(allowed)
    if isinstance(values.dtype, pd.CategoricalDtype):
        cats = values.cat.categories
        lut = pd.Index(allowed).get_indexer(cats.astype(str)).astype(np.int8)
        raw = values.cat.codes.to_numpy()
        codes = np.where(raw >= 0, lut[raw], np.int8(-1)).astype(np.int8)
        unknown = (raw >= 0) & (codes < 0)
    else:
        codes = pd.Index(allowed).get_indexer(values.astype(object)).astype(np.int8)
        unknown = (codes < 0) & values.notna().to_numpy()
    if unknown.any():
        bad = sorted(set(values[unknown].astype(str).unique().tolist()))
        rows = np.flatnonzero(unknown)
        raise ValueError(
            f"{column}: {int(unknown.sum())} rows hold values outside {allowed}: {bad[:10]} "
            f"(first rows {rows[:10].tolist()})"
        )
    return codes


def datetime_values(values: pd.Series, column: str) -> np.ndarray:
    """Return the column as a numpy datetime64 array (any resolution); ValueError if it is not dates."""
    if not pd.api.types.is_datetime64_any_dtype(values.dtype):
        raise ValueError(f"{column}: expected datetime64 values, got dtype {values.dtype}")
    if getattr(values.dtype, "tz", None) is not None:
        raise ValueError(f"{column}: expected tz-naive datetimes, got {values.dtype}")
    return values.to_numpy()


def month_edges(as_of: pd.Timestamp, n_months: int) -> list[pd.Timestamp]:
    """Return ``[as_of - k months for k in 0..n_months]`` (calendar months; day clipped to month end)."""
    return [as_of - pd.DateOffset(months=k) for k in range(n_months + 1)]


def month_slices(ts: np.ndarray, as_of: pd.Timestamp, n_months: int) -> np.ndarray:
    """Assign each timestamp its month slice: k for ``as_of - (k+1) months <= ts < as_of - k months``.

    Rows at or after ``as_of`` (the future) and rows older than ``n_months`` get -1. NaT gets -1.
    """
    edges = month_edges(as_of, n_months)[::-1]  # ascending: as_of - n_months ... as_of
    edges_arr = np.array([np.datetime64(e.to_datetime64()) for e in edges]).astype(ts.dtype)
    idx = np.searchsorted(edges_arr, ts, side="right")
    slices = (n_months - idx).astype(np.int64)
    outside = (idx == 0) | (idx == n_months + 1) | np.isnat(ts)
    slices[outside] = -1
    return slices


def month_number(values: np.ndarray) -> np.ndarray:
    """Return year * 12 + month - 1 for datetime64 values (a month counter that subtracts cleanly)."""
    return values.astype("datetime64[M]").astype(np.int64)


def grouped_sum(keys: np.ndarray, n_keys: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Sum ``weights`` (or count rows) per key in ``0..n_keys-1`` with ``np.bincount``."""
    out = np.bincount(keys, weights=weights, minlength=n_keys)
    return out.astype(np.float64, copy=False)


def window_sums(per_slice: np.ndarray, windows: Sequence[int]) -> dict[int, np.ndarray]:
    """Turn a (customers x slices) matrix into {w: sum over the first w slices} for each window."""
    cum = np.cumsum(per_slice, axis=1)
    return {w: cum[:, w - 1] for w in windows}


def safe_ratio(num: np.ndarray, den: np.ndarray, fill: float) -> np.ndarray:
    """Return num / den, ``fill`` where den is 0."""
    out = np.full(np.broadcast(num, den).shape, fill, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def lookback_months(windows: Sequence[int], at_least: int) -> int:
    """Return the number of month slices a block needs: the largest window, or ``at_least`` if larger."""
    windows = validate_windows(windows)
    return max(max(windows), at_least)


def validate_windows(windows: Sequence[int]) -> list[int]:
    """Return the windows as sorted unique positive ints; ValueError for empty or non-positive windows."""
    ws = sorted({int(w) for w in windows})
    if not ws or ws[0] < 1:
        raise ValueError(f"windows must be positive month counts, got {list(windows)}")
    return ws


def whole_months_between(start: np.ndarray, end: pd.Timestamp) -> np.ndarray:
    """Return whole calendar months from each ``start`` date to ``end`` (float; NaN where start is NaT)."""
    end64 = np.datetime64(end.to_datetime64())
    months = (month_number(np.array([end64]))[0] - month_number(start)).astype(np.float64)
    start_day = (start.astype("datetime64[D]") - start.astype("datetime64[M]")).astype(np.int64)
    end_day = int((end64.astype("datetime64[D]") - end64.astype("datetime64[M]")).astype(np.int64))
    months -= (end_day < start_day).astype(np.float64)
    months[np.isnat(start)] = np.nan
    return months
