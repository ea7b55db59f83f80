"""Propensity models (churn, conversion, upgrade): a calibrated LightGBM binary classifier over the feature table.

:class:`PropensityModel` is a scikit-learn-style estimator. ``fit`` receives the *training-split* rows of a feature
table (one row per customer_id x as_of, the feature-table contract) with the target column; out-of-time evaluation
is the caller's job. Inside ``fit`` those rows are split three ways, stratified by the target and seeded:

- **fit** rows grow the trees;
- **val** rows drive early stopping (``lightgbm.early_stopping``) and record the per-iteration metric
  (``evals_result_``), which a tuner can feed to an Optuna pruner through ``callbacks``;
- **calibration** rows (disjoint from both) fit the map from the booster's raw margin to a probability.

Two settings stop these hold-outs from starving the trees on small data (on 8,000 training rows the default
split grows the trees on 60% of them): ``refit_on_val`` grows the final booster again, with the number of trees
early stopping chose, on fit + val rows; ``calibration_cv=K`` holds no calibration rows out but fits the
calibrator on cross-fitted margins (each row scored by a booster of the chosen size grown on the other K-1 inner
folds), up to ``calibration_cv_max_rows`` labelled rows; above that the hold-out is cheaper (K more boosters)
and costs little.

Class imbalance is handled by ``scale_pos_weight = negatives / positives`` (of the fit rows). Weighting inflates the
booster's own probabilities (its mean is near 0.5, not the base rate), so the calibrator fitted afterwards on
un-weighted held-out rows brings them back: ``predict_proba`` is the calibrated probability, ``predict_raw`` the
booster's margin. Isotonic regression is the estimator's default calibrator; with fewer than ``min_isotonic_rows`` (1000)
calibration rows it overfits its steps, so the model falls back to Platt scaling (a logistic fit on the margin)
and says so in ``calibration_method_`` and a warning.

Isotonic calibration is a step function: customers inside one step share a probability, so ranking metrics (AUC)
on ``predict_proba`` can be a little lower than on ``predict_raw``; Platt scaling is strictly increasing and ranks
exactly like the margin (the model configs use it). Rank on either, report probabilities from ``predict_proba``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, train_test_split
from sklearn.utils.validation import check_is_fitted

from bankseg.models.treeshap import TreeShapExplainer, UnsupportedBooster

log = logging.getLogger(__name__)

# Columns of the feature table that are never features: keys, the split marker, labels and other models' scores.
KEY_COLUMNS: tuple[str, ...] = ("customer_id", "as_of", "split")
RESERVED_PREFIXES: tuple[str, ...] = ("label_", "p_", "persona_")
BIAS_COLUMN = "bias"  # the expected raw margin, last column of contributions()

DEFAULT_PARAMS: dict[str, object] = {
    "objective": "binary",
    "metric": "auc",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "max_depth": 6,
    "min_data_in_leaf": 50,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "num_threads": 2,
    "verbose": -1,
    "deterministic": True,
    "force_col_wise": True,
}
# Boosting-length and early-stopping settings have their own arguments; a copy in params would silently win
# inside lgb.train (params take precedence there), so they are refused.
_LENGTH_ALIASES = frozenset(
    {
        "num_iterations", "num_iteration", "n_iter", "num_tree", "num_trees", "num_round", "num_rounds",
        "nrounds", "num_boost_round", "n_estimators", "max_iter", "early_stopping_round",
        "early_stopping_rounds", "early_stopping", "n_iter_no_change",
    }
)
_SEED_KEYS = ("seed", "bagging_seed", "feature_fraction_seed", "data_random_seed", "extra_seed", "objective_seed")
CALIBRATIONS = ("isotonic", "platt", None)
IMBALANCE = ("scale_pos_weight", "none")
CONTRIBUTION_METHODS = ("auto", "pattern_cache", "pred_contrib")


def select_feature_columns(frame: pd.DataFrame, exclude: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """The default (features, categorical) of a feature table, in frame order.

    Features are the numeric and boolean columns plus the text / category columns (pandas 3 ``str``, object,
    category), which become the categorical features. Never features: the keys (``customer_id``, ``as_of``,
    ``split``), any ``label_*``, ``p_*`` (other models' scores) or ``persona_*`` column, datetimes, and
    ``exclude``.
    """
    excluded = set(exclude) | set(KEY_COLUMNS)
    features: list[str] = []
    categorical: list[str] = []
    for col in frame.columns:
        if col in excluded or str(col).startswith(RESERVED_PREFIXES):
            continue
        dtype = frame[col].dtype
        if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype):
            features.append(col)
            categorical.append(col)
        elif pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
            features.append(col)
    return features, categorical


def cap_model_size(params: dict, size_cap: dict | None) -> dict:
    """A copy of LightGBM ``params`` with ``num_leaves`` and ``max_depth`` clipped to ``size_cap``.

    ``max_depth`` of -1 (unlimited) or above the cap becomes the cap. Keys of ``size_cap`` other than those two
    are refused, so a typo cannot pass unnoticed.
    """
    out = dict(params)
    if not size_cap:
        return out
    unknown = set(size_cap) - {"num_leaves", "max_depth"}
    if unknown:
        raise ValueError(f"size_cap accepts num_leaves and max_depth only, got {sorted(unknown)}")
    if size_cap.get("num_leaves") is not None:
        out["num_leaves"] = min(int(out.get("num_leaves", 31)), int(size_cap["num_leaves"]))
    if size_cap.get("max_depth") is not None:
        depth = int(out.get("max_depth", -1))
        cap = int(size_cap["max_depth"])
        out["max_depth"] = cap if depth <= 0 else min(depth, cap)
    return out


class PropensityModel(BaseEstimator):
    """Calibrated LightGBM propensity model for one binary target of the feature table.

    Parameters
    ----------
    target : the label column (``label_churn`` ...); 1 = event, 0 = no event, missing = out of scope.
    features, categorical : feature and categorical column lists; ``None`` picks them from the frame's dtypes
        (:func:`select_feature_columns`). A numeric column named in ``categorical`` is treated as categorical.
    exclude : columns never used as features (on top of keys, labels and scores).
    params : LightGBM params merged over :data:`DEFAULT_PARAMS`; the seeds come from ``random_state``.
    num_boost_round, early_stopping_rounds : the boosting cap and the patience on the val metric.
    val_fraction, calibration_fraction : shares of the training rows held out for early stopping and for the
        calibrator (``calibration=None`` holds nothing out for it).
    calibration : ``"isotonic"`` (Platt below ``min_isotonic_rows`` calibration rows), ``"platt"`` or ``None``.
    imbalance : ``"scale_pos_weight"`` (neg/pos of the fit rows, unless params set it) or ``"none"``.
    size_cap : ``{"num_leaves": n, "max_depth": d}`` upper bounds applied to params (tuned params included).
    refit_on_val : after early stopping, grow the final booster again on fit + val rows with ``best_iteration_``
        trees (the val rows then train the model too; ``evals_result_`` still describes the early-stopping run).
    calibration_cv : ``K`` (>= 2) fits the calibrator on out-of-fold margins of K stratified inner folds of all
        rows instead of a ``calibration_fraction`` hold-out; ``None`` keeps the hold-out.
    calibration_cv_max_rows : above this many labelled rows ``calibration_cv`` is ignored (the hold-out is used).

    Fitted state: ``booster_`` (truncated to ``best_iteration_`` trees), ``feature_names_``,
    ``categorical_features_``, ``categories_`` (column -> fixed category list learned at fit; unseen values
    become missing at predict), ``calibrator_``, ``calibration_method_``, ``evals_result_``
    (``{"val": {metric: [value per iteration]}}``), ``n_dropped_`` (rows without a target), ``n_rows_``
    (rows per disjoint internal split: fit, val, calibration hold-out), ``n_tree_rows_`` (rows the final trees grew
    on), ``n_calibration_rows_`` (rows whose margins fitted the calibrator), ``cross_fitted_``, ``base_rate_``,
    ``scale_pos_weight_``, ``params_`` (what LightGBM was given).
    """

    def __init__(
        self,
        target: str,
        features: list[str] | None = None,
        categorical: list[str] | None = None,
        exclude: Sequence[str] = (),
        params: dict | None = None,
        num_boost_round: int = 2000,
        early_stopping_rounds: int = 100,
        val_fraction: float = 0.2,
        calibration: str | None = "isotonic",
        calibration_fraction: float = 0.2,
        imbalance: str = "scale_pos_weight",
        random_state: int = 0,
        min_isotonic_rows: int = 1000,
        size_cap: dict | None = None,
        refit_on_val: bool = False,
        calibration_cv: int | None = None,
        calibration_cv_max_rows: int | None = None,
    ):
        self.target = target
        self.features = features
        self.categorical = categorical
        self.exclude = exclude
        self.params = params
        self.num_boost_round = num_boost_round
        self.early_stopping_rounds = early_stopping_rounds
        self.val_fraction = val_fraction
        self.calibration = calibration
        self.calibration_fraction = calibration_fraction
        self.imbalance = imbalance
        self.random_state = random_state
        self.min_isotonic_rows = min_isotonic_rows
        self.size_cap = size_cap
        self.refit_on_val = refit_on_val
        self.calibration_cv = calibration_cv
        self.calibration_cv_max_rows = calibration_cv_max_rows

    # ------------------------------------------------------------------ fit
    def fit(self, frame: pd.DataFrame, callbacks: list[Callable] | None = None) -> PropensityModel:
        """Fit booster and calibrator on ``frame`` (training-split rows with features and the target).

        Rows whose target is missing are dropped and counted in ``n_dropped_`` (and logged). ``callbacks`` are
        passed to ``lgb.train`` after early stopping and the metric recorder, e.g.
        :func:`make_pruning_callback`; an ``optuna.TrialPruned`` they raise propagates to the caller.
        """
        self._check_settings()
        X, y = self._labelled_design(frame)
        self.cross_fitted_ = self._cross_fits(len(y))
        idx_fit, idx_val, idx_cal = self._split_indices(y)
        self.n_rows_ = {"fit": len(idx_fit), "val": len(idx_val), "calibration": len(idx_cal)}
        self.base_rate_ = float(y.mean())
        y_fit = y[idx_fit]
        params = self._booster_params(y_fit)

        train_set = self._dataset(X.iloc[idx_fit], y_fit)
        val_set = self._dataset(X.iloc[idx_val], y[idx_val], reference=train_set)
        evals: dict = {}
        all_callbacks = [
            lgb.early_stopping(self.early_stopping_rounds, first_metric_only=True, verbose=False),
            lgb.record_evaluation(evals),
            *(callbacks or []),
        ]
        booster = lgb.train(
            params,
            train_set,
            num_boost_round=self.num_boost_round,
            valid_sets=[val_set],
            valid_names=["val"],
            callbacks=all_callbacks,
        )
        best = booster.best_iteration if booster.best_iteration > 0 else booster.num_trees()
        self.best_iteration_ = int(best)
        self.evals_result_ = evals
        if self.refit_on_val:
            # The val rows have done their job (choosing the number of trees); growing that many trees again on
            # fit + val rows lets the final model learn from them too.
            idx_grow = np.sort(np.concatenate([idx_fit, idx_val]))
            self.booster_ = self._grow(params, X.iloc[idx_grow], y[idx_grow], self.best_iteration_)
        else:
            idx_grow = idx_fit
            # Keep only the trees early stopping chose: a smaller model to store and cheaper SHAP contributions.
            self.booster_ = lgb.Booster(model_str=booster.model_to_string(num_iteration=self.best_iteration_))
        self.n_tree_rows_ = len(idx_grow)

        self.calibrator_ = None
        self.calibration_method_ = None
        self.n_calibration_rows_ = 0
        if self.calibration is not None:
            if self.cross_fitted_:
                margin, y_cal = self._cross_fitted_margins(params, X, y), y
            else:
                margin, y_cal = self.booster_.predict(X.iloc[idx_cal], raw_score=True), y[idx_cal]
            self.n_calibration_rows_ = len(y_cal)
            self._fit_calibrator(margin, y_cal)
        return self

    def cross_validate(
        self, frame: pd.DataFrame, n_folds: int = 5, callbacks: list[Callable] | None = None
    ) -> CrossValidation:
        """The booster's mean AUC (the first metric) over ``n_folds`` stratified folds of ``frame``, per round.

        A steadier measure of a parameter set than one val split (a tuner's objective on small data): each fold's
        booster grows on the other folds, early stopping watches the mean curve, and nothing is calibrated or
        kept. ``callbacks`` go to ``lgb.cv``, whose evaluation results are named ``valid`` (a pruning callback
        needs ``valid_name="valid"``). Sets the same column state as ``fit`` (features, categories, params).
        """
        self._check_settings()
        X, y = self._labelled_design(frame)
        params = self._booster_params(y)
        metric = params["metric"]
        metric = str(metric[0] if isinstance(metric, list | tuple) else metric).split(",")[0].strip()
        folds = list(
            StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=self.random_state + 3).split(X, y)
        )
        data = self._dataset(X, y)
        result = lgb.cv(
            params,
            data,
            num_boost_round=self.num_boost_round,
            folds=folds,
            callbacks=[
                lgb.early_stopping(self.early_stopping_rounds, first_metric_only=True, verbose=False),
                *(callbacks or []),
            ],
        )
        curve = list(result[f"valid {metric}-mean"])
        best = int(np.argmax(curve)) if _higher_is_better(metric) else int(np.argmin(curve))
        return CrossValidation(metric=metric, score=float(curve[best]), rounds=best + 1, n_folds=n_folds, curve=curve)

    def _labelled_design(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
        """The design matrix and 0/1 target of the rows with a target; learns the columns and categories.

        Rows whose target is missing are dropped and counted in ``n_dropped_``.
        """
        if self.target not in frame.columns:
            raise ValueError(f"target column {self.target!r} is not in the frame")
        y_all = _target_array(frame[self.target], self.target)
        keep = ~np.isnan(y_all)
        self.n_dropped_ = int((~keep).sum())
        if self.n_dropped_:
            log.info("%s: dropped %d of %d rows with a missing target", self.target, self.n_dropped_, len(frame))
        rows = frame.loc[keep]
        y = y_all[keep].astype(np.int8)
        n_pos = int(y.sum())
        n_neg = len(y) - n_pos
        if n_pos < 10 or n_neg < 10:
            raise ValueError(
                f"{self.target}: need at least 10 rows of each class to split fit/val/calibration, "
                f"got {n_pos} positive and {n_neg} negative (of {len(y)} rows with a target)"
            )
        self.feature_names_, self.categorical_features_ = self._resolve_columns(rows)
        self.categories_ = {col: _learn_categories(rows[col]) for col in self.categorical_features_}
        return self._design_matrix(rows), y

    def _booster_params(self, y_fit: np.ndarray) -> dict:
        """LightGBM params: defaults, ``params``, the size cap, seeds and the class weight of ``y_fit``."""
        params = {**DEFAULT_PARAMS, **(self.params or {})}
        clash = sorted(_LENGTH_ALIASES & set(params))
        if clash:
            raise ValueError(
                f"params {clash} set the boosting length or early stopping; use num_boost_round and "
                "early_stopping_rounds instead"
            )
        params = cap_model_size(params, self.size_cap)
        for key in _SEED_KEYS:
            params.setdefault(key, self.random_state)
        if self.imbalance == "scale_pos_weight":
            params.setdefault("scale_pos_weight", float((y_fit == 0).sum() / max(int(y_fit.sum()), 1)))
        self.scale_pos_weight_ = float(params.get("scale_pos_weight", 1.0))
        self.params_ = params
        return params

    def _grow(self, params: dict, X: pd.DataFrame, y: np.ndarray, n_trees: int) -> lgb.Booster:
        """A booster of exactly ``n_trees`` trees grown on ``X``, ``y`` (no early stopping)."""
        return lgb.train(params, self._dataset(X, y), num_boost_round=n_trees)

    def _dataset(self, X: pd.DataFrame, y: np.ndarray, reference: lgb.Dataset | None = None) -> lgb.Dataset:
        """A LightGBM dataset of ``X``, ``y`` with the learned categorical columns (binned like ``reference``)."""
        return lgb.Dataset(X, label=y, categorical_feature=self.categorical_features_ or "auto",
                           reference=reference, free_raw_data=True)

    def _cross_fitted_margins(self, params: dict, X: pd.DataFrame, y: np.ndarray) -> np.ndarray:
        """Out-of-fold raw margins of every row: ``calibration_cv`` stratified inner folds (seeded), each scored by
        a booster of ``best_iteration_`` trees grown on the other folds, so every calibration margin comes from a
        model that never saw the row, and no row is withheld from the final trees."""
        margin = np.empty(len(y), dtype=np.float64)
        folds = StratifiedKFold(n_splits=self.calibration_cv, shuffle=True, random_state=self.random_state + 2)
        for inner, held in folds.split(np.zeros(len(y)), y):
            booster = self._grow(params, X.iloc[inner], y[inner], self.best_iteration_)
            margin[held] = booster.predict(X.iloc[held], raw_score=True)
        return margin

    def _check_settings(self) -> None:
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")
        if self.imbalance not in IMBALANCE:
            raise ValueError(f"imbalance must be one of {IMBALANCE}, got {self.imbalance!r}")
        if self.calibration_cv is not None and (
            isinstance(self.calibration_cv, bool) or not isinstance(self.calibration_cv, int) or self.calibration_cv < 2
        ):
            raise ValueError(f"calibration_cv must be null or an integer of at least 2, got {self.calibration_cv!r}")
        if self.calibration_cv_max_rows is not None and int(self.calibration_cv_max_rows) < 1:
            raise ValueError(f"calibration_cv_max_rows must be null or positive, got {self.calibration_cv_max_rows!r}")
        cal = self.calibration_fraction if self.calibration is not None else 0.0
        if not (0 < self.val_fraction < 1 and 0 <= cal < 1 and self.val_fraction + cal < 0.9):
            raise ValueError(
                f"val_fraction ({self.val_fraction}) and calibration_fraction ({cal}) must be in (0, 1) and "
                "leave at least 10% of the rows to fit on"
            )

    def _resolve_columns(self, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
        if self.features is None:
            features, categorical = select_feature_columns(frame, [*self.exclude, self.target])
            features += [c for c in (self.categorical or []) if c not in features]
        else:
            features = [c for c in self.features if c not in set(self.exclude)]
        missing = [c for c in features if c not in frame.columns]
        if missing:
            raise ValueError(f"feature columns missing from the frame: {missing}")
        if self.categorical is not None:
            categorical = [c for c in features if c in set(self.categorical)]
        elif self.features is not None:
            categorical = [c for c in features if _is_text_like(frame[c].dtype)]
        forbidden = [c for c in features if c in KEY_COLUMNS or c == self.target or c.startswith("label_")]
        if forbidden:
            raise ValueError(f"keys or labels cannot be features: {forbidden}")
        if BIAS_COLUMN in features:
            raise ValueError(f"a feature may not be named {BIAS_COLUMN!r} (reserved for the contribution bias)")
        if not features:
            raise ValueError("no feature columns: the frame has no numeric or categorical columns left")
        return features, categorical

    def _cross_fits(self, n_rows: int) -> bool:
        """Whether the calibrator learns from cross-fitted margins (``calibration_cv`` folds, at most
        ``calibration_cv_max_rows`` labelled rows) rather than from a dedicated hold-out."""
        if self.calibration is None or not self.calibration_cv:
            return False
        return self.calibration_cv_max_rows is None or n_rows <= int(self.calibration_cv_max_rows)

    def _calibration_share(self) -> float:
        """The share of rows held out for the calibrator alone (none when cross-fitting, or not calibrating)."""
        if self.calibration is None or self.cross_fitted_:
            return 0.0
        return self.calibration_fraction

    def _split_indices(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Disjoint stratified positions for fit, val and calibration rows (seeded)."""
        idx = np.arange(len(y))
        cal_share = self._calibration_share()
        if cal_share > 0:
            rest, idx_cal = train_test_split(
                idx, test_size=cal_share, stratify=y, random_state=self.random_state
            )
        else:
            rest, idx_cal = idx, idx[:0]
        idx_fit, idx_val = train_test_split(
            rest,
            test_size=self.val_fraction / (1.0 - cal_share),
            stratify=y[rest],
            random_state=self.random_state + 1,
        )
        return np.sort(idx_fit), np.sort(idx_val), np.sort(idx_cal)

    def _fit_calibrator(self, margin: np.ndarray, y: np.ndarray) -> None:
        method = self.calibration
        if method == "isotonic" and len(y) < self.min_isotonic_rows:
            warnings.warn(
                f"{self.target}: {len(y)} calibration rows < min_isotonic_rows={self.min_isotonic_rows}; "
                "using Platt scaling instead of isotonic regression",
                UserWarning,
                stacklevel=3,
            )
            method = "platt"
        if method == "isotonic":
            calibrator = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            calibrator.fit(margin, y)
        else:
            calibrator = LogisticRegression(C=1e6)  # ~unpenalised: a pure Platt fit of a and b
            calibrator.fit(margin.reshape(-1, 1), y)
        self.calibrator_ = calibrator
        self.calibration_method_ = method

    # ------------------------------------------------------------------ predict
    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """The booster's raw margin (log-odds under the weighted objective; uncalibrated), one per row."""
        check_is_fitted(self, "booster_")
        return self.booster_.predict(self._design_matrix(frame), raw_score=True)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of class 1, one float in [0, 1] per row (a 1-D array, not sklearn's n x 2).

        With ``calibration=None`` this is the booster's own sigmoid of the margin (inflated by
        ``scale_pos_weight`` when that is on).
        """
        margin = self.predict_raw(frame)
        if self.calibrator_ is None:
            return 1.0 / (1.0 + np.exp(-margin))
        if isinstance(self.calibrator_, IsotonicRegression):
            return np.clip(self.calibrator_.predict(margin), 0.0, 1.0)
        return self.calibrator_.predict_proba(margin.reshape(-1, 1))[:, 1]

    def contributions(self, frame: pd.DataFrame, method: str = "auto") -> pd.DataFrame:
        """Exact TreeSHAP contributions in raw-margin space: one column per feature plus ``bias``.

        Each row sums to :meth:`predict_raw`. ``method``: ``"pattern_cache"`` computes LightGBM's exact TreeSHAP
        once per distinct path pattern of each tree and copies it to the rows sharing it
        (:mod:`bankseg.models.treeshap`, several times cheaper, equal to ``pred_contrib`` within about 1e-14);
        ``"pred_contrib"`` is LightGBM's ``predict(pred_contrib=True)`` on every row; ``"auto"`` (the default) is
        the pattern cache, or ``pred_contrib`` with a logged reason when the booster holds what the cache does not
        support (linear trees). Cost still grows with trees x leaves: small models explain cheaply. The index is
        the frame's.
        """
        check_is_fitted(self, "booster_")
        if method not in CONTRIBUTION_METHODS:
            raise ValueError(f"method must be one of {CONTRIBUTION_METHODS}, got {method!r}")
        design = self._design_matrix(frame)
        explainer = self._tree_explainer(required=method == "pattern_cache") if method != "pred_contrib" else None
        if explainer is None:
            values = self.booster_.predict(design, pred_contrib=True)
        else:
            values = explainer.contributions(_numeric_input(design))
        return pd.DataFrame(values, columns=[*self.feature_names_, BIAS_COLUMN], index=frame.index)

    def _tree_explainer(self, required: bool) -> TreeShapExplainer | None:
        """The booster's pattern-cache explainer (built once), or None when it does not support the booster.

        With ``required`` the :class:`UnsupportedBooster` error is raised instead of logged.
        """
        cached = self.__dict__.get("_explainer")
        if cached is not None and cached.booster is self.booster_:
            return cached
        try:
            explainer = TreeShapExplainer(self.booster_)
        except UnsupportedBooster as err:
            if required:
                raise
            log.warning("%s: contributions by pred_contrib, the pattern cache does not support %s", self.target, err)
            return None
        self.__dict__["_explainer"] = explainer
        return explainer

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: object.__getstate__ hands out the live __dict__
        state.pop("_explainer", None)  # a cache, rebuilt from the booster after unpickling
        return state

    # ------------------------------------------------------------------ design matrix
    def _design_matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A new frame of the model's features: numbers as float64 (missing -> NaN), categoricals as
        ``category`` with the categories learned at fit (unseen values -> missing). Never touches ``frame``."""
        missing = [c for c in self.feature_names_ if c not in frame.columns]
        if missing:
            raise ValueError(f"{self.target}: the frame lacks model features {missing}")
        cat = set(self.categorical_features_)
        columns: dict[str, object] = {}
        bad: list[str] = []
        for col in self.feature_names_:
            series = frame[col]
            if col in cat:
                categories = pd.Index(self.categories_[col])
                codes = categories.get_indexer(_as_category_values(series))  # -1: missing or unseen
                columns[col] = pd.Categorical.from_codes(codes, categories=categories)
            elif pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
                columns[col] = series.to_numpy(dtype=np.float64, na_value=np.nan)
            else:
                bad.append(f"{col} ({series.dtype})")
        if bad:
            raise ValueError(f"{self.target}: numeric features hold non-numeric dtypes: {bad}")
        return pd.DataFrame(columns, index=frame.index)


@dataclass(frozen=True)
class CrossValidation:
    """What :meth:`PropensityModel.cross_validate` measured: the best mean ``metric`` and its number of rounds."""

    metric: str
    score: float
    rounds: int
    n_folds: int
    curve: list[float]


def _higher_is_better(metric: str) -> bool:
    return metric in {"auc", "average_precision", "map", "ndcg", "auc_mu"}


def make_pruning_callback(trial, metric: str = "auc", valid_name: str = "val") -> Callable:
    """A LightGBM callback reporting ``valid_name``'s ``metric`` to an Optuna trial each round and pruning.

    Optuna's own ``LightGBMPruningCallback`` lives in the optuna-integration package, which bankseg does not
    install; this is the same idea: ``trial.report(value, step=iteration)`` then ``raise optuna.TrialPruned``
    when the study's pruner says so. The study's direction must match the metric's (maximize for AUC).
    """
    import optuna  # only tuning needs it

    def _callback(env: lgb.callback.CallbackEnv) -> None:
        results = env.evaluation_result_list or []
        match = next((r for r in results if r[0] == valid_name and r[1] == metric), None)
        if match is None:
            found = [(r[0], r[1]) for r in results]
            raise ValueError(f"pruning callback: no {valid_name}/{metric} in the evaluation results {found}")
        value, higher_better = match[2], match[3]
        direction = trial.study.direction
        wanted = optuna.study.StudyDirection.MAXIMIZE if higher_better else optuna.study.StudyDirection.MINIMIZE
        if direction != wanted:
            raise ValueError(f"pruning callback: {metric} wants the study to {wanted.name}, it is {direction.name}")
        trial.report(float(value), step=env.iteration)
        if trial.should_prune():
            raise optuna.TrialPruned(f"trial {trial.number} pruned at iteration {env.iteration}: {metric}={value:.5f}")

    _callback.order = 40  # after the recorder (20) and early stopping (30)
    return _callback


def _target_array(series: pd.Series, name: str) -> np.ndarray:
    """The target as float64 with NaN for missing; anything but 0/1 is refused with the offending rows."""
    try:
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as err:
        raise ValueError(f"target {name!r} must be numeric 0/1, got dtype {series.dtype}") from err
    bad = ~np.isnan(values) & (values != 0) & (values != 1)
    if bad.any():
        rows = series.index[bad][:10].tolist()
        raise ValueError(
            f"target {name!r} must be 0, 1 or missing; {int(bad.sum())} rows are not (first index labels: {rows}, "
            f"values: {sorted(set(values[bad].tolist()))[:10]})"
        )
    return values


def _numeric_input(design: pd.DataFrame) -> np.ndarray:
    """The float matrix LightGBM reads from a design frame: categoricals as their codes, NaN for missing."""
    columns = []
    for col in design.columns:
        series = design[col]
        if isinstance(series.dtype, pd.CategoricalDtype):
            codes = series.cat.codes.to_numpy().astype(np.float64)
            codes[codes < 0] = np.nan
            columns.append(codes)
        else:
            columns.append(series.to_numpy(dtype=np.float64))
    return np.column_stack(columns) if columns else np.empty((len(design), 0))


def _is_text_like(dtype) -> bool:
    return isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(dtype)


def _as_category_values(series: pd.Series) -> pd.Series:
    """Values to look up in a fixed category list (a category column's values, not its codes)."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        return series.astype(series.dtype.categories.dtype)
    return series


def _learn_categories(series: pd.Series) -> list:
    """The sorted distinct non-missing values of a categorical feature, as plain Python values."""
    values = pd.unique(_as_category_values(series).dropna())
    if len(values) == 0:
        raise ValueError(f"categorical feature {series.name!r} has no non-missing value to learn categories from")
    return sorted(v.item() if hasattr(v, "item") else v for v in values)


_ESTIMATOR_KEYS = (
    "target", "features", "categorical", "exclude", "params", "num_boost_round", "early_stopping_rounds",
    "val_fraction", "calibration", "calibration_fraction", "imbalance", "random_state", "min_isotonic_rows",
    "size_cap", "refit_on_val", "calibration_cv", "calibration_cv_max_rows",
)


def build_propensity_model(settings: Mapping, **overrides) -> PropensityModel:
    """A :class:`PropensityModel` from a model config mapping (``conf/model/churn.yaml`` as a plain dict).

    Keys the estimator does not take (``name``, ``registered_name``, ``kind``, ``bands``, ``reason_codes``) are
    ignored; ``overrides`` win over ``settings`` (a tuner's trial params go in ``params=``).
    """
    if settings.get("kind", "propensity") != "propensity":
        raise ValueError(f"model config kind is {settings.get('kind')!r}, not 'propensity'")
    if "target" not in settings and "target" not in overrides:
        raise ValueError("model config has no target")
    kwargs = {k: settings[k] for k in _ESTIMATOR_KEYS if k in settings}
    kwargs.update(overrides)
    for key in ("features", "categorical", "exclude"):
        if kwargs.get(key) is not None:
            kwargs[key] = list(kwargs[key])
    for key in ("params", "size_cap"):
        if kwargs.get(key) is not None:
            kwargs[key] = dict(kwargs[key])
    return PropensityModel(**kwargs)
