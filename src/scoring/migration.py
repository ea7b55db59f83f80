"""Migration between two scoring runs (transition matrices) and drift against the training population (PSI).

Drift: the segmenter stores, per propensity model, the training population's distribution of its score and of
its top features as bins (numeric: inner quantile edges, right-closed bins, open outer bins, plus a missing bin;
categorical: the reference categories, plus "other" and missing) with their expected shares
(:func:`reference_distributions`). At scoring time :func:`drift_counts` counts one chunk of customers into the
same bins (so counts add up over chunks and Spark partitions) and :func:`drift_table` turns the summed counts into
PSI = sum (a - e) ln(a / e), shares floored at ``PSI_EPSILON``, flagged ``watch`` at 0.1 and ``act`` at 0.25.

Migration: :func:`transition_matrices` compares two outputs customer by customer on composite tier, persona, churn
band and quadrant; a customer in only the current run comes from ``new``, one only in the previous run goes to
``gone``. Counts and row shares (share of the ``from`` row), one long table.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from pandas.api.types import is_numeric_dtype

from bankseg.models.metrics import PSI_EPSILON

WATCH_PSI = 0.1
ACT_PSI = 0.25
MISSING = "__missing__"
OTHER = "__other__"
NEW = "new"
GONE = "gone"
MIGRATION_DIMENSIONS: tuple[str, ...] = ("composite_tier", "persona_id", "churn_band", "quadrant")
COUNT_COLUMNS: tuple[str, ...] = ("model", "kind", "variable", "bin", "n")


# ----------------------------------------------------------------------------------------------------- drift
def _numeric_bins(values: np.ndarray, bins: int) -> dict:
    present = values[~np.isnan(values)]
    if present.size == 0:
        inner: list[float] = []
    else:
        edges = np.unique(np.quantile(present, np.linspace(0.0, 1.0, bins + 1)))
        inner = [float(x) for x in edges[1:-1]]
    spec = {"type": "numeric", "edges": inner}
    counts = _count_numeric(values, spec)
    spec["expected"] = (counts / max(counts.sum(), 1)).tolist()
    return spec


def _categorical_bins(values: pd.Series, max_categories: int = 50) -> dict:
    text = values.astype("str").where(values.notna(), None)
    top = text.value_counts(dropna=True).index[:max_categories]
    spec = {"type": "categorical", "categories": sorted(str(c) for c in top)}
    counts = _count_categorical(values, spec)
    spec["expected"] = (counts / max(counts.sum(), 1)).tolist()
    return spec


def _count_numeric(values, spec: Mapping) -> np.ndarray:
    """Counts per bin: len(edges) + 1 value bins, then the missing bin."""
    x = np.asarray(values, dtype=float)
    inner = np.asarray(spec["edges"], dtype=float)
    present = ~np.isnan(x)
    idx = np.searchsorted(inner, x[present], side="left")
    return np.r_[np.bincount(idx, minlength=inner.size + 1), (~present).sum()].astype(np.int64)


def _count_categorical(values, spec: Mapping) -> np.ndarray:
    """Counts per bin: one per reference category, then "other", then missing."""
    series = pd.Series(values)
    missing = series.isna().to_numpy()
    codes = pd.Index(spec["categories"]).get_indexer(series.astype("str").to_numpy())
    n_cat = len(spec["categories"])
    codes = np.where(codes < 0, n_cat, codes)[~missing]
    return np.r_[np.bincount(codes, minlength=n_cat + 1), missing.sum()].astype(np.int64)


def _bin_labels(spec: Mapping) -> list[str]:
    if spec["type"] == "numeric":
        edges = [-np.inf, *spec["edges"], np.inf]
        return [f"({lo:.6g}, {hi:.6g}]" for lo, hi in itertools.pairwise(edges)] + [MISSING]
    return [*spec["categories"], OTHER, MISSING]


def reference_distributions(
    frame: pd.DataFrame,
    scores: Mapping[str, np.ndarray],
    top_features: Mapping[str, Sequence[str]],
    bins: int = 10,
) -> dict:
    """Bin specs and expected shares of each model's score and top features on the reference population.

    Returns ``{"models": {model: {"score": spec, "features": {feature: spec}}}}`` (JSON-able): a numeric spec is
    ``{"type": "numeric", "edges": inner edges, "expected": shares}``, a categorical one ``{"type":
    "categorical", "categories": [...], "expected": shares}``.
    """
    models = {}
    for model, p in scores.items():
        features = {}
        for feature in top_features.get(model, ()):
            column = frame[feature]
            if is_numeric_dtype(column) and not isinstance(column.dtype, pd.CategoricalDtype):
                features[feature] = _numeric_bins(column.to_numpy(dtype=float, na_value=np.nan), bins)
            else:
                features[feature] = _categorical_bins(column)
        models[model] = {"score": _numeric_bins(np.asarray(p, dtype=float), bins), "features": features}
    return {"models": models, "bins": bins, "watch_psi": WATCH_PSI, "act_psi": ACT_PSI}


def drift_columns(reference: Mapping) -> list[str]:
    """The columns :func:`drift_counts` reads: every model's top features and ``p_<model>``."""
    columns = []
    for model, spec in reference.get("models", {}).items():
        columns += [f"p_{model}", *spec["features"]]
    return list(dict.fromkeys(columns))


