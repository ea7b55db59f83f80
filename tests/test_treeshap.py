"""The pattern-cache TreeSHAP (issue 13) gives LightGBM's own pred_contrib values: max |difference| below 1e-9 and
the same top-3 features on every row, on boosters with NaN under each missing type, native categoricals (unseen
and NaN categories at predict time), stumps and deep trees, and a PropensityModel trained on a simulated bank."""

from __future__ import annotations

import logging
import pickle

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from bankseg.models.propensity import BIAS_COLUMN, PropensityModel
from bankseg.models.treeshap import TreeShapExplainer, UnsupportedBooster

TOLERANCE = 1e-9
N_FEATURES = 7
CATEGORICAL = 5  # column index of the categorical feature in the synthetic problem


def make_problem(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Numbers with NaN, many exact zeros and repeated values, a categorical of 12 codes; a label that needs all."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    X[:, 1] = np.where(rng.random(n) < 0.4, 0.0, X[:, 1])  # zero-heavy (zero is missing under missing_type Zero)
    X[:, 2] = np.round(X[:, 2] * 2)  # few distinct values: rows land exactly on thresholds
    X[:, CATEGORICAL] = rng.integers(0, 12, n)
    X[rng.random((n, N_FEATURES)) < 0.12] = np.nan
    cat_effect = np.array([1.0, -1.0, 0.5, 0.0, 2.0, -0.5, 0.3, -2.0, 1.5, 0.0, -1.2, 0.8])
    cats = np.nan_to_num(X[:, CATEGORICAL], nan=3).astype(int)
    logit = (np.nan_to_num(X[:, 0], nan=1.5) - np.nan_to_num(X[:, 1]) * 1.5 + np.isnan(X[:, 3]) * 1.0
             + 0.5 * np.nan_to_num(X[:, 2]) + cat_effect[cats] + 0.5 * rng.normal(size=n))
    return X, (logit > 0.5).astype(int)


def train_booster(**params) -> lgb.Booster:
    X, y = make_problem(4000, seed=1)
    settings = {"objective": "binary", "verbose": -1, "num_threads": 1, "min_data_per_group": 20,
                "cat_smooth": 1.0, "deterministic": True, "seed": 0, **params}
    return lgb.train(settings, lgb.Dataset(X, y, categorical_feature=[CATEGORICAL]), num_boost_round=40)


def scoring_rows(n: int = 1500) -> np.ndarray:
    """Rows to explain: fresh draws plus categories the booster never saw, NaN and negative categories."""
    X, _ = make_problem(n, seed=2)
    X[:100, CATEGORICAL] = np.nan
    X[100:200, CATEGORICAL] = 40  # unseen
    X[200:250, CATEGORICAL] = -1
    X[250:300, 0] = 0.0
    X[300:350, 1] = np.inf
    return X


def assert_same_as_pred_contrib(values: np.ndarray, expected: np.ndarray) -> None:
    assert values.shape == expected.shape
    assert np.abs(values - expected).max() < TOLERANCE
    features = slice(0, expected.shape[1] - 1)  # the bias is not a reason
    top_got = np.argsort(-values[:, features], axis=1, kind="stable")[:, :3]
    top_expected = np.argsort(-expected[:, features], axis=1, kind="stable")[:, :3]
    assert (top_got == top_expected).all()


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"num_leaves": 15}, id="missing-NaN"),
        pytest.param({"num_leaves": 15, "zero_as_missing": True}, id="missing-Zero"),
        pytest.param({"num_leaves": 15, "use_missing": False}, id="missing-None"),
        pytest.param({"num_leaves": 2}, id="stumps"),
        pytest.param({"num_leaves": 63, "max_depth": -1, "min_data_in_leaf": 5}, id="deep"),
    ],
)
def test_contributions_equal_pred_contrib(params):
    booster = train_booster(**params)
    X = scoring_rows()
    assert_same_as_pred_contrib(TreeShapExplainer(booster).contributions(X), booster.predict(X, pred_contrib=True))


def test_the_test_boosters_exercise_every_missing_type_and_categorical_splits():
    """The exactness tests above mean something only if their boosters hold the cases named."""
    seen = {}
    for name, params in {"NaN": {}, "Zero": {"zero_as_missing": True}, "None": {"use_missing": False}}.items():
        splits = _all_splits(train_booster(num_leaves=15, **params).dump_model())
        seen[name] = {s["missing_type"] for s in splits if s["decision_type"] == "<="}
        assert any(s["decision_type"] == "==" for s in splits)
    assert "NaN" in seen["NaN"] and "Zero" in seen["Zero"] and seen["None"] == {"None"}
    depths = [t["tree_structure"] for t in train_booster(num_leaves=63, max_depth=-1, min_data_in_leaf=5)
              .dump_model()["tree_info"]]
    assert max(_depth(t) for t in depths) >= 8


def test_linear_trees_are_refused_with_the_reason():
    X, y = make_problem(2000, seed=3)
    X = np.nan_to_num(X[:, :3])
    booster = lgb.train({"objective": "binary", "verbose": -1, "linear_tree": True, "num_threads": 1},
                        lgb.Dataset(X, y), num_boost_round=5)
    with pytest.raises(UnsupportedBooster, match="linear trees"):
        TreeShapExplainer(booster)


