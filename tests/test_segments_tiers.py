"""Composite tier, service tier with overrides, the 5x5 grid (bankseg.segments.tiers)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bankseg.features.balances import build_balance_features
from bankseg.segments import (
    AUDIT_COLUMNS,
    ServiceTierRules,
    apply_service_overrides,
    assign_composite_tier,
    derive_service_tier,
    load_default_segment_rules,
    read_overrides,
    tier_grid,
    tier_period,
)

AS_OF = pd.Timestamp("2024-04-01")


@pytest.fixture(scope="module")
def rules():
    return load_default_segment_rules()


def tiers_of(rules, aum, loans=None):
    frame = pd.DataFrame({"bal_aum_adb_3m": aum, "bal_loan_adb_3m": loans if loans is not None else [0.0] * len(aum)})
    return assign_composite_tier(frame, rules.composite_tier)


def test_default_bounds_follow_the_spec_with_inclusive_lower_bounds(rules):
    aum = [0, 49_999.99, 50_000, 499_999, 500_000, 1_999_999, 2_000_000, 5_999_999, 6_000_000, 50_000_000]
    expected = ["mass", "mass", "gold", "gold", "platinum", "platinum", "diamond", "diamond", "private", "private"]
    assert tiers_of(rules, aum).astype("str").tolist() == expected


def test_composite_tier_is_an_ordered_categorical_low_to_high(rules):
    tier = tiers_of(rules, [60_000.0, 10.0])
    assert tier.cat.ordered
    assert tier.cat.categories.tolist() == ["mass", "gold", "platinum", "diamond", "private"]
    assert (tier > "mass").tolist() == [True, False]


def test_loans_count_towards_the_tier_by_the_configured_share(rules):
    # 30k AUM + 30k loans = 60k >= 50k: gold with the default share 1.0 (seed 003: AUM + loans) ...
    assert tiers_of(rules, [30_000.0], [30_000.0]).iloc[0] == "gold"
    # ... and mass when loans are left out (loan_share 0); missing loans count as none.
    no_loans = type(rules.composite_tier)(**{**rules.composite_tier.__dict__, "loan_share": 0.0})
    frame = pd.DataFrame({"bal_aum_adb_3m": [30_000.0, 30_000.0], "bal_loan_adb_3m": [30_000.0, np.nan]})
    assert assign_composite_tier(frame, no_loans).astype("str").tolist() == ["mass", "mass"]
    assert tiers_of(rules, [30_000.0], [np.nan]).iloc[0] == "mass"


def test_window_dressing_500k_at_month_end_is_not_a_high_tier(rules):
    """Seed 003: 500k parked around each month end and taken out again leaves a low average daily balance."""
    months = pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"])
    rows = []
    for month in months:
        days = month.days_in_month
        daily = np.full(days, 10_000.0)  # what the customer really keeps
        daily[-2:] += 500_000.0  # the 500k sits here for the last two days only
        rows.append((7, month, "demand_deposit", daily.mean(), daily[-1]))
    balances = pd.DataFrame(rows, columns=["customer_id", "month", "product", "avg_daily_balance", "month_end_balance"])
    # By hand: January ADB = 10,000 + 500,000 * 2 / 31 = 42,258; month-end = 510,000 (platinum on a snapshot).
    assert balances["avg_daily_balance"].iloc[0] == pytest.approx(10_000 + 500_000 * 2 / 31)
    features = build_balance_features(
        balances, AS_OF, windows=[1, 3], aum_products=["demand_deposit"], loan_products=["mortgage"]
    )
    assert features["bal_aum_month_end_last"].iloc[0] == 510_000.0
    assert features["bal_aum_adb_3m"].iloc[0] < 50_000
    tier = assign_composite_tier(features, rules.composite_tier)
    assert tier.iloc[0] == "mass"
    # The same customer keeping the 500k all month is platinum: the tier follows money that stays.
    stays = balances.assign(avg_daily_balance=510_000.0)
    features = build_balance_features(
        stays, AS_OF, windows=[1, 3], aum_products=["demand_deposit"], loan_products=["mortgage"]
    )
    assert assign_composite_tier(features, rules.composite_tier).iloc[0] == "platinum"


def test_tier_never_reads_month_end_balance(rules):
    frame = pd.DataFrame(
        {"bal_aum_adb_3m": [1_000.0], "bal_loan_adb_3m": [0.0], "bal_aum_month_end_last": [9_000_000.0]}
    )
    before = frame.copy()
    assert assign_composite_tier(frame, rules.composite_tier).iloc[0] == "mass"
    pd.testing.assert_frame_equal(frame, before)  # input untouched


def test_negative_balances_and_missing_columns_are_refused(rules):
    with pytest.raises(ValueError, match="negative"):
        tiers_of(rules, [-5.0])
    with pytest.raises(ValueError, match=r"missing columns \['bal_aum_adb_3m'\]"):
        assign_composite_tier(pd.DataFrame({"bal_loan_adb_3m": [1.0]}), rules.composite_tier)


def test_tier_period_labels_the_review_cycle():
    assert tier_period("2024-04-01", "quarterly") == "2024Q2"
    assert tier_period("2024-06-15", "quarterly") == "2024Q2"
    assert tier_period("2024-12-01", "monthly") == "2024-12"
    assert tier_period("2024-07-01", "semiannual") == "2024H2"


def test_service_tier_is_the_composite_tier_by_default_and_follows_a_mapping(rules):
    composite = tiers_of(rules, [10.0, 60_000.0, 7_000_000.0])
    same = derive_service_tier(composite, rules.composite_tier, rules.service_tier)
    assert same.astype("str").tolist() == ["mass", "gold", "private"]
    merged = ServiceTierRules.from_dict({"from_composite": {"private": "diamond"}}, rules.composite_tier)
    mapped = derive_service_tier(composite, rules.composite_tier, merged)
    assert mapped.astype("str").tolist() == ["mass", "gold", "diamond"]


def override_rows(*rows):
    return pd.DataFrame(rows, columns=["customer_id", "tier", "reason", "author", "date", "expiry"])


def run_overrides(rules, overrides, service_rules=None, **kwargs):
    ids = pd.Series([1, 2, 3, 4], dtype="int64")
    rule_tier = pd.Series(pd.Categorical(["mass", "gold", "mass", "gold"], dtype=rules.composite_tier.dtype))
    return apply_service_overrides(
        ids, rule_tier, overrides, AS_OF, rules.composite_tier, service_rules or rules.service_tier, **kwargs
    )


def test_override_is_applied_and_audited(rules):
    ov = override_rows((3, "platinum", "business owner moving funds in", "rm_wang", "2024-03-10", "2024-09-30"))
    service, audit = run_overrides(rules, ov)
    assert service.astype("str").tolist() == ["mass", "gold", "platinum", "gold"]
    assert audit.columns.tolist() == list(AUDIT_COLUMNS)
    row = audit.iloc[0]
    assert (row.customer_id, row.rule_tier, row.override_tier, row.author) == (3, "mass", "platinum", "rm_wang")
    assert bool(row.applied) and row.why_not == ""


def test_expired_and_future_overrides_are_refused_with_a_reason(rules):
    ov = override_rows(
        (1, "diamond", "old campaign", "rm_li", "2023-01-01", "2024-03-31"),  # expired the day before as_of
        (2, "private", "next quarter", "rm_li", "2024-05-01", "2024-12-31"),  # dated after as_of
        (4, "diamond", "valid through as_of", "rm_li", "2024-01-01", "2024-04-01"),  # expiry == as_of: active
    )
    service, audit = run_overrides(rules, ov)
    assert service.astype("str").tolist() == ["mass", "gold", "mass", "diamond"]
    assert audit["applied"].tolist() == [False, False, True]
    assert audit["why_not"].iloc[0].startswith("expired 2024-03-31")
    assert "after as_of" in audit["why_not"].iloc[1]
    strict = ServiceTierRules(on_inactive_override="raise")
    with pytest.raises(ValueError, match=r"expired for customers \[1\]"):
        run_overrides(rules, ov, strict)


def test_override_for_an_unknown_customer_is_refused(rules):
    ov = override_rows(
        (3, "gold", "ok", "rm_li", "2024-03-01", "2024-06-30"),
        (99, "gold", "typo in id", "rm_li", "2024-03-01", "2024-06-30"),
    )
    with pytest.raises(ValueError, match=r"unknown customers: \[99\]"):
        run_overrides(rules, ov)
    # Scoring in chunks: 99 is a bank customer outside this chunk, so it is out of scope here, not an error.
    service, audit = run_overrides(rules, ov, known_customer_ids=[1, 2, 3, 4, 99])
    assert audit["customer_id"].tolist() == [3]
    assert service.iloc[2] == "gold"


def test_override_with_an_unknown_tier_or_empty_reason_is_refused(rules):
    ov = override_rows(
        (1, "vip", "x", "rm_li", "2024-03-01", "2024-06-30"),
        (2, "gold", "", "rm_li", "2024-03-01", "2024-06-30"),
        (3, "gold", "x", "rm_li", "2024-03-01", "2024-02-01"),
    )
    with pytest.raises(ValueError, match="unknown tier") as err:
        run_overrides(rules, ov)
    assert "reason empty" in str(err.value) and "expiry before date" in str(err.value)


def test_latest_active_override_wins_and_the_other_is_superseded(rules):
    ov = override_rows(
        (2, "diamond", "second look", "rm_zhao", "2024-03-01", "2024-12-31"),
        (2, "platinum", "first look", "rm_li", "2024-01-15", "2024-12-31"),
    )
    service, audit = run_overrides(rules, ov)
    assert service.iloc[1] == "diamond"
    assert audit["applied"].tolist() == [False, True]  # sorted by date: the January one first
    assert audit["why_not"].iloc[0] == "superseded by the override dated 2024-03-01"


def test_read_overrides_from_csv_and_parquet(rules, tmp_path):
    ov = override_rows((3, "platinum", "moving funds in", "rm_wang", "2024-03-10", "2024-09-30"))
    ov.to_csv(tmp_path / "overrides.csv", index=False)
    read = read_overrides(tmp_path / "overrides.csv", rules.composite_tier.names)
    assert read["date"].iloc[0] == pd.Timestamp("2024-03-10")
    assert read["customer_id"].dtype == "int64"
    read.to_parquet(tmp_path / "overrides.parquet")
    pd.testing.assert_frame_equal(read_overrides(tmp_path / "overrides.parquet"), read)
    pd.DataFrame({"customer_id": [1]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="missing columns"):
        read_overrides(tmp_path / "bad.csv")


def test_grid_has_all_25_cells_with_zeros_and_sums(rules):
    composite = pd.Series(["mass", "mass", "gold", "private"])
    service = pd.Series(["mass", "gold", "gold", "private"])
    aum = pd.Series([10.0, 20.0, 60_000.0, 7_000_000.0])
    grid = tier_grid(composite, service, rules.composite_tier, aum)
    assert len(grid) == 25
    assert grid["n_customers"].sum() == 4
    cell = grid.set_index(["composite_tier", "service_tier"])
    assert cell.loc[("mass", "gold"), "n_customers"] == 1
    assert cell.loc[("mass", "gold"), "aum_sum"] == 20.0
    assert cell.loc[("diamond", "mass"), "n_customers"] == 0
    assert (cell["n_customers"] > 0).sum() == 4
