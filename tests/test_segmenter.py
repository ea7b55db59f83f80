"""The exported segmenter: output contract, signature refusal, nullable input, bands, reason-code scope, overrides."""

from __future__ import annotations

import copy
import dataclasses
import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow.exceptions import MlflowException

from bankseg.cli import CONFIG_DIR
from bankseg.features.build import build_feature_table
from bankseg.scoring.segmenter import OUTPUT_COLUMNS, SegmenterModel, apply_overrides, segmenter_input

pytestmark = pytest.mark.slow
AS_OF = "2025-05-01"


@pytest.fixture(scope="module")
def loaded(trained_bank):
    trained_bank.configure()
    model = mlflow.pyfunc.load_model("models:/bankseg-segmenter@champion")
    features = build_feature_table(trained_bank.data_path, AS_OF, **{
        k: v for k, v in trained_bank.feature_kwargs.items() if k not in ("engine", "spark_master")
    }).head(400)
    inner = model.unwrap_python_model()
    return model, inner, features, segmenter_input(features, inner.input_columns)


@pytest.fixture(scope="module")
def output(loaded):
    model, _, _, x = loaded
    return model.predict(x)


def test_output_follows_the_contract_one_row_per_customer(loaded, output):
    _, _, features, _ = loaded
    assert list(output.columns) == list(OUTPUT_COLUMNS)
    assert output["customer_id"].tolist() == features["customer_id"].tolist()
    assert (output["as_of"] == AS_OF).all()
    versions = json.loads(output["model_versions"].iloc[0])
    assert set(versions) == {"personas", "churn", "conversion", "upgrade"}
    for column in ("composite_tier", "service_tier", "quadrant", "persona_name", "churn_band", "action"):
        assert output[column].notna().all(), column
    assert output["p_churn"].between(0, 1).all()


def test_signature_refuses_input_missing_columns_and_names_them(loaded):
    model, _, _, x = loaded
    with pytest.raises(MlflowException, match=r"missing inputs.*bal_aum_adb_3m"):
        model.predict(x.drop(columns=["bal_aum_adb_3m"]))


def test_nullable_inputs_are_scored(loaded, output):
    model, _, _, x = loaded
    holed = x.copy()
    holed.loc[:9, "cust_credit_score"] = np.nan
    holed.loc[:9, "cust_education"] = None
    got = model.predict(holed)
    assert len(got) == len(x)
    assert got.loc[:9, ["composite_tier", "p_churn", "persona_id"]].notna().all().all()
    # Rows without holes are untouched by the holes elsewhere.
    pd.testing.assert_frame_equal(got.iloc[10:].reset_index(drop=True), output.iloc[10:].reset_index(drop=True))


def test_bands_follow_the_configured_cutoffs(output):
    cfg = yaml.safe_load(open(f"{CONFIG_DIR}/model/churn.yaml", encoding="utf-8"))
    low, high = cfg["bands"]["cutoffs"]
    p = output["p_churn"]
    expected = np.where(p >= high, "high", np.where(p >= low, "medium", "low"))
    assert (output["churn_band"].to_numpy() == expected).all()


def test_every_customer_gets_reason_codes_that_read_as_reasons(loaded, output):
    _, _, features, _ = loaded
    for model in ("churn", "conversion", "upgrade"):
        cfg = yaml.safe_load(open(f"{CONFIG_DIR}/model/{model}.yaml", encoding="utf-8"))["reason_codes"]
        assert cfg["scope"] == "all"
        scored = output[f"p_{model}"].notna()
        coded = output[f"{model}_reason_1"].notna()
        assert coded[scored].mean() > 0.95, model
        assert not coded[~scored].any()
        for language in ("en", "zh"):
            text = output.loc[coded, f"{model}_reason_1_{language}"]
            assert text.notna().all()
            assert text.str.contains(r"\d").mean() > 0.9  # the customer's value is in the sentence
            raw = [f for f in features.columns if text.str.contains(f, regex=False).any()]
            assert raw == [], f"raw feature names in {model} reasons: {raw}"


