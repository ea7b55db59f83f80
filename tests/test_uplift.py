"""Uplift (issue 18): the simulator's campaigns carry a true effect, and the uplift model recovers it.

One small simulated bank (10,000 customers x 30 months, seed 7: fewer give the
randomised arms too few conversions to learn from) with its campaign log and true effects.
"""

from __future__ import annotations

import numpy as np
import pytest

from bankseg.data.io import read_table
from bankseg.data.simulate import SimulatorParams, write_simulated_bank
from bankseg.features.build import dataset_data_end
from bankseg.models import uplift as up

OUTCOME_PARAMS = {"params": {"objective": "binary", "metric": "auc", "learning_rate": 0.05, "num_leaves": 7,
                             "max_depth": 4, "min_data_in_leaf": 50, "lambda_l2": 5.0, "num_threads": 1,
                             "verbose": -1},
                  "num_boost_round": 300, "early_stopping_rounds": 50, "calibration": "platt", "imbalance": "none",
                  "refit_on_val": True}


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    path = tmp_path_factory.mktemp("uplift") / "bank"
    write_simulated_bank(SimulatorParams(n_customers=10000, n_months=30, seed=7), path, progress=False)
    return path


def _frame(bank, product):
    return up.build_uplift_frame(bank, product, outcome_months=3, n_oot_months=2,
                                 feature_kwargs={"windows": [1, 3, 6, 12]}, data_end=dataset_data_end(bank))


@pytest.fixture(scope="module")
def wealth(bank):
    frame = _frame(bank, "wealth_management")
    model = up.UpliftModel(learner="x", outcome_params=OUTCOME_PARAMS).fit(frame[frame.split == "train"])
    return frame.assign(uplift=model.predict_uplift(frame), true=up.campaign_truth(bank, frame))


def test_the_randomised_arms_show_the_true_effect_on_average(wealth):
    treated, held = wealth[wealth.treatment == 1], wealth[wealth.treatment == 0]
    observed = treated.outcome.mean() - held.outcome.mean()
    se = np.sqrt(treated.outcome.var() / len(treated) + held.outcome.var() / len(held))
    assert wealth.true.notna().all() and wealth.true.mean() > 0.01
    assert abs(observed - wealth.true.mean()) < 3 * se


def test_the_true_effect_is_recoverable_out_of_time(wealth):
    oot = wealth[wealth.split == "oot"]
    assert len(oot) > 300
    assert np.corrcoef(oot.uplift, oot.true)[0, 1] > 0.3
    report = up.uplift_report(oot.outcome, oot.treatment, oot.uplift, true_effect=oot.true)
    assert report["captured_true_gain_at_20pct"] > 0.4  # random targeting captures about 0.2 x mean / best


def test_sleeping_dogs_rank_last(bank, wealth):
    truth = read_table(bank, "ground_truth_campaigns", columns=["customer_id", "month", "sleeping_dog"])
    dogs = wealth.merge(truth.rename(columns={"month": "as_of"}), on=["customer_id", "as_of"], how="left")
    assert dogs.sleeping_dog.sum() >= 30
    pct = dogs.uplift.rank(pct=True)
    assert pct[dogs.sleeping_dog].mean() < 0.35
    assert (pct[dogs.sleeping_dog] < 0.2).mean() > 3 * (pct[dogs.sleeping_dog] > 0.8).mean()


def test_a_campaign_with_no_true_effect_gives_an_uplift_near_zero(bank):
    frame = _frame(bank, "precious_metal")  # the gold-bar mailing: configured with no effect
    truth = up.campaign_truth(bank, frame)
    assert abs(truth.mean()) < 0.003
    model = up.UpliftModel(learner="x", outcome_params=OUTCOME_PARAMS).fit(frame[frame.split == "train"])
    uplift = model.predict_uplift(frame)
    assert abs(uplift.mean()) < 0.005 and np.quantile(np.abs(uplift), 0.9) < 0.02


