"""Composite tier (综合等级), service tier (服务等级) with audited manual overrides, and the 5x5 grid.

Seed 003: the composite tier shows what the customer really holds at the bank. It is computed by rule from the
3-month AVERAGE DAILY balance (AUM plus a configurable share of loans), never from a month-end balance: a
customer who deposits 500k on the 1st and withdraws it on the 30th has a month-end balance of 0 or 500k
depending on the day, but an average daily balance of about what was really left with the bank. Nobody edits
it by hand. It is recomputed every period (quarterly by default): the tier is a function of the feature
table, so the period is decided by the as_of the scheduler scores at; :func:`tier_period` labels it.

The service tier says which service level the customer gets. It starts from the composite tier by a mapping
(identity by default) and relationship managers may override it through an overrides file (customer_id, tier,
reason, author, date, expiry). Every override row ends up in an audit frame, applied or not, with the reason.

Overrides policy (decided here, tested):
- an override for a customer the bank does not know, or naming an unknown tier, is an error in the file:
  :func:`apply_service_overrides` raises ValueError listing every such row and applies nothing;
- an expired override (expiry before as_of) or one dated after as_of is refused: it is not applied and the
  audit records why (``why_not``). Expiry is the normal end of an override's life, so a quarterly batch must
  not fail because one ran out; a replay at an old as_of must not see overrides written later.
  ``on_inactive_override: raise`` in config turns these into errors too;
- several overrides active for one customer: the most recently dated wins, the others are audited as
  superseded. Two for the same customer on the same date are ambiguous and refused when the file is read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import pandas as pd

from bankseg.segments._checks import SegmentName, numeric, parse_names, refuse_negative, require_columns

PERIODS: tuple[str, ...] = ("monthly", "quarterly", "semiannual", "annual")
OVERRIDE_COLUMNS: tuple[str, ...] = ("customer_id", "tier", "reason", "author", "date", "expiry")
AUDIT_COLUMNS: tuple[str, ...] = (
    "as_of", "customer_id", "rule_tier", "override_tier", "reason", "author", "date", "expiry", "applied",
    "why_not",
)


@dataclass(frozen=True)
class CompositeTierRules:
    """Tier levels (low to high) with inclusive lower bounds, and what the tier value is made of."""

    levels: tuple[SegmentName, ...]
    lower_bounds: tuple[float, ...]
    aum_column: str = "bal_aum_adb_3m"
    loan_column: str = "bal_loan_adb_3m"
    loan_share: float = 1.0
    period: str = "quarterly"

    def __post_init__(self) -> None:
        if len(self.levels) != len(self.lower_bounds):
            raise ValueError("composite_tier: one lower bound per level")
        bounds = np.asarray(self.lower_bounds, dtype="float64")
        if bounds[0] != 0 or np.any(np.diff(bounds) <= 0):
            raise ValueError(f"composite_tier: lower bounds must start at 0 and increase, got {list(bounds)}")
        if self.loan_share < 0:
            raise ValueError(f"composite_tier: loan_share must be >= 0, got {self.loan_share}")
        if self.period not in PERIODS:
            raise ValueError(f"composite_tier: period {self.period!r} is not one of {PERIODS}")

    @classmethod
    def from_dict(cls, cfg: Mapping) -> CompositeTierRules:
        levels = cfg["levels"]
        return cls(
            levels=parse_names(levels, "composite_tier.levels"),
            lower_bounds=tuple(float(level["lower"]) for level in levels),
            aum_column=cfg.get("aum_column", "bal_aum_adb_3m"),
            loan_column=cfg.get("loan_column", "bal_loan_adb_3m"),
            loan_share=float(cfg.get("loan_share", 1.0)),
            period=cfg.get("period", "quarterly"),
        )

    @property
    def names(self) -> list[str]:
        return [level.name for level in self.levels]

    @property
    def dtype(self) -> pd.CategoricalDtype:
        return pd.CategoricalDtype(self.names, ordered=True)

    def rank(self, tier: str) -> int:
        """Position of a tier name, 0 = lowest; ValueError for an unknown name."""
        if tier not in self.names:
            raise ValueError(f"unknown tier {tier!r}; tiers are {self.names}")
        return self.names.index(tier)


@dataclass(frozen=True)
class ServiceTierRules:
    """Composite -> service tier mapping (tiers left out map to themselves) and the inactive-override policy."""

    from_composite: Mapping[str, str] = field(default_factory=dict)
    on_inactive_override: Literal["audit", "raise"] = "audit"

    def __post_init__(self) -> None:
        if self.on_inactive_override not in ("audit", "raise"):
            raise ValueError(
                f"service_tier: on_inactive_override must be 'audit' or 'raise', got {self.on_inactive_override!r}"
            )

    @classmethod
    def from_dict(cls, cfg: Mapping, tiers: CompositeTierRules) -> ServiceTierRules:
        mapping = {str(k): str(v) for k, v in (cfg.get("from_composite") or {}).items()}
        unknown = sorted(set(mapping) - set(tiers.names) | set(mapping.values()) - set(tiers.names))
        if unknown:
            raise ValueError(f"service_tier.from_composite: unknown tiers {unknown}; tiers are {tiers.names}")
        return cls(from_composite=mapping, on_inactive_override=cfg.get("on_inactive_override", "audit"))


class ServiceTierResult(NamedTuple):
    """The service tier per row of the input frame, and the audit of every override in scope."""

    service_tier: pd.Series
    audit: pd.DataFrame


def composite_tier_value(frame: pd.DataFrame, rules: CompositeTierRules) -> pd.Series:
    """The amount the composite tier is cut on: 3-month ADB of AUM + loan_share x 3-month ADB of loans.

    A missing balance (NaN: no balance rows) counts as 0, the customer holds nothing there. Negative balances
    are data errors and refused. The loan column is only read when loan_share > 0.
    """
    columns = [rules.aum_column] + ([rules.loan_column] if rules.loan_share > 0 else [])
    require_columns(frame, columns, "composite tier")
    value = np.nan_to_num(numeric(frame, rules.aum_column), nan=0.0)
    if rules.loan_share > 0:
        value = value + rules.loan_share * np.nan_to_num(numeric(frame, rules.loan_column), nan=0.0)
    refuse_negative(value, frame.index, "composite tier value")
    return pd.Series(value, index=frame.index, name="composite_tier_value")


def assign_composite_tier(frame: pd.DataFrame, rules: CompositeTierRules) -> pd.Series:
    """The composite tier (ordered Categorical, low to high) of every row; lower bounds are inclusive."""
    value = composite_tier_value(frame, rules).to_numpy()
    codes = np.searchsorted(np.asarray(rules.lower_bounds), value, side="right") - 1
    return pd.Series(
        pd.Categorical.from_codes(codes, dtype=rules.dtype), index=frame.index, name="composite_tier"
    )


def tier_period(as_of: pd.Timestamp | str, period: str) -> str:
    """Label of the tier period an as_of falls in: '2024-04', '2024Q2', '2024H1' or '2024'.

    Tiers are recomputed whenever scoring runs; the period only names which review cycle a tier belongs to.
    A mid-period as_of belongs to the period that contains it.
    """
    ts = pd.Timestamp(as_of)
    if period == "monthly":
        return f"{ts.year}-{ts.month:02d}"
    if period == "quarterly":
        return f"{ts.year}Q{(ts.month - 1) // 3 + 1}"
    if period == "semiannual":
        return f"{ts.year}H{(ts.month - 1) // 6 + 1}"
    if period == "annual":
        return f"{ts.year}"
    raise ValueError(f"period {period!r} is not one of {PERIODS}")


def derive_service_tier(
    composite_tier: pd.Series, tiers: CompositeTierRules, rules: ServiceTierRules
) -> pd.Series:
    """The rule service tier: the composite tier mapped by ``rules.from_composite`` (identity by default)."""
    composite = as_tier(composite_tier, tiers, "composite_tier")
    mapping = {name: rules.from_composite.get(name, name) for name in tiers.names}
    codes = np.array([tiers.names.index(mapping[name]) for name in tiers.names], dtype="int64")
    mapped = np.where(composite.cat.codes.to_numpy() >= 0, codes[composite.cat.codes.to_numpy()], -1)
    return pd.Series(
        pd.Categorical.from_codes(mapped, dtype=tiers.dtype), index=composite_tier.index, name="service_tier"
    )


def read_overrides(path: str | Path, tier_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Read and check a service-tier overrides file (.csv or .parquet) into typed columns.

    Columns: customer_id (int), tier (a tier name), reason, author (non-empty text), date, expiry (dates,
    expiry >= date). Raises ValueError listing every problem and the rows it touches; with ``tier_names``
    also refuses unknown tiers.
    """
    path = Path(path)
    if path.suffix.lower() == ".csv":
        raw = pd.read_csv(path, dtype={"tier": "str", "reason": "str", "author": "str"})
    elif path.suffix.lower() in (".parquet", ".pq"):
        raw = pd.read_parquet(path)
    else:
        raise ValueError(f"overrides file {path} must be .csv or .parquet")
    return normalise_overrides(raw, tier_names)


