"""The data contract: one error listing every problem, rejects with reasons, in = kept + rejected."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from bankseg.data import io
from bankseg.data.schema import CHANNELS, TABLES
from bankseg.data.validate import (
    DataValidationError,
    validate_dataset,
    validate_dataset_folder,
    write_rejects,
)

N_TXN = 200  # 1% of it is 2 rows: the default max_reject_fraction tolerates two bad transactions


def make_tables(seed: int = 0) -> dict[str, pd.DataFrame]:
    """A small, valid dataset: 4 customers, balances for Jan-Mar 2024, 200 transactions in that range."""
    rng = np.random.default_rng(seed)
    ids = np.array([101, 102, 103, 104])
    customers = pd.DataFrame({
        "customer_id": ids,
        "birth_date": pd.to_datetime(["1960-05-01", "1995-01-20", "1980-11-02", "1972-03-15"]),
        "gender": ["F", "M", "F", "M"],
        "city_tier": [1, 2, 5, 3],
        "occupation": ["retired", "student", "farmer", "business_owner"],
        "education": ["secondary", "bachelor", "unknown", "vocational"],
        "declared_income_monthly": [3000.0, np.nan, 4500.0, 20000.0],
        "open_date": pd.to_datetime(["2001-01-01", "2015-06-01", "2010-03-01", "2005-09-09"]),
        "risk_questionnaire_score": [40.0, np.nan, np.nan, 75.0],
        "credit_score": [700.0, 650.0, np.nan, 720.0],
        "mobile_banking_since": pd.to_datetime([None, "2016-01-01", None, "2018-02-02"]),
    })
    months = pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"])
    balances = pd.DataFrame({
        "customer_id": np.repeat(ids, 3),
        "month": np.tile(months, 4),
        "product": "demand_deposit",
        "avg_daily_balance": rng.uniform(100, 1e5, 12),
        "month_end_balance": rng.uniform(100, 1e5, 12),
    })
    start = pd.Timestamp("2024-01-01").value
    end = pd.Timestamp("2024-03-31 23:00").value
    transactions = pd.DataFrame({
        "txn_id": np.arange(1, N_TXN + 1),
        "customer_id": rng.choice(ids, N_TXN),
        "ts": pd.to_datetime(np.sort(rng.integers(start, end, N_TXN))),
        "amount": rng.uniform(1, 5000, N_TXN).round(2),
        "direction": rng.choice(["in", "out"], N_TXN),
        "channel": rng.choice(list(CHANNELS), N_TXN),
        "category": rng.choice(["consumption", "transfer", "salary"], N_TXN),
        "counterparty": rng.choice(["merchant", "other_bank"], N_TXN),
    })
    holdings = pd.DataFrame({
        "customer_id": [101, 102, 103, 104, 104],
        "product": ["demand_deposit", "demand_deposit", "demand_deposit", "demand_deposit", "fund"],
        "opened": pd.to_datetime(["2001-01-01", "2015-06-01", "2010-03-01", "2005-09-09", "2023-06-01"]),
        "closed": pd.to_datetime([None, None, None, None, "2024-02-15"]),
    })
    interactions = pd.DataFrame({
        "customer_id": [101, 102, 102, 104],
        "ts": pd.to_datetime(["2024-01-05 00:00:00", "2024-02-01 08:00:00", "2024-03-30 00:00:00", "2024-03-02 00:00:00"]),
        "kind": ["branch_visit", "app_login", "app_login", "campaign_contact"],
    })
    return {"customers": customers, "balances": balances, "transactions": transactions,
            "holdings": holdings, "interactions": interactions}


def with_changes(tables: dict[str, pd.DataFrame], name: str, rows: list[int], column: str, value) -> dict:
    """A copy of ``tables`` with ``tables[name].loc[rows, column] = value`` (the originals are not touched)."""
    out = dict(tables)
    df = tables[name].copy()
    if column in df and isinstance(df[column].dtype, pd.StringDtype | pd.CategoricalDtype):
        df[column] = df[column].astype(object)
    df.loc[rows, column] = value
    out[name] = df
    return out


def refusal(tables: dict, **kwargs) -> DataValidationError:
    with pytest.raises(DataValidationError) as info:
        validate_dataset(tables, **kwargs)
    return info.value


def problem(error: DataValidationError, table: str, check: str):
    found = [p for p in error.problems if p.table == table and p.check == check]
    assert found, f"no {table}/{check} problem in:\n{error}"
    return found[0]


# ---------------------------------------------------------------------------------------------------- happy path


def test_valid_dataset_is_kept_whole_in_canonical_dtypes():
    tables = make_tables()
    result = validate_dataset(tables)
    assert result.rejects.empty
    for name, df in tables.items():
        assert result.counts[name].n_in == result.counts[name].n_kept == len(df)
    txn = result.tables["transactions"]
    assert list(txn.columns) == TABLES["transactions"].column_names
    assert list(txn["channel"].cat.categories) == list(CHANNELS)
    assert txn["amount"].dtype == np.float64 and txn["txn_id"].dtype == np.int64
    assert result.date_range == (pd.Timestamp("2024-01-01"), pd.Timestamp("2024-04-01"))


def test_input_frames_are_not_modified():
    tables = with_changes(make_tables(), "transactions", [3], "channel", "carrier_pigeon")
    before = {name: df.copy() for name, df in tables.items()}
    validate_dataset(tables)
    for name, df in tables.items():
        pd.testing.assert_frame_equal(df, before[name])


# ---------------------------------------------------------------------------------------------------- refusals


def test_missing_column_refuses_the_table():
    tables = make_tables()
    tables["transactions"] = tables["transactions"].drop(columns=["channel"])
    error = refusal(tables)
    p = problem(error, "transactions", "missing_columns")
    assert "channel" in p.message and p.n_rows == N_TXN


def test_extra_columns_are_dropped_with_a_warning_or_refused_on_request():
    tables = make_tables()
    tables["customers"] = tables["customers"].assign(phone="13800000000", name="张三")
    result = validate_dataset(tables)
    assert "phone" not in result.tables["customers"] and "name" not in result.tables["customers"]
    warning = next(w for w in result.warnings if w.check == "extra_columns")
    assert "phone" in warning.message and warning.table == "customers"
    error = refusal(tables, extra_columns="refuse")
    assert "phone" in problem(error, "customers", "extra_columns").message


def test_text_amount_is_a_wrong_dtype():
    tables = make_tables()
    tables["transactions"] = tables["transactions"].assign(amount=lambda d: d["amount"].astype(str))
    p = problem(refusal(tables), "transactions", "dtype")
    assert "amount" in p.message and "expected float" in p.message


def test_text_dates_are_a_wrong_dtype_but_integer_money_is_coerced():
    tables = make_tables()
    tables["interactions"] = tables["interactions"].assign(ts=lambda d: d["ts"].dt.strftime("%Y-%m-%d"))
    tables["balances"] = tables["balances"].assign(avg_daily_balance=lambda d: d["avg_daily_balance"].astype(int))
    error = refusal(tables)
    assert "ts" in problem(error, "interactions", "dtype").message
    assert not [p for p in error.problems if p.table == "balances"]


def test_null_key_refuses_even_a_fact_table():
    tables = make_tables()
    txn = tables["transactions"].copy()
    txn["txn_id"] = txn["txn_id"].astype("Int64")
    txn.loc[[5], "txn_id"] = pd.NA
    tables["transactions"] = txn
    p = problem(refusal(tables), "transactions", "null_key")
    assert p.n_rows == 1 and p.examples == ("row 5",)


def test_null_in_a_non_nullable_customer_column_refuses_customers():
    tables = with_changes(make_tables(), "customers", [2], "open_date", pd.NaT)
    assert problem(refusal(tables), "customers", "null").n_rows == 1


def test_duplicate_customer_ids_refuse_and_show_only_ids():
    tables = make_tables()
    tables["customers"] = pd.concat([tables["customers"], tables["customers"].iloc[[1]]], ignore_index=True)
    p = problem(refusal(tables), "customers", "duplicate_key")
    assert p.n_rows == 2 and p.examples == ("customer_id 102",)


def test_duplicate_balance_keys_refuse():
    tables = make_tables()
    tables["balances"] = pd.concat([tables["balances"], tables["balances"].iloc[[0, 4]]], ignore_index=True)
    assert problem(refusal(tables), "balances", "duplicate_key").n_rows == 4


def test_customer_born_after_opening_refuses_customers():
    tables = with_changes(make_tables(), "customers", [1], "birth_date", pd.Timestamp("2020-01-01"))
    p = problem(refusal(tables), "customers", "impossible_date")
    assert p.examples == ("customer_id 102",)


def test_unknown_value_in_customers_refuses_instead_of_rejecting():
    tables = with_changes(make_tables(), "customers", [0], "gender", "X")
    assert problem(refusal(tables), "customers", "unknown_value").n_rows == 1


@pytest.mark.parametrize("name", ["customers", "balances"])
def test_required_tables_must_be_present_and_not_empty(name):
    tables = make_tables()
    tables[name] = tables[name].iloc[:0]
    assert problem(refusal(tables), name, "empty_table")
    del tables[name]
    assert problem(refusal(tables), name, "missing_table")


def test_optional_tables_may_be_empty_or_absent_but_are_reported():
    tables = make_tables()
    tables["interactions"] = tables["interactions"].iloc[:0]
    del tables["holdings"]
    result = validate_dataset(tables)
    checks = {(w.table, w.check) for w in result.warnings}
    assert ("interactions", "empty_table") in checks and ("holdings", "missing_table") in checks
    assert result.counts["interactions"].n_in == 0 and "holdings" not in result.tables


def test_every_problem_is_listed_in_one_error_with_its_row_count():
    tables = make_tables()
    tables = with_changes(tables, "transactions", [1, 2, 3, 4], "amount", -5.0)
    tables = with_changes(tables, "transactions", [10, 11, 12], "channel", "carrier_pigeon")
    tables = with_changes(tables, "customers", [0], "birth_date", pd.Timestamp("2030-01-01"))
    tables["holdings"] = tables["holdings"].drop(columns=["opened"])
    error = refusal(tables)
    assert problem(error, "transactions", "range").n_rows == 4
    assert problem(error, "transactions", "unknown_value").n_rows == 3
    assert problem(error, "transactions", "reject_fraction").n_rows == 7
    assert problem(error, "customers", "impossible_date").n_rows == 1
    assert "opened" in problem(error, "holdings", "missing_columns").message
    lines = str(error).splitlines()
    assert len(lines) == 1 + len(error.problems)
    assert any("negative" not in ln and "amount not > 0" in ln and "(4 rows" in ln for ln in lines)


# ---------------------------------------------------------------------------------------------------- rejects


def test_bad_fact_rows_are_rejected_with_reasons_and_counts_add_up():
    tables = make_tables()
    tables = with_changes(tables, "transactions", [7], "channel", "carrier_pigeon")
    tables = with_changes(tables, "transactions", [9], "amount", 0.0)
    result = validate_dataset(tables)
    c = result.counts["transactions"]
    assert (c.n_in, c.n_kept, c.n_rejected) == (N_TXN, N_TXN - 2, 2)
    assert c.n_in == c.n_kept + c.n_rejected == len(result.tables["transactions"]) + c.n_rejected
    rej = result.rejects.set_index("row")
    assert rej.loc[7, "reason"] == "unknown channel" and rej.loc[9, "reason"] == "amount not > 0"
    assert rej.loc[7, "txn_id"] == tables["transactions"].loc[7, "txn_id"]
    assert 7 not in result.tables["transactions"].index and 8 in result.tables["transactions"].index


def test_a_row_with_several_problems_is_one_reject_with_all_reasons():
    tables = with_changes(make_tables(), "transactions", [4], "channel", "carrier_pigeon")
    tables = with_changes(tables, "transactions", [4], "customer_id", 999)
    result = validate_dataset(tables)
    assert len(result.rejects) == 1
    reasons = set(result.rejects.loc[0, "reason"].split("; "))
    assert reasons == {"unknown channel", "orphan customer_id"}


def test_orphan_customer_ids_are_rejected_and_named_by_id():
    tables = with_changes(make_tables(), "interactions", [2], "customer_id", 555)
    result = validate_dataset(tables, max_reject_fraction=0.5)
    assert result.rejects[["table", "row", "customer_id"]].values.tolist() == [["interactions", 2, 555]]
    warning = next(w for w in result.warnings if "orphan" in w.message)
    assert warning.examples == ("customer_id 555",)


def test_dates_outside_the_datas_own_range_are_rejected():
    tables = with_changes(make_tables(), "transactions", [0], "ts", pd.Timestamp("2029-06-01"))
    tables = with_changes(tables, "transactions", [1], "ts", pd.Timestamp("2023-12-31 23:59"))
    result = validate_dataset(tables)
    reasons = result.rejects.set_index("row")["reason"]
    assert reasons[0] == "ts after the data's range" and reasons[1] == "ts before the data's range"


def test_as_of_today_rejects_balance_months_after_it_and_narrows_the_range():
    tables = make_tables()
    result = validate_dataset(tables, as_of_today="2024-02-10", max_reject_fraction=0.9)
    assert result.date_range == (pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-11"))
    assert set(result.tables["balances"]["month"]) == {pd.Timestamp("2024-01-01"), pd.Timestamp("2024-02-01")}
    late = tables["transactions"]["ts"] >= pd.Timestamp("2024-02-11")
    assert result.counts["transactions"].n_rejected == late.sum()


def test_holdings_closed_before_opened_and_negative_balances_are_rejected():
    tables = with_changes(make_tables(), "holdings", [4], "closed", pd.Timestamp("2020-01-01"))
    tables = with_changes(tables, "balances", [3], "month_end_balance", -1.0)
    result = validate_dataset(tables, max_reject_fraction=0.25)
    got = set(map(tuple, result.rejects[["table", "row", "reason"]].values.tolist()))
    assert got == {("holdings", 4, "closed before opened"), ("balances", 3, "negative month_end_balance")}


def test_duplicate_txn_ids_beyond_the_first_are_rejected():
    tables = make_tables()
    txn = tables["transactions"].copy()
    txn.loc[50, "txn_id"] = txn.loc[10, "txn_id"]
    tables["transactions"] = txn
    result = validate_dataset(tables)
    assert result.rejects[["row", "reason"]].values.tolist() == [[50, "duplicate txn_id"]]
    assert 10 in result.tables["transactions"].index


def test_too_many_bad_rows_refuse_the_table():
    tables = with_changes(make_tables(), "transactions", [1, 2, 3], "channel", "carrier_pigeon")
    error = refusal(tables, max_reject_fraction=0.01)
    assert "1.50%" in problem(error, "transactions", "reject_fraction").message
    assert validate_dataset(tables, max_reject_fraction=0.015).counts["transactions"].n_rejected == 3


def test_rejects_file_round_trips(tmp_path):
    tables = with_changes(make_tables(), "transactions", [7], "channel", "carrier_pigeon")
    result = validate_dataset(tables)
    path = write_rejects(result.rejects, tmp_path / "out" / "rejects.parquet")
    back = pd.read_parquet(path)
    assert back[["table", "row", "txn_id", "reason"]].values.tolist() == [
        ["transactions", 7, tables["transactions"].loc[7, "txn_id"], "unknown channel"]
    ]


def test_categories_arriving_as_category_dtype_with_unknown_values_are_rejected():
    tables = make_tables()
    txn = tables["transactions"].copy()
    txn["channel"] = pd.Categorical(txn["channel"].where(txn.index != 3, "fax"))
    tables["transactions"] = txn
    result = validate_dataset(tables)
    assert result.rejects["reason"].tolist() == ["unknown channel"]


# ---------------------------------------------------------------------------------------------------- folder


def write_parts(tables: dict[str, pd.DataFrame], root, n_parts: int = 3) -> None:
    """Write customers as one file and every other table as ``n_parts`` parts split by row."""
    for name, df in tables.items():
        if name == "customers":
            io.write_table(df, root, name)
        else:
            for i, chunk in enumerate(np.array_split(np.arange(len(df)), n_parts)):
                io.write_table(df.iloc[chunk], root, name, part=i)


def test_folder_validation_matches_in_memory_and_writes_rejects_and_summary(tmp_path):
    tables = with_changes(make_tables(), "transactions", [7], "channel", "carrier_pigeon")
    tables = with_changes(tables, "transactions", [150], "customer_id", 999)
    write_parts(tables, tmp_path / "ds")
    summary = validate_dataset_folder(tmp_path / "ds", tmp_path / "out")
    expected = validate_dataset(tables)
    assert summary.counts == expected.counts
    rejects = pd.read_parquet(summary.rejects_path)
    assert rejects[["table", "row", "reason"]].values.tolist() == [
        ["transactions", 7, "unknown channel"], ["transactions", 150, "orphan customer_id"]]
    document = json.loads(summary.summary_path.read_text())
    assert document["status"] == "accepted" and document["counts"]["transactions"]["n_rejected"] == 2


def test_folder_validation_finds_duplicate_txn_ids_across_overlapping_parts(tmp_path):
    tables = make_tables()
    txn = tables["transactions"].copy()
    txn.loc[180, "txn_id"] = txn.loc[5, "txn_id"]  # part 2 repeats an id of part 0: ranges now overlap
    tables["transactions"] = txn
    write_parts(tables, tmp_path / "ds")
    summary = validate_dataset_folder(tmp_path / "ds", tmp_path / "out")
    rejects = pd.read_parquet(summary.rejects_path)
    assert rejects[["row", "reason"]].values.tolist() == [[180, "duplicate txn_id"]]


def test_folder_validation_refuses_with_one_error_after_writing_the_summary(tmp_path):
    tables = make_tables()
    tables = with_changes(tables, "transactions", list(range(10)), "amount", -1.0)
    tables["balances"] = pd.concat([tables["balances"], tables["balances"].iloc[[0]]], ignore_index=True)
    write_parts(tables, tmp_path / "ds")
    with pytest.raises(DataValidationError) as info:
        validate_dataset_folder(tmp_path / "ds", tmp_path / "out")
    assert problem(info.value, "transactions", "range").n_rows == 10
    assert problem(info.value, "balances", "duplicate_key").n_rows == 2  # the copy sits in another part
    document = json.loads((tmp_path / "out" / "validation_summary.json").read_text())
    assert document["status"] == "refused" and len(document["problems"]) == len(info.value.problems)


# ---------------------------------------------------------------------------------------------------- details


def test_row_accounting_that_does_not_add_up_is_an_error():
    from bankseg.data.validate import TableCounts

    with pytest.raises(RuntimeError, match="accounting"):
        TableCounts(n_in=10, n_kept=8, n_rejected=1)


def test_dates_after_today_are_in_the_future_by_default():
    tables = with_changes(make_tables(), "interactions", [0], "ts", pd.Timestamp.now() + pd.Timedelta(days=400))
    tables = with_changes(tables, "balances", [2], "month", (pd.Timestamp.now() + pd.DateOffset(years=2)).replace(day=1).normalize())
    result = validate_dataset(tables, max_reject_fraction=0.3)
    got = result.rejects[["table", "row", "reason"]].values.tolist()
    assert ["balances", 2, "month after as_of_today"] in got
    assert ["interactions", 0, "ts after the data's range"] in got
    assert result.date_range[1] == pd.Timestamp("2024-04-01")  # the stray month did not stretch the range


def test_kept_tables_are_independent_writable_copies():
    tables = make_tables()
    result = validate_dataset(tables)
    kept = result.tables["transactions"]
    kept.loc[0, "amount"] = -1.0
    assert tables["transactions"].loc[0, "amount"] > 0


def test_float_ids_with_integer_values_are_coerced_but_fractions_are_not():
    tables = make_tables()
    tables["transactions"] = tables["transactions"].assign(customer_id=lambda d: d["customer_id"].astype(float))
    assert validate_dataset(tables).tables["transactions"]["customer_id"].dtype == np.int64
    tables = with_changes(tables, "transactions", [0], "customer_id", 101.5)
    assert "fractional" in problem(refusal(tables), "transactions", "dtype").message


# ---------------------------------------------------------------------------------------------------- issue 15
def test_empty_or_absent_transactions_table_is_refused():
    tables = make_tables()
    tables["transactions"] = tables["transactions"].iloc[:0]
    assert problem(refusal(tables), "transactions", "empty_table")
    del tables["transactions"], tables["balances"]
    error = refusal(tables)
    assert problem(error, "transactions", "missing_table") and problem(error, "balances", "missing_table")


def test_implausible_amounts_and_dates_are_rejected_with_their_reason():
    tables = with_changes(make_tables(), "transactions", [5], "amount", 1e18)
    tables = with_changes(tables, "holdings", [4], "opened", pd.Timestamp("1850-01-01"))
    result = validate_dataset(tables, max_reject_fraction=0.3)
    assert result.rejects[["table", "row", "reason"]].values.tolist() == [
        ["transactions", 5, "amount above 1e+09"], ["holdings", 4, "opened before 1900-01-01"]]
    assert result.counts["transactions"].n_kept == N_TXN - 1


def test_bounds_come_from_config_and_unknown_columns_are_refused():
    tables = with_changes(make_tables(), "transactions", [5], "amount", 4999.9)
    above = int((tables["transactions"]["amount"] > 4999.5).sum())
    result = validate_dataset(tables, bounds={"max_values": {"transactions": {"amount": 4999.5}}},
                              max_reject_fraction=0.3)
    assert above >= 1 and result.rejects["reason"].tolist() == ["amount above 4999.5"] * above
    with pytest.raises(ValueError, match=r"no column transactions.amout"):
        validate_dataset(tables, bounds={"max_values": {"transactions": {"amout": 1.0}}})


def test_implausible_age_refuses_customers_naming_the_customer():
    tables = with_changes(make_tables(), "customers", [1], "birth_date", pd.Timestamp("1800-01-01"))
    p = problem(refusal(tables, as_of_today="2025-01-01"), "customers", "implausible")
    # ages are taken on the data's last day (a historical dataset's customers were as old as they were then)
    assert p.message == "age over 120 years at 2024-03-31" and p.examples == ("customer_id 102",)
    young = with_changes(make_tables(), "customers", [0], "birth_date", pd.Timestamp("2020-01-01"))
    young = with_changes(young, "customers", [0], "open_date", pd.Timestamp("2021-01-01"))
    young = with_changes(young, "customers", [0], "mobile_banking_since", pd.NaT)
    assert validate_dataset(young, as_of_today="2025-01-01").counts["customers"].n_in == 4  # default: from birth
    p = problem(refusal(young, as_of_today="2025-01-01", bounds={"age_years": [16, 120]}), "customers",
                "implausible")
    assert p.message == "age under 16 years at 2024-03-31"


def test_a_balance_month_before_the_earliest_date_does_not_stretch_the_range():
    tables = with_changes(make_tables(), "balances", [0], "month", pd.Timestamp("1800-01-01"))
    result = validate_dataset(tables, max_reject_fraction=0.1)
    assert result.date_range == (pd.Timestamp("2024-01-01"), pd.Timestamp("2024-04-01"))
    assert result.rejects["reason"].tolist() == ["month before 1900-01-01"]


def test_folder_validation_names_an_unreadable_file_with_its_table_and_path(tmp_path):
    write_parts(make_tables(), tmp_path / "ds")
    broken = tmp_path / "ds" / "interactions" / "part-00001.parquet"
    broken.write_bytes(broken.read_bytes()[:40])
    with pytest.raises(DataValidationError) as info:
        validate_dataset_folder(tmp_path / "ds", tmp_path / "out")
    p = problem(info.value, "interactions", "unreadable")
    assert str(broken) in p.message and "truncated or corrupt" in p.message
    assert len(info.value.problems) == 1  # the other tables were checked and found sound


def test_checked_dataset_reads_only_kept_rows_and_refuses_as_of_outside_the_range(tmp_path):
    from bankseg.data.checked import checked_dataset

    tables = make_tables()
    txn = tables["transactions"]
    tables["transactions"] = pd.concat([txn, txn.iloc[[3, 9]]], ignore_index=True)  # two duplicated txn_ids
    del tables["holdings"]
    write_parts(tables, tmp_path / "ds")
    with checked_dataset(tmp_path / "ds", work_dir=tmp_path / "out") as checked:
        kept = io.read_table(checked.path, "transactions")
        assert len(kept) == N_TXN and kept["txn_id"].is_unique
        assert io.read_table(checked.path, "holdings").empty  # optional and absent: read as empty
        assert (checked.path / "customers.parquet").is_symlink()  # nothing rejected there: linked, not copied
        assert checked.month_range == (pd.Timestamp("2024-01-01"), pd.Timestamp("2024-03-01"))
        checked.check_as_of(["2024-02-01", "2024-04-01"])
        with pytest.raises(ValueError, match=r"as_of 2024-01-01, 2024-04-02 outside the data's range: .* covers "
                                             r"2024-01 to 2024-03 .* after 2024-01-01 and at most 2024-04-01"):
            checked.check_as_of(["2024-01-01", "2024-04-02"])
        record = checked.record()
    assert not checked.path.exists()  # the copy of kept rows is gone with the context
    assert record["rows_rejected"] == 2 and record["rejects_by_reason"] == {"transactions: duplicate txn_id": 2}
    assert "holdings: table is absent [missing_table] (0 rows)" in record["warnings"]
    assert pd.read_parquet(tmp_path / "out" / "rejects.parquet")["row"].tolist() == [N_TXN, N_TXN + 1]
