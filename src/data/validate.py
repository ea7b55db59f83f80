"""Check a dataset against the canonical schema: refuse bad tables with one error, set bad rows aside.

The checks are derived from :mod:`bankseg.data.schema` (column kinds, nullability, allowed values, lower
bounds, keys) and written as vectorised numpy/pandas (no per-row Python), so 20M transactions take seconds.
They are plain code rather than pandera schemas because set-aside rows need one mask per reason (joined
into one rejects row), the folder check streams parts with cross-part key checks, and categorical text is
checked on its codes.

Policy (what refuses a table, what only sets rows aside):

- **Refuses a table** (listed in one :class:`DataValidationError` with every other problem of the call):
  missing columns; wrong dtypes that cannot be coerced without guessing (text amounts, text dates,
  timezone-aware timestamps, floats with fractions in an id); nulls in a key column or in ``customer_id``;
  duplicate keys in customers, balances and holdings; an empty or absent required table (``customers``,
  ``balances``, ``transactions``: every absent one is listed in the same error); a file that is not readable
  Parquet (truncated, corrupt), named with its table and path; any bad value in ``customers`` (it is not
  rejectable row by row: nulls in non-nullable columns, values outside the allowed lists, numbers below their
  bound or above their plausible maximum, birth after account opening, an implausible age, dates after
  ``as_of_today`` or before the earliest plausible date); and, in a fact table, rejectable rows whose share
  exceeds ``max_reject_fraction``.
- **Set aside as rejects** (fact tables: balances, transactions, holdings, interactions), when their share is
  within ``max_reject_fraction``: nulls in non-key columns, unknown category values, amounts <= 0, negative
  or non-finite balances, orphan ``customer_id`` (not in customers), dates outside the data's own range,
  holdings closed before opened, a balances month that is not the first of a month, duplicate
  ``txn_id`` rows beyond the first, and implausible values (:class:`Bounds`: an amount or balance above its
  maximum, a date before the earliest plausible one). A row with several problems is one rejects row with
  all reasons joined.
- **Warnings** (returned, never raised): extra columns (dropped from the kept tables by default: real
  sources can carry names or phone numbers, which must not travel further), absent or empty optional
  tables (``holdings``, ``interactions``: the features are then built as for customers without such rows),
  and how many rows each reason set aside.

The data's own range runs from the earliest ``balances.month`` to the end of the latest one. Nothing may be
dated after ``as_of_today`` (default: today by the wall clock): balance months after it are rejected before
the range is taken, so one mistyped year cannot stretch the range, and the range ends at that day at the
latest. Holdings may open before the range (products held before the data starts) but not after it.
Customers' dates are only checked against ``as_of_today``: a customer file extracted after the balances
may hold new customers. Messages never show values from the data, only row positions and customer ids.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bankseg.data import io
from bankseg.data.schema import TABLES, Column, Table

REQUIRED_TABLES: tuple[str, ...] = ("customers", "balances", "transactions")
OPTIONAL_TABLES: tuple[str, ...] = ("holdings", "interactions")
EXTRA_COLUMN_POLICIES: tuple[str, ...] = ("drop", "refuse")
REJECTS_COLUMNS: tuple[str, ...] = ("table", "row", "customer_id", "txn_id", "reason")
_MAX_EXAMPLES = 5
_UNKNOWN = -2  # category code of a value outside the schema's list (-1 is a null)


@dataclass(frozen=True)
class Bounds:
    """Plausibility bounds (conf/validation ``bounds``): values a real bank's data cannot hold.

    ``max_values`` maps table -> column -> largest plausible value (money in the dataset's currency);
    ``age_years`` is the plausible [youngest, oldest] age of a customer at ``as_of_today``; ``earliest_date``
    is the earliest plausible date in any date column (birth dates are bounded by the age instead).
    """

    max_values: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: {
        "transactions": {"amount": 1e9},
        "balances": {"avg_daily_balance": 1e11, "month_end_balance": 1e11},
        "customers": {"declared_income_monthly": 1e8},
    })
    age_years: tuple[float, float] = (0.0, 120.0)
    earliest_date: pd.Timestamp | str = "1900-01-01"  # a Timestamp after __post_init__

    def __post_init__(self) -> None:
        for table, columns in self.max_values.items():
            for column in columns:
                if table not in TABLES or column not in TABLES[table].column_names:
                    raise ValueError(f"bounds.max_values: no column {table}.{column} in the canonical schema")
        low, high = (float(a) for a in self.age_years)
        if not 0 <= low < high:
            raise ValueError(f"bounds.age_years must be [youngest, oldest] with 0 <= youngest < oldest, got "
                             f"{list(self.age_years)}")
        object.__setattr__(self, "age_years", (low, high))
        object.__setattr__(self, "earliest_date", pd.Timestamp(self.earliest_date))
        object.__setattr__(self, "max_values", {t: {c: float(v) for c, v in cols.items()}
                                                for t, cols in self.max_values.items()})

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any] | Bounds | None) -> Bounds:
        """Bounds from the config's ``bounds`` mapping (missing keys keep their defaults)."""
        if isinstance(cfg, Bounds):
            return cfg
        cfg = dict(cfg or {})
        unknown = sorted(set(cfg) - {"max_values", "age_years", "earliest_date"})
        if unknown:
            raise ValueError(f"bounds: unknown settings {unknown}")
        if "age_years" in cfg:
            cfg["age_years"] = tuple(cfg["age_years"])
        return cls(**cfg)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one table, and how many rows it touches.

    ``examples`` are a few row positions (``"row 17"``) or customer ids (``"customer_id 42"``), never values.
    """

    table: str
    check: str
    message: str
    n_rows: int
    examples: tuple[str, ...] = ()

    def __str__(self) -> str:
        shown = f"; e.g. {', '.join(self.examples)}" if self.examples else ""
        return f"{self.table}: {self.message} [{self.check}] ({self.n_rows} rows{shown})"


class DataValidationError(ValueError):
    """A dataset was refused; ``problems`` holds every problem found, ``str()`` lists one per line."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = [f"dataset refused: {len(self.problems)} problem(s)"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class TableCounts:
    """Rows in, kept and rejected for one table; in = kept + rejected is enforced on creation."""

    n_in: int
    n_kept: int
    n_rejected: int

    def __post_init__(self) -> None:
        if self.n_in != self.n_kept + self.n_rejected:
            raise RuntimeError(f"row accounting broken: {self.n_in} in != {self.n_kept} kept + {self.n_rejected} rejected")


@dataclass
class ValidationResult:
    """What :func:`validate_dataset` accepted.

    ``tables`` hold the kept rows in canonical dtypes (int64 ids, float64 money, datetime64 dates,
    ``category`` columns with the schema's value list) and only the canonical columns, with the input's
    index labels. ``rejects`` has one row per rejected row: table, row (0-based position in the input table),
    customer_id and txn_id where available, and the reason(s) joined by ``"; "``.
    """

    tables: dict[str, pd.DataFrame]
    rejects: pd.DataFrame
    counts: dict[str, TableCounts]
    warnings: list[Problem] = field(default_factory=list)
    date_range: tuple[pd.Timestamp, pd.Timestamp] | None = None  # [start, end) of the data's own range


@dataclass
class FolderValidationSummary:
    """What :func:`validate_dataset_folder` found, without the data (it never holds a whole fact table).

    ``counts`` say what would be kept and rejected; rows in the rejects file are numbered by position in
    the whole table, parts taken in file-name order (row groups in order within a file).
    """

    counts: dict[str, TableCounts]
    warnings: list[Problem]
    date_range: tuple[pd.Timestamp, pd.Timestamp] | None
    rejects_path: Path | None
    summary_path: Path | None


# --------------------------------------------------------------------------------------------------------
# Coercion: one column to a plain numpy array plus a null mask.


@dataclass
class _Col:
    """A coerced column: int64 / float64 / datetime64 values, or category codes (-1 null, -2 unknown).

    ``values`` may be a read-only view of the input frame: never write to it.
    """

    values: np.ndarray
    null: np.ndarray


def _coerce(column: Column, s: pd.Series) -> _Col | str:
    """Coerce a column to its schema kind, or return why it cannot be done without guessing."""
    dt = s.dtype
    n = len(s)
    if n == 0:
        return _empty_col(column)
    kind = column.kind
    if kind in ("int", "float") and pd.api.types.is_bool_dtype(dt):
        return f"expected {kind}, got {dt}"
    if kind == "int":
        if dt == np.int64:  # the common case: a view, no copy
            return _Col(s.to_numpy(), np.zeros(n, dtype=bool))
        if pd.api.types.is_integer_dtype(dt):
            null = s.isna().to_numpy()
            return _Col(s.to_numpy(dtype=np.int64, na_value=0), null)
        if pd.api.types.is_float_dtype(dt):
            v = s.to_numpy(dtype=np.float64, na_value=np.nan)
            null = np.isnan(v)
            present = v[~null]
            if not (np.isfinite(present).all() and (present == np.trunc(present)).all()
                    and (np.abs(present) < 2.0**63).all()):
                return f"expected int, got {dt} with fractional or infinite values"
            return _Col(np.where(null, 0, v).astype(np.int64), null)
        return f"expected int, got {dt}"
    if kind == "float":
        if dt == np.float64:
            v = s.to_numpy()
            return _Col(v, np.isnan(v))
        if pd.api.types.is_integer_dtype(dt) or pd.api.types.is_float_dtype(dt):
            v = s.to_numpy(dtype=np.float64, na_value=np.nan)
            return _Col(v, np.isnan(v))
        return f"expected float, got {dt}"
    if kind == "datetime":
        if isinstance(dt, pd.DatetimeTZDtype):
            return f"expected naive datetime, got timezone-aware {dt}"
        if pd.api.types.is_datetime64_dtype(dt):
            v = s.to_numpy()
            return _Col(v, np.isnat(v))
        return f"expected datetime, got {dt} (dates must be dates, not text)"
    if kind == "category":
        return _category_codes(s, column.values or ())
    raise ValueError(f"schema column {column.name!r} has unknown kind {kind!r}")


def _empty_col(column: Column) -> _Col:
    dtype = {"int": np.int64, "float": np.float64, "datetime": "datetime64[us]", "category": np.int16}
    return _Col(np.empty(0, dtype=dtype[column.kind]), np.zeros(0, dtype=bool))


def _category_codes(s: pd.Series, values: tuple) -> _Col | str:
    """Positions of a text column's values in the schema's list: -1 for nulls, -2 for unknown values."""
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):
        cats = dt.categories
        if not (pd.api.types.is_string_dtype(cats.dtype) or len(cats) == 0):
            return f"expected text categories, got {cats.dtype}"
        codes = s.cat.codes.to_numpy()
        if not (len(cats) == len(values) and (cats == pd.Index(values)).all()):
            lut = pd.Index(values).get_indexer(cats)
            lut = np.append(np.where(lut >= 0, lut, _UNKNOWN), -1).astype(np.int16)  # code -1 -> last slot
            codes = lut[codes]
        # else: categories are the schema's list, so the codes already are positions in it (a view)
    elif isinstance(dt, pd.StringDtype):
        array = pa.array(s.array)
        found = pc.index_in(array, value_set=pa.array(values, type=array.type))
        codes = found.fill_null(_UNKNOWN).to_numpy(zero_copy_only=False).astype(np.int16)
        codes[array.is_null().to_numpy(zero_copy_only=False)] = -1
    elif pd.api.types.is_object_dtype(dt):
        codes = pd.Index(values, dtype=object).get_indexer(s.to_numpy()).astype(np.int16)
        codes[(codes == -1) & s.notna().to_numpy()] = _UNKNOWN
    else:
        return f"expected text, got {dt}"
    return _Col(codes, codes == -1)


