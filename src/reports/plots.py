"""Figures for the reports, drawn with matplotlib's object API (no pyplot state) and returned as PNG bytes.

Figures are built on :class:`matplotlib.figure.Figure` directly, which renders with the Agg canvas: no GUI
backend, no global figure registry to leak memory across a long batch run. Labels are English: matplotlib's
bundled DejaVu font has no Chinese glyphs, so the Chinese terms sit in the HTML around each figure, where the
browser renders them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

PALETTE = ("#1f5f8b", "#e07b39", "#2a9d8f", "#8e6bbf", "#c44e52", "#6c757d", "#b8860b", "#17becf")
DPI = 96
DIVERGING = ("RdBu_r", "RdBu", "coolwarm")


def to_png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    # One layout pass, then one draw: bbox_inches="tight" would draw the figure twice.
    fig.set_layout_engine("tight")
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _thin(*arrays: np.ndarray, points: int = 2000) -> tuple[np.ndarray, ...]:
    """Every array cut to about ``points`` evenly spaced entries (first and last kept): a curve over a million
    customers draws the same at two thousand points and keeps the PNG small."""
    n = len(arrays[0])
    if n <= points:
        return arrays
    keep = np.unique(np.linspace(0, n - 1, points).astype(np.int64))
    return tuple(np.asarray(a)[keep] for a in arrays)


def _axes(width: float = 6.0, height: float = 4.0, ncols: int = 1):
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(1, ncols)
    return fig, axes


def _style(ax, title: str, xlabel: str = "", ylabel: str = "") -> None:
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


# ------------------------------------------------------------------------------------------ model review
def roc_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], aucs: Mapping[str, float]) -> bytes:
    """ROC curves, one per population: ``{label: (y, p)}``; the legend shows each AUC."""
    from sklearn.metrics import roc_curve

    fig, ax = _axes(5.2, 4.6)
    for (label, (y, p)), colour in zip(curves.items(), PALETTE, strict=False):
        fpr, tpr = _thin(*roc_curve(y, p)[:2])
        ax.plot(fpr, tpr, color=colour, label=f"{label} (AUC {aucs[label]:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="random")
    _style(ax, "ROC curve", "False positive rate", "True positive rate")
    ax.legend(loc="lower right", fontsize=9)
    return to_png(fig)


def pr_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], aps: Mapping[str, float]) -> bytes:
    """Precision-recall curves with each population's base rate as a dotted line."""
    from sklearn.metrics import precision_recall_curve

    fig, ax = _axes(5.2, 4.6)
    for (label, (y, p)), colour in zip(curves.items(), PALETTE, strict=False):
        precision, recall = _thin(*precision_recall_curve(y, p)[:2])
        ax.plot(recall, precision, color=colour, label=f"{label} (PR AUC {aps[label]:.3f})")
        ax.axhline(float(np.mean(y)), color=colour, ls=":", lw=1)
    _style(ax, "Precision-recall curve", "Recall", "Precision")
    ax.set_ylim(0, 1.02)
    ax.legend(loc="upper right", fontsize=9)
    return to_png(fig)


def ks_plot(y: np.ndarray, p: np.ndarray, ks_value: float, title: str = "KS plot") -> bytes:
    """Cumulative share of positives and negatives by score threshold; the arrow marks the largest gap (KS)."""
    order = np.argsort(-p, kind="stable")
    ys = np.asarray(y)[order]
    population = np.arange(1, ys.size + 1) / ys.size
    tpr = np.cumsum(ys) / max(ys.sum(), 1)
    fpr = np.cumsum(1 - ys) / max((1 - ys).sum(), 1)
    gap = tpr - fpr
    at = int(np.argmax(gap))
    ks_x, ks_tpr, ks_fpr = population[at], tpr[at], fpr[at]
    population, tpr, fpr = _thin(population, tpr, fpr)
    fig, ax = _axes(5.2, 4.6)
    ax.plot(population, tpr, color=PALETTE[0], label="positives (cumulative share)")
    ax.plot(population, fpr, color=PALETTE[1], label="negatives (cumulative share)")
    ax.annotate("", xy=(ks_x, ks_tpr), xytext=(ks_x, ks_fpr), arrowprops={"arrowstyle": "<->", "color": "black"})
    ax.text(ks_x + 0.02, (ks_tpr + ks_fpr) / 2, f"KS = {ks_value:.3f}", fontsize=10)
    _style(ax, title, "Share of customers, highest score first", "Cumulative share")
    ax.legend(loc="lower right", fontsize=9)
    return to_png(fig)


