"""Validation metrics a bank's model reviewers expect for a binary score (DESIGN.md, "Metrics").

Every function takes ``y`` (0/1 labels, or booleans) and ``p`` (the model's score, one per row) as array-likes
and works on whole arrays at once. Scores only need to be ordered for the ranking metrics (AUC, Gini, KS, lift,
capture, deciles); Brier, the calibration table and Hosmer-Lemeshow need probabilities in [0, 1].

Bad input fails with a ``ValueError`` that says what is wrong and where: different lengths, labels other than
0/1, missing or infinite scores (with the first offending row positions), a single class where the metric needs
both.

Where scikit-learn has the metric, the result equals sklearn's on the same predictions (tests check it):
``roc_auc`` = ``roc_auc_score``, ``pr_auc`` = ``average_precision_score``, ``brier`` = ``brier_score_loss``,
``calibration_table`` matches ``calibration_curve``; ``ks`` equals ``scipy.stats.ks_2samp`` between the two
classes' scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

#: Share given to a PSI bin that is empty on one side, so the log ratio stays finite. With 1e-4, a bin holding
#: 10% of one population and nothing of the other contributes 0.1 * ln(0.1 / 1e-4) = 0.69 (a clear shift).
PSI_EPSILON = 1e-4
MISSING_BIN = "missing"


# ----------------------------------------------------------------------------------------------- validation
def _as_labels(y: object, name: str = "y") -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must hold 0/1 labels, got dtype {arr.dtype}")
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"{name} must hold only 0/1 labels: {rows.size} rows hold other values "
            f"(first rows {rows[:5].tolist()}, values {np.unique(arr[bad])[:5].tolist()})"
        )
    return arr.astype(np.int8)


def _as_scores(p: object, name: str = "p") -> np.ndarray:
    arr = np.asarray(p)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"{name} has {rows.size} missing or infinite scores (first rows {rows[:5].tolist()})"
        )
    return arr


def _check_binary(
    y: object, p: object, *, both_classes: bool = True, probabilities: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Validated (labels, scores) as arrays; see the module docstring for what is refused."""
    labels = _as_labels(y)
    scores = _as_scores(p)
    if labels.shape[0] != scores.shape[0]:
        raise ValueError(f"length mismatch: y has {labels.shape[0]} rows, p has {scores.shape[0]}")
    if labels.shape[0] == 0:
        raise ValueError("y and p are empty")
    if both_classes:
        n_pos = int(labels.sum())
        if n_pos == 0 or n_pos == labels.shape[0]:
            only = "1 (positive)" if n_pos else "0 (negative)"
            raise ValueError(f"y holds a single class (all {labels.shape[0]} rows are {only}); need both")
    if probabilities:
        out = (scores < 0.0) | (scores > 1.0)
        if out.any():
            rows = np.flatnonzero(out)
            raise ValueError(
                f"p must be probabilities in [0, 1]: {rows.size} rows are outside (first rows {rows[:5].tolist()})"
            )
    return labels, scores


def _check_fraction(fraction: float) -> None:
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")


# --------------------------------------------------------------------------------------------- ranking metrics
def _roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative (true positives, false positives) at each distinct threshold, highest score first."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    tps = np.cumsum(labels[order], dtype=np.int64)
    # The last row of each run of tied scores: a threshold admits all tied rows together.
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores)), sorted_scores.size - 1]
    tp = tps[last_of_tie]
    fp = last_of_tie + 1 - tp
    return tp, fp


def roc_auc(y: object, p: object) -> float:
    """Area under the ROC curve: the chance a random positive scores above a random negative (ties count half)."""
    labels, scores = _check_binary(y, p)
    ranks = stats.rankdata(scores, method="average")
    n_pos = int(labels.sum())
    n_neg = labels.size - n_pos
    rank_sum = float(ranks[labels == 1].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)


class AUCInterval(NamedTuple):
    auc: float
    se: float
    low: float
    high: float
    level: float