# --------------------------------------------------------------------------------------------------------
# Inspection of one frame (a whole table in memory, or one part of a table on disk).


@dataclass
class _Context:
    """What checks of one table need to know about the others."""

    customer_ids: np.ndarray | None = None  # sorted unique ids of customers; None skips the orphan check
    start: np.datetime64 | None = None  # data's range [start, end); None skips that side
    end: np.datetime64 | None = None
    as_of_today: pd.Timestamp | None = None  # a day (midnight): anything dated after that day is in the future
    extra_columns: str = "drop"
    bounds: Bounds = field(default_factory=Bounds)

    @property
    def tomorrow(self) -> np.datetime64 | None:
        """The first instant after ``as_of_today``."""
        if self.as_of_today is None:
            return None
        return np.datetime64(self.as_of_today + pd.Timedelta(days=1), "us")


@dataclass
class _Finding:
    """One problem in one frame: ``severity`` is "refuse", "reject" (row-level, with a mask) or "warn"."""

    check: str
    message: str
    severity: str
    n_rows: int
    examples: tuple[str, ...] = ()
    mask: np.ndarray | None = None


@dataclass
class _Inspection:
    n: int
    cols: dict[str, _Col]
    findings: list[_Finding]

    @property
    def reject_mask(self) -> np.ndarray:
        bad = np.zeros(self.n, dtype=bool)
        for f in self.findings:
            if f.severity == "reject":
                bad |= f.mask
        return bad