def lift_and_gains(deciles: pd.DataFrame) -> bytes:
    """Lift per score decile (bars) and the cumulative gains curve (share of positives captured)."""
    fig, (left, right) = _axes(10.0, 4.0, ncols=2)
    left.bar(deciles["decile"], deciles["lift"], color=PALETTE[0])
    left.axhline(1.0, color="grey", ls="--", lw=1)
    _style(left, "Lift by decile (1 = highest scores)", "Decile", "Lift (rate / overall rate)")
    left.set_xticks(deciles["decile"])
    share = deciles["n"].cumsum() / deciles["n"].sum()
    right.plot(np.r_[0, share], np.r_[0, deciles["cum_capture"]], marker="o", color=PALETTE[0], label="model")
    right.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="random")
    _style(right, "Cumulative gains", "Share of customers contacted", "Share of positives captured")
    right.legend(loc="lower right", fontsize=9)
    return to_png(fig)


def calibration_plot(table: pd.DataFrame, hl_stat: float, hl_p: float) -> bytes:
    """Observed rate against mean predicted probability per bin, with the diagonal of perfect calibration."""
    fig, ax = _axes(5.2, 4.6)
    top = float(max(table["mean_predicted"].max(), table["observed_rate"].max(), 0.01)) * 1.1
    ax.plot([0, top], [0, top], ls="--", color="grey", lw=1, label="perfect calibration")
    ax.plot(table["mean_predicted"], table["observed_rate"], marker="o", color=PALETTE[0], label="model")
    _style(ax, f"Calibration (Hosmer-Lemeshow {hl_stat:.1f}, p = {hl_p:.3f})", "Mean predicted probability",
           "Observed rate")
    ax.legend(loc="upper left", fontsize=9)
    return to_png(fig)


def psi_bins(table: pd.DataFrame, title: str, expected_label: str = "train", actual_label: str = "OOT") -> bytes:
    """Share of each population per bin (PSI's bins), side by side."""
    fig, ax = _axes(7.0, 3.6)
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["expected_share"], width=0.4, color=PALETTE[0], label=expected_label)
    ax.bar(x + 0.2, table["actual_share"], width=0.4, color=PALETTE[1], label=actual_label)
    ax.set_xticks(x, [str(b) for b in table["bin"]], rotation=40, ha="right", fontsize=8)
    _style(ax, title, "Score bin (from the training population's deciles)", "Share of customers")
    ax.legend(fontsize=9)
    return to_png(fig)


def psi_by_feature(values: pd.Series) -> bytes:
    """Horizontal PSI bars per variable with the 0.1 (moderate) and 0.25 (major shift) lines."""
    fig, ax = _axes(7.0, 0.35 * len(values) + 1.2)
    y = np.arange(len(values))[::-1]
    colours = [PALETTE[4] if v > 0.25 else PALETTE[6] if v > 0.1 else PALETTE[2] for v in values]
    ax.barh(y, values.to_numpy(), color=colours)
    ax.set_yticks(y, list(values.index), fontsize=9)
    for line, name in ((0.1, "0.1 moderate"), (0.25, "0.25 major")):
        ax.axvline(line, color="grey", ls="--", lw=1)
        ax.text(line, len(values) - 0.4, name, fontsize=8, color="grey")
    _style(ax, "PSI, training vs out-of-time", "PSI")
    ax.set_xlim(0, max(0.3, float(values.max()) * 1.1 if len(values) else 0.3))
    return to_png(fig)


def importance_bars(importance: pd.Series, title: str, xlabel: str = "mean |SHAP| (log-odds)") -> bytes:
    """Horizontal bars, largest on top."""
    fig, ax = _axes(7.0, 0.32 * len(importance) + 1.2)
    y = np.arange(len(importance))[::-1]
    ax.barh(y, importance.to_numpy(), color=PALETTE[0])
    ax.set_yticks(y, list(importance.index), fontsize=9)
    _style(ax, title, xlabel)
    return to_png(fig)


