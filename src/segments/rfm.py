"""RFM scores (recency, frequency, monetary; seed 001) and named RFM segments.

Scores run 1-5, 5 best. Bins are four edges per measure, learned once and reused: :func:`fit_rfm_bins`
takes the 20/40/60/80% quantiles of a population (the training population, stored with the segmenter so
production scores stay comparable between runs), or config gives fixed edges (``rfm.fixed_bins``).

Scoring with edges e1 <= e2 <= e3 <= e4:
- frequency, monetary: score = 1 + number of edges strictly below x, so bins are (e_i, e_{i+1}] and a value
  tied with an edge takes the lower score (zero transactions score 1 even when most customers have none);
- recency (days, lower is better): score = 5 - number of edges <= x, so a value tied with an edge takes the
  lower score too (customers capped at "no transaction" score 1).
Repeated edges (heavy ties) leave some scores empty instead of splitting equal customers apart.
Missing values score 1 (no evidence of recent, frequent or valuable activity).

Named segments: config lists rules with inclusive [lo, hi] score ranges on r, f and optionally m; the first
match wins. The rules must cover all 125 (r, f, m) cells: checked when the rules are loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bankseg.segments._checks import SegmentName, numeric, parse_names, require_columns

QUANTILES: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
MEASURES: tuple[str, ...] = ("recency", "frequency", "monetary")
RFM_CELLS: tuple[str, ...] = tuple(f"R{r}F{f}M{m}" for r in range(1, 6) for f in range(1, 6) for m in range(1, 6))


@dataclass(frozen=True)
class RfmBins:
    """Four ascending edges per measure, and the columns they were learned on (JSON-able via to_dict)."""

    recency: tuple[float, ...]
    frequency: tuple[float, ...]
    monetary: tuple[float, ...]
    recency_column: str = "txn_recency_days"
    frequency_column: str = "txn_count_12m"
    monetary_column: str = "txn_amount_12m"

    def __post_init__(self) -> None:
        for measure in MEASURES:
            edges = np.asarray(getattr(self, measure), dtype="float64")
            if edges.shape != (4,) or np.isnan(edges).any() or np.any(np.diff(edges) < 0):
                raise ValueError(f"rfm bins: {measure} needs 4 ascending edges, got {list(edges)}")

    def to_dict(self) -> dict:
        return {
            "recency": list(self.recency),
            "frequency": list(self.frequency),
            "monetary": list(self.monetary),
            "recency_column": self.recency_column,
            "frequency_column": self.frequency_column,
            "monetary_column": self.monetary_column,
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> RfmBins:
        return cls(
            recency=tuple(float(x) for x in d["recency"]),
            frequency=tuple(float(x) for x in d["frequency"]),
            monetary=tuple(float(x) for x in d["monetary"]),
            recency_column=d.get("recency_column", "txn_recency_days"),
            frequency_column=d.get("frequency_column", "txn_count_12m"),
            monetary_column=d.get("monetary_column", "txn_amount_12m"),
        )


@dataclass(frozen=True)
class RfmSegmentRules:
    """Named segments over (r, f, m) scores; ``lookup[r-1, f-1, m-1]`` is the segment's position in names."""

    names: tuple[SegmentName, ...]
    lookup: np.ndarray
    recency_column: str = "txn_recency_days"
    frequency_column: str = "txn_count_12m"
    monetary_column: str = "txn_amount_12m"
    fixed_bins: RfmBins | None = None

    @classmethod
    def from_dict(cls, cfg: Mapping) -> RfmSegmentRules:
        segments = cfg["segments"]
        names = parse_names(segments, "rfm.segments")
        lookup = np.full((5, 5, 5), -1, dtype="int64")
        for i, seg in enumerate(segments):
            ranges = [_score_range(seg, key) for key in ("r", "f", "m")]
            cell = tuple(slice(lo - 1, hi) for lo, hi in ranges)
            block = lookup[cell]
            block[block < 0] = i  # earlier rules keep their cells: first match wins
        uncovered = np.argwhere(lookup < 0) + 1
        if len(uncovered):
            raise ValueError(f"rfm.segments leave {len(uncovered)} (r, f, m) cells unnamed, e.g. {uncovered[:5].tolist()}")
        columns = {
            "recency_column": cfg.get("recency_column", "txn_recency_days"),
            "frequency_column": cfg.get("frequency_column", "txn_count_12m"),
            "monetary_column": cfg.get("monetary_column", "txn_amount_12m"),
        }
        fixed = cfg.get("fixed_bins")
        return cls(
            names=names,
            lookup=lookup,
            fixed_bins=RfmBins.from_dict({**columns, **fixed}) if fixed else None,
            **columns,
        )

    @property
    def dtype(self) -> pd.CategoricalDtype:
        return pd.CategoricalDtype([n.name for n in self.names])


