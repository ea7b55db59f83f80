"""The playbook: a recommended action per customer from config rules, and the next-best product.

Actions: config lists rules ``{name, when: {column: name or [names]}, en, zh}``; the first rule whose every
condition holds wins; the last rule must have an empty ``when`` so every customer gets an action.

Next-best product (seed 003's look-alike cross-selling): within each persona, a product's lift is its holding
rate in the persona divided by its holding rate over everyone (:func:`fit_product_lift`, learned at training
time and stored). A customer is offered the offerable product with the highest lift in their persona among
those they do not hold, if that lift is >= ``min_lift``; otherwise nothing (missing).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bankseg.data.schema import PRODUCTS
from bankseg.segments._checks import numeric, require_columns


@dataclass(frozen=True)
class PlaybookAction:
    """One action rule: conditions on segment columns, and the action text in English and Chinese."""

    name: str
    when: Mapping[str, tuple[str, ...]]
    en: str
    zh: str


@dataclass(frozen=True)
class PlaybookRules:
    """Ordered action rules, the products that may be offered, and the lift an offer needs."""

    actions: tuple[PlaybookAction, ...]
    offerable_products: tuple[str, ...] = PRODUCTS
    min_lift: float = 1.0
    product_min_value: Mapping[str, float] = field(default_factory=dict)  # product -> tier value it needs

    def __post_init__(self) -> None:
        if not self.actions or self.actions[-1].when:
            raise ValueError("playbook.actions: the last rule must have an empty `when` (a catch-all)")
        names = [a.name for a in self.actions]
        if len(set(names)) != len(names):
            raise ValueError(f"playbook.actions: duplicate names in {names}")
        unknown = sorted(set(self.offerable_products) - set(PRODUCTS))
        if unknown:
            raise ValueError(f"playbook.offerable_products: unknown products {unknown}")
        unknown = sorted(set(self.product_min_value) - set(self.offerable_products))
        if unknown:
            raise ValueError(f"playbook.product_min_value: {unknown} are not offerable products")

    @classmethod
    def from_dict(cls, cfg: Mapping) -> PlaybookRules:
        actions = tuple(
            PlaybookAction(
                name=str(a["name"]),
                when={str(k): tuple(v) if isinstance(v, list | tuple) else (str(v),) for k, v in (a.get("when") or {}).items()},
                en=str(a["en"]),
                zh=str(a["zh"]),
            )
            for a in cfg["actions"]
        )
        return cls(
            actions=actions,
            offerable_products=tuple(cfg.get("offerable_products", PRODUCTS)),
            min_lift=float(cfg.get("min_lift", 1.0)),
            product_min_value={str(k): float(v) for k, v in (cfg.get("product_min_value") or {}).items()},
        )

    @property
    def dtype(self) -> pd.CategoricalDtype:
        return pd.CategoricalDtype([a.name for a in self.actions])


def recommend_action(segments: pd.DataFrame, rules: PlaybookRules) -> pd.DataFrame:
    """The first matching action per row: columns action (Categorical), action_en, action_zh.

    ``segments`` holds the columns the rules test (quadrant, lifecycle, ...) as names.
    """
    needed = sorted({c for a in rules.actions for c in a.when})
    require_columns(segments, needed, "playbook")
    chosen = np.full(len(segments), -1, dtype="int64")
    for i, action in enumerate(rules.actions):  # a handful of rules; each one is vectorised over customers
        match = np.ones(len(segments), dtype=bool)
        for column, allowed in action.when.items():
            match &= segments[column].isin(list(allowed)).to_numpy()  # on codes for categoricals
        chosen[(chosen < 0) & match] = i
    return pd.DataFrame(
        {
            "action": pd.Categorical.from_codes(chosen, dtype=rules.dtype),
            "action_en": _texts([a.en for a in rules.actions], chosen),
            "action_zh": _texts([a.zh for a in rules.actions], chosen),
        },
        index=segments.index,
    )


def _texts(texts: list[str], chosen: np.ndarray) -> pd.Categorical:
    """Per-row action texts as a Categorical (a few distinct texts, millions of rows)."""
    categories = list(dict.fromkeys(texts))
    codes = np.array([categories.index(t) for t in texts], dtype="int64")[chosen]
    return pd.Categorical.from_codes(codes, categories=categories)


def fit_product_lift(
    frame: pd.DataFrame, persona_column: str = "persona_id", products: Sequence[str] = PRODUCTS
) -> pd.DataFrame:
    """Persona x product lift: holding rate in the persona / holding rate over all rows (from ``hold_has_*``).

    Index: persona (sorted), columns: products. A product nobody holds has lift 0 everywhere. Fit it on the
    training population and store it: scoring reuses it with :func:`next_best_product`.
    """
    hold_cols = [f"hold_has_{p}" for p in products]
    require_columns(frame, [persona_column, *hold_cols], "fit_product_lift")
    persona = frame[persona_column]
    if persona.isna().any():
        raise ValueError(f"fit_product_lift: {persona_column} missing in rows {list(frame.index[persona.isna()][:5])}")
    held = pd.DataFrame({p: numeric(frame, c) > 0 for p, c in zip(products, hold_cols, strict=True)}, index=frame.index)
    overall = held.mean()
    rate = held.groupby(persona.to_numpy()).mean()
    lift = rate.div(overall.where(overall > 0)).fillna(0.0)
    lift.index.name = persona_column
    lift.columns.name = "product"
    return lift


def next_best_product(
    frame: pd.DataFrame,
    lift_table: pd.DataFrame,
    rules: PlaybookRules | None = None,
    persona_column: str = "persona_id",
    tier_value: np.ndarray | None = None,
) -> pd.DataFrame:
    """The highest-lift offerable product the customer does not hold, and can have, per row.

    Without ``rules`` every product of the lift table may be offered and the lift must reach 1.0. With
    ``tier_value`` (the composite tier's value per row), a product of ``rules.product_min_value`` is offered
    only to customers whose tier value reaches its minimum (no private banking offer for 10,000 CNY).
    Columns: next_best_product (Categorical of the offerable products, missing when no product reaches ``min_lift`` or the persona is not in
    the lift table) and next_best_lift. Vectorised: a masked argmax over the persona x product matrix.
    """
    offerable = tuple(lift_table.columns) if rules is None else rules.offerable_products
    min_lift = 1.0 if rules is None else rules.min_lift
    products = [p for p in offerable if p in lift_table.columns]
    missing = sorted(set(offerable) - set(lift_table.columns))
    if missing:
        raise ValueError(f"next_best_product: lift table has no column for offerable products {missing}")
    require_columns(frame, [persona_column, *(f"hold_has_{p}" for p in products)], "next_best_product")
    lifts = lift_table[products].to_numpy(dtype="float64")
    row = lift_table.index.get_indexer(frame[persona_column])
    known = row >= 0
    candidate = np.where(known[:, None], lifts[np.where(known, row, 0)], -np.inf)
    held = np.column_stack([np.nan_to_num(numeric(frame, f"hold_has_{p}"), nan=0.0) > 0 for p in products])
    candidate[held] = -np.inf
    if tier_value is not None and rules is not None:
        for j, product in enumerate(products):
            if product in rules.product_min_value:
                candidate[np.asarray(tier_value, dtype=float) < rules.product_min_value[product], j] = -np.inf
    best = candidate.argmax(axis=1)
    best_lift = candidate[np.arange(len(frame)), best]
    ok = best_lift >= min_lift
    product = pd.Categorical.from_codes(np.where(ok, best, -1), categories=products)
    return pd.DataFrame(
        {"next_best_product": product, "next_best_lift": np.where(ok, best_lift, np.nan)}, index=frame.index
    )
