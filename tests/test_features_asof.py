"""The as-of rule, proven on a simulated bank, and the engines' plumbing: buckets, layouts, several dates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bankseg.data.io import write_table
from bankseg.data.simulate import SimulatorParams, simulate_bank
from bankseg.features import build
from bankseg.features.build import bucket_of, build_feature_table

TABLES = ("customers", "balances", "transactions", "holdings", "interactions")
BANK_START = pd.Timestamp("2023-01-01")  # the simulator's first month for these settings (checked below)
N_MONTHS = 24


@pytest.fixture(scope="module")
def bank() -> dict[str, pd.DataFrame]:
    tables = simulate_bank(SimulatorParams(n_customers=250, n_months=N_MONTHS, seed=7))
    return {name: tables[name] for name in TABLES}


def truncate(bank: dict[str, pd.DataFrame], t: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """The bank as an extract taken at ``t`` would show it: nothing dated on or after ``t``."""
    customers = bank["customers"].loc[bank["customers"]["open_date"] < t].copy()
    customers["mobile_banking_since"] = customers["mobile_banking_since"].where(customers["mobile_banking_since"] < t)
    holdings = bank["holdings"].loc[bank["holdings"]["opened"] < t].copy()
    holdings["closed"] = holdings["closed"].where(holdings["closed"] < t)
    return {
        "customers": customers,
        "balances": bank["balances"].loc[bank["balances"]["month"] < t],
        "transactions": bank["transactions"].loc[bank["transactions"]["ts"] < t],
        "holdings": holdings,
        "interactions": bank["interactions"].loc[bank["interactions"]["ts"] < t],
    }


def test_simulated_bank_spans_the_months_the_property_test_draws_from(bank):
    assert bank["balances"]["month"].min() == BANK_START
    assert bank["transactions"]["ts"].max() >= BANK_START + pd.DateOffset(months=N_MONTHS - 1)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    day=st.integers(min_value=1, max_value=N_MONTHS * 30),
    first_of_month=st.booleans(),
    subset_seed=st.integers(min_value=0, max_value=2**31),
    subset_share=st.floats(min_value=0.05, max_value=1.0),
)
def test_features_as_of_t_do_not_depend_on_data_after_t(bank, day, first_of_month, subset_seed, subset_share):
    t = BANK_START + pd.Timedelta(days=day)
    if first_of_month:
        t = t.replace(day=1)
    ids = bank["customers"]["customer_id"].to_numpy()
    rng = np.random.default_rng(subset_seed)
    subset = rng.choice(ids, size=max(1, int(subset_share * ids.size)), replace=False)

    with_future = build_feature_table(bank, t, customers=subset)
    without_future = build_feature_table(truncate(bank, t), t, customers=subset)

    pd.testing.assert_frame_equal(with_future, without_future)
    assert set(with_future["customer_id"]) <= set(subset)


def test_property_is_not_vacuous_future_data_would_change_features(bank):
    """Guard for the property test: a block that peeked past T would be caught (data after T differs)."""
    t = pd.Timestamp("2024-01-01")
    now = build_feature_table(bank, t)
    later = build_feature_table(bank, t + pd.DateOffset(months=1))
    common = now.merge(later, on="customer_id", suffixes=("", "_later"))
    assert (common["txn_count_1m"] != common["txn_count_1m_later"]).mean() > 0.3
    assert len(now) > 100


def test_buckets_give_the_same_table(bank):
    dates = ["2024-01-01", "2024-06-15"]
    whole = build_feature_table(bank, dates)
    pd.testing.assert_frame_equal(build_feature_table(bank, dates, n_buckets=4), whole)


def test_several_as_of_dates_equal_one_at_a_time(bank):
    dates = [pd.Timestamp("2023-09-01"), pd.Timestamp("2024-03-01")]
    together = build_feature_table(bank, dates)
    apart = pd.concat([build_feature_table(bank, d) for d in dates], ignore_index=True)
    pd.testing.assert_frame_equal(together, apart)


def test_dataset_folder_layouts_buckets_and_batches_give_identical_values(bank, tmp_path, monkeypatch):
    monkeypatch.setattr(build, "SCATTER_BATCH_ROWS", 10_000)  # small scatter batches
    ids = np.sort(bank["customers"]["customer_id"].to_numpy())
    halves = np.array_split(ids, 2)
    (tmp_path / "files").mkdir()
    for name, frame in bank.items():
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "files" / f"{name}.parquet",
                       row_group_size=10_000)  # many row groups: streaming them must be exact
        for part in range(3):  # parts that are not customer buckets: rows dealt round-robin
            write_table(frame.iloc[part::3], tmp_path / "parts", name, part=part)
        for part, members in enumerate(halves):  # the simulator's layout: parts of consecutive customers
            write_table(frame.loc[frame["customer_id"].isin(members)], tmp_path / "by_customer", name, part=part)
    assert build.customer_partitioned_parts(tmp_path / "by_customer", TABLES) is not None
    assert build.customer_partitioned_parts(tmp_path / "parts", TABLES) is None
    expected = build_feature_table(bank, "2024-04-01")
    # Layouts that keep each customer's rows in order give bit-identical sums; dealing rows round-robin
    # reorders them, and floating-point sums then differ in the last bits only.
    for root, n_buckets, exact in (("files", 1, True), ("by_customer", 2, True), ("parts", 1, False), ("parts", 3, False)):
        got = build_feature_table(tmp_path / root, "2024-04-01", n_buckets=n_buckets)
        pd.testing.assert_frame_equal(got, expected, check_categorical=False, check_exact=exact, rtol=1e-12)


def splitmix64_reference(x: int) -> int:
    """SplitMix64's finaliser in plain Python integers (the documented algorithm, written independently)."""
    mask = (1 << 64) - 1
    z = (x + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def test_bucket_is_splitmix64_mod_n_and_spreads_consecutive_ids():
    ids = [0, 1, 2, 3, 1_000_000, 2**40 + 7]
    assert bucket_of(np.array(ids), 16).tolist() == [splitmix64_reference(i) % 16 for i in ids]
    counts = np.bincount(bucket_of(np.arange(1, 100_001), 8), minlength=8)
    assert counts.min() > 0.95 * 100_000 / 8


def test_unknown_engine_and_bad_bucket_count_fail_loudly(bank):
    with pytest.raises(ValueError, match="engine must be"):
        build_feature_table(bank, "2024-01-01", engine="polars")
    with pytest.raises(ValueError, match="n_buckets must be >= 1"):
        build_feature_table(bank, "2024-01-01", n_buckets=0)