def test_actionable_scope_is_still_an_option(loaded, output):
    _, inner, _, x = loaded
    parts = copy.copy(inner.parts)
    parts.reason_codes = {m: dataclasses.replace(s, scope="actionable") for m, s in parts.reason_codes.items()}
    got = SegmenterModel(parts).segment(x)
    bands = parts.reason_codes["churn"].actionable_bands
    actionable = got["churn_band"].isin(bands)
    assert actionable.any() and (~actionable).any()
    assert got.loc[~actionable, "churn_reason_1"].isna().all()
    pd.testing.assert_frame_equal(
        got.loc[actionable, [c for c in got.columns if c.startswith("churn_reason_")]],
        output.loc[actionable, [c for c in got.columns if c.startswith("churn_reason_")]], check_dtype=False,
    )


def test_overrides_set_service_tier_and_rederive_quadrant(loaded, output):
    _, inner, _, _ = loaded
    mass = output.index[output["composite_tier"] == "mass"][:2]
    ids = output.loc[mass, "customer_id"].tolist()
    overrides = pd.DataFrame({
        "customer_id": ids, "tier": ["platinum", "platinum"], "reason": ["vip", "vip"], "author": ["rm1", "rm1"],
        "date": ["2025-01-01", "2026-01-01"], "expiry": ["2026-12-31", "2026-12-31"],
    })
    new, audit = apply_overrides(output, overrides, inner.rules)
    assert new.loc[mass[0], "service_tier"] == "platinum"
    assert new.loc[mass[0], "quadrant"] == "potential"  # low value, service tier lifted above composite
    assert new.loc[mass[1], "service_tier"] == "mass"  # dated after as_of: not applied
    assert audit["applied"].tolist() == [True, False]
    untouched = ~output["customer_id"].isin(ids)
    pd.testing.assert_frame_equal(new[untouched], output[untouched])


def test_customers_already_at_the_conversion_target_get_no_conversion_probability(loaded, output):
    # regression, issue 12: customers above the target scored p_conversion 0.87 on average, filled the key
    # quadrant and the potential-high value class
    _, _, features, _ = loaded
    tier = features["bal_aum_adb_3m"] + features["bal_loan_adb_3m"]
    month_end = features["bal_aum_month_end_last"] + features["bal_loan_adb_1m"]
    at_target = ((tier >= 50_000) | (month_end >= 50_000)).to_numpy()
    assert 0 < at_target.sum() < len(features)
    assert output.loc[at_target, "p_conversion"].isna().all()
    assert (output.loc[at_target, "conversion_band"] == "at_target").all()
    assert output.loc[at_target, "conversion_reason_1"].isna().all()
    below = output.loc[~at_target]
    assert below["p_conversion"].between(0, 1).all() and (below["conversion_band"] != "at_target").all()


def test_no_product_is_offered_to_a_customer_below_what_it_needs(output):
    from conftest import compose_config
    from omegaconf import OmegaConf

    # the composed config: product minima follow the data source's tier bounds (data.tier_bounds)
    rules = OmegaConf.to_container(compose_config("export", []).segments.playbook, resolve=True)
    for product, minimum in rules["product_min_value"].items():
        offered = output["next_best_product"] == product
        assert (output.loc[offered, "tier_value"] >= minimum).all(), product


def test_export_reads_the_reference_population_from_the_pipeline_features_instead_of_rebuilding(
    trained_bank, tmp_path
):
    from bankseg.cli.features import run_features
    from bankseg.jobs.export import reference_population

    as_of = pd.Timestamp(trained_bank.reference_as_of)
    kwargs = {k: v for k, v in trained_bank.feature_kwargs.items() if k not in ("engine", "spark_master")}
    run_features(trained_bank.data_path, [as_of, as_of + pd.DateOffset(months=3)], tmp_path / "features", **kwargs)
    read = reference_population(trained_bank.data_path, as_of, trained_bank.feature_kwargs, tmp_path / "features")
    rebuilt = reference_population(trained_bank.data_path, as_of, trained_bank.feature_kwargs)
    pd.testing.assert_frame_equal(read, rebuilt)
    with pytest.raises(ValueError, match=r"no rows as of 2019-01-01.*rerun bankseg-features"):
        reference_population(trained_bank.data_path, pd.Timestamp("2019-01-01"), {}, tmp_path / "features")