def _row_examples(mask: np.ndarray, offset: int) -> tuple[str, ...]:
    return tuple(f"row {i + offset}" for i in np.flatnonzero(mask)[:_MAX_EXAMPLES])


def _id_examples(ids: np.ndarray) -> tuple[str, ...]:
    return tuple(f"customer_id {i}" for i in pd.unique(ids)[:_MAX_EXAMPLES])


def _rows(check: str, message: str, severity: str, mask: np.ndarray, offset: int,
          ids: np.ndarray | None = None) -> _Finding | None:
    n = int(mask.sum())
    if n == 0:
        return None
    examples = _id_examples(ids[mask]) if ids is not None else _row_examples(mask, offset)
    return _Finding(check, message, severity, n, examples, mask if severity == "reject" else None)


def _inspect(table: Table, df: pd.DataFrame, ctx: _Context, offset: int = 0, *,
             check_duplicates: bool = True, txn_duplicates: np.ndarray | None = None) -> _Inspection:
    """Run every check of one table on one frame; rows are numbered from ``offset``.

    ``check_duplicates=False`` skips the key-duplicate checks (done globally by the caller);
    ``txn_duplicates`` is then the precomputed mask of duplicate txn_ids beyond the first.
    """
    n = len(df)
    findings: list[_Finding | None] = []
    names = table.column_names
    missing = [c for c in names if c not in df.columns]
    extra = [str(c) for c in df.columns if c not in names]
    if missing:
        findings.append(_Finding("missing_columns", f"missing columns {missing}", "refuse", n))
    if extra:
        severity = "refuse" if ctx.extra_columns == "refuse" else "warn"
        verb = "not allowed" if severity == "refuse" else "dropped"
        findings.append(_Finding("extra_columns", f"extra columns {extra} {verb}", severity, n))
    if len(set(map(str, df.columns))) != df.shape[1]:
        findings.append(_Finding("duplicate_columns", "duplicate column names", "refuse", n))
        return _Inspection(n, {}, [f for f in findings if f])

    cols: dict[str, _Col] = {}
    for column in table.columns:
        if column.name not in df.columns:
            continue
        coerced = _coerce(column, df[column.name])
        if isinstance(coerced, str):
            findings.append(_Finding("dtype", f"column {column.name}: {coerced}", "refuse", n))
        else:
            cols[column.name] = coerced

    severity = "reject" if table.rejectable else "refuse"
    ids = cols["customer_id"].values if "customer_id" in cols else None
    keys = {*table.key, "customer_id"}
    for column in table.columns:
        col = cols.get(column.name)
        if col is None:
            continue
        if column.name in keys:
            findings.append(_rows("null_key", f"null {column.name} (a key)", "refuse", col.null, offset))
        elif not column.nullable:
            message = f"missing {column.name}" if table.rejectable else f"null {column.name}"
            findings.append(_rows("null", message, severity, col.null, offset))
        findings.extend(_value_findings(column, col, severity, offset))

    findings.extend(_table_findings(table, cols, ctx, severity, offset, ids, check_duplicates, txn_duplicates))
    return _Inspection(n, cols, [f for f in findings if f])