def normalise_overrides(overrides: pd.DataFrame, tier_names: Sequence[str] | None = None) -> pd.DataFrame:
    """Check an overrides frame and return a typed copy (see :func:`read_overrides` for the rules)."""
    require_columns(overrides, OVERRIDE_COLUMNS, "overrides")
    raw = overrides.loc[:, list(OVERRIDE_COLUMNS)].reset_index(drop=True)
    problems: list[str] = []

    def note(mask: pd.Series | np.ndarray, what: str) -> None:
        mask = np.asarray(mask, dtype=bool)
        if mask.any():
            rows = np.flatnonzero(mask)
            problems.append(f"{what}: {mask.sum()} rows (file rows {list(rows[:10])})")

    ids = pd.to_numeric(raw["customer_id"], errors="coerce")
    bad_id = ids.isna() | (ids.notna() & (ids != ids.round()))
    note(bad_id, "customer_id missing or not an integer")
    dates = {c: pd.to_datetime(raw[c], errors="coerce") for c in ("date", "expiry")}
    for c in ("date", "expiry"):
        note(dates[c].isna(), f"{c} missing or not a date")
    note(dates["expiry"] < dates["date"], "expiry before date")
    text = {c: raw[c].astype("str").where(raw[c].notna(), "").str.strip() for c in ("tier", "reason", "author")}
    for c in ("tier", "reason", "author"):
        note(text[c] == "", f"{c} empty")
    if tier_names is not None:
        note((text["tier"] != "") & ~text["tier"].isin(list(tier_names)), f"unknown tier (tiers are {list(tier_names)})")
    keyed = pd.DataFrame({"customer_id": ids, "date": dates["date"]})
    note(keyed.duplicated(keep=False) & ~bad_id & dates["date"].notna(), "two overrides for one customer on one date")
    if problems:
        raise ValueError("refusing overrides file:\n  " + "\n  ".join(problems))
    return pd.DataFrame(
        {
            "customer_id": ids.astype("int64"),
            "tier": text["tier"],
            "reason": text["reason"],
            "author": text["author"],
            "date": dates["date"].dt.normalize(),
            "expiry": dates["expiry"].dt.normalize(),
        }
    )


