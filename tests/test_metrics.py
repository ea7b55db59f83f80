"""Evaluation metrics: equal to sklearn/scipy where they have them, and to hand-computed small cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from bankseg.models import metrics as m


@pytest.fixture(params=["continuous", "tied"])
def predictions(request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray]:
    """Labels that depend on the score, as a model's would; 'tied' rounds scores so many rows share one."""
    rng = np.random.default_rng(7)
    p = rng.beta(2, 5, size=3_000)
    y = (rng.random(p.size) < p).astype(int)
    if request.param == "tied":
        p = np.round(p, 2)
    return y, p


# ------------------------------------------------------------------------------------------ against sklearn
def test_ranking_metrics_match_sklearn(predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = predictions
    assert m.roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m.gini(y, p) == pytest.approx(2 * roc_auc_score(y, p) - 1, abs=1e-12)
    assert m.pr_auc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert m.brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)


def test_ks_equals_two_sample_ks_between_classes(predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = predictions
    expected = stats.ks_2samp(p[y == 1], p[y == 0]).statistic
    assert m.ks(y, p) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("strategy", ["quantile", "uniform"])
def test_calibration_table_matches_sklearn_curve(
    predictions: tuple[np.ndarray, np.ndarray], strategy: str
) -> None:
    y, p = predictions
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy=strategy)
    table = m.calibration_table(y, p, n_bins=10, strategy=strategy)
    np.testing.assert_allclose(table["observed_rate"], prob_true, atol=1e-12)
    np.testing.assert_allclose(table["mean_predicted"], prob_pred, atol=1e-12)
    assert table["n"].sum() == y.size


def test_report_holds_the_standard_set_matching_sklearn(predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = predictions
    report = m.binary_classification_report(y, p)
    assert set(report) == {"auc", "auc_low_95", "auc_high_95", "pr_auc", "gini", "ks", "lift_10", "capture_10",
                           "brier", "base_rate", "n"}
    assert report["auc"] == pytest.approx(roc_auc_score(y, p))
    assert (report["auc_low_95"], report["auc_high_95"]) == pytest.approx(m.roc_auc_ci(y, p)[2:4])
    assert report["pr_auc"] == pytest.approx(average_precision_score(y, p))
    assert report["brier"] == pytest.approx(brier_score_loss(y, p))
    assert report["base_rate"] == pytest.approx(y.mean())
    assert report["n"] == y.size
    assert report["lift_10"] > 1.0  # the score is informative by construction


# ----------------------------------------------------------------------------------------- hand-computed
def test_auc_interval_small_case_by_hand() -> None:
    # Positives 0.9, 0.4; negatives 0.5, 0.1. 0.9 outranks both negatives, 0.4 only 0.1: V10 = [1, 0.5];
    # 0.5 is outranked by one of two positives, 0.1 by both: V01 = [0.5, 1]. AUC 3/4,
    # var = var([1, .5]) / 2 + var([.5, 1]) / 2 = 0.125 / 2 + 0.125 / 2 = 0.125.
    ci = m.roc_auc_ci([1, 0, 1, 0], [0.9, 0.5, 0.4, 0.1], level=0.95)
    assert ci.auc == pytest.approx(0.75)
    assert ci.se == pytest.approx(math.sqrt(0.125))
    assert ci.low == pytest.approx(0.75 - 1.959964 * math.sqrt(0.125), abs=1e-6)
    assert ci.high == 1.0  # clipped


def test_auc_interval_agrees_with_sklearn_and_the_bootstrap(predictions: tuple[np.ndarray, np.ndarray]) -> None:
    y, p = predictions
    ci = m.roc_auc_ci(y, p)
    assert ci.auc == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    rng = np.random.default_rng(11)
    boot = []
    for _ in range(1_000):
        rows = rng.integers(0, y.size, y.size)
        boot.append(roc_auc_score(y[rows], p[rows]))
    assert ci.se == pytest.approx(np.std(boot, ddof=1), rel=0.1)
    assert ci.low < ci.auc < ci.high
    assert m.roc_auc_ci(y, p, level=0.99).high > ci.high


def test_ks_small_case_by_hand() -> None:
    # thresholds 0.9, 0.8, 0.7, 0.6: TPR-FPR = 1/3, 2/3, 2/3-1/3, 1-1/3 -> max 2/3
    y = [1, 1, 0, 1, 0, 0]
    p = [0.9, 0.8, 0.7, 0.6, 0.3, 0.1]
    assert m.ks(y, p) == pytest.approx(2 / 3)


def test_ks_treats_tied_scores_as_one_threshold() -> None:
    # Rows with score 0.5 are admitted together: TPR 1, FPR 1/3 -> 2/3 (a row-by-row walk would say 1).
    assert m.ks([1, 0, 0, 0], [0.5, 0.5, 0.1, 0.1]) == pytest.approx(2 / 3)


def test_lift_and_capture_small_case_by_hand() -> None:
    p = np.arange(20) / 20
    y = np.zeros(20, dtype=int)
    y[[19, 10, 5, 0]] = 1  # 4 positives; the top 10% (2 rows: 19, 18) holds one of them
    assert m.capture_at(y, p, 0.1) == pytest.approx(1 / 4)
    assert m.lift_at(y, p, 0.1) == pytest.approx((1 / 2) / (4 / 20))


def test_lift_does_not_depend_on_row_order_when_scores_tie() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(200) < 0.3).astype(int)
    p = np.round(rng.random(200), 1)  # heavy ties at every cut-off
    order = rng.permutation(200)
    assert m.lift_at(y, p) == pytest.approx(m.lift_at(y[order], p[order]))
    # all scores equal: the top 10% holds the base rate, lift exactly 1
    assert m.lift_at(y, np.full(200, 0.5)) == pytest.approx(1.0)