def _value_findings(column: Column, col: _Col, severity: str, offset: int) -> Iterator[_Finding | None]:
    """Allowed values and lower bounds of one column."""
    v = col.values
    if column.kind == "category":
        yield _rows("unknown_value", f"unknown {column.name}", severity, v == _UNKNOWN, offset)
    elif column.values is not None:
        outside = ~np.isin(v, np.asarray(column.values)) & ~col.null
        yield _rows("unknown_value", f"{column.name} outside {list(column.values)}", severity, outside, offset)
    if column.kind == "float":
        yield _rows("non_finite", f"non-finite {column.name}", severity, np.isinf(v), offset)
    if column.min_value is not None and column.kind in ("int", "float"):
        if column.exclusive_min:
            low, message = v <= column.min_value, f"{column.name} not > {column.min_value:g}"
        elif column.min_value == 0:
            low, message = v < 0, f"negative {column.name}"
        else:
            low, message = v < column.min_value, f"{column.name} below {column.min_value:g}"
        yield _rows("range", message, severity, low & ~col.null, offset)


def _table_findings(table: Table, cols: dict[str, _Col], ctx: _Context, severity: str, offset: int,
                    ids: np.ndarray | None, check_duplicates: bool,
                    txn_duplicates: np.ndarray | None) -> Iterator[_Finding | None]:
    """Checks across columns and tables: orphans, dates, duplicates, table-specific rules."""
    if table.name != "customers" and ids is not None and ctx.customer_ids is not None:
        orphan = ~np.isin(ids, ctx.customer_ids) & ~cols["customer_id"].null
        yield _rows("orphan", "orphan customer_id", severity, orphan, offset, ids)

    yield from _plausibility_findings(table, cols, ctx, severity, offset, ids)
    if table.name == "customers":
        yield from _customer_findings(cols, ctx, offset, ids)
    elif table.name == "balances" and "month" in cols:
        month = cols["month"].values
        codes, distinct = pd.factorize(month)  # few distinct months: check those, not every row
        distinct = np.asarray(distinct, dtype=month.dtype)
        bad_month = distinct.astype("datetime64[M]").astype(month.dtype) != distinct
        not_first = bad_month[codes] & (codes >= 0)
        yield _rows("month_start", "month not the first day of a month", severity, not_first, offset)
        if ctx.tomorrow is not None:
            late = month >= ctx.tomorrow
            yield _rows("future", "month after as_of_today", severity, late, offset)
    elif table.name in ("transactions", "interactions") and "ts" in cols:
        yield from _range_findings("ts", cols["ts"].values, ctx, severity, offset, before=True)
    elif table.name == "holdings":
        for name in ("opened", "closed"):
            if name in cols:
                yield from _range_findings(name, cols[name].values, ctx, severity, offset, before=False)
        if "opened" in cols and "closed" in cols:
            early = cols["closed"].values < cols["opened"].values  # NaT compares False
            yield _rows("closed_before_opened", "closed before opened", severity, early, offset)

    if table.name == "transactions" and "txn_id" in cols:
        if txn_duplicates is not None:
            dup = txn_duplicates
        elif check_duplicates:
            dup = _duplicated_beyond_first(cols["txn_id"].values)
        else:
            dup = None
        if dup is not None:
            yield _rows("duplicate_key", "duplicate txn_id", severity, dup, offset)
    elif check_duplicates and table.key and all(k in cols for k in table.key):
        dup = _duplicated_keys([cols[k].values for k in table.key], keep=False)
        yield _rows("duplicate_key", f"duplicate key {list(table.key)}", "refuse", dup, offset, ids)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    return np.sort(pd.unique(values))  # hashing then sorting the few distinct ids beats np.unique


def _duplicated_beyond_first(values: np.ndarray) -> np.ndarray:
    """Mask of values already seen earlier in the array."""
    return _duplicated_keys([values], keep="first")


def _duplicated_keys(columns: list[np.ndarray], keep: str | bool) -> np.ndarray:
    """Rows whose key (one or more columns) repeats; O(n) when keys arrive strictly increasing.

    Several columns are combined into one int64 of order-preserving codes, so sorted data (customer,
    month, product) takes the fast path too.
    """
    n = len(columns[0])
    if len(columns) == 1:
        key = columns[0]
    else:
        key = np.zeros(n, dtype=np.int64)
        capacity = 1
        for values in columns:
            codes, distinct = pd.factorize(values, sort=True)
            capacity *= max(len(distinct), 1)
            if capacity >= 2**62:  # too many combinations for one int64: let pandas hash the columns
                frame = pd.DataFrame(dict(enumerate(columns)), copy=False)
                return frame.duplicated(keep=keep).to_numpy()
            key = key * max(len(distinct), 1) + codes
    if n < 2 or (np.diff(key) > 0).all():
        return np.zeros(n, dtype=bool)
    return pd.Series(key, copy=False).duplicated(keep=keep).to_numpy()


def _customer_findings(cols: dict[str, _Col], ctx: _Context, offset: int,
                       ids: np.ndarray | None) -> Iterator[_Finding | None]:
    if "birth_date" in cols and "open_date" in cols:
        impossible = cols["birth_date"].values > cols["open_date"].values
        yield _rows("impossible_date", "birth_date after open_date", "refuse", impossible, offset, ids)
    if ctx.tomorrow is not None:
        for name in ("birth_date", "open_date", "mobile_banking_since"):
            if name in cols:
                late = cols[name].values >= ctx.tomorrow
                yield _rows("future", f"{name} after as_of_today", "refuse", late, offset, ids)


