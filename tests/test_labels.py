"""Labels on hand-built balances and holdings, and the out-of-time training frame."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from bankseg.data.simulate import SimulatorParams, simulate_bank
from bankseg.features.labels import (
    LABEL_COLUMNS,
    LabelSettings,
    build_labels,
    build_training_frame,
    check_out_of_time,
    data_end_of,
)

AS_OF = pd.Timestamp("2024-07-01")
UPGRADE = ("wealth_management", "fund", "insurance", "precious_metal", "private_banking")


def monthly(customer: int, product: str, values: dict[str, float]) -> list[tuple]:
    return [(customer, pd.Timestamp(m), product, v, v) for m, v in values.items()]


def months(start: str, end: str, value: float) -> dict[str, float]:
    return {str(m.date()): value for m in pd.date_range(start, end, freq="MS")}


def balance_rows() -> pd.DataFrame:
    rows = []
    rows += monthly(1, "demand_deposit", {**months("2024-04-01", "2024-06-01", 10_000), **months("2024-07-01", "2024-12-01", 2_000)})
    rows += monthly(2, "demand_deposit", {**months("2024-04-01", "2024-06-01", 10_000), **months("2024-07-01", "2024-12-01", 4_000)})
    rows += monthly(2, "fund", months("2024-07-01", "2024-09-01", 96_000))
    rows += monthly(3, "demand_deposit", months("2024-01-01", "2024-12-01", 500))
    rows += monthly(4, "time_deposit", months("2024-01-01", "2024-12-01", 60_000))
    rows += monthly(5, "demand_deposit", months("2024-01-01", "2024-12-01", 30_000))
    rows += monthly(5, "mortgage", months("2024-01-01", "2024-12-01", 30_000))
    return pd.DataFrame(rows, columns=["customer_id", "month", "product", "avg_daily_balance", "month_end_balance"])


def holding_rows() -> pd.DataFrame:
    rows = [(c, "demand_deposit", "2020-01-01", None) for c in (1, 2, 3, 5)]
    rows += [
        (1, "fund", "2024-08-15", None),  # opened within 3 months: upgrade
        (2, "fund", "2024-11-01", None),  # opened after 3 months: no upgrade
        (4, "time_deposit", "2020-01-01", "2024-08-10"),  # the only account closes: churn
    ]
    rows += [(3, p, "2022-01-01", None) for p in UPGRADE]  # holds every upgrade product already
    frame = pd.DataFrame(rows, columns=["customer_id", "product", "opened", "closed"])
    return frame.assign(opened=pd.to_datetime(frame["opened"]), closed=pd.to_datetime(frame["closed"]))


def labels(as_of=AS_OF, **overrides) -> pd.DataFrame:
    balances = balance_rows()
    return build_labels(
        balances, holding_rows(), as_of, customer_ids=[1, 2, 3, 4, 5], data_end=data_end_of(balances),
        settings=LabelSettings(**overrides),
    ).set_index("customer_id")


def test_churn_is_a_70_percent_fall_or_every_account_closing():
    churn = labels()["label_churn"]
    assert churn[1] == 1.0  # 10,000 -> 2,000 is an 80% fall
    assert churn[2] == 0.0  # 10,000 -> 4,000 + fund is not a fall
    assert np.isnan(churn[3])  # 500 of AUM: out of scope
    assert churn[4] == 1.0  # balances stay, but the only account closes


def test_conversion_reaches_the_target_tier_within_six_months():
    conversion = labels()["label_conversion"]
    assert conversion[1] == 0.0
    assert conversion[2] == 1.0  # the fund lifts the 3-month ADB above 50,000
    assert np.isnan(conversion[4])  # already above the target
    assert np.isnan(conversion[5])  # 30,000 AUM + 30,000 loans counts as gold with loan_share 1
    assert labels(conversion_loan_share=0.0)["label_conversion"][5] == 0.0


def test_upgrade_opens_a_higher_value_product_within_three_months():
    upgrade = labels()["label_upgrade"]
    assert upgrade[1] == 1.0 and upgrade[2] == 0.0
    assert np.isnan(upgrade[3])  # holds every upgrade product: nothing to upgrade to


def test_labels_are_missing_when_the_data_does_not_cover_the_future():
    late = labels(pd.Timestamp("2024-11-01"))  # data ends with December 2024
    assert late[list(LABEL_COLUMNS)].isna().all().all()
    covered = labels(pd.Timestamp("2024-08-01"))  # upgrade's 3 months fit (Aug-Oct); churn's 3 + 3 do not
    assert covered["label_upgrade"].notna().any()
    assert covered["label_churn"].isna().all() and covered["label_conversion"].isna().all()


def churn_of(rows: list[tuple], as_of=AS_OF, **overrides) -> float:
    """label_churn of customer 9 whose demand-deposit balances are ``rows`` (and who holds the account)."""
    balances = pd.DataFrame(rows, columns=["customer_id", "month", "product", "avg_daily_balance", "month_end_balance"])
    holdings = pd.DataFrame({"customer_id": [9], "product": ["demand_deposit"],
                             "opened": pd.to_datetime(["2020-01-01"]), "closed": pd.to_datetime([None])})
    out = build_labels(balances, holdings, as_of, customer_ids=[9], data_end=data_end_of(balances),
                       settings=LabelSettings(**overrides))
    return float(out["label_churn"].iloc[0])


def test_a_customer_already_draining_at_as_of_is_out_of_churn_scope():
    # regression, issue 12: 69% of the old label's positives had started churning before as_of
    steady = months("2024-01-01", "2024-12-01", 10_000)
    assert churn_of(monthly(9, "demand_deposit", {**months("2024-01-01", "2024-06-01", 10_000),
                                                   **months("2024-07-01", "2024-12-01", 500)})) == 1.0
    # last month's ADB below half the T-6..T-4 mean: the drain has begun, the label would only read it
    draining = {**steady, "2024-06-01": 4_000, **months("2024-07-01", "2024-12-01", 500)}
    assert np.isnan(churn_of(monthly(9, "demand_deposit", draining)))
    # month-end below 70% of the 3-month ADB: a drain's first month
    rows = monthly(9, "demand_deposit", {**steady, **months("2024-07-01", "2024-12-01", 500)})
    rows = [(c, m, p, adb, 6_000.0 if m == pd.Timestamp("2024-06-01") else end) for c, m, p, adb, end in rows]
    assert np.isnan(churn_of(rows))
    assert churn_of(rows, churn_month_end_share=0.5) == 1.0


def test_a_dip_that_recovers_in_the_confirmation_window_is_not_churn():
    dip = {**months("2024-01-01", "2024-06-01", 10_000), **months("2024-07-01", "2024-09-01", 1_000),
           **months("2024-10-01", "2024-12-01", 9_000)}
    assert churn_of(monthly(9, "demand_deposit", dip)) == 0.0
    assert churn_of(monthly(9, "demand_deposit", dip), churn_confirm_months=0) == 1.0


def test_one_churn_event_is_one_positive_across_training_dates():
    from bankseg.features.labels import count_churn_events_once

    dates = pd.to_datetime(["2024-01-01", "2024-04-01", "2024-07-01", "2024-10-01"])
    frame = pd.DataFrame({
        "customer_id": [1, 1, 1, 1, 2, 2],
        "as_of": [dates[0], dates[1], dates[2], dates[3], dates[0], dates[1]],
        "label_churn": [1.0, 1.0, 1.0, 1.0, 0.0, 1.0],
    })
    out = count_churn_events_once(frame, list(dates), LabelSettings())  # event window: 3 + 3 months
    # customer 1: positive in January; April is inside that event's window; July starts a new one
    np.testing.assert_array_equal(out, [1.0, np.nan, 1.0, np.nan, 0.0, 1.0])


def test_conversion_scope_needs_both_the_average_and_the_month_end_below_target():
    rows = monthly(9, "demand_deposit", months("2024-01-01", "2024-12-01", 40_000))
    at_month_end = [(c, m, p, adb, 55_000.0 if m == pd.Timestamp("2024-06-01") else end)
                    for c, m, p, adb, end in rows]
    holdings = pd.DataFrame({"customer_id": [9], "product": ["demand_deposit"],
                             "opened": pd.to_datetime(["2020-01-01"]), "closed": pd.to_datetime([None])})

    def conversion(rows, **overrides):
        balances = pd.DataFrame(rows, columns=["customer_id", "month", "product", "avg_daily_balance", "month_end_balance"])
        out = build_labels(balances, holdings, AS_OF, customer_ids=[9], data_end=data_end_of(balances),
                           settings=LabelSettings(**overrides))
        return float(out["label_conversion"].iloc[0])

    assert conversion(rows) == 0.0
    assert np.isnan(conversion(at_month_end))  # already at the target by its month-end balance
    # a new 20,000 loan lifts AUM + loans over 50,000, which is borrowing, not converting (unless configured)
    loan = rows + monthly(9, "consumer_loan", months("2024-07-01", "2024-12-01", 20_000))
    assert conversion(loan) == 0.0
    assert conversion(loan, conversion_count_new_loans=True) == 1.0


def test_out_of_time_as_of_must_follow_every_training_label_window():
    settings = LabelSettings()
    check_out_of_time([pd.Timestamp("2024-01-01")], pd.Timestamp("2024-07-01"), settings)  # 6-month window ends
    with pytest.raises(ValueError, match="overlaps training label windows"):
        check_out_of_time([pd.Timestamp("2024-01-01"), pd.Timestamp("2024-03-01")], pd.Timestamp("2024-07-01"), settings)


def test_bad_label_settings_fail_loudly():
    with pytest.raises(ValueError, match="unknown products"):
        LabelSettings(upgrade_products=("crypto",))
    with pytest.raises(ValueError, match="churn_drop_share"):
        LabelSettings(churn_drop_share=1.5)


@pytest.mark.slow
def test_training_frame_stacks_dates_and_marks_the_out_of_time_split():
    bank = simulate_bank(SimulatorParams(n_customers=300, n_months=24, seed=3))
    frame = build_training_frame(
        bank, ["2023-07-01", "2023-10-01"], "2024-06-01", label_settings=LabelSettings()
    )
    by_split = frame.groupby("split", observed=True)["as_of"].agg(["min", "max"])
    assert by_split.loc["oot", "min"] == pd.Timestamp("2024-06-01")
    assert by_split.loc["train", "max"] == pd.Timestamp("2023-10-01")
    churn_rate = frame["label_churn"].mean()
    assert 0.0 < churn_rate < 0.5  # churn happens on the simulated bank, but to a minority
    assert frame["label_upgrade"].notna().mean() > 0.5


@pytest.fixture(scope="module")
def simulated_frame():
    bank = simulate_bank(SimulatorParams(n_customers=3000, n_months=30, seed=4))
    train = ["2024-01-01", "2024-04-01", "2024-07-01"]
    frame = build_training_frame(bank, train, "2025-01-01", label_settings=LabelSettings())
    return bank, frame


@pytest.mark.slow
def test_no_churn_positive_is_already_draining_at_as_of_on_a_simulated_bank(simulated_frame):
    """Issue 12: a positive must not be readable off the balances at as_of under the configured rules."""
    bank, frame = simulated_frame
    settings = LabelSettings()
    positives = frame[frame["label_churn"] == 1.0]
    assert len(positives) >= 20
    # month-end of the last month against the 3-month average, straight from the feature table
    assert (positives["bal_aum_month_end_last"] >= settings.churn_month_end_share * positives["bal_aum_adb_3m"]).all()
    # last month's average against the mean of months T-6..T-4, recomputed from the raw balances
    b = bank["balances"]
    aum = b[b["product"].isin(settings.aum_products)].groupby(["customer_id", "month"], observed=True)[
        "avg_daily_balance"].sum()
    for as_of, rows in positives.groupby("as_of"):
        months = pd.date_range(end=pd.Timestamp(as_of) - pd.DateOffset(months=1), periods=6, freq="MS")
        wide = aum.unstack("month").reindex(index=rows["customer_id"], columns=months, fill_value=0.0).fillna(0.0)
        last, earlier = wide.iloc[:, -1], wide.iloc[:, :3].mean(axis=1)
        assert (last >= settings.churn_draining_share * earlier - 1e-6).all(), as_of


@pytest.mark.slow
def test_the_same_churn_event_is_never_a_positive_at_two_training_dates(simulated_frame):
    _, frame = simulated_frame
    window = pd.DateOffset(months=LabelSettings().churn_window_months)
    train = frame[(frame["split"] == "train") & (frame["label_churn"] == 1.0)].sort_values("as_of")
    assert len(train) >= 20
    for _, dates in train.groupby("customer_id")["as_of"]:
        dates = list(pd.to_datetime(dates))
        assert all(later >= earlier + window for earlier, later in itertools.pairwise(dates))