def apply_service_overrides(
    customer_ids: pd.Series,
    rule_tier: pd.Series,
    overrides: pd.DataFrame,
    as_of: pd.Timestamp | str,
    tiers: CompositeTierRules,
    rules: ServiceTierRules,
    known_customer_ids: Iterable[int] | None = None,
) -> ServiceTierResult:
    """Apply manual service-tier overrides as of a date and return the service tier with its audit frame.

    ``customer_ids`` and ``rule_tier`` are aligned (one row per customer, no duplicates). An override is
    active when ``date <= as_of <= expiry``. The unknown-customer check is against ``known_customer_ids``
    (the whole bank, when scoring in chunks: overrides for customers of other chunks are then out of scope
    here and left out of this audit) or else against ``customer_ids``. See the module docstring for the policy.
    Audit columns: AUDIT_COLUMNS, one row per override in scope, sorted by customer_id and date.
    """
    as_of = pd.Timestamp(as_of).normalize()
    if not customer_ids.index.equals(rule_tier.index):
        raise ValueError("customer_ids and rule_tier must share one index")
    dup = customer_ids.duplicated(keep=False)
    if dup.any():
        raise ValueError(f"service overrides need one row per customer; repeated ids {sorted(customer_ids[dup].unique()[:10])}")
    rule = as_tier(rule_tier, tiers, "rule_tier")
    ov = normalise_overrides(overrides, tiers.names)

    known = pd.Index(customer_ids.to_numpy() if known_customer_ids is None else np.asarray(list(known_customer_ids)))
    unknown = ~ov["customer_id"].isin(known)
    if unknown.any():
        raise ValueError(
            f"refusing overrides for {int(unknown.sum())} unknown customers: "
            f"{sorted(ov.loc[unknown, 'customer_id'].unique().tolist())[:20]}"
        )
    ov = ov[ov["customer_id"].isin(customer_ids)].sort_values(["customer_id", "date"], kind="stable")
    ov = ov.reset_index(drop=True)

    expired = ov["expiry"] < as_of
    future = ov["date"] > as_of
    if rules.on_inactive_override == "raise" and (expired | future).any():
        raise ValueError(
            f"refusing overrides not active at {as_of.date()}: expired for customers "
            f"{ov.loc[expired, 'customer_id'].tolist()[:20]}, dated later for {ov.loc[future, 'customer_id'].tolist()[:20]}"
        )
    active = ~expired & ~future
    # The most recent active override per customer wins (rows are sorted by date within a customer).
    winners = ov[active].drop_duplicates("customer_id", keep="last")
    winner = ov.index.isin(winners.index)
    latest_date = ov["date"].where(winner).groupby(ov["customer_id"]).transform("max")

    why_not = pd.Series("", index=ov.index, dtype="str")
    why_not = why_not.mask(active & ~winner, "superseded by the override dated " + latest_date.dt.strftime("%Y-%m-%d"))
    why_not = why_not.mask(future, "dated " + ov["date"].dt.strftime("%Y-%m-%d") + f" after as_of {as_of.date()}")
    why_not = why_not.mask(expired, "expired " + ov["expiry"].dt.strftime("%Y-%m-%d") + f" before as_of {as_of.date()}")

    position = pd.Index(customer_ids.to_numpy()).get_indexer(ov["customer_id"])
    codes = rule.cat.codes.to_numpy().copy()
    codes[position[winner]] = pd.Categorical(ov.loc[winner, "tier"], dtype=tiers.dtype).codes
    service = pd.Series(pd.Categorical.from_codes(codes, dtype=tiers.dtype), index=rule_tier.index, name="service_tier")

    audit = pd.DataFrame(
        {
            "as_of": pd.Series(as_of, index=ov.index),
            "customer_id": ov["customer_id"],
            "rule_tier": pd.Categorical.from_codes(rule.cat.codes.to_numpy()[position], dtype=tiers.dtype),
            "override_tier": pd.Categorical(ov["tier"], dtype=tiers.dtype),
            "reason": ov["reason"],
            "author": ov["author"],
            "date": ov["date"],
            "expiry": ov["expiry"],
            "applied": winner,
            "why_not": why_not,
        },
        columns=list(AUDIT_COLUMNS),
    )
    return ServiceTierResult(service, audit)