def _plausibility_findings(table: Table, cols: dict[str, _Col], ctx: _Context, severity: str, offset: int,
                           ids: np.ndarray | None) -> Iterator[_Finding | None]:
    """Values a real bank's data cannot hold (:class:`Bounds`): huge money, ancient dates, implausible ages."""
    bounds = ctx.bounds
    by_id = ids if table.name == "customers" else None  # customers are named by id, fact rows by position
    for name, most in bounds.max_values.get(table.name, {}).items():
        if name in cols:
            values = cols[name].values
            above = (values > most) & np.isfinite(values)  # infinities are reported as non-finite
            yield _rows("implausible", f"{name} above {most:g}", severity, above, offset, by_id)
    earliest = np.datetime64(bounds.earliest_date, "us")
    for column in table.columns:
        if column.kind == "datetime" and column.name in cols and column.name != "birth_date":
            early = cols[column.name].values < earliest  # NaT compares False
            message = f"{column.name} before {bounds.earliest_date.date()}"
            yield _rows("implausible", message, severity, early, offset, by_id)


def _add_age_findings(inspection: _Inspection | None, ctx: _Context) -> None:
    """Customers' ages outside :attr:`Bounds.age_years` on the last day of the data (refuses customers).

    Taken once the data's range is known: a historical dataset's customers are as old as they were then.
    """
    if inspection is None or "birth_date" not in inspection.cols:
        return
    last = pd.Timestamp(ctx.end) - pd.Timedelta(days=1) if ctx.end is not None else ctx.as_of_today
    if last is None:
        return
    col = inspection.cols["birth_date"]
    ids = inspection.cols["customer_id"].values if "customer_id" in inspection.cols else None
    youngest, oldest = ctx.bounds.age_years
    birth = col.values
    too_old = birth < np.datetime64(last - pd.DateOffset(days=round(oldest * 365.25)), "us")
    found = [_rows("implausible", f"age over {oldest:g} years at {last.date()}", "refuse", too_old, 0, ids)]
    if youngest > 0:
        too_young = birth > np.datetime64(last - pd.DateOffset(days=round(youngest * 365.25)), "us")
        found.append(_rows("implausible", f"age under {youngest:g} years at {last.date()}", "refuse",
                           too_young, 0, ids))
    inspection.findings.extend(f for f in found if f)


def _range_findings(name: str, values: np.ndarray, ctx: _Context, severity: str, offset: int,
                    *, before: bool) -> Iterator[_Finding | None]:
    """Dates outside the data's range [start, end); ``before=False`` lets dates precede the range."""
    if before and ctx.start is not None:
        yield _rows("date_range", f"{name} before the data's range", severity, values < ctx.start, offset)
    if ctx.end is not None:
        yield _rows("date_range", f"{name} after the data's range", severity, values >= ctx.end, offset)


# --------------------------------------------------------------------------------------------------------
# Building the outputs.


def _kept_frame(table: Table, df: pd.DataFrame, inspection: _Inspection, keep: np.ndarray) -> pd.DataFrame:
    """The kept rows in canonical dtypes (canonical columns only, input index labels kept).

    With every row kept, columns already in canonical dtype are taken from the input as copy-on-write
    references (no copy); the others are rebuilt from the coerced arrays.
    """
    all_kept = bool(keep.all())
    rows = None if all_kept else np.flatnonzero(keep)  # one scan of the mask, then a take per column
    data = {}
    for column in table.columns:
        if all_kept and _is_canonical(column, df[column.name].dtype):
            data[column.name] = df[column.name]
            continue
        col = inspection.cols[column.name]
        values = col.values if rows is None else col.values.take(rows)
        if column.kind == "category":
            data[column.name] = pd.Categorical.from_codes(values, dtype=_category_dtype(column), validate=False)
        elif column.kind == "int" and column.nullable:
            data[column.name] = pd.arrays.IntegerArray(values, col.null if rows is None else col.null.take(rows))
        else:
            data[column.name] = values  # a fresh array: taken, or converted from another dtype
    index = df.index if rows is None else df.index.take(rows)
    return pd.DataFrame(data, index=index, copy=False)  # Series inputs stay copy-on-write references


def _category_dtype(column: Column) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(list(column.values or ()))


def _is_canonical(column: Column, dtype) -> bool:
    """Whether a column's dtype is already the in-memory canonical one (so it can be kept as it is)."""
    if column.kind == "int":
        return dtype == np.int64
    if column.kind == "float":
        return dtype == np.float64
    if column.kind == "datetime":
        return pd.api.types.is_datetime64_dtype(dtype)
    return dtype == _category_dtype(column)


def _reject_frame(table: Table, inspection: _Inspection, bad: np.ndarray, offset: int) -> pd.DataFrame:
    """One row per rejected row, with every reason that applies joined by "; "."""
    rows = np.flatnonzero(bad)
    reason = np.full(len(rows), "", dtype=object)
    for f in inspection.findings:
        if f.severity != "reject":
            continue
        hit = f.mask[rows]
        reason[hit] = np.where(reason[hit] == "", f.message, reason[hit] + "; " + f.message)

    def key(name: str) -> pd.arrays.IntegerArray:
        col = inspection.cols.get(name)
        if col is None:
            return pd.array([pd.NA] * len(rows), dtype="Int64")
        return pd.arrays.IntegerArray(col.values[rows].astype(np.int64), col.null[rows].copy())

    return pd.DataFrame({
        "table": pd.Series([table.name] * len(rows), dtype="str"),
        "row": (rows + offset).astype(np.int64),
        "customer_id": key("customer_id"),
        "txn_id": key("txn_id") if table.name == "transactions" else key(""),
        "reason": pd.Series(reason, dtype="str"),
    })


def _empty_rejects() -> pd.DataFrame:
    return pd.DataFrame({
        "table": pd.Series([], dtype="str"),
        "row": np.empty(0, dtype=np.int64),
        "customer_id": pd.array([], dtype="Int64"),
        "txn_id": pd.array([], dtype="Int64"),
        "reason": pd.Series([], dtype="str"),
    })


