"""Risk appetite (风险偏好, seed 001): conservative, steady, balanced, growth, aggressive.

From the risk questionnaire score (0-100) where the customer answered it; else inferred from what the
customer holds and their age, on the same 0-100 scale and cut by the same bands:

    score = 100 * sum_p share_weights[p] * bal_aum_share_p      (where the AUM sits: deposits ~0, funds ~0.9)
          + sum_p holding_points[p] * hold_has_p                 (holding a risky product at all)
          + age_points(cust_age)                                 (seed 003: the elderly bear less risk)
    clipped to [0, 100].

A customer without AUM (shares missing) has share term 0. Output says which source each row used, because
an inferred appetite is not a suitability assessment and must not be shown to the customer as one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bankseg.segments._checks import SegmentName, numeric, parse_names, require_columns

RISK_APPETITE_CODES: tuple[str, ...] = ("conservative", "steady", "balanced", "growth", "aggressive")
SOURCES: tuple[str, ...] = ("questionnaire", "inferred")


@dataclass(frozen=True)
class RiskAppetiteRules:
    """Score bands (low to high, inclusive lower bounds) and the weights of the inferred score."""

    names: tuple[SegmentName, ...]
    lower_bounds: tuple[float, ...]
    share_weights: Mapping[str, float]
    holding_points: Mapping[str, float]
    age_points: tuple[tuple[float, float], ...]  # (min_age, points), highest min_age first
    questionnaire_column: str = "cust_risk_questionnaire_score"
    age_column: str = "cust_age"

    def __post_init__(self) -> None:
        if [n.name for n in self.names] != list(RISK_APPETITE_CODES):
            raise ValueError(f"risk_appetite.bands must be {list(RISK_APPETITE_CODES)} in this order")
        bounds = np.asarray(self.lower_bounds, dtype="float64")
        if bounds[0] != 0 or np.any(np.diff(bounds) <= 0) or bounds[-1] > 100:
            raise ValueError(f"risk_appetite: band bounds must start at 0 and increase within 0-100, got {list(bounds)}")
        ages = [a for a, _ in self.age_points]
        if ages != sorted(ages, reverse=True) or (ages and ages[-1] != 0):
            raise ValueError("risk_appetite.age_points: min_age must decrease and end at 0")

    @classmethod
    def from_dict(cls, cfg: Mapping) -> RiskAppetiteRules:
        bands = cfg["bands"]
        return cls(
            names=parse_names(bands, "risk_appetite.bands"),
            lower_bounds=tuple(float(b["lower"]) for b in bands),
            share_weights={str(k): float(v) for k, v in cfg.get("share_weights", {}).items()},
            holding_points={str(k): float(v) for k, v in cfg.get("holding_points", {}).items()},
            age_points=tuple((float(a["min_age"]), float(a["points"])) for a in cfg.get("age_points", [])),
            questionnaire_column=cfg.get("questionnaire_column", "cust_risk_questionnaire_score"),
        )

    @property
    def dtype(self) -> pd.CategoricalDtype:
        return pd.CategoricalDtype(list(RISK_APPETITE_CODES), ordered=True)


def infer_risk_score(frame: pd.DataFrame, rules: RiskAppetiteRules) -> pd.Series:
    """The 0-100 risk score inferred from AUM shares, holdings and age (formula in the module docstring)."""
    share_cols = [f"bal_aum_share_{p}" for p in rules.share_weights]
    hold_cols = [f"hold_has_{p}" for p in rules.holding_points]
    require_columns(frame, [*share_cols, *hold_cols, rules.age_column], "risk appetite (inferred)")
    score = np.zeros(len(frame))
    for column, weight in zip(share_cols, rules.share_weights.values(), strict=True):
        score += 100.0 * weight * np.nan_to_num(numeric(frame, column), nan=0.0)
    for column, points in zip(hold_cols, rules.holding_points.values(), strict=True):
        score += points * np.nan_to_num(numeric(frame, column), nan=0.0)
    if rules.age_points:
        age = numeric(frame, rules.age_column)
        if np.isnan(age).any():
            raise ValueError(f"risk appetite: {rules.age_column} missing in rows {list(frame.index[np.isnan(age)][:5])}")
        min_ages = np.array([a for a, _ in rules.age_points])
        points = np.array([p for _, p in rules.age_points])
        # min_ages descend: the first band with min_age <= age is the count of bands with min_age > age.
        score += points[(min_ages[None, :] > age[:, None]).sum(axis=1)]
    return pd.Series(np.clip(score, 0.0, 100.0), index=frame.index, name="risk_score")


def assign_risk_appetite(frame: pd.DataFrame, rules: RiskAppetiteRules) -> pd.DataFrame:
    """Risk appetite per row: columns risk_appetite (ordered Categorical), risk_appetite_source, risk_score.

    The questionnaire score wins where present (it must lie in 0-100); the inferred score fills the rest.
    """
    inferred_columns = [f"bal_aum_share_{p}" for p in rules.share_weights]
    inferred_columns += [f"hold_has_{p}" for p in rules.holding_points] + [rules.age_column]
    # Checked up front so a frame lacking them fails the same way whoever answered the questionnaire.
    require_columns(frame, [rules.questionnaire_column, *inferred_columns], "risk appetite")
    questionnaire = numeric(frame, rules.questionnaire_column)
    bad = (questionnaire < 0) | (questionnaire > 100)
    if bad.any():
        raise ValueError(f"risk appetite: questionnaire scores outside 0-100 in rows {list(frame.index[bad][:5])}")
    answered = ~np.isnan(questionnaire)
    score = questionnaire.copy()
    if not answered.all():
        score[~answered] = infer_risk_score(frame.loc[~answered], rules).to_numpy()
    band = np.searchsorted(np.asarray(rules.lower_bounds), score, side="right") - 1
    return pd.DataFrame(
        {
            "risk_appetite": pd.Categorical.from_codes(band, dtype=rules.dtype),
            "risk_appetite_source": pd.Categorical(
                np.where(answered, "questionnaire", "inferred"), categories=list(SOURCES)
            ),
            "risk_score": score,
        },
        index=frame.index,
    )
