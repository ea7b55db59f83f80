"""The model review report of one propensity model (churn, conversion, upgrade): model card, validation, SHAP.

What it reads:

- the **training run** in MLflow (by run id): the metrics it logged (``train/*``, ``val/*``, ``oot/*``), the
  resolved config (``config.yaml``: label definition, feature windows, reason-code dictionary), the as_of plan
  (``data_split.json``) and the data fingerprint tag. The metrics table shows the logged numbers themselves, so
  the report and MLflow can never disagree; each cell carries the exact value in ``data-value``;
- the **fitted estimator** (:class:`bankseg.models.propensity.PropensityModel`, unwrapped from the registry);
- the **training frame** of that run: features and labels for the training as_of dates and the out-of-time one
  (``split`` column), as :func:`bankseg.jobs.train.build_training_frame` builds it. Curves, deciles, calibration,
  PSI and fairness are computed on it; the report checks that the out-of-time AUC recomputed on it equals the
  logged one and says so when it does not (data changed since training).

SHAP values (exact TreeSHAP: the pattern cache of :mod:`bankseg.models.treeshap`, equal to ``pred_contrib``) are computed on a stratified sample of stated size
(strata: as_of x label), so the report costs about the same at 50 thousand and at a million customers; the
curves and tables use every labelled row. Customer ids never appear: the example customers are shown by a
keyed pseudonym (:func:`bankseg.data.privacy.pseudonymise`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bankseg.features.dictionary import describe_feature
from bankseg.models import metrics as m
from bankseg.models.explain import (
    aggregate_contributions,
    global_importance,
    importance_by_group,
    top_reason_codes,
    write_reasons,
)
from bankseg.models.propensity import BIAS_COLUMN
from bankseg.reports import html as h
from bankseg.reports import plots

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "cv", "oot", "test")
SPLIT_NAMES = {"train": "Training", "val": "Validation (early stopping)", "cv": "Cross-validation folds",
               "oot": "Out-of-time", "test": "Stratified hold-out"}
# Metrics shown first, in this order; any other logged metric of a split follows alphabetically.
METRIC_ORDER = ("auc", "auc_low_95", "auc_high_95", "gini", "ks", "pr_auc", "lift_10", "capture_10", "brier",
                "base_rate", "n")
METRIC_NAMES = {
    "auc": "ROC AUC", "auc_low_95": "ROC AUC, 95% interval low (DeLong)",
    "auc_high_95": "ROC AUC, 95% interval high (DeLong)", "gini": "Gini", "ks": "KS", "pr_auc": "PR AUC (average precision)",
    "lift_10": "Lift in top 10%", "capture_10": "Share of positives in top 10%", "brier": "Brier score",
    "base_rate": "Positive rate", "n": "Labelled rows", "psi_score": "PSI of the score (train -> out-of-time or hold-out)",
    "bound_auc": "Label bound: AUC knowing the latent state (simulated bank only)",
    "bound_auc_low_95": "Label bound, 95% interval low", "bound_auc_high_95": "Label bound, 95% interval high",
    "auc_vs_bound": "AUC / bound AUC (same rows)", "auc_vs_bound_low_95": "AUC / bound, 95% interval low (paired DeLong)",
    "auc_vs_bound_high_95": "AUC / bound, 95% interval high (paired DeLong)",
    "auc_minus_bound": "AUC - bound AUC", "auc_minus_bound_low_95": "AUC - bound, 95% interval low",
    "auc_minus_bound_high_95": "AUC - bound, 95% interval high",
    "auc_not_started": "AUC on customers whose churn had not started at as_of",
    "auc_churn_start": "AUC against 'churn begins in the next 3 months' (not started)",
    "churn_start_rate": "Share whose churn begins in the next 3 months (not started)",
    "best_iteration": "Trees kept (early stopping)", "n_dropped_unlabelled": "Rows without a label (dropped)",
    "binary_logloss": "Log loss",
}
# Every section of the report, in order: (id, title). The browser tests check these.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("model-card", "Model card"),
    ("metrics", "Validation metrics: training, validation and out-of-time"),
    ("roc-pr", "ROC and precision-recall curves"),
    ("ks", "KS: separation of positives and negatives"),
    ("lift", "Lift and gains by score decile (out-of-time)"),
    ("calibration", "Calibration: predicted probability against observed rate (out-of-time)"),
    ("stability", "Stability: PSI of the score and of the top features"),
    ("shap-global", "What drives the score: SHAP global importance and beeswarm"),
    ("shap-dependence", "How the top features move the score: SHAP dependence"),
    ("shap-personas", "What drives the score in each persona: mean |SHAP| per persona"),
    ("reasons", "What the reason codes say: first reasons across customers (out-of-time)"),
    ("examples", "Three example customers: how their scores are built, with reason codes"),
    ("fairness", "Disparate impact of top-decile selection by age band and gender (80% rule)"),
    ("comparison", "Champion against challenger on the same out-of-time data"),
)


def report_sections(eval_split: str = "oot") -> tuple[tuple[str, str], ...]:
    """:data:`SECTIONS` for a model judged on ``eval_split``: ``test`` (a flat source's hold-out) says so."""
    if eval_split == "oot":
        return SECTIONS
    return tuple((key, title.replace("training, validation and out-of-time", "training, validation and hold-out")
                  .replace("out-of-time", "stratified hold-out")) for key, title in SECTIONS)


@dataclass(frozen=True)
class ModelReportSettings:
    """How the model report is built (``conf/reports/default.yaml`` ``model``)."""

    shap_sample_size: int = 2000
    shap_strata: tuple[str, ...] = ("as_of", "label")
    top_features: int = 15
    dependence_features: int = 4
    psi_features: int = 10
    psi_bins: int = 10
    calibration_bins: int = 10
    hosmer_lemeshow_groups: int = 10
    selection_fraction: float = 0.1
    age_bands: tuple[int, ...] = (0, 30, 45, 60)
    four_fifths: float = 0.8
    min_group_size: int = 30
    waterfall_features: int = 8
    random_state: int = 0
    purposes: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    label_definitions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    limitations: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if self.shap_sample_size < 10:
            problems.append(f"shap_sample_size must be >= 10, got {self.shap_sample_size}")
        if not 0 < self.selection_fraction < 1:
            problems.append(f"selection_fraction must be in (0, 1), got {self.selection_fraction}")
        if list(self.age_bands) != sorted(set(self.age_bands)) or len(self.age_bands) < 2:
            problems.append(f"age_bands must be at least two increasing lower bounds, got {list(self.age_bands)}")
        unknown = sorted(set(self.shap_strata) - {"as_of", "label"})
        if unknown:
            problems.append(f"shap_strata may hold as_of and label only, got {unknown}")
        not_text = [x for x in self.limitations if not isinstance(x, str)]
        if not_text:  # an unquoted "a: b" in YAML silently becomes a mapping
            problems.append(f"limitations must be plain text, got {not_text}")
        if problems:
            raise ValueError("model report settings: " + "; ".join(problems))

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> ModelReportSettings:
        """Settings from the plain ``reports.model`` mapping (lists become tuples)."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"model report settings: unknown keys {unknown}")
        kwargs = dict(cfg)
        for key in ("shap_strata", "age_bands", "limitations"):
            if key in kwargs and kwargs[key] is not None:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)


@dataclass
class ModelRun:
    """What the report needs from a training run: the record in MLflow and the fitted estimator."""

    model: str
    run_id: str
    estimator: Any
    metrics: dict[str, float]
    config: dict[str, Any]
    as_of_plan: dict[str, Any]
    tags: dict[str, str]
    registered_name: str | None = None
    version: str | None = None
    aliases: tuple[str, ...] = ()
    lead_time: pd.DataFrame | None = None  # the run's tables/oot_lead_time.csv (simulated churn only)
    holdout: dict[str, Any] | None = None  # a flat source's stratified hold-out (fraction, seed, n_test ...)

    @property
    def eval_split(self) -> str:
        """The rows the model is judged on: ``oot`` (a later as_of) or ``test`` (a flat source's hold-out)."""
        return "test" if self.holdout else "oot"

    @property
    def eval_name(self) -> str:
        return "hold-out" if self.holdout else "out-of-time"

    @property
    def label(self) -> str:
        if self.version is None:
            return f"run {self.run_id[:8]}"
        alias = f" ({', '.join(self.aliases)})" if self.aliases else ""
        return f"version {self.version}{alias}"


# ------------------------------------------------------------------------------------------- MLflow reading
def read_model_run(run_id: str, estimator, *, registered_name: str | None = None, version: str | None = None,
                   aliases: Sequence[str] = ()) -> ModelRun:
    """The training run's metrics, config, as_of plan and tags from MLflow, with ``estimator`` beside them."""
    import mlflow
    import yaml

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    config = yaml.safe_load(mlflow.artifacts.load_text(f"runs:/{run_id}/config.yaml")) or {}
    split = _data_split(client, run_id)
    model = (config.get("model") or {}).get("name") or run.data.tags.get("bankseg.model", "model")
    logged = {a.path for a in client.list_artifacts(run_id, "tables")}
    lead = None
    if "tables/oot_lead_time.csv" in logged:
        import io

        lead = pd.read_csv(io.StringIO(mlflow.artifacts.load_text(f"runs:/{run_id}/tables/oot_lead_time.csv")))
    return ModelRun(
        model=model, run_id=run_id, estimator=estimator, metrics=dict(run.data.metrics), config=config,
        as_of_plan=split.get("as_of_plan") or {}, holdout=split.get("holdout"), tags=dict(run.data.tags), registered_name=registered_name, version=version,
        aliases=tuple(aliases), lead_time=lead,
    )


def _data_split(client, run_id: str) -> dict[str, Any]:
    """How the run split its rows: ``data_split.json`` (``as_of_plan``, or a flat source's ``holdout``)."""
    import mlflow

    names = {a.path for a in client.list_artifacts(run_id)}
    if "data_split.json" in names:
        split = mlflow.artifacts.load_dict(f"runs:/{run_id}/data_split.json")
        if "as_of_plan" not in split and "holdout" not in split:
            raise ValueError(f"run {run_id} logged neither training as_of dates nor a hold-out (its split is "
                             f"{sorted(split)}): nothing to validate the model on")
        return split
    if "as_of_plan.json" in names:
        return {"as_of_plan": mlflow.artifacts.load_dict(f"runs:/{run_id}/as_of_plan.json")}
    raise ValueError(f"run {run_id} logged no as_of plan (data_split.json or as_of_plan.json)")


def load_registered_run(registered_name: str, *, alias: str | None = None, version: str | None = None) -> ModelRun:
    """A registered propensity model (by alias or version) with its training run's record."""
    import mlflow

    from bankseg.models.pyfunc import unwrap
    from bankseg.models.registry import resolve_version, version_uri

    if (alias is None) == (version is None):
        raise ValueError("give exactly one of alias or version")
    client = mlflow.MlflowClient()
    mv = resolve_version(registered_name, alias) if alias is not None else client.get_model_version(
        registered_name, str(version)
    )
    if not mv.run_id:
        raise ValueError(f"{registered_name} version {mv.version} has no training run to report on")
    estimator = unwrap(mlflow.pyfunc.load_model(version_uri(registered_name, mv.version)))
    if not hasattr(estimator, "contributions"):
        raise ValueError(f"{registered_name} version {mv.version} is not a propensity model (no SHAP contributions)")
    return read_model_run(mv.run_id, estimator, registered_name=registered_name, version=str(mv.version),
                          aliases=tuple(getattr(mv, "aliases", ()) or ()))


# ---------------------------------------------------------------------------------------------- sampling
def stratified_sample(frame: pd.DataFrame, strata: Sequence[str], size: int, seed: int = 0) -> pd.Index:
    """Index labels of a seeded sample of about ``size`` rows, allocated to strata by their share of rows.

    Every non-empty stratum keeps at least one row; a missing value is a stratum of its own (unlabelled rows).
    With ``size`` >= the frame's rows, every row is returned.
    """
    if size >= len(frame):
        return frame.index
    if not strata:
        keys = np.zeros(len(frame), dtype=np.int64)
    else:
        keys = frame.groupby(list(strata), dropna=False, sort=True).ngroup().to_numpy()
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(frame)), keys))  # random order within each stratum
    sorted_keys = keys[order]
    counts = np.bincount(keys)
    quota = np.maximum(np.floor(size * counts / len(frame) + 0.5).astype(np.int64), (counts > 0).astype(np.int64))
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    rank_in_stratum = np.arange(len(frame)) - starts[sorted_keys]
    chosen = order[rank_in_stratum < quota[sorted_keys]]
    return frame.index[np.sort(chosen)]


