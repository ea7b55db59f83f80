"""Readable bilingual persona names built from a persona's profile and a configured vocabulary.

The vocabulary (``naming.vocabulary`` in conf/model/personas.yaml) maps a feature and a direction
(``high``: the persona's mean is above the population's, ``low``: below) to an English and a Chinese phrase,
either an ``adjective`` ("senior" / "中老年") or a ``noun`` ("borrowers" / "信贷依赖"). A persona's name is
made of its strongest matching terms, ranked by ``|z|`` (the standardised gap between the persona's mean and
the population's, see :class:`bankseg.models.personas.PersonaModel`):

- English: up to ``max_adjectives`` adjectives, in vocabulary order, then the strongest noun (or
  ``default_noun``), first letter capitalised: "Young digital spenders".
- Chinese: the same adjectives, the noun, then ``zh_suffix``: "年轻数字化消费客群".

Only terms with ``|z| >= min_abs_z`` count (a term may set its own bar: words like "dormant" describe an
absolute state, so they should need a larger gap than "senior"), and ``unless`` lists (feature, direction) pairs
that veto it ("investors" unless the balance is low). A persona with none gets the ``fallback`` name. Names are unique in
both languages: a persona whose name is taken (bigger personas choose first) adds its next adjective as a
qualifier, and failing that a number, "(2)", "(3)", ... Names in ``overrides`` ({persona_id: {en, zh}}) replace
the generated ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

DIRECTIONS = ("high", "low")
KINDS = ("adjective", "noun")


@dataclass(frozen=True)
class Term:
    """One vocabulary entry: (feature, direction) -> an English and a Chinese phrase."""

    feature: str
    direction: str
    en: str
    zh: str
    kind: str = "adjective"
    min_abs_z: float | None = None  # a stricter (or looser) bar than the rules' own for this term
    # (feature, direction) pairs that veto the term when the persona also matches them at the rules' own bar:
    # a persona with little money and no deposits is not an "investor" however low its deposit share
    unless: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class PersonaName:
    """A persona's name in both languages and the (feature, direction) terms it was built from."""

    en: str
    zh: str
    terms: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class NamingRules:
    """The parsed ``naming`` section of conf/model/personas.yaml."""

    vocabulary: tuple[Term, ...] = ()
    min_abs_z: float = 0.5
    keep_min_abs_z: float = 0.25
    max_adjectives: int = 2
    default_noun_en: str = "customers"
    default_noun_zh: str = ""
    zh_suffix: str = "客群"
    fallback_en: str = "Mainstream customers"
    fallback_zh: str = "大众主流客群"
    overrides: dict[int, PersonaName] = field(default_factory=dict)


