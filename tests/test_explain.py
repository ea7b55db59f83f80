"""Reason codes: config-driven grouping of SHAP contributions into business features, top-k codes with readable
labels, global and per-persona importance, and reason codes limited to a scope of rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bankseg.models.explain import (
    aggregate_contributions,
    global_importance,
    importance_by_group,
    reason_codes_for,
    resolve_reason_groups,
    top_reason_codes,
)
from bankseg.models.propensity import BIAS_COLUMN, PropensityModel

REASON_CODES = Path(__file__).resolve().parents[1] / "conf" / "model" / "reason_codes.yaml"


@pytest.fixture(scope="module")
def specs() -> list[dict]:
    return yaml.safe_load(REASON_CODES.read_text())["groups"]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """Contract-named features with signal (AUM level over two windows, channel mix, occupation) and noise."""
    rng = np.random.default_rng(7)
    n = 4000
    aum = rng.lognormal(10, 1, n)
    mobile = rng.random(n)
    occupation = rng.choice(["salaried", "farmer", "retired"], size=n)
    logit = -2.5 - 0.8 * (np.log(aum) - 10) + 1.5 * mobile + (occupation == "farmer") * 1.0
    return pd.DataFrame(
        {
            "customer_id": np.arange(n, dtype=np.int64),
            "bal_aum_adb_1m": aum * rng.lognormal(0, 0.1, n),
            "bal_aum_adb_3m": aum,
            "txn_channel_share_mobile": mobile,
            "txn_channel_share_counter": 1 - mobile,
            "cust_occupation": pd.array(occupation, dtype="str"),
            "zz_noise": rng.normal(size=n),
            "label_churn": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float),
        },
        index=pd.RangeIndex(n) * 10 + 5,  # not 0..n-1: results must follow the frame's own index
    )


@pytest.fixture(scope="module")
def model(frame) -> PropensityModel:
    return PropensityModel(
        "label_churn", params={"num_threads": 1}, num_boost_round=200, early_stopping_rounds=20, calibration="platt"
    ).fit(frame)


def test_patterns_map_windows_and_shares_to_business_features(specs):
    features = ["bal_aum_adb_1m", "bal_aum_adb_24m", "txn_channel_share_wechat", "txn_count_3m",
                "txn_count_trend_3m", "cust_occupation", "zz_noise", "zz_labelled"]
    labels = {"zz_labelled": {"en": "a labelled feature", "zh": "有标签的特征"}}
    groups, dictionary = resolve_reason_groups(features, specs, feature_labels=labels)
    assert groups == {
        "bal_aum_adb_1m": "aum_level",
        "bal_aum_adb_24m": "aum_level",  # a window nobody configured maps without code
        "txn_channel_share_wechat": "channel_mix",
        "txn_count_3m": "txn_frequency",
        "txn_count_trend_3m": "activity_trend",  # the specific pattern wins over txn_count_
        "cust_occupation": "profile",
        "zz_noise": "zz_noise",
        "zz_labelled": "zz_labelled",
    }
    assert dictionary["aum_level"] == {"en": "AUM level", "zh": "资产规模"}
    assert dictionary["zz_noise"] == {"en": "zz_noise", "zh": "zz_noise"}
    assert dictionary["zz_labelled"] == {"en": "a labelled feature", "zh": "有标签的特征"}


def test_ungrouped_features_take_their_names_from_the_feature_dictionary():
    groups, dictionary = resolve_reason_groups(["cust_age", "zz_unknown"], specs=[])
    assert groups == {"cust_age": "cust_age", "zz_unknown": "zz_unknown"}
    assert dictionary["cust_age"] == {"en": "Age", "zh": "年龄"}  # bankseg.features.dictionary's labels
    assert dictionary["zz_unknown"] == {"en": "zz_unknown", "zh": "zz_unknown"}


def test_every_contract_feature_family_has_a_business_feature(specs):
    contract = ["bal_aum_adb_6m", "bal_loan_adb_12m", "bal_aum_trend_3m", "bal_aum_volatility_6m",
                "bal_aum_share_fund", "bal_aum_month_end_last", "bal_history_months", "txn_recency_days",
                "txn_amount_1m", "txn_inflow_12m", "txn_outflow_3m", "txn_net_flow_3m", "txn_salary_regularity",
                "txn_salary_months_12m", "txn_inflow_seasonality", "txn_category_share_bill",
                "txn_outflow_other_bank_share_3m", "hold_n_products", "hold_has_fund", "hold_tenure_months_max",
                "hold_highest_product_rank", "hold_n_opened_12m", "hold_n_closed_12m", "int_logins_6m",
                "int_complaints_12m", "int_campaign_contacts_12m", "int_campaign_response_rate_12m",
                "int_branch_visits_3m", "int_login_trend_3m", "cust_age", "cust_tenure_months", "cust_gender",
                "cust_city_tier", "cust_education", "cust_declared_income_monthly",
                "cust_risk_questionnaire_score", "cust_credit_score", "cust_mobile_banking_months"]
    groups, _ = resolve_reason_groups(contract, specs)
    assert [f for f in contract if groups[f] == f] == []
    assert groups["txn_outflow_other_bank_share_3m"] == "outflow_other_bank"
    assert groups["txn_inflow_12m"] == groups["txn_net_flow_3m"] == "cash_flows"


def test_duplicate_group_ids_are_refused():
    specs = [{"id": "a", "pattern": "x", "en": "A", "zh": "甲"}, {"id": "a", "pattern": "y", "en": "A", "zh": "甲"}]
    with pytest.raises(ValueError, match=r"unique.*\['a'\]"):
        resolve_reason_groups(["x1"], specs)


def test_a_flat_sources_column_may_share_its_name_with_a_group_that_groups_nothing(specs):
    # the packaged groups include one with id "age" (pattern cust_age$); a real source's own column "age"
    # matches no group, so it is its own reason, not a clash
    groups, _dictionary = resolve_reason_groups(["age", "balance"], specs)
    assert groups == {"age": "age", "balance": "balance"}
    clash = [{"id": "balance", "pattern": "bal", "en": "Balance", "zh": "余额"}]
    with pytest.raises(ValueError, match=r"differ from feature names: \['balance'\]"):
        resolve_reason_groups(["balance"], clash)


def test_aggregation_sums_group_members_and_keeps_row_sums(model, frame, specs):
    contrib = model.contributions(frame.iloc[:300])
    groups, _ = resolve_reason_groups(model.feature_names_, specs)
    grouped = aggregate_contributions(contrib, groups)
    assert list(grouped.columns) == ["aum_level", "channel_mix", "profile", "zz_noise", BIAS_COLUMN]
    np.testing.assert_allclose(grouped.sum(axis=1), contrib.sum(axis=1), atol=1e-12)
    np.testing.assert_allclose(
        grouped["channel_mix"], contrib["txn_channel_share_mobile"] + contrib["txn_channel_share_counter"]
    )
    pd.testing.assert_index_equal(grouped.index, contrib.index)


def test_top_codes_on_a_hand_made_row():
    contrib = pd.DataFrame(
        {"a": [0.5, -0.1], "b": [-2.0, -0.2], "c": [0.1, 0.3], "d": [1.5, -0.4], BIAS_COLUMN: [9.0, 9.0]},
        index=["r1", "r2"],
    )
    dictionary = {"a": {"en": "A", "zh": "甲"}, "d": {"en": "D", "zh": "丁"}}
    up = top_reason_codes(contrib, k=3, direction="increase", dictionary=dictionary)
    assert up.loc["r1", ["reason_1", "reason_2", "reason_3"]].tolist() == ["d", "a", "c"]
    assert up.loc["r1", ["reason_1_en", "reason_1_zh", "reason_2_en"]].tolist() == ["D", "丁", "A"]
    assert up.loc["r1", "reason_3_en"] == "c"  # no dictionary entry: the code itself
    assert up.loc["r1", ["reason_1_value", "reason_2_value", "reason_3_value"]].tolist() == [1.5, 0.5, 0.1]
    # r2 has one positive contribution: one reason, the other slots missing (never a negative "reason").
    assert up.loc["r2", "reason_1"] == "c"
    assert up.loc["r2", ["reason_2", "reason_3", "reason_2_zh"]].isna().all()
    assert np.isnan(up.loc["r2", "reason_2_value"])
    both = top_reason_codes(contrib, k=2, direction="both")
    assert both.loc["r1", ["reason_1", "reason_2"]].tolist() == ["b", "d"]
    assert both.loc["r1", "reason_1_value"] == -2.0
    assert list(both.columns) == [f"reason_{i}{s}" for i in (1, 2) for s in ("", "_en", "_zh", "_value")]


def test_top_codes_are_the_largest_contributions_of_a_fitted_model(model, frame, specs):
    groups, dictionary = resolve_reason_groups(model.feature_names_, specs)
    grouped = aggregate_contributions(model.contributions(frame.iloc[:500]), groups)
    codes = top_reason_codes(grouped, k=3, dictionary=dictionary)
    label = frame.index[123]
    row = grouped.loc[label].drop(BIAS_COLUMN)
    by_hand = sorted(((v, c) for c, v in row.items() if v > 0), reverse=True)[:3]
    got = [(codes.loc[label, f"reason_{i}_value"], codes.loc[label, f"reason_{i}"]) for i in (1, 2, 3)]
    assert got[: len(by_hand)] == by_hand
    # Slot 1 always holds the row's largest positive contribution.
    positive = grouped.drop(columns=BIAS_COLUMN).clip(lower=0)
    has_reason = positive.max(axis=1) > 0
    np.testing.assert_allclose(codes.loc[has_reason, "reason_1_value"], positive.max(axis=1)[has_reason])
    assert set(codes["reason_1_zh"].dropna()) <= {d["zh"] for d in dictionary.values()}


def test_more_slots_than_features_leave_the_extra_slots_empty():
    contrib = pd.DataFrame({"a": [1.0], "b": [2.0], BIAS_COLUMN: [0.0]})
    codes = top_reason_codes(contrib, k=3)
    assert codes.loc[0, ["reason_1", "reason_2"]].tolist() == ["b", "a"]
    assert pd.isna(codes.loc[0, "reason_3"])


def test_global_importance_is_mean_absolute_contribution_without_bias():
    contrib = pd.DataFrame({"a": [1.0, -3.0], "b": [0.5, 0.5], BIAS_COLUMN: [-10.0, -10.0]})
    importance = global_importance(contrib)
    assert importance.to_dict() == {"a": 2.0, "b": 0.5}
    assert list(importance.index) == ["a", "b"]


def test_importance_by_persona_matches_each_personas_own_mean(model, frame):
    contrib = model.contributions(frame.iloc[:400])
    persona = pd.Series(np.where(np.arange(400) % 3 == 0, "savers", "digital"), index=contrib.index)
    table = importance_by_group(contrib, persona)
    assert list(table.columns) == ["digital", "savers"]
    assert list(table.index) == list(global_importance(contrib).index)
    savers = contrib.loc[persona == "savers", "txn_channel_share_mobile"].abs().mean()
    assert table.loc["txn_channel_share_mobile", "savers"] == pytest.approx(savers)
    with pytest.raises(ValueError, match="no group label"):
        importance_by_group(contrib, persona.where(persona != "savers"))


def test_reason_codes_only_for_rows_in_scope(model, frame, specs):
    rows = frame.iloc[:200]
    groups, dictionary = resolve_reason_groups(model.feature_names_, specs)
    everyone = reason_codes_for(model, rows, groups, dictionary)
    in_scope = model.predict_proba(rows) >= np.quantile(model.predict_proba(rows), 0.8)
    scoped = reason_codes_for(model, rows, groups, dictionary, mask=in_scope)
    pd.testing.assert_index_equal(scoped.index, rows.index)
    pd.testing.assert_frame_equal(scoped[in_scope], everyone[in_scope])
    assert scoped.loc[~in_scope, "reason_1"].isna().all()
    nobody = reason_codes_for(model, rows, groups, dictionary, mask=np.zeros(len(rows), dtype=bool))
    assert nobody["reason_1"].isna().all() and len(nobody) == len(rows)
