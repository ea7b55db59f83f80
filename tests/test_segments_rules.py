"""Quadrant, value class, lifecycle, RFM, risk appetite and config loading (bankseg.segments)."""

from __future__ import annotations

import copy
from importlib import resources

import numpy as np
import pandas as pd
import pytest
import yaml

from bankseg.segments import (
    DormancyRules,
    LifecycleRules,
    QuadrantRules,
    RfmBins,
    RiskAppetiteRules,
    ValueClassRules,
    assign_lifecycle,
    assign_quadrant,
    assign_rfm_segment,
    assign_risk_appetite,
    assign_value_class,
    fit_rfm_bins,
    load_default_segment_rules,
    load_segment_rules,
    score_rfm,
)


@pytest.fixture(scope="module")
def rules():
    return load_default_segment_rules()


@pytest.fixture()
def raw_config():
    text = resources.files("bankseg.conf").joinpath("segments", "default.yaml").read_text(encoding="utf-8")
    from omegaconf import OmegaConf  # the values a data source may set (data.tier_bounds) take their defaults

    return OmegaConf.to_container(OmegaConf.create(yaml.safe_load(text)), resolve=True)


def categorical(values, rules):
    return pd.Series(pd.Categorical(values, dtype=rules.composite_tier.dtype))


# --- quadrant -------------------------------------------------------------------------------------------


def test_quadrant_from_value_service_uplift_and_conversion_propensity(rules):
    q_rules = QuadrantRules(names=rules.quadrant.names, value_min_tier="gold", min_service_uplift=1, min_p_conversion=0.5)
    composite = categorical(["mass", "gold", "mass", "platinum", "mass"], rules)
    service = categorical(["mass", "gold", "gold", "platinum", "mass"], rules)
    p = pd.Series([0.1, 0.9, np.nan, 0.2, 0.6])
    quadrant = assign_quadrant(composite, service, rules.composite_tier, q_rules, p)
    # 0: low value, no uplift, low p -> ordinary;  1: gold with p 0.9 -> key;  2: mass but RM lifted it a level
    # -> potential;  3: platinum, p 0.2 -> value;  4: mass with p 0.6 -> potential.
    assert quadrant.astype("str").tolist() == ["ordinary", "key", "potential", "value", "potential"]
    # Before any model exists the service tier alone decides potential.
    without_model = assign_quadrant(composite, service, rules.composite_tier, q_rules)
    assert without_model.astype("str").tolist() == ["ordinary", "value", "potential", "value", "ordinary"]


def test_quadrant_refuses_propensities_outside_0_1(rules):
    composite = categorical(["mass"], rules)
    with pytest.raises(ValueError, match=r"p_conversion: 1 values outside \[0, 1\]"):
        assign_quadrant(composite, composite, rules.composite_tier, rules.quadrant, pd.Series([1.5]))


# --- value class ----------------------------------------------------------------------------------------


def test_value_class_rules_in_order(rules):
    vc_rules = ValueClassRules(
        names=rules.value_class.names, high_min_tier="platinum", unsuitable_max_value=1_000,
        unsuitable_max_credit_score=500, potential_min_p_conversion=0.5, potential_min_credit_score=700,
        potential_min_tier="gold", potential_max_p_churn=0.5, medium_min_tier="gold",
    )
    dormancy = DormancyRules(min_recency_days=180, max_logins_3m=0)
    #            A: platinum w/ bad credit + loans, B: dormant with 500, C: bad credit + loans,
    #            D: mass, p_conv .8, E: mass p_conv .8 but p_churn .7, F: gold, credit 750,
    #            G: gold, credit 650, H: mass active, I: gold, nothing known
    frame = pd.DataFrame(
        {
            "bal_aum_adb_3m": [600_000, 500, 20_000, 20_000, 20_000, 100_000, 100_000, 20_000, 100_000],
            "bal_loan_adb_3m": [50_000, 0, 10_000, 0, 0, 0, 0, 0, 0],
            "cust_credit_score": [400, np.nan, 450, 650, 650, 750, 650, 650, np.nan],
            "txn_recency_days": [5, 400, 5, 5, 5, 5, 5, 5, 5],
            "int_logins_3m": [3, 0, 3, 3, 3, 3, 3, 3, 3],
        },
        dtype="float64",
    )
    composite = categorical(["platinum", "mass", "mass", "mass", "mass", "gold", "gold", "mass", "gold"], rules)
    p_conv = pd.Series([np.nan, np.nan, 0.1, 0.8, 0.8, 0.1, 0.1, 0.1, np.nan])
    p_churn = pd.Series([0.9, np.nan, 0.1, 0.1, 0.7, 0.1, 0.1, 0.1, np.nan])
    value_class = assign_value_class(frame, composite, rules.composite_tier, vc_rules, dormancy, p_conv, p_churn)
    assert value_class.astype("str").tolist() == [
        "high", "unsuitable", "unsuitable", "potential_high", "low", "potential_high", "medium", "low", "medium",
    ]