def test_psi_small_case_by_hand() -> None:
    expected = np.arange(1, 11)  # quantile bins at the median 5.5: (-inf, 5.5], (5.5, inf): shares .5, .5
    actual = [1, 1, 1, 2, 2, 2, 9, 10]  # shares .75, .25
    result = m.psi(expected, actual, bins=2)
    by_hand = (0.75 - 0.5) * math.log(0.75 / 0.5) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert result.value == pytest.approx(by_hand)
    assert float(result) == pytest.approx(0.25 * math.log(3))
    assert result.table["upper"].iloc[0] == pytest.approx(5.5)  # the bins are stated
    assert result.table["contribution"].sum() == pytest.approx(result.value)


def test_psi_empty_bin_uses_documented_epsilon() -> None:
    result = m.psi(np.arange(1, 11), [1, 2, 3], bins=2)  # nothing in the upper bin
    eps = m.PSI_EPSILON
    by_hand = (1.0 - 0.5) * math.log(1.0 / 0.5) + (eps - 0.5) * math.log(eps / 0.5)
    assert result.value == pytest.approx(by_hand)


def test_psi_counts_values_outside_the_expected_range_and_missing() -> None:
    result = m.psi(np.arange(1, 11), [-100.0, 1_000.0, np.nan, 3.0], bins=2)
    table = result.table.set_index("bin")
    assert table["actual_n"].sum() == 4
    assert table.loc[m.MISSING_BIN, "actual_n"] == 1
    assert table.loc[m.MISSING_BIN, "expected_n"] == 0


def test_psi_is_zero_for_the_same_population_and_grows_with_shift() -> None:
    rng = np.random.default_rng(11)
    base = rng.normal(size=5_000)
    assert m.psi(base, base).value == pytest.approx(0.0, abs=1e-12)
    small = m.psi(base, rng.normal(0.1, 1, size=5_000)).value
    large = m.psi(base, rng.normal(1.0, 1, size=5_000)).value
    assert small < 0.1 < 0.25 < large


def test_categorical_psi_small_case_by_hand() -> None:
    result = m.psi_categorical(["a", "a", "b", "b"], ["a", "b", "b", "b"])
    assert result.value == pytest.approx(0.25 * math.log(0.5 / 0.25) + 0.25 * math.log(0.75 / 0.5))