class _Ledger:
    """Problems and warnings summed over parts, keyed by (table, check, message), in first-seen order."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str, str], list] = {}

    def add(self, table: str, check: str, message: str, severity: str, n_rows: int,
            examples: tuple[str, ...] = ()) -> None:
        entry = self._entries.setdefault((severity, table, check, message), [0, []])
        entry[0] += n_rows
        entry[1].extend(e for e in examples if e not in entry[1])
        del entry[1][_MAX_EXAMPLES:]

    def add_findings(self, table: str, findings: list[_Finding]) -> None:
        for f in findings:
            self.add(table, f.check, f.message, f.severity, f.n_rows, f.examples)

    def list(self, severity: str, table: str | None = None) -> list[Problem]:
        return [Problem(t, c, m, n, tuple(ex)) for (s, t, c, m), (n, ex) in self._entries.items()
                if s == severity and (table is None or t == table)]

    def refused(self, table: str) -> bool:
        return bool(self.list("refuse", table))


def _settle_rejects(ledger: _Ledger, table: Table, n_in: int, n_bad: int, max_reject_fraction: float) -> bool:
    """Turn a table's row-level reasons into warnings, or into problems when there are too many."""
    reasons = ledger.list("reject", table.name)
    if n_in == 0 or n_bad == 0:
        return False
    share = n_bad / n_in
    too_many = share > max_reject_fraction
    for p in reasons:
        if too_many:
            ledger.add(p.table, p.check, p.message, "refuse", p.n_rows, p.examples)
        else:
            ledger.add(p.table, p.check, f"rows rejected: {p.message}", "warn", p.n_rows, p.examples)
    if too_many:
        ledger.add(table.name, "reject_fraction",
                   f"{share:.2%} of rows have row-level problems, more than max_reject_fraction "
                   f"{max_reject_fraction:.2%}", "refuse", n_bad)
    return too_many


def _check_presence(ledger: _Ledger, name: str, present: bool, n_rows: int | None) -> None:
    if not present:
        severity = "refuse" if name in REQUIRED_TABLES else "warn"
        ledger.add(name, "missing_table", "table is absent", severity, 0)
    elif n_rows == 0:
        severity = "refuse" if name in REQUIRED_TABLES else "warn"
        ledger.add(name, "empty_table", "table is empty", severity, 0)


def _month_range(months: np.ndarray, ctx: _Context) -> tuple[np.datetime64, np.datetime64] | None:
    """[earliest month, first day after the latest month) of balance months, None if there are none.

    Months after ``as_of_today`` or before the earliest plausible date are left out (they are rejected), so
    one mistyped year cannot stretch the range.
    """
    months = months[~np.isnat(months) & (months >= np.datetime64(ctx.bounds.earliest_date, "us"))]
    if ctx.as_of_today is not None:
        months = months[months < np.datetime64(ctx.as_of_today + pd.Timedelta(days=1), "us")]
    if len(months) == 0:
        return None
    first = months.min().astype("datetime64[M]")
    return first.astype("datetime64[us]"), (months.max().astype("datetime64[M]") + 1).astype("datetime64[us]")


def _base_context(as_of_today: pd.Timestamp | None, extra_columns: str, max_reject_fraction: float,
                  bounds: Mapping[str, Any] | Bounds | None = None) -> _Context:
    if extra_columns not in EXTRA_COLUMN_POLICIES:
        raise ValueError(f"extra_columns must be one of {EXTRA_COLUMN_POLICIES}, got {extra_columns!r}")
    if not 0 <= max_reject_fraction <= 1:
        raise ValueError(f"max_reject_fraction must be within [0, 1], got {max_reject_fraction}")
    today = pd.Timestamp(as_of_today) if as_of_today is not None else pd.Timestamp.now()
    return _Context(as_of_today=today.normalize(), extra_columns=extra_columns, bounds=Bounds.from_dict(bounds))


def _apply_range(ctx: _Context, data_range: tuple[np.datetime64, np.datetime64] | None) -> None:
    if data_range is not None:
        ctx.start, ctx.end = data_range
    if ctx.tomorrow is not None:
        ctx.end = ctx.tomorrow if ctx.end is None else min(ctx.end, ctx.tomorrow)


def _as_range(ctx: _Context) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    if ctx.start is None or ctx.end is None:
        return None
    return pd.Timestamp(ctx.start), pd.Timestamp(ctx.end)


# --------------------------------------------------------------------------------------------------------
# Public entry points.


