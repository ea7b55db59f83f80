"""PropensityModel: held-out skill, early stopping, calibration, categoricals, missing targets, determinism,
SHAP contributions and the Optuna pruning callback — on a small seeded synthetic problem with known truth."""

from __future__ import annotations

import pickle
from pathlib import Path

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from sklearn.metrics import brier_score_loss, roc_auc_score

from bankseg.models.propensity import (
    BIAS_COLUMN,
    PropensityModel,
    build_propensity_model,
    cap_model_size,
    make_pruning_callback,
    select_feature_columns,
)

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
CITY_EFFECT = {"north": 1.2, "south": 0.0, "east": -0.8, "west": 0.4}
# One thread: on this shared 2-core machine LightGBM's OpenMP threads spin-wait against the other jobs and a
# 2-thread fit of these few thousand rows ran 10-30x slower than a 1-thread one (same trees either way).
ONE_THREAD = {"num_threads": 1}
FAST = {"num_boost_round": 400, "early_stopping_rounds": 30, "params": ONE_THREAD}


def make_frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A feature table with a known true probability: three informative numbers, a `str` categorical with
    signal, pure noise, about 8% positives. Returns (frame, true probability)."""
    rng = np.random.default_rng(seed)
    x1, x2, x3, noise = rng.normal(size=(4, n))
    city = rng.choice(list(CITY_EFFECT), size=n)
    logit = -3.4 + 1.2 * x1 - 0.8 * x2 + 0.5 * x3**2 + pd.Series(city).map(CITY_EFFECT).to_numpy()
    p = 1.0 / (1.0 + np.exp(-logit))
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(n, dtype=np.int64) + seed * 1_000_000,
            "as_of": pd.Timestamp("2024-01-01"),
            "x1": x1,
            "x2": x2,
            "x3": x3,
            "noise": noise,
            "cust_city": pd.array(city, dtype="str"),
            "label_churn": (rng.random(n) < p).astype(np.float64),
        }
    )
    return frame, p


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return make_frame(6000, seed=1)[0]


@pytest.fixture(scope="module")
def test_data() -> tuple[pd.DataFrame, np.ndarray]:
    return make_frame(5000, seed=2)


@pytest.fixture(scope="module")
def model(train) -> PropensityModel:
    return PropensityModel("label_churn", **FAST).fit(train)


def test_held_out_auc_is_close_to_the_oracle(model, test_data):
    frame, truth = test_data
    y = frame["label_churn"]
    oracle = roc_auc_score(y, truth)
    auc = roc_auc_score(y, model.predict_proba(frame))
    assert auc > 0.75
    assert auc > oracle - 0.05, (auc, oracle)


def test_features_skip_keys_labels_scores_and_excluded_columns(train):
    frame = train.assign(p_conversion=0.5, persona_id=3, label_upgrade=1.0, split="train", extra=1.0)
    features, categorical = select_feature_columns(frame, exclude=["extra"])
    assert features == ["x1", "x2", "x3", "noise", "cust_city"]
    assert categorical == ["cust_city"]
    fitted = PropensityModel("label_churn", exclude=["noise"], **FAST).fit(frame)
    assert fitted.feature_names_ == ["x1", "x2", "x3", "cust_city", "extra"]
    assert fitted.categories_ == {"cust_city": sorted(CITY_EFFECT)}


def test_early_stopping_keeps_only_the_best_trees(model):
    curve = model.evals_result_["val"]["auc"]
    assert model.best_iteration_ < FAST["num_boost_round"]
    assert model.booster_.num_trees() == model.best_iteration_
    # Training ran `patience` rounds past the best round, and the best round is where the val AUC peaked.
    assert len(curve) == model.best_iteration_ + FAST["early_stopping_rounds"]
    assert int(np.argmax(curve)) + 1 == model.best_iteration_


def test_calibration_restores_the_base_rate_and_beats_weighted_scores(model, test_data):
    frame, _ = test_data
    y = frame["label_churn"].to_numpy()
    calibrated = model.predict_proba(frame)
    weighted = 1.0 / (1.0 + np.exp(-model.predict_raw(frame)))
    assert model.calibration_method_ == "isotonic"
    assert model.scale_pos_weight_ > 5  # about 92 / 8
    assert weighted.mean() > 2 * y.mean()  # scale_pos_weight inflates the booster's own probabilities
    assert abs(calibrated.mean() - y.mean()) < 0.015
    assert brier_score_loss(y, calibrated) < brier_score_loss(y, weighted)
    assert ((calibrated >= 0) & (calibrated <= 1)).all()


def test_few_calibration_rows_fall_back_to_platt(train):
    with pytest.warns(UserWarning, match="Platt"):
        fitted = PropensityModel("label_churn", calibration_fraction=0.1, **FAST).fit(train.iloc[:3000])
    assert fitted.calibration_method_ == "platt"
    proba = fitted.predict_proba(train)
    assert abs(proba.mean() - train["label_churn"].mean()) < 0.02


def test_unseen_category_scores_like_a_missing_one(model, test_data):
    frame, _ = test_data
    rows = frame.iloc[:50]
    unseen = model.predict_proba(rows.assign(cust_city=pd.array(["atlantis"] * 50, dtype="str")))
    missing = model.predict_proba(rows.assign(cust_city=pd.array([None] * 50, dtype="str")))
    np.testing.assert_array_equal(unseen, missing)


def test_category_dtype_with_another_order_scores_like_str(model, test_data):
    frame, _ = test_data
    as_category = frame.assign(
        cust_city=frame["cust_city"].astype(pd.CategoricalDtype(["west", "south", "north", "east", "x"]))
    )
    np.testing.assert_array_equal(model.predict_proba(as_category), model.predict_proba(frame))


def test_missing_targets_are_counted_and_left_out(train):
    target = pd.array(train["label_churn"].astype(int), dtype="Int8")
    target[:300] = pd.NA
    with_missing = train.assign(label_churn=target)
    fitted = PropensityModel("label_churn", **FAST).fit(with_missing)
    assert fitted.n_dropped_ == 300
    assert sum(fitted.n_rows_.values()) == len(train) - 300
    without = PropensityModel("label_churn", **FAST).fit(train.iloc[300:])
    assert without.n_dropped_ == 0
    np.testing.assert_array_equal(fitted.predict_proba(train), without.predict_proba(train))


def test_target_values_other_than_0_1_are_refused(train):
    bad = train.assign(label_churn=train["label_churn"].where(train.index != 7, 2.0))
    with pytest.raises(ValueError, match="must be 0, 1 or missing; 1 rows"):
        PropensityModel("label_churn", params=ONE_THREAD).fit(bad)


def test_missing_feature_at_predict_is_named(model, test_data):
    frame, _ = test_data
    with pytest.raises(ValueError, match=r"lacks model features \['x2'\]"):
        model.predict_proba(frame.drop(columns="x2"))


def test_fit_and_predict_leave_the_input_untouched(train):
    before = train.copy(deep=True)
    fitted = PropensityModel("label_churn", **FAST).fit(train)
    fitted.contributions(train.iloc[:20])
    pd.testing.assert_frame_equal(train, before)


def test_same_data_and_seed_give_identical_predictions_also_after_pickling(model, train, test_data):
    frame, _ = test_data
    again = PropensityModel("label_churn", **FAST).fit(train)
    np.testing.assert_array_equal(again.predict_proba(frame), model.predict_proba(frame))
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(frame), model.predict_proba(frame))
    other_seed = PropensityModel("label_churn", random_state=5, **FAST).fit(train)
    assert not np.array_equal(other_seed.predict_raw(frame), model.predict_raw(frame))


def test_contributions_sum_to_the_boosters_raw_margin(model, test_data):
    frame, _ = test_data
    rows = frame.iloc[:200]
    contrib = model.contributions(rows)
    assert list(contrib.columns) == [*model.feature_names_, BIAS_COLUMN]
    design = rows[model.feature_names_].assign(
        cust_city=pd.Categorical(rows["cust_city"], categories=model.categories_["cust_city"])
    )
    margin = model.booster_.predict(design, raw_score=True)
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy(), margin, rtol=0, atol=1e-9)
    # The categorical carries signal, so it must carry contribution too.
    assert contrib["cust_city"].abs().mean() > contrib["noise"].abs().mean()


def test_size_cap_bounds_every_tree(train):
    assert cap_model_size({"num_leaves": 127, "max_depth": -1}, {"num_leaves": 15, "max_depth": 4}) == {
        "num_leaves": 15,
        "max_depth": 4,
    }
    fitted = PropensityModel(
        "label_churn",
        params={**ONE_THREAD, "num_leaves": 63, "max_depth": -1},
        size_cap={"num_leaves": 7},
        num_boost_round=400,
        early_stopping_rounds=30,
    ).fit(train)
    leaves = [tree["num_leaves"] for tree in fitted.booster_.dump_model()["tree_info"]]
    assert max(leaves) <= 7


def test_boosting_length_in_params_is_refused(train):
    with pytest.raises(ValueError, match="n_estimators"):
        PropensityModel("label_churn", params={**ONE_THREAD, "n_estimators": 50}).fit(train)


@pytest.mark.parametrize("name", ["churn", "conversion", "upgrade"])
def test_model_configs_build_an_estimator(name):
    settings = yaml.safe_load((CONF / f"{name}.yaml").read_text())
    estimator = build_propensity_model(settings)
    assert estimator.target == f"label_{name}"
    assert settings["registered_name"] == f"bankseg-{name}"
    assert estimator.params["num_threads"] == 2
    cutoffs = settings["bands"]["cutoffs"]
    assert cutoffs == sorted(cutoffs) and len(settings["bands"]["names"]) == len(cutoffs) + 1


def test_pruning_callback_stops_a_bad_trial(train):
    def objective(trial: optuna.Trial) -> float:
        bad = trial.suggest_categorical("bad", [False, True])
        fitted = PropensityModel(
            "label_churn",
            features=["noise"] if bad else None,  # the bad trial only sees noise: val AUC near 0.5
            calibration=None,
            params=ONE_THREAD,
            num_boost_round=200,
            early_stopping_rounds=200,
        ).fit(train, callbacks=[make_pruning_callback(trial)])
        return max(fitted.evals_result_["val"]["auc"])

    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=5),
    )
    for bad in (False, False, True):
        study.enqueue_trial({"bad": bad})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(objective, n_trials=3)
    states = [t.state for t in study.trials]
    assert states == [optuna.trial.TrialState.COMPLETE] * 2 + [optuna.trial.TrialState.PRUNED]
    pruned = study.trials[-1]
    assert max(pruned.intermediate_values) < 200  # stopped well before the full 200 rounds


def test_pruning_callback_refuses_a_study_in_the_wrong_direction(train):
    study = optuna.create_study(direction="minimize")
    trial = study.ask()
    with pytest.raises(ValueError, match="MAXIMIZE"):
        PropensityModel("label_churn", calibration=None, num_boost_round=5, params=ONE_THREAD).fit(
            train, callbacks=[make_pruning_callback(trial)]
        )


def test_pruning_callback_names_a_missing_metric():
    callback = make_pruning_callback(optuna.create_study().ask(), metric="binary_logloss")
    env = lgb.callback.CallbackEnv(None, {}, 0, 0, 10, [("val", "auc", 0.7, True)])
    with pytest.raises(ValueError, match="no val/binary_logloss"):
        callback(env)


# --------------------------------------------------------------------------- issue 7: hold-outs on small data
def test_refit_grows_the_final_trees_on_every_row_not_held_out_for_calibration(train):
    plain = PropensityModel("label_churn", **FAST).fit(train)
    refit = PropensityModel("label_churn", refit_on_val=True, **FAST).fit(train)
    assert plain.n_tree_rows_ == plain.n_rows_["fit"]
    assert refit.n_tree_rows_ == len(train) - refit.n_rows_["calibration"] == refit.n_rows_["fit"] + refit.n_rows_["val"]
    # The val rows still choose the number of trees (same early-stopping run), then train them too.
    assert refit.evals_result_ == plain.evals_result_
    assert refit.booster_.num_trees() == refit.best_iteration_ == plain.best_iteration_
    assert not np.array_equal(refit.predict_raw(train), plain.predict_raw(train))


def test_platt_calibration_ranks_exactly_like_the_raw_margin(model, train, test_data):
    frame, _ = test_data
    y = frame["label_churn"].to_numpy()
    platt = PropensityModel("label_churn", calibration="platt", **FAST).fit(train)
    proba, raw = platt.predict_proba(frame), platt.predict_raw(frame)
    assert roc_auc_score(y, proba) == roc_auc_score(y, raw)
    assert abs(proba.mean() - y.mean()) < 0.015
    # Isotonic steps tie customers and can lose ranking; Platt never does.
    isotonic = model
    assert roc_auc_score(y, isotonic.predict_proba(frame)) <= roc_auc_score(y, isotonic.predict_raw(frame))


def test_cross_fitted_calibration_holds_no_row_out_and_stays_calibrated(train, test_data):
    frame, _ = test_data
    y = frame["label_churn"].to_numpy()
    fitted = PropensityModel(
        "label_churn", calibration="platt", calibration_cv=4, refit_on_val=True, **FAST
    ).fit(train)
    assert fitted.cross_fitted_
    assert fitted.n_rows_["calibration"] == 0
    assert fitted.n_tree_rows_ == fitted.n_calibration_rows_ == len(train)
    proba = fitted.predict_proba(frame)
    assert abs(proba.mean() - y.mean()) < 0.015
    weighted = 1.0 / (1.0 + np.exp(-fitted.predict_raw(frame)))
    assert brier_score_loss(y, proba) < brier_score_loss(y, weighted)


def test_cross_fitting_gives_way_to_a_hold_out_above_its_row_limit(train):
    fitted = PropensityModel(
        "label_churn", calibration="platt", calibration_cv=4, calibration_cv_max_rows=len(train) - 1, **FAST
    ).fit(train)
    assert not fitted.cross_fitted_
    assert fitted.n_calibration_rows_ == fitted.n_rows_["calibration"] == round(0.2 * len(train))


@pytest.mark.parametrize("folds", [1, 2.5, True])
def test_calibration_cv_must_be_an_integer_of_at_least_two(train, folds):
    with pytest.raises(ValueError, match="calibration_cv must be null or an integer of at least 2"):
        PropensityModel("label_churn", calibration_cv=folds, **FAST).fit(train)


def test_cross_validation_measures_a_parameter_set_like_a_held_out_test(train, test_data):
    frame, _ = test_data
    estimator = PropensityModel("label_churn", **FAST)
    measured = estimator.cross_validate(train, n_folds=4)
    held_out = roc_auc_score(frame["label_churn"], PropensityModel("label_churn", **FAST).fit(train).predict_raw(frame))
    assert measured.metric == "auc" and measured.n_folds == 4
    assert abs(measured.score - held_out) < 0.03
    assert measured.score == max(measured.curve) and measured.curve[measured.rounds - 1] == measured.score
    assert len(measured.curve) < FAST["num_boost_round"]  # early stopping watched the mean curve


def test_cross_validation_reports_to_a_pruner_under_the_name_valid(train):
    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    measured = PropensityModel(
        "label_churn", num_boost_round=20, early_stopping_rounds=20, params=ONE_THREAD
    ).cross_validate(train, n_folds=3, callbacks=[make_pruning_callback(trial, valid_name="valid")])
    reported = study.trials[0].intermediate_values
    assert len(reported) >= 19  # the last round ends the run before the pruning callback sees it
    assert all(value == pytest.approx(measured.curve[step]) for step, value in reported.items())
