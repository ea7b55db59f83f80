"""Reason codes that read as reasons (issue 13): the feature in words, the customer's value in its unit, the
comparison that makes it a reason, the direction of its push, and correlated features as one reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bankseg.models.explain import (
    aggregate_contributions,
    merge_correlated,
    reason_codes_for,
    representative_features,
    resolve_reason_groups,
)
from bankseg.models.propensity import BIAS_COLUMN, PropensityModel
from bankseg.models.reason_text import ReasonWriter, readable_name

REASON_CODES = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf" / "model" / "reason_codes.yaml").read_text())


@pytest.fixture(scope="module")
def bank() -> pd.DataFrame:
    """Contract-named features: a balance that drains before churn (month-end below the 3-month average),
    logins that fall, money leaving for other banks, and an unrelated occupation."""
    rng = np.random.default_rng(3)
    n = 5000
    adb_12m = rng.lognormal(10, 1, n)
    adb_3m = adb_12m * rng.lognormal(0, 0.15, n)
    drain = rng.random(n)
    month_end = adb_3m * (1.2 - drain)
    logins = rng.poisson(12 * (1.2 - rng.random(n)), n).astype(float)
    outflow = rng.beta(1, 8, n)
    logit = -3 + 3 * drain - 0.08 * logins + 4 * outflow
    return pd.DataFrame({
        "customer_id": np.arange(n, dtype=np.int64),
        "bal_aum_adb_12m": adb_12m, "bal_aum_adb_3m": adb_3m, "bal_aum_month_end_last": month_end,
        "int_logins_3m": logins, "txn_outflow_other_bank_share_3m": outflow,
        "hold_has_mortgage": (rng.random(n) < 0.3).astype(float),
        "cust_occupation": pd.array(rng.choice(["salaried", "farmer"], n), dtype="str"),
        "label_churn": (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(float),
    })


@pytest.fixture(scope="module")
def model(bank) -> PropensityModel:
    return PropensityModel("label_churn", params={"num_threads": 1}, num_boost_round=150, early_stopping_rounds=20,
                           calibration="platt").fit(bank)


@pytest.fixture(scope="module")
def writer(model, bank) -> ReasonWriter:
    return ReasonWriter.build(model.feature_names_, REASON_CODES, reference=bank, currency="CNY")


def test_month_end_reads_with_its_value_and_the_fall_on_its_3_month_average(writer):
    row = pd.DataFrame({"bal_aum_month_end_last": [12_300.0], "bal_aum_adb_3m": [32_368.0]})
    en, zh = writer.write(np.array(["bal_aum_month_end_last"], dtype=object), row)
    assert en[0] == "Month-end AUM, last month: 12,300 CNY, down 62% on its 3-month average (32,368 CNY)"
    assert zh[0] == "上月末资产余额12,300元,较近3个月日均(32,368元)下降62%"


def test_a_feature_without_baseline_is_compared_with_the_typical_customer(writer, bank):
    typical = bank["int_logins_3m"].median()
    row = pd.DataFrame({"int_logins_3m": [2.0], "txn_outflow_other_bank_share_3m": [0.62],
                        "hold_has_mortgage": [0.0]})
    en, zh = writer.write(np.array(["int_logins_3m"], dtype=object), row)
    assert en[0] == f"App logins, 3m: 2, below the typical {typical:,.0f}"
    assert zh[0] == f"近3个月手机银行登录次数2次,低于一般客户的{typical:,.0f}次"
    en, zh = writer.write(np.array(["txn_outflow_other_bank_share_3m"], dtype=object), row)
    assert en[0].startswith("Outflow to other banks, 3m share: 62%, above the typical ")
    en, zh = writer.write(np.array(["hold_has_mortgage"], dtype=object), row)
    share = bank["hold_has_mortgage"].mean()
    assert en[0] == f"Holds mortgage: no ({share:.0%} of customers: yes)"
    assert zh[0] == f"持有住房按揭贷款:否({share:.0%}的客户为是)"


def test_every_customer_gets_sentences_carrying_their_own_values(model, bank, writer):
    specs = REASON_CODES["groups"]
    groups, dictionary = resolve_reason_groups(model.feature_names_, specs)
    rows = bank.iloc[:400]
    codes = reason_codes_for(model, rows, groups, dictionary, writer=writer)
    first = codes["reason_1_feature"]
    grouped = aggregate_contributions(model.contributions(rows), groups).drop(columns=BIAS_COLUMN)
    positive = (grouped > 0).any(axis=1)
    assert (first.notna() == positive).all()  # a reason for everyone something pushes up, no invented one
    assert positive.mean() > 0.9
    for label in rows.index[positive.to_numpy()][:50]:
        feature = first.loc[label]
        text = codes.at[label, "reason_1_en"]
        value = rows.at[label, feature]
        if feature == "cust_occupation":
            assert text.endswith(str(value))
        elif feature.startswith("bal_"):
            assert f"{value:,.0f} CNY" in text
        elif feature == "txn_outflow_other_bank_share_3m":
            assert f"{value:.0%}" in text
        assert feature not in text and feature not in codes.at[label, "reason_1_zh"]  # never the raw name


def test_the_representative_is_the_group_member_pushing_hardest():
    contrib = pd.DataFrame({"a1": [0.2, 0.9], "a2": [0.5, -0.1], "b": [0.1, 0.0], BIAS_COLUMN: [0.0, 0.0]})
    groups = {"a1": "a", "a2": "a", "b": "b"}
    got = representative_features(contrib, groups, pd.Series(["a", "a"]))
    assert got.tolist() == ["a2", "a1"]
    lowering = pd.DataFrame({"a1": [-0.2], "a2": [-0.7], "b": [0.1], BIAS_COLUMN: [0.0]})
    assert representative_features(lowering, groups, pd.Series(["a"]), direction="both").tolist() == ["a2"]


def test_with_direction_both_the_text_says_which_way_the_reason_pushes(model, bank):
    writer = ReasonWriter.build(model.feature_names_, REASON_CODES, reference=bank, effect=True)
    groups, dictionary = resolve_reason_groups(model.feature_names_, REASON_CODES["groups"])
    codes = reason_codes_for(model, bank.iloc[:300], groups, dictionary, direction="both", writer=writer)
    for i in (1, 2, 3):
        value, text = codes[f"reason_{i}_value"], codes[f"reason_{i}_en"]
        has = value.notna()
        assert (text[has & (value > 0)].str.endswith("(pushes the score up)")).all()
        assert (text[has & (value < 0)].str.endswith("(pushes the score down)")).all()
        assert (codes.loc[has & (value < 0), f"reason_{i}_zh"].str.endswith("(拉低评分)")).all()
    assert (codes["reason_1_value"] < 0).any() and (codes["reason_1_value"] > 0).any()


def test_correlated_balance_facts_become_one_reason_and_unrelated_ones_stay_apart(model, bank):
    groups, dictionary = resolve_reason_groups(model.feature_names_, REASON_CODES["groups"])
    assert groups["bal_aum_adb_3m"] != groups["bal_aum_month_end_last"]  # two config groups ...
    merged, labels = merge_correlated(groups, dictionary, bank, threshold=0.85)
    one = merged["bal_aum_adb_3m"]
    assert merged["bal_aum_month_end_last"] == one == "aum_level+aum_month_end"  # ... one fact
    assert labels[one]["en"] == "AUM level / month-end AUM"
    assert len({merged[f] for f in ("int_logins_3m", "txn_outflow_other_bank_share_3m", "hold_has_mortgage")}) == 3
    codes = reason_codes_for(model, bank.iloc[:300], merged, labels)
    slots = codes[["reason_1", "reason_2", "reason_3"]]
    balance_slots = (slots == one).sum(axis=1)
    assert balance_slots.max() == 1  # never two balance reasons for one customer
    untouched, _ = merge_correlated(groups, dictionary, bank, threshold=1.0)
    assert untouched == groups


def test_flat_source_columns_get_readable_names_in_both_languages():
    assert readable_name("Total_Trans_Amt") == "Total transaction amount"
    assert readable_name("Customer_Age") == "Customer age"
    assert readable_name("Avg_Utilization_Ratio") == "Average utilization ratio"
    assert readable_name("creditScore") == "Credit score"
    reference = pd.DataFrame({"Total_Trans_Amt": [1000.0, 4000.0, 5000.0], "Customer_Age": [30.0, 40.0, 50.0],
                              "Gender": pd.array(["F", "M", "F"], dtype="str")})
    writer = ReasonWriter.build(list(reference.columns), REASON_CODES, reference=reference, currency="USD",
                                feature_labels={"Gender": {"en": "Gender", "zh": "性别"}})
    en, zh = writer.write(np.array(["Total_Trans_Amt", "Customer_Age", "Gender"], dtype=object), reference)
    assert en[0] == "Total transaction amount: 1,000 USD, below the typical 4,000 USD"
    assert zh[0] == "Total transaction amount1,000美元,低于一般客户的4,000美元"
    assert en[1] == "Customer age: 40 years, the same as the typical 40 years"
    assert (en[2], zh[2]) == ("Gender: female", "性别:女")  # the packaged category values apply to any source
    assert all("_" not in text for text in [*en, *zh])


def test_a_missing_value_says_so():
    writer = ReasonWriter.build(["bal_aum_trend_3m"], REASON_CODES)
    en, zh = writer.write(np.array(["bal_aum_trend_3m", None], dtype=object),
                          pd.DataFrame({"bal_aum_trend_3m": [np.nan, 0.3]}))
    assert en.tolist() == ["AUM trend, 3m vs previous 3m: no data", None]
    assert zh[0] == "资产趋势(近3月对比前3月):无数据"


def test_category_values_read_as_words_in_both_languages():
    frame = pd.DataFrame({"cust_occupation": pd.array(["civil_servant", "self_employed", None], dtype="str")})
    writer = ReasonWriter.build(["cust_occupation"], REASON_CODES, reference=frame)
    en, zh = writer.write(np.array(["cust_occupation"] * 3, dtype=object), frame)
    assert en[0].endswith(": civil servant") and zh[0].endswith(":公务员")
    assert en[1].endswith(": self employed") and zh[1].endswith(":self employed")  # not listed: as it is
    assert en[2].endswith(": no data") and zh[2].endswith(":无数据")