def validate_dataset(tables: dict[str, pd.DataFrame], *, max_reject_fraction: float = 0.01,
                     as_of_today: pd.Timestamp | str | None = None,
                     extra_columns: str = "drop",
                     bounds: Mapping[str, Any] | Bounds | None = None) -> ValidationResult:
    """Validate in-memory tables; return the kept rows and the rejects, or raise one DataValidationError.

    ``tables`` maps canonical table names to frames (other names are ignored with a warning). The input
    frames are never modified. ``as_of_today=None`` means today; ``bounds`` (:class:`Bounds` or its config
    mapping; None: the defaults) are the plausibility bounds. See the module docstring for what refuses a
    table and what is set aside.
    """
    ctx = _base_context(as_of_today, extra_columns, max_reject_fraction, bounds)
    ledger = _Ledger()
    for name in tables:
        if name not in TABLES:
            ledger.add(name, "unknown_table", "not a canonical table; ignored", "warn", len(tables[name]))

    inspections: dict[str, _Inspection] = {}
    customers = tables.get("customers")
    if customers is not None:
        inspections["customers"] = _inspect(TABLES["customers"], customers, ctx)
        id_col = inspections["customers"].cols.get("customer_id")
        if id_col is not None:
            ctx.customer_ids = _sorted_unique(id_col.values[~id_col.null])
    data_range = None
    balances = tables.get("balances")
    if balances is not None and "month" in balances.columns:
        month = _coerce(TABLES["balances"].column("month"), balances["month"])
        if isinstance(month, _Col):
            data_range = _month_range(month.values, ctx)
    _apply_range(ctx, data_range)
    _add_age_findings(inspections.get("customers"), ctx)

    counts: dict[str, TableCounts] = {}
    kept: dict[str, pd.DataFrame] = {}
    rejects = [_empty_rejects()]
    for name, table in TABLES.items():
        df = tables.get(name)
        _check_presence(ledger, name, df is not None, None if df is None else len(df))
        if df is None:
            continue
        inspection = inspections.get(name) or _inspect(table, df, ctx)
        ledger.add_findings(name, inspection.findings)
        bad = inspection.reject_mask
        _settle_rejects(ledger, table, inspection.n, int(bad.sum()), max_reject_fraction)
        if ledger.refused(name):
            continue
        counts[name] = TableCounts(inspection.n, inspection.n - int(bad.sum()), int(bad.sum()))
        kept[name] = _kept_frame(table, df, inspection, ~bad)
        if bad.any():
            rejects.append(_reject_frame(table, inspection, bad, 0))

    problems = ledger.list("refuse")
    if problems:
        raise DataValidationError(problems)
    return ValidationResult(
        tables=kept,
        rejects=pd.concat(rejects, ignore_index=True),
        counts=counts,
        warnings=ledger.list("warn"),
        date_range=_as_range(ctx),
    )


def write_rejects(rejects: pd.DataFrame, path: Path | str) -> Path:
    """Write a rejects frame to one Parquet file, atomically; returns the path."""
    missing = [c for c in REJECTS_COLUMNS if c not in rejects.columns]
    if missing:
        raise ValueError(f"rejects frame lacks columns {missing}")
    return io.write_parquet(rejects.loc[:, list(REJECTS_COLUMNS)], path)


def validate_dataset_folder(root: Path | str, out_dir: Path | str | None = None, *,
                            max_reject_fraction: float = 0.01,
                            as_of_today: pd.Timestamp | str | None = None,
                            extra_columns: str = "drop",
                            bounds: Mapping[str, Any] | Bounds | None = None) -> FolderValidationSummary:
    """Validate a dataset folder part by part, holding only customers (and their ids) in memory.

    Runs the same checks as :func:`validate_dataset` and writes ``rejects.parquet`` and
    ``validation_summary.json`` into ``out_dir`` (nothing is written when it is None); the kept rows are not
    written. On refusal both files are still written (the summary says "refused") and then one
    DataValidationError is raised.

    Which checks are global and how: customers are checked whole. The data's range comes from a scan of
    ``balances.month`` alone. Orphans are checked per part against the customer ids. Duplicate keys: each
    part is checked on its own; if the parts' key ranges (txn_id for transactions, customer_id for balances
    and holdings) do not overlap, that is exact. If they overlap, a first pass reads the key columns alone
    of every part and checks them together (``txn_id``: duplicates beyond the first in read order, where
    read order is file name then row group). Parts of a table are assumed to share one set of columns. A file
    that is not readable Parquet refuses its table (named with its path); the other tables are still checked.
    """
    ctx = _base_context(as_of_today, extra_columns, max_reject_fraction, bounds)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    ledger = _Ledger()
    counts: dict[str, TableCounts] = {}
    unreadable = _unreadable_tables(root, ledger)

    inspection = None  # of customers, checked whole
    if io.table_path(root, "customers") is not None and "customers" not in unreadable:
        customers = io.read_table(root, "customers")
        inspection = _inspect(TABLES["customers"], customers, ctx)
        id_col = inspection.cols.get("customer_id")
        if id_col is not None:
            ctx.customer_ids = _sorted_unique(id_col.values[~id_col.null])
        del customers
    if io.table_path(root, "balances") is not None and "balances" not in unreadable \
            and "month" in io.table_columns(root, "balances"):
        _apply_range(ctx, _scan_month_range(root, ctx))
    else:
        _apply_range(ctx, None)
    _add_age_findings(inspection, ctx)

    writer = _RejectsWriter(Path(out_dir) / "rejects.parquet" if out_dir is not None else None)
    try:
        for name, table in TABLES.items():
            present = io.table_path(root, name) is not None
            if not present:
                _check_presence(ledger, name, False, None)
                continue
            if name in unreadable:
                continue
            if name == "customers":
                ledger.add_findings(name, inspection.findings)
                n_in, n_bad = inspection.n, 0
            else:
                try:
                    n_in, n_bad = _validate_parts(root, table, ctx, ledger, writer)
                except (pa.ArrowException, OSError) as error:  # a data page broken behind a sound footer
                    where = io.table_path(root, name)
                    ledger.add(name, "unreadable", f"{where} could not be read ({type(error).__name__}: "
                               "truncated or corrupt data)", "refuse", 0)
                    continue
            _check_presence(ledger, name, True, n_in)
            _settle_rejects(ledger, table, n_in, n_bad, max_reject_fraction)
            counts[name] = TableCounts(n_in, n_in - n_bad, n_bad)
        rejects_path = writer.close()
    except BaseException:
        writer.abort()
        raise

    problems = ledger.list("refuse")
    summary = FolderValidationSummary(counts, ledger.list("warn"), _as_range(ctx), rejects_path, None)
    if out_dir is not None:
        summary.summary_path = _write_summary(Path(out_dir) / "validation_summary.json", root, summary,
                                              problems, max_reject_fraction)
    if problems:
        raise DataValidationError(problems)
    return summary