# --- lifecycle ------------------------------------------------------------------------------------------


def test_lifecycle_rules_in_order():
    lc_rules = LifecycleRules(
        names=load_default_segment_rules().lifecycle.names, new_max_tenure_months=6, declining_max_aum_trend=-0.2,
        growth_max_tenure_months=36, growth_min_aum_trend=0.1,
    )
    dormancy = DormancyRules(min_recency_days=180, max_logins_3m=0)
    cases = [  # (tenure, trend, recency, logins, expected)
        (100, -0.5, 365, 0, "dormant"),  # dormant wins over declining
        (3, -0.5, 2, 4, "new"),  # new wins over declining
        (100, -0.2, 2, 4, "declining"),  # the bound is inclusive
        (100, -0.1, 2, 4, "mature"),
        (20, 0.0, 2, 4, "growth"),  # young relationship
        (100, 0.15, 2, 4, "growth"),  # old relationship, AUM growing
        (100, np.nan, 2, 4, "mature"),  # no earlier AUM: no trend signal
        (100, 0.0, np.nan, 5, "mature"),  # never transacted but logs in: not dormant
        (100, 0.0, np.nan, 0, "dormant"),  # never transacted, never logs in
        (100, 0.0, 200, 1, "mature"),  # quiet account but still logging in
    ]
    frame = pd.DataFrame(
        [c[:4] for c in cases], columns=["cust_tenure_months", "bal_aum_trend_3m", "txn_recency_days", "int_logins_3m"]
    )
    stage = assign_lifecycle(frame, lc_rules, dormancy)
    assert stage.astype("str").tolist() == [c[4] for c in cases]


# --- RFM ------------------------------------------------------------------------------------------------


def rfm_frame(recency, frequency, monetary):
    return pd.DataFrame({"txn_recency_days": recency, "txn_count_12m": frequency, "txn_amount_12m": monetary}, dtype="float64")


