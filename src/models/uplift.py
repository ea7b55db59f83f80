"""Uplift (whom to contact): the effect of a campaign contact per customer, learned from randomised hold-outs.

A bank's campaign log (``campaign_assignments``: customer, month, campaign, product, arm) says who was in a
campaign's randomised experiment and whether the coin said contact or hold-out. The training rows are those
randomised customers of one product's campaigns, with point-in-time features as of the campaign month's first day
(data strictly before it) and the outcome "opened the product within ``outcome_months`` from that day".

Meta-learners on the calibrated LightGBM :class:`~bankseg.models.propensity.PropensityModel`:
- ``t``: two outcome models, contacted and held out; uplift = p1(x) - p0(x);
- ``x``: the T-learner's models impute each row's individual effect (a contacted row: y - p0(x); a held-out
  row: p1(x) - y); one LightGBM regressor per arm learns the imputed effects, blended by the known contact
  probability of the randomisation (Kunzel et al. 2019).
Which one a model uses is chosen by measurement (conf/model/uplift_*.yaml says which and why).

Evaluation (:func:`uplift_report`): the Qini curve and AUUC on randomised out-of-time rows, observed uplift by
decile of predicted uplift, and, where the true individual effects are known (the simulated bank), their
correlation with the prediction and the share of the best achievable gain captured at a contact budget.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from bankseg.data.io import read_table
from bankseg.models.propensity import PropensityModel

LEARNERS = ("t", "x")
RANDOMISED_GROUPS = ("randomised_contact", "randomised_holdout")
TREATMENT = "treatment"
OUTCOME = "outcome"
UPLIFT_KEYS = ("customer_id", "as_of", "campaign", "split", TREATMENT, OUTCOME)


# ------------------------------------------------------------------------------------------------ the rows
def randomised_contacts(data_path, product: str) -> pd.DataFrame:
    """The randomised arms of the campaigns pitching ``product``: customer_id, as_of (campaign month), campaign,
    treatment (1 = contacted). Raises ValueError naming what is missing when the data has no such rows."""
    try:
        log = read_table(data_path, "campaign_assignments", columns=["customer_id", "month", "campaign", "product",
                                                                    "group"])
    except FileNotFoundError as e:
        raise ValueError(f"uplift needs the bank's campaign log (campaign_assignments) in {data_path}") from e
    rows = log[(log["product"].astype(str) == product) & log["group"].astype(str).isin(RANDOMISED_GROUPS)]
    if rows.empty:
        pitched = sorted(log["product"].astype(str).unique())
        raise ValueError(f"no randomised campaign rows for product {product!r} in {data_path}; campaigns pitch {pitched}")
    return pd.DataFrame({
        "customer_id": rows["customer_id"].to_numpy(),
        "as_of": pd.to_datetime(rows["month"]).to_numpy(),
        "campaign": rows["campaign"].astype(str).to_numpy(),
        TREATMENT: (rows["group"].astype(str) == "randomised_contact").to_numpy(dtype=np.int8),
    })


def adoption_outcome(data_path, rows: pd.DataFrame, product: str, months: int) -> np.ndarray:
    """1 where the customer opened ``product`` in [as_of, as_of + months), else 0."""
    held = read_table(data_path, "holdings", columns=["customer_id", "product", "opened"])
    held = held.loc[held["product"].astype(str) == product, ["customer_id", "opened"]]
    keyed = rows[["customer_id", "as_of"]].reset_index(drop=True).reset_index(names="row")
    pairs = keyed.merge(held, on="customer_id", how="inner")
    end = pairs["as_of"] + pd.DateOffset(months=months)
    hit = pairs.loc[(pairs["opened"] >= pairs["as_of"]) & (pairs["opened"] < end), "row"].unique()
    out = np.zeros(len(rows), dtype=np.int8)
    out[hit] = 1
    return out


def plan_uplift_split(as_of: pd.Series, data_end: pd.Timestamp, months: int, n_oot: int) -> pd.Series:
    """``train`` / ``oot`` / None per row: the last ``n_oot`` campaign months whose outcome window fits in the
    data are out of time; training months end their outcome window no later than the first OOT month."""
    complete = sorted(d for d in pd.to_datetime(as_of.unique()) if d + pd.DateOffset(months=months) <= data_end)
    if len(complete) < n_oot + 1:
        raise ValueError(f"uplift needs at least {n_oot + 1} campaign months with a complete {months}-month outcome "
                         f"window before {data_end.date()}, got {[d.date().isoformat() for d in complete]}")
    oot = complete[-n_oot:]
    train = [d for d in complete if d + pd.DateOffset(months=months) <= oot[0]]
    split = pd.Series(None, index=as_of.index, dtype="object")
    split[as_of.isin(train)] = "train"
    split[as_of.isin(oot)] = "oot"
    return split


def build_uplift_frame(
    data_path, product: str, *, outcome_months: int, n_oot_months: int, feature_kwargs: dict,
    data_end: pd.Timestamp,
) -> pd.DataFrame:
    """Randomised rows of ``product``'s campaigns with features as of the campaign month, outcome and split."""
    from bankseg.features.build import build_feature_table

    rows = randomised_contacts(data_path, product)
    rows = rows.assign(split=plan_uplift_split(rows["as_of"], data_end, outcome_months, n_oot_months))
    rows = rows[rows["split"].notna()].reset_index(drop=True)
    rows[OUTCOME] = adoption_outcome(data_path, rows, product, outcome_months)
    kwargs = {k: v for k, v in feature_kwargs.items() if k != "label_settings"}
    features = build_feature_table(data_path, sorted(rows["as_of"].unique()),
                                   customers=np.unique(rows["customer_id"]), **kwargs)
    features["as_of"] = pd.to_datetime(features["as_of"]).astype("datetime64[ms]")
    rows["as_of"] = rows["as_of"].astype("datetime64[ms]")
    return rows.merge(features, on=["customer_id", "as_of"], how="inner", validate="many_to_one")