def test_wrong_number_of_columns_is_refused():
    with pytest.raises(ValueError, match=f"rows x {N_FEATURES} features"):
        TreeShapExplainer(train_booster(num_leaves=4)).contributions(np.zeros((3, N_FEATURES - 1)))


# ---------------------------------------------------------------- through PropensityModel


def make_frame(n: int, seed: int) -> pd.DataFrame:
    """A feature table: numbers with missing values, a `str` categorical, a 0/1 churn label."""
    X, y = make_problem(n, seed)
    cities = np.array([f"city_{i}" for i in range(12)], dtype=object)
    codes = X[:, CATEGORICAL]
    city = np.where(np.isnan(codes), None, cities[np.nan_to_num(codes).astype(int)])
    frame = pd.DataFrame({f"x{i}": X[:, i] for i in range(N_FEATURES) if i != CATEGORICAL})
    frame["cust_city"] = pd.array(city, dtype="str")
    frame["customer_id"] = np.arange(n) + seed * 100_000
    frame["label_churn"] = y.astype(float)
    return frame


@pytest.fixture(scope="module")
def small_model() -> PropensityModel:
    return PropensityModel("label_churn", num_boost_round=60, early_stopping_rounds=20, calibration="platt",
                           params={"num_threads": 1, "num_leaves": 15}).fit(make_frame(4000, seed=4))


def test_model_contributions_equal_pred_contrib_also_for_unseen_categories(small_model):
    rows = make_frame(1000, seed=5)
    rows.loc[:99, "cust_city"] = "atlantis"  # never seen at fit: scores like a missing city
    fast = small_model.contributions(rows)
    raw = small_model.contributions(rows, method="pred_contrib")
    assert list(fast.columns) == [*small_model.feature_names_, BIAS_COLUMN]
    assert fast.index.equals(rows.index)
    assert_same_as_pred_contrib(fast.to_numpy(), raw.to_numpy())
    np.testing.assert_allclose(fast.sum(axis=1), small_model.predict_raw(rows), atol=1e-9)


def test_unknown_contribution_method_is_refused(small_model):
    with pytest.raises(ValueError, match="method must be one of"):
        small_model.contributions(make_frame(10, seed=6), method="approximate")


def test_a_random_forest_falls_back_to_pred_contrib_and_says_why(caplog):
    """Averaged output is what the pattern cache does not support; pred_contrib still explains it exactly."""
    rows = make_frame(300, seed=7)
    model = PropensityModel("label_churn", num_boost_round=20, early_stopping_rounds=5, calibration=None,
                            params={"num_threads": 1, "boosting": "rf", "num_leaves": 15}).fit(make_frame(3000, seed=6))
    with caplog.at_level(logging.WARNING, logger="bankseg.models.propensity"):
        values = model.contributions(rows)
    assert "averaged output (random forest)" in caplog.text
    np.testing.assert_allclose(values.sum(axis=1), model.predict_raw(rows), atol=1e-9)
    with pytest.raises(UnsupportedBooster, match="random forest"):
        model.contributions(rows, method="pattern_cache")


def test_a_pickled_model_explains_the_same_without_carrying_the_cache(small_model):
    rows = make_frame(200, seed=8)
    before = small_model.contributions(rows)
    restored = pickle.loads(pickle.dumps(small_model))
    assert "_explainer" not in restored.__dict__
    pd.testing.assert_frame_equal(restored.contributions(rows), before)


@pytest.mark.slow
def test_a_model_trained_on_a_simulated_bank_explains_like_pred_contrib(tmp_path):
    """The real path: simulated bank -> features and labels -> the churn config's estimator -> contributions."""
    from hydra import compose, initialize_config_dir

    from bankseg.cli import CONFIG_DIR
    from bankseg.cli.settings import feature_kwargs_from, label_settings_from, plain
    from bankseg.data.simulate import SimulatorParams, write_simulated_bank
    from bankseg.jobs.train import load_model_data
    from bankseg.models.propensity import build_propensity_model

    data = tmp_path / "bank"
    write_simulated_bank(SimulatorParams(n_customers=1500, n_months=24, seed=13), data, progress=False)
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("train", overrides=[f"data.path={data}", f"paths.root_dir={tmp_path}", "model=upgrade"])
    prepared = load_model_data(plain(cfg.data), feature_kwargs=feature_kwargs_from(cfg),
                               label_settings=label_settings_from(cfg), as_of_cfg=plain(cfg.as_of))
    frame = prepared.frame
    model = build_propensity_model(plain(cfg.model), calibration_cv=None, num_boost_round=80,
                                   params={**plain(cfg.model)["params"], "num_threads": 1})
    model.fit(frame[frame["split"] == "train"].drop(columns=["split"]))
    assert model.categorical_features_, "the simulated bank's features include categoricals"
    rows = frame[frame["split"] == "oot"].drop(columns=["split"])
    fast = model.contributions(rows)
    raw = model.contributions(rows, method="pred_contrib")
    assert_same_as_pred_contrib(fast.to_numpy(), raw.to_numpy())


def _all_splits(model: dict) -> list[dict]:
    out, stack = [], [t["tree_structure"] for t in model["tree_info"]]
    while stack:
        node = stack.pop()
        if "split_feature" in node:
            out.append(node)
            stack += [node["left_child"], node["right_child"]]
    return out


def _depth(node: dict) -> int:
    if "split_feature" not in node:
        return 0
    return 1 + max(_depth(node["left_child"]), _depth(node["right_child"]))
