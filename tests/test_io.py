"""Dataset folders: both layouts read back identically, writes are atomic, fingerprints are stable."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from bankseg.data import io
from bankseg.data.schema import CHANNELS, PRODUCTS


def make_tables(n_txn: int = 60, seed: int = 0) -> dict[str, pd.DataFrame]:
    """Two small canonical tables with text categories, dates and money."""
    rng = np.random.default_rng(seed)
    transactions = pd.DataFrame({
        "txn_id": np.arange(n_txn, dtype=np.int64),
        "customer_id": rng.integers(1, 10, n_txn),
        "ts": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 90 * 86400, n_txn), unit="s"),
        "amount": rng.uniform(1, 1000, n_txn),
        "direction": rng.choice(["in", "out"], n_txn),
        "channel": rng.choice(["mobile", "atm", "qr"], n_txn),
        "category": "consumption",
        "counterparty": "merchant",
    })
    balances = pd.DataFrame({
        "customer_id": [1, 1, 2],
        "month": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-01-01"]),
        "product": ["fund", "demand_deposit", "demand_deposit"],
        "avg_daily_balance": [10.0, 20.0, 30.0],
        "month_end_balance": [11.0, 21.0, 31.0],
    })
    return {"transactions": transactions, "balances": balances}


def assert_same_values(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Equal column by column, comparing categories as text and times at any resolution."""
    assert list(got.columns) == list(expected.columns)
    for name in expected.columns:
        g, e = got[name], expected[name]
        if isinstance(g.dtype, pd.CategoricalDtype):
            g = g.astype(str)
        if pd.api.types.is_datetime64_dtype(e.dtype):
            g, e = g.astype("datetime64[ns]"), e.astype("datetime64[ns]")
        assert g.tolist() == e.astype(g.dtype).tolist(), name


def test_single_file_layout_round_trips_with_canonical_dtypes(tmp_path):
    tables = make_tables()
    io.write_dataset(tables, tmp_path / "ds")
    assert io.table_path(tmp_path / "ds", "transactions") == tmp_path / "ds" / "transactions.parquet"
    back = io.read_dataset(tmp_path / "ds")
    assert set(back) == {"transactions", "balances"}
    for name, df in tables.items():
        assert_same_values(back[name], df)
    txn = back["transactions"]
    assert list(txn["channel"].cat.categories) == list(CHANNELS)  # the schema's list, not the file's
    assert list(back["balances"]["product"].cat.categories) == list(PRODUCTS)
    assert pd.api.types.is_datetime64_dtype(txn["ts"].dtype)
    # codes are stable: "mobile" has the same code whatever values a file happens to hold
    assert (txn["channel"].cat.codes[txn["channel"] == "mobile"] == CHANNELS.index("mobile")).all()


def test_parts_layout_round_trips_and_streams_part_by_part(tmp_path):
    txn = make_tables()["transactions"]
    chunks = np.array_split(np.arange(len(txn)), 3)
    for i, rows in enumerate(chunks):
        io.write_table(txn.iloc[rows], tmp_path, "transactions", part=i)
    assert io.table_path(tmp_path, "transactions") == tmp_path / "transactions"
    assert_same_values(io.read_table(tmp_path, "transactions"), txn)
    parts = list(io.iter_table_parts(tmp_path, "transactions", columns=["txn_id", "channel"]))
    assert [len(p) for p in parts] == [len(r) for r in chunks]
    assert list(parts[0].columns) == ["txn_id", "channel"]
    assert parts[2]["txn_id"].tolist() == txn["txn_id"].iloc[chunks[2]].tolist()


def test_single_file_is_streamed_by_row_group(tmp_path):
    txn = make_tables()["transactions"]
    pq.write_table(io.pa.Table.from_pandas(txn, preserve_index=False), tmp_path / "transactions.parquet",
                   row_group_size=25)
    sizes = [len(p) for p in io.iter_table_parts(tmp_path, "transactions")]
    assert sizes == [25, 25, 10]