def parse_naming_rules(config: Mapping | None) -> NamingRules:
    """Turn a plain mapping (the YAML ``naming`` section) into :class:`NamingRules`; None gives no vocabulary.

    Refuses an unknown direction or kind, a phrase missing in either language, and a (feature, direction)
    listed twice, naming the entries.
    """
    if config is None:
        return NamingRules()
    unknown = sorted(
        set(config)
        - {"vocabulary", "min_abs_z", "keep_min_abs_z", "max_adjectives", "default_noun", "zh_suffix",
           "fallback", "overrides"}
    )
    if unknown:
        raise ValueError(f"naming: unknown keys {unknown}")
    terms, problems = [], []
    for i, item in enumerate(config.get("vocabulary") or ()):
        term = Term(
            feature=str(item.get("feature", "")),
            direction=str(item.get("direction", "")),
            en=str(item.get("en", "") or ""),
            zh=str(item.get("zh", "") or ""),
            kind=str(item.get("kind", "adjective")),
            min_abs_z=None if item.get("min_abs_z") is None else float(item["min_abs_z"]),
            unless=_vetoes(item.get("unless")),
        )
        bad_vetoes = [veto for veto in term.unless if not veto[0] or veto[1] not in DIRECTIONS]
        if bad_vetoes:
            problems.append(f"entry {i} ({term.feature} {term.direction}): `unless` needs a feature and a "
                            f"direction in {DIRECTIONS} per entry, got {list(bad_vetoes)}")
        if not term.feature or term.direction not in DIRECTIONS or term.kind not in KINDS:
            problems.append(f"entry {i} {dict(item)}: needs a feature, direction in {DIRECTIONS}, kind in {KINDS}")
        elif not term.en or not term.zh:
            problems.append(f"entry {i} ({term.feature} {term.direction}): needs both `en` and `zh`")
        terms.append(term)
    keys = [(t.feature, t.direction) for t in terms]
    duplicated = sorted({k for k in keys if keys.count(k) > 1})
    if duplicated:
        problems.append(f"listed more than once: {duplicated}")
    if problems:
        raise ValueError("naming.vocabulary: " + "; ".join(problems))
    min_abs_z = float(config.get("min_abs_z", 0.5))
    keep_min_abs_z = float(config.get("keep_min_abs_z", min_abs_z / 2))
    if min_abs_z <= 0 or not 0 <= keep_min_abs_z <= min_abs_z:
        raise ValueError(
            f"naming: need min_abs_z > 0 and 0 <= keep_min_abs_z <= min_abs_z, got {min_abs_z}, {keep_min_abs_z}"
        )
    max_adjectives = int(config.get("max_adjectives", 2))
    if max_adjectives < 0:
        raise ValueError(f"naming.max_adjectives must be >= 0, got {max_adjectives}")
    default_noun = config.get("default_noun") or {}
    fallback = config.get("fallback") or {}
    overrides = {
        int(pid): PersonaName(str(name["en"]), str(name["zh"]))
        for pid, name in (config.get("overrides") or {}).items()
    }
    return NamingRules(
        vocabulary=tuple(terms),
        min_abs_z=min_abs_z,
        keep_min_abs_z=keep_min_abs_z,
        max_adjectives=max_adjectives,
        default_noun_en=str(default_noun.get("en", "customers")),
        default_noun_zh=str(default_noun.get("zh", "") or ""),
        zh_suffix=str(config.get("zh_suffix", "客群") or ""),
        fallback_en=str(fallback.get("en", "Mainstream customers")),
        fallback_zh=str(fallback.get("zh", "大众主流客群")),
        overrides=overrides,
    )


def _vetoes(entries) -> tuple[tuple[str, str], ...]:
    """A vocabulary entry's ``unless`` list ({feature, direction} mappings; one mapping alone is accepted) as pairs.

    An entry that is not a mapping becomes ``("", "")``, which :func:`parse_naming_rules` reports.
    """
    if entries is None:
        return ()
    if isinstance(entries, Mapping):
        entries = [entries]
    return tuple(
        (str(e.get("feature", "") or ""), str(e.get("direction", "") or "")) if isinstance(e, Mapping) else ("", "")
        for e in entries
    )


def matching_terms(z: pd.Series, rules: NamingRules) -> list[Term]:
    """The vocabulary terms a persona's z-scores support, strongest first; one term per phrase.

    ``z`` is indexed by feature name. Features absent from ``z`` or with a NaN z-score never match. A term
    matches when its signed z reaches its own ``min_abs_z`` if set, else the rules' ``min_abs_z``, and none of
    its ``unless`` pairs reaches the rules' ``min_abs_z``.
    """

    def signed_z(feature: str, direction: str) -> float:
        value = z.get(feature, np.nan)
        return (value if direction == "high" else -value) if np.isfinite(value) else np.nan

    scored = []
    for position, term in enumerate(rules.vocabulary):
        signed = signed_z(term.feature, term.direction)
        if not np.isfinite(signed):
            continue
        vetoed = any(signed_z(*veto) >= rules.min_abs_z for veto in term.unless)
        if signed >= (rules.min_abs_z if term.min_abs_z is None else term.min_abs_z) and not vetoed:
            scored.append((-signed, position, term))
    scored.sort(key=lambda item: item[:2])
    seen_en, seen_zh, terms = set(), set(), []
    for _, _, term in scored:
        if term.en in seen_en or term.zh in seen_zh:  # two features saying the same word ("dormant")
            continue
        seen_en.add(term.en)
        seen_zh.add(term.zh)
        terms.append(term)
    return terms