def beeswarm(shap_values: pd.DataFrame, feature_values: pd.DataFrame, labels: Mapping[str, str]) -> bytes:
    """SHAP beeswarm: one row per feature (most important on top), one dot per customer.

    Dot position is its SHAP value; colour is the feature value's rank within the sample (blue low, red high;
    grey for categorical or missing values). Vertical jitter spreads dots where they pile up.
    """
    from matplotlib import colormaps

    features = list(shap_values.columns)
    fig = Figure(figsize=(8.0, 0.42 * len(features) + 1.4))
    ax = fig.subplots()
    rng = np.random.default_rng(0)
    cmap = colormaps["coolwarm"]
    for row, feature in enumerate(features):
        s = shap_values[feature].to_numpy(dtype=float)
        values = feature_values[feature]
        numeric = pd.api.types.is_numeric_dtype(values) and not isinstance(values.dtype, pd.CategoricalDtype)
        if numeric:
            v = values.to_numpy(dtype=float, na_value=np.nan)
            rank = pd.Series(v).rank(pct=True).to_numpy()
            colours = np.where(np.isnan(rank)[:, None], np.array([[0.6, 0.6, 0.6, 1.0]]), cmap(np.nan_to_num(rank)))
        else:
            colours = np.tile([0.6, 0.6, 0.6, 1.0], (len(s), 1))
        # Jitter grows with the local density of SHAP values (a histogram), so dense regions spread wider.
        counts, edges = np.histogram(s, bins=40)
        density = counts[np.clip(np.searchsorted(edges, s, side="right") - 1, 0, len(counts) - 1)]
        spread = 0.4 * density / max(counts.max(), 1)
        y = len(features) - 1 - row + rng.uniform(-1, 1, size=s.size) * spread
        ax.scatter(s, y, c=colours, s=6, linewidths=0)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(np.arange(len(features))[::-1], [labels.get(f, f) for f in features], fontsize=9)
    _style(ax, "SHAP values per customer (colour: feature value, blue low -> red high)",
           "SHAP value (log-odds contribution to the score)")
    return to_png(fig)


def dependence_plots(
    shap_values: pd.DataFrame, feature_values: pd.DataFrame, labels: Mapping[str, str], ncols: int = 2
) -> bytes:
    """SHAP dependence: each feature's value against its SHAP value, one small panel per feature."""
    features = list(shap_values.columns)
    nrows = int(np.ceil(len(features) / ncols))
    fig = Figure(figsize=(5.0 * ncols, 3.4 * nrows))
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax, feature in zip(axes, features, strict=False):
        x = feature_values[feature]
        if pd.api.types.is_numeric_dtype(x) and not isinstance(x.dtype, pd.CategoricalDtype):
            ax.scatter(x.to_numpy(dtype=float, na_value=np.nan), shap_values[feature], s=6, alpha=0.5,
                       color=PALETTE[0], linewidths=0)
        else:
            codes, uniques = pd.factorize(x.astype("str"))
            jitter = np.random.default_rng(0).uniform(-0.2, 0.2, len(codes))
            ax.scatter(codes + jitter, shap_values[feature], s=6, alpha=0.5, color=PALETTE[0], linewidths=0)
            ax.set_xticks(range(len(uniques)), list(uniques), rotation=30, fontsize=8)
        ax.axhline(0, color="grey", lw=1)
        _style(ax, labels.get(feature, feature), "feature value", "SHAP value")
    for ax in axes[len(features):]:
        ax.set_visible(False)
    fig.tight_layout()
    return to_png(fig)


def waterfall(contributions: pd.Series, base: float, title: str) -> bytes:
    """One customer's score built up from the model's base value by each feature's contribution (log-odds).

    ``contributions`` is already ordered and may hold an "other features" entry; the final bar is the total.
    """
    fig, ax = _axes(7.0, 0.42 * len(contributions) + 1.6)
    start = base
    names = list(contributions.index)
    for i, value in enumerate(contributions.to_numpy(dtype=float)):
        y = len(names) - i
        ax.barh(y, value, left=start, color=PALETTE[4] if value > 0 else PALETTE[0])
        ax.text(start + value, y, f" {value:+.2f}", va="center", fontsize=8)
        start += value
    ax.axvline(base, color="grey", ls=":", lw=1)
    ax.axvline(start, color="black", ls="--", lw=1)
    ax.set_yticks(np.arange(len(names), 0, -1), names, fontsize=9)
    _style(ax, f"{title}  (base {base:.2f} -> score {start:.2f} log-odds)", "log-odds (raw margin)")
    return to_png(fig)