def drift_counts(reference: Mapping, frame: pd.DataFrame) -> pd.DataFrame:
    """Counts of one chunk (scores ``p_<model>`` and features) in the reference bins; sum them over chunks."""
    rows = []
    for model, spec in reference.get("models", {}).items():
        items = [("score", f"p_{model}", spec["score"])] + [("feature", f, s) for f, s in spec["features"].items()]
        for kind, variable, bin_spec in items:
            if variable not in frame.columns:
                raise ValueError(f"drift: the scored chunk lacks column {variable!r}")
            values = frame[variable]
            if bin_spec["type"] == "numeric":
                counts = _count_numeric(pd.to_numeric(values, errors="coerce").to_numpy(dtype=float), bin_spec)
            else:
                counts = _count_categorical(values, bin_spec)
            rows.append(pd.DataFrame({
                "model": model, "kind": kind, "variable": variable, "bin": np.arange(len(counts)), "n": counts,
            }))
    if not rows:
        return pd.DataFrame({c: pd.Series([], dtype="int64" if c in ("bin", "n") else "str") for c in COUNT_COLUMNS})
    return pd.concat(rows, ignore_index=True)


def sum_counts(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Add up per-chunk :func:`drift_counts`."""
    if not parts:
        raise ValueError("sum_counts: no counts to add up")
    stacked = pd.concat(parts, ignore_index=True)
    return stacked.groupby(["model", "kind", "variable", "bin"], sort=False, as_index=False)["n"].sum()


def drift_table(reference: Mapping, counts: pd.DataFrame, epsilon: float = PSI_EPSILON) -> pd.DataFrame:
    """PSI per model and variable between the reference and the summed counts, with its flag.

    Columns: model, kind (score | feature), variable, psi, flag (stable < 0.1 <= watch < 0.25 <= act),
    n_scored. A variable with no scored rows has psi NaN and flag ``no_data``.
    """
    rows = []
    for model, spec in reference.get("models", {}).items():
        items = [("score", f"p_{model}", spec["score"])] + [("feature", f, s) for f, s in spec["features"].items()]
        for kind, variable, bin_spec in items:
            expected = np.asarray(bin_spec["expected"], dtype=float)
            got = counts[(counts["model"] == model) & (counts["variable"] == variable)].sort_values("bin")
            actual_counts = np.zeros(len(expected))
            actual_counts[got["bin"].to_numpy(dtype=int)] = got["n"].to_numpy(dtype=float)
            n = actual_counts.sum()
            if n == 0:
                value = np.nan
            else:
                e = np.maximum(expected, epsilon)
                a = np.maximum(actual_counts / n, epsilon)
                value = float(np.sum((a - e) * np.log(a / e)))
            rows.append({"model": model, "kind": kind, "variable": variable, "psi": value,
                         "flag": psi_flag(value), "n_scored": int(n)})
    return pd.DataFrame(rows, columns=["model", "kind", "variable", "psi", "flag", "n_scored"])


def psi_flag(value: float) -> str:
    """``stable`` below 0.1, ``watch`` from 0.1, ``act`` from 0.25, ``no_data`` for NaN."""
    if value is None or np.isnan(value):
        return "no_data"
    return "act" if value >= ACT_PSI else "watch" if value >= WATCH_PSI else "stable"


def bin_labels(reference: Mapping) -> pd.DataFrame:
    """Readable labels of every reference bin (model, variable, bin, label, expected), for reports."""
    rows = []
    for model, spec in reference.get("models", {}).items():
        items = [(f"p_{model}", spec["score"]), *list(spec["features"].items())]
        for variable, bin_spec in items:
            for i, (label, share) in enumerate(zip(_bin_labels(bin_spec), bin_spec["expected"], strict=True)):
                rows.append({"model": model, "variable": variable, "bin": i, "label": label, "expected": share})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------------- migration
def transition_matrices(
    previous: pd.DataFrame,
    current: pd.DataFrame,
    dimensions: Sequence[str] = MIGRATION_DIMENSIONS,
) -> pd.DataFrame:
    """Customer transitions between two runs' outputs, one long table over ``dimensions``.

    Columns: dimension, from, to, n, share (n / customers in the ``from`` row), share_of_all (n / all
    customers of both runs). Values are compared as text; ``from = "new"`` for customers only in ``current``,
    ``to = "gone"`` for customers only in ``previous``; a missing value reads ``__missing__``.
    """
    needed = ["customer_id", *dimensions]
    for name, frame in (("previous", previous), ("current", current)):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(f"transition_matrices: the {name} output lacks {missing}")
        dup = frame["customer_id"].duplicated()
        if dup.any():
            raise ValueError(f"transition_matrices: the {name} output repeats customers "
                             f"(first rows {list(np.flatnonzero(dup.to_numpy())[:5])})")
    merged = previous[needed].merge(current[needed], on="customer_id", how="outer", suffixes=("_from", "_to"),
                                    indicator=True)
    tables = []
    for dim in dimensions:
        src = _as_text(merged[f"{dim}_from"]).where(merged["_merge"] != "right_only", NEW)
        dst = _as_text(merged[f"{dim}_to"]).where(merged["_merge"] != "left_only", GONE)
        counts = pd.DataFrame({"from": src, "to": dst}).value_counts(sort=False).rename("n").reset_index()
        counts = counts.sort_values(["from", "to"], kind="stable", ignore_index=True)
        counts["share"] = counts["n"] / counts.groupby("from")["n"].transform("sum")
        counts["share_of_all"] = counts["n"] / len(merged)
        counts.insert(0, "dimension", dim)
        tables.append(counts)
    out = pd.concat(tables, ignore_index=True)
    out["n"] = out["n"].astype("int64")
    return out


def _as_text(values: pd.Series) -> pd.Series:
    """Values as text for comparison (integers without a decimal point), ``__missing__`` where missing."""
    missing = values.isna().to_numpy()
    text = values.astype("Int64").astype("str") if is_numeric_dtype(values) else values.astype("str")
    return pd.Series(np.where(missing, MISSING, text.to_numpy(dtype=object)), index=values.index, dtype="str")