def profile_still_fits(terms: Iterable[tuple[str, str]], z: pd.Series, rules: NamingRules) -> bool:
    """Whether a name built from ``terms`` still describes a persona with z-scores ``z``.

    Every term must still point the same way with ``|z| >= keep_min_abs_z`` (a lower bar than the one for a
    new name, so a name does not flicker between retrains). A fallback name (no terms) fits while no term
    reaches ``min_abs_z``.
    """
    terms = list(terms)
    if not terms:
        return not matching_terms(z, rules)
    for feature, direction in terms:
        value = z.get(feature, np.nan)
        if not np.isfinite(value):
            return False
        if (value if direction == "high" else -value) < rules.keep_min_abs_z:
            return False
    return True


def _compose(terms: Sequence[Term], n_adjectives: int, rules: NamingRules) -> PersonaName:
    """The name made of the first ``n_adjectives`` adjectives and the first noun among ``terms``."""
    order = {term: i for i, term in enumerate(rules.vocabulary)}
    adjectives = sorted([t for t in terms if t.kind == "adjective"][:n_adjectives], key=order.__getitem__)
    nouns = [t for t in terms if t.kind == "noun"][:1]
    if not adjectives and not nouns:
        return PersonaName(rules.fallback_en, rules.fallback_zh)
    en_words = [t.en for t in adjectives] + [nouns[0].en if nouns else rules.default_noun_en]
    en = " ".join(w for w in en_words if w)
    en = en[:1].upper() + en[1:]
    zh = "".join(t.zh for t in adjectives) + (nouns[0].zh if nouns else rules.default_noun_zh) + rules.zh_suffix
    used = tuple((t.feature, t.direction) for t in [*adjectives, *nouns])
    return PersonaName(en, zh, used)


def name_personas(
    z: pd.DataFrame,
    rules: NamingRules,
    priority: Sequence[int] | None = None,
    keep: Mapping[int, PersonaName] | None = None,
) -> dict[int, PersonaName]:
    """Name every persona (the rows of ``z``: persona id x feature z-scores), unique in both languages.

    ``keep`` holds names carried over from a previous model; they are reserved first and used as they are.
    The others are named in ``priority`` order (default: the order of ``z``'s rows), so the first persona to
    claim a name keeps it and later ones get a qualifier or a number. ``rules.overrides`` win over both.
    """
    keep = dict(keep or {})
    order = list(z.index if priority is None else priority)
    if sorted(order) != sorted(z.index):
        raise ValueError(f"priority {order} must list each persona of z exactly once: {list(z.index)}")
    names: dict[int, PersonaName] = {}
    taken_en, taken_zh = set(), set()

    def claim(pid: int, name: PersonaName) -> None:
        names[pid] = name
        taken_en.add(name.en.casefold())
        taken_zh.add(name.zh)

    def free(name: PersonaName) -> bool:
        return name.en.casefold() not in taken_en and name.zh not in taken_zh

    for pid, name in rules.overrides.items():
        if pid in z.index:
            claim(pid, name)
    for pid in order:
        if pid not in names and pid in keep and free(keep[pid]):
            claim(pid, keep[pid])
    for pid in order:
        if pid in names:
            continue
        terms = matching_terms(z.loc[pid], rules)
        n_adjectives = sum(t.kind == "adjective" for t in terms)
        # The base name first, then the same name qualified by each further adjective in turn.
        widths = range(rules.max_adjectives, max(n_adjectives, rules.max_adjectives) + 1)
        candidates = [_compose(terms, n, rules) for n in widths]
        base = candidates[0]
        chosen = next((c for c in candidates if free(c)), None)
        number = 2
        while chosen is None:
            numbered = PersonaName(f"{base.en} ({number})", f"{base.zh}（{number}）", base.terms)
            chosen = numbered if free(numbered) else None
            number += 1
        claim(pid, chosen)
    return {pid: names[pid] for pid in z.index}
