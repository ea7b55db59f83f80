"""The simulated bank's contract: canonical schema, determinism, parts, atomic writes (bankseg.data.simulate)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bankseg.data import schema
from bankseg.data import simulate as sim
from bankseg.data.simulate import SimulatorParams, simulate_bank, write_simulated_bank

TINY = {"n_customers": 600, "n_months": 12, "customers_per_part": 250, "start_month": "2024-01-01"}


@pytest.fixture(scope="module")
def bank() -> dict[str, pd.DataFrame]:
    return simulate_bank(SimulatorParams(**TINY))


def _read_dataset(folder: Path) -> dict[str, pd.DataFrame]:
    out = {}
    for name in sim.PART_TABLES:
        files = sorted((folder / name).glob("part-*.parquet"))
        out[name] = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    out["ground_truth"] = pd.read_parquet(folder / "ground_truth.parquet")
    return out


def _expected_dtype(col: schema.Column) -> str:
    return {"int": "int64", "float": "float64", "datetime": "datetime64[ms]"}.get(col.kind, col.kind)


@pytest.mark.parametrize("table", schema.TABLE_NAMES)
def test_tables_have_exactly_the_canonical_columns_and_dtypes(bank, table):
    df = bank[table]
    spec = schema.TABLES[table]
    assert list(df.columns) == spec.column_names
    for col in spec.columns:
        if col.kind == "category":
            assert isinstance(df[col.name].dtype, pd.CategoricalDtype), col.name
            assert list(df[col.name].cat.categories) == list(col.values), col.name
        else:
            assert str(df[col.name].dtype) == _expected_dtype(col), col.name
        if not col.nullable:
            assert df[col.name].notna().all(), f"{table}.{col.name} has missing values"
        if col.values is not None and col.kind == "int":
            assert df[col.name].isin(col.values).all(), col.name
    assert len(df) > 0


def test_keys_are_unique_and_every_customer_id_is_known(bank):
    ids = set(bank["customers"].customer_id)
    assert bank["customers"].customer_id.is_unique
    assert bank["transactions"].txn_id.is_unique
    assert not bank["balances"].duplicated(["customer_id", "month", "product"]).any()
    assert not bank["holdings"].duplicated(["customer_id", "product", "opened"]).any()
    for table in ("balances", "transactions", "holdings", "interactions", "ground_truth"):
        assert set(bank[table].customer_id) <= ids, table


def test_money_is_positive_and_balances_non_negative(bank):
    assert (bank["transactions"].amount > 0).all()
    assert (bank["balances"][["avg_daily_balance", "month_end_balance"]] >= 0).all().all()
    # every balance row is a balance: nonzero somewhere
    b = bank["balances"]
    assert ((b.avg_daily_balance > 0) | (b.month_end_balance > 0)).all()


def test_dates_fall_inside_the_simulated_window(bank):
    start = pd.Timestamp(TINY["start_month"])
    end = start + pd.DateOffset(months=TINY["n_months"])
    months = bank["balances"].month
    assert (months.dt.day == 1).all() and months.min() >= start and months.max() < end
    ts = bank["transactions"].ts
    assert ts.min() >= start and ts.max() < end
    assert bank["interactions"].ts.between(start, end, inclusive="left").all()
    h = bank["holdings"]
    assert (h.opened < end).all()
    closed = h.closed.notna()
    assert (h.closed[closed] > h.opened[closed]).all()
    assert (h.closed[closed] < end).all()


def test_nothing_happens_before_a_customer_opens_an_account(bank):
    opened = bank["customers"].set_index("customer_id").open_date
    tx = bank["transactions"]
    assert (tx.ts >= tx.customer_id.map(opened)).all()
    first_month = opened.dt.to_period("M").dt.to_timestamp()
    b = bank["balances"]
    assert (b.month >= b.customer_id.map(first_month)).all()


def test_loans_carry_positive_balances_and_loan_products_only_there(bank):
    b = bank["balances"]
    loans = b[b["product"].isin(schema.DEFAULT_LOAN_PRODUCTS)]
    assert len(loans) > 0 and (loans.month_end_balance + loans.avg_daily_balance > 0).all()
    assert not b["product"].isin(["debit_card", "payroll", "mobile_banking"]).any()


def test_messy_records_exist_but_stay_within_the_schema(bank):
    c = bank["customers"]
    assert (c.education == "unknown").any()
    assert c.risk_questionnaire_score.isna().any() and c.risk_questionnaire_score.notna().any()
    assert c.credit_score.isna().any()
    assert c.risk_questionnaire_score.dropna().between(0, 100).all()


def test_demand_deposit_balance_follows_from_its_flows(bank):
    """Month-end deposit = previous month-end + inflows - outflows (customers without a credit card)."""
    card = set(bank["holdings"].loc[bank["holdings"]["product"] == "credit_card", "customer_id"])
    tx = bank["transactions"]
    tx = tx[~tx.customer_id.isin(card)]
    signed = np.where(tx.direction == "in", tx.amount, -tx.amount)
    flows = (
        pd.DataFrame({"customer_id": tx.customer_id, "month": tx.ts.dt.to_period("M").dt.to_timestamp(), "net": signed,
                      "n": 1})
        .groupby(["customer_id", "month"])[["net", "n"]].sum()
    )
    b = bank["balances"]
    dd = b[(b["product"] == "demand_deposit") & ~b.customer_id.isin(card)]
    months = pd.date_range(TINY["start_month"], periods=TINY["n_months"], freq="MS").astype("datetime64[ms]")
    ids = sorted(set(dd.customer_id) | set(flows.index.get_level_values(0)))
    grid = pd.MultiIndex.from_product([ids, months], names=["customer_id", "month"])
    end = dd.set_index(["customer_id", "month"]).month_end_balance.reindex(grid, fill_value=0.0)
    change = end.groupby(level=0).diff()
    f = flows.reindex(grid, fill_value=0)
    ok = change.notna()
    # amounts are rounded to cents one by one: allow a cent per transaction
    gap = (change[ok] - f.net[ok]).abs()
    assert (gap <= 0.011 * f.n[ok] + 0.02).mean() > 0.995, gap.describe()


def test_written_dataset_equals_the_in_memory_one(bank, tmp_path):
    rows = write_simulated_bank(SimulatorParams(**TINY), tmp_path / "bank", progress=False)
    back = _read_dataset(tmp_path / "bank")
    for name, df in bank.items():
        _assert_same_frame(back[name], df, name)
        assert rows[name] == len(df)
    assert sorted(p.name for p in (tmp_path / "bank" / "transactions").iterdir()) == [
        "part-00000.parquet", "part-00001.parquet", "part-00002.parquet"
    ]


def _assert_same_frame(got: pd.DataFrame, expected: pd.DataFrame, name: str) -> None:
    """Frames equal column by column (categoricals by categories and codes: far faster than boxing values)."""
    assert list(got.columns) == list(expected.columns), name
    for col in expected.columns:
        g, e = got[col], expected[col]
        if isinstance(e.dtype, pd.CategoricalDtype):
            assert isinstance(g.dtype, pd.CategoricalDtype), f"{name}.{col}"
            assert list(g.cat.categories) == list(e.cat.categories), f"{name}.{col}"
            np.testing.assert_array_equal(g.cat.codes.to_numpy(), e.cat.codes.to_numpy(), err_msg=f"{name}.{col}")
        else:
            pd.testing.assert_series_equal(g, e, obj=f"{name}.{col}")


def _file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path):
    params = SimulatorParams(n_customers=300, n_months=6, customers_per_part=150)
    write_simulated_bank(params, tmp_path / "a", progress=False)
    write_simulated_bank(params, tmp_path / "b", progress=False)
    write_simulated_bank(SimulatorParams(n_customers=300, n_months=6, customers_per_part=150, seed=7),
                         tmp_path / "c", progress=False)
    a, b, c = (_file_bytes(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if "customers" in k or "transactions" in k)


@pytest.mark.slow
def test_a_process_pool_writes_the_same_bytes(tmp_path):
    params = SimulatorParams(n_customers=300, n_months=6, customers_per_part=100)
    write_simulated_bank(params, tmp_path / "one", progress=False)
    pooled = SimulatorParams(n_customers=300, n_months=6, customers_per_part=100, workers=2)
    write_simulated_bank(pooled, tmp_path / "two", progress=False)
    assert _file_bytes(tmp_path / "one") == _file_bytes(tmp_path / "two")


def test_a_part_depends_only_on_seed_and_part_index():
    small = SimulatorParams(n_customers=400, n_months=6, customers_per_part=200)
    large = SimulatorParams(n_customers=800, n_months=6, customers_per_part=200)
    a = sim.simulate_part(small, 1)
    b = sim.simulate_part(large, 1)
    for name in a:
        _assert_same_frame(a[name], b[name], name)


def test_txn_ids_are_unique_across_parts(bank):
    assert bank["transactions"].txn_id.is_unique
    assert bank["transactions"].customer_id.max() > TINY["customers_per_part"]  # spans parts


def test_a_failed_run_leaves_no_half_dataset(tmp_path, monkeypatch):
    out = tmp_path / "bank"
    real = sim.simulate_part

    def fail_on_second_part(params, part_idx):
        if part_idx == 1:
            raise RuntimeError("killed")
        return real(params, part_idx)

    monkeypatch.setattr(sim, "simulate_part", fail_on_second_part)
    with pytest.raises(RuntimeError, match="killed"):
        write_simulated_bank(SimulatorParams(n_customers=300, n_months=3, customers_per_part=150), out,
                             progress=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_rewriting_replaces_an_existing_dataset(tmp_path):
    out = tmp_path / "bank"
    write_simulated_bank(SimulatorParams(n_customers=200, n_months=3, customers_per_part=100), out, progress=False)
    write_simulated_bank(SimulatorParams(n_customers=100, n_months=3, customers_per_part=100), out, progress=False)
    assert len(pd.read_parquet(out / "customers")) == 100
    assert [p.name for p in tmp_path.iterdir()] == ["bank"]


def test_params_defaults_come_from_the_config_file():
    import yaml

    conf = yaml.safe_load((Path(sim.__file__).parents[2] / "conf" / "simulator" / "default.yaml").read_text())
    params = SimulatorParams()
    for key, value in conf.items():
        assert getattr(params, key) == value, key


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start_month": "2024-01-15"}, "first day of a month"),
        ({"n_customers": 0}, "n_customers must be >= 1"),
        ({"customers_per_part": 0}, "customers_per_part must be >= 1"),
    ],
)
def test_bad_parameters_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SimulatorParams(**kwargs)


def test_unknown_parameters_are_refused():
    with pytest.raises(ValueError, match=r"unknown simulator parameters: \['n_custmers'\]"):
        SimulatorParams.from_dict({"n_custmers": 10})
