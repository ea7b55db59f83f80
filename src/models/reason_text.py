"""Reason codes as sentences a relationship manager can say: the feature in words, the customer's value in its
unit, and the comparison that makes it a reason.

A reason code (:mod:`bankseg.models.explain`) is a business feature, a group of raw features; in each row the
group's *representative* is its member that pushes the score hardest the configured way. :class:`ReasonWriter`
turns that member and the row's values into text, e.g.

- ``Month-end AUM, last month: 12,300 CNY, down 62% on its 3-month average (32,400 CNY)``
- ``上月末资产余额12,300元,较近3个月日均(32,400元)下降62%``
- ``App logins, 3m: 2, below the typical 14`` / ``近3个月手机银行登录次数2次,低于一般客户的14次``

What a feature is compared with: a *baseline* feature of the same row when the config names one (``comparisons``
in conf/model/reason_codes.yaml: month-end against the 3-month average), nothing for a change (``change`` unit,
the value is already a comparison), else the *typical* customer: the median of a reference population (the share
holding it, for a yes/no feature). Units come from the config's ordered ``units`` patterns, from a flat data
config's per-column ``labels`` (``{column: {en, zh, unit}}``), or from the values (0/1 only: a flag).

Names: the feature dictionary's (:func:`bankseg.features.dictionary.describe_feature`) or the data config's
labels; otherwise a readable name made from the column name (``Total_Trans_Amt`` -> ``Total transaction
amount``), used in both languages. The raw column name is never the text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bankseg.features.dictionary import describe_feature

UNITS: tuple[str, ...] = (
    "money", "count", "products", "days", "months", "years", "age", "share", "change", "ratio", "score",
    "flag", "category", "number",
)
CURRENCY_ZH: dict[str, str] = {"CNY": "元", "EUR": "欧元", "USD": "美元", "CZK": "克朗", "GBP": "英镑"}
# zh unit words after a number (en words are in _EN_SUFFIX); money takes the currency's.
_ZH_SUFFIX: dict[str, str] = {"count": "次", "products": "个", "days": "天", "months": "个月", "years": "年", "age": "岁"}
_EN_SUFFIX: dict[str, str] = {"days": " days", "months": " months", "years": " years", "age": " years"}
# Abbreviations spelled out when a name is made from a column name (flat real-data sources).
_WORDS: dict[str, str] = {
    "amt": "amount", "ct": "count", "cnt": "count", "trans": "transaction", "txn": "transaction", "chng": "change",
    "avg": "average", "num": "number", "mon": "months", "bal": "balance", "pct": "percent", "cr": "credit",
    "lmt": "limit", "yrs": "years", "mths": "months",
}
SAME = 0.005  # a relative difference below this reads "in line with" / "持平"


@dataclass(frozen=True)
class Fact:
    """How one feature reads as a reason: names, unit, and what its value is compared with."""

    name_en: str
    name_zh: str
    unit: str = "number"
    baseline: str | None = None  # another feature of the same row
    baseline_en: str = ""
    baseline_zh: str = ""
    typical: float | None = None  # the reference population's median (share of 1s for a flag)


@dataclass(frozen=True)
class ReasonWriter:
    """Writes the en and zh sentence of a reason: see the module docstring. Build with :meth:`build`."""

    facts: Mapping[str, Fact]
    currency: str = "CNY"
    effect: bool = False  # append which way the reason pushes the score (direction "both")
    values: Mapping[str, Mapping[str, str]] | None = None  # category value -> {"en", "zh"} (config ``values``)

    @classmethod
    def build(
        cls,
        features: Sequence[str],
        config: Mapping | None = None,
        *,
        reference: pd.DataFrame | None = None,
        feature_labels: Mapping[str, Mapping[str, str]] | None = None,
        currency: str = "CNY",
        effect: bool = False,
    ) -> ReasonWriter:
        """Facts for ``features``: units and comparisons from ``config`` (reason_codes.yaml ``units`` and
        ``comparisons``), names from ``feature_labels`` or the feature dictionary, typical values from
        ``reference`` (left out when None); category values in words from ``values`` (a value not listed is
        shown with underscores as spaces)."""
        config = config or {}
        units = _compile(config.get("units") or (), "unit")
        comparisons = _compile(config.get("comparisons") or (), "with")
        labels = feature_labels or {}
        facts = {}
        for feature in features:
            en, zh = _names(feature, labels.get(feature))
            unit = (labels.get(feature) or {}).get("unit") or _first(units, feature, "unit")
            column = reference[feature] if reference is not None and feature in reference.columns else None
            unit = unit or _unit_from_values(column)
            if unit not in UNITS:
                raise ValueError(f"reason text: feature {feature!r} has unit {unit!r}; units are {UNITS}")
            compare = _first(comparisons, feature, None)
            baseline = compare["with"] if compare and compare["with"] in features else None
            facts[feature] = Fact(
                en, zh, unit, baseline=baseline,
                baseline_en=compare.get("en", "") if baseline else "", baseline_zh=compare.get("zh", "") if baseline else "",
                typical=_typical(column, unit),
            )
        values = {str(k): dict(v) for k, v in (config.get("values") or {}).items()}
        return cls(facts, currency=currency, effect=effect, values=values)

    def write(self, feature: np.ndarray, frame: pd.DataFrame, sign: np.ndarray | None = None):
        """The en and zh sentences (object arrays, None where ``feature`` is None) of one reason slot.

        ``feature[i]`` is the representative feature of row ``i``'s reason (None: no reason); the values are read
        from ``frame`` (row-aligned); ``sign[i]`` is the sign of the reason's contribution (used when ``effect``).
        """
        feature = np.asarray(feature, dtype=object)
        en = np.full(len(feature), None, dtype=object)
        zh = np.full(len(feature), None, dtype=object)
        for name in pd.unique(feature[pd.notna(feature)]):
            rows = np.flatnonzero(feature == name)
            fact = self.facts[name]
            values = frame[name].iloc[rows]
            base = frame[fact.baseline].iloc[rows].to_numpy(dtype=float) if fact.baseline else None
            en[rows], zh[rows] = self._sentences(fact, values, base)
        if self.effect and sign is not None:
            up = np.asarray(sign) > 0
            has = pd.notna(en)
            en[has] = [t + (" (pushes the score up)" if u else " (pushes the score down)") for t, u in zip(en[has], up[has], strict=True)]
            zh[has] = [t + ("(推高评分)" if u else "(拉低评分)") for t, u in zip(zh[has], up[has], strict=True)]
        return en, zh

    # ------------------------------------------------------------------ one feature's rows
    def _value_words(self, value) -> tuple[str, str] | None:
        """A category value in en and zh words (None for a missing value)."""
        if value is None:
            return None
        own = (self.values or {}).get(str(value), {})
        en = own.get("en", str(value).replace("_", " "))
        return en, own.get("zh", en)

    def _sentences(self, fact: Fact, values: pd.Series, base: np.ndarray | None) -> tuple[list[str], list[str]]:
        if fact.unit == "category":
            text = values.astype(object).where(values.notna(), None).to_numpy()
            words = [self._value_words(v) for v in text]
            return ([f"{fact.name_en}: {w[0]}" if w else f"{fact.name_en}: no data" for w in words],
                    [f"{fact.name_zh}:{w[1]}" if w else f"{fact.name_zh}:无数据" for w in words])
        v = values.to_numpy(dtype=float, na_value=np.nan)
        en, zh = [], []
        for i, x in enumerate(v):
            if np.isnan(x):
                en.append(f"{fact.name_en}: no data")
                zh.append(f"{fact.name_zh}:无数据")
                continue
            e, z = self._value(fact.unit, x)
            ce, cz = self._comparison(fact, x, None if base is None else base[i])
            sep_zh = ":" if fact.unit in ("flag", "change", "share", "ratio", "score", "number") else ""
            en.append(f"{fact.name_en}: {e}{ce}")
            zh.append(f"{fact.name_zh}{sep_zh}{z}{cz}")
        return en, zh

    def _value(self, unit: str, x: float) -> tuple[str, str]:
        """The value in its unit, en and zh."""
        if unit == "money":
            amount = f"{x:,.0f}"
            return f"{amount} {self.currency}", f"{amount}{CURRENCY_ZH.get(self.currency, self.currency)}"
        if unit == "share":
            return f"{x:.0%}", f"{x:.0%}"
        if unit == "change":
            return _change(x)
        if unit == "flag":
            return ("yes", "是") if x >= 0.5 else ("no", "否")
        if unit == "ratio":
            return f"{x:.2f}", f"{x:.2f}"
        if unit == "number":
            text = f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"
            return text, text
        text = f"{x:,.0f}"
        en = _EN_SUFFIX.get(unit, "")
        return text + (en[:-1] if en and text == "1" else en), text + _ZH_SUFFIX.get(unit, "")

    def _comparison(self, fact: Fact, x: float, base: float | None) -> tuple[str, str]:
        """``, down 62% on its 3-month average (32,400 CNY)`` / ``, above the typical 14``; empty when none."""
        if fact.unit == "change":
            return "", ""
        if fact.baseline is not None:
            if base is None or not np.isfinite(base) or base <= 0:
                return "", ""
            be, bz = self._value(fact.unit, base)
            ratio = x / base - 1
            if abs(ratio) < SAME:
                return f", in line with {fact.baseline_en} ({be})", f",与{fact.baseline_zh}({bz})持平"
            ue, uz = _change(ratio)
            return f", {ue} on {fact.baseline_en} ({be})", f",较{fact.baseline_zh}({bz}){uz}"
        if fact.typical is None:
            return "", ""
        if fact.unit == "flag":
            return f" ({fact.typical:.0%} of customers: yes)", f"({fact.typical:.0%}的客户为是)"
        te, tz = self._value(fact.unit, fact.typical)
        scale = max(abs(fact.typical), abs(x), 1e-12)
        if abs(x - fact.typical) / scale < SAME or te == self._value(fact.unit, x)[0]:
            return f", the same as the typical {te}", f",与一般客户持平({tz})"
        if x > fact.typical:
            return f", above the typical {te}", f",高于一般客户的{tz}"
        return f", below the typical {te}", f",低于一般客户的{tz}"


def readable_name(column: str) -> str:
    """A name made from a column name: ``Total_Trans_Amt`` -> ``Total transaction amount``,
    ``creditScore`` -> ``Credit score``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", column)
    words = [w for w in re.split(r"[\s_\-\.]+", spaced) if w]
    words = [_WORDS.get(w.lower(), w.lower()) if not w.isupper() or len(w) > 3 else w for w in words]
    text = " ".join(words) or column
    return text[:1].upper() + text[1:]


