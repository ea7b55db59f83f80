"""Input checks shared by the segment rules: required columns, propensities, named levels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SegmentName:
    """One segment's stable English code (stored in outputs) and its Chinese label (for reports)."""

    name: str
    zh: str


def parse_names(items: Sequence[Mapping], what: str) -> tuple[SegmentName, ...]:
    """Read a config list of ``{name, zh}`` mappings, refusing empty or duplicate names."""
    names = tuple(SegmentName(str(item["name"]), str(item.get("zh", item["name"]))) for item in items)
    codes = [n.name for n in names]
    if not codes:
        raise ValueError(f"{what}: no names configured")
    duplicated = sorted({c for c in codes if codes.count(c) > 1})
    if duplicated:
        raise ValueError(f"{what}: duplicate names {duplicated}")
    return names


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise ValueError naming every column ``what`` needs that ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what}: missing columns {missing}")


def numeric(frame: pd.DataFrame, column: str) -> np.ndarray:
    """A column as float64 (nullable numbers and pandas NA become NaN)."""
    return pd.to_numeric(frame[column], errors="raise").to_numpy(dtype="float64", na_value=np.nan)


def probability(values: pd.Series | None, index: pd.Index, name: str) -> np.ndarray:
    """A propensity aligned to ``index`` as float64; None gives all-NaN; values outside [0, 1] are refused."""
    if values is None:
        return np.full(len(index), np.nan)
    if not values.index.equals(index):
        raise ValueError(f"{name}: index does not match the frame's index")
    p = pd.to_numeric(values, errors="raise").to_numpy(dtype="float64", na_value=np.nan)
    bad = (p < 0) | (p > 1)
    if bad.any():
        raise ValueError(f"{name}: {int(bad.sum())} values outside [0, 1], first at rows {list(index[bad][:5])}")
    return p


def refuse_negative(values: np.ndarray, index: pd.Index, what: str) -> None:
    """Raise ValueError when money that must be >= 0 is negative, naming the first rows."""
    bad = values < 0
    if bad.any():
        raise ValueError(f"{what}: {int(bad.sum())} negative values, first at rows {list(index[bad][:5])}")
