"""Behavioural personas: k selection, recovery of planted groups, names, stable ids, stability, robustness."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from sklearn.exceptions import NotFittedError

from bankseg.models.persona_naming import NamingRules, Term, name_personas, parse_naming_rules
from bankseg.models.personas import PersonaModel, persona_recovery_ari

CONFIG = Path(__file__).resolve().parents[1] / "conf" / "model" / "personas.yaml"
PERSONA_CONFIG = OmegaConf.to_container(OmegaConf.load(CONFIG), resolve=True)
FEATURES = PERSONA_CONFIG["features"]
LOG_FEATURES = PERSONA_CONFIG["log_features"]
NAMING = PERSONA_CONFIG["names"]

GROUPS = ("senior_cash", "young_spender", "affluent_investor", "bill_payer", "business")
# feature -> (kind, mean for everyone, {group: mean for that group}); kinds say how values are drawn.
PLANTED = {
    "cust_age": ("age", 42, {"senior_cash": 70, "young_spender": 25, "affluent_investor": 52}),
    "txn_count_12m": ("count", 160, {"young_spender": 400, "senior_cash": 90}),
    "bal_aum_adb_12m": ("money", 40_000, {"affluent_investor": 3_000_000, "young_spender": 8_000}),
    "txn_outflow_12m": ("money", 90_000, {"affluent_investor": 900_000, "business": 1_500_000}),
    "txn_inflow_12m": ("money", 90_000, {"affluent_investor": 900_000, "business": 1_500_000}),
    "txn_category_share_bill": ("share", 0.08, {"bill_payer": 0.4}),
    "txn_category_share_consumption": ("share", 0.3, {"young_spender": 0.65, "business": 0.1}),
    "txn_category_share_transfer": ("share", 0.2, {"business": 0.65, "bill_payer": 0.1}),
    "txn_channel_share_atm": ("share", 0.08, {"senior_cash": 0.4, "young_spender": 0.01}),
    "bal_aum_share_demand_deposit": ("share", 0.9, {"affluent_investor": 0.3, "senior_cash": 0.6}),
    "txn_inflow_seasonality": ("share", 0.2, {"bill_payer": 0.09}),
    # not among the configured features: the model must ignore columns it was not told to use
    "bal_aum_trend_3m": ("normal", 0.0, {"business": -0.3}),
}
SIZES = (0.30, 0.25, 0.20, 0.15, 0.10)  # distinct sizes: ids by size are then well defined


def planted_bank(
    n: int, seed: int = 0, sizes: tuple[float, ...] = SIZES, shift: dict | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """A feature table with five planted behavioural groups (names in GROUPS) plus noise, and the truth.

    ``shift`` ({group: {feature: mean}}) moves a group's profile, as a population drifts between retrains.
    """
    rng = np.random.default_rng(seed)
    truth = rng.choice(len(GROUPS), size=n, p=np.asarray(sizes) / np.sum(sizes))
    columns = {"customer_id": np.arange(n, dtype="int64")}
    shift = shift or {}
    for feature, (kind, base, by_group) in PLANTED.items():
        means = [shift.get(g, {}).get(feature, by_group.get(g, base)) for g in GROUPS]
        mean = np.array(means, dtype=float)[truth]
        if kind == "age":
            values = np.clip(rng.normal(mean, 5), 18, 95).round()
        elif kind == "normal":
            values = rng.normal(mean, 0.05)
        elif kind == "money":
            values = rng.lognormal(np.log(mean), 0.35)
        elif kind == "share":
            values = np.clip(rng.normal(mean, 0.05), 0, 1)
        else:
            values = rng.poisson(mean).astype(float)
        columns[feature] = values
    return pd.DataFrame(columns), np.array(GROUPS, dtype=object)[truth]


def make_model(**overrides) -> PersonaModel:
    params = {
        "features": FEATURES,
        "log_features": LOG_FEATURES,
        "k_range": (3, 8),
        "sample_size": 2_000,
        "n_bootstrap": 3,
        "n_init": 4,
        "silhouette_sample_size": 1_500,
        "names": NAMING,
        "random_state": 0,
    }
    params.update(overrides)
    return PersonaModel(**params)


def majority_id(ids: np.ndarray, truth: np.ndarray, group: str) -> int:
    values, counts = np.unique(ids[truth == group], return_counts=True)
    return int(values[np.argmax(counts)])


@pytest.fixture(scope="module")
def bank():
    return planted_bank(2_500, seed=1)


@pytest.fixture(scope="module")
def fitted(bank):
    X, _ = bank
    return make_model().fit(X)


def test_k_selection_recovers_the_planted_number_of_groups(fitted):
    assert fitted.k_ == len(GROUPS)
    table = fitted.selection_
    assert table["k"].tolist() == list(range(3, 9))
    assert table.loc[table["chosen"], "k"].item() == fitted.k_
    assert table.loc[table["chosen"], "silhouette"].item() == table["silhouette"].max()


def test_personas_recover_the_planted_groups(bank, fitted):
    X, truth = bank
    assert persona_recovery_ari(fitted.predict(X), truth) > 0.95


def test_ids_are_numbered_by_size_without_a_previous_model(bank, fitted):
    X, truth = bank
    ids = fitted.predict(X)
    assert sorted(fitted.names_) == list(range(1, len(GROUPS) + 1))
    # GROUPS are listed from the most to the least common
    assert [majority_id(ids, truth, g) for g in GROUPS] == [1, 2, 3, 4, 5]


def test_names_are_unique_bilingual_and_describe_the_planted_profile(bank, fitted):
    X, truth = bank
    ids = fitted.predict(X)
    names = fitted.names_
    assert len({n["en"].casefold() for n in names.values()}) == len(names)
    assert len({n["zh"] for n in names.values()}) == len(names)
    assert all(n["zh"].endswith("客群") and n["en"][0].isupper() for n in names.values())
    expect = {
        "senior_cash": ("senior", "中老年"),
        "young_spender": ("young", "年轻"),
        "affluent_investor": ("affluent", "高净值"),
        "bill_payer": ("bill-paying", "缴费"),
        "business": ("transfer-heavy", "转账"),
    }
    for group, (en, zh) in expect.items():
        name = names[majority_id(ids, truth, group)]
        assert en in name["en"].lower() and zh in name["zh"], (group, name)
    assert list(fitted.persona_names([1, 1, 2], "zh")) == [names[1]["zh"], names[1]["zh"], names[2]["zh"]]


def test_profile_sizes_shares_and_what_sets_each_persona_apart(bank, fitted):
    X, truth = bank
    profile = fitted.profile_
    ids = fitted.predict(X)
    assert profile["size"].sum() == len(X)
    assert profile["share"].sum() == pytest.approx(1.0)
    senior = majority_id(ids, truth, "senior_cash")
    assert profile.loc[senior, "mean_cust_age"] == pytest.approx(X.loc[ids == senior, "cust_age"].mean())
    assert profile.loc[senior, "z_cust_age"] > 1
    assert profile.loc[senior, "z_txn_channel_share_atm"] > 1
    business = majority_id(ids, truth, "business")
    top = profile.loc[business, ["top_1", "top_2", "top_3"]].tolist()
    assert "txn_category_share_transfer" in top
    assert "z_bal_aum_trend_3m" not in profile.columns  # a column the model was not configured to use


def test_colliding_names_get_a_qualifier_or_a_number():
    rules = NamingRules(
        vocabulary=(
            Term("age", "high", "senior", "中老年"),
            Term("counter", "high", "counter-banking", "柜面"),
            Term("atm", "high", "cash-using", "现金"),
        ),
        max_adjectives=1,
    )
    z = pd.DataFrame(
        {"age": [2.0, 2.0, 2.0], "counter": [0.0, 1.0, 0.0], "atm": [0.0, 0.0, 0.0]}, index=[7, 8, 9]
    )
    names = name_personas(z, rules)
    assert names[7].en == "Senior customers" and names[7].zh == "中老年客群"
    assert names[8].en == "Senior counter-banking customers"  # qualified by its next word
    assert names[9].en == "Senior customers (2)" and names[9].zh == "中老年客群（2）"  # nothing left but a number


def test_a_vetoed_word_is_left_out_of_the_name():
    rules = parse_naming_rules({"vocabulary": [
        {"feature": "balance", "direction": "low", "en": "low-balance", "zh": "低资产"},
        {"feature": "deposit_share", "direction": "low", "en": "investors", "zh": "投资理财", "kind": "noun",
         "unless": [{"feature": "balance", "direction": "low"}]},
    ]})
    z = pd.DataFrame({"balance": [1.5, -1.5], "deposit_share": [-1.5, -1.5]}, index=[1, 2])
    names = name_personas(z, rules)
    assert names[1].en == "Investors" and names[1].zh == "投资理财客群"
    assert names[2].en == "Low-balance customers" and names[2].zh == "低资产客群"  # empty accounts invest nothing


def test_naming_rules_refuse_a_bad_vocabulary():
    with pytest.raises(ValueError, match="needs both `en` and `zh`"):
        parse_naming_rules({"vocabulary": [{"feature": "cust_age", "direction": "high", "en": "senior"}]})
    with pytest.raises(ValueError, match="`unless` needs a feature and a direction"):
        parse_naming_rules({"vocabulary": [{"feature": "cust_age", "direction": "high", "en": "senior", "zh": "中老年",
                                            "unless": [{"feature": "cust_age", "direction": "up"}]}]})
    with pytest.raises(ValueError, match="`unless` needs a feature and a direction"):
        parse_naming_rules({"vocabulary": [{"feature": "cust_age", "direction": "high", "en": "senior", "zh": "中老年",
                                            "unless": ["cust_age"]}]})
    with pytest.raises(ValueError, match="listed more than once"):
        entry = {"feature": "cust_age", "direction": "high", "en": "senior", "zh": "中老年"}
        parse_naming_rules({"vocabulary": [entry, entry]})


def test_ids_and_names_stay_when_retraining_on_a_resample(bank, fitted):
    X, _ = bank
    rng = np.random.default_rng(5)
    resample = X.iloc[rng.integers(0, len(X), len(X))].reset_index(drop=True)
    retrained = make_model(random_state=11).fit(resample, previous=fitted)
    same = fitted.predict(X) == retrained.predict(X)
    assert same.mean() >= 0.9
    assert retrained.names_ == fitted.names_
    assert retrained.id_matching_["name_kept"].all()


def test_cluster_order_does_not_change_ids(bank, fitted):
    X, _ = bank
    shuffled = X.sample(frac=1.0, random_state=3)
    seeds = [make_model(random_state=s).fit(shuffled, previous=fitted) for s in (21, 22)]
    for model in seeds:
        assert (model.predict(X) == fitted.predict(X)).mean() >= 0.99
    # no previous: numbering by size does not depend on the row order or the seed either
    fresh = make_model(random_state=22).fit(shuffled)
    assert (fresh.predict(X) == fitted.predict(X)).mean() >= 0.99


def test_ids_follow_the_previous_model_when_group_sizes_change(fitted):
    # the biggest group shrinks to the smallest: numbering by size would move every id, matching keeps them
    X, truth = planted_bank(2_500, seed=3, sizes=(0.05, 0.25, 0.20, 0.15, 0.35))
    retrained = make_model().fit(X, previous=fitted)
    assert (retrained.predict(X) == fitted.predict(X)).mean() >= 0.99
    assert majority_id(retrained.predict(X), truth, "senior_cash") == 1
    assert make_model().fit(X).predict(X)[truth == "senior_cash"][0] != 1  # what numbering by size gives


def test_a_new_persona_gets_a_fresh_id_and_old_ones_keep_theirs():
    X, truth = planted_bank(2_500, seed=2)
    without_seniors = truth != "senior_cash"  # the biggest group is the new one
    old = make_model(k_range=(4, 4)).fit(X[without_seniors])
    new = make_model(k_range=(5, 5)).fit(X, previous=old)
    old_ids, new_ids = old.predict(X), new.predict(X)
    for group in GROUPS[1:]:
        assert majority_id(new_ids, truth, group) == majority_id(old_ids, truth, group)
    assert majority_id(new_ids, truth, "senior_cash") == old.max_id_issued_ + 1 == 5
    assert new.max_id_issued_ == 5
    assert "senior" in new.names_[5]["en"].lower()


def test_a_persona_that_drifted_keeps_its_id_but_not_a_name_that_no_longer_fits(fitted):
    # the senior cash users are now young: same persona by everything else, but no longer "senior"
    X, truth = planted_bank(2_500, seed=4, shift={"senior_cash": {"cust_age": 26}})
    retrained = make_model().fit(X, previous=fitted)
    savers = majority_id(retrained.predict(X), truth, "senior_cash")
    assert savers == 1
    assert "senior" in fitted.names_[1]["en"].lower()
    assert "senior" not in retrained.names_[1]["en"].lower() and "中老年" not in retrained.names_[1]["zh"]
    assert all(retrained.names_[pid] == fitted.names_[pid] for pid in (2, 3, 4, 5))
    # with a distance gate, the drifted persona is treated as new instead
    gated = make_model(max_match_distance=2.0).fit(X, previous=fitted)
    matching = gated.id_matching_.set_index("persona_id")
    assert majority_id(gated.predict(X), truth, "senior_cash") == 6
    assert matching["previous_id"].isna().sum() == 1
    assert (matching["distance"].dropna() <= 2.0).all()


def test_gaussian_mixture_selects_k_by_bic(bank):
    X, truth = bank
    # a full covariance costs ~430 parameters a component here: BIC needs every row to afford the small groups
    model = make_model(algorithm="gmm", covariance_type="full", n_init=2, n_bootstrap=2, sample_size=3_000).fit(X)
    assert model.criterion_ == "bic"
    assert model.k_ == len(GROUPS)
    assert model.selection_.loc[model.selection_["chosen"], "bic"].item() == model.selection_["bic"].min()
    assert persona_recovery_ari(model.predict(X), truth) > 0.95
    assert model.centroids_.shape == (len(GROUPS), len(FEATURES))
    assert model.stability_ > 0.9


def test_missing_values_are_imputed_with_stored_medians(bank):
    X, truth = bank
    rng = np.random.default_rng(4)
    holes = X.copy()
    for feature in ("cust_age", "bal_aum_adb_12m", "txn_channel_share_atm"):
        holes[feature] = holes[feature].mask(rng.random(len(X)) < 0.1)
    holes["txn_count_12m"] = holes["txn_count_12m"].astype("Float64")
    holes.loc[holes.index[:50], "txn_count_12m"] = pd.NA
    before = holes.copy()
    model = make_model().fit(holes)
    pd.testing.assert_frame_equal(holes, before)  # the input frame is not touched
    assert model.impute_values_["cust_age"] == holes["cust_age"].median()
    ids = model.predict(holes)
    assert ids.dtype == np.int64 and len(ids) == len(X)
    assert persona_recovery_ari(ids, truth) > 0.9


def test_predicts_unseen_customers(bank, fitted):
    X_new, truth_new = planted_bank(600, seed=9)
    assert persona_recovery_ari(fitted.predict(X_new), truth_new) > 0.95
    one_row = X_new.iloc[[0]]
    assert fitted.predict(one_row).shape == (1,)


def test_bootstrap_stability_is_high_on_separated_groups(fitted):
    assert len(fitted.stability_scores_) == 3
    assert all(0 <= s <= 1 for s in fitted.stability_scores_)
    assert fitted.stability_ == pytest.approx(np.mean(fitted.stability_scores_))
    assert fitted.stability_ > 0.9


def test_a_pickled_model_predicts_the_same(bank, fitted):
    X, _ = bank
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))
    assert restored.names_ == fitted.names_


def test_bad_input_is_refused_with_a_named_problem(bank, fitted):
    X, _ = bank
    with pytest.raises(ValueError, match=r"missing feature columns: \['cust_age'\]"):
        fitted.predict(X.drop(columns="cust_age"))
    with pytest.raises(ValueError, match=r"must be numeric.*cust_age"):
        fitted.predict(X.assign(cust_age=X["cust_age"].astype(str)))
    with pytest.raises(ValueError, match=r"infinite values in feature columns \['txn_outflow_12m'\], first at rows \[4\]"):
        fitted.predict(X.assign(txn_outflow_12m=X["txn_outflow_12m"].where(X.index != 4, np.inf)))
    with pytest.raises(ValueError, match="criterion 'bic' needs algorithm 'gmm'"):
        make_model(criterion="bic").fit(X)
    with pytest.raises(ValueError, match="log_features not among features"):
        make_model(log_features=["not_a_feature"]).fit(X)
    with pytest.raises(NotFittedError):
        make_model().predict(X)
    with pytest.raises(ValueError, match="unknown persona ids \\[99\\]"):
        fitted.persona_names([1, 99])


def test_persona_recovery_ari_ignores_labels_and_refuses_misaligned_input():
    truth = np.array(["a", "a", "b", "b", "c", "c"])
    assert persona_recovery_ari([7, 7, 3, 3, 9, 9], truth) == 1.0
    assert persona_recovery_ari([1, 2, 1, 2, 1, 2], truth) < 0.0 + 1e-9
    with pytest.raises(ValueError, match="2 entries but true_personas has 6"):
        persona_recovery_ari([1, 2], truth)
    with pytest.raises(ValueError, match="missing values"):
        persona_recovery_ari([1, 2, 1, 2, 1, None], truth)


def test_the_model_config_builds_an_estimator_and_its_vocabulary_parses():
    arguments = set(PersonaModel(features=[]).get_params())
    job_keys = set(PERSONA_CONFIG) - arguments
    assert job_keys == {"name", "kind", "registered_name"}, "a key that is neither an argument nor a job key"
    model = PersonaModel(**{k: v for k, v in PERSONA_CONFIG.items() if k in arguments})
    assert model._resolved_criterion() == "silhouette"
    rules = parse_naming_rules(NAMING)
    by_key = {(t.feature, t.direction): t for t in rules.vocabulary}
    assert (by_key["cust_age", "high"].en, by_key["cust_age", "high"].zh) == ("senior", "中老年")
    used = {t.feature for t in rules.vocabulary} | {f for t in rules.vocabulary for f, _ in t.unless}
    assert not used - set(FEATURES), "vocabulary words for unused features"
    assert set(LOG_FEATURES) <= set(FEATURES)


@pytest.mark.slow
def test_the_configured_k_search_finds_the_groups_in_a_big_bank():
    # the configured settings (sample size, silhouette sub-sample, restarts) on 50k customers; how long the fit
    # takes is measured by benchmarks/personas.py, not here
    X, truth = planted_bank(50_000, seed=7)
    params = {k: v for k, v in PERSONA_CONFIG.items() if k not in ("name", "kind", "registered_name", "k_range")}
    model = PersonaModel(**params, k_range=(4, 10)).fit(X)
    assert model.k_ == len(GROUPS)
    assert persona_recovery_ari(model.predict(X), truth) > 0.95