def tier_grid(
    composite_tier: pd.Series,
    service_tier: pd.Series,
    tiers: CompositeTierRules,
    aum: pd.Series | None = None,
) -> pd.DataFrame:
    """The composite x service grid: all len(levels)^2 cells (25 by default), empty ones as zeros.

    Columns: composite_tier, service_tier, n_customers, and aum_sum when ``aum`` is given (aligned series).
    """
    if len(composite_tier) != len(service_tier):
        raise ValueError("tier_grid: composite and service tiers differ in length")
    data = pd.DataFrame(
        {
            "composite_tier": as_tier(composite_tier, tiers, "composite_tier").array,
            "service_tier": as_tier(service_tier, tiers, "service_tier").array,
            "n_customers": np.ones(len(composite_tier), dtype="int64"),
        }
    )
    if aum is not None:
        if not aum.index.equals(composite_tier.index):
            raise ValueError("tier_grid: aum must share the tiers' index")
        data["aum_sum"] = pd.to_numeric(aum, errors="raise").fillna(0.0).to_numpy(dtype="float64")
    grid = data.groupby(["composite_tier", "service_tier"], observed=False).sum().reset_index()
    grid["n_customers"] = grid["n_customers"].astype("int64")
    return grid


def as_tier(values: pd.Series, tiers: CompositeTierRules, what: str) -> pd.Series:
    """Tier names (str or categorical) as the ordered tier dtype; unknown or missing names refused."""
    out = values if values.dtype == tiers.dtype else values.astype("str").astype(tiers.dtype)
    bad = out.isna()
    if bad.any():
        raise ValueError(f"{what}: {int(bad.sum())} rows with unknown tiers, e.g. {values[bad].unique()[:5].tolist()}")
    return out