def _unreadable_tables(root: Path, ledger: _Ledger) -> set[str]:
    """Tables with a file that is not readable Parquet, each file added to the ledger as a refusal."""
    found = set()
    for name in TABLES:
        if io.table_path(root, name) is None:
            continue
        for file in io.table_files(root, name):
            why = io.unreadable_file(file)
            if why is not None:
                ledger.add(name, "unreadable", why, "refuse", 0)
                found.add(name)
    return found


def _scan_month_range(root: Path, ctx: _Context) -> tuple[np.datetime64, np.datetime64] | None:
    """The data's range from ``balances.month``, reading that column alone, part by part."""
    lows, highs = [], []
    column = TABLES["balances"].column("month")
    for part in io.iter_table_parts(root, "balances", columns=["month"]):
        month = _coerce(column, part["month"])
        if isinstance(month, str):
            return None  # reported by the full check of balances
        found = _month_range(month.values, ctx)
        if found is not None:
            lows.append(found[0])
            highs.append(found[1])
    return (min(lows), max(highs)) if lows else None


def _validate_parts(root: Path, table: Table, ctx: _Context, ledger: _Ledger,
                    writer: _RejectsWriter) -> tuple[int, int]:
    """Check one fact table part by part; returns (rows in, rows rejected)."""
    global_dups = _global_duplicates(root, table, ledger)
    n_in = n_bad = 0
    for part in io.iter_table_parts(root, table.name):
        n = len(part)
        txn_dups = None
        if table.name == "transactions" and isinstance(global_dups, np.ndarray):
            local = global_dups[(global_dups >= n_in) & (global_dups < n_in + n)] - n_in
            txn_dups = np.zeros(n, dtype=bool)
            txn_dups[local] = True
        inspection = _inspect(table, part, ctx, n_in, check_duplicates=global_dups is None,
                              txn_duplicates=txn_dups)
        ledger.add_findings(table.name, inspection.findings)
        bad = inspection.reject_mask
        if bad.any():
            writer.write(_reject_frame(table, inspection, bad, n_in))
        n_in += n
        n_bad += int(bad.sum())
    return n_in, n_bad


def _global_duplicates(root: Path, table: Table, ledger: _Ledger) -> np.ndarray | bool | None:
    """Cross-part duplicate keys, when the parts' key ranges overlap.

    Returns None when per-part checks are exact (one part, or disjoint ranges); for transactions the sorted
    global row positions of duplicate txn_ids beyond the first; for the other keyed tables True, after
    adding any duplicates to the ledger.
    """
    if not table.key:
        return None
    range_col = "txn_id" if table.name == "transactions" else "customer_id"
    available = io.table_columns(root, table.name)
    if any(k not in available for k in (*table.key, range_col)):
        return None  # missing columns are reported by the full check
    spans, n_parts = [], 0
    for part in io.iter_table_parts(root, table.name, columns=[range_col]):
        n_parts += 1
        col = _coerce(table.column(range_col), part[range_col])
        if isinstance(col, str):
            return None
        present = col.values[~col.null]
        if len(present):
            spans.append((present.min(), present.max()))
    spans.sort()
    if n_parts <= 1 or all(lo > prev_hi for (_, prev_hi), (lo, _) in pairwise(spans)):
        return None
    keys: dict[str, list[np.ndarray]] = {k: [] for k in table.key}
    for part in io.iter_table_parts(root, table.name, columns=list(table.key)):
        for k in table.key:
            col = _coerce(table.column(k), part[k])
            if isinstance(col, str):
                return None  # reported by the full check
            keys[k].append(col.values)
    columns = [np.concatenate(keys[k]) for k in table.key]
    if table.name == "transactions":
        return np.flatnonzero(_duplicated_keys(columns, keep="first"))
    dup = _duplicated_keys(columns, keep=False)
    if dup.any():
        ids = columns[table.key.index("customer_id")]
        ledger.add(table.name, "duplicate_key", f"duplicate key {list(table.key)}", "refuse",
                   int(dup.sum()), _id_examples(ids[dup]))
    return True


class _RejectsWriter:
    """Streams rejects frames into one Parquet file, moved into place only when complete."""

    _SCHEMA = pa.schema([("table", pa.string()), ("row", pa.int64()), ("customer_id", pa.int64()),
                         ("txn_id", pa.int64()), ("reason", pa.string())])

    def __init__(self, path: Path | None):
        self.path = path
        self._writer: pq.ParquetWriter | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            self._writer = pq.ParquetWriter(self._tmp, self._SCHEMA)

    def write(self, frame: pd.DataFrame) -> None:
        if self._writer is not None:
            self._writer.write_table(pa.Table.from_pandas(frame, schema=self._SCHEMA, preserve_index=False))

    def close(self) -> Path | None:
        if self._writer is None:
            return None
        self._writer.close()
        os.replace(self._tmp, self.path)
        return self.path

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._tmp.unlink(missing_ok=True)


def _write_summary(path: Path, root: Path, summary: FolderValidationSummary, problems: list[Problem],
                   max_reject_fraction: float) -> Path:
    document = {
        "dataset": str(root),
        "status": "refused" if problems else "accepted",
        "max_reject_fraction": max_reject_fraction,
        "date_range": [str(t) for t in summary.date_range] if summary.date_range else None,
        "counts": {name: asdict(c) for name, c in summary.counts.items()},
        "problems": [asdict(p) for p in problems],
        "warnings": [asdict(p) for p in summary.warnings],
        "rejects": summary.rejects_path.name if summary.rejects_path else None,
    }
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