def test_filters_are_applied_when_reading(tmp_path):
    txn = make_tables()["transactions"]
    io.write_table(txn, tmp_path, "transactions")
    got = io.read_table(tmp_path, "transactions", filters=[("customer_id", "in", [3, 4])])
    assert sorted(got["txn_id"]) == sorted(txn.loc[txn["customer_id"].isin([3, 4]), "txn_id"])


def test_unknown_category_values_survive_reading_for_validation_to_see(tmp_path):
    txn = make_tables()["transactions"].assign(channel="telegraph")
    io.write_table(txn, tmp_path, "transactions")
    got = io.read_table(tmp_path, "transactions")
    assert (got["channel"] == "telegraph").all()
    assert list(got["channel"].cat.categories) == [*CHANNELS, "telegraph"]


def test_missing_table_error_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}.*customers"):
        io.read_table(tmp_path, "customers")
    assert io.table_path(tmp_path, "customers") is None


def test_both_layouts_of_one_table_are_refused(tmp_path):
    txn = make_tables()["transactions"]
    io.write_table(txn, tmp_path, "transactions", part=0)
    with pytest.raises(ValueError, match="already holds table 'transactions'"):
        io.write_table(txn, tmp_path, "transactions")
    (tmp_path / "transactions.parquet").write_bytes((tmp_path / "transactions" / "part-00000.parquet").read_bytes())
    with pytest.raises(ValueError, match="twice"):
        io.table_path(tmp_path, "transactions")


def test_failed_table_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    old = make_tables()["balances"]
    path = io.write_table(old, tmp_path, "balances")

    def broken_write(table, where, **kwargs):
        with open(where, "wb") as f:
            f.write(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(io.pq, "write_table", broken_write)
    with pytest.raises(OSError, match="disk full"):
        io.write_table(old.assign(avg_daily_balance=0.0), tmp_path, "balances")
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    assert_same_values(io.read_table(tmp_path, "balances"), old)


def test_failed_dataset_write_keeps_the_old_folder_whole(tmp_path, monkeypatch):
    tables = make_tables()
    io.write_dataset(tables, tmp_path / "ds")
    real_write = io.pq.write_table
    calls = []

    def fail_on_second(table, where, **kwargs):
        calls.append(where)
        if len(calls) == 2:
            raise OSError("disk full")
        real_write(table, where, **kwargs)

    monkeypatch.setattr(io.pq, "write_table", fail_on_second)
    with pytest.raises(OSError, match="disk full"):
        io.write_dataset({name: df.iloc[:1] for name, df in tables.items()}, tmp_path / "ds")
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temporary folder left behind
    for name, df in tables.items():
        assert_same_values(io.read_table(tmp_path / "ds", name), df)


def test_readers_ignore_hidden_temporary_parts(tmp_path):
    txn = make_tables()["transactions"]
    io.write_table(txn.iloc[:10], tmp_path, "transactions", part=0)
    (tmp_path / "transactions" / ".part-00001.parquet.tmp.parquet").write_bytes(b"garbage")
    assert len(io.read_table(tmp_path, "transactions")) == 10


@pytest.mark.parametrize("content", [True, False])
def test_fingerprint_changes_with_data_and_not_with_identical_rewrites(tmp_path, content):
    tables = make_tables()
    io.write_dataset(tables, tmp_path / "ds")
    first = io.dataset_fingerprint(tmp_path / "ds", content=content)
    io.write_dataset(tables, tmp_path / "ds")
    (tmp_path / "ds" / "rejects.parquet").write_bytes(b"not a table")
    assert io.dataset_fingerprint(tmp_path / "ds", content=content) == first

    changed = dict(tables, balances=tables["balances"].assign(avg_daily_balance=[10.0, 20.0, 30.5]))
    io.write_dataset(changed, tmp_path / "ds")
    assert io.dataset_fingerprint(tmp_path / "ds", content=content) != first

    io.write_dataset(tables, tmp_path / "elsewhere")
    assert io.dataset_fingerprint(tmp_path / "elsewhere", content=content) == first  # paths are relative
