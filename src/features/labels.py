"""Labels from the future window after ``as_of``: churn (流失), conversion (转化潜力), upgrade (产品升级).

Month arithmetic matches the balance features: the *past* is the complete months before ``as_of``'s month;
the *future* starts at ``as_of``'s month when ``as_of`` is the first of a month, else at the next month.
A label is NaN when the customer is out of its scope, or when the data does not cover its whole future
window (``data_end`` = the first day after the last month the balances table covers).

- churn (an early warning: it must predict, not read off, the drain):
  in scope when the past 3-month AUM ADB >= ``min_aum_adb`` and the customer is *not already draining or gone*
  at as_of: out of scope when the last month's AUM ADB is below ``draining_share`` of the mean over months
  T-6..T-4, or the last month-end AUM is below ``month_end_share`` of the past 3-month ADB, or nothing is held.
  1 when the future ``horizon_months`` AUM ADB is at most ``(1 - drop_share)`` of the past one *and* stays that
  low over the ``confirm_months`` after (so a seasonal dip is not churn), or when every account, the demand
  deposit included, is closed by the horizon's end. In a training frame one churn event is one positive: a
  customer positive at a training as_of is out of scope at the later training dates inside that event's window.
- conversion: in scope when the customer is below the target at as_of by both the tier value (3-month AUM
  ADB + ``loan_share`` x 3-month loan ADB, averaged over the months of history like ``bal_aum_adb_3m``) and the
  last month-end value (month-end AUM + ``loan_share`` x last month's loan ADB; :class:`ConversionScope`); 1 when the tier value as of the end of any of the next
  ``horizon_months`` months reaches it. New loans count toward it only with ``count_new_loans`` (default no:
  loans count up to their as_of level, so borrowing is not converting).
- upgrade: 1 when the customer opens, in ``[as_of, as_of + horizon)``, one of ``products`` not held at
  as_of; NaN for customers already holding all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bankseg.data.schema import DEFAULT_AUM_PRODUCTS, DEFAULT_LOAN_PRODUCTS, PRODUCTS
from bankseg.features import _kernels as k
from bankseg.features.balances import BALANCE_COLUMNS
from bankseg.features.holdings import HOLDING_COLUMNS

LABEL_COLUMNS = ("label_churn", "label_conversion", "label_upgrade")
TIER_MONTHS = 3
DRAIN_LOOKBACK = 6  # months before as_of the churn scope looks back at (T-6..T-4 against T-1)


@dataclass(frozen=True)
class LabelSettings:
    """Windows and thresholds of the three labels (conf/labels/default.yaml)."""

    churn_horizon_months: int = 3
    churn_drop_share: float = 0.7
    churn_min_aum_adb: float = 5000.0
    churn_confirm_months: int = 3
    churn_draining_share: float = 0.5
    churn_month_end_share: float = 0.7
    conversion_horizon_months: int = 6
    conversion_target_value: float = 50_000.0
    conversion_loan_share: float = 1.0
    conversion_count_new_loans: bool = False
    upgrade_horizon_months: int = 3
    upgrade_products: tuple[str, ...] = (
        "wealth_management", "fund", "insurance", "precious_metal", "private_banking",
    )
    aum_products: tuple[str, ...] = DEFAULT_AUM_PRODUCTS
    loan_products: tuple[str, ...] = DEFAULT_LOAN_PRODUCTS

    def __post_init__(self) -> None:
        for name in ("churn_horizon_months", "conversion_horizon_months", "upgrade_horizon_months"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.churn_drop_share <= 1:
            raise ValueError(f"churn_drop_share must be in (0, 1], got {self.churn_drop_share}")
        if int(self.churn_confirm_months) < 0:
            raise ValueError(f"churn_confirm_months must be >= 0, got {self.churn_confirm_months}")
        for name in ("churn_draining_share", "churn_month_end_share"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        unknown = [p for p in (*self.upgrade_products, *self.aum_products, *self.loan_products) if p not in PRODUCTS]
        if unknown:
            raise ValueError(f"unknown products in label settings: {unknown}")
        for name in ("upgrade_products", "aum_products", "loan_products"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def churn_window_months(self) -> int:
        """Months after as_of a churn label looks at: the horizon and its confirmation."""
        return self.churn_horizon_months + self.churn_confirm_months

    @property
    def longest_horizon_months(self) -> int:
        return max(self.churn_window_months, self.conversion_horizon_months, self.upgrade_horizon_months)


@dataclass(frozen=True)
class ConversionScope:
    """Who can convert: customers below ``target_value`` by both the tier value and the month-end value.

    The same rule scopes the label at training and the probability at scoring (a customer already at the
    target gets no conversion probability). On feature-table columns: tier value = ``bal_aum_adb_3m`` +
    ``loan_share`` x ``bal_loan_adb_3m``; month-end value = ``bal_aum_month_end_last`` + ``loan_share`` x
    ``bal_loan_adb_1m`` (loans amortise slowly: last month's average stands for its month end).
    """

    target_value: float
    loan_share: float
    COLUMNS = ("bal_aum_adb_3m", "bal_loan_adb_3m", "bal_aum_month_end_last", "bal_loan_adb_1m")

    @classmethod
    def from_settings(cls, settings: LabelSettings) -> ConversionScope:
        return cls(float(settings.conversion_target_value), float(settings.conversion_loan_share))

    def below_target(self, tier_value: np.ndarray, month_end_value: np.ndarray) -> np.ndarray:
        return (tier_value < self.target_value) & (month_end_value < self.target_value)

    def in_scope(self, features: pd.DataFrame) -> np.ndarray:
        """Boolean per row of a feature table: below the target, so a conversion probability makes sense."""
        missing = [c for c in self.COLUMNS if c not in features.columns]
        if missing:
            raise ValueError(f"conversion scope needs feature columns {missing}")
        col = {c: features[c].to_numpy(dtype=np.float64) for c in self.COLUMNS}
        tier = col["bal_aum_adb_3m"] + self.loan_share * col["bal_loan_adb_3m"]
        month_end = col["bal_aum_month_end_last"] + self.loan_share * col["bal_loan_adb_1m"]
        return self.below_target(tier, month_end)


def future_start(as_of: pd.Timestamp) -> pd.Timestamp:
    """Return the first day of the first future month: as_of's month if as_of is its 1st, else the next."""
    start = as_of.normalize().replace(day=1)
    return start if as_of == start else start + pd.DateOffset(months=1)


def label_window_end(as_of: pd.Timestamp, settings: LabelSettings) -> pd.Timestamp:
    """Return the end (exclusive) of the longest future window any label of ``as_of`` looks at."""
    return future_start(as_of) + pd.DateOffset(months=settings.longest_horizon_months)


def data_end_of(balances: pd.DataFrame) -> pd.Timestamp:
    """Return the first day after the last month the balances table covers (what the future can reach)."""
    if balances.empty:
        raise ValueError("balances is empty: cannot tell which future windows the data covers")
    last = pd.Timestamp(balances["month"].max()).normalize().replace(day=1)
    return last + pd.DateOffset(months=1)


def _monthly_totals(
    balances: pd.DataFrame, codes: np.ndarray, n: int, first_month: int, n_months: int, positions: np.ndarray,
    column: str = "avg_daily_balance",
) -> np.ndarray:
    month = k.month_number(k.datetime_values(balances["month"], "balances.month"))
    rel = month - first_month
    product = k.category_codes(balances["product"], PRODUCTS, "balances.product").astype(np.int64)
    sel = (codes >= 0) & (rel >= 0) & (rel < n_months) & np.isin(product, positions)
    adb = balances[column].to_numpy(dtype=np.float64)
    cell = codes[sel] * n_months + rel[sel]
    return k.grouped_sum(cell, n * n_months, adb[sel]).reshape(n, n_months)


def build_labels(
    balances: pd.DataFrame,
    holdings: pd.DataFrame,
    as_of: pd.Timestamp,
    *,
    customer_ids: Sequence[int] | np.ndarray,
    data_end: pd.Timestamp,
    settings: LabelSettings,
) -> pd.DataFrame:
    """Return customer_id and the three label columns (float: 1.0, 0.0 or NaN) for ``customer_ids``.

    ``data_end`` must come from the whole dataset (:func:`data_end_of` on all balances), not from a bucket.
    """
    k.require_columns(balances, BALANCE_COLUMNS, "balances")
    k.require_columns(holdings, HOLDING_COLUMNS, "holdings")
    as_of = k.normalise_as_of(as_of)
    ids = k.customer_index(customer_ids)
    n = ids.size
    start = future_start(as_of)
    as_of_month = int(k.month_number(np.array([as_of.to_datetime64()]))[0])
    start_month = int(k.month_number(np.array([start.to_datetime64()]))[0])
    data_end_month = int(k.month_number(np.array([pd.Timestamp(data_end).to_datetime64()]))[0])
    aum_pos = np.array([PRODUCTS.index(p) for p in settings.aum_products])
    loan_pos = np.array([PRODUCTS.index(p) for p in settings.loan_products])

    # Monthly totals from DRAIN_LOOKBACK months before as_of's month to the end of the longest balance window.
    horizon = max(settings.churn_window_months, settings.conversion_horizon_months)
    first = as_of_month - DRAIN_LOOKBACK
    n_months = start_month + horizon - first
    bal_codes = k.customer_codes(balances["customer_id"].to_numpy(dtype=np.int64), ids)
    aum = _monthly_totals(balances, bal_codes, n, first, n_months, aum_pos)
    loan = _monthly_totals(balances, bal_codes, n, first, n_months, loan_pos)
    last = as_of_month - 1 - first  # index of the last complete month before as_of
    aum_end = _monthly_totals(balances, bal_codes, n, last + first, 1, aum_pos, "month_end_balance")[:, 0]
    month_num = k.month_number(k.datetime_values(balances["month"], "balances.month"))
    history_start = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    seen = bal_codes >= 0
    np.minimum.at(history_start, bal_codes[seen], month_num[seen])

    def tier_adb(values: np.ndarray, end_month: int) -> np.ndarray:
        """ADB over the TIER_MONTHS months before end_month, averaged over the months inside history."""
        lo = end_month - TIER_MONTHS - first
        total = values[:, lo : lo + TIER_MONTHS].sum(axis=1)
        months = np.clip(end_month - history_start, 0, TIER_MONTHS).astype(np.float64)
        return k.safe_ratio(total, months, 0.0)

    out: dict[str, np.ndarray] = {"customer_id": ids}
    past_aum = tier_adb(aum, as_of_month)

    # churn
    h, c = settings.churn_horizon_months, settings.churn_confirm_months
    covered = start_month + h + c <= data_end_month
    lo = start_month - first
    future_aum = aum[:, lo : lo + h].sum(axis=1) / h
    stays_low = np.ones(n, dtype=bool)
    if c:
        stays_low = aum[:, lo + h : lo + h + c].sum(axis=1) / c <= (1 - settings.churn_drop_share) * past_aum
    held_now = _held_count(holdings, ids, as_of)
    held_after = _held_count(holdings, ids, start + pd.DateOffset(months=h))
    all_closed = (held_now > 0) & (held_after == 0)
    churned = ((future_aum <= (1 - settings.churn_drop_share) * past_aum) & stays_low) | all_closed
    out["label_churn"] = np.where(
        churn_in_scope(aum, aum_end, held_now, last, past_aum, settings) & covered, churned.astype(np.float64), np.nan
    )

    # conversion
    share = settings.conversion_loan_share
    loan_now = tier_adb(loan, as_of_month)
    value_now = past_aum + share * loan_now
    h = settings.conversion_horizon_months
    covered = start_month + h <= data_end_month
    reached = np.zeros(n, dtype=bool)
    for j in range(1, h + 1):  # at most a dozen month ends, each vectorised over customers
        end = start_month + j
        loan_then = tier_adb(loan, end)
        if not settings.conversion_count_new_loans:
            loan_then = np.minimum(loan_then, loan_now)
        reached |= tier_adb(aum, end) + share * loan_then >= settings.conversion_target_value
    in_scope = ConversionScope.from_settings(settings).below_target(value_now, aum_end + share * loan[:, last])
    out["label_conversion"] = np.where(in_scope & covered, reached.astype(np.float64), np.nan)

    # upgrade
    h = settings.upgrade_horizon_months
    horizon_end = start + pd.DateOffset(months=h)
    covered = horizon_end <= pd.Timestamp(data_end)
    out["label_upgrade"] = _upgrade(holdings, ids, as_of, horizon_end, settings.upgrade_products, covered)
    return pd.DataFrame(out)


def churn_in_scope(
    aum: np.ndarray, aum_end: np.ndarray, held_now: np.ndarray, last: int, past_aum: np.ndarray,
    settings: LabelSettings,
) -> np.ndarray:
    """Customers a churn label can be *predicted* for: non-trivial AUM, holding something, not already draining.

    ``aum`` is customers x months of AUM ADB with column ``last`` the month before as_of (and at least
    DRAIN_LOOKBACK months before it); ``aum_end`` that month's month-end AUM.
    """
    earlier = aum[:, last - 5 : last - 2].mean(axis=1)  # months T-6..T-4
    draining = (aum[:, last] < settings.churn_draining_share * earlier) | (
        aum_end < settings.churn_month_end_share * past_aum
    )
    return (past_aum >= settings.churn_min_aum_adb) & (held_now > 0) & ~draining


def _held_matrix(holdings: pd.DataFrame, ids: np.ndarray, at: pd.Timestamp) -> np.ndarray:
    """(customers x products) boolean: held at ``at`` (opened before it, not closed before it)."""
    opened = k.datetime_values(holdings["opened"], "holdings.opened")
    closed = k.datetime_values(holdings["closed"], "holdings.closed")
    at64 = at.to_datetime64()
    codes = k.customer_codes(holdings["customer_id"].to_numpy(dtype=np.int64), ids)
    held = (codes >= 0) & (opened < at64) & (np.isnat(closed) | (closed >= at64))
    product = k.category_codes(holdings["product"], PRODUCTS, "holdings.product").astype(np.int64)
    n_products = len(PRODUCTS)
    counts = k.grouped_sum(codes[held] * n_products + product[held], ids.size * n_products)
    return counts.reshape(ids.size, n_products) > 0


def _held_count(holdings: pd.DataFrame, ids: np.ndarray, at: pd.Timestamp) -> np.ndarray:
    return _held_matrix(holdings, ids, at).sum(axis=1)


def _upgrade(
    holdings: pd.DataFrame,
    ids: np.ndarray,
    as_of: pd.Timestamp,
    horizon_end: pd.Timestamp,
    products: Sequence[str],
    covered: bool,
) -> np.ndarray:
    positions = np.array([PRODUCTS.index(p) for p in products])
    held = _held_matrix(holdings, ids, as_of)[:, positions]
    opened = k.datetime_values(holdings["opened"], "holdings.opened")
    codes = k.customer_codes(holdings["customer_id"].to_numpy(dtype=np.int64), ids)
    product = k.category_codes(holdings["product"], PRODUCTS, "holdings.product").astype(np.int64)
    new = (codes >= 0) & (opened >= as_of.to_datetime64()) & (opened < horizon_end.to_datetime64())
    new &= np.isin(product, positions)
    n_products = len(PRODUCTS)
    opened_any = k.grouped_sum(codes[new] * n_products + product[new], ids.size * n_products)
    opened_new = opened_any.reshape(ids.size, n_products)[:, positions] > 0
    upgraded = (opened_new & ~held).any(axis=1)
    in_scope = ~held.all(axis=1)
    return np.where(in_scope & covered, upgraded.astype(np.float64), np.nan)


def check_out_of_time(
    train_as_of: Sequence[pd.Timestamp], oot_as_of: pd.Timestamp, settings: LabelSettings
) -> None:
    """Raise ValueError unless ``oot_as_of`` is on or after every training label's future window end."""
    ends = {pd.Timestamp(t): label_window_end(pd.Timestamp(t), settings) for t in train_as_of}
    overlapping = {str(t.date()): str(e.date()) for t, e in ends.items() if e > oot_as_of}
    if overlapping:
        raise ValueError(
            f"out-of-time as_of {oot_as_of.date()} overlaps training label windows "
            f"(training as_of -> window end): {overlapping}; pick a later oot_as_of or earlier training dates"
        )


def build_training_frame(
    root_or_tables,
    as_of_dates: Sequence,
    oot_as_of,
    *,
    label_settings: LabelSettings,
    **feature_options,
) -> pd.DataFrame:
    """Return features and labels stacked over ``as_of_dates`` (split ``train``) and ``oot_as_of`` (``oot``).

    ``feature_options`` go to :func:`bankseg.features.build.build_feature_table` (windows, products,
    n_buckets, engine, ...). Raises ValueError when ``oot_as_of`` falls inside a training label's future window
    (it must be on or after every window's end, which is exclusive) or when it is also a training date.
    """
    from bankseg.features.build import build_feature_table, normalise_as_of_dates

    train = normalise_as_of_dates(list(as_of_dates))
    oot = k.normalise_as_of(oot_as_of)
    if oot in train:
        raise ValueError(f"oot_as_of {oot.date()} is also a training as_of")
    check_out_of_time(train, oot, label_settings)
    frame = build_feature_table(root_or_tables, [*train, oot], label_settings=label_settings, **feature_options)
    return mark_training_split(frame, train, oot, label_settings)


def mark_training_split(
    frame: pd.DataFrame, train_as_of: Sequence[pd.Timestamp], oot_as_of: pd.Timestamp, settings: LabelSettings
) -> pd.DataFrame:
    """A feature table of the training and OOT dates with ``split`` (train / oot), one positive per churn event.

    Whether the table was just built or read back from a ``bankseg-features`` folder, training sees the same
    rows: :func:`count_churn_events_once` is applied over the training dates.
    """
    oot = k.normalise_as_of(oot_as_of)
    split = np.where(pd.to_datetime(frame["as_of"]).to_numpy() == oot.to_datetime64(), "oot", "train")
    frame = frame.assign(split=pd.Categorical(split, categories=["train", "oot"]))
    if "label_churn" in frame.columns:
        train = [k.normalise_as_of(t) for t in train_as_of]
        frame = frame.assign(label_churn=count_churn_events_once(frame, train, settings))
    return frame


def count_churn_events_once(
    frame: pd.DataFrame, train_as_of: Sequence[pd.Timestamp], settings: LabelSettings
) -> np.ndarray:
    """``label_churn`` with one positive per churn event across the training as_of dates.

    A customer positive at a training as_of is out of scope (NaN) at every later training as_of inside that
    event's window (``churn_window_months``): the same drain seen again a quarter later is not a new event.
    Rows outside ``train_as_of`` are returned unchanged.
    """
    label = frame["label_churn"].to_numpy(dtype=np.float64).copy()
    as_of = frame["as_of"].to_numpy()
    customer = frame["customer_id"].to_numpy()
    window_end: dict[int, np.datetime64] = {}  # customer -> end of its latest positive's event window
    for date in sorted(train_as_of):
        rows = np.flatnonzero(as_of == date.to_datetime64())
        ids = customer[rows]
        ends = np.array([window_end.get(int(c), np.datetime64("NaT")) for c in ids], dtype="datetime64[ns]")
        inside = ~np.isnat(ends) & (ends > date.to_datetime64())
        label[rows[inside]] = np.nan
        positive = rows[~inside & (label[rows] == 1.0)]
        end = (future_start(date) + pd.DateOffset(months=settings.churn_window_months)).to_datetime64()
        window_end.update(dict.fromkeys(customer[positive].tolist(), end))
    return label
