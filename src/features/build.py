"""The feature table: run the five blocks per bucket of customers and per as_of date, and join them.

Buckets bound memory: customer ``c`` belongs to bucket ``splitmix64(c) mod n_buckets`` (the 64-bit finaliser
of SplitMix64, Steele et al. 2014; stable across runs, machines and engines, and it spreads consecutive ids
evenly). For a dataset folder with ``n_buckets > 1`` each large table is read once, in record batches, and
scattered into one temporary Parquet file per bucket (a local shuffle); each bucket is then read back alone,
so peak memory follows the largest bucket, not the bank. When the folder's parts already split customers (the
simulator writes parts of consecutive customers; footer statistics prove it) the parts are the buckets and
nothing is scattered. With ``n_buckets == 1`` the other tables are read whole (fastest while they fit). In
every case the transactions table, by far the largest, is streamed row group by row group into per-customer
sums (:class:`bankseg.features.transactions.TransactionAccumulator`, bit-identical to reading it whole), so it
is never held whole in memory. Several as_of dates share one read of each bucket.

The same :func:`build_bucket_features` runs inside Spark (``engine="spark"``, :mod:`bankseg.features.spark`)
through ``groupBy("bucket").applyInPandas``, so both engines give identical values.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from bankseg.data.io import table_path
from bankseg.data.schema import DEFAULT_AUM_PRODUCTS, DEFAULT_LOAN_PRODUCTS, TABLES
from bankseg.features import _kernels as k
from bankseg.features.balances import BALANCE_COLUMNS, build_balance_features
from bankseg.features.customers import CUSTOMER_COLUMNS, build_customer_features
from bankseg.features.holdings import HOLDING_COLUMNS, build_holding_features
from bankseg.features.interactions import INTERACTION_COLUMNS, build_interaction_features
from bankseg.features.labels import LabelSettings, build_labels, data_end_of
from bankseg.features.transactions import (
    TRANSACTION_COLUMNS,
    build_transaction_features,
    build_transaction_features_batched,
)
from bankseg.parallel import map_ordered, resolve_workers

BLOCK_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": CUSTOMER_COLUMNS,
    "balances": BALANCE_COLUMNS,
    "transactions": TRANSACTION_COLUMNS,
    "holdings": HOLDING_COLUMNS,
    "interactions": INTERACTION_COLUMNS,
}
SCATTER_BATCH_ROWS = 1 << 20
# Tables read in batches rather than whole (the largest by far; its block accumulates batch by batch).
BATCHED_TABLES = frozenset({"transactions"})


@dataclass(frozen=True)
class FeatureSettings:
    """Plain settings of the blocks (conf/features/default.yaml plus the dataset's product lists)."""

    windows: tuple[int, ...] = (1, 3, 6, 12)
    aum_products: tuple[str, ...] = DEFAULT_AUM_PRODUCTS
    loan_products: tuple[str, ...] = DEFAULT_LOAN_PRODUCTS
    recency_cap_days: int = 400
    salary_day_std_scale: float = 7.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "windows", tuple(k.validate_windows(self.windows)))
        object.__setattr__(self, "aum_products", tuple(self.aum_products))
        object.__setattr__(self, "loan_products", tuple(self.loan_products))