def test_qini_and_auuc_reward_a_ranking_by_the_true_effect():
    rng = np.random.default_rng(0)
    effect = rng.uniform(-0.1, 0.3, 20_000)
    t = rng.random(effect.size) < 0.5
    y = rng.random(effect.size) < 0.1 + t * effect
    good, shuffled = up.auuc(up.qini_curve(y, t, effect)), up.auuc(up.qini_curve(y, t, rng.permutation(effect)))
    assert good > 0.02 and abs(shuffled) < 0.01
    deciles = up.uplift_by_decile(y, t, effect, effect)
    assert deciles.observed_uplift.iloc[0] > deciles.observed_uplift.iloc[-1] + 0.2
    assert up.captured_true_gain(effect, effect, 0.1) == pytest.approx(1.0)


def test_a_product_no_campaign_pitches_is_refused_with_the_products_that_are(bank):
    with pytest.raises(ValueError, match=r"no randomised campaign rows for product 'mortgage'.*wealth_management"):
        up.randomised_contacts(bank, "mortgage")


def test_bankseg_train_trains_logs_and_registers_the_uplift_model(bank, tmp_path):
    from conftest import compose_config

    from bankseg.cli.settings import feature_kwargs_from, plain
    from bankseg.jobs.train import run_train
    from bankseg.models.registry import load_model

    cfg = compose_config("train", [f"data.path={bank}", "model=uplift_wealth_management",
                                   f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db", f"paths.root_dir={tmp_path}",
                                   "model.outcome_params.params.num_threads=1"])
    result = run_train(model_cfg=plain(cfg.model), data_cfg=plain(cfg.data), feature_kwargs=feature_kwargs_from(cfg),
                       label_settings=None, as_of_cfg=plain(cfg.as_of), mlflow_cfg=plain(cfg.mlflow),
                       config=plain(cfg), register=True)
    assert result.registered_name == "bankseg-uplift-wealth_management" and result.version == "1"
    assert result.metrics["oot/corr_true_effect"] > 0.3 and "oot/auuc" in result.metrics
    assert list(result.tables["oot_uplift_deciles"].decile) == list(range(1, 11))
    scores = result.tables["oot_scores"]
    model = load_model("bankseg-uplift-wealth_management", "champion")
    features = _frame(bank, "wealth_management").query("split == 'oot'")
    from bankseg.models.pyfunc import predict_frame

    predicted = predict_frame(model, features)
    assert list(predicted.columns) == ["uplift", "p_contacted", "p_held_out"]
    np.testing.assert_allclose(predicted.uplift.to_numpy(), scores.uplift.to_numpy(), atol=1e-9)


def test_the_playbook_contacts_by_uplift_net_of_cost_never_the_sleeping_dogs(bank, wealth):
    from bankseg.segments.playbook import ContactEconomics, rank_contacts

    oot = wealth[wealth.split == "oot"].reset_index(drop=True)
    plan = rank_contacts(oot.uplift, ContactEconomics(contact_cost=30, conversion_value=2000, budget_share=0.1))
    chosen = plan.contact.to_numpy()
    assert 0 < chosen.sum() <= 0.1 * len(oot)
    assert (oot.uplift[chosen] * 2000 > 30).all() and not (oot.uplift[chosen] < 0).any()
    assert set(plan.sort_values("contact_rank").index[: chosen.sum()]) == set(plan.index[chosen])
    # the chosen customers are worth contacting in truth: their mean true effect is well above the book's
    assert oot.true[chosen].mean() > 1.5 * oot.true.mean()
    dear = rank_contacts(oot.uplift, ContactEconomics(contact_cost=1e6, conversion_value=2000))
    assert not dear.contact.any()


def test_contact_economics_are_checked_with_every_problem_named():
    from bankseg.segments.playbook import ContactEconomics

    with pytest.raises(ValueError, match=r"contact_cost must be >= 0.*conversion_value must be > 0.*budget_share"):
        ContactEconomics(contact_cost=-1, conversion_value=0, budget_share=2)
