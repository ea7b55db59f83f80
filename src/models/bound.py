"""The upper bound of a label on the simulated bank: what a model that also knew the latent truth would reach.

A model's AUC means little without the best AUC any model could reach on the same rows. On the simulated bank
the simulator writes each customer's latent state per month beside the dataset (``ground_truth_monthly/``:
the churn process's state and months left in it, the dissatisfaction that drives churn, the true churn and
upgrade hazards, engagement, the wealth a customer's money reverts to). An observer at as_of T could at best
know that state as of month T-1.

The bound is a *privileged model*: the same estimator as the model under review, fitted on the same training
rows and the same label, given the model's features **plus** that latent state, and scored on exactly the rows
the model is scored on. It estimates P(label | features, latent state at as_of), which has strictly more
information than any features-only model; so the model's AUC should not beat it beyond the sampling noise of a
paired DeLong interval, and a model that does is a leak (or the bound is wrong). Unlike the earlier "oracle"
(the month's hazard alone) it learns what else makes the label fire (seasonal dips, departures already under
way, product closures) and it ranks churning customers by how far along they are.

Real datasets have no ground truth: no bound.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bankseg.data.io import read_table, table_path
from bankseg.models import metrics as m

log = logging.getLogger(__name__)

# Latent columns of ground_truth_monthly the privileged model sees (as truth_<name>), at month T-1.
LATENT_COLUMNS: tuple[str, ...] = (
    "state", "phase_months_left", "dissatisfaction", "churn_hazard", "upgrade_hazard", "engagement",
    "target_wealth", "persona_weight",
)
TRUTH_PREFIX = "truth_"


@dataclass(frozen=True)
class BoundResult:
    """The bound's AUC on the evaluation rows and the model's AUC against it (paired DeLong, 95%)."""

    auc: m.AUCInterval  # the privileged model's AUC on the rows
    difference: m.AUCInterval  # model AUC - bound AUC on the same rows
    model_auc: float
    n_rows: int

    def metrics(self) -> dict[str, float]:
        """``bound_auc``, its interval, ``auc_vs_bound`` (model / bound) with the interval of that ratio."""
        b = self.auc.auc
        return {
            "bound_auc": b,
            "bound_auc_low_95": self.auc.low,
            "bound_auc_high_95": self.auc.high,
            "auc_minus_bound": self.difference.auc,
            "auc_minus_bound_low_95": self.difference.low,
            "auc_minus_bound_high_95": self.difference.high,
            "auc_vs_bound": self.model_auc / b,
            "auc_vs_bound_low_95": 1.0 + self.difference.low / b,
            "auc_vs_bound_high_95": 1.0 + self.difference.high / b,
        }


def has_ground_truth(data_path: Path | str | None) -> bool:
    return data_path is not None and table_path(Path(data_path), "ground_truth_monthly") is not None


def latent_state(data_path: Path | str, keys: pd.DataFrame) -> pd.DataFrame:
    """The latent columns (``truth_<name>``) at month T-1 for each (customer_id, as_of) row of ``keys``.

    Rows keep the order of ``keys``; a customer not yet in the bank at T-1 has missing values.
    """
    observed = (pd.to_datetime(keys["as_of"]) - pd.DateOffset(months=1)).dt.to_period("M").dt.to_timestamp()
    months = [pd.Timestamp(t).to_pydatetime() for t in sorted(observed.unique())]
    available = set(read_table(Path(data_path), "ground_truth_monthly", filters=[("month", "in", months[:1])]).columns)
    columns = [c for c in LATENT_COLUMNS if c in available]
    truth = read_table(Path(data_path), "ground_truth_monthly", columns=["customer_id", "month", *columns],
                       filters=[("month", "in", months)])
    truth["month"] = pd.to_datetime(truth["month"]).dt.to_period("M").dt.to_timestamp()
    lookup = pd.DataFrame({"customer_id": keys["customer_id"].to_numpy(), "month": observed.to_numpy()})
    merged = lookup.merge(truth, on=["customer_id", "month"], how="left", validate="many_to_one")
    out = merged[columns].rename(columns=lambda c: TRUTH_PREFIX + c)
    if f"{TRUTH_PREFIX}state" in out:
        out[f"{TRUTH_PREFIX}state"] = out[f"{TRUTH_PREFIX}state"].astype(str).where(merged["state"].notna(), None)
    out.index = keys.index
    return out


def label_bound(
    model, train: pd.DataFrame, held: pd.DataFrame, model_scores: np.ndarray, data_path: Path | str,
    *, max_train_rows: int | None = 200_000, seed: int = 0,
) -> BoundResult | None:
    """Fit the privileged twin of ``model`` (a fitted PropensityModel) and compare it with the model on ``held``.

    ``train`` / ``held`` are the rows ``model`` was fitted / scored on and ``model_scores`` its scores of
    ``held``; the bound is scored on exactly the rows of ``held`` with a label. ``max_train_rows`` caps the
    privileged model's training rows (a stratified-by-chance sample, seeded) so the bound stays cheap at scale.
    None when the data has no ground truth or the rows hold a single class.
    """
    if not has_ground_truth(data_path):
        return None
    from bankseg.models.propensity import PropensityModel

    target = model.target
    if max_train_rows is not None and len(train) > max_train_rows:
        train = train.sample(n=max_train_rows, random_state=seed)
    train_x = pd.concat([train, latent_state(data_path, train)], axis=1)
    held_x = pd.concat([held, latent_state(data_path, held)], axis=1)
    latent = [c for c in train_x.columns if c.startswith(TRUTH_PREFIX)]
    params = {k: v for k, v in model.get_params().items() if k not in ("features", "categorical", "exclude")}
    categorical = [*model.categorical_features_, *[c for c in latent if c == f"{TRUTH_PREFIX}state"]]
    twin = PropensityModel(**params, features=[*model.feature_names_, *latent], categorical=categorical)
    twin.fit(train_x)
    y = held[target].to_numpy(dtype=float)
    keep = ~np.isnan(y)
    if keep.sum() == 0 or len(np.unique(y[keep])) < 2:
        return None
    bound_scores = twin.predict_proba(held_x)[keep]
    labels = y[keep].astype(int)
    result = BoundResult(
        auc=m.roc_auc_ci(labels, bound_scores),
        difference=m.roc_auc_difference_ci(labels, model_scores[keep], bound_scores),
        model_auc=m.roc_auc(labels, model_scores[keep]),
        n_rows=int(keep.sum()),
    )
    log.info("%s: bound AUC %.3f on %d rows; model / bound %.3f", target, result.auc.auc, result.n_rows,
             result.model_auc / result.auc.auc)
    return result


def persona_truth(data_path: Path, customer_ids: np.ndarray) -> np.ndarray | None:
    """The planted persona of each customer id, or None for data without ground truth."""
    path = Path(data_path) / "ground_truth.parquet"
    if not path.exists():
        return None
    truth = pd.read_parquet(path, columns=["customer_id", "persona"])
    return pd.DataFrame({"customer_id": customer_ids}).merge(truth, on="customer_id", how="left")["persona"].to_numpy()


def lead_time(data_path: Path | str, held: pd.DataFrame, scores: np.ndarray, target: str = "label_churn") -> tuple[
    dict[str, float], pd.DataFrame
] | None:
    """What a churn model sees in time, from the ground truth: AUC by how far off the drain was at as_of.

    Rows of ``held`` with a label. Metrics: ``auc_not_started`` (customers still ``active`` at T-1: no churn
    process under way), ``auc_churn_start`` (the score against "churn begins in the next 3 months" among them),
    and a table with one row per group: all in-scope rows, not started, and positives whose drain begins 0, 1,
    2, ... months after as_of (against every negative). None without ground truth.
    """
    if not has_ground_truth(data_path) or target not in held:
        return None
    y = held[target].to_numpy(dtype=float)
    keep = ~np.isnan(y)
    rows, y, p = held[keep], y[keep].astype(int), scores[keep]
    state = latent_state(data_path, rows)[f"{TRUTH_PREFIX}state"].to_numpy()
    drain = _months_to_drain(Path(data_path), rows)
    onset = _months_to_onset(Path(data_path), rows)
    groups = {"all in scope": np.ones(y.size, dtype=bool), "not started at as_of": state == "active"}
    for k in sorted({int(v) for v in drain[(y == 1) & ~np.isnan(drain)]}):
        groups[f"drain begins {k} months after as_of" if k >= 0 else "drain began before as_of"] = (
            (y == 0) | (drain == k)
        )
    table = []
    for name, mask in groups.items():
        if y[mask].min() == y[mask].max():
            continue
        ci = m.roc_auc_ci(y[mask], p[mask])
        table.append({"group": name, "n": int(mask.sum()), "positives": int(y[mask].sum()), "auc": ci.auc,
                      "auc_low_95": ci.low, "auc_high_95": ci.high})
    out: dict[str, float] = {}
    not_started = groups["not started at as_of"]
    if 0 < y[not_started].sum() < not_started.sum():
        out["auc_not_started"] = m.roc_auc(y[not_started], p[not_started])
    starts = (onset >= 0) & (onset < 3)
    if not_started.any() and 0 < starts[not_started].sum() < not_started.sum():
        out["auc_churn_start"] = m.roc_auc(starts[not_started].astype(int), p[not_started])
        out["churn_start_rate"] = float(starts[not_started].mean())
    return out, pd.DataFrame(table)


def _months_after(as_of, when) -> np.ndarray:
    """Whole months from each ``as_of`` to each ``when`` (array-likes of equal length, by position)."""
    a = pd.DatetimeIndex(pd.to_datetime(np.asarray(as_of)))
    w = pd.DatetimeIndex(pd.to_datetime(np.asarray(when)))
    return np.asarray((w.year - a.year) * 12 + (w.month - a.month), dtype=float)


def _months_to_drain(root: Path, rows: pd.DataFrame) -> np.ndarray:
    """Months from as_of to the first draining month on or after T-1 (NaN: no drain in the next year)."""
    as_of = pd.to_datetime(rows["as_of"])
    lo, hi = as_of.min() - pd.DateOffset(months=1), as_of.max() + pd.DateOffset(months=12)
    monthly = read_table(root, "ground_truth_monthly", columns=["customer_id", "month", "state"],
                         filters=[("month", ">=", lo.to_pydatetime()), ("month", "<", hi.to_pydatetime())])
    draining = monthly[monthly["state"].astype(str) == "draining"][["customer_id", "month"]]
    keyed = rows[["customer_id"]].assign(as_of=as_of.to_numpy(), row=np.arange(len(rows)))
    joined = keyed.merge(draining, on="customer_id", how="left")
    joined = joined[pd.to_datetime(joined["month"]) >= joined["as_of"] - pd.DateOffset(months=1)]
    first = joined.groupby("row")["month"].min()
    out = np.full(len(rows), np.nan)
    out[first.index.to_numpy()] = _months_after(keyed["as_of"].to_numpy()[first.index.to_numpy()], first.to_numpy())
    return out


def _months_to_onset(root: Path, rows: pd.DataFrame) -> np.ndarray:
    """Months from as_of to the customer's (last recorded) churn onset; NaN when none."""
    truth = pd.read_parquet(root / "ground_truth.parquet", columns=["customer_id", "churn_onset_month"])
    onset = pd.to_datetime(truth.set_index("customer_id")["churn_onset_month"]).reindex(rows["customer_id"])
    return _months_after(rows["as_of"].to_numpy(), onset.to_numpy())