def splitmix64(values: np.ndarray) -> np.ndarray:
    """Return the SplitMix64 finaliser of int64 values as uint64 (a stable, well-mixed hash)."""
    z = np.asarray(values, dtype=np.int64).view(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def bucket_of(customer_id, n_buckets: int) -> np.ndarray:
    """Return each customer's bucket, ``splitmix64(customer_id) mod n_buckets`` (int64)."""
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
    return (splitmix64(np.asarray(customer_id, dtype=np.int64)) % np.uint64(n_buckets)).astype(np.int64)


def normalise_as_of_dates(as_of) -> list[pd.Timestamp]:
    """Return one or several as_of dates as a sorted list of unique tz-naive Timestamps."""
    values = [as_of] if isinstance(as_of, str | pd.Timestamp) or not isinstance(as_of, Sequence) else as_of
    dates = sorted({k.normalise_as_of(v) for v in values})
    if not dates:
        raise ValueError("as_of: give at least one date")
    return dates


def build_bucket_features(
    tables: Mapping[str, pd.DataFrame],
    as_of_dates: Sequence[pd.Timestamp],
    settings: FeatureSettings,
    label_settings: LabelSettings | None = None,
    data_end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Return the joined feature rows of one set of customers for each as_of date (keys first).

    ``tables`` maps the five table names to their rows for these customers (transactions may also be an
    iterable of batches, e.g. :class:`ParquetBatches`). The customers block defines the
    rows (customers who opened before as_of); every other block is asked for exactly those customers, so a
    customer with no rows in a table gets that block's documented defaults (0 counts, NaN trends, ...).
    With ``label_settings`` the label columns are added (``data_end``: see :func:`labels.data_end_of`, taken
    from the whole dataset).
    """
    if label_settings is not None and data_end is None:
        raise ValueError("data_end is required with label_settings (labels need to know what the data covers)")
    missing = [name for name in BLOCK_COLUMNS if name not in tables]
    if missing:
        raise ValueError(f"missing tables {missing}; the feature blocks need {list(BLOCK_COLUMNS)}")
    customers = [build_customer_features(tables["customers"], as_of) for as_of in as_of_dates]
    transactions = transaction_features(tables["transactions"], as_of_dates, customers, settings)
    frames = []
    for as_of, cust, txn in zip(as_of_dates, customers, transactions, strict=True):
        ids = cust["customer_id"].to_numpy()
        blocks = [
            cust,
            build_balance_features(
                tables["balances"], as_of, windows=settings.windows, aum_products=settings.aum_products,
                loan_products=settings.loan_products, customer_ids=ids,
            ),
            txn,
            build_holding_features(tables["holdings"], as_of, customer_ids=ids),
            build_interaction_features(tables["interactions"], as_of, windows=settings.windows, customer_ids=ids),
        ]
        joined = pd.concat([b.drop(columns="customer_id") for b in blocks], axis=1)
        joined.insert(0, "customer_id", ids)
        joined.insert(1, "as_of", np.full(ids.size, as_of.to_datetime64(), dtype="datetime64[ns]"))
        if label_settings is not None:
            labels = build_labels(
                tables["balances"], tables["holdings"], as_of, customer_ids=ids, data_end=data_end,
                settings=label_settings,
            )
            for column in labels.columns.drop("customer_id"):
                joined[column] = labels[column].to_numpy()
        frames.append(joined)
    return pd.concat(frames, ignore_index=True)


def transaction_features(
    rows: pd.DataFrame | Iterable[pd.DataFrame],
    as_of_dates: Sequence[pd.Timestamp],
    customers: Sequence[pd.DataFrame] | Sequence[np.ndarray],
    settings: FeatureSettings,
) -> list[pd.DataFrame]:
    """Return the transaction block for each as_of, for that date's customers; ``rows`` whole or batched.

    Batched rows (e.g. :class:`ParquetBatches`) are read once for all dates; the result is the same.
    """
    ids = [c["customer_id"].to_numpy() if isinstance(c, pd.DataFrame) else np.asarray(c) for c in customers]
    options = {
        "windows": settings.windows,
        "recency_cap_days": settings.recency_cap_days,
        "salary_day_std_scale": settings.salary_day_std_scale,
    }
    if isinstance(rows, pd.DataFrame):
        return [
            build_transaction_features(rows, as_of, customer_ids=i, **options)
            for as_of, i in zip(as_of_dates, ids, strict=True)
        ]
    union = np.unique(np.concatenate(ids)) if ids else np.array([], dtype=np.int64)
    full = build_transaction_features_batched(rows, as_of_dates, customer_ids=union, **options)
    out = []
    for frame, i in zip(full, ids, strict=True):
        keep = np.isin(frame["customer_id"].to_numpy(), i)
        out.append(frame.loc[keep].reset_index(drop=True))
    return out


class ParquetBatches:
    """A re-iterable scan of one table of a dataset folder, yielding one DataFrame per Parquet row group.

    Lets the transaction block read the largest table once, in bounded memory, for several as_of dates.
    Row groups are read one at a time with ``ParquetFile.read_row_group`` (the dataset scanner buffers far
    ahead: measured 435 MB against 170 MB for 10M transactions in 1M-row groups), so memory follows the row
    group size the writer chose (pyarrow's default is 1Mi rows).
    """

    def __init__(self, path: Path, name: str, customer_ids: np.ndarray | None = None) -> None:
        self.path, self.name, self.customer_ids = path, name, customer_ids

    def __iter__(self) -> Iterator[pd.DataFrame]:
        for table in self.arrow_tables():
            yield _to_frame(table)

    def arrow_tables(self) -> Iterator[pa.Table]:
        """Yield the row groups as Arrow tables (non-empty ones, filtered to ``customer_ids``)."""
        columns = list(BLOCK_COLUMNS[self.name])
        keep = None if self.customer_ids is None else pa.array(self.customer_ids, pa.int64())
        for file in _parquet_files(self.path):
            parquet = pq.ParquetFile(file, read_dictionary=_text_columns(self.name))
            absent = [c for c in columns if c not in parquet.schema_arrow.names]
            if absent:
                raise ValueError(f"{self.name}: missing columns {absent} in {file}")
            for group in range(parquet.metadata.num_row_groups):
                table = parquet.read_row_group(group, columns=columns)
                if keep is not None:
                    table = table.filter(pc.is_in(table["customer_id"], value_set=keep))
                if table.num_rows:
                    yield table


def _text_columns(name: str) -> list[str]:
    return [c.name for c in TABLES[name].columns if c.kind == "category" and c.values and isinstance(c.values[0], str)]


def _parquet_files(path: Path) -> list[str]:
    if path.is_dir():
        return sorted(str(p) for p in path.glob("*.parquet") if not p.name.startswith((".", "_")))
    return [str(path)]


def _scan(path: Path, name: str) -> ds.Dataset:
    """A pyarrow dataset over a table that keeps text columns dictionary-encoded (no string materialising)."""
    fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=_text_columns(name)))
    return ds.dataset(_parquet_files(path), format=fmt)


def _to_frame(table: pa.Table) -> pd.DataFrame:
    # self_destruct frees each Arrow column as soon as it is converted: peak memory ~ one copy, not two
    return table.to_pandas(date_as_object=False, self_destruct=True, split_blocks=True)


def read_block_table(root: Path | str, name: str, customer_ids: np.ndarray | None = None) -> pd.DataFrame:
    """Read the columns the blocks need from one table of a dataset folder (optionally some customers)."""
    path = table_path(root, name)
    if path is None:
        raise FileNotFoundError(f"dataset folder {root}: table {name!r} is missing ({name}.parquet or {name}/)")
    return _read_path(path, name, customer_ids)


def _read_path(path: Path, name: str, customer_ids: np.ndarray | None) -> pd.DataFrame:
    """Read a table file or parts folder whole (row group by row group: lighter than a dataset scan)."""
    tables = list(ParquetBatches(path, name, customer_ids).arrow_tables())
    if not tables:
        return _to_frame(_scan(path, name).head(0, columns=list(BLOCK_COLUMNS[name])))
    return _to_frame(pa.concat_tables(tables, promote_options="permissive"))


def _scatter(root: Path, name: str, n_buckets: int, keep: np.ndarray | None, out_dir: Path) -> list[Path]:
    """Write one Parquet file per bucket holding the table's rows of that bucket's customers (one read)."""
    dataset = _scan(table_path(root, name), name)
    columns = list(BLOCK_COLUMNS[name])
    files = [out_dir / f"{name}-{b:05d}.parquet" for b in range(n_buckets)]
    writers: dict[int, pq.ParquetWriter] = {}
    try:
        for batch in dataset.to_batches(columns=columns, batch_size=SCATTER_BATCH_ROWS):
            cid = batch.column("customer_id").to_numpy(zero_copy_only=False)
            buckets = bucket_of(cid, n_buckets)
            if keep is not None:
                buckets = np.where(np.isin(cid, keep), buckets, -1)
            order = np.argsort(buckets, kind="stable")
            bounds = np.searchsorted(buckets[order], np.arange(n_buckets + 1))
            table = pa.Table.from_batches([batch]).take(pa.array(order))
            for b in range(n_buckets):
                lo, hi = int(bounds[b]), int(bounds[b + 1])
                if hi > lo:
                    if b not in writers:
                        writers[b] = pq.ParquetWriter(files[b], table.schema)
                    writers[b].write_table(table.slice(lo, hi - lo))
    finally:
        for writer in writers.values():
            writer.close()
    empty = dataset.head(0, columns=columns)
    for b in set(range(n_buckets)) - set(writers):
        pq.write_table(empty, files[b])
    return files


@dataclass(frozen=True)
class BucketSource:
    """Where one bucket's tables come from (picklable, so a worker process can load the bucket itself).

    ``frames``: tables already in memory, restricted to the bucket; ``paths``: table files or part folders
    read with :func:`load_bucket`, filtered to ``customer_ids`` when given.
    """

    index: int
    frames: Mapping[str, pd.DataFrame]
    paths: Mapping[str, Path]
    customer_ids: np.ndarray | None = None


def load_bucket(source: BucketSource) -> dict[str, pd.DataFrame]:
    """The bucket's tables (transactions as a :class:`ParquetBatches` scan when read from disk)."""
    tables = dict(source.frames)
    for name, path in source.paths.items():
        if name in BATCHED_TABLES:
            tables[name] = ParquetBatches(path, name, source.customer_ids)
        else:
            tables[name] = _read_path(path, name, source.customer_ids)
    return tables


def iter_buckets(
    source: Path | str | Mapping[str, pd.DataFrame],
    n_buckets: int,
    customers: Sequence[int] | None = None,
    tables: Sequence[str] = tuple(BLOCK_COLUMNS),
) -> Iterator[dict[str, pd.DataFrame]]:
    """Yield, bucket by bucket, the tables (default: all five) restricted to that bucket's customers.

    ``source`` is a dataset folder or a dict of DataFrames (for example the simulator's output).
    ``customers`` restricts everything to these customer ids.
    """
    with bucket_sources(source, n_buckets, customers, tables) as sources:
        for bucket in sources:
            yield load_bucket(bucket)


@contextmanager
def bucket_sources(
    source: Path | str | Mapping[str, pd.DataFrame],
    n_buckets: int,
    customers: Sequence[int] | None = None,
    tables: Sequence[str] = tuple(BLOCK_COLUMNS),
    scatter: bool = True,
) -> Iterator[list[BucketSource]]:
    """The buckets of ``source`` as :class:`BucketSource` s, valid inside the ``with`` block.

    A folder whose parts do not split customers is scattered into one temporary file per bucket and table
    (removed when the block ends); the customers table is read once and split in memory. ``scatter=False``
    instead lets each bucket read the tables filtered to its customers: cheaper when there are only as many
    buckets as worker processes (each reads the tables once, in parallel; nothing is written).
    """
    unknown = [t for t in tables if t not in BLOCK_COLUMNS]
    if unknown:
        raise ValueError(f"unknown tables {unknown}; known: {list(BLOCK_COLUMNS)}")
    bucket_of(np.zeros(0, dtype=np.int64), n_buckets)  # refuses n_buckets < 1
    keep = None if customers is None else np.unique(np.asarray(customers, dtype=np.int64))
    if isinstance(source, Mapping):
        yield _split_frames(source, n_buckets, keep, tables)
        return
    root = Path(source)
    for name in tables:
        if table_path(root, name) is None:
            raise FileNotFoundError(f"dataset folder {root}: table {name!r} is missing ({name}.parquet or {name}/)")
    if n_buckets == 1:
        yield [BucketSource(0, {}, {name: table_path(root, name) for name in tables}, keep)]
        return
    parts = customer_partitioned_parts(root, tables)
    if parts is not None:  # the parts already split customers (the simulator's layout): they are the buckets
        yield [BucketSource(i, {}, part, keep) for i, part in enumerate(parts)]
        return
    if not scatter:
        frame = read_block_table(root, "customers", keep)
        buckets = bucket_of(frame["customer_id"].to_numpy(), n_buckets)
        others = {name: table_path(root, name) for name in tables if name != "customers"}
        yield [BucketSource(b, {"customers": frame.loc[buckets == b]} if "customers" in tables else {}, others,
                            frame["customer_id"].to_numpy(dtype=np.int64)[buckets == b]) for b in range(n_buckets)]
        return
    with tempfile.TemporaryDirectory(prefix="bankseg-buckets-") as tmp:
        frames: list[dict[str, pd.DataFrame]] = [{} for _ in range(n_buckets)]
        if "customers" in tables:  # one row per customer: small enough to read once and split in memory
            frame = read_block_table(root, "customers", keep)
            buckets = bucket_of(frame["customer_id"].to_numpy(), n_buckets)
            for b in range(n_buckets):
                frames[b]["customers"] = frame.loc[buckets == b]
        scattered = {
            name: _scatter(root, name, n_buckets, keep, Path(tmp)) for name in tables if name != "customers"
        }
        yield [BucketSource(b, frames[b], {name: files[b] for name, files in scattered.items()})
               for b in range(n_buckets)]


def _split_frames(source: Mapping[str, pd.DataFrame], n_buckets: int, keep: np.ndarray | None,
                  tables: Sequence[str]) -> list[BucketSource]:
    """In-memory tables split into buckets (each bucket's rows of each table)."""
    masks = {}
    for name in tables:
        if name not in source:
            raise ValueError(f"missing table {name!r}; got {sorted(source)}")
        cid = source[name]["customer_id"].to_numpy(dtype=np.int64)
        bucket = bucket_of(cid, n_buckets)
        if keep is not None:
            bucket = np.where(np.isin(cid, keep), bucket, -1)
        masks[name] = bucket
    return [
        BucketSource(b, {name: source[name].loc[masks[name] == b, list(BLOCK_COLUMNS[name])] for name in tables}, {})
        for b in range(n_buckets)
    ]


def count_customers(source: Path | str | Mapping[str, pd.DataFrame]) -> int:
    """Rows of the customers table (from Parquet footers for a folder: nothing is read)."""
    if isinstance(source, Mapping):
        return len(source["customers"])
    path = table_path(source, "customers")
    if path is None:
        raise FileNotFoundError(f"dataset folder {source}: table 'customers' is missing")
    return sum(pq.ParquetFile(f).metadata.num_rows for f in _parquet_files(path))


def n_buckets_for(n_customers: int, bucket_customers: int, n_buckets: int, workers: int = 1) -> int:
    """Buckets: at least ``n_buckets``, enough that one holds about ``bucket_customers``, and one per worker."""
    if bucket_customers < 1:
        raise ValueError(f"bucket_customers must be >= 1, got {bucket_customers}")
    if n_buckets < 1:
        raise ValueError(f"n_buckets must be >= 1, got {n_buckets}")
    return max(int(n_buckets), math.ceil(n_customers / bucket_customers), int(workers), 1)


def customer_partitioned_parts(root: Path | str, tables: Sequence[str]) -> list[dict[str, Path]] | None:
    """Return the folder's parts as buckets when its parts split customers (else None).

    That is the simulator's layout: every table is a folder with the same part file names, and part ``p`` of
    every table holds only customer ids inside the range of the customers table's part ``p``, ranges that do
    not overlap. Parquet footer statistics prove it without reading any data, and the parts then serve as
    buckets with no shuffle. Each customer still lands in exactly one bucket, so results do not change.
    """
    names = ("customers", *[t for t in tables if t != "customers"])
    files: dict[str, dict[str, Path]] = {}
    for name in names:
        path = table_path(root, name)
        if path is None or not path.is_dir():
            return None
        files[name] = {p.name: p for p in path.glob("*.parquet") if not p.name.startswith((".", "_"))}
    part_names = sorted(files["customers"])
    if len(part_names) < 2 or any(sorted(f) != part_names for f in files.values()):
        return None
    ranges = {name: [_id_range(files[name][p]) for p in part_names] for name in names}
    bounds = ranges["customers"]
    if any(b is None or b == _EMPTY_RANGE for b in bounds):
        return None
    ordered = sorted(bounds)
    if any(ordered[i][1] >= ordered[i + 1][0] for i in range(len(ordered) - 1)):
        return None
    for name in names:
        for (lo, hi), r in zip(bounds, ranges[name], strict=True):
            if r is None or (r != _EMPTY_RANGE and not (lo <= r[0] and r[1] <= hi)):
                return None
    return [{name: files[name][p] for name in names if name in tables} for p in part_names]


_EMPTY_RANGE = (0, -1)


def _id_range(path: Path) -> tuple[int, int] | None:
    """(min, max) customer_id of a Parquet file from its footer; (0, -1) when empty; None without statistics."""
    meta = pq.ParquetFile(path).metadata
    if meta.num_rows == 0:
        return _EMPTY_RANGE
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    if "customer_id" not in names:
        return None
    column = names.index("customer_id")
    lo = hi = None
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(column).statistics
        if stats is None or not stats.has_min_max:
            return None
        lo = stats.min if lo is None else min(lo, stats.min)
        hi = stats.max if hi is None else max(hi, stats.max)
    return (int(lo), int(hi))


def build_feature_table(
    root_or_tables: Path | str | Mapping[str, pd.DataFrame],
    as_of,
    *,
    windows: Sequence[int] = (1, 3, 6, 12),
    aum_products: Sequence[str] = DEFAULT_AUM_PRODUCTS,
    loan_products: Sequence[str] = DEFAULT_LOAN_PRODUCTS,
    recency_cap_days: int = 400,
    salary_day_std_scale: float = 7.5,
    n_buckets: int = 1,
    engine: str = "pandas",
    customers: Sequence[int] | None = None,
    spark_master: str = "local[2]",
    label_settings: LabelSettings | None = None,
    workers: int | None = 1,
    bucket_customers: int | None = None,
) -> pd.DataFrame:
    """Return the feature table: one row per (customer_id, as_of), sorted by as_of then customer_id.

    ``root_or_tables`` is a dataset folder or a dict of the five tables. ``as_of`` is one date or a list;
    features use data strictly before each date (see the block modules for windows and defaults). Rows are
    the customers who opened before as_of (restricted to ``customers`` when given). ``engine="spark"`` runs
    the same blocks on a local Spark session (``spark_master``) and returns the same values. With
    ``label_settings`` the label columns are added (NaN where the data does not cover the future window).

    pandas engine: ``workers`` processes (None or 0: every core) build buckets in parallel; there are at least
    ``n_buckets`` buckets, one per worker, and (with ``bucket_customers``) enough that a bucket holds about
    that many customers, which bounds each worker's memory. The result does not depend on either setting.
    """
    settings = FeatureSettings(
        windows=tuple(windows), aum_products=tuple(aum_products), loan_products=tuple(loan_products),
        recency_cap_days=recency_cap_days, salary_day_std_scale=salary_day_std_scale,
    )
    dates = normalise_as_of_dates(as_of)
    if engine not in ("pandas", "spark"):
        raise ValueError(f"engine must be 'pandas' or 'spark', got {engine!r}")
    data_end = dataset_data_end(root_or_tables) if label_settings is not None else None
    if engine == "spark":
        from bankseg.features.spark import build_feature_table_spark

        return build_feature_table_spark(
            root_or_tables, dates, settings, n_buckets=n_buckets, customers=customers, master=spark_master,
            label_settings=label_settings, data_end=data_end,
        )
    workers = resolve_workers(workers)
    if bucket_customers is not None or workers > 1:
        n = len(np.unique(np.asarray(customers))) if customers is not None else count_customers(root_or_tables)
        n_buckets = n_buckets_for(n, bucket_customers or max(n, 1), n_buckets, min(workers, max(n, 1)))
    task = partial(bucket_feature_rows, dates=dates, settings=settings, label_settings=label_settings,
                   data_end=data_end)
    with bucket_sources(root_or_tables, n_buckets, customers, scatter=n_buckets > workers) as sources:
        parts = list(map_ordered(task, sources, min(workers, len(sources))))
    return sort_feature_table(pd.concat(parts, ignore_index=True))


def bucket_feature_rows(source: BucketSource, dates: Sequence[pd.Timestamp], settings: FeatureSettings,
                        label_settings: LabelSettings | None, data_end: pd.Timestamp | None) -> pd.DataFrame:
    """Load one bucket and build its feature rows (the task a feature worker runs)."""
    return build_bucket_features(load_bucket(source), dates, settings, label_settings, data_end)


def dataset_data_end(root_or_tables: Path | str | Mapping[str, pd.DataFrame]) -> pd.Timestamp:
    """Return the first day after the last balances month of the whole dataset (reads one column)."""
    if isinstance(root_or_tables, Mapping):
        return data_end_of(root_or_tables["balances"])
    path = table_path(root_or_tables, "balances")
    if path is None:
        raise FileNotFoundError(f"dataset folder {root_or_tables}: table 'balances' is missing")
    months = _to_frame(_scan(path, "balances").to_table(columns=["month"]))
    return data_end_of(months)


def sort_feature_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Return the feature table sorted by (as_of, customer_id) with a fresh index."""
    return frame.sort_values(["as_of", "customer_id"], ignore_index=True, kind="stable")
