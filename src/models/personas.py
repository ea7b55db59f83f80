"""Behavioural personas: a clustering of scaled behavioural features with profiles, names and stable ids.

:class:`PersonaModel` is a scikit-learn style estimator. What it does, in order:

1. **Scaling** (:meth:`PersonaModel.transform`, the space the clustering sees): missing values take the
   column median of the fit data (``impute_values_``, in raw units); ``log_features`` take a signed
   ``log1p`` (``sign(x) * log1p(|x|)``, so net flows below zero stay finite); every column is clipped to its
   ``[1 - clip_quantile, clip_quantile]`` quantiles of the fit data; then a StandardScaler or RobustScaler.
   Imputation, quantiles and scaler are learned on every fit row, the clustering on a sample.
2. **k selection**: one clustering per k in ``k_range`` (inclusive) on a seeded sample of at most
   ``sample_size`` rows; the stated ``criterion`` picks k (``selection_`` keeps the table). Silhouette is
   computed on a further seeded sample of ``silhouette_sample_size`` rows (it is quadratic in rows).
3. **Ids**: without a previous model, ids are 1..k by decreasing persona size. With ``previous=``, the new
   personas' members are transformed with the *previous* model's scaling and their means compared with the
   previous centroids (Euclidean distance in the previous scaled space, so both models are measured with the
   same ruler even when medians, quantiles or the scaler moved); the Hungarian assignment
   (``scipy.optimize.linear_sum_assignment``) pairs them. A pair takes the old id unless its distance exceeds
   ``max_match_distance``; unpaired personas get fresh ids above every id the lineage ever issued, so a
   retired id is never reused. Matched personas keep their old name while their profile still fits it.
4. **Profile** (``profile_``), computed on every fit row: size, share, mean of each feature in raw units
   (missing values skipped), and ``z_<feature>``: (persona mean - population mean) / population std, both in
   the scaled space, so a heavy-tailed money column does not swamp the comparison; ``top_1..3`` are the
   features with the largest ``|z|``.
5. **Names** (:mod:`bankseg.models.persona_naming`) from the z-scores and the configured vocabulary.
6. **Stability**: ``n_bootstrap`` refits (same k, scaling held fixed) on resamples of the clustering sample,
   each compared by adjusted Rand index with the full fit on a common seeded sample; ``stability_`` is the
   mean.

The estimator holds only numpy arrays, pandas objects and scikit-learn models, so it pickles (the segmenter
embeds it in an MLflow pyfunc).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import RobustScaler, StandardScaler
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from bankseg.models.persona_naming import (
    PersonaName,
    name_personas,
    parse_naming_rules,
    profile_still_fits,
)

ALGORITHMS = ("kmeans", "gmm")
# criterion -> whether a larger value is better
CRITERIA: dict[str, bool] = {
    "silhouette": True,
    "calinski_harabasz": True,
    "davies_bouldin": False,
    "bic": False,
    "aic": False,
}
GMM_ONLY_CRITERIA = ("bic", "aic")
DEFAULT_CRITERION = {"kmeans": "silhouette", "gmm": "bic"}
SCALERS = ("standard", "robust")
N_TOP_FEATURES = 3
# GaussianMixture's covariance floor: the scaled space has unit spread, so 1e-3 only keeps clipped or
# near-constant columns from making a covariance singular.
GMM_REG_COVAR = 1e-3
# Bootstrap ARIs are computed on this many rows of the clustering sample (prediction is cheap; this bounds it).
STABILITY_SAMPLE_SIZE = 10_000


def feature_matrix(X: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    """The ``features`` columns of ``X`` as a float64 matrix; missing values become NaN.

    Refuses a missing column, a non-numeric column (text, category) and infinite values, naming the columns
    and the first offending rows.
    """
    if not isinstance(X, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame of features, got {type(X).__name__}")
    missing = [f for f in features if f not in X.columns]
    if missing:
        raise ValueError(f"missing feature columns: {missing}")
    not_numeric = [f for f in features if not pd.api.types.is_numeric_dtype(X[f].dtype)]
    if not_numeric:
        raise ValueError(
            f"feature columns must be numeric, these are not: "
            f"{ {f: str(X[f].dtype) for f in not_numeric} }"
        )
    values = X[list(features)].to_numpy(dtype="float64", na_value=np.nan)
    infinite = np.isinf(values)
    if infinite.any():
        columns = [f for f, bad in zip(features, infinite.any(axis=0), strict=True) if bad]
        rows = list(X.index[infinite.any(axis=1)][:5])
        raise ValueError(f"infinite values in feature columns {columns}, first at rows {rows}")
    return values


def persona_recovery_ari(pred_ids: Sequence | np.ndarray | pd.Series, true_personas: Sequence | np.ndarray | pd.Series) -> float:
    """Adjusted Rand index between predicted persona ids and the simulated bank's planted personas.

    1.0 is a perfect recovery up to relabelling, about 0.0 a random one. Both arguments are aligned by
    position (one entry per customer, same order); missing values in either are refused.
    """
    pred = pd.Series(np.asarray(pred_ids, dtype=object))
    true = pd.Series(np.asarray(true_personas, dtype=object))
    if len(pred) != len(true):
        raise ValueError(f"pred_ids has {len(pred)} entries but true_personas has {len(true)}")
    if len(pred) == 0:
        raise ValueError("no customers to compare")
    for name, values in (("pred_ids", pred), ("true_personas", true)):
        missing = values.isna()
        if missing.any():
            raise ValueError(
                f"{name} has {int(missing.sum())} missing values, first at positions {list(np.flatnonzero(missing)[:5])}"
            )
    return float(adjusted_rand_score(true.astype(str), pred.astype(str)))


class PersonaModel(BaseEstimator):
    """Behavioural clustering into personas with a profile table, bilingual names and ids stable across retrains.

    Parameters (conf/model/personas.yaml, ``estimator`` and ``naming`` sections):
    ``features`` numeric feature-table columns the clustering sees; ``algorithm`` "kmeans" | "gmm";
    ``k_range`` (low, high) inclusive; ``criterion`` "silhouette" | "calinski_harabasz" | "davies_bouldin"
    (either algorithm) | "bic" | "aic" (gmm only) | "auto" (silhouette for kmeans, bic for gmm);
    ``log_features`` features given a signed log1p (money, counts); ``clip_quantile`` in (0.5, 1], 1 or None
    turns clipping off; ``scaler`` "standard" | "robust"; ``sample_size`` rows the clustering and the k
    search are fitted on; ``n_bootstrap`` resamples for ``stability_`` (0 skips it); ``n_init`` restarts per
    clustering; ``covariance_type`` for GMM; ``silhouette_sample_size`` rows scored by silhouette;
    ``max_match_distance`` largest distance (previous scaled space) at which a retrained persona inherits an
    old id, None accepts every Hungarian pair; ``n_threads`` caps OpenMP/BLAS threads while fitting and
    predicting (None keeps the libraries' default: KMeans' OpenMP threads spin-wait, and on a shared, busy
    machine two of them ran 50x slower than one); ``names`` the naming rules (vocabulary, thresholds, overrides;
    see :mod:`bankseg.models.persona_naming`), None names personas by fallback and number only.

    Learned state: ``features_``, ``impute_values_``, ``clip_low_``/``clip_high_``, ``scaler_``,
    ``clusterer_``, ``criterion_``, ``selection_``, ``k_``, ``ids_`` (cluster label -> persona id),
    ``persona_ids_``, ``centroids_`` (DataFrame, persona id x feature, scaled space), ``profile_``, ``names_``
    ({id: {"en", "zh"}}), ``name_terms_``, ``id_matching_``, ``max_id_issued_``, ``stability_``,
    ``stability_scores_``, ``n_fit_rows_``.
    """

    def __init__(
        self,
        features: Sequence[str],
        algorithm: str = "kmeans",
        k_range: Sequence[int] = (4, 12),
        criterion: str = "auto",
        log_features: Sequence[str] = (),
        clip_quantile: float | None = 0.99,
        scaler: str = "standard",
        random_state: int = 0,
        sample_size: int = 20_000,
        n_bootstrap: int = 10,
        n_init: int = 4,
        covariance_type: str = "full",
        silhouette_sample_size: int = 5_000,
        max_match_distance: float | None = None,
        n_threads: int | None = 1,
        names: Mapping | None = None,
    ):
        self.features = features
        self.algorithm = algorithm
        self.k_range = k_range
        self.criterion = criterion
        self.log_features = log_features
        self.clip_quantile = clip_quantile
        self.scaler = scaler
        self.random_state = random_state
        self.sample_size = sample_size
        self.n_bootstrap = n_bootstrap
        self.n_init = n_init
        self.covariance_type = covariance_type
        self.silhouette_sample_size = silhouette_sample_size
        self.max_match_distance = max_match_distance
        self.n_threads = n_threads
        self.names = names

    # ------------------------------------------------------------------ checks
    def _resolved_criterion(self) -> str:
        """The criterion actually used (``auto`` resolved by algorithm), after checking the parameters."""
        problems = []
        if self.algorithm not in ALGORITHMS:
            problems.append(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        criterion = DEFAULT_CRITERION.get(self.algorithm, "") if self.criterion == "auto" else self.criterion
        if criterion not in CRITERIA and self.algorithm in ALGORITHMS:
            problems.append(f"criterion must be 'auto' or one of {tuple(CRITERIA)}, got {self.criterion!r}")
        if criterion in GMM_ONLY_CRITERIA and self.algorithm != "gmm":
            problems.append(f"criterion {criterion!r} needs algorithm 'gmm' (a likelihood), got {self.algorithm!r}")
        k_range = tuple(self.k_range)
        if len(k_range) != 2 or not all(isinstance(k, int | np.integer) for k in k_range) or not 2 <= k_range[0] <= k_range[1]:
            problems.append(f"k_range must be (low, high) integers with 2 <= low <= high, got {self.k_range!r}")
        if len(set(self.features)) != len(list(self.features)) or not list(self.features):
            problems.append("features must be a non-empty list without duplicates")
        stray = sorted(set(self.log_features) - set(self.features))
        if stray:
            problems.append(f"log_features not among features: {stray}")
        if self.clip_quantile is not None and not 0.5 < self.clip_quantile <= 1:
            problems.append(f"clip_quantile must be in (0.5, 1] or None, got {self.clip_quantile}")
        if self.scaler not in SCALERS:
            problems.append(f"scaler must be one of {SCALERS}, got {self.scaler!r}")
        if self.sample_size < 2 or self.silhouette_sample_size < 2 or self.n_init < 1 or self.n_bootstrap < 0:
            problems.append("sample_size and silhouette_sample_size must be >= 2, n_init >= 1, n_bootstrap >= 0")
        if problems:
            raise ValueError("PersonaModel: " + "; ".join(problems))
        return criterion

    def _threads(self) -> AbstractContextManager:
        return nullcontext() if self.n_threads is None else threadpool_limits(limits=int(self.n_threads))

    # ----------------------------------------------------------------- scaling
    def _fit_scaling(self, values: np.ndarray) -> None:
        features = list(self.features)
        medians = np.nanmedian(np.where(np.isnan(values).all(axis=0), 0.0, values), axis=0)
        empty = [f for f, col in zip(features, np.isnan(values).all(axis=0), strict=True) if col]
        if empty:
            raise ValueError(f"feature columns with no values to learn from: {empty}")
        self.impute_values_ = pd.Series(medians, index=features, name="median")
        self.log_mask_ = np.isin(features, list(self.log_features))
        logged = self._impute_and_log(values)
        if self.clip_quantile is None or self.clip_quantile >= 1:
            low, high = np.full(len(features), -np.inf), np.full(len(features), np.inf)
        else:
            low, high = np.quantile(logged, [1 - self.clip_quantile, self.clip_quantile], axis=0)
        self.clip_low_, self.clip_high_ = low, high
        self.scaler_ = (StandardScaler() if self.scaler == "standard" else RobustScaler()).fit(
            np.clip(logged, low, high)
        )

    def _impute_and_log(self, values: np.ndarray) -> np.ndarray:
        filled = np.where(np.isnan(values), self.impute_values_.to_numpy(), values)
        filled[:, self.log_mask_] = np.sign(filled[:, self.log_mask_]) * np.log1p(np.abs(filled[:, self.log_mask_]))
        return filled

    def _scale(self, values: np.ndarray) -> np.ndarray:
        return self.scaler_.transform(np.clip(self._impute_and_log(values), self.clip_low_, self.clip_high_))

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """The scaled feature matrix the clustering sees (rows of ``X`` in order, columns ``features_``)."""
        check_is_fitted(self, "scaler_")
        return self._scale(feature_matrix(X, self.features_))

    # -------------------------------------------------------------- clustering
    def _clusterer(self, k: int, seed: int) -> KMeans | GaussianMixture:
        if self.algorithm == "kmeans":
            return KMeans(n_clusters=k, n_init=self.n_init, random_state=seed)
        return GaussianMixture(
            n_components=k,
            covariance_type=self.covariance_type,
            n_init=self.n_init,
            reg_covar=GMM_REG_COVAR,
            random_state=seed,
        )

    def _score(self, model, Z: np.ndarray, labels: np.ndarray, criterion: str, seed: int) -> float:
        if criterion == "bic":
            return float(model.bic(Z))
        if criterion == "aic":
            return float(model.aic(Z))
        if len(np.unique(labels)) < 2:  # a mixture can collapse; no separation to score
            return np.nan
        if criterion == "silhouette":
            size = min(self.silhouette_sample_size, len(Z))
            return float(silhouette_score(Z, labels, sample_size=size, random_state=seed))
        if criterion == "calinski_harabasz":
            return float(calinski_harabasz_score(Z, labels))
        return float(davies_bouldin_score(Z, labels))

    def _select_k(self, Z: np.ndarray, criterion: str) -> tuple[pd.DataFrame, KMeans | GaussianMixture]:
        low, high = (int(k) for k in self.k_range)
        rows, models = [], {}
        for k in range(low, high + 1):
            model = self._clusterer(k, self.random_state)
            labels = model.fit_predict(Z)
            rows.append({"k": k, criterion: self._score(model, Z, labels, criterion, self.random_state)})
            models[k] = model
        selection = pd.DataFrame(rows)
        scores = selection[criterion]
        if scores.isna().all():
            raise ValueError(f"no k in {self.k_range} gave a usable {criterion} (every clustering collapsed)")
        best = scores.idxmax() if CRITERIA[criterion] else scores.idxmin()
        selection["chosen"] = selection.index == best
        return selection, models[int(selection.loc[best, "k"])]

    def _bootstrap_stability(self, Z: np.ndarray, rng: np.random.Generator) -> list[float]:
        common = rng.choice(len(Z), size=min(len(Z), STABILITY_SAMPLE_SIZE), replace=False)
        reference = self.clusterer_.predict(Z[common])
        scores = []
        for b in range(self.n_bootstrap):
            resample = rng.integers(0, len(Z), size=len(Z))
            model = self._clusterer(self.k_, self.random_state + 1 + b).fit(Z[resample])
            scores.append(float(adjusted_rand_score(reference, model.predict(Z[common]))))
        return scores

    # --------------------------------------------------------------------- ids
    def _assign_ids(
        self, X: pd.DataFrame, labels: np.ndarray, sizes: np.ndarray, previous: PersonaModel | None
    ) -> None:
        by_size = np.lexsort((np.arange(self.k_), -sizes))  # biggest first, ties by label
        ids = np.zeros(self.k_, dtype="int64")
        if previous is None:
            ids[by_size] = np.arange(1, self.k_ + 1)
            self.max_id_issued_ = int(self.k_)
            self.id_matching_ = pd.DataFrame(
                {"persona_id": ids, "previous_id": pd.array([pd.NA] * self.k_, dtype="Int64"),
                 "distance": np.nan}
            )
            return
        check_is_fitted(previous, "centroids_")
        if not isinstance(previous, PersonaModel):
            raise ValueError(f"previous must be a fitted PersonaModel, got {type(previous).__name__}")
        try:
            Z_old = previous.transform(X)
        except ValueError as err:
            raise ValueError(f"cannot match ids to the previous model: {err}") from err
        counts = np.bincount(labels, minlength=self.k_)
        sums = np.zeros((self.k_, Z_old.shape[1]))
        np.add.at(sums, labels, Z_old)
        members_mean = sums / np.maximum(counts, 1)[:, None]
        cost = cdist(members_mean, previous.centroids_.to_numpy())
        cost[counts == 0] = np.inf  # a component with no members cannot claim an old persona
        finite_cost = np.where(np.isfinite(cost), cost, 1e12)
        rows, cols = linear_sum_assignment(finite_cost)
        accepted = np.isfinite(cost[rows, cols])
        if self.max_match_distance is not None:
            accepted &= cost[rows, cols] <= self.max_match_distance
        old_ids = previous.centroids_.index.to_numpy()
        previous_id = pd.array([pd.NA] * self.k_, dtype="Int64")
        distance = np.full(self.k_, np.nan)
        for label, col in zip(rows[accepted], cols[accepted], strict=True):
            ids[label] = old_ids[col]
            previous_id[label] = old_ids[col]
            distance[label] = cost[label, col]
        next_id = int(previous.max_id_issued_)
        for label in by_size:
            if pd.isna(previous_id[label]):
                next_id += 1
                ids[label] = next_id
        self.max_id_issued_ = max(next_id, int(ids.max()))
        self.id_matching_ = pd.DataFrame({"persona_id": ids, "previous_id": previous_id, "distance": distance})

    # ------------------------------------------------------------------ fit
    def fit(self, X: pd.DataFrame, y=None, *, previous: PersonaModel | None = None) -> PersonaModel:
        """Learn scaling, k, clusters, ids, profile, names and stability from the feature table ``X``.

        ``y`` is ignored (scikit-learn convention). ``previous`` is the champion this model replaces: ids
        (and names whose profile still fits) are carried over from it; ``X`` must then also hold the
        previous model's features.
        """
        criterion = self._resolved_criterion()
        with self._threads():
            return self._fit(X, criterion, previous)

    def _fit(self, X: pd.DataFrame, criterion: str, previous: PersonaModel | None) -> PersonaModel:
        self.features_ = list(self.features)
        values = feature_matrix(X, self.features_)
        high = int(self.k_range[1])
        if len(values) <= high:
            raise ValueError(f"{len(values)} rows cannot be clustered into up to {high} personas")
        self.criterion_ = criterion
        self.n_fit_rows_ = len(values)
        self._fit_scaling(values)
        Z = self._scale(values)

        rng = np.random.default_rng(self.random_state)
        sample = np.sort(rng.choice(len(Z), size=min(len(Z), self.sample_size), replace=False))
        Z_sample = Z[sample]
        self.selection_, self.clusterer_ = self._select_k(Z_sample, criterion)
        self.k_ = int(self.selection_.loc[self.selection_["chosen"], "k"].iloc[0])

        labels = self.clusterer_.predict(Z)
        sizes = np.bincount(labels, minlength=self.k_)
        self._assign_ids(X, labels, sizes, previous)
        self.persona_ids_ = np.sort(self.ids_)
        centers = self.clusterer_.cluster_centers_ if self.algorithm == "kmeans" else self.clusterer_.means_
        self.centroids_ = (
            pd.DataFrame(centers, index=pd.Index(self.ids_, name="persona_id"), columns=self.features_)
            .sort_index()
        )
        self.profile_ = self._profile(values, Z, self.ids_[labels])
        self._name(previous)
        self.stability_scores_ = self._bootstrap_stability(Z_sample, rng)
        self.stability_ = float(np.mean(self.stability_scores_)) if self.stability_scores_ else np.nan
        return self

    @property
    def ids_(self) -> np.ndarray:
        """Persona id of each clusterer label (``ids_[label]``)."""
        check_is_fitted(self, "id_matching_")
        return self.id_matching_["persona_id"].to_numpy(dtype="int64")

    # -------------------------------------------------------------- profile
    def _profile(self, values: np.ndarray, Z: np.ndarray, persona: np.ndarray) -> pd.DataFrame:
        features = self.features_
        index = pd.Index(self.persona_ids_, name="persona_id")
        sizes = pd.Series(persona).value_counts().reindex(index, fill_value=0)
        means = pd.DataFrame(values, columns=features).groupby(persona).mean().reindex(index)
        scaled_means = pd.DataFrame(Z, columns=features).groupby(persona).mean().reindex(index)
        spread = Z.std(axis=0)
        # a constant column sets no persona apart: z = 0 there (NaN stays for personas with no members)
        z = (scaled_means - Z.mean(axis=0)) / np.where(spread > 0, spread, np.inf)
        order = np.argsort(-np.abs(z.fillna(0.0).to_numpy()), axis=1, kind="stable")[:, :N_TOP_FEATURES]
        top = pd.DataFrame(
            np.asarray(features, dtype=object)[order],
            index=index,
            columns=[f"top_{i + 1}" for i in range(order.shape[1])],
        )
        return pd.concat(
            [
                pd.DataFrame({"size": sizes.astype("int64"), "share": sizes / len(persona)}, index=index),
                top,
                means.add_prefix("mean_"),
                z.add_prefix("z_"),
            ],
            axis=1,
        )

    def z_scores(self) -> pd.DataFrame:
        """Persona id x feature: each persona's standardised gap to the population (the ``z_`` profile columns)."""
        check_is_fitted(self, "profile_")
        z = self.profile_[[f"z_{f}" for f in self.features_]]
        z.columns = self.features_
        return z

    # ---------------------------------------------------------------- names
    def _name(self, previous: PersonaModel | None) -> None:
        rules = parse_naming_rules(self.names)
        z = self.z_scores()
        keep: dict[int, PersonaName] = {}
        if previous is not None:
            for old_id in self.id_matching_["previous_id"].dropna().astype(int):
                terms = previous.name_terms_.get(old_id, [])
                if profile_still_fits(terms, z.loc[old_id], rules):
                    old = previous.names_[old_id]
                    keep[old_id] = PersonaName(old["en"], old["zh"], tuple(tuple(t) for t in terms))
        by_size = self.profile_["size"].sort_values(ascending=False, kind="stable").index
        named = name_personas(z, rules, priority=list(by_size), keep=keep)
        self.names_ = {int(pid): {"en": n.en, "zh": n.zh} for pid, n in named.items()}
        self.name_terms_ = {int(pid): [list(t) for t in n.terms] for pid, n in named.items()}
        self.id_matching_["name_kept"] = [
            int(pid) in keep and named[int(pid)] == keep[int(pid)] for pid in self.id_matching_["persona_id"]
        ]
        self.profile_.insert(0, "name_zh", pd.Series({p: n.zh for p, n in named.items()}, dtype="str"))
        self.profile_.insert(0, "name_en", pd.Series({p: n.en for p, n in named.items()}, dtype="str"))

    # -------------------------------------------------------------- predict
    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Persona id (int64) of each row of ``X``."""
        check_is_fitted(self, "clusterer_")
        Z = self.transform(X)
        with self._threads():
            return self.ids_[self.clusterer_.predict(Z)]

    def persona_names(self, ids: Sequence[int] | np.ndarray, language: str = "en") -> np.ndarray:
        """Names (``language`` "en" or "zh") of persona ``ids``; an unknown id is refused."""
        check_is_fitted(self, "names_")
        if language not in ("en", "zh"):
            raise ValueError(f"language must be 'en' or 'zh', got {language!r}")
        ids = np.asarray(ids, dtype="int64")
        known = self.persona_ids_
        position = np.clip(np.searchsorted(known, ids), 0, len(known) - 1)
        unknown = known[position] != ids
        if unknown.any():
            raise ValueError(
                f"unknown persona ids {sorted(set(ids[unknown].tolist()))[:10]}; this model has {known.tolist()}"
            )
        table = np.array([self.names_[int(pid)][language] for pid in known], dtype=object)
        return table[position]