def heatmap(matrix: pd.DataFrame, title: str, fmt: str = "{:.2f}", xlabel: str = "", ylabel: str = "",
            cmap: str = "Blues") -> bytes:
    """A matrix as coloured cells with their values written in."""
    values = matrix.to_numpy(dtype=float)
    fig = Figure(figsize=(max(4.5, 0.9 * matrix.shape[1] + 2.5), max(3.0, 0.45 * matrix.shape[0] + 1.5)))
    ax = fig.subplots()
    finite = values[np.isfinite(values)]
    # A diverging map is centred on zero, so the neutral colour means "no difference".
    span = float(np.abs(finite).max()) if finite.size else 1.0
    limits = {"vmin": -span, "vmax": span} if cmap in DIVERGING else {}
    image = ax.imshow(values, cmap=cmap, aspect="auto", **limits)
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_xticks(range(matrix.shape[1]), [str(c) for c in matrix.columns], rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(matrix.shape[0]), [str(i) for i in matrix.index], fontsize=8)
    mid = (finite.max() + finite.min()) / 2 if finite.size else 0.0
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=7,
                    color="white" if v > mid and cmap in ("Blues", "Reds", "Greens", "Purples") else "black")
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return to_png(fig)


def grouped_bars(frame: pd.DataFrame, title: str, ylabel: str, reference: float | None = None,
                 reference_label: str = "") -> bytes:
    """Bars per row of ``frame`` (index = categories), one colour per column."""
    fig, ax = _axes(max(5.5, 0.7 * len(frame) * max(1, frame.shape[1]) + 2), 3.8)
    x = np.arange(len(frame))
    width = 0.8 / max(frame.shape[1], 1)
    for k, (column, colour) in enumerate(zip(frame.columns, PALETTE, strict=False)):
        ax.bar(x + (k - (frame.shape[1] - 1) / 2) * width, frame[column].to_numpy(dtype=float), width=width,
               color=colour, label=str(column))
    if reference is not None:
        ax.axhline(reference, color=PALETTE[4], ls="--", lw=1.2, label=reference_label)
    ax.set_xticks(x, [str(i) for i in frame.index], rotation=25, ha="right", fontsize=9)
    _style(ax, title, "", ylabel)
    if frame.shape[1] > 1 or reference is not None:
        ax.legend(fontsize=8)
    return to_png(fig)


# ------------------------------------------------------------------------------------------------ segments
def count_bars(counts: pd.Series, title: str, xlabel: str = "customers") -> bytes:
    """Horizontal bars of counts with each bar's share of the total written beside it."""
    fig, ax = _axes(7.0, 0.38 * len(counts) + 1.3)
    y = np.arange(len(counts))[::-1]
    total = max(float(counts.sum()), 1.0)
    ax.barh(y, counts.to_numpy(dtype=float), color=PALETTE[0])
    for yi, v in zip(y, counts.to_numpy(dtype=float), strict=True):
        ax.text(v, yi, f" {v:,.0f} ({v / total:.1%})", va="center", fontsize=8)
    ax.set_yticks(y, [str(i) for i in counts.index], fontsize=9)
    ax.set_xlim(0, float(counts.max()) * 1.3 if len(counts) else 1)
    _style(ax, title, xlabel)
    return to_png(fig)


def pareto_curve(table: pd.DataFrame, title: str, top_share: float) -> bytes:
    """Cumulative share of value against cumulative share of customers (highest value first)."""
    x = np.r_[0.0, table["cum_customer_share"].to_numpy(dtype=float)]
    y = np.r_[0.0, table["cum_value_share"].to_numpy(dtype=float)]
    fig, ax = _axes(5.6, 4.6)
    ax.plot(x, y, marker="o", color=PALETTE[0], label="customers ranked by value")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="equal shares")
    held = float(np.interp(top_share, x, y))
    ax.axvline(top_share, color=PALETTE[1], ls=":", lw=1)
    ax.text(top_share + 0.02, held - 0.08, f"top {top_share:.0%} hold {held:.0%}", fontsize=9)
    _style(ax, title, "Cumulative share of customers", "Cumulative share of value")
    ax.legend(loc="lower right", fontsize=9)
    return to_png(fig)


def distribution_by_group(frame: pd.DataFrame, value: str, group: str, order: Sequence[str], title: str,
                          ylabel: str) -> bytes:
    """Box plots of ``value`` per group (whiskers at the 5th and 95th percentiles, no outlier dots)."""
    data = [frame.loc[frame[group] == g, value].dropna().to_numpy(dtype=float) for g in order]
    keep = [i for i, d in enumerate(data) if d.size]
    fig, ax = _axes(max(5.5, 0.9 * len(keep) + 2), 3.8)
    if keep:
        ax.boxplot([data[i] for i in keep], whis=(5, 95), showfliers=False, patch_artist=True,
                   boxprops={"facecolor": "#cfe0ee"})
        ax.set_xticks(range(1, len(keep) + 1), [str(order[i]) for i in keep], rotation=25, ha="right", fontsize=9)
    _style(ax, title, "", ylabel)
    return to_png(fig)