def _change(ratio: float) -> tuple[str, str]:
    if abs(ratio) < SAME:
        return "unchanged", "持平"
    pct = f"{abs(ratio):.0%}"
    return (f"up {pct}", f"上升{pct}") if ratio > 0 else (f"down {pct}", f"下降{pct}")


def _names(feature: str, label: Mapping[str, str] | None) -> tuple[str, str]:
    """en and zh names; a unit in brackets is dropped (the value carries it: "Customer tenure: 70 months")."""
    if label and label.get("en"):
        return label["en"], label.get("zh") or label["en"]
    try:
        described = describe_feature(feature)
    except ValueError:
        name = readable_name(feature)
        return name, name
    return (re.sub(r"\s*\((months|days)\)$", "", described.name_en),
            re.sub(r"\((月|天)\)$", "", described.name_zh))


def _compile(entries: Sequence[Mapping], key: str | None) -> list[tuple[re.Pattern[str], Mapping]]:
    compiled = []
    for entry in entries:
        if "pattern" not in entry or (key is not None and key not in entry):
            raise ValueError(f"reason text entry {dict(entry)} needs 'pattern' and {key!r}")
        try:
            compiled.append((re.compile(entry["pattern"]), entry))
        except re.error as err:
            raise ValueError(f"reason text: bad pattern {entry['pattern']!r}: {err}") from err
    return compiled


def _first(compiled, feature: str, key: str | None):
    for pattern, entry in compiled:
        if pattern.match(feature):
            return entry[key] if key else entry
    return None


def _unit_from_values(column: pd.Series | None) -> str:
    if column is None:
        return "number"
    if not (pd.api.types.is_numeric_dtype(column.dtype) or pd.api.types.is_bool_dtype(column.dtype)):
        return "category"
    values = column.dropna()
    return "flag" if len(values) and values.isin([0, 1]).all() else "number"


def _typical(column: pd.Series | None, unit: str) -> float | None:
    if column is None or unit in ("category", "change"):
        return None
    values = pd.to_numeric(column, errors="coerce").dropna()
    if values.empty:
        return None
    return float(values.mean()) if unit == "flag" else float(values.median())