def _delong_components(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's structural components with midranks (Sun & Xu 2014): V10 per positive, V01 per negative.

    V10 is each positive's share of negatives it outranks, V01 each negative's share of positives outranking it;
    the AUC is the mean of either.
    """
    pos, neg = scores[labels == 1], scores[labels == 0]
    n_pos, n_neg = pos.size, neg.size
    combined = stats.rankdata(np.r_[pos, neg], method="average")
    v10 = (combined[:n_pos] - stats.rankdata(pos, method="average")) / n_neg
    v01 = 1.0 - (combined[n_pos:] - stats.rankdata(neg, method="average")) / n_pos
    return v10, v01


def _z(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return float(stats.norm.ppf(0.5 + level / 2.0))


def roc_auc_ci(y: object, p: object, level: float = 0.95) -> AUCInterval:
    """ROC AUC with DeLong's standard error and a normal confidence interval (clipped to [0, 1]).

    DeLong, DeLong & Clarke-Pearson (1988): var(AUC) = var(V10) / n_pos + var(V01) / n_neg. The interval is the
    sampling uncertainty of the rows scored, with the scores held fixed: how far the AUC on these customers may
    sit from the AUC on the population.
    """
    z = _z(level)
    labels, scores = _check_binary(y, p)
    v10, v01 = _delong_components(labels, scores)
    n_pos, n_neg = v10.size, v01.size
    auc = float(v10.mean())
    var = (v10.var(ddof=1) if n_pos > 1 else 0.0) / n_pos + (v01.var(ddof=1) if n_neg > 1 else 0.0) / n_neg
    se = float(np.sqrt(var))
    return AUCInterval(auc, se, max(0.0, auc - z * se), min(1.0, auc + z * se), level)


def roc_auc_difference_ci(y: object, p_a: object, p_b: object, level: float = 0.95) -> AUCInterval:
    """AUC(p_a) - AUC(p_b) on the same rows, with the paired DeLong interval (the two AUCs' covariance).

    The estimate is in ``auc`` of the returned interval; an interval wholly above 0 says p_a ranks these rows
    better than p_b beyond sampling noise.
    """
    z = _z(level)
    labels, a = _check_binary(y, p_a)
    _, b = _check_binary(y, p_b)
    a10, a01 = _delong_components(labels, a)
    b10, b01 = _delong_components(labels, b)
    d10, d01 = a10 - b10, a01 - b01
    diff = float(d10.mean())
    var = (d10.var(ddof=1) if d10.size > 1 else 0.0) / d10.size + (d01.var(ddof=1) if d01.size > 1 else 0.0) / d01.size
    se = float(np.sqrt(var))
    return AUCInterval(diff, se, diff - z * se, diff + z * se, level)


def gini(y: object, p: object) -> float:
    """Gini coefficient (accuracy ratio) = 2 * AUC - 1."""
    return 2.0 * roc_auc(y, p) - 1.0


def pr_auc(y: object, p: object) -> float:
    """Area under the precision-recall curve as average precision (sklearn's step-wise definition, no interpolation)."""
    labels, scores = _check_binary(y, p)
    tp, fp = _roc_points(labels, scores)
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def ks(y: object, p: object) -> float:
    """Kolmogorov-Smirnov statistic: the largest gap |TPR - FPR| over all score thresholds.

    Equal to the two-sample KS distance between the score distributions of positives and negatives.
    """
    labels, scores = _check_binary(y, p)
    tp, fp = _roc_points(labels, scores)
    gap = np.abs(tp / tp[-1] - fp / fp[-1])
    return float(gap.max())


def _positives_in_top(labels: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Expected positives among the k highest scores, tied scores at the cut-off sharing it pro rata.

    With ties straddling the cut-off any choice among the tied rows is arbitrary; counting them pro rata (the
    expectation over random tie-breaks) makes the result independent of row order.
    """
    threshold = np.sort(scores)[::-1][k - 1]
    above = scores > threshold
    tied = scores == threshold
    n_above = int(above.sum())
    tied_pos = float(labels[tied].sum())
    return float(labels[above].sum()) + (k - n_above) * tied_pos / int(tied.sum())


def _top_k(n: int, fraction: float) -> int:
    return max(1, int(np.floor(fraction * n + 0.5)))


def capture_at(y: object, p: object, fraction: float = 0.1) -> float:
    """Share of all positives found in the top ``fraction`` of scores (the top k = round(fraction * n) rows)."""
    _check_fraction(fraction)
    labels, scores = _check_binary(y, p, both_classes=False)
    n_pos = int(labels.sum())
    if n_pos == 0:
        raise ValueError("capture is undefined: y has no positives")
    return _positives_in_top(labels, scores, _top_k(labels.size, fraction)) / n_pos


def lift_at(y: object, p: object, fraction: float = 0.1) -> float:
    """Positive rate in the top ``fraction`` of scores divided by the overall positive rate."""
    _check_fraction(fraction)
    labels, scores = _check_binary(y, p, both_classes=False)
    n_pos = int(labels.sum())
    if n_pos == 0:
        raise ValueError("lift is undefined: y has no positives")
    k = _top_k(labels.size, fraction)
    return (_positives_in_top(labels, scores, k) / k) / (n_pos / labels.size)


def _rank_groups(scores: np.ndarray, n_groups: int) -> np.ndarray:
    """Group 1..n_groups by descending score rank (group 1 = highest scores); tied scores share a group.

    Groups come from the average rank, so they are equal-sized up to ties and never split a tie.
    """
    ranks = stats.rankdata(-scores, method="average")
    return np.clip(np.ceil(ranks * n_groups / scores.size), 1, n_groups).astype(np.int64)


def decile_table(y: object, p: object, n: int = 10) -> pd.DataFrame:
    """Lift table by score group (decile 1 = highest scores).

    Columns: decile, n, positives, rate (positive rate in the group), lift (rate / overall rate), cum_positives,
    cum_capture (share of all positives in this and higher groups), min_score, max_score. Groups come from the
    rank of the score, equal-sized up to ties; tied scores are never split, so a group can be empty and is then
    left out.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    labels, scores = _check_binary(y, p, both_classes=False)
    n_pos = int(labels.sum())
    if n_pos == 0:
        raise ValueError("decile table is undefined: y has no positives")
    group = _rank_groups(scores, n)
    size = np.bincount(group, minlength=n + 1)[1:]
    positives = np.bincount(group, weights=labels, minlength=n + 1)[1:]
    lo = np.full(n + 1, np.inf)
    hi = np.full(n + 1, -np.inf)
    np.minimum.at(lo, group, scores)
    np.maximum.at(hi, group, scores)
    keep = size > 0
    size, positives = size[keep], positives[keep]
    rate = positives / size
    cum_pos = np.cumsum(positives)
    return pd.DataFrame(
        {
            "decile": np.arange(1, n + 1)[keep],
            "n": size.astype(np.int64),
            "positives": positives.astype(np.int64),
            "rate": rate,
            "lift": rate / (n_pos / labels.size),
            "cum_positives": cum_pos.astype(np.int64),
            "cum_capture": cum_pos / n_pos,
            "min_score": lo[1:][keep],
            "max_score": hi[1:][keep],
        }
    )


# ------------------------------------------------------------------------------------------------ calibration
def brier(y: object, p: object) -> float:
    """Brier score: mean squared difference between the predicted probability and the 0/1 outcome."""
    labels, scores = _check_binary(y, p, both_classes=False, probabilities=True)
    return float(np.mean((scores - labels) ** 2))


def calibration_table(
    y: object, p: object, n_bins: int = 10, strategy: Literal["quantile", "uniform"] = "quantile"
) -> pd.DataFrame:
    """Reliability table: mean predicted probability against the observed positive rate, per probability bin.

    ``strategy="uniform"`` cuts [0, 1] into equal-width bins; ``"quantile"`` cuts at the quantiles of ``p`` (bins
    of equal count up to ties). Bins are closed on the right except the first, as sklearn's
    ``calibration_curve``; empty bins are left out. Columns: bin (0-based), lower, upper, n, mean_predicted,
    observed_rate, positives.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be at least 1, got {n_bins}")
    labels, scores = _check_binary(y, p, both_classes=False, probabilities=True)
    if strategy == "quantile":
        edges = np.percentile(scores, np.linspace(0.0, 100.0, n_bins + 1))
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    bin_id = np.searchsorted(edges[1:-1], scores)
    size = np.bincount(bin_id, minlength=n_bins)
    pred_sum = np.bincount(bin_id, weights=scores, minlength=n_bins)
    positives = np.bincount(bin_id, weights=labels, minlength=n_bins)
    keep = size > 0
    return pd.DataFrame(
        {
            "bin": np.arange(n_bins)[keep],
            "lower": edges[:-1][keep],
            "upper": edges[1:][keep],
            "n": size[keep].astype(np.int64),
            "mean_predicted": pred_sum[keep] / size[keep],
            "observed_rate": positives[keep] / size[keep],
            "positives": positives[keep].astype(np.int64),
        }
    )


class HosmerLemeshow(NamedTuple):
    """Hosmer-Lemeshow goodness-of-fit test result (unpacks as ``statistic, p_value``)."""

    statistic: float
    p_value: float


def hosmer_lemeshow(y: object, p: object, groups: int = 10) -> HosmerLemeshow:
    """Hosmer-Lemeshow test: are observed positives per risk group consistent with the predicted probabilities?

    Rows are grouped by rank of ``p`` (as in :func:`decile_table`, ties never split); the statistic is
    sum over groups of (observed - expected)^2 / (expected * (1 - expected / n_group)), compared with a
    chi-squared distribution on (non-empty groups - 2) degrees of freedom. A small p-value means poor
    calibration. A group whose predictions are all exactly 0 or 1 adds nothing if it matches and makes the
    statistic infinite if it does not.
    """
    if groups < 3:
        raise ValueError(f"groups must be at least 3 (degrees of freedom = groups - 2), got {groups}")
    labels, scores = _check_binary(y, p, both_classes=False, probabilities=True)
    group = _rank_groups(scores, groups)
    size = np.bincount(group, minlength=groups + 1)[1:]
    observed = np.bincount(group, weights=labels, minlength=groups + 1)[1:]
    expected = np.bincount(group, weights=scores, minlength=groups + 1)[1:]
    keep = size > 0
    size, observed, expected = size[keep], observed[keep], expected[keep]
    variance = expected * (1.0 - expected / size)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(
            variance > 0, (observed - expected) ** 2 / variance, np.where(observed == expected, 0.0, np.inf)
        )
    dof = int(keep.sum()) - 2
    if dof < 1:
        raise ValueError(
            f"too few distinct scores for {groups} groups: only {int(keep.sum())} non-empty groups"
        )
    statistic = float(terms.sum())
    return HosmerLemeshow(statistic, float(stats.chi2.sf(statistic, dof)))


# ------------------------------------------------------------------------------------------------------- PSI
@dataclass(frozen=True)
class PSIResult:
    """Population stability index with the bins it was computed on.

    ``table`` has one row per bin: bin (label), lower, upper (numeric bins, closed on the right; the first and
    last are open-ended), expected_n, actual_n, expected_share, actual_share, contribution; the contributions
    sum to ``value``. ``float(result)`` is the PSI.
    """

    value: float
    table: pd.DataFrame
    method: str
    epsilon: float

    def __float__(self) -> float:
        return self.value


def _psi_from_counts(
    labels: Sequence[str], expected_n: np.ndarray, actual_n: np.ndarray, epsilon: float
) -> tuple[float, pd.DataFrame]:
    expected_share = expected_n / expected_n.sum()
    actual_share = actual_n / actual_n.sum()
    e = np.maximum(expected_share, epsilon)
    a = np.maximum(actual_share, epsilon)
    contribution = (a - e) * np.log(a / e)
    table = pd.DataFrame(
        {
            "bin": list(labels),
            "expected_n": expected_n.astype(np.int64),
            "actual_n": actual_n.astype(np.int64),
            "expected_share": expected_share,
            "actual_share": actual_share,
            "contribution": contribution,
        }
    )
    return float(contribution.sum()), table


def psi(
    expected: object,
    actual: object,
    bins: int = 10,
    method: Literal["quantile", "uniform"] = "quantile",
    epsilon: float = PSI_EPSILON,
) -> PSIResult:
    """Population stability index of a numeric variable: sum over bins of (a - e) * ln(a / e).

    ``e`` and ``a`` are the shares of the expected (reference, e.g. training) and actual (e.g. out-of-time or
    scoring) populations per bin. Bins come from ``expected`` only: its quantiles (``method="quantile"``,
    duplicate edges from ties merged, so there may be fewer than ``bins``) or equal widths between its min and
    max (``"uniform"``). Bins are closed on the right, and the outer bins are open-ended so actual values outside
    the expected range still count. Missing values (NaN) form their own bin, present when either side has any.
    A share of zero is raised to ``epsilon`` (see :data:`PSI_EPSILON`). Rule of thumb: < 0.1 stable, 0.1-0.25 a
    moderate shift, > 0.25 a major shift.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    if not 0.0 < epsilon < 1.0:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    exp = _as_numeric_with_nan(expected, "expected")
    act = _as_numeric_with_nan(actual, "actual")
    exp_present = exp[~np.isnan(exp)]
    if exp_present.size == 0:
        raise ValueError("expected has no non-missing values to take bins from")
    if method == "quantile":
        edges = np.unique(np.quantile(exp_present, np.linspace(0.0, 1.0, bins + 1)))
    elif method == "uniform":
        edges = np.unique(np.linspace(exp_present.min(), exp_present.max(), bins + 1))
    else:
        raise ValueError(f"method must be 'quantile' or 'uniform', got {method!r}")
    inner = edges[1:-1]
    n_value_bins = inner.size + 1
    lower = np.r_[-np.inf, inner]
    upper = np.r_[inner, np.inf]

    def counts(values: np.ndarray) -> tuple[np.ndarray, int]:
        present = values[~np.isnan(values)]
        idx = np.searchsorted(inner, present, side="left")
        return np.bincount(idx, minlength=n_value_bins), int(values.size - present.size)

    exp_counts, exp_missing = counts(exp)
    act_counts, act_missing = counts(act)
    labels = [f"({lo:.6g}, {hi:.6g}]" for lo, hi in zip(lower, upper, strict=True)]
    if exp_missing or act_missing:
        exp_counts = np.r_[exp_counts, exp_missing]
        act_counts = np.r_[act_counts, act_missing]
        labels.append(MISSING_BIN)
        lower = np.r_[lower, np.nan]
        upper = np.r_[upper, np.nan]
    value, table = _psi_from_counts(labels, exp_counts, act_counts, epsilon)
    table.insert(1, "lower", lower)
    table.insert(2, "upper", upper)
    return PSIResult(value, table, method, epsilon)


def psi_categorical(expected: object, actual: object, epsilon: float = PSI_EPSILON) -> PSIResult:
    """PSI of a categorical variable: one bin per category seen on either side, plus one for missing values."""
    if not 0.0 < epsilon < 1.0:
        raise ValueError(f"epsilon must be in (0, 1), got {epsilon}")
    exp = pd.Series(np.asarray(expected, dtype=object)).astype("string").fillna(MISSING_BIN)
    act = pd.Series(np.asarray(actual, dtype=object)).astype("string").fillna(MISSING_BIN)
    if exp.empty or act.empty:
        raise ValueError("expected and actual must both be non-empty")
    exp_counts = exp.value_counts()
    act_counts = act.value_counts()
    categories = sorted(set(exp_counts.index) | set(act_counts.index))
    value, table = _psi_from_counts(
        categories,
        exp_counts.reindex(categories, fill_value=0).to_numpy(),
        act_counts.reindex(categories, fill_value=0).to_numpy(),
        epsilon,
    )
    return PSIResult(value, table, "categorical", epsilon)


def _as_numeric_with_nan(values: object, name: str) -> np.ndarray:
    arr = np.asarray(pd.to_numeric(pd.Series(values), errors="raise"), dtype=np.float64)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if np.isinf(arr).any():
        raise ValueError(f"{name} has {int(np.isinf(arr).sum())} infinite values")
    return arr


def psi_table(
    expected: pd.DataFrame,
    actual: pd.DataFrame,
    columns: Iterable[str] | None = None,
    bins: int = 10,
    method: Literal["quantile", "uniform"] = "quantile",
    epsilon: float = PSI_EPSILON,
) -> pd.DataFrame:
    """PSI of several columns between two populations, largest shift first.

    Numeric columns (bool excluded) use :func:`psi` with bins from ``expected``; every other column (str,
    category, bool) uses :func:`psi_categorical`. ``columns`` defaults to the columns the two frames share.
    Columns: column, kind (numeric/categorical), psi, n_bins.
    """
    if columns is None:
        columns = [c for c in expected.columns if c in actual.columns]
    columns = list(columns)
    missing = {
        name: sorted(set(columns) - set(frame.columns))
        for name, frame in (("expected", expected), ("actual", actual))
        if set(columns) - set(frame.columns)
    }
    if missing:
        raise ValueError(f"columns missing from the frames: {missing}")
    rows = []
    for column in columns:  # one pass per column, vectorised inside
        series = expected[column]
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        if numeric:
            result = psi(
                series.to_numpy(dtype=np.float64, na_value=np.nan),
                actual[column].to_numpy(dtype=np.float64, na_value=np.nan),
                bins,
                method,
                epsilon,
            )
        else:
            result = psi_categorical(series, actual[column], epsilon)
        rows.append(
            {
                "column": column,
                "kind": "numeric" if numeric else "categorical",
                "psi": result.value,
                "n_bins": len(result.table),
            }
        )
    table = pd.DataFrame(rows, columns=["column", "kind", "psi", "n_bins"])
    return table.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ the report
def binary_classification_report(y: object, p: object, top_fraction: float = 0.1) -> dict[str, float]:
    """The standard metric set for one split, ready for ``log_metrics_by_split``.

    Keys: auc, auc_low_95 and auc_high_95 (DeLong 95% interval, :func:`roc_auc_ci`), pr_auc, gini, ks,
    lift_<pct>, capture_<pct> (pct = top_fraction in percent, 10 by default), brier, base_rate, n. ``p`` must be
    probabilities (Brier needs them) and ``y`` must hold both classes.
    """
    labels, scores = _check_binary(y, p, probabilities=True)
    pct = round(top_fraction * 100)
    interval = roc_auc_ci(labels, scores, level=0.95)
    auc = interval.auc
    return {
        "auc": auc,
        "auc_low_95": interval.low,
        "auc_high_95": interval.high,
        "pr_auc": pr_auc(labels, scores),
        "gini": 2.0 * auc - 1.0,
        "ks": ks(labels, scores),
        f"lift_{pct}": lift_at(labels, scores, top_fraction),
        f"capture_{pct}": capture_at(labels, scores, top_fraction),
        "brier": brier(labels, scores),
        "base_rate": float(labels.mean()),
        "n": float(labels.size),
    }