def fit_rfm_bins(
    frame: pd.DataFrame,
    recency_column: str = "txn_recency_days",
    frequency_column: str = "txn_count_12m",
    monetary_column: str = "txn_amount_12m",
) -> RfmBins:
    """Learn quantile edges (20/40/60/80%) of recency, frequency and monetary on a population.

    Missing values are left out of the quantiles. Store the result (``to_dict``) to score later data the same way.
    """
    columns = (recency_column, frequency_column, monetary_column)
    require_columns(frame, columns, "fit_rfm_bins")
    edges = {}
    for measure, column in zip(MEASURES, columns, strict=True):
        values = numeric(frame, column)
        values = values[~np.isnan(values)]
        if len(values) == 0:
            raise ValueError(f"fit_rfm_bins: {column} has no values to learn bins from")
        edges[measure] = tuple(float(x) for x in np.quantile(values, QUANTILES))
    return RfmBins(
        **edges, recency_column=recency_column, frequency_column=frequency_column, monetary_column=monetary_column
    )


def score_rfm(frame: pd.DataFrame, bins: RfmBins) -> pd.DataFrame:
    """R, F and M scores (int8, 1-5, 5 best) with the bins' columns; index follows ``frame``.

    Columns: rfm_r, rfm_f, rfm_m, rfm_score (R+F+M, 3-15), rfm_cell (Categorical 'R5F4M3').
    """
    require_columns(frame, [bins.recency_column, bins.frequency_column, bins.monetary_column], "score_rfm")
    recency = numeric(frame, bins.recency_column)
    r = 5 - np.searchsorted(np.asarray(bins.recency), recency, side="right")
    r = np.where(np.isnan(recency), 1, r)
    f, m = (
        np.where(np.isnan(x), 1, 1 + np.searchsorted(np.asarray(edges), x, side="left"))
        for x, edges in (
            (numeric(frame, bins.frequency_column), bins.frequency),
            (numeric(frame, bins.monetary_column), bins.monetary),
        )
    )
    out = pd.DataFrame({"rfm_r": r, "rfm_f": f, "rfm_m": m}, index=frame.index).astype("int8")
    out["rfm_score"] = (r + f + m).astype("int8")
    out["rfm_cell"] = pd.Categorical.from_codes((r - 1) * 25 + (f - 1) * 5 + (m - 1), categories=RFM_CELLS)
    return out


def assign_rfm_segment(scores: pd.DataFrame, rules: RfmSegmentRules) -> pd.Series:
    """The named RFM segment of every row of ``scores`` (from :func:`score_rfm`), as a Categorical."""
    require_columns(scores, ["rfm_r", "rfm_f", "rfm_m"], "assign_rfm_segment")
    idx = [scores[c].to_numpy(dtype="int64") - 1 for c in ("rfm_r", "rfm_f", "rfm_m")]
    if any(((i < 0) | (i > 4)).any() for i in idx):
        raise ValueError("assign_rfm_segment: scores must be 1-5")
    codes = rules.lookup[idx[0], idx[1], idx[2]]
    return pd.Series(pd.Categorical.from_codes(codes, dtype=rules.dtype), index=scores.index, name="rfm_segment")


def _score_range(segment: Mapping, key: str) -> tuple[int, int]:
    """An inclusive [lo, hi] score range from a segment rule; a missing key means any score (1-5)."""
    lo, hi = segment.get(key, (1, 5))
    if not (1 <= int(lo) <= int(hi) <= 5):
        raise ValueError(f"rfm segment {segment.get('name')!r}: {key} range {[lo, hi]} must lie within 1-5")
    return int(lo), int(hi)


def rfm_bins_for(frame: pd.DataFrame, rules: RfmSegmentRules, bins: RfmBins | None = None) -> RfmBins:
    """The bins to score with: the ones given, else the configured fixed bins, else learned from ``frame``."""
    if bins is not None:
        return bins
    if rules.fixed_bins is not None:
        return rules.fixed_bins
    return fit_rfm_bins(frame, rules.recency_column, rules.frequency_column, rules.monetary_column)