# ---------------------------------------------------------------------------------------------- helpers
def feature_label(feature: str, language: str = "en") -> str:
    """A feature's readable name from the feature dictionary (its own name when the dictionary lacks it)."""
    try:
        described = describe_feature(feature)
    except ValueError:
        return feature
    return described.name_en if language == "en" else described.name_zh


def age_band_labels(bounds: Sequence[int]) -> list[str]:
    """Readable labels of age bands given by their lower bounds: [0, 30, 45] -> ['under 30', '30-44', '45+']."""
    labels = []
    for i, lower in enumerate(bounds):
        upper = bounds[i + 1] if i + 1 < len(bounds) else None
        if upper is None:
            labels.append(f"{lower}+")
        elif lower <= 0:
            labels.append(f"under {upper}")
        else:
            labels.append(f"{lower}-{upper - 1}")
    return labels


def top_fraction_selected(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the round(fraction * n) highest scores; ties broken by row order (stable)."""
    n = scores.size
    k = max(1, int(np.floor(fraction * n + 0.5)))
    selected = np.zeros(n, dtype=bool)
    selected[np.argsort(-scores, kind="stable")[:k]] = True
    return selected


def disparate_impact(selected: np.ndarray, groups: pd.Series, four_fifths: float = 0.8,
                     min_group_size: int = 30) -> pd.DataFrame:
    """Selection rate per group and its ratio to the most-selected group (the 80% / four-fifths rule).

    Columns: group, n, selected, selection_rate, impact_ratio, verdict (``passes``, ``below 80%``, or
    ``too few to judge`` for groups under ``min_group_size``; those are left out of the reference rate).
    Missing group values form the group ``unknown``.
    """
    labels = groups.astype("str").fillna("unknown").to_numpy()
    table = (
        pd.DataFrame({"group": labels, "selected": selected.astype(np.int64)})
        .groupby("group", sort=True)["selected"].agg(n="size", selected="sum").reset_index()
    )
    table["selection_rate"] = table["selected"] / table["n"]
    judged = table["n"] >= min_group_size
    reference = table.loc[judged, "selection_rate"].max() if judged.any() else np.nan
    table["impact_ratio"] = table["selection_rate"] / reference if reference and reference > 0 else np.nan
    table["verdict"] = np.where(
        ~judged, "too few to judge", np.where(table["impact_ratio"] >= four_fifths, "passes", "below 80%")
    )
    return table


def _labels_of(frame: pd.DataFrame, target: str) -> np.ndarray:
    return frame[target].to_numpy(dtype=float, na_value=np.nan)


def _fmt_metric(name: str, value: float) -> str:
    if name in ("n", "best_iteration", "n_dropped_unlabelled"):
        return f"{value:,.0f}"
    return f"{value:.4f}"


def _metric_table(metrics: Mapping[str, float]) -> str:
    """The logged metrics, one row per metric and one column per split logged; cells carry the exact value."""
    by_split: dict[str, dict[str, float]] = {s: {} for s in SPLITS}
    for key, value in metrics.items():
        split, _, name = key.partition("/")
        if split in by_split and name:
            by_split[split][name] = value
    shown = [s for s in SPLITS if by_split[s]]
    names = [n for n in METRIC_ORDER if any(n in by_split[s] for s in shown)]
    names += sorted({n for s in shown for n in by_split[s]} - set(names))
    rows = []
    for name in names:
        row: list[h.Cell | str] = [h.Cell(METRIC_NAMES.get(name, name)), h.Cell(name)]
        for split in shown:
            if name in by_split[split]:
                value = by_split[split][name]
                row.append(h.Cell(_fmt_metric(name, value), {"data-metric": f"{split}/{name}",
                                                             "data-value": repr(float(value))}, numeric=True))
            else:
                row.append(h.Cell("–"))
        rows.append(row)
    return h.cell_table(["Metric", "MLflow key", *(SPLIT_NAMES[s] for s in shown)], rows, table_id="metrics-table")


# ------------------------------------------------------------------------------------------- the report
def model_report(run: ModelRun, frame: pd.DataFrame, settings: ModelReportSettings, *,
                 challengers: Mapping[str, Any] | None = None, persona_model=None,
                 data_fingerprint: str | None = None) -> h.Report:
    """The model review report as a :class:`~bankseg.reports.html.Report` (render it with ``html.render``).

    ``frame`` is the run's training frame (``split`` = train / oot, or train / test for a flat source's
    stratified hold-out: every section then judges the hold-out and says so). ``challengers`` maps a label ("champion,
    version 3") to another fitted model scored on the same out-of-time rows. ``persona_model`` (a fitted
    :class:`bankseg.models.personas.PersonaModel`) enables the per-persona SHAP section. ``data_fingerprint`` is
    the fingerprint of the data the frame was rebuilt from (compared with the run's).
    """
    est = run.estimator
    target = est.target
    dated = ("as_of",) if run.eval_split == "oot" else ()
    missing = [c for c in ("customer_id", *dated, "split", target) if c not in frame.columns]
    if missing:
        raise ValueError(f"the training frame lacks {missing}")
    splits = set(frame["split"].unique())
    if not {"train", run.eval_split} <= splits:
        raise ValueError(f"the training frame needs train and {run.eval_split} rows, has splits {sorted(splits)}")
    # parts["oot"] holds the rows the model is judged on: out of time, or a flat source's stratified hold-out
    parts = {"train": frame.loc[frame["split"] == "train"], "oot": frame.loc[frame["split"] == run.eval_split]}
    scores = {s: est.predict_proba(part) for s, part in parts.items()}
    labels = {s: _labels_of(part, target) for s, part in parts.items()}
    keep = {s: ~np.isnan(labels[s]) for s in parts}
    y = {s: labels[s][keep[s]].astype(int) for s in parts}
    p = {s: scores[s][keep[s]] for s in parts}
    for s in parts:
        if y[s].size == 0 or y[s].min() == y[s].max():
            raise ValueError(f"the {s} rows need both classes of {target} to be reported on")

    auc = {s: m.roc_auc(y[s], p[s]) for s in parts}
    ap = {s: m.pr_auc(y[s], p[s]) for s in parts}
    names_en = {f: feature_label(f) for f in est.feature_names_}
    report = h.Report(
        title=f"Model review: {run.model} propensity ({run.registered_name or 'unregistered'}, {run.label})",
        subtitle=f"Training run {run.run_id} · {_judged_on(run)} · target {target}",
    )
    titles = dict(report_sections(run.eval_split))
    judged = run.eval_name  # out-of-time | hold-out, in the texts below

    # ---- model card
    report.add(h.Section("model-card", titles["model-card"],
                         "Who the model is for, what it predicts, on which dates and data it was trained, "
                         "and where it should not be trusted.",
                         tuple(_model_card(run, parts, y, settings, data_fingerprint, auc))))

    # ---- metrics
    report.add(h.Section(
        "metrics", titles["metrics"],
        "Each number is the value logged to MLflow for this run. Higher AUC, Gini, KS and lift are better; a "
        "lower Brier score is better. " + (
            "Out-of-time is the honest estimate: a later date than any training label." if run.eval_split == "oot"
            else "This source has no time axis: the honest estimate is the stratified hold-out, rows never used "
                 "in training (nor for early stopping or calibration)."),
        (_metric_table(run.metrics),
         h.paragraph("Validation is the early-stopping hold-out inside the training rows; only the metric "
                     "LightGBM watched there is recorded for it."),
         *_bound_and_lead_time(run))))

    # ---- ROC / PR
    curves = {"Training": (y["train"], p["train"]), judged.capitalize(): (y["oot"], p["oot"])}
    report.add(h.Section(
        "roc-pr", titles["roc-pr"],
        "The further a curve bows toward the top-left (ROC) or top-right (precision-recall), the better the "
        "model ranks customers; the dashed line is random ordering, the dotted lines the base rates.",
        (h.figure(plots.roc_curves(curves, {"Training": auc["train"], judged.capitalize(): auc["oot"]}), "ROC curve"),
         h.figure(plots.pr_curves(curves, {"Training": ap["train"], judged.capitalize(): ap["oot"]}),
                  "Precision-recall curve"))))

    # ---- KS
    ks_oot = m.ks(y["oot"], p["oot"])
    report.add(h.Section(
        "ks", titles["ks"],
        "Customers are sorted from highest to lowest score; the two curves show how fast positives and negatives "
        "are reached. KS is the widest gap between them (0 = no separation, 1 = perfect).",
        (h.figure(plots.ks_plot(y["oot"], p["oot"], ks_oot, f"KS plot, {judged}"), "KS plot"),)))

    # ---- lift
    deciles = m.decile_table(y["oot"], p["oot"])
    report.add(h.Section(
        "lift", titles["lift"],
        "Decile 1 holds the 10% of customers with the highest scores. Lift 3 means that decile's rate is three "
        "times the average; the gains curve shows the share of all positives found by contacting the top X%.",
        (h.figure(plots.lift_and_gains(deciles), "Lift and gains"),
         h.table(deciles, formats={"rate": ".2%", "cum_capture": ".1%", "lift": ".2f", "min_score": ".4f",
                                   "max_score": ".4f"},
                 headers={"rate": "positive rate", "cum_capture": "cumulative capture", "n": "customers"},
                 shade={"lift": "#1f5f8b"}, table_id="deciles-table"))))

    # ---- calibration
    cal = m.calibration_table(y["oot"], p["oot"], n_bins=settings.calibration_bins)
    hl = m.hosmer_lemeshow(y["oot"], p["oot"], groups=settings.hosmer_lemeshow_groups)
    verdict = ("consistent with the observed rates (p >= 0.05)" if hl.p_value >= 0.05
               else "significantly different from the observed rates (p < 0.05)")
    report.add(h.Section(
        "calibration", titles["calibration"],
        "Points on the dashed diagonal mean a predicted 20% really happens to 20% of customers; points above it "
        "mean the model under-predicts, below it over-predicts.",
        (h.figure(plots.calibration_plot(cal, hl.statistic, hl.p_value), "Calibration curve"),
         h.callout(f"Hosmer-Lemeshow on {settings.hosmer_lemeshow_groups} score groups: statistic "
                   f"{hl.statistic:.2f}, p-value {hl.p_value:.4f}; the predicted probabilities are {verdict}. "
                   f"Brier score {m.brier(y['oot'], p['oot']):.4f}. Calibration method: "
                   f"{getattr(est, 'calibration_method_', None) or 'none'}.",
                   "good" if hl.p_value >= 0.05 else "warn"),
         h.table(cal, formats={"lower": ".4f", "upper": ".4f", "mean_predicted": ".4f", "observed_rate": ".4f"},
                 table_id="calibration-table"))))

    # ---- SHAP (sample) -- computed before stability, which ranks features by it
    sample_idx = _shap_sample(frame, target, settings)
    sample = frame.loc[sample_idx]
    contrib = est.contributions(sample)
    importance = global_importance(contrib)
    top = list(importance.index[: settings.top_features])

    # ---- stability
    report.add(h.Section("stability", titles["stability"],
                         f"PSI compares how customers spread over bins in training and {judged}: below 0.1 "
                         "stable, 0.1 to 0.25 a moderate shift worth watching, above 0.25 a major shift.",
                         tuple(_stability(parts, scores, run, top, names_en, settings))))

    # ---- SHAP global
    strata_text = " x ".join(settings.shap_strata) or "none"
    sample_note = (f"SHAP values are exact TreeSHAP contributions (equal to LightGBM pred_contrib, log-odds units) on a "
                   f"seeded sample of {len(sample):,} of {len(frame):,} rows, stratified by {strata_text} "
                   f"(setting shap_sample_size = {settings.shap_sample_size:,}).")
    imp_table = pd.DataFrame({
        "feature": top,
        "name": [names_en[f] for f in top],
        "中文": [feature_label(f, "zh") for f in top],
        "mean |SHAP|": importance.loc[top].to_numpy(),
    })
    report.add(h.Section(
        "shap-global", titles["shap-global"],
        "Longer bars move the score more on average. In the beeswarm each dot is a customer: dots right of zero "
        "raise the score, left lower it; red dots have high values of the feature, blue low.",
        (h.paragraph(sample_note),
         h.figure(plots.importance_bars(importance.loc[top].rename(index=names_en), "Global importance"),
                  "SHAP global importance"),
         h.figure(plots.beeswarm(contrib[top], sample[top], names_en), "SHAP beeswarm"),
         h.table(imp_table, formats={"mean |SHAP|": ".4f"}, table_id="importance-table"))))

    # ---- dependence
    dep = top[: settings.dependence_features]
    report.add(h.Section(
        "shap-dependence", titles["shap-dependence"],
        "Each panel plots a feature's value (across) against how much it moved the score (up). A rising cloud "
        "means higher values raise the score; a flat one means the feature matters little in that range.",
        (h.figure(plots.dependence_plots(contrib[dep], sample[dep], names_en), "SHAP dependence plots"),)))

    # ---- personas
    report.add(h.Section(
        "shap-personas", titles["shap-personas"],
        "Rows are features, columns personas; a darker cell means the feature moves this persona's scores more. "
        "Different columns mean the model relies on different signals for different kinds of customer.",
        tuple(_persona_importance(contrib, sample, top, names_en, persona_model))))

    # ---- reason codes: their spread over customers, then three customers
    reasons = _reason_codes(run, est, parts["oot"], settings)
    report.add(h.Section(
        "reasons", titles["reasons"],
        "Each customer gets up to three reasons: the business features pushing the score the configured way, "
        "with the customer's own value. If one reason came first for most customers, a relationship manager "
        "would hear the same sentence every time.",
        tuple(_first_reasons(reasons))))
    report.add(h.Section(
        "examples", titles["examples"],
        "Each chart starts at the model's average (base) and adds each feature's push up (red) or down (blue) "
        "until it reaches the customer's score; the reason codes are the business reasons pushing it up most.",
        tuple(_examples(run, sample, contrib, est, settings, reasons))))

    # ---- fairness
    report.add(h.Section(
        "fairness", titles["fairness"],
        "If the top-scored 10% were selected for action, what share of each group would be chosen? A group whose "
        "rate is under 80% of the most-selected group's fails the four-fifths rule and needs a business reason.",
        tuple(_fairness(parts["oot"], scores["oot"], settings, judged))))

    # ---- champion / challenger
    report.add(h.Section(
        "comparison", titles["comparison"],
        f"Both models score the same {judged} customers; the better model has the higher AUC, KS and lift and "
        "the lower Brier score. Promotion (bankseg-promote) applies the gate from the promotion config.",
        tuple(_comparison(run, parts["oot"], y["oot"], p["oot"], keep["oot"], challengers or {}))))
    return report


def _model_card(run: ModelRun, parts, y, settings: ModelReportSettings, fingerprint_now: str | None,
                auc: Mapping[str, float]) -> list[str]:
    est, cfg = run.estimator, run.config
    purpose = settings.purposes.get(run.model, {})
    definition = _source_label_definition(run) or settings.label_definitions.get(run.model, {})
    label_cfg = (cfg.get("labels") or {}).get(run.model, {})
    try:
        definition_en = definition.get("en", "").format(**label_cfg)
        definition_zh = definition.get("zh", "").format(**label_cfg)
    except (KeyError, IndexError, ValueError) as err:
        raise ValueError(f"label definition template of {run.model} needs a labels setting it lacks: {err}") from err
    windows = (cfg.get("features") or {}).get("windows")
    fingerprint = run.tags.get("bankseg.data_fingerprint")
    # Models registered before refit_on_val / calibration_cv lack the last three attributes.
    held_rows = getattr(est, "n_rows_", {})
    tree_rows = getattr(est, "n_tree_rows_", held_rows.get("fit", 0))
    calibration_rows = getattr(est, "n_calibration_rows_", held_rows.get("calibration", 0))
    calibration_kind = (f"cross-fitted ({est.calibration_cv} inner folds)" if getattr(est, "cross_fitted_", False)
                        else "held-out")
    pairs = [
        ("Model", f"{run.model} ({run.registered_name or 'not registered'}, {run.label})"),
        ("Purpose", purpose.get("en", "–")),
        ("用途", purpose.get("zh", "–")),
        ("Target (label)", f"{est.target}: {definition_en or '–'}"),
        ("标签定义", definition_zh or "–"),
        *_validation_pairs(run),
        ("Feature windows (months before as_of)", ", ".join(map(str, windows)) if windows else "–"),
        ("Data fingerprint (at training)", fingerprint or "–"),
        (f"Rows (train / {run.eval_name})", f"{len(parts['train']):,} / {len(parts['oot']):,}"),
        ("Labelled rows and positive rate (train)", f"{y['train'].size:,}, {y['train'].mean():.2%}"),
        (f"Labelled rows and positive rate ({run.eval_name})", f"{y['oot'].size:,}, {y['oot'].mean():.2%}"),
        ("Algorithm", f"LightGBM, {getattr(est, 'best_iteration_', '?')} trees (the number early stopping chose), "
                      f"grown on {tree_rows:,} training rows, "
                      f"num_leaves {est.params_.get('num_leaves')}, max_depth {est.params_.get('max_depth')}, "
                      f"class weight {getattr(est, 'scale_pos_weight_', 1.0):.2f}"),
        ("Calibration", f"{getattr(est, 'calibration_method_', None) or 'none'} on "
                        f"{calibration_rows:,} {calibration_kind} training rows"),
        ("Training run", f"{run.run_id} (git {run.tags.get('mlflow.source.git.commit', 'unknown')[:10]})"),
    ]
    blocks = [h.key_values(pairs)]
    logged, judged = run.metrics.get(f"{run.eval_split}/auc"), run.eval_name
    if logged is not None:
        if np.isclose(logged, auc["oot"], rtol=0, atol=1e-9):
            blocks.append(h.callout(
                f"Rebuilt data check: the {judged} AUC recomputed for this report ({auc['oot']:.4f}) equals the "
                "one logged at training, so the curves below describe the same data.", "good"))
        else:
            blocks.append(h.callout(
                f"Rebuilt data check FAILED: the {judged} AUC recomputed for this report ({auc['oot']:.4f}) "
                f"differs from the one logged at training ({logged:.4f}); the data changed since training "
                f"(fingerprint then {fingerprint or 'unknown'}, now {fingerprint_now or 'unknown'}). The metrics "
                "table shows the logged values; the charts show today's data.", "bad"))
    limitations = list(settings.limitations)
    limitations.append(_validation_limitation(run))
    if fingerprint_now is not None and fingerprint is not None and fingerprint_now != fingerprint:
        limitations.append("The dataset's fingerprint differs from the one recorded at training.")
    blocks += [h.heading("Limitations"), h.bullet_list(limitations)]
    features = pd.DataFrame({
        "feature": est.feature_names_,
        "name": [feature_label(f) for f in est.feature_names_],
        "中文": [feature_label(f, "zh") for f in est.feature_names_],
        "kind": ["categorical" if f in set(est.categorical_features_) else "numeric" for f in est.feature_names_],
    })
    blocks.append(h.details(f"Features used ({len(features)}): click to show the list",
                            [h.table(features, table_id="features-table")]))
    return blocks


def _source_label_definition(run: ModelRun) -> dict[str, str] | None:
    """A flat source brings its own label (a column of the file), not the simulated bank's label rules."""
    label = ((run.config.get("data") or {}).get("label") or {}) if run.holdout else {}
    if not label:
        return None
    source = (run.config.get("data") or {}).get("name", "the source")
    return {"en": f"the source's own label: column {label.get('column')} == {label.get('positive')!r} in {source}",
            "zh": f"数据源自带标签:{source} 的 {label.get('column')} 列等于 {label.get('positive')!r}"}


def _judged_on(run: ModelRun) -> str:
    """What the model is judged on, in a few words (the report's subtitle)."""
    if run.holdout:
        return f"validated on a stratified {run.holdout.get('fraction', 0):.0%} hold-out (no time axis)"
    return f"out-of-time as_of {run.as_of_plan.get('oot')}"


def _validation_pairs(run: ModelRun) -> list[tuple[str, str]]:
    """The model card's rows saying how the model was validated: dates, or a flat source's hold-out."""
    if not run.holdout:
        return [("Training as_of dates", ", ".join(run.as_of_plan.get("train", []))),
                ("Out-of-time as_of date", str(run.as_of_plan.get("oot")))]
    held = run.holdout
    cv = sorted(k for k in run.metrics if k.startswith("cv/"))
    pairs = [("Validation", f"stratified hold-out instead of out-of-time: this data source is one snapshot with no "
                            f"time axis, so {held.get('fraction', 0):.0%} of the rows ({held.get('n_test', 0):,}, "
                            f"stratified by {held.get('stratified_by', 'the label')}, seed {held.get('seed')}) were "
                            f"set aside before training and never seen by it")]
    if cv:
        pairs.append(("Cross-validation", f"{len(cv)} cv/ metrics logged (folds of the training rows): "
                                          "shown in the metrics table"))
    return pairs


def _validation_limitation(run: ModelRun) -> str:
    if run.holdout:
        return ("Validated on a random hold-out of the same snapshot, not on a later period: it measures how "
                "well the model ranks customers like those it learned from, not how it holds up as customers and "
                "the bank change over time. Re-validate on fresh data before relying on it.")
    return (f"Out-of-time validation uses a single later as_of date ({run.as_of_plan.get('oot')}); "
            "performance can drift further beyond it (see the stability section).")


def _bound_and_lead_time(run: ModelRun) -> list[str]:
    """The label's upper bound and what the model sees in time (simulated bank: both need the ground truth)."""
    metrics, blocks = run.metrics, []
    if "oot/bound_auc" in metrics:
        ratio, lo, hi = (metrics[f"oot/auc_vs_bound{s}"] for s in ("", "_low_95", "_high_95"))
        text = (f"Upper bound: a model given the same features plus the simulator's latent state at as_of (the churn "
                f"process's state, the dissatisfaction behind it, the true hazards), trained on the same rows, "
                f"reaches out-of-time AUC {metrics['oot/bound_auc']:.3f} "
                f"[{metrics['oot/bound_auc_low_95']:.3f}, {metrics['oot/bound_auc_high_95']:.3f}] on exactly the "
                f"rows this model is scored on. This model reaches {ratio:.1%} of it (paired DeLong 95% interval "
                f"{lo:.1%} to {hi:.1%}).")
        if lo > 1.0:
            blocks.append(h.callout(text + " The model beats its bound beyond the interval: a leak, or a wrong "
                                    "bound. Do not use this model until that is explained.", "bad"))
        else:
            blocks.append(h.callout(text + " It does not beat the bound: no sign of a label leak.", "good"))
    if run.lead_time is not None and not run.lead_time.empty:
        blocks += [
            h.heading("Lead time: what the model sees before the drain"),
            h.paragraph("AUC on all in-scope customers; on those whose churn had not started at as_of (still "
                        "active in the ground truth); and, for the churners, by how many months after as_of "
                        "their balances began to drain (each group's positives against all non-churners). "
                        "An early warning is worth what it sees months ahead."),
            h.table(run.lead_time, formats={"auc": ".3f", "auc_low_95": ".3f", "auc_high_95": ".3f"},
                    headers={"auc_low_95": "95% low", "auc_high_95": "95% high"}, table_id="lead-time-table"),
        ]
    return blocks


def _shap_sample(frame: pd.DataFrame, target: str, settings: ModelReportSettings) -> pd.Index:
    """A flat source has no as_of: its sample is stratified by the label alone."""
    strata = [s for s in settings.shap_strata if s == "label" or s in frame.columns]
    columns = {"label": frame[target], **({"as_of": frame["as_of"]} if "as_of" in strata else {})}
    strata_frame = pd.DataFrame(columns, index=frame.index)
    return stratified_sample(strata_frame, strata, settings.shap_sample_size, settings.random_state)


def _stability(parts, scores, run: ModelRun, top: Sequence[str], names_en, settings) -> list[str]:
    score_psi = m.psi(scores["train"], scores["oot"], bins=settings.psi_bins)
    logged, ev = run.metrics.get(f"{run.eval_split}/psi_score"), run.eval_split
    features = [f for f in top[: settings.psi_features]]
    feature_psi = m.psi_table(parts["train"][features], parts["oot"][features], bins=settings.psi_bins)
    feature_psi.insert(1, "name", feature_psi["column"].map(names_en))
    feature_psi["band"] = np.select([feature_psi["psi"] > 0.25, feature_psi["psi"] > 0.1],
                                    ["major shift", "moderate shift"], "stable")
    series = pd.concat([pd.Series({"model score": score_psi.value}),
                        feature_psi.set_index("name")["psi"]])
    note = (f"Score PSI {score_psi.value:.4f} over {len(score_psi.table)} bins cut at the training scores' "
            f"deciles ({settings.psi_bins} requested; tied cut points merge)"
            + (f"; logged at training as {ev}/psi_score = {logged:.4f}." if logged is not None else "."))
    return [
        h.paragraph(note),
        h.figure(plots.psi_by_feature(series), "PSI by variable"),
        h.figure(plots.psi_bins(score_psi.table, "Score distribution by PSI bin"), "Score PSI bins"),
        h.table(score_psi.table, formats={"lower": ".4f", "upper": ".4f", "expected_share": ".2%",
                                          "actual_share": ".2%", "contribution": ".4f"},
                headers={"expected_n": "train n", "actual_n": f"{run.eval_name} n", "expected_share": "train share",
                         "actual_share": f"{run.eval_name} share"}, caption="Score PSI by bin", table_id="psi-score-table"),
        h.table(feature_psi, formats={"psi": ".4f"}, shade={"psi": "#b42318"},
                caption=f"PSI of the top {len(features)} features by SHAP importance ({settings.psi_bins} "
                        "quantile bins of the training values; categories for categorical features; missing "
                        "values their own bin)", table_id="psi-features-table"),
    ]


def _persona_importance(contrib, sample, top, names_en, persona_model) -> list[str]:
    if persona_model is None:
        return [h.callout("No persona model (bankseg-personas champion) was available when this report was "
                          "built, so SHAP cannot be broken down by persona. Train one with "
                          "`bankseg-train model=personas` and rebuild the report.", "warn")]
    try:
        ids = np.asarray(persona_model.predict(sample), dtype=int)
    except ValueError as err:
        return [h.callout(f"The persona model could not assign personas to the sample: {err}", "warn")]
    names = getattr(persona_model, "names_", {}) or {}
    persona = pd.Series([f"{i} {names.get(int(i), {}).get('en', '')}".strip() for i in ids], index=sample.index,
                        name="persona")
    by_persona = importance_by_group(contrib[top], persona)
    counts = persona.value_counts().sort_index()
    zh = pd.DataFrame({"persona": counts.index, "中文": [
        names.get(int(str(k).split(" ")[0]), {}).get("zh", "") for k in counts.index], "rows in sample": counts.to_numpy()})
    return [
        h.figure(plots.heatmap(by_persona.rename(index=names_en), "Mean |SHAP| by persona (log-odds)",
                               fmt="{:.2f}"), "Mean absolute SHAP per persona"),
        h.table(zh, caption="Personas in the SHAP sample", table_id="personas-table"),
    ]


@dataclass(frozen=True)
class _Reasons:
    """Reason codes of the report: the settings (groups, writer) and the codes of a uniform sample of the rows
    the model is judged on (``judged``: out-of-time, or a flat source's hold-out)."""

    settings: Any
    codes: pd.DataFrame
    n_rows: int
    judged: str


def _reason_codes(run: ModelRun, est, oot: pd.DataFrame, settings: ModelReportSettings) -> _Reasons:
    """The run's reason-code settings, as the segmenter would build them, and the codes of a seeded uniform
    sample of the out-of-time rows (the SHAP sample is stratified by label, so it would misstate the spread)."""
    from bankseg.models.explain import reason_codes_for
    from bankseg.scoring.segmenter import reason_code_settings

    model_cfg = run.config.get("model") or {}
    rc = dict(model_cfg.get("reason_codes") or {})
    text_cfg = dict(rc.pop("dictionary", None) or _packaged_reason_dictionary())
    specs = text_cfg.pop("groups")
    data_cfg = run.config.get("data") or {}
    rng = np.random.default_rng(settings.random_state)
    rows = oot.iloc[np.sort(rng.permutation(len(oot))[: settings.shap_sample_size])]
    rcs = reason_code_settings(est.feature_names_, rc, specs, text_cfg, rows, str(data_cfg.get("currency", "CNY")),
                               feature_labels=data_cfg.get("labels"))
    codes = reason_codes_for(est, rows, rcs.groups, rcs.dictionary, k=rcs.top_k, direction=rcs.direction,
                             writer=rcs.writer)
    return _Reasons(rcs, codes, len(oot), run.eval_name)


def _packaged_reason_dictionary() -> dict:
    from importlib import resources

    import yaml

    text = resources.files("bankseg.conf").joinpath("model", "reason_codes.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def first_reason_spread(codes: pd.DataFrame, dictionary: Mapping[str, Mapping[str, str]]) -> pd.DataFrame:
    """Customers per first reason code, most common first: code, en and zh label, customers, share."""
    first = codes["reason_1"].astype(object).where(codes["reason_1"].notna(), "(none)")
    counts = first.value_counts(sort=True)
    return pd.DataFrame({
        "code": counts.index,
        "reason": [dictionary.get(c, {}).get("en", "no reason pushes the score up") for c in counts.index],
        "中文": [dictionary.get(c, {}).get("zh", "无推高评分的原因") for c in counts.index],
        "customers": counts.to_numpy(),
        "share": counts.to_numpy() / max(len(first), 1),
    })


def _first_reasons(reasons: _Reasons) -> list[str]:
    spread = first_reason_spread(reasons.codes, reasons.settings.dictionary)
    top = spread.iloc[0]
    if top["share"] > 0.5:
        verdict = h.callout(
            f"One reason comes first for most customers: {top['reason']} ({top['share']:.0%}). The model has one "
            f"main driver here; the sentences still differ by each customer's value, but the second and third "
            f"reasons carry what tells customers apart.", "warn")
    else:
        verdict = h.callout(f"No single reason comes first for most customers: the most common, {top['reason']}, "
                            f"covers {top['share']:.0%}.", "good")
    return [
        h.paragraph(f"First reason of {len(reasons.codes):,} {reasons.judged} customers drawn uniformly (seeded) from "
                    f"{reasons.n_rows:,}; scope of reason codes in scoring: {reasons.settings.scope}; direction "
                    f"{reasons.settings.direction}. Correlated features form one reason (codes joined by +)."),
        verdict,
        h.table(spread, formats={"share": ".1%"}, table_id="first-reasons-table"),
    ]


def _examples(run: ModelRun, sample, contrib, est, settings: ModelReportSettings, reasons: _Reasons) -> list[str]:
    from bankseg.data.privacy import pseudonymisation_key, pseudonymise

    rcs = reasons.settings
    grouped = aggregate_contributions(contrib, rcs.groups)
    codes = top_reason_codes(grouped, k=rcs.top_k, direction=rcs.direction, dictionary=rcs.dictionary)
    if rcs.writer is not None:
        codes = write_reasons(codes, contrib, sample, rcs.groups, rcs.top_k, rcs.direction, rcs.writer)
    labelled_oot = sample.index[((sample["split"] == run.eval_split) & sample[est.target].notna()).to_numpy()]
    pool = labelled_oot if len(labelled_oot) >= 3 else sample.index
    score = pd.Series(est.predict_proba(sample.loc[pool]), index=pool).sort_values(ascending=False, kind="stable")
    picks = {
        "highest score": score.index[0],
        "at the top-decile cut-off": score.index[min(len(score) - 1, int(len(score) * settings.selection_fraction))],
        "median score": score.index[len(score) // 2],
    }
    pseudonyms = pseudonymise(sample.loc[list(picks.values()), "customer_id"], pseudonymisation_key())
    blocks = [h.paragraph(f"Customers are drawn from the labelled {run.eval_name} rows of the SHAP sample and shown by a keyed "
                          f"pseudonym, never their id. Reason codes group raw features into business reasons "
                          f"(direction: {rcs.direction}) and say the customer's value against its comparison.")]
    items = []
    for (what, idx), pseudonym in zip(picks.items(), pseudonyms, strict=True):
        row = contrib.loc[idx].drop(BIAS_COLUMN)
        order = row.abs().sort_values(ascending=False, kind="stable").index
        shown = row.loc[order[: settings.waterfall_features]]
        rest = row.loc[order[settings.waterfall_features:]].sum()
        shown.index = [feature_label(f) for f in shown.index]
        if len(order) > settings.waterfall_features:
            shown.loc[f"{len(order) - settings.waterfall_features} other features"] = rest
        label_value = sample.at[idx, est.target]
        outcome = "unknown" if pd.isna(label_value) else ("yes" if label_value == 1 else "no")
        reasons_text = [
            f"{codes.at[idx, f'reason_{i}_en']} / {codes.at[idx, f'reason_{i}_zh']} "
            f"({codes.at[idx, f'reason_{i}_value']:+.2f})"
            for i in range(1, rcs.top_k + 1) if not pd.isna(codes.at[idx, f"reason_{i}"])
        ]
        title = f"Customer {pseudonym} ({what}): probability {score.loc[idx]:.1%}, outcome {outcome}"
        items.append(h.card(title, [
            h.figure(plots.waterfall(shown, float(contrib.at[idx, BIAS_COLUMN]), f"customer {pseudonym}"),
                     f"SHAP waterfall of customer {pseudonym}"),
            h.paragraph("Reason codes: " + ("; ".join(reasons_text) if reasons_text else "none push the score up")),
        ]))
    blocks.append(h.cards(items, wide=True))
    return blocks


# Columns the fairness section groups by: the canonical feature name first, then a flat source's usual names.
AGE_COLUMNS = ("cust_age", "age")
GENDER_COLUMNS = ("cust_gender", "gender")


def _first_column(frame: pd.DataFrame, names: Sequence[str]) -> str | None:
    """The first of ``names`` that is a column of ``frame`` (compared case-insensitively)."""
    lower = {str(c).lower(): c for c in frame.columns}
    return next((lower[n] for n in names if n in lower), None)


def _fairness(oot: pd.DataFrame, scores: np.ndarray, settings: ModelReportSettings,
              judged: str = "out-of-time") -> list[str]:
    selected = top_fraction_selected(scores, settings.selection_fraction)
    blocks = [h.paragraph(
        f"Selection: the top {settings.selection_fraction:.0%} of all {len(oot):,} {judged} customers by "
        f"score ({int(selected.sum()):,} customers). Impact ratio = a group's selection rate / the highest "
        f"group's rate; below {settings.four_fifths:.0%} fails the four-fifths rule. Groups under "
        f"{settings.min_group_size} customers are not judged. A failure is not proof of unfairness (a churn "
        "model should select the customers who churn); it is a prompt to check the business reason.")]
    attributes = []
    age, gender = _first_column(oot, AGE_COLUMNS), _first_column(oot, GENDER_COLUMNS)
    if age is not None:
        bounds = list(settings.age_bands)
        band = pd.cut(oot[age].to_numpy(dtype=float, na_value=np.nan), bins=[*bounds, np.inf], right=False,
                      labels=age_band_labels(bounds))
        attributes.append(("Age band", pd.Series(band, index=oot.index)))
    if gender is not None:
        attributes.append(("Gender", oot[gender]))
    if not attributes:
        return [*blocks, h.callout("The data has no age or gender column: disparate impact cannot be checked.",
                                   "warn")]
    tables = {}
    for name, groups in attributes:
        table = disparate_impact(selected, groups, settings.four_fifths, settings.min_group_size)
        tables[name] = table
        failing = table.loc[table["verdict"] == "below 80%", "group"].tolist()
        blocks.append(h.callout(
            f"{name}: " + ("every judged group passes the 80% rule." if not failing
                           else f"below 80% of the most-selected group: {', '.join(failing)}."),
            "good" if not failing else "warn"))
        blocks.append(h.table(table, formats={"selection_rate": ".2%", "impact_ratio": ".3f"},
                              caption=f"Selection by {name.lower()}",
                              table_id=f"fairness-{name.lower().replace(' ', '-')}"))
    ratios = pd.DataFrame({
        "impact ratio": pd.concat([t.set_index("group")["impact_ratio"].rename(lambda g, n=n: f"{n}: {g}")
                                   for n, t in tables.items()])
    })
    blocks.insert(1, h.figure(plots.grouped_bars(ratios, "Impact ratio of top-decile selection", "impact ratio",
                                                 reference=settings.four_fifths, reference_label="80% rule"),
                              "Disparate impact ratios"))
    return blocks


def _comparison(run: ModelRun, oot: pd.DataFrame, y: np.ndarray, p: np.ndarray, keep: np.ndarray,
                challengers: Mapping[str, Any]) -> list[str]:
    if not challengers:
        return [h.callout("Only one version of this model is registered under the champion and challenger "
                          "aliases (or both aliases point to it), so there is nothing to compare yet.", "info")]
    reports = {f"this model ({run.label})": m.binary_classification_report(y, p)}
    curves = {f"this model ({run.label})": (y, p)}
    blocks = []
    for label, other in challengers.items():
        try:
            q = other.predict_proba(oot)[keep]
        except ValueError as err:
            blocks.append(h.callout(f"{label} cannot score this model's {run.eval_name} rows: {err}", "warn"))
            continue
        reports[label] = m.binary_classification_report(y, q)
        curves[label] = (y, q)
    table = pd.DataFrame(reports).rename_axis("metric").reset_index()
    table["metric"] = table["metric"].map(lambda k: METRIC_NAMES.get(k, k))
    aucs = {k: v["auc"] for k, v in reports.items()}
    blocks = [
        h.paragraph(f"Same {int(keep.sum()):,} labelled {run.eval_name} customers ({_judged_on(run)}) "
                    "for every model."),
        h.table(table, table_id="comparison-table"),
        h.figure(plots.roc_curves(curves, aucs), "ROC curves of champion and challenger"),
        *blocks,
    ]
    return blocks


def build_model_report(run: ModelRun, frame: pd.DataFrame, settings: ModelReportSettings, out_path: Path | str, *,
                       challengers: Mapping[str, Any] | None = None, persona_model=None,
                       data_fingerprint: str | None = None, log_to_mlflow: bool = True) -> Path:
    """Build, write (``out_path``) and log (into the training run, under ``reports/``) the model report.

    Training can call this at the end of :func:`bankseg.jobs.train.run_train` with the estimator, the frame
    it trained on and its run id (``read_model_run(run_id, estimator, ...)``); the report job loads them from
    the registry instead.
    """
    import time

    started = time.perf_counter()
    report = model_report(run, frame, settings, challengers=challengers, persona_model=persona_model,
                          data_fingerprint=data_fingerprint)
    path = h.write_html(h.render(report, footer=f"bankseg model review report · run {run.run_id}"), out_path)
    if log_to_mlflow:
        import mlflow

        mlflow.MlflowClient().log_artifact(run.run_id, str(path), "reports")
    log.info("model report for %s written to %s in %.1f s", run.model, path, time.perf_counter() - started)
    return path
