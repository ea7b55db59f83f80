"""Feature blocks on small hand-built frames whose expected values are worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bankseg.data.schema import DEFAULT_AUM_PRODUCTS, DEFAULT_LOAN_PRODUCTS
from bankseg.features.balances import build_balance_features
from bankseg.features.build import FeatureSettings, build_bucket_features
from bankseg.features.customers import build_customer_features
from bankseg.features.dictionary import describe_feature, feature_dictionary
from bankseg.features.holdings import build_holding_features
from bankseg.features.interactions import build_interaction_features
from bankseg.features.transactions import build_transaction_features

AS_OF = pd.Timestamp("2024-07-01")
WINDOWS = (1, 3, 6, 12)


def ts(values) -> pd.Series:
    return pd.Series(pd.to_datetime(values))


def balance_rows() -> pd.DataFrame:
    months = pd.date_range("2024-01-01", "2024-06-01", freq="MS")
    rows = [(1, m, "demand_deposit", 1000.0, 1100.0) for m in months]
    rows += [
        (1, pd.Timestamp("2024-06-01"), "fund", 2000.0, 2500.0),
        (1, pd.Timestamp("2024-06-01"), "consumer_loan", 500.0, 480.0),
        (1, pd.Timestamp("2024-07-01"), "demand_deposit", 1e9, 1e9),  # the future: never used
        (2, pd.Timestamp("2024-04-01"), "time_deposit", 600.0, 600.0),  # history starts in April,
        (2, pd.Timestamp("2024-06-01"), "time_deposit", 900.0, 900.0),  # no row for May
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "month", "product", "avg_daily_balance", "month_end_balance"])
    return frame.assign(product=frame["product"].astype("category"))


def balances(as_of=AS_OF, customer_ids=(1, 2, 3)) -> pd.DataFrame:
    return build_balance_features(
        balance_rows(), as_of, windows=WINDOWS, aum_products=DEFAULT_AUM_PRODUCTS,
        loan_products=DEFAULT_LOAN_PRODUCTS, customer_ids=customer_ids,
    ).set_index("customer_id")


def test_balance_adb_averages_months_of_history_and_ignores_the_future():
    f = balances()
    assert f.loc[1, "bal_aum_adb_1m"] == pytest.approx(3000.0)
    assert f.loc[1, "bal_aum_adb_3m"] == pytest.approx(5000.0 / 3)
    assert f.loc[1, "bal_aum_adb_6m"] == pytest.approx(8000.0 / 6)
    assert f.loc[1, "bal_aum_adb_12m"] == pytest.approx(8000.0 / 6)  # only 6 months of history
    assert f.loc[1, "bal_loan_adb_3m"] == pytest.approx(500.0 / 3)
    assert f.loc[1, "bal_history_months"] == 6
    # a missing month inside the history counts as zero
    assert f.loc[2, "bal_aum_adb_3m"] == pytest.approx(500.0)
    assert f.loc[2, "bal_aum_adb_12m"] == pytest.approx(500.0)


def test_balance_trend_volatility_shares_and_month_end():
    f = balances()
    assert f.loc[1, "bal_aum_trend_3m"] == pytest.approx(5000.0 / 3000.0 - 1)
    assert f.loc[1, "bal_aum_volatility_6m"] == pytest.approx(
        np.std([1000] * 5 + [3000]) / np.mean([1000] * 5 + [3000])
    )
    assert np.isnan(f.loc[2, "bal_aum_trend_3m"])  # nothing in the 3 months before
    assert f.loc[2, "bal_aum_volatility_6m"] == pytest.approx(np.std([600, 0, 900]) / 500.0)
    assert f.loc[1, "bal_aum_share_fund"] == pytest.approx(0.4)
    assert f.loc[1, "bal_aum_share_demand_deposit"] == pytest.approx(0.6)
    assert f.loc[1, "bal_aum_month_end_last"] == pytest.approx(1100.0 + 2500.0)


def test_balance_customer_without_rows_gets_documented_defaults():
    row = balances().loc[3]
    assert row["bal_aum_adb_3m"] == 0 and row["bal_loan_adb_12m"] == 0 and row["bal_history_months"] == 0
    assert np.isnan(row["bal_aum_trend_3m"]) and np.isnan(row["bal_aum_volatility_6m"])
    assert row["bal_aum_share_fund"] == 0


def test_balance_mid_month_as_of_equals_first_of_month():
    pd.testing.assert_frame_equal(balances(pd.Timestamp("2024-07-18")), balances())


def test_balance_unknown_product_fails_loudly():
    rows = balance_rows()
    rows["product"] = rows["product"].astype(str)
    rows.loc[0, "product"] = "bitcoin"
    with pytest.raises(ValueError, match="bitcoin"):
        build_balance_features(
            rows, AS_OF, windows=WINDOWS, aum_products=DEFAULT_AUM_PRODUCTS, loan_products=DEFAULT_LOAN_PRODUCTS
        )


def transaction_rows() -> pd.DataFrame:
    rows = [
        (1, "2024-06-10", 5000.0, "in", "online", "salary", "employer"),
        (1, "2024-05-10", 5000.0, "in", "online", "salary", "employer"),
        (1, "2024-04-10", 5000.0, "in", "online", "salary", "employer"),
        (1, "2024-06-20", 1000.0, "out", "mobile", "transfer", "other_bank"),
        (1, "2024-02-01", 300.0, "out", "pos", "consumption", "merchant"),
        (1, "2023-09-15", 200.0, "in", "counter", "interest", "own_bank"),
        (1, "2024-07-01", 1e6, "in", "counter", "transfer", "own_bank"),  # at as_of: the future
        (1, "2023-06-30", 7.0, "out", "atm", "cash", "self"),  # older than 12 months
        (2, "2024-07-05", 50.0, "out", "qr", "consumption", "merchant"),  # only the future
        (3, "2023-01-01", 50.0, "out", "qr", "consumption", "merchant"),  # only the distant past
        (4, "2024-06-01", 3000.0, "in", "online", "salary", "employer"),
        (4, "2024-05-21", 3000.0, "in", "online", "salary", "employer"),
    ]
    frame = pd.DataFrame(
        rows, columns=["customer_id", "ts", "amount", "direction", "channel", "category", "counterparty"]
    )
    return frame.assign(ts=pd.to_datetime(frame["ts"]))


def transactions(customer_ids=(1, 2, 3, 4)) -> pd.DataFrame:
    return build_transaction_features(
        transaction_rows(), AS_OF, windows=WINDOWS, recency_cap_days=400, salary_day_std_scale=7.5,
        customer_ids=customer_ids,
    ).set_index("customer_id")


def test_transaction_windows_count_amount_and_flows():
    f = transactions().loc[1]
    assert [f[f"txn_count_{w}m"] for w in WINDOWS] == [2, 4, 5, 6]
    assert [f[f"txn_amount_{w}m"] for w in WINDOWS] == pytest.approx([6000, 16000, 16300, 16500])
    assert [f[f"txn_inflow_{w}m"] for w in WINDOWS] == pytest.approx([5000, 15000, 15000, 15200])
    assert [f[f"txn_outflow_{w}m"] for w in WINDOWS] == pytest.approx([1000, 1000, 1300, 1300])
    assert f["txn_net_flow_3m"] == pytest.approx(14000)
    assert f["txn_recency_days"] == 11
    assert f["txn_count_trend_3m"] == pytest.approx(4 / 1 - 1)


def test_transaction_salary_seasonality_and_mixes():
    f = transactions()
    assert f.loc[1, "txn_salary_regularity"] == pytest.approx(1.0)  # always the 10th
    assert f.loc[1, "txn_salary_months_12m"] == 3
    assert f.loc[4, "txn_salary_regularity"] == pytest.approx(0.0)  # the 1st and the 21st: std 10 days
    assert f.loc[1, "txn_inflow_seasonality"] == pytest.approx(5000 / 15200)
    assert f.loc[1, "txn_channel_share_online"] == pytest.approx(3 / 6)
    assert f.loc[1, "txn_channel_share_mobile"] == pytest.approx(1 / 6)
    assert f.loc[1, "txn_category_share_salary"] == pytest.approx(3 / 6)
    assert f.loc[1, "txn_category_share_interest"] == pytest.approx(1 / 6)
    assert f.loc[1, "txn_outflow_other_bank_share_3m"] == pytest.approx(1.0)


def test_transaction_no_history_gets_capped_recency_and_zeros():
    f = transactions()
    for customer in (2, 3):
        row = f.loc[customer]
        assert row["txn_recency_days"] == 400
        assert row["txn_count_12m"] == 0 and row["txn_amount_12m"] == 0 and row["txn_salary_regularity"] == 0
        assert row["txn_channel_share_qr"] == 0
        assert np.isnan(row["txn_count_trend_3m"])


def test_transaction_block_without_customer_list_covers_only_customers_with_past_rows():
    f = build_transaction_features(transaction_rows(), AS_OF, windows=WINDOWS)
    assert f["customer_id"].tolist() == [1, 4]


def test_transaction_salary_day_spread_lowers_regularity():
    rows = transaction_rows()
    rows.loc[rows["customer_id"] == 4, "ts"] = pd.to_datetime(["2024-06-12", "2024-05-10"])
    f = build_transaction_features(rows, AS_OF, windows=WINDOWS, customer_ids=[4]).set_index("customer_id")
    assert f.loc[4, "txn_salary_regularity"] == pytest.approx(1 - 1 / 7.5)  # days 10 and 12: std 1 day


def test_transaction_non_date_ts_fails_loudly():
    rows = transaction_rows().assign(ts=lambda d: d["ts"].astype(str))
    with pytest.raises(ValueError, match=r"transactions\.ts: expected datetime64"):
        build_transaction_features(rows, AS_OF, windows=WINDOWS)


def holding_rows() -> pd.DataFrame:
    rows = [
        (1, "demand_deposit", "2020-01-01", None),
        (1, "fund", "2024-03-01", "2024-05-01"),
        (1, "wealth_management", "2024-06-01", "2024-08-01"),  # closes after as_of: still held
        (1, "private_banking", "2024-07-01", None),  # opens on as_of: not yet
        (1, "credit_card", "2023-01-01", "2023-03-01"),
    ]
    frame = pd.DataFrame(rows, columns=["customer_id", "product", "opened", "closed"])
    return frame.assign(opened=pd.to_datetime(frame["opened"]), closed=pd.to_datetime(frame["closed"]))


def test_holdings_at_as_of():
    f = build_holding_features(holding_rows(), AS_OF, customer_ids=[1, 2]).set_index("customer_id")
    one = f.loc[1]
    assert one["hold_n_products"] == 2
    assert (one["hold_has_demand_deposit"], one["hold_has_wealth_management"]) == (1, 1)
    assert (one["hold_has_fund"], one["hold_has_private_banking"], one["hold_has_credit_card"]) == (0, 0, 0)
    assert one["hold_tenure_months_max"] == 54  # 2020-01-01 to 2024-07-01
    assert one["hold_highest_product_rank"] == 10  # wealth_management, 10th of 14
    assert one["hold_n_opened_12m"] == 2 and one["hold_n_closed_12m"] == 1
    two = f.loc[2]
    assert two["hold_n_products"] == 0 and two["hold_highest_product_rank"] == 0 and two["hold_tenure_months_max"] == 0


def test_interactions():
    rows = pd.DataFrame(
        [
            (1, "2024-06-05", "app_login"), (1, "2024-06-25", "app_login"), (1, "2024-04-02", "app_login"),
            (1, "2024-02-10", "app_login"), (1, "2023-12-01", "complaint"), (1, "2024-01-05", "campaign_contact"),
            (1, "2024-03-05", "campaign_contact"), (1, "2024-03-06", "campaign_response"),
            (1, "2024-05-01", "branch_visit"), (1, "2024-03-31", "branch_visit"), (1, "2024-07-02", "app_login"),
        ],
        columns=["customer_id", "ts", "kind"],
    ).assign(ts=lambda d: pd.to_datetime(d["ts"]))
    f = build_interaction_features(rows, AS_OF, windows=WINDOWS, customer_ids=[1, 2]).set_index("customer_id")
    one = f.loc[1]
    assert [one[f"int_logins_{w}m"] for w in WINDOWS] == [2, 3, 4, 4]
    assert one["int_complaints_12m"] == 1 and one["int_campaign_contacts_12m"] == 2
    assert one["int_campaign_response_rate_12m"] == pytest.approx(0.5)
    assert one["int_branch_visits_3m"] == 1
    assert one["int_login_trend_3m"] == pytest.approx(3 / 1 - 1)
    two = f.loc[2]
    assert two["int_logins_12m"] == 0 and np.isnan(two["int_campaign_response_rate_12m"])


def customer_rows() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "customer_id": [1, 2, 3],
            "birth_date": ts(["1990-07-02", "1980-01-01", "1990-07-01"]),
            "gender": ["F", "M", "M"],
            "city_tier": [1, 5, 3],
            "occupation": ["salaried", "farmer", "retired"],
            "education": ["bachelor", "unknown", "primary"],
            "declared_income_monthly": [12000.0, 3000.0, np.nan],
            "open_date": ts(["2020-01-15", "2024-07-01", "2010-03-01"]),
            "risk_questionnaire_score": [55.0, np.nan, 20.0],
            "credit_score": [700.0, 650.0, np.nan],
            "mobile_banking_since": ts(["2024-07-01", None, "2023-01-01"]),
        }
    )
    return frame


def test_customers_population_age_tenure_and_mobile():
    f = build_customer_features(customer_rows(), AS_OF).set_index("customer_id")
    assert f.index.tolist() == [1, 3]  # customer 2 opens on as_of: not a customer yet
    assert f.loc[1, "cust_age"] == 33 and f.loc[3, "cust_age"] == 34  # birthday tomorrow / today
    assert f.loc[1, "cust_tenure_months"] == 53
    assert np.isnan(f.loc[1, "cust_mobile_banking_months"]) and f.loc[3, "cust_mobile_banking_months"] == 18
    assert f["cust_occupation"].cat.categories[0] == "salaried" and f.loc[3, "cust_occupation"] == "retired"
    assert np.isnan(f.loc[3, "cust_credit_score"])


def test_customers_duplicate_ids_fail_loudly():
    rows = pd.concat([customer_rows(), customer_rows().iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match="duplicate customer_id"):
        build_customer_features(rows, AS_OF)


def test_blocks_never_mutate_their_input():
    rows = transaction_rows()
    before = rows.copy()
    build_transaction_features(rows, AS_OF, windows=WINDOWS)
    pd.testing.assert_frame_equal(rows, before)


def test_feature_dictionary_describes_windowed_and_per_value_features():
    d = describe_feature("bal_aum_adb_3m")
    assert d.name_en == "Average daily AUM, 3m" and "3" in d.name_zh
    assert describe_feature("hold_has_wealth_management").name_zh == "持有理财"
    assert describe_feature("txn_channel_share_qr").name_en == "Share of transactions via QR code"
    with pytest.raises(ValueError, match="not in the feature dictionary"):
        describe_feature("bal_aum_share_bitcoin")


def test_feature_dictionary_covers_every_column_of_the_feature_table():
    tables = {
        "customers": customer_rows(), "balances": balance_rows(), "transactions": transaction_rows(),
        "holdings": holding_rows(),
        "interactions": pd.DataFrame({"customer_id": [1], "ts": ts(["2024-01-01"]), "kind": ["app_login"]}),
    }
    table = build_bucket_features(tables, [AS_OF], FeatureSettings(windows=(2, 3, 24)))
    described = feature_dictionary(table.columns)
    assert described["name_zh"].str.len().gt(0).all() and len(described) == table.shape[1]