def test_psi_table_ranks_the_shifted_columns_first() -> None:
    rng = np.random.default_rng(5)
    n = 2_000
    train = pd.DataFrame(
        {
            "stable": rng.normal(size=n),
            "shifted": rng.normal(size=n),
            "city": pd.Series(rng.choice(["a", "b", "c"], size=n, p=[0.6, 0.3, 0.1]), dtype="str"),
        }
    )
    oot = pd.DataFrame(
        {
            "stable": rng.normal(size=n),
            "shifted": rng.normal(1.5, 1, size=n),
            "city": pd.Series(rng.choice(["a", "b", "c"], size=n, p=[0.2, 0.3, 0.5]), dtype="str"),
        }
    )
    table = m.psi_table(train, oot)
    assert set(table["column"][:2]) == {"shifted", "city"}
    assert table["column"].iloc[-1] == "stable"
    assert dict(zip(table["column"], table["kind"], strict=True))["city"] == "categorical"
    assert table.set_index("column").loc["city", "psi"] == pytest.approx(
        m.psi_categorical(train["city"], oot["city"]).value
    )


# --------------------------------------------------------------------------------------- decile and HL
def test_decile_table_against_an_independent_grouping() -> None:
    rng = np.random.default_rng(2)
    p = rng.random(1_000)  # no ties: deciles are exact tenths
    y = (rng.random(1_000) < p).astype(int)
    table = m.decile_table(y, p)
    decile = pd.qcut(pd.Series(-p).rank(method="first"), 10, labels=range(1, 11)).astype(int)
    expected = pd.Series(y).groupby(decile.to_numpy()).agg(["size", "sum"])
    np.testing.assert_array_equal(table["n"], expected["size"])
    np.testing.assert_array_equal(table["positives"], expected["sum"])
    assert table["cum_capture"].iloc[-1] == pytest.approx(1.0)
    assert (table["min_score"].to_numpy()[:-1] > table["max_score"].to_numpy()[1:]).all()  # decile 1 = top
    assert table["lift"].iloc[0] == pytest.approx(m.lift_at(y, p, 0.1))


def test_decile_table_never_splits_tied_scores() -> None:
    rng = np.random.default_rng(4)
    p = np.round(rng.random(500), 1)
    y = (rng.random(500) < 0.2).astype(int)
    table = m.decile_table(y, p)
    assert table["n"].sum() == 500
    # each score value belongs to exactly one decile: ranges of consecutive deciles do not overlap
    assert (table["min_score"].to_numpy()[:-1] > table["max_score"].to_numpy()[1:]).all()


def test_hosmer_lemeshow_matches_the_textbook_formula() -> None:
    rng = np.random.default_rng(8)
    p = rng.uniform(0.05, 0.6, size=400)
    y = (rng.random(400) < p).astype(int)
    group = pd.qcut(p, 10, labels=False)
    frame = (
        pd.DataFrame({"y": y, "p": p, "g": group})
        .groupby("g")
        .agg(obs=("y", "sum"), exp=("p", "sum"), n=("y", "size"))
    )
    by_hand = (((frame.obs - frame.exp) ** 2) / (frame.exp * (1 - frame.exp / frame.n))).sum()
    statistic, p_value = m.hosmer_lemeshow(y, p)
    assert statistic == pytest.approx(by_hand)
    assert p_value == pytest.approx(stats.chi2.sf(by_hand, 8))


def test_hosmer_lemeshow_flags_a_miscalibrated_model() -> None:
    rng = np.random.default_rng(9)
    p = rng.uniform(0.05, 0.6, size=3_000)
    y = (rng.random(p.size) < p).astype(int)
    assert m.hosmer_lemeshow(y, p).p_value > 0.01
    assert m.hosmer_lemeshow(y, p / 2).p_value < 1e-6


# ---------------------------------------------------------------------------------------------- bad input
def test_length_mismatch_is_refused() -> None:
    with pytest.raises(ValueError, match="length mismatch: y has 3 rows, p has 2"):
        m.roc_auc([0, 1, 1], [0.1, 0.2])


def test_single_class_is_refused_for_auc() -> None:
    with pytest.raises(ValueError, match="single class"):
        m.roc_auc([1, 1, 1], [0.1, 0.2, 0.3])


def test_nan_scores_are_refused_with_their_rows() -> None:
    with pytest.raises(ValueError, match=r"2 missing or infinite scores \(first rows \[1, 3\]\)"):
        m.ks([0, 1, 0, 1], [0.1, np.nan, 0.3, np.nan])


def test_labels_other_than_0_1_are_refused() -> None:
    with pytest.raises(ValueError, match="only 0/1 labels"):
        m.pr_auc([0, 2, 1], [0.1, 0.2, 0.3])


def test_probabilities_outside_0_1_are_refused_for_brier() -> None:
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        m.brier([0, 1], [0.2, 1.3])