# ------------------------------------------------------------------------------------------------ the model
class UpliftModel(BaseEstimator):
    """A meta-learner (``learner="t"`` or ``"x"``) estimating a contact's effect on a binary outcome.

    ``frame`` holds the feature columns plus ``treatment`` (1 contacted, 0 held out) and ``outcome`` (0/1).
    ``outcome_params`` are :class:`PropensityModel` arguments of both arms' outcome models (features,
    LightGBM params, calibration ...); ``effect_params`` and ``effect_boost_round`` size the X-learner's
    effect regressors. ``contact_share`` is the randomisation's contact probability (None: the training share).

    Fitted state: ``models_`` ({0: held-out model, 1: contacted model}), ``effect_models_`` (X-learner
    boosters by arm), ``contact_share_``, ``feature_names_``, ``n_rows_`` by arm, ``ate_`` (the training
    rows' observed difference of outcome rates).
    """

    def __init__(self, learner: str = "t", outcome_params: dict | None = None, effect_params: dict | None = None,
                 effect_boost_round: int = 100, contact_share: float | None = None, random_state: int = 0):
        self.learner = learner
        self.outcome_params = outcome_params
        self.effect_params = effect_params
        self.effect_boost_round = effect_boost_round
        self.contact_share = contact_share
        self.random_state = random_state

    def fit(self, frame: pd.DataFrame) -> UpliftModel:
        """Fit both arms' outcome models (and, for ``x``, the effect regressors) on ``frame``."""
        if self.learner not in LEARNERS:
            raise ValueError(f"learner must be one of {LEARNERS}, got {self.learner!r}")
        missing = sorted({TREATMENT, OUTCOME} - set(frame.columns))
        if missing:
            raise ValueError(f"uplift training rows lack columns {missing}")
        t = frame[TREATMENT].to_numpy()
        arms = {arm: frame.loc[t == arm] for arm in (0, 1)}
        self.n_rows_ = {arm: len(rows) for arm, rows in arms.items()}
        self.contact_share_ = float(self.contact_share if self.contact_share is not None else t.mean())
        self.ate_ = float(arms[1][OUTCOME].mean() - arms[0][OUTCOME].mean())
        exclude = [*UPLIFT_KEYS, *(self.outcome_params or {}).get("exclude", ())]
        settings = {**(self.outcome_params or {}), "exclude": exclude, "target": OUTCOME,
                    "random_state": self.random_state}
        self.models_ = {arm: PropensityModel(**settings).fit(rows) for arm, rows in arms.items()}
        self.feature_names_ = list(self.models_[1].feature_names_)
        self.effect_models_ = {}
        if self.learner == "x":
            for arm, rows in arms.items():
                y = rows[OUTCOME].to_numpy(dtype=float)
                other = self.models_[1 - arm].predict_proba(rows)
                imputed = y - other if arm == 1 else other - y
                self.effect_models_[arm] = self._effect_booster(rows, imputed)
        return self

    def _effect_booster(self, rows: pd.DataFrame, target: np.ndarray) -> lgb.Booster:
        params = {"objective": "regression", "learning_rate": 0.05, "num_leaves": 7, "min_data_in_leaf": 100,
                  "verbose": -1, "num_threads": 1, "seed": self.random_state, **(self.effect_params or {})}
        X = self.models_[1]._design_matrix(rows)
        return lgb.train(params, lgb.Dataset(X, target), num_boost_round=self.effect_boost_round)

    def predict_outcomes(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(p0, p1): the outcome probability held out and contacted."""
        check_is_fitted(self, "models_")
        return self.models_[0].predict_proba(frame), self.models_[1].predict_proba(frame)

    def predict_uplift(self, frame: pd.DataFrame) -> np.ndarray:
        """The expected change in the outcome's probability if the customer is contacted."""
        p0, p1 = self.predict_outcomes(frame)
        if self.learner == "t":
            return p1 - p0
        X = self.models_[1]._design_matrix(frame)
        tau0, tau1 = (self.effect_models_[arm].predict(X) for arm in (0, 1))
        g = self.contact_share_
        return g * tau0 + (1.0 - g) * tau1


def fit_propensity_baseline(frame: pd.DataFrame, outcome_params: dict | None, random_state: int = 0) -> PropensityModel:
    """The conversion-propensity model a bank targets with today: the outcome on the same rows, not told who
    was contacted (the yardstick uplift targeting is measured against)."""
    exclude = [*UPLIFT_KEYS, *(outcome_params or {}).get("exclude", ())]
    settings = {**(outcome_params or {}), "exclude": exclude, "target": OUTCOME, "random_state": random_state}
    return PropensityModel(**settings).fit(frame)


# ------------------------------------------------------------------------------------------------ evaluation
def qini_curve(y: Sequence, t: Sequence, uplift: Sequence, n_points: int = 100) -> pd.DataFrame:
    """Incremental outcomes per customer of the population when contacting the top share by ``uplift``.

    At each share s of rows ranked by uplift (highest first): ``gain`` = (treated rate - held-out rate among
    the top s) x s, the incremental outcomes per customer of the book had the top s been contacted;
    ``random`` = the overall uplift x s (contacting at random). Rows with equal uplift are split evenly.
    """
    y, t, u = (np.asarray(a, dtype=float) for a in (y, t, uplift))
    order = np.argsort(-u, kind="stable")
    y, t = y[order], t[order]
    n = len(y)
    shares = np.linspace(0.0, 1.0, n_points + 1)
    k = np.maximum(np.round(shares * n).astype(int), 1)
    nt, nc = np.cumsum(t), np.cumsum(1 - t)
    yt, yc = np.cumsum(y * t), np.cumsum(y * (1 - t))
    rate_t = yt[k - 1] / np.maximum(nt[k - 1], 1)
    rate_c = yc[k - 1] / np.maximum(nc[k - 1], 1)
    gain = np.where(shares > 0, (rate_t - rate_c) * shares, 0.0)
    overall = yt[-1] / max(nt[-1], 1) - yc[-1] / max(nc[-1], 1)
    return pd.DataFrame({"share": shares, "gain": gain, "random": overall * shares})


def auuc(curve: pd.DataFrame) -> float:
    """Area under the uplift (Qini) curve above the random line (incremental outcomes per customer)."""
    return float(np.trapezoid(curve["gain"] - curve["random"], curve["share"]))


def uplift_by_decile(y: Sequence, t: Sequence, uplift: Sequence, true_effect: Sequence | None = None) -> pd.DataFrame:
    """Per decile of predicted uplift (1 = highest): rows, mean predicted uplift, observed uplift (contacted
    minus held-out outcome rate) and, when given, the mean true effect."""
    frame = pd.DataFrame({"y": np.asarray(y, float), "t": np.asarray(t, float), "u": np.asarray(uplift, float)})
    if true_effect is not None:
        frame["true"] = np.asarray(true_effect, float)
    rank = frame["u"].rank(method="first", ascending=False)
    frame["decile"] = np.ceil(rank / len(frame) * 10).clip(1, 10).astype(int)
    rows = []
    for d, g in frame.groupby("decile"):
        row = {"decile": d, "n": len(g), "predicted_uplift": g["u"].mean(),
               "observed_uplift": g.loc[g.t == 1, "y"].mean() - g.loc[g.t == 0, "y"].mean()}
        if "true" in g:
            row["true_effect"] = g["true"].mean()
        rows.append(row)
    return pd.DataFrame(rows)


def captured_true_gain(true_effect: Sequence, score: Sequence, budget: float) -> float:
    """Share of the best achievable true gain that contacting the top ``budget`` share by ``score`` captures."""
    true_effect, score = np.asarray(true_effect, float), np.asarray(score, float)
    k = max(round(budget * len(score)), 1)
    chosen = true_effect[np.argsort(-score, kind="stable")[:k]].sum()
    best = np.sort(true_effect)[::-1][:k].sum()
    return float(chosen / best) if best > 0 else float("nan")


def true_gain_ratio(true_effect: Sequence, score: Sequence, baseline: Sequence, budget: float) -> float:
    """True incremental outcomes of the top ``budget`` by ``score`` over those of the top by ``baseline``."""
    true_effect = np.asarray(true_effect, float)
    k = max(round(budget * len(true_effect)), 1)
    top = lambda s: true_effect[np.argsort(-np.asarray(s, float), kind="stable")[:k]].sum()  # noqa: E731
    base = top(baseline)
    return float(top(score) / base) if base > 0 else float("inf")


def uplift_report(y, t, uplift, *, propensity=None, true_effect=None, budgets=(0.1, 0.2)) -> dict[str, float]:
    """Metrics of predicted uplift on randomised rows (and against the true effects where known)."""
    curve = qini_curve(y, t, uplift)
    out = {"auuc": auuc(curve), "observed_ate": float(curve["random"].iloc[-1]),
           "mean_predicted_uplift": float(np.mean(uplift)), "n_rows": float(len(np.asarray(y)))}
    for b in budgets:
        pct = round(100 * b)
        out[f"qini_gain_at_{pct}pct"] = float(np.interp(b, curve["share"], curve["gain"]))
    if true_effect is not None:
        te = np.asarray(true_effect, float)
        out["corr_true_effect"] = float(np.corrcoef(uplift, te)[0, 1])
        out["spearman_true_effect"] = float(pd.Series(uplift).corr(pd.Series(te), method="spearman"))
        out["mean_true_effect"] = float(te.mean())
        for b in budgets:
            pct = round(100 * b)
            out[f"captured_true_gain_at_{pct}pct"] = captured_true_gain(te, uplift, b)
            if propensity is not None:
                out[f"propensity_captured_true_gain_at_{pct}pct"] = captured_true_gain(te, propensity, b)
                out[f"gain_ratio_vs_propensity_at_{pct}pct"] = true_gain_ratio(te, uplift, propensity, b)
    return out


def campaign_truth(data_path, rows: pd.DataFrame) -> np.ndarray | None:
    """The simulated bank's true adoption effect of each row's contact (None on data without ground truth).

    For metrics only: read from ``ground_truth_campaigns``, which no model ever learns from.
    """
    try:
        truth = read_table(data_path, "ground_truth_campaigns",
                           columns=["customer_id", "month", "campaign", "true_adoption_effect"])
    except FileNotFoundError:
        return None
    truth = truth.assign(as_of=pd.to_datetime(truth["month"]).astype("datetime64[ms]"),
                         campaign=truth["campaign"].astype(str))
    keys = rows[["customer_id", "as_of", "campaign"]].assign(as_of=lambda f: f["as_of"].astype("datetime64[ms]"))
    merged = keys.merge(truth[["customer_id", "as_of", "campaign", "true_adoption_effect"]],
                        on=["customer_id", "as_of", "campaign"], how="left", validate="one_to_one")
    return merged["true_adoption_effect"].to_numpy(dtype=float)