def test_fit_rfm_bins_scores_quintiles_and_ties_at_the_bottom():
    frame = rfm_frame(range(1, 11), [0, 0, 0, 0, 0, 0, 1, 2, 5, 9], range(10, 110, 10))
    bins = fit_rfm_bins(frame)
    # np.quantile of 1..10 at 20/40/60/80% (linear): 2.8, 4.6, 6.4, 8.2.
    assert bins.recency == pytest.approx((2.8, 4.6, 6.4, 8.2))
    scores = score_rfm(frame, bins)
    assert scores["rfm_r"].tolist() == [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]  # recent = high score
    # frequency edges (0, 0, 0.4, 2.6): six customers with no transaction all score 1, not a middle score.
    assert scores["rfm_f"].tolist() == [1, 1, 1, 1, 1, 1, 4, 4, 5, 5]
    assert scores["rfm_m"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert scores["rfm_cell"].iloc[0] == "R5F1M1"
    assert scores["rfm_score"].iloc[9] == 1 + 5 + 5


def test_stored_bins_score_new_data_like_the_training_population():
    train = rfm_frame(range(1, 11), range(1, 11), range(1, 11))
    bins = RfmBins.from_dict(fit_rfm_bins(train).to_dict())  # stored as JSON-able dict and read back
    # One new customer alone: quantiles of a single row would be meaningless; the stored bins are not.
    one = rfm_frame([1.0], [10.0], [10.0])
    assert score_rfm(one, bins)[["rfm_r", "rfm_f", "rfm_m"]].iloc[0].tolist() == [5, 5, 5]
    # Missing values score 1 (no evidence of activity).
    assert score_rfm(rfm_frame([np.nan], [np.nan], [np.nan]), bins)["rfm_score"].iloc[0] == 3


def test_named_rfm_segments(rules):
    scores = pd.DataFrame(
        {"rfm_r": [5, 1, 1, 5, 2, 3, 4, 1], "rfm_f": [5, 5, 1, 1, 4, 2, 3, 2], "rfm_m": [5, 5, 1, 3, 1, 2, 1, 5]}
    )
    names = assign_rfm_segment(scores, rules.rfm).astype("str").tolist()
    assert names == ["champions", "cant_lose", "lost", "new", "at_risk", "need_attention", "potential_loyalists", "lost"]


def test_rfm_segments_must_cover_every_cell(raw_config):
    # "lost" is R1 x F1-2 x any M: 1 x 2 x 5 = 10 cells.
    raw_config["rfm"]["segments"] = [s for s in raw_config["rfm"]["segments"] if s["name"] != "lost"]
    with pytest.raises(ValueError, match=r"leave 10 \(r, f, m\) cells unnamed"):
        load_segment_rules(raw_config)


def test_fixed_bins_from_config_are_used(raw_config):
    raw_config["rfm"]["fixed_bins"] = {"recency": [7, 30, 90, 180], "frequency": [1, 5, 20, 60], "monetary": [1e3, 1e4, 1e5, 1e6]}
    fixed = load_segment_rules(raw_config).rfm.fixed_bins
    scores = score_rfm(rfm_frame([7.0, 200.0], [61.0, 1.0], [5e4, 2e6]), fixed)
    # recency 7 ties the first edge -> the lower score 4; 200 > 180 -> 1. frequency 61 > 60 -> 5; 1 ties -> 1.
    assert scores[["rfm_r", "rfm_f", "rfm_m"]].to_numpy().tolist() == [[4, 5, 3], [1, 1, 5]]


# --- risk appetite --------------------------------------------------------------------------------------


def risk_rules(rules):
    return RiskAppetiteRules(
        names=rules.risk_appetite.names,
        lower_bounds=(0, 20, 40, 60, 80),
        share_weights={"demand_deposit": 0.0, "wealth_management": 0.5, "fund": 0.9},
        holding_points={"fund": 10, "wealth_management": 5},
        age_points=((60, -15), (45, -5), (0, 5)),
    )


def test_risk_appetite_from_questionnaire_where_present_else_inferred(rules):
    frame = pd.DataFrame(
        {
            "cust_risk_questionnaire_score": [85, 20, 19.9, np.nan, np.nan, np.nan],
            "bal_aum_share_demand_deposit": [1.0, 1.0, 1.0, 1.0, 0.5, 0.0],
            "bal_aum_share_wealth_management": [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
            "bal_aum_share_fund": [0.0, 0.0, 0.0, 0.0, 0.5, 0.0],
            "hold_has_fund": [0, 0, 0, 0, 1, 0],
            "hold_has_wealth_management": [0, 0, 0, 0, 0, 1],
            "cust_age": [30, 30, 30, 30, 40, 70],
        }
    )
    out = assign_risk_appetite(frame, risk_rules(rules))
    # Inferred by hand: row 3: 0 + 0 + 5 (under 45) = 5; row 4: 100*0.9*0.5 + 10 + 5 = 60;
    # row 5: 100*0.5*1.0 + 5 - 15 (60+) = 40.
    assert out["risk_score"].tolist() == pytest.approx([85, 20, 19.9, 5, 60, 40])
    assert out["risk_appetite"].astype("str").tolist() == [
        "aggressive", "steady", "conservative", "conservative", "growth", "balanced",
    ]
    assert out["risk_appetite_source"].astype("str").tolist() == ["questionnaire"] * 3 + ["inferred"] * 3


def test_risk_appetite_refuses_out_of_range_questionnaire(rules):
    frame = pd.DataFrame(
        {"cust_risk_questionnaire_score": [120.0], "bal_aum_share_demand_deposit": [1.0],
         "bal_aum_share_wealth_management": [0.0], "bal_aum_share_fund": [0.0], "hold_has_fund": [0],
         "hold_has_wealth_management": [0], "cust_age": [30]}
    )
    with pytest.raises(ValueError, match="outside 0-100"):
        assign_risk_appetite(frame, risk_rules(rules))


# --- config ---------------------------------------------------------------------------------------------


def test_default_config_loads_with_chinese_labels(rules):
    labels = rules.labels_zh()
    assert labels["composite_tier"] == {"mass": "大众", "gold": "黄金", "platinum": "白金", "diamond": "钻石", "private": "私行"}
    assert labels["quadrant"]["key"] == "重点客户"
    assert labels["risk_appetite"]["steady"] == "稳健型"


def test_config_naming_an_unknown_tier_is_refused(raw_config):
    bad = copy.deepcopy(raw_config)
    bad["quadrant"]["value_min_tier"] = "golden"
    with pytest.raises(ValueError, match="unknown tier 'golden'"):
        load_segment_rules(bad)
    bad = copy.deepcopy(raw_config)
    bad["composite_tier"]["levels"][2]["lower"] = 10
    with pytest.raises(ValueError, match="lower bounds must start at 0 and increase"):
        load_segment_rules(bad)
