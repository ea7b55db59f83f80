"""CLV, Pareto table, playbook and the all-in-one assign_segments (bankseg.segments)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bankseg.data.schema import PRODUCTS
from bankseg.segments import (
    ClvRules,
    PlaybookRules,
    assign_segments,
    compute_clv,
    fit_product_lift,
    load_default_segment_rules,
    next_best_product,
    pareto_table,
    recommend_action,
    top_share,
)


@pytest.fixture(scope="module")
def rules():
    return load_default_segment_rules()


# --- CLV ------------------------------------------------------------------------------------------------


def test_clv_matches_a_hand_calculation():
    clv_rules = ClvRules(aum_margin_rate=0.01, loan_margin_rate=0.02, horizon_years=3, discount_rate=0.1,
                         default_annual_retention=0.9, churn_window_months=3)
    frame = pd.DataFrame({"bal_aum_adb_3m": [100_000.0, 100_000.0, 0.0], "bal_loan_adb_3m": [50_000.0, 50_000.0, np.nan]})
    p_churn = pd.Series([np.nan, 0.1, 0.2])
    clv = compute_clv(frame, clv_rules, p_churn)
    # margin = 100,000 * 1% + 50,000 * 2% = 2,000 a year.
    # Row 0, no propensity: retention 0.9 a year -> 2000 * (0.9/1.1 + 0.9^2/1.1^2 + 0.9^3/1.1^3).
    assert clv.iloc[0] == pytest.approx(2000 * (0.9 / 1.1 + 0.81 / 1.21 + 0.729 / 1.331))
    # Row 1: 10% churn per 3 months -> 0.9^4 = 0.6561 retained over a year.
    r = 0.6561
    assert clv.iloc[1] == pytest.approx(2000 * (r / 1.1 + r**2 / 1.21 + r**3 / 1.331))
    assert clv.iloc[2] == 0.0  # nothing held, nothing earned


def test_clv_without_churn_or_discount_is_margin_times_horizon():
    clv_rules = ClvRules(aum_margin_rate=0.01, loan_margin_rate=0.0, horizon_years=5, discount_rate=0.0)
    frame = pd.DataFrame({"bal_aum_adb_3m": [10_000.0], "bal_loan_adb_3m": [0.0]})
    assert compute_clv(frame, clv_rules, pd.Series([0.0])).iloc[0] == pytest.approx(100.0 * 5)


def test_clv_uses_product_margin_rates_on_the_aum_mix():
    clv_rules = ClvRules(aum_margin_rate=0.02, aum_product_margin_rates={"time_deposit": 0.008, "fund": 0.012},
                         loan_margin_rate=0.0, horizon_years=1, discount_rate=0.0, default_annual_retention=1.0)
    frame = pd.DataFrame({"bal_aum_adb_3m": [100_000.0, 100_000.0], "bal_loan_adb_3m": [0.0, 0.0],
                          "bal_aum_share_time_deposit": [0.5, 0.25], "bal_aum_share_fund": [0.5, 0.25]})
    # Row 0: 50k * 0.8% + 50k * 1.2% = 1,000. Row 1: 25k*0.8% + 25k*1.2% + the other 50k at 2% = 1,500.
    assert compute_clv(frame, clv_rules).tolist() == pytest.approx([1_000.0, 1_500.0])


# --- Pareto ---------------------------------------------------------------------------------------------


def test_pareto_top_20_percent_share_and_table():
    values = pd.Series([3.0, 10.0, 1.0, 8.0, 2.0, 9.0, 4.0, 7.0, 5.0, 6.0])  # 1..10 shuffled, total 55
    assert top_share(values, 0.2) == pytest.approx(19 / 55)  # 10 + 9
    table = pareto_table(values, n_groups=5)
    assert table["n_customers"].tolist() == [2, 2, 2, 2, 2]
    assert table["value_sum"].tolist() == [19.0, 15.0, 11.0, 7.0, 3.0]
    assert table["cum_customer_share"].tolist() == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert table["cum_value_share"].tolist() == pytest.approx([19 / 55, 34 / 55, 45 / 55, 52 / 55, 1.0])


def test_pareto_concentrated_book_and_refusals():
    values = pd.Series([800.0] + [25.0] * 9)  # one of ten customers holds 800 of 1,025
    assert top_share(values, 0.1) == pytest.approx(800 / 1025)
    assert pareto_table(values)["value_share"].iloc[0] == pytest.approx(800 / 1025)
    with pytest.raises(ValueError, match="missing or negative"):
        top_share(pd.Series([1.0, np.nan]))


# --- playbook -------------------------------------------------------------------------------------------


def test_actions_follow_the_first_matching_rule(rules):
    segments = pd.DataFrame(
        {"quadrant": ["key", "key", "ordinary", "ordinary", "potential", "value"],
         "lifecycle": ["declining", "dormant", "new", "mature", "growth", "mature"]}
    )
    actions = recommend_action(segments, rules.playbook)
    # dormant comes before key in the config, so a dormant key customer is reactivated first.
    assert actions["action"].astype("str").tolist() == [
        "retain_key", "reactivate", "onboard_new", "activate_ordinary", "gather_potential", "maintain_value",
    ]
    assert actions["action_zh"].iloc[4].startswith("资金归集")


def test_playbook_needs_a_catch_all_rule():
    with pytest.raises(ValueError, match="catch-all"):
        PlaybookRules.from_dict({"actions": [{"name": "a", "when": {"quadrant": "key"}, "en": "x", "zh": "x"}]})


def holdings(rows):
    frame = pd.DataFrame(0, index=range(len(rows)), columns=[f"hold_has_{p}" for p in PRODUCTS], dtype="int8")
    for i, held in enumerate(rows):
        for product in held:
            frame.loc[i, f"hold_has_{product}"] = 1
    return frame


def test_fit_product_lift_by_hand():
    frame = holdings([["fund", "insurance"], ["fund"], ["insurance"], []]).assign(persona_id=[0, 0, 1, 1])
    lift = fit_product_lift(frame)
    # fund: held by 2 of 4 overall (0.5), by 2 of 2 in persona 0 (lift 2) and 0 of 2 in persona 1 (lift 0).
    assert lift.loc[0, "fund"] == 2.0 and lift.loc[1, "fund"] == 0.0
    assert lift.loc[0, "insurance"] == 1.0 and lift.loc[1, "insurance"] == 1.0
    assert lift.loc[0, "mortgage"] == 0.0  # nobody holds it


def test_next_best_product_is_the_highest_lift_product_not_held():
    playbook = PlaybookRules.from_dict({
        "actions": [{"name": "any", "when": {}, "en": "x", "zh": "x"}],
        "offerable_products": ["time_deposit", "fund", "insurance"],
        "min_lift": 1.0,
    })
    lift = pd.DataFrame({"time_deposit": [0.5, 1.5], "fund": [3.0, 0.2], "insurance": [2.0, 1.1]}, index=[0, 1])
    frame = holdings([[], ["fund"], ["fund", "insurance"], [], ["time_deposit"]]).assign(persona_id=[0, 0, 0, 1, 7])
    best = next_best_product(frame, lift, playbook)
    # 0: fund (3.0); 1: holds fund -> insurance (2.0); 2: only time_deposit left at 0.5 < min_lift -> none;
    # 3: persona 1 -> time_deposit (1.5); 4: persona 7 not in the table -> none.
    assert best["next_best_product"].tolist()[:2] == ["fund", "insurance"]
    assert best["next_best_product"].tolist()[3] == "time_deposit"
    assert best["next_best_product"].isna().tolist() == [False, False, True, False, True]
    assert best["next_best_lift"].iloc[1] == 2.0


def test_next_best_product_is_never_a_product_already_held(rules):
    rng = np.random.default_rng(3)
    n = 500
    frame = pd.DataFrame(rng.random((n, len(PRODUCTS))) < 0.4, columns=[f"hold_has_{p}" for p in PRODUCTS]).astype("int8")
    frame["persona_id"] = rng.integers(0, 5, n)
    best = next_best_product(frame, fit_product_lift(frame), rules.playbook)
    offered = best["next_best_product"].dropna()
    assert len(offered) > n / 2  # the check below must have something to check
    held = np.array([frame.at[i, f"hold_has_{p}"] for i, p in offered.items()])
    assert (held == 0).all()


# --- everything at once ---------------------------------------------------------------------------------


def test_assign_segments_on_a_small_feature_table(rules):
    aum_products = ["demand_deposit", "time_deposit", "wealth_management", "fund", "insurance", "precious_metal",
                    "private_banking"]
    frame = holdings([["demand_deposit"], ["demand_deposit", "fund"], ["demand_deposit", "fund", "insurance"]])
    frame = frame.assign(
        customer_id=np.array([11, 12, 13], dtype="int64"), as_of=pd.Timestamp("2024-04-01"),
        bal_aum_adb_3m=[1_000.0, 60_000.0, 3_000_000.0], bal_loan_adb_3m=[0.0, 0.0, 0.0],
        bal_aum_trend_3m=[0.0, 0.3, -0.05], txn_recency_days=[300.0, 3.0, 10.0], txn_count_12m=[0, 40, 20],
        txn_amount_12m=[0.0, 80_000.0, 500_000.0], int_logins_3m=[0, 30, 5], cust_tenure_months=[80, 24, 120],
        cust_credit_score=[600.0, 720.0, np.nan], cust_risk_questionnaire_score=[np.nan, 65.0, np.nan],
        cust_age=[70, 33, 55], persona_id=[0, 1, 1],
        **{f"bal_aum_share_{p}": [1.0 if p == "demand_deposit" else 0.0] * 3 for p in aum_products},
    )
    overrides = pd.DataFrame({"customer_id": [12], "tier": ["diamond"], "reason": ["rm view"], "author": ["rm_li"],
                              "date": ["2024-03-01"], "expiry": ["2024-12-31"]})
    before = frame.copy()
    result = assign_segments(frame, rules, overrides=overrides, lift_table=fit_product_lift(frame))
    pd.testing.assert_frame_equal(frame, before)
    seg = result.segments
    assert seg["customer_id"].tolist() == [11, 12, 13]
    assert seg["composite_tier"].astype("str").tolist() == ["mass", "gold", "diamond"]
    assert seg["service_tier"].astype("str").tolist() == ["mass", "diamond", "diamond"]
    assert seg["tier_period"].iloc[0] == "2024Q2"
    # 12: gold with a service tier two levels up -> key; 13: diamond, no uplift, no propensity -> value.
    assert seg["quadrant"].astype("str").tolist() == ["ordinary", "key", "value"]
    assert seg["lifecycle"].astype("str").tolist() == ["dormant", "growth", "mature"]
    assert seg["action"].astype("str").tolist() == ["reactivate", "maximise_key", "maintain_value"]
    assert seg["risk_appetite_source"].astype("str").tolist() == ["inferred", "questionnaire", "inferred"]
    assert bool(result.audit["applied"].iloc[0])
    assert seg["clv"].iloc[2] > seg["clv"].iloc[1] > seg["clv"].iloc[0] > 0
    with pytest.raises(ValueError, match="one as_of per call"):
        assign_segments(frame.assign(as_of=pd.to_datetime(["2024-01-01", "2024-04-01", "2024-04-01"])), rules)
